/*
 * keyring.c - a volume's data keys without a mount: what kmsfs snapshot
 * copy, rekey and fsck use to unwrap, wrap and rewrap user.kmsfs.dek.
 *
 * The on-disk rules are the mount's (dekfmt.c): version 1 is a data key
 * from the key service bound to {"kmsfs:volume": id, "kmsfs:file": fid};
 * version 2 is a data key sealed locally under a bucket key whose seal
 * binds the volume id and file id. What differs from the mount is the
 * caller - one user running a tool over a whole tree - so bucket keys are
 * simply kept for the keyring's life (one key-service call per bucket key
 * instead of one per file), not per principal with a TTL.
 *
 * Rewrapping prefers the key service's ReEncrypt, so the plaintext data
 * key never reaches this process (DESIGN section 7): for version 1 always
 * when source and destination share a key service (it stays version 1, in
 * a bucket-key volume too, as the mount allows); for version 2 when the
 * volume stays the same (rekey), by ReEncrypt of the bucket key itself -
 * the seal stays valid because the bucket key's plaintext does not change.
 * A version-2 file moving to another volume must be resealed (its AAD
 * names the old volume), and a file moving to another key service can only
 * be unwrapped here and wrapped there; both are reported to the caller.
 *
 * One lock per keyring guards the bucket list and is held across the
 * key-service call that fills a miss, so each bucket key is asked for
 * once however many workers want it. Entries are never removed before
 * kmsfs_keyring_free, so a pointer to one stays valid without the lock.
 */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_internal.h"

#define BLOB_HASH_LEN crypto_hash_sha256_BYTES

enum bucket_kind {
	BUCKET_OPEN,      /* a bucket key from Decrypt of a file's blob: opens its files */
	BUCKET_CREATE,    /* this volume's own bucket key from GenerateDataKey: seals new ones */
	BUCKET_REWRAP,    /* a blob ReEncrypted to this keyring's key (no plaintext) */
};

struct ring_bucket {
	enum bucket_kind kind;
	uint8_t blob_hash[BLOB_HASH_LEN];  /* OPEN, REWRAP: the blob a file carries */
	uint8_t *key;                      /* OPEN, CREATE: plaintext bucket key, secure memory */
	uint8_t *blob;                     /* CREATE: its blob; REWRAP: the new blob */
	size_t blob_len;
	char key_arn[KC_ARN_MAX];          /* the key that wraps blob (or the file's blob) */
	struct ring_bucket *next;
};

struct kmsfs_keyring {
	struct kmsfs_volume vol;
	struct keyclient *kc;
	struct kc_caller caller;
	char principal[KMSFS_PRINCIPAL_NAME_MAX];
	pthread_mutex_t lock;
	struct ring_bucket *buckets;
};

struct kmsfs_keyring *kmsfs_keyring_new(const struct kmsfs_volume *vol, struct keyclient *kc,
					const struct kc_caller *caller)
{
	struct kmsfs_keyring *kr = calloc(1, sizeof(*kr));

	if (!kr)
		return NULL;
	kr->vol = *vol;
	kr->kc = kc;
	kr->caller = *caller;
	if (caller->principal) {
		snprintf(kr->principal, sizeof(kr->principal), "%s", caller->principal);
		kr->caller.principal = kr->principal;
	}
	pthread_mutex_init(&kr->lock, NULL);
	return kr;
}

static void bucket_free(struct ring_bucket *b)
{
	kmsfs_secure_free(b->key);
	free(b->blob);
	free(b);
}

void kmsfs_keyring_free(struct kmsfs_keyring *kr)
{
	if (!kr)
		return;
	while (kr->buckets) {
		struct ring_bucket *b = kr->buckets;

		kr->buckets = b->next;
		bucket_free(b);
	}
	pthread_mutex_destroy(&kr->lock);
	free(kr);
}

const struct kmsfs_volume *kmsfs_keyring_volume(const struct kmsfs_keyring *kr)
{
	return &kr->vol;
}

/* Fill err and return the errno a tool reports for it (the mount's mapping). */
static int failed(struct kc_error *err, enum kc_status status, const char *what)
{
	kc_fail(err, status, "%s", what);
	return kmsfs_errno_for_status(status);
}

static int malformed(struct kc_error *err, const uint8_t *wrapped, size_t len)
{
	char what[96];

	if (len > 0 && wrapped[0] != KFS_DEK_XATTR_V1 && wrapped[0] != KFS_DEK_XATTR_BUCKET)
		snprintf(what, sizeof(what), "user.kmsfs.dek version %u is unknown", wrapped[0]);
	else
		snprintf(what, sizeof(what), "user.kmsfs.dek is malformed");
	kc_fail(err, KC_VALIDATION, "%s", what);
	return -EIO;
}

