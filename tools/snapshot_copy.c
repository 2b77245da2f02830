/*
 * snapshot_copy.c - kmsfs snapshot copy: the entries themselves.
 *
 * Each file, symlink or special file is made whole in the staging
 * directory - contents, data key, owner, mode, xattrs, times, fsync - and
 * only then renamed to its final path (RENAME_NOREPLACE), so a final path
 * that exists is finished: a re-run after a crash skips it and never
 * duplicates or half-writes a file.
 *
 * A file's contents move one of two ways:
 *   rewrap     (default) the ciphertext is copied as it is (holes stay
 *              holes) and its wrapped data key is rewrapped for the
 *              destination volume and key: by ReEncrypt in the key service
 *              when both volumes use one service, so the plaintext data
 *              key never reaches this process; else it is unwrapped from
 *              the source and wrapped by the destination here, in locked
 *              memory (kmsfs_keyring_rewrap says which happened);
 *   reencrypt  (--reencrypt) a new header and file id, a fresh data key,
 *              and every block decrypted and sealed again.
 * After the workers: hard links (link(2) to the first name's copy),
 * directory attributes deepest first (making entries changes a
 * directory's mtime), fsync of every directory, then --verify.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "snapshot.h"

/* ---- extended attributes ---- */

static ssize_t list_names(int fd, const char *path, char **out)
{
	ssize_t len;
	char *buf = NULL;

	for (;;) {
		len = fd >= 0 ? flistxattr(fd, NULL, 0) : llistxattr(path, NULL, 0);
		if (len <= 0)
			break;
		free(buf);
		if (!(buf = malloc((size_t)len)))
			return -ENOMEM;
		len = fd >= 0 ? flistxattr(fd, buf, (size_t)len) :
				llistxattr(path, buf, (size_t)len);
		if (len >= 0 || errno != ERANGE)
			break;
	}
	if (len < 0) {
		int err = errno;

		free(buf);
		/* No xattr support where the source lives: there is nothing to copy. */
		return err == ENOTSUP ? 0 : -err;
	}
	*out = buf;
	return len;
}

static ssize_t get_value(int fd, const char *path, const char *name, char **out)
{
	ssize_t len;
	char *buf = NULL;

	for (;;) {
		len = fd >= 0 ? fgetxattr(fd, name, NULL, 0) : lgetxattr(path, name, NULL, 0);
		if (len < 0)
			break;
		free(buf);
		if (!(buf = malloc(len ? (size_t)len : 1)))
			return -ENOMEM;
		len = fd >= 0 ? fgetxattr(fd, name, buf, (size_t)len) :
				lgetxattr(path, name, buf, (size_t)len);
		if (len >= 0 || errno != ERANGE)
			break;
	}
	if (len < 0) {
		int err = errno;

		free(buf);
		return -err;
	}
	*out = buf;
	return len;
}

int snap_copy_xattrs(int src_fd, const char *src_path, int dst_fd, const char *dst_path,
		     char *why, size_t why_len)
{
	char *names = NULL, *value = NULL;
	ssize_t len = list_names(src_fd, src_path, &names), vlen;
	int ret = 0;

	if (len < 0) {
		snprintf(why, why_len, "cannot list its extended attributes: %s",
			 strerror((int)-len));
		return -1;
	}
	for (char *name = names; name < names + len; name += strlen(name) + 1) {
		if (!strncmp(name, KMSFS_XATTR_PREFIX, strlen(KMSFS_XATTR_PREFIX)))
			continue;
		vlen = get_value(src_fd, src_path, name, &value);
		if (vlen == -ENODATA)
			continue;    /* removed meanwhile */
		if (vlen < 0 ||
		    (dst_fd >= 0 ? fsetxattr(dst_fd, name, value, (size_t)vlen, 0) :
				   lsetxattr(dst_path, name, value, (size_t)vlen, 0)) < 0) {
			snprintf(why, why_len, "extended attribute %s: cannot copy: %s", name,
				 strerror(vlen < 0 ? (int)-vlen : errno));
			ret = -1;
		}
		free(value);
		value = NULL;
		if (ret < 0)
			break;
	}
	free(names);
	return ret;
}

/* ---- regular files ---- */

