/*
 * rekey_file.c - one inode of `kmsfs rekey`, in one atomic step.
 *
 * Rewrap (the default): the file's user.kmsfs.dek is rewrapped for the new
 * key by the keyring (ReEncrypt; for a bucket-key file, the ReEncrypt of
 * its bucket key) and replaced with one fsetxattr(XATTR_REPLACE). The
 * contents are not touched and the plaintext data key never reaches this
 * process. A file whose value already names the new key is skipped, so a
 * re-run after a crash just finishes.
 *
 * Re-encrypt: a new file id and a fresh data key under the new key; every
 * block is decrypted and sealed again into a staging file beside the
 * volume (CIPHERDIR/.kmsfs-rekey.d, same filesystem) that gets the
 * original's xattrs, owner, mode and times, is fsync'ed, recorded in the
 * state file, and renamed over the original. So each name is at every
 * moment the old complete file or the new complete one. The other names
 * of a hard-linked file are then moved to the new inode one by one (a
 * link in the staging directory renamed over each); a crash in between
 * leaves every name a complete, readable file, some on the old inode and
 * some on the new, and the next run puts them back together.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "rekey.h"

/* A user.kmsfs.dek value and the key it names. */
struct dek_value {
	uint8_t bytes[KMSFS_DEK_XATTR_MAX];
	size_t len;
	char key_arn[KC_ARN_MAX];
};

static enum rekey_outcome key_failure(struct rekey *rk, const char *path, const char *what,
				      int ret, const struct kc_error *err)
{
	if (err->type[0])
		rekey_report(rk, path, "%s: %s (%s)", what, err->message, err->type);
	else
		rekey_report(rk, path, "%s: %s", what, strerror(-ret));
	return REKEY_FAILED;
}