/* Lock held. */
static struct ring_bucket *bucket_find(struct kmsfs_keyring *kr, enum bucket_kind kind,
				       const uint8_t *blob_hash)
{
	for (struct ring_bucket *b = kr->buckets; b; b = b->next)
		if (b->kind == kind &&
		    (!blob_hash || memcmp(b->blob_hash, blob_hash, BLOB_HASH_LEN) == 0))
			return b;
	return NULL;
}

static struct ring_bucket *bucket_new(enum bucket_kind kind, int with_key)
{
	struct ring_bucket *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->kind = kind;
	if (with_key && !(b->key = kmsfs_secure_alloc(KFS_BUCKET_KEY_LEN))) {
		free(b);
		return NULL;
	}
	return b;
}

/* Lock held. The bucket key a file's version-2 blob opens to: Decrypt once per blob. */
static int bucket_for_open(struct kmsfs_keyring *kr, const struct kfs_dek_fields *f,
			   const char *path, struct ring_bucket **out, struct kc_error *err)
{
	uint8_t hash[BLOB_HASH_LEN];
	struct kc_context ctx;
	struct ring_bucket *b;
	size_t key_len = 0;
	enum kc_status status;

	crypto_hash_sha256(hash, f->blob, f->blob_len);
	*out = bucket_find(kr, BUCKET_OPEN, hash);
	if (*out)
		return 0;
	b = bucket_new(BUCKET_OPEN, 1);
	if (!b)
		return failed(err, KC_INTERNAL, "out of memory");
	kfs_dek_context(&ctx, kr->vol.id, NULL);
	status = keyclient_decrypt_file(kr->kc, f->key_arn, f->blob, f->blob_len, &ctx,
			&kr->caller, path, b->key, KFS_BUCKET_KEY_LEN, &key_len, b->key_arn, err);
	if (status == KC_OK && key_len != KFS_BUCKET_KEY_LEN)
		status = kc_fail(err, KC_INVALID_CIPHERTEXT, "bucket key has the wrong length");
	if (status != KC_OK) {
		bucket_free(b);
		return kmsfs_errno_for_status(status);
	}
	memcpy(b->blob_hash, hash, BLOB_HASH_LEN);
	if (!b->key_arn[0])
		snprintf(b->key_arn, sizeof(b->key_arn), "%s", f->key_arn);
	b->next = kr->buckets;
	kr->buckets = b;
	*out = b;
	return 0;
}

/* Lock held. This volume's bucket key for sealing: GenerateDataKey once. */
static int bucket_for_create(struct kmsfs_keyring *kr, const char *path,
			     struct ring_bucket **out, struct kc_error *err)
{
	struct kc_context ctx;
	struct ring_bucket *b;
	enum kc_status status;

	*out = bucket_find(kr, BUCKET_CREATE, NULL);
	if (*out)
		return 0;
	b = bucket_new(BUCKET_CREATE, 1);
	if (!b)
		return failed(err, KC_INTERNAL, "out of memory");
	kfs_dek_context(&ctx, kr->vol.id, NULL);
	status = keyclient_generate_data_key_file(kr->kc, kr->vol.key_id, &ctx, &kr->caller,
			path, b->key, KFS_BUCKET_KEY_LEN, &b->blob, &b->blob_len, b->key_arn, err);
	if (status != KC_OK) {
		bucket_free(b);
		return kmsfs_errno_for_status(status);
	}
	if (!b->key_arn[0])
		snprintf(b->key_arn, sizeof(b->key_arn), "%s", kr->vol.key_id);
	b->next = kr->buckets;
	kr->buckets = b;
	*out = b;
	return 0;
}

static int unwrap_v1(struct kmsfs_keyring *kr, const struct kmsfs_header *hdr, const char *path,
		     const struct kfs_dek_fields *f, uint8_t *dek, struct kc_error *err)
{
	char file_id[2 * KMSFS_FILE_ID_LEN + 1];
	struct kc_context ctx;
	size_t dek_len = 0;
	enum kc_status status;

	kmsfs_file_id_hex(hdr, file_id);
	kfs_dek_context(&ctx, kr->vol.id, file_id);
	status = keyclient_decrypt_file(kr->kc, f->key_arn, f->blob, f->blob_len, &ctx,
			&kr->caller, path, dek, KMSFS_DEK_LEN, &dek_len, NULL, err);
	if (status != KC_OK)
		return kmsfs_errno_for_status(status);
	if (dek_len != KMSFS_DEK_LEN)
		return failed(err, KC_INVALID_CIPHERTEXT, "data key has the wrong length");
	return 0;
}