/* The source file's header and wrapped data key. 0, or -1 with why. */
static int read_key_material(int fd, struct kmsfs_header *hdr, uint8_t *wrapped,
			     size_t *wrapped_len, char *why, size_t why_len)
{
	uint8_t raw[KMSFS_HEADER_LEN];
	ssize_t n = pread(fd, raw, sizeof(raw), 0);

	if (n < 0) {
		snprintf(why, why_len, "cannot read: %s", strerror(errno));
		return -1;
	}
	if (kmsfs_header_decode(raw, (size_t)n, hdr) < 0) {
		snprintf(why, why_len, "not a kmsfs file: its header is damaged or missing");
		return -1;
	}
	n = fgetxattr(fd, KMSFS_DEK_XATTR, wrapped, KMSFS_DEK_XATTR_MAX);
	if (n < 0) {
		snprintf(why, why_len, errno == ENODATA ?
			 "no wrapped data key (%s is missing: copied without its xattrs?)" :
			 "cannot read %s: %s", KMSFS_DEK_XATTR, strerror(errno));
		return -1;
	}
	*wrapped_len = (size_t)n;
	return 0;
}

static void key_error(char *why, size_t why_len, const char *what, int ret,
		      const struct kc_error *err)
{
	if (err->type[0])
		snprintf(why, why_len, "%s: %s (%s)", what, err->message, err->type);
	else
		snprintf(why, why_len, "%s: %s", what, strerror(-ret));
}

/* Default mode: the ciphertext as it is, the data key rewrapped for the destination. */
static int rewrap_contents(struct snap *s, struct snap_worker *w, const char *rel, int src,
			   int dst, char *why, size_t why_len)
{
	uint8_t wrapped[KMSFS_DEK_XATTR_MAX], out[KMSFS_DEK_XATTR_MAX];
	size_t wrapped_len, out_len = sizeof(out);
	struct kmsfs_header hdr;
	struct kc_error err = { 0 };
	int plaintext_used = 0, ret;

	if (read_key_material(src, &hdr, wrapped, &wrapped_len, why, why_len) < 0)
		return -1;
	ret = kmsfs_keyring_rewrap(s->src_kr, s->dst_kr, &hdr, rel, wrapped, wrapped_len, out,
				   &out_len, &plaintext_used, &err);
	if (ret < 0) {
		key_error(why, why_len, "cannot rewrap its data key", ret, &err);
		return -1;
	}
	__atomic_add_fetch(plaintext_used ? &s->stats.rewrap_client : &s->stats.rewrap_service, 1,
			   __ATOMIC_RELAXED);
	ret = kmsfs_backing_copy(src, dst, &w->cur_bytes);
	if (ret < 0) {
		snprintf(why, why_len, "cannot copy its contents: %s", strerror(-ret));
		return -1;
	}
	if (fsetxattr(dst, KMSFS_DEK_XATTR, out, out_len, 0) < 0) {
		snprintf(why, why_len, "cannot set %s: %s", KMSFS_DEK_XATTR, strerror(errno));
		return -1;
	}
	return 0;
}

/* The source's data key, unwrapped into locked memory: a file key. NULL with why. */
static struct kmsfs_filekey *source_filekey(struct kmsfs_keyring *kr, const char *rel,
					    const struct kmsfs_header *hdr,
					    const uint8_t *wrapped, size_t wrapped_len,
					    char *why, size_t why_len)
{
	struct kc_error err = { 0 };
	struct kmsfs_filekey *fk;
	int ret;

	fk = kmsfs_keyring_filekey(kr, hdr, rel, wrapped, wrapped_len, &ret, &err);
	if (!fk)
		key_error(why, why_len, "cannot unwrap its data key", ret, &err);
	return fk;
}

/* A fresh data key for a new header in the destination: a file key, and its xattr value. */
static struct kmsfs_filekey *fresh_filekey(struct snap *s, const char *rel,
					   uint8_t *out, size_t *out_len,
					   char *why, size_t why_len)
{
	struct kc_error err = { 0 };
	struct kmsfs_filekey *fk;
	int ret;

	fk = kmsfs_keyring_new_filekey(s->dst_kr, rel, out, out_len, &ret, &err);
	if (!fk)
		key_error(why, why_len, "cannot make a new data key", ret, &err);
	return fk;
}

