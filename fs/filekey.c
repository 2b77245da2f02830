/*
 * filekey.c - a file's data key: fresh on create, unwrapped on open.
 *
 * Every regular file gets its own 256-bit data key from GenerateDataKey,
 * with the encryption context {"kmsfs:volume": <volume id>, "kmsfs:file":
 * <file id>} (DESIGN section 2). The wrapped key lives in the backing
 * file's user.kmsfs.dek xattr, version 1 (dekfmt.c).
 * Because the file ID is in the context, a wrapped key copied onto another
 * file fails to unwrap (InvalidCiphertextException), and because the file
 * ID is also in every block's AAD, blocks cannot move between files.
 *
 * In a bucket_key volume new files get version 2 instead: a random data
 * key sealed locally under a bucket key (bucketkey.c). Opening goes by the
 * version byte, so version-1 files of a volume switched to bucket keys
 * (or copied into one) still open.
 *
 * The unwrap is done as the caller's principal; the key service decides.
 * A successful unwrap is remembered per (inode, uid) for key_cache_ttl
 * seconds from when the key service said yes - that bound is the
 * revocation latency.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fs_internal.h"

/*
 * Map a key-service refusal to what the application sees (S3-like): not
 * allowed, unsigned or badly signed (a uid without credentials, or with
 * wrong ones), or a key that cannot be used are EACCES; anything else -
 * an unreachable service, a damaged blob - is EIO.
 */
int kmsfs_errno_for_status(enum kc_status status)
{
	switch (status) {
	case KC_OK:
		return 0;
	case KC_ACCESS_DENIED:
	case KC_MISSING_AUTH:
	case KC_UNRECOGNIZED_CLIENT:
	case KC_INVALID_SIGNATURE:
	case KC_INCOMPLETE_SIGNATURE:
	case KC_DISABLED:
	case KC_NOT_FOUND:
	case KC_INVALID_STATE:
		return -EACCES;
	default:
		return -EIO;
	}
}

/* An integrity failure that has no key-service call behind it. */
void kfs_audit_integrity(const char *path, const char *what, int64_t block, const char *reason)
{
	char principal[KFS_PRINCIPAL_MAX];
	struct kc_caller caller;
	struct kc_error err = { .status = KC_INVALID_CIPHERTEXT };
	struct kc_audit_event ev = {
		.event_source = "kmsfs",
		.event_name = what,
		.caller = &caller,
		.key_id = kfs->vol.key_id,
		.path = path,
		.block_index = block,
		.err = &err,
	};

	kfs_caller_current(&caller, principal);
	snprintf(err.type, sizeof(err.type), "%s", kc_status_type(KC_INVALID_CIPHERTEXT));
	snprintf(err.message, sizeof(err.message), "%s", reason);
	syslog(LOG_WARNING, "%s: %s", path, reason);
	if (kfs->audit)
		kc_audit_record(kfs->audit, &ev);
}

/* The xattr as stored, whatever its version. -ENODATA when absent. */
static int load_wrapped_dek(int fd, struct kfs_wrapped_dek *wrapped)
{
	ssize_t len = fgetxattr(fd, KMSFS_DEK_XATTR, wrapped->value, sizeof(wrapped->value));

	if (len < 0)
		return errno == ENODATA ? -ENODATA : -errno;
	wrapped->len = (size_t)len;
	return len > 0 ? 0 : -EIO;
}

/* Version 1: a data key of the file's own from GenerateDataKey, as the caller. */
static int wrap_v1(const struct kmsfs_header *hdr, const char *path,
		   const struct kc_caller *caller, uint8_t *dek, struct kfs_wrapped_dek *out)
{
	char file_id[2 * KMSFS_FILE_ID_LEN + 1];
	char key_arn[KC_ARN_MAX] = "";
	struct kc_context ctx;
	struct kc_error err = { 0 };
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	enum kc_status status;
	int ret;

	kmsfs_file_id_hex(hdr, file_id);
	kfs_dek_context(&ctx, kfs->vol.id, file_id);
	out->authorized_at = time(NULL);
	status = keyclient_generate_data_key_file(kfs->kc, kfs->vol.key_id, &ctx, caller, path,
						  dek, KMSFS_DEK_LEN, &blob, &blob_len, key_arn, &err);
	if (status != KC_OK) {
		syslog(LOG_NOTICE, "%s: data key generation refused: %s (%s)",
		       path, err.message, err.type);
		ret = kmsfs_errno_for_status(status);
		goto out;
	}
	ret = kfs_dek_encode_v1(key_arn[0] ? key_arn : kfs->vol.key_id, blob, blob_len,
				out->value, &out->len);
out:
	free(blob);
	return ret;
}