static int unwrap_v2(struct kmsfs_keyring *kr, const struct kmsfs_header *hdr, const char *path,
		     const struct kfs_dek_fields *f, uint8_t *dek, struct kc_error *err)
{
	struct ring_bucket *b;
	int ret;

	pthread_mutex_lock(&kr->lock);
	ret = bucket_for_open(kr, f, path, &b, err);
	pthread_mutex_unlock(&kr->lock);
	if (ret < 0)
		return ret;
	if (kfs_dek_bucket_open(b->key, kr->vol.id, hdr, f, dek) < 0) {
		ret = failed(err, KC_INVALID_CIPHERTEXT, "the data key in user.kmsfs.dek does not "
			     "open under its bucket key for this file (damaged, or copied from "
			     "another file or volume)");
		kfs_dek_audit_bucket(kr->kc->audit, "Decrypt", kr->vol.id, hdr, path, &kr->caller,
				     b->key_arn, err);
		return -EIO;
	}
	kfs_dek_audit_bucket(kr->kc->audit, "Decrypt", kr->vol.id, hdr, path, &kr->caller,
			     b->key_arn, NULL);
	return ret;
}

int kmsfs_keyring_unwrap(struct kmsfs_keyring *kr, const struct kmsfs_header *hdr,
			 const char *path, const uint8_t *wrapped, size_t wrapped_len,
			 uint8_t dek[KMSFS_DEK_LEN], struct kc_error *err)
{
	struct kfs_dek_fields f;

	if (kfs_dek_decode_v1(wrapped, wrapped_len, &f) == 0)
		return unwrap_v1(kr, hdr, path, &f, dek, err);
	if (kfs_dek_decode_v2(wrapped, wrapped_len, &f) == 0)
		return unwrap_v2(kr, hdr, path, &f, dek, err);
	return malformed(err, wrapped, wrapped_len);
}

/*
 * The version-1 value for what a key-service call returned: status, the
 * ARN it named (Encrypt names none; the volume's key_id is one, volume.c
 * stores the ARN), the blob. Frees blob.
 */
static int finish_v1(enum kc_status status, const char *key_arn, const char *volume_key,
		     uint8_t *blob, size_t blob_len, uint8_t *out, size_t *out_len,
		     struct kc_error *err)
{
	int ret;

	if (status != KC_OK)
		ret = kmsfs_errno_for_status(status);
	else if ((ret = kfs_dek_encode_v1(key_arn[0] ? key_arn : volume_key, blob, blob_len,
					  out, out_len)) < 0)
		failed(err, KC_INTERNAL, "wrapped data key too large for user.kmsfs.dek");
	free(blob);
	return ret;
}

static int wrap_v1(struct kmsfs_keyring *kr, const struct kmsfs_header *hdr, const char *path,
		   uint8_t *dek, int fresh, uint8_t *out, size_t *out_len, struct kc_error *err)
{
	char file_id[2 * KMSFS_FILE_ID_LEN + 1], key_arn[KC_ARN_MAX] = "";
	struct kc_context ctx;
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	enum kc_status status;

	kmsfs_file_id_hex(hdr, file_id);
	kfs_dek_context(&ctx, kr->vol.id, file_id);
	if (fresh)
		status = keyclient_generate_data_key_file(kr->kc, kr->vol.key_id, &ctx,
				&kr->caller, path, dek, KMSFS_DEK_LEN, &blob, &blob_len, key_arn,
				err);
	else
		status = keyclient_encrypt_file(kr->kc, kr->vol.key_id, dek, KMSFS_DEK_LEN, &ctx,
				&kr->caller, path, &blob, &blob_len, err);
	return finish_v1(status, key_arn, kr->vol.key_id, blob, blob_len, out, out_len, err);
}