/* --reencrypt: a new file id and data key, every block sealed again. */
static int reencrypt_contents(struct snap *s, struct snap_worker *w, const char *rel, int src,
			      int dst, char *why, size_t why_len)
{
	uint8_t wrapped[KMSFS_DEK_XATTR_MAX], out[KMSFS_DEK_XATTR_MAX];
	size_t wrapped_len, out_len = sizeof(out);
	struct kmsfs_filekey *src_fk = NULL, *dst_fk = NULL;
	struct kmsfs_header hdr;
	uint64_t bad_block = 0;
	int ret = -1;

	if (read_key_material(src, &hdr, wrapped, &wrapped_len, why, why_len) < 0)
		return -1;
	src_fk = source_filekey(s->src_kr, rel, &hdr, wrapped, wrapped_len, why, why_len);
	if (!src_fk)
		goto out;
	dst_fk = fresh_filekey(s, rel, out, &out_len, why, why_len);
	if (!dst_fk)
		goto out;
	__atomic_add_fetch(&s->stats.keys_fresh, 1, __ATOMIC_RELAXED);
	ret = kmsfs_backing_reencrypt(src, src_fk, dst, dst_fk, &bad_block, &w->cur_bytes);
	if (ret == -EIO)
		snprintf(why, why_len, "block %llu fails authentication (damaged or tampered with)",
			 (unsigned long long)bad_block);
	else if (ret < 0)
		snprintf(why, why_len, "cannot re-encrypt its contents: %s", strerror(-ret));
	else if ((ret = fsetxattr(dst, KMSFS_DEK_XATTR, out, out_len, 0)) < 0)
		snprintf(why, why_len, "cannot set %s: %s", KMSFS_DEK_XATTR, strerror(errno));
out:
	kmsfs_filekey_free(src_fk);
	kmsfs_filekey_free(dst_fk);
	return ret < 0 ? -1 : 0;
}

/*
 * Owner before mode (chown clears set-id bits), xattrs after owner (chown
 * drops security.capability), times last, then fsync.
 */