/* Version 1: Decrypt of the file's own CiphertextBlob, as the caller. */
static int unwrap_v1(const struct kmsfs_header *hdr, const char *path,
		     const struct kc_caller *caller, struct kfs_wrapped_dek *wrapped, uint8_t *dek)
{
	char used_arn[KC_ARN_MAX] = "";
	char file_id[2 * KMSFS_FILE_ID_LEN + 1];
	struct kfs_dek_fields fields;
	size_t dek_len = 0;
	struct kc_context ctx;
	struct kc_error err = { 0 };
	enum kc_status status;

	if (kfs_dek_decode_v1(wrapped->value, wrapped->len, &fields) < 0) {
		kfs_audit_integrity(path, "MalformedDataKey", -1,
				    "user.kmsfs.dek xattr is malformed");
		return -EIO;
	}
	kmsfs_file_id_hex(hdr, file_id);
	kfs_dek_context(&ctx, kfs->vol.id, file_id);
	wrapped->authorized_at = time(NULL);
	/* Name the key the xattr says wrapped it, as AWS recommends for Decrypt. */
	status = keyclient_decrypt_file(kfs->kc, fields.key_arn, fields.blob, fields.blob_len,
					&ctx, caller, path, dek, KMSFS_DEK_LEN, &dek_len,
					used_arn, &err);
	if (status != KC_OK) {
		syslog(LOG_NOTICE, "%s: data key unwrap refused: %s (%s)",
		       path, err.message, err.type);
		return kmsfs_errno_for_status(status);
	}
	return dek_len == KMSFS_DEK_LEN ? 0 : -EIO;
}

static void grant_record(struct kfs_node *node, uid_t uid, time_t authorized_at)
{
	unsigned slot = 0;

	for (unsigned i = 0; i < node->grant_count; i++) {
		if (node->grants[i].uid == uid) {
			node->grants[i].granted_at = authorized_at;
			return;
		}
		if (node->grants[i].granted_at < node->grants[slot].granted_at)
			slot = i;
	}
	if (node->grant_count < KFS_MAX_GRANTS)
		slot = node->grant_count++;
	node->grants[slot].uid = uid;
	node->grants[slot].granted_at = authorized_at;
}

static int grant_valid(const struct kfs_node *node, uid_t uid)
{
	time_t now = time(NULL);

	if (kfs->key_cache_ttl <= 0)
		return 0;
	for (unsigned i = 0; i < node->grant_count; i++)
		if (node->grants[i].uid == uid &&
		    now - node->grants[i].granted_at < kfs->key_cache_ttl)
			return 1;
	return 0;
}

/*
 * Give a new (or empty, keyless) backing file a header and a fresh data key.
 * The xattr goes first: a file with a header but no xattr would look like a
 * copy that lost its xattrs.
 */
int kfs_key_create(struct kfs_node *node, int fd, const char *path,
		   const struct kc_caller *caller)
{
	struct kmsfs_header hdr;
	uint8_t hdr_bytes[KMSFS_HEADER_LEN];
	struct kfs_wrapped_dek wrapped;
	uint8_t *dek = NULL;
	ssize_t put;
	int ret;

	kmsfs_header_new(&hdr, kfs->vol.cipher);
	kmsfs_header_encode(&hdr, hdr_bytes);
	dek = kmsfs_secure_alloc(KMSFS_DEK_LEN);
	if (!dek)
		return -ENOMEM;
	if (kfs->vol.bucket_key)
		ret = kfs_bucket_wrap(&hdr, path, caller, dek, &wrapped);
	else
		ret = wrap_v1(&hdr, path, caller, dek, &wrapped);
	if (ret < 0)
		goto out;
	if (fsetxattr(fd, KMSFS_DEK_XATTR, wrapped.value, wrapped.len, 0) < 0) {
		ret = -errno;
		goto out;
	}
	put = pwrite(fd, hdr_bytes, sizeof(hdr_bytes), 0);
	if (put != (ssize_t)sizeof(hdr_bytes)) {
		ret = put < 0 ? -errno : -EIO;
		goto out;
	}
	kmsfs_filekey_free(node->fk);
	node->fk = kmsfs_filekey_new(&hdr, dek);
	if (!node->fk) {
		ret = -ENOMEM;
		goto out;
	}
	node->grant_count = 0;
	grant_record(node, caller->uid, wrapped.authorized_at);
	ret = 0;
out:
	kmsfs_secure_free(dek);
	return ret;
}