static int open_file(struct rekey *rk, const char *path, struct stat *sb)
{
	int fd = openat(rk->root_fd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0) {
		rekey_report(rk, path, "cannot open: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, sb) < 0 || !S_ISREG(sb->st_mode)) {
		rekey_report(rk, path, "no longer a regular file");
		close(fd);
		return -1;
	}
	return fd;
}

/* Versions 1 and 2 both begin u8 version | u8 arn_len | key ARN. */
static int read_dek(struct rekey *rk, const char *path, int fd, struct dek_value *v)
{
	ssize_t len = fgetxattr(fd, KMSFS_DEK_XATTR, v->bytes, sizeof(v->bytes));
	size_t arn_len;

	if (len < 0 && errno == ENODATA) {
		rekey_report(rk, path, "file has a kmsfs header but no user.kmsfs.dek xattr "
			     "(copied without xattrs?)");
		return -1;
	}
	if (len < 0) {
		rekey_report(rk, path, "cannot read user.kmsfs.dek: %s", strerror(errno));
		return -1;
	}
	v->len = (size_t)len;
	arn_len = v->len >= 2 ? v->bytes[1] : 0;
	if (arn_len == 0 || arn_len >= KC_ARN_MAX || 2 + arn_len >= v->len) {
		rekey_report(rk, path, "user.kmsfs.dek xattr is malformed");
		return -1;
	}
	memcpy(v->key_arn, v->bytes + 2, arn_len);
	v->key_arn[arn_len] = '\0';
	return 0;
}

/*
 * What tools leave at the volume root (an interrupted config rewrite's
 * .kmsfs.conf.XXXXXX, an xattr probe) has no header and is not a file to
 * move. A user's file of such a name has one and is moved like any other.
 */
static int is_tool_leftover(const char *path)
{
	return !strchr(path, '/') && !strncmp(path, ".kmsfs", 6);
}

/* The file's header and data key: 0; 1 when it is not a file to move; -1 after reporting. */
static int read_keys(struct rekey *rk, const char *path, int fd, struct kmsfs_header *hdr,
		     struct dek_value *v)
{
	uint8_t bytes[KMSFS_HEADER_LEN];
	ssize_t got = pread(fd, bytes, sizeof(bytes), 0);

	if (got < 0) {
		rekey_report(rk, path, "cannot read the header: %s", strerror(errno));
		return -1;
	}
	if (kmsfs_header_decode(bytes, (size_t)got, hdr) < 0) {
		if (is_tool_leftover(path))
			return 1;
		rekey_report(rk, path, "file header is truncated or malformed (not a kmsfs file?)");
		return -1;
	}
	return read_dek(rk, path, fd, v);
}

static enum rekey_outcome rewrap(struct rekey *rk, struct rekey_file *f)
{
	struct dek_value *old = malloc(sizeof(*old)), *new = malloc(sizeof(*new));
	enum rekey_outcome outcome = REKEY_FAILED;
	struct kc_error err = { 0 };
	struct kmsfs_header hdr;
	int fd = -1, plaintext_used = 0, ret;
	struct stat sb;

	if (!old || !new) {
		rekey_report(rk, f->path, "out of memory");
		goto out;
	}
	fd = open_file(rk, f->path, &sb);
	if (fd < 0)
		goto out;
	if (sb.st_size == 0) {
		outcome = REKEY_SKIPPED;     /* empty: no header, no data key */
		goto out;
	}
	ret = read_keys(rk, f->path, fd, &hdr, old);
	if (ret != 0) {
		outcome = ret > 0 ? REKEY_SKIPPED : REKEY_FAILED;
		goto out;
	}
	if (!strcmp(old->key_arn, rk->new_vol.key_id)) {
		outcome = REKEY_SKIPPED;
		goto out;
	}
	ret = kmsfs_keyring_rewrap(rk->old_kr, rk->new_kr, &hdr, f->path, old->bytes, old->len,
				   new->bytes, &new->len, &plaintext_used, &err);
	if (ret < 0) {
		outcome = key_failure(rk, f->path, "data key rewrap failed", ret, &err);
		goto out;
	}
	if (plaintext_used)
		__atomic_add_fetch(&rk->plaintext_keys, 1, __ATOMIC_RELAXED);
	if (fsetxattr(fd, KMSFS_DEK_XATTR, new->bytes, new->len, XATTR_REPLACE) < 0) {
		rekey_report(rk, f->path, "cannot replace user.kmsfs.dek: %s", strerror(errno));
		goto out;
	}
	outcome = REKEY_DONE;
out:
	if (fd >= 0)
		close(fd);
	free(old);
	free(new);
	return outcome;
}

/* The file's data key, unwrapped under the old key, as a filekey. */
static struct kmsfs_filekey *unwrap_old(struct rekey *rk, const char *path,
					const struct kmsfs_header *hdr, const struct dek_value *v)
{
	struct kc_error err = { 0 };
	struct kmsfs_filekey *fk;
	int ret;

	fk = kmsfs_keyring_filekey(rk->old_kr, hdr, path, v->bytes, v->len, &ret, &err);
	if (!fk)
		key_failure(rk, path, "data key unwrap failed", ret, &err);
	return fk;
}

/* A fresh data key under the new key for a new header (into hdr): its xattr value in out. */
static struct kmsfs_filekey *fresh_key(struct rekey *rk, const char *path,
				       struct kmsfs_header *hdr, struct dek_value *out)
{
	struct kc_error err = { 0 };
	struct kmsfs_filekey *fk;
	int ret;

	fk = kmsfs_keyring_new_filekey(rk->new_kr, path, out->bytes, &out->len, &ret, &err);
	if (!fk)
		key_failure(rk, path, "new data key refused", ret, &err);
	else
		*hdr = *kmsfs_filekey_header(fk);
	return fk;
}

/* Every xattr but kmsfs's own (the new file has its own data key). */
static int copy_xattrs(struct rekey *rk, const char *path, int src_fd, int dst_fd)
{
	ssize_t list_len = flistxattr(src_fd, NULL, 0);
	char *names = NULL, *value = NULL;
	int ret = -1;

	if (list_len < 0) {
		rekey_report(rk, path, "cannot list xattrs: %s", strerror(errno));
		return -1;
	}
	names = malloc((size_t)list_len + 1);
	if (!names || (list_len = flistxattr(src_fd, names, (size_t)list_len)) < 0) {
		rekey_report(rk, path, "cannot list xattrs: %s", names ? strerror(errno) :
			     "out of memory");
		goto out;
	}
	for (char *name = names; name < names + list_len; name += strlen(name) + 1) {
		ssize_t len;

		if (!strncmp(name, KMSFS_XATTR_PREFIX, strlen(KMSFS_XATTR_PREFIX)))
			continue;
		len = fgetxattr(src_fd, name, NULL, 0);
		free(value);
		value = len >= 0 ? malloc((size_t)len + 1) : NULL;
		if (len < 0 || !value || (len = fgetxattr(src_fd, name, value, (size_t)len)) < 0 ||
		    fsetxattr(dst_fd, name, value, (size_t)len, 0) < 0) {
			rekey_report(rk, path, "cannot copy xattr %s: %s", name,
				     len >= 0 && !value ? "out of memory" : strerror(errno));
			goto out;
		}
	}
	ret = 0;
out:
	free(value);
	free(names);
	return ret;
}

/* Owner first (it clears set-id bits and capabilities), then xattrs, mode, times. */
static int copy_metadata(struct rekey *rk, const char *path, int src_fd, int dst_fd,
			 const struct stat *sb)
{
	struct timespec times[2] = { sb->st_atim, sb->st_mtim };

	if (fchown(dst_fd, sb->st_uid, sb->st_gid) < 0) {
		rekey_report(rk, path, "cannot give the new file its owner: %s", strerror(errno));
		return -1;
	}
	if (copy_xattrs(rk, path, src_fd, dst_fd) != 0)
		return -1;
	if (fchmod(dst_fd, sb->st_mode & 07777) < 0 || futimens(dst_fd, times) < 0) {
		rekey_report(rk, path, "cannot give the new file its mode and times: %s",
			     strerror(errno));
		return -1;
	}
	return 0;
}

/* The new file, complete and on disk, in the staging directory as name. */
static int write_staged(struct rekey *rk, struct rekey_file *f, int src_fd,
			const struct stat *sb, const struct kmsfs_filekey *src_fk,
			const struct kmsfs_filekey *dst_fk, const struct dek_value *value,
			const char *name, uint64_t *bytes)
{
	int fd = openat(rk->stage_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	uint64_t bad_block = 0;
	int ret;

	if (fd < 0) {
		rekey_report(rk, f->path, "cannot create %s/%s: %s", REKEY_STAGING_NAME, name,
			     strerror(errno));
		return -1;
	}
	/* The data key first, as a mount does: a header without one looks like a bad copy. */
	if (fsetxattr(fd, KMSFS_DEK_XATTR, value->bytes, value->len, XATTR_CREATE) < 0) {
		rekey_report(rk, f->path, "cannot set user.kmsfs.dek: %s", strerror(errno));
		goto fail;
	}
	ret = kmsfs_backing_reencrypt(src_fd, src_fk, fd, dst_fk, &bad_block, bytes);
	if (ret == -EIO) {
		rekey_report(rk, f->path, "block %llu fails authentication (damaged or tampered "
			     "with; see kmsfs fsck)", (unsigned long long)bad_block);
		goto fail;
	}
	if (ret < 0) {
		rekey_report(rk, f->path, "re-encryption failed: %s", strerror(-ret));
		goto fail;
	}
	if (copy_metadata(rk, f->path, src_fd, fd, sb) != 0)
		goto fail;
	if (fsync(fd) < 0) {
		rekey_report(rk, f->path, "fsync of the new file: %s", strerror(errno));
		goto fail;
	}
	close(fd);
	return 0;
fail:
	close(fd);
	unlinkat(rk->stage_fd, name, 0);
	return -1;
}

/* Make name another link to target: a staging link renamed over it. 0 or -errno. */
static int link_over(struct rekey *rk, const char *target, const char *name)
{
	unsigned long long seq = __atomic_add_fetch(&rk->temp_seq, 1, __ATOMIC_RELAXED);
	char temp[64];
	int ret = 0;

	snprintf(temp, sizeof(temp), "link-%llu", seq);
	if (linkat(rk->root_fd, target, rk->stage_fd, temp, 0) < 0)
		return -errno;
	if (renameat(rk->stage_fd, temp, rk->root_fd, name) < 0)
		ret = -errno;
	/* rename() of two names of one inode does nothing and leaves temp behind. */
	unlinkat(rk->stage_fd, temp, 0);
	return ret;
}

/* The rest of a hard-linked file's names onto the inode at target. */
static enum rekey_outcome relink_all(struct rekey *rk, const char *target, char **names,
				     size_t count)
{
	enum rekey_outcome outcome = REKEY_DONE;

	for (size_t i = 0; i < count; i++) {
		int ret = link_over(rk, target, names[i]);

		if (ret < 0) {
			rekey_report(rk, names[i], "cannot make it a link to the re-encrypted %s "
				     "again: %s (it is still a complete file under its old data "
				     "key; run kmsfs rekey again)", target, strerror(-ret));
			outcome = REKEY_FAILED;
		}
	}
	return outcome;
}

/* Record the step, swap the new file in, then move the other names. */
static enum rekey_outcome swap_in(struct rekey *rk, struct rekey_file *f, const char *name,
				  const uint8_t *new_id, const uint8_t *old_id)
{
	int ret = rekey_state_record(&rk->state, new_id, old_id);

	if (ret < 0) {
		rekey_report(rk, f->path, "cannot record progress in %s: %s", REKEY_STATE_NAME,
			     strerror(-ret));
		unlinkat(rk->stage_fd, name, 0);
		return REKEY_FAILED;
	}
	if (renameat(rk->stage_fd, name, rk->root_fd, f->path) < 0) {
		rekey_report(rk, f->path, "cannot replace it with the re-encrypted file: %s",
			     strerror(errno));
		unlinkat(rk->stage_fd, name, 0);
		return REKEY_FAILED;
	}
	return relink_all(rk, f->path, f->links, f->link_count);
}

static enum rekey_outcome reencrypt(struct rekey *rk, struct rekey_file *f, uint64_t *bytes)
{
	struct dek_value *old = malloc(sizeof(*old)), *new = malloc(sizeof(*new));
	struct kmsfs_filekey *src_fk = NULL, *dst_fk = NULL;
	enum rekey_outcome outcome = REKEY_FAILED;
	struct kmsfs_header hdr, new_hdr;
	char name[2 * KMSFS_FILE_ID_LEN + 1];
	int fd = -1, ret;
	struct stat sb;

	if (!old || !new) {
		rekey_report(rk, f->path, "out of memory");
		goto out;
	}
	fd = open_file(rk, f->path, &sb);
	if (fd < 0)
		goto out;
	if (sb.st_size == 0) {
		outcome = REKEY_SKIPPED;
		goto out;
	}
	ret = read_keys(rk, f->path, fd, &hdr, old);
	if (ret != 0) {
		outcome = ret > 0 ? REKEY_SKIPPED : REKEY_FAILED;
		goto out;
	}
	if (!strcmp(old->key_arn, rk->new_vol.key_id) &&
	    rekey_state_is_done(&rk->state, hdr.file_id)) {
		outcome = REKEY_SKIPPED;
		goto out;
	}
	src_fk = unwrap_old(rk, f->path, &hdr, old);
	dst_fk = src_fk ? fresh_key(rk, f->path, &new_hdr, new) : NULL;
	if (!dst_fk)
		goto out;
	kmsfs_file_id_hex(&new_hdr, name);
	if (write_staged(rk, f, fd, &sb, src_fk, dst_fk, new, name, bytes) != 0)
		goto out;
	outcome = swap_in(rk, f, name, new_hdr.file_id, hdr.file_id);
out:
	kmsfs_filekey_free(src_fk);
	kmsfs_filekey_free(dst_fk);
	if (fd >= 0)
		close(fd);
	free(old);
	free(new);
	return outcome;
}

enum rekey_outcome rekey_file(struct rekey *rk, struct rekey_file *f, uint64_t *bytes)
{
	if (!rk->reencrypt)
		return rewrap(rk, f);
	if (f->relink_to >= 0) {
		enum rekey_outcome first = relink_all(rk, rk->tree.files[f->relink_to].path,
						      &f->path, 1);
		enum rekey_outcome rest = relink_all(rk, rk->tree.files[f->relink_to].path,
						     f->links, f->link_count);

		return first == REKEY_DONE ? rest : first;
	}
	return reencrypt(rk, f, bytes);
}