static int finish_file(int src, int dst, const struct stat *st, char *why, size_t why_len)
{
	struct timespec times[2] = { st->st_atim, st->st_mtim };

	if (fchown(dst, st->st_uid, st->st_gid) < 0) {
		snprintf(why, why_len, "cannot set owner %u:%u: %s", (unsigned)st->st_uid,
			 (unsigned)st->st_gid, strerror(errno));
		return -1;
	}
	if (fchmod(dst, st->st_mode & 07777) < 0) {
		snprintf(why, why_len, "cannot set mode %04o: %s", st->st_mode & 07777,
			 strerror(errno));
		return -1;
	}
	if (snap_copy_xattrs(src, NULL, dst, NULL, why, why_len) < 0)
		return -1;
	if (futimens(dst, times) < 0 || fsync(dst) < 0) {
		snprintf(why, why_len, "cannot write: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Move a finished staging entry to its final path. 0, or -1 with why. */
static int put_in_place(struct snap *s, const char *tmp, const char *rel, char *why,
			size_t why_len)
{
	if (renameat2(s->staging_fd, tmp, s->dst_fd, rel, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno == EEXIST) {
		/* Finished by someone else meanwhile: what is there is complete. */
		unlinkat(s->staging_fd, tmp, 0);
		return 0;
	}
	snprintf(why, why_len, "cannot move into place: %s", strerror(errno));
	return -1;
}

static int copy_regular(struct snap *s, struct snap_worker *w, struct snap_entry *e,
			char *tmp, char *why, size_t why_len)
{
	int src = openat(s->src_fd, e->rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	int dst = -1, ret = -1;
	struct stat st;

	if (src < 0 || fstat(src, &st) < 0) {
		snprintf(why, why_len, "cannot open: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, why_len, "no longer a regular file (the source changed)");
		goto out;
	}
	dst = openat(s->staging_fd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (dst < 0) {
		snprintf(why, why_len, "cannot create its copy in %s: %s", SNAP_STAGING_NAME,
			 strerror(errno));
		goto out;
	}
	/* An empty backing file is an empty file: no header, no data key. */
	if (st.st_size > 0 &&
	    (s->reencrypt ? reencrypt_contents : rewrap_contents)(s, w, e->rel, src, dst, why,
								    why_len) < 0)
		goto out;
	if (finish_file(src, dst, &st, why, why_len) < 0)
		goto out;
	ret = 0;
	if (st.st_size > KMSFS_HEADER_LEN)
		__atomic_add_fetch(&s->stats.bytes_done,
				   kmsfs_plain_size((uint64_t)st.st_size, s->src_vol.cipher),
				   __ATOMIC_RELAXED);
out:
	if (dst >= 0)
		close(dst);
	if (src >= 0)
		close(src);
	return ret;
}

/* ---- symlinks and special files ---- */

static int copy_symlink_target(struct snap *s, const struct snap_entry *e, const char *tmp,
			       char *why, size_t why_len)
{
	size_t cap = (size_t)e->st.st_size + 2;
	char *target = malloc(cap);
	ssize_t n;
	int ret = -1;

	if (!target) {
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	n = readlinkat(s->src_fd, e->rel, target, cap);
	if (n < 0 || (size_t)n >= cap) {
		snprintf(why, why_len, "cannot read the link: %s",
			 n < 0 ? strerror(errno) : "it changed while being read");
		goto out;
	}
	target[n] = '\0';
	if (symlinkat(target, s->staging_fd, tmp) < 0) {
		snprintf(why, why_len, "cannot create the link: %s", strerror(errno));
		goto out;
	}
	ret = 0;
out:
	free(target);
	return ret;
}

/* A symlink, fifo, socket or device: made in staging, attributes set by name. */
static int copy_other(struct snap *s, struct snap_entry *e, const char *tmp, char *why,
		      size_t why_len)
{
	const struct stat *st = &e->st;
	struct timespec times[2] = { st->st_atim, st->st_mtim };
	char src_path[PATH_MAX * 2], dst_path[PATH_MAX * 2];

	if (S_ISLNK(st->st_mode)) {
		if (copy_symlink_target(s, e, tmp, why, why_len) < 0)
			return -1;
	} else if (mknodat(s->staging_fd, tmp, st->st_mode & (S_IFMT | 0700), st->st_rdev) < 0) {
		snprintf(why, why_len, "cannot create: %s", strerror(errno));
		return -1;
	}
	if (fchownat(s->staging_fd, tmp, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0) {
		snprintf(why, why_len, "cannot set owner %u:%u: %s", (unsigned)st->st_uid,
			 (unsigned)st->st_gid, strerror(errno));
		return -1;
	}
	if (!S_ISLNK(st->st_mode) && fchmodat(s->staging_fd, tmp, st->st_mode & 07777, 0) < 0) {
		snprintf(why, why_len, "cannot set mode: %s", strerror(errno));
		return -1;
	}
	snprintf(src_path, sizeof(src_path), "%s/%s", s->src, e->rel);
	snprintf(dst_path, sizeof(dst_path), "%s/%s/%s", s->dst, SNAP_STAGING_NAME, tmp);
	if (snap_copy_xattrs(-1, src_path, -1, dst_path, why, why_len) < 0)
		return -1;
	if (utimensat(s->staging_fd, tmp, times, AT_SYMLINK_NOFOLLOW) < 0) {
		snprintf(why, why_len, "cannot set times: %s", strerror(errno));
		return -1;
	}
	__atomic_add_fetch(S_ISLNK(st->st_mode) ? &s->stats.symlinks : &s->stats.specials, 1,
			   __ATOMIC_RELAXED);
	return 0;
}

/* The worker's job for one file, symlink or special file (a first name). */
static void copy_entry(struct snap *s, struct snap_worker *w, struct snap_entry *e)
{
	char tmp[64], why[1024] = "";
	struct stat there;
	int ret;

	if (fstatat(s->dst_fd, e->rel, &there, AT_SYMLINK_NOFOLLOW) == 0) {
		e->done = 1;    /* finished by an earlier run */
		if (S_ISREG(e->st.st_mode))
			__atomic_add_fetch(&s->stats.files_present, 1, __ATOMIC_RELAXED);
		return;
	}
	snap_staging_name(s, tmp, sizeof(tmp));
	if (S_ISREG(e->st.st_mode))
		ret = copy_regular(s, w, e, tmp, why, sizeof(why));
	else
		ret = copy_other(s, e, tmp, why, sizeof(why));
	if (ret == 0)
		ret = put_in_place(s, tmp, e->rel, why, sizeof(why));
	if (ret < 0) {
		unlinkat(s->staging_fd, tmp, 0);
		e->failed = 1;
		snap_fail(s, e->rel, "%s", why);
		return;
	}
	e->done = 1;
	if (S_ISREG(e->st.st_mode))
		__atomic_add_fetch(&s->stats.files_done, 1, __ATOMIC_RELAXED);
}

/* ---- after the workers ---- */

static int exists_in_dest(struct snap *s, const char *rel)
{
	struct stat st;

	return fstatat(s->dst_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/*
 * On a resume the name copied first may not be the walk's first name (the
 * source changed, or the copy stopped while linking): link to whichever
 * name of the file is already there.
 */
static void adopt_existing_primaries(struct snap *s)
{
	for (size_t i = 0; i < s->count; i++) {
		struct snap_entry *e = &s->entries[i];
		size_t old = e->primary;

		if (old == i || exists_in_dest(s, s->entries[old].rel) ||
		    !exists_in_dest(s, e->rel))
			continue;
		for (size_t j = 0; j < s->count; j++)
			if (s->entries[j].primary == old)
				s->entries[j].primary = i;
	}
}

static void link_names(struct snap *s)
{
	for (size_t i = 0; i < s->count; i++) {
		struct snap_entry *e = &s->entries[i], *first = &s->entries[e->primary];

		if (e->primary == i || first->failed)
			continue;
		if (linkat(s->dst_fd, first->rel, s->dst_fd, e->rel, 0) < 0 && errno != EEXIST) {
			e->failed = 1;
			snap_fail(s, e->rel, "cannot link to %s: %s", first->rel, strerror(errno));
			continue;
		}
		e->done = 1;
		s->stats.links++;
	}
}

/* A directory's own mode, owner, times and xattrs, from src_fd to dst_fd (both open). */
static int dir_attrs(int src_fd, int dst_fd, const struct stat *st, char *why, size_t why_len)
{
	struct timespec times[2] = { st->st_atim, st->st_mtim };

	if (fchown(dst_fd, st->st_uid, st->st_gid) < 0 || fchmod(dst_fd, st->st_mode & 07777) < 0) {
		snprintf(why, why_len, "cannot set owner and mode: %s", strerror(errno));
		return -1;
	}
	if (snap_copy_xattrs(src_fd, NULL, dst_fd, NULL, why, why_len) < 0)
		return -1;
	if (futimens(dst_fd, times) < 0 || fsync(dst_fd) < 0) {
		snprintf(why, why_len, "cannot set times: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void apply_dir(struct snap *s, struct snap_entry *e)
{
	int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int src = openat(s->src_fd, e->rel, flags), dst = openat(s->dst_fd, e->rel, flags);
	char why[1024];

	if (src < 0 || dst < 0)
		snap_fail(s, e->rel, "cannot open the directory: %s", strerror(errno));
	else if (dir_attrs(src, dst, &e->st, why, sizeof(why)) < 0)
		snap_fail(s, e->rel, "%s", why);
	else
		s->stats.dirs++;
	if (src >= 0)
		close(src);
	if (dst >= 0)
		close(dst);
}

static const struct snap *depth_ctx;

static int deepest_first(const void *a, const void *b)
{
	unsigned x = depth_ctx->entries[*(const size_t *)a].depth;
	unsigned y = depth_ctx->entries[*(const size_t *)b].depth;

	return x == y ? 0 : x > y ? -1 : 1;
}

static int apply_dir_attrs(struct snap *s, size_t *dirs)
{
	size_t n = 0;

	for (size_t i = 0; i < s->count; i++)
		if (S_ISDIR(s->entries[i].st.st_mode) && !s->entries[i].failed)
			dirs[n++] = i;
	depth_ctx = s;
	qsort(dirs, n, sizeof(*dirs), deepest_first);
	for (size_t i = 0; i < n; i++)
		apply_dir(s, &s->entries[dirs[i]]);
	return 0;
}

int snap_copy(struct snap *s)
{
	size_t *items = malloc((s->count ? s->count : 1) * sizeof(*items)), n = 0;

	if (!items)
		return cli_error("snapshot: out of memory");
	if (s->resumed)
		adopt_existing_primaries(s);
	for (size_t i = 0; i < s->count; i++) {
		struct snap_entry *e = &s->entries[i];

		if (S_ISREG(e->st.st_mode) && e->primary == i)
			s->stats.files_total++;
		if (!S_ISDIR(e->st.st_mode) && e->primary == i && !e->failed)
			items[n++] = i;
	}
	snap_pool_run(s, items, n, "copying", copy_entry);
	link_names(s);
	apply_dir_attrs(s, items);
	free(items);
	return 0;
}

/* ---- --verify ---- */

/*
 * SHA-256 of a file's plaintext through kr. *empty: an empty backing file
 * (no header, nothing to hash). 0, or -1 with why.
 */
static int plain_hash(struct kmsfs_keyring *kr, int dir_fd, const char *rel, uint8_t out[32],
		      int *empty, uint64_t *bytes, char *why, size_t why_len)
{
	uint8_t wrapped[KMSFS_DEK_XATTR_MAX];
	size_t wrapped_len;
	struct kmsfs_filekey *fk = NULL;
	struct kmsfs_header hdr;
	uint64_t bad_block = 0;
	struct stat st;
	int fd = openat(dir_fd, rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), ret = -1;

	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(why, why_len, "cannot open: %s", strerror(errno));
		goto out;
	}
	*empty = st.st_size == 0;
	if (*empty) {
		ret = 0;
		goto out;
	}
	if (read_key_material(fd, &hdr, wrapped, &wrapped_len, why, why_len) < 0)
		goto out;
	fk = source_filekey(kr, rel, &hdr, wrapped, wrapped_len, why, why_len);
	if (!fk)
		goto out;
	ret = kmsfs_backing_hash(fd, fk, out, &bad_block, bytes);
	if (ret == -EIO)
		snprintf(why, why_len, "block %llu fails authentication",
			 (unsigned long long)bad_block);
	else if (ret < 0)
		snprintf(why, why_len, "cannot read: %s", strerror(-ret));
out:
	kmsfs_filekey_free(fk);
	if (fd >= 0)
		close(fd);
	return ret < 0 ? -1 : 0;
}

/* A copy that does not match is removed, every name of it, so a re-run copies it anew. */
static void drop_copy(struct snap *s, const struct snap_entry *bad)
{
	size_t idx = (size_t)(bad - s->entries);

	for (size_t i = 0; i < s->count; i++)
		if (s->entries[i].primary == idx && !S_ISDIR(s->entries[i].st.st_mode))
			unlinkat(s->dst_fd, s->entries[i].rel, 0);
}

static void verify_entry(struct snap *s, struct snap_worker *w, struct snap_entry *e)
{
	uint8_t src_hash[32], dst_hash[32];
	int src_empty = 0, dst_empty = 0;
	char why[1024];

	if (plain_hash(s->src_kr, s->src_fd, e->rel, src_hash, &src_empty, NULL, why,
		       sizeof(why)) < 0) {
		snap_fail(s, e->rel, "verify: the source: %s", why);
		return;
	}
	if (plain_hash(s->dst_kr, s->dst_fd, e->rel, dst_hash, &dst_empty, &w->cur_bytes, why,
		       sizeof(why)) < 0) {
		snap_fail(s, e->rel, "verify: the copy: %s", why);
		return;
	}
	if (src_empty != dst_empty || (!src_empty && memcmp(src_hash, dst_hash, 32))) {
		drop_copy(s, e);
		snap_fail(s, e->rel, "verify: the copy's contents differ from the source's "
			  "(removed it: run the copy again)");
		return;
	}
	__atomic_add_fetch(&s->stats.verified, 1, __ATOMIC_RELAXED);
}

int snap_verify(struct snap *s)
{
	size_t *items = malloc((s->count ? s->count : 1) * sizeof(*items)), n = 0;

	if (!items)
		return cli_error("snapshot: out of memory");
	for (size_t i = 0; i < s->count; i++) {
		struct snap_entry *e = &s->entries[i];

		if (S_ISREG(e->st.st_mode) && e->primary == i && e->done && !e->failed)
			items[n++] = i;
	}
	snap_pool_run(s, items, n, "verifying", verify_entry);
	free(items);
	return 0;
}

/* The volume root's own attributes, once nothing more is made or removed in it. */
int snap_root_attrs(struct snap *s)
{
	struct stat st;
	char why[1024];

	if (fstat(s->src_fd, &st) < 0)
		return cli_error("snapshot: %s: %s", s->src, strerror(errno));
	if (dir_attrs(s->src_fd, s->dst_fd, &st, why, sizeof(why)) < 0)
		return cli_error("snapshot: %s: %s", s->dst, why);
	return 0;
}