/* Unwrap the file's data key as the caller. Caller holds node->key_lock. */
static int key_unwrap(struct kfs_node *node, int fd, const char *path,
		      const struct kmsfs_header *hdr, const struct kc_caller *caller)
{
	struct kfs_wrapped_dek wrapped;
	uint8_t *dek = NULL;
	int ret;

	ret = load_wrapped_dek(fd, &wrapped);
	if (ret == -ENODATA) {
		kfs_audit_integrity(path, "MissingDataKey", -1,
			"file has a kmsfs header but no user.kmsfs.dek xattr "
			"(copied without xattrs? use cp -a, rsync -X or kmsfs snapshot copy)");
		return -EIO;
	}
	if (ret < 0) {
		kfs_audit_integrity(path, "MalformedDataKey", -1,
				    "user.kmsfs.dek xattr is malformed");
		return -EIO;
	}
	dek = kmsfs_secure_alloc(KMSFS_DEK_LEN);
	if (!dek)
		return -ENOMEM;
	if (wrapped.value[0] == KFS_DEK_XATTR_BUCKET)
		ret = kfs_bucket_unwrap(hdr, path, caller, &wrapped, dek);
	else
		ret = unwrap_v1(hdr, path, caller, &wrapped, dek);
	if (ret < 0)
		goto out;
	if (!node->fk) {
		node->fk = kmsfs_filekey_new(hdr, dek);
		if (!node->fk) {
			ret = -ENOMEM;
			goto out;
		}
	}
	grant_record(node, caller->uid, wrapped.authorized_at);
	ret = 0;
out:
	kmsfs_secure_free(dek);
	return ret;
}

/* Header on disk still the one our cached key belongs to? (inode reuse) */
static int cached_key_matches(const struct kfs_node *node, const struct kmsfs_header *hdr)
{
	const struct kmsfs_header *cached = kmsfs_filekey_header(node->fk);

	return memcmp(cached->file_id, hdr->file_id, KMSFS_FILE_ID_LEN) == 0 &&
	       cached->cipher == hdr->cipher;
}

/*
 * Make sure node->fk holds the file's data key and the caller may use it.
 * A backing file of size 0 has no header yet: it is an empty file, and
 * gets its key on the first writable open.
 */
int kfs_key_ensure(struct kfs_node *node, int fd, const char *path,
		   const struct kc_caller *caller, int writable)
{
	uint8_t hdr_bytes[KMSFS_HEADER_LEN];
	struct kmsfs_header hdr;
	ssize_t got;
	int ret = 0;

	pthread_mutex_lock(&node->key_lock);
	got = pread(fd, hdr_bytes, sizeof(hdr_bytes), 0);
	if (got < 0) {
		ret = -errno;
		goto out;
	}
	if (got == 0) {
		if (writable)
			ret = kfs_key_create(node, fd, path, caller);
		goto out;
	}
	if (kmsfs_header_decode(hdr_bytes, (size_t)got, &hdr) < 0) {
		kfs_audit_integrity(path, "HeaderAuthenticationFailure", -1,
				    "file header is truncated or malformed");
		ret = -EIO;
		goto out;
	}
	if (node->fk && !cached_key_matches(node, &hdr)) {
		kmsfs_filekey_free(node->fk);
		node->fk = NULL;
		node->grant_count = 0;
	}
	if (node->fk && grant_valid(node, caller->uid))
		goto out;
	ret = key_unwrap(node, fd, path, &hdr, caller);
out:
	pthread_mutex_unlock(&node->key_lock);
	return ret;
}