static int wrap_v2(struct kmsfs_keyring *kr, const struct kmsfs_header *hdr, const char *path,
		   uint8_t *dek, int fresh, uint8_t *out, size_t *out_len, struct kc_error *err)
{
	struct ring_bucket *b;
	int ret;

	pthread_mutex_lock(&kr->lock);
	ret = bucket_for_create(kr, path, &b, err);
	pthread_mutex_unlock(&kr->lock);
	if (ret < 0)
		return ret;
	if (fresh)
		kmsfs_random(dek, KMSFS_DEK_LEN);
	if (kfs_dek_bucket_seal(b->key, b->key_arn, b->blob, b->blob_len, kr->vol.id, hdr, dek,
				out, out_len) < 0)
		return failed(err, KC_INTERNAL, "cannot seal the data key under the bucket key");
	kfs_dek_audit_bucket(kr->kc->audit, fresh ? "GenerateDataKey" : "Encrypt", kr->vol.id,
			     hdr, path, &kr->caller, b->key_arn, NULL);
	return 0;
}

int kmsfs_keyring_wrap(struct kmsfs_keyring *kr, const struct kmsfs_header *hdr,
		       const char *path, uint8_t dek[KMSFS_DEK_LEN], int fresh,
		       uint8_t *out, size_t *out_len, struct kc_error *err)
{
	if (kr->vol.bucket_key)
		return wrap_v2(kr, hdr, path, dek, fresh, out, out_len, err);
	return wrap_v1(kr, hdr, path, dek, fresh, out, out_len, err);
}

/* dek (secure memory, wiped and freed here) as a file key for hdr, if ret says it is good. */
static struct kmsfs_filekey *filekey_of(const struct kmsfs_header *hdr, uint8_t *dek, int ret,
					int *error, struct kc_error *err)
{
	struct kmsfs_filekey *fk = NULL;

	if (ret == 0 && !(fk = kmsfs_filekey_new(hdr, dek))) {
		failed(err, KC_INTERNAL, "out of secure memory for a data key");
		ret = -ENOMEM;
	}
	kmsfs_secure_free(dek);
	*error = ret;
	return fk;
}

struct kmsfs_filekey *kmsfs_keyring_filekey(struct kmsfs_keyring *kr,
					    const struct kmsfs_header *hdr, const char *path,
					    const uint8_t *wrapped, size_t wrapped_len,
					    int *error, struct kc_error *err)
{
	uint8_t *dek = kmsfs_secure_alloc(KMSFS_DEK_LEN);
	int ret;

	if (!dek) {
		failed(err, KC_INTERNAL, "out of secure memory for a data key");
		*error = -ENOMEM;
		return NULL;
	}
	ret = kmsfs_keyring_unwrap(kr, hdr, path, wrapped, wrapped_len, dek, err);
	return filekey_of(hdr, dek, ret, error, err);
}

struct kmsfs_filekey *kmsfs_keyring_new_filekey(struct kmsfs_keyring *kr, const char *path,
						uint8_t *out, size_t *out_len, int *error,
						struct kc_error *err)
{
	uint8_t *dek = kmsfs_secure_alloc(KMSFS_DEK_LEN);
	struct kmsfs_header hdr;
	int ret;

	if (!dek) {
		failed(err, KC_INTERNAL, "out of secure memory for a data key");
		*error = -ENOMEM;
		return NULL;
	}
	kmsfs_header_new(&hdr, kr->vol.cipher);
	ret = kmsfs_keyring_wrap(kr, &hdr, path, dek, 1, out, out_len, err);
	return filekey_of(&hdr, dek, ret, error, err);
}

/* Version 1 to version 1 in one key service: ReEncrypt, new volume id in the new context. */
static int rewrap_v1(struct kmsfs_keyring *src, struct kmsfs_keyring *dst,
		     const struct kmsfs_header *hdr, const char *path,
		     const struct kfs_dek_fields *f, uint8_t *out, size_t *out_len,
		     struct kc_error *err)
{
	char file_id[2 * KMSFS_FILE_ID_LEN + 1], key_arn[KC_ARN_MAX] = "";
	struct kc_context src_ctx, dst_ctx;
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	enum kc_status status;

	kmsfs_file_id_hex(hdr, file_id);
	kfs_dek_context(&src_ctx, src->vol.id, file_id);
	kfs_dek_context(&dst_ctx, dst->vol.id, file_id);
	status = keyclient_re_encrypt_file(dst->kc, f->blob, f->blob_len, &src_ctx,
			dst->vol.key_id, &dst_ctx, &dst->caller, path, &blob, &blob_len, key_arn,
			err);
	return finish_v1(status, key_arn, dst->vol.key_id, blob, blob_len, out, out_len, err);
}

/* Lock held. f's bucket key blob ReEncrypted to dst's key, once per blob. */
static int bucket_rewrapped(struct kmsfs_keyring *dst, const struct kfs_dek_fields *f,
			    const char *path, struct ring_bucket **out, struct kc_error *err)
{
	uint8_t hash[BLOB_HASH_LEN];
	struct kc_context ctx;
	struct ring_bucket *b;
	enum kc_status status;

	crypto_hash_sha256(hash, f->blob, f->blob_len);
	*out = bucket_find(dst, BUCKET_REWRAP, hash);
	if (*out)
		return 0;
	b = bucket_new(BUCKET_REWRAP, 0);
	if (!b)
		return failed(err, KC_INTERNAL, "out of memory");
	kfs_dek_context(&ctx, dst->vol.id, NULL);
	status = keyclient_re_encrypt_file(dst->kc, f->blob, f->blob_len, &ctx, dst->vol.key_id,
			&ctx, &dst->caller, path, &b->blob, &b->blob_len, b->key_arn, err);
	if (status != KC_OK) {
		bucket_free(b);
		return kmsfs_errno_for_status(status);
	}
	memcpy(b->blob_hash, hash, BLOB_HASH_LEN);
	if (!b->key_arn[0])
		snprintf(b->key_arn, sizeof(b->key_arn), "%s", dst->vol.key_id);
	b->next = dst->buckets;
	dst->buckets = b;
	*out = b;
	return 0;
}

/* Version 2 within its own volume: the seal is kept, only its bucket key moves. */
static int rewrap_v2(struct kmsfs_keyring *dst, const char *path,
		     const struct kfs_dek_fields *f, uint8_t *out, size_t *out_len,
		     struct kc_error *err)
{
	struct kfs_dek_fields moved = *f;
	struct ring_bucket *b;
	int ret;

	pthread_mutex_lock(&dst->lock);
	ret = bucket_rewrapped(dst, f, path, &b, err);
	pthread_mutex_unlock(&dst->lock);
	if (ret < 0)
		return ret;
	memcpy(moved.key_arn, b->key_arn, KC_ARN_MAX);
	moved.blob = b->blob;
	moved.blob_len = b->blob_len;
	if (kfs_dek_encode_v2(&moved, out, out_len) < 0)
		return failed(err, KC_INTERNAL, "wrapped data key too large for user.kmsfs.dek");
	return 0;
}

/* Anything else: the data key through this process, in locked memory only. */
static int rewrap_through_client(struct kmsfs_keyring *src, struct kmsfs_keyring *dst,
				 const struct kmsfs_header *hdr, const char *path,
				 const uint8_t *wrapped, size_t wrapped_len, uint8_t *out,
				 size_t *out_len, struct kc_error *err)
{
	uint8_t *dek = kmsfs_secure_alloc(KMSFS_DEK_LEN);
	int ret;

	if (!dek)
		return failed(err, KC_INTERNAL, "out of secure memory");
	ret = kmsfs_keyring_unwrap(src, hdr, path, wrapped, wrapped_len, dek, err);
	if (ret == 0)
		ret = kmsfs_keyring_wrap(dst, hdr, path, dek, 0, out, out_len, err);
	kmsfs_secure_free(dek);
	return ret;
}

int kmsfs_keyring_rewrap(struct kmsfs_keyring *src, struct kmsfs_keyring *dst,
			 const struct kmsfs_header *hdr, const char *path,
			 const uint8_t *wrapped, size_t wrapped_len,
			 uint8_t *out, size_t *out_len, int *plaintext_used,
			 struct kc_error *err)
{
	int one_service = src->kc == dst->kc;
	struct kfs_dek_fields f;

	if (plaintext_used)
		*plaintext_used = 0;
	/* A version-1 file stays version 1 even in a bucket-key volume: the mount opens both. */
	if (one_service && kfs_dek_decode_v1(wrapped, wrapped_len, &f) == 0)
		return rewrap_v1(src, dst, hdr, path, &f, out, out_len, err);
	if (one_service && dst->vol.bucket_key && strcmp(src->vol.id, dst->vol.id) == 0 &&
	    kfs_dek_decode_v2(wrapped, wrapped_len, &f) == 0)
		return rewrap_v2(dst, path, &f, out, out_len, err);
	if (kfs_dek_decode_v1(wrapped, wrapped_len, &f) != 0 &&
	    kfs_dek_decode_v2(wrapped, wrapped_len, &f) != 0)
		return malformed(err, wrapped, wrapped_len);
	if (plaintext_used)
		*plaintext_used = 1;
	return rewrap_through_client(src, dst, hdr, path, wrapped, wrapped_len, out, out_len,
				     err);
}
