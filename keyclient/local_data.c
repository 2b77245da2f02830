/*
 * local_data.c - the local engine's data-key operations: GenerateDataKey,
 * Decrypt, Encrypt and ReEncrypt.
 *
 * Two paths do all the work: wrap() seals a plaintext under the newest
 * material of a key, unwrap() opens a blob under the material version its
 * header names. Both read the key's state from the database on every
 * call, go through kc_authorize(), and keep key material in secure memory
 * only for the moment it is used. Order of checks, as AWS: the key must
 * exist, the caller must be allowed, the key must be enabled.
 */
#include "crypto.h"
#include "local_internal.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

static void set_arn(const struct kc_local *local, char arn_out[KC_ARN_MAX], const char *key_id)
{
	if (arn_out)
		kc_local_key_arn(local, key_id, arn_out);
}

/*
 * The set-up both directions share once the caller is authorized: the key
 * is enabled and symmetric, the context is serialized (the AAD), and a
 * secure buffer waits for the key material.
 */
static enum kc_status admit(const struct kc_store_key *key, const struct kc_context *ctx,
		uint8_t **context, size_t *context_len, uint8_t **material, struct kc_error *err)
{
	enum kc_status rc = kc_local_require_enabled(key, err);

	if (rc == KC_OK && strcmp(key->key_spec, "SYMMETRIC_DEFAULT") != 0)
		rc = kc_fail(err, KC_INVALID_KEY_USAGE, "key %s is asymmetric (%s): not valid for "
				"symmetric encryption", key->key_id, key->key_spec);
	if (rc == KC_OK)
		rc = kc_context_serialize(ctx, context, context_len, err);
	if (rc != KC_OK)
		return rc;
	*material = kmsfs_secure_alloc(KC_KEY_LEN);
	if (!*material)
		return kc_fail(err, KC_INTERNAL, "key %s: out of secure memory", key->key_id);
	return KC_OK;
}

enum kc_status kc_local_seal_for_key(struct kc_local *local, const struct kc_store_key *key,
		const struct kc_context *ctx, const uint8_t *plaintext, size_t plaintext_len,
		uint8_t **blob, size_t *blob_len, struct kc_error *err)
{
	struct kc_blob_header hdr;
	uint8_t *context = NULL, *material = NULL;
	size_t context_len = 0;
	enum kc_status rc;

	rc = admit(key, ctx, &context, &context_len, &material, err);
	if (rc != KC_OK)
		goto out;
	memset(&hdr, 0, sizeof hdr);
	memcpy(hdr.store_id, local->store_id, KC_STORE_ID_LEN);
	kc_uuid_parse(key->key_id, hdr.key_id);
	rc = kc_local_material(local, key->key_id, 0, material, &hdr.material_version, err);
	if (rc == KC_OK)
		rc = kc_blob_seal(material, &hdr, context, context_len, plaintext, plaintext_len,
				blob, blob_len, err);
out:
	kmsfs_secure_free(material);
	free(context);
	return rc;
}

/* Seal plaintext under key_ref's newest material. */
static enum kc_status wrap(struct kc_local *local, const char *key_ref, const char *action,
		const struct kc_context *ctx, const struct kc_caller *caller,
		const uint8_t *plaintext, size_t plaintext_len,
		uint8_t **blob, size_t *blob_len, char key_arn_out[KC_ARN_MAX], struct kc_error *err)
{
	struct kc_store_key key;
	enum kc_status rc;

	rc = kc_local_find_key(local, key_ref, &key, err);
	if (rc != KC_OK)
		return rc;
	set_arn(local, key_arn_out, key.key_id);
	rc = kc_authorize_request(local, &key, action, ctx, caller, err);
	if (rc != KC_OK)
		return rc;
	return kc_local_seal_for_key(local, &key, ctx, plaintext, plaintext_len, blob, blob_len, err);
}

/* Header checks that need the store: this store's blob, of a key it holds. */
enum kc_status kc_local_blob_key(struct kc_local *local, const uint8_t *blob, size_t blob_len,
		struct kc_blob_header *hdr, struct kc_store_key *key, struct kc_error *err)
{
	char key_id[KC_KEY_ID_LEN + 1];
	enum kc_status rc;

	rc = kc_blob_parse_header(blob, blob_len, hdr, err);
	if (rc != KC_OK)
		return rc;
	if (sodium_memcmp(hdr->store_id, local->store_id, KC_STORE_ID_LEN) != 0)
		return kc_fail(err, KC_INVALID_CIPHERTEXT,
				"ciphertext blob: made by another key store, not %s", kc_store_path(local->store));
	kc_uuid_format(hdr->key_id, key_id);
	rc = kc_store_get_key(local->store, key_id, key, err);
	if (rc == KC_NOT_FOUND)
		return kc_fail(err, KC_INVALID_CIPHERTEXT,
				"ciphertext blob: names key %s, which is not in key store %s",
				key_id, kc_store_path(local->store));
	return rc;
}

/* Is ref this key's id or key ARN (aliases need the store)? */
static int names_key(const struct kc_local *local, const char *ref, const char *key_id)
{
	size_t prefix = strlen(local->arn_prefix);

	if (!strncmp(ref, local->arn_prefix, prefix) && !strncmp(ref + prefix, "key/", 4))
		ref += prefix + 4;
	return strcmp(ref, key_id) == 0;
}

/* The blob's key must be the one the caller named, if it named one. */
enum kc_status kc_local_check_expected_key(struct kc_local *local, const char *expected_ref,
		const struct kc_store_key *blob_key_row, struct kc_error *err)
{
	struct kc_store_key expected;
	enum kc_status rc;

	if (!expected_ref)
		return KC_OK;
	/* The usual case (the FS names the key ARN from the xattr) needs no second lookup. */
	if (names_key(local, expected_ref, blob_key_row->key_id))
		return KC_OK;
	rc = kc_local_find_key(local, expected_ref, &expected, err);
	if (rc != KC_OK)
		return rc;
	if (strcmp(expected.key_id, blob_key_row->key_id) != 0)
		return kc_fail(err, KC_INCORRECT_KEY,
				"ciphertext blob: encrypted under key %s, not under the requested key %s",
				blob_key_row->key_id, expected.key_id);
	return KC_OK;
}

enum kc_status kc_local_open_for_key(struct kc_local *local, const struct kc_store_key *key,
		const struct kc_blob_header *hdr, const uint8_t *blob, size_t blob_len,
		const struct kc_context *ctx, uint8_t *plaintext, size_t plaintext_cap,
		size_t *plaintext_len, struct kc_error *err)
{
	uint8_t *context = NULL, *material = NULL;
	size_t context_len = 0;
	enum kc_status rc;

	*plaintext_len = 0;
	rc = admit(key, ctx, &context, &context_len, &material, err);
	if (rc != KC_OK)
		goto out;
	rc = kc_local_material(local, key->key_id, hdr->material_version, material, NULL, err);
	if (rc == KC_NOT_FOUND)
		rc = kc_fail(err, KC_INVALID_CIPHERTEXT, "ciphertext blob: key %s has no material version %u",
				key->key_id, hdr->material_version);
	if (rc == KC_OK)
		rc = kc_blob_open(material, blob, blob_len, context, context_len,
				plaintext, plaintext_cap, plaintext_len, err);
out:
	kmsfs_secure_free(material);
	free(context);
	return rc;
}

/* Open a blob of this store; plaintext must be secure memory of plaintext_cap bytes. */
static enum kc_status unwrap(struct kc_local *local, const char *expected_ref, const char *action,
		const uint8_t *blob, size_t blob_len, const struct kc_context *ctx,
		const struct kc_caller *caller, uint8_t *plaintext, size_t plaintext_cap,
		size_t *plaintext_len, char key_arn_out[KC_ARN_MAX], struct kc_error *err)
{
	struct kc_blob_header hdr;
	struct kc_store_key key;
	enum kc_status rc;

	*plaintext_len = 0;
	rc = kc_local_blob_key(local, blob, blob_len, &hdr, &key, err);
	if (rc == KC_OK)
		rc = kc_local_check_expected_key(local, expected_ref, &key, err);
	if (rc != KC_OK)
		return rc;
	set_arn(local, key_arn_out, key.key_id);
	rc = kc_authorize_request(local, &key, action, ctx, caller, err);
	if (rc != KC_OK)
		return rc;
	return kc_local_open_for_key(local, &key, &hdr, blob, blob_len, ctx, plaintext,
			plaintext_cap, plaintext_len, err);
}

static void clear_outputs(uint8_t **blob, size_t *blob_len, char arn_out[KC_ARN_MAX])
{
	if (blob)
		*blob = NULL;
	if (blob_len)
		*blob_len = 0;
	if (arn_out)
		arn_out[0] = '\0';
}

enum kc_status kc_local_generate_data_key(struct keyclient *kc, const char *key_id,
		const struct kc_context *ctx, const struct kc_caller *caller,
		uint8_t *plaintext, size_t plaintext_len, uint8_t **blob, size_t *blob_len,
		char key_arn_out[KC_ARN_MAX], struct kc_error *err)
{
	enum kc_status rc;

	clear_outputs(blob, blob_len, key_arn_out);
	if (!plaintext || !blob || !blob_len || plaintext_len == 0 || plaintext_len > KC_DATA_KEY_MAX)
		return kc_fail(err, KC_VALIDATION,
				"GenerateDataKey: data key length %zu not in 1..%d (or no output buffer)",
				plaintext_len, KC_DATA_KEY_MAX);
	randombytes_buf(plaintext, plaintext_len);
	rc = wrap(kc_local_of(kc), key_id, "kms:GenerateDataKey", ctx, caller,
			plaintext, plaintext_len, blob, blob_len, key_arn_out, err);
	if (rc != KC_OK)
		sodium_memzero(plaintext, plaintext_len);
	return rc;
}

enum kc_status kc_local_decrypt(struct keyclient *kc, const char *key_id,
		const uint8_t *blob, size_t blob_len, const struct kc_context *ctx,
		const struct kc_caller *caller, uint8_t *plaintext, size_t plaintext_cap,
		size_t *plaintext_len, char key_arn_out[KC_ARN_MAX], struct kc_error *err)
{
	clear_outputs(NULL, NULL, key_arn_out);
	if (!plaintext || !plaintext_len)
		return kc_fail(err, KC_VALIDATION, "Decrypt: no plaintext output buffer");
	return unwrap(kc_local_of(kc), key_id, "kms:Decrypt", blob, blob_len, ctx, caller,
			plaintext, plaintext_cap, plaintext_len, key_arn_out, err);
}

enum kc_status kc_local_encrypt(struct keyclient *kc, const char *key_id,
		const uint8_t *plaintext, size_t plaintext_len, const struct kc_context *ctx,
		const struct kc_caller *caller, uint8_t **blob, size_t *blob_len,
		struct kc_error *err)
{
	clear_outputs(blob, blob_len, NULL);
	if (!plaintext || !blob || !blob_len || plaintext_len == 0 || plaintext_len > KC_ENCRYPT_MAX)
		return kc_fail(err, KC_VALIDATION, "Encrypt: plaintext length %zu not in 1..%d",
				plaintext_len, KC_ENCRYPT_MAX);
	return wrap(kc_local_of(kc), key_id, "kms:Encrypt", ctx, caller, plaintext, plaintext_len,
			blob, blob_len, NULL, err);
}

enum kc_status kc_local_re_encrypt(struct keyclient *kc,
		const uint8_t *blob, size_t blob_len, const struct kc_context *src_ctx,
		const char *dst_key_id, const struct kc_context *dst_ctx,
		const struct kc_caller *caller, uint8_t **new_blob, size_t *new_blob_len,
		char dst_key_arn_out[KC_ARN_MAX], struct kc_error *err)
{
	struct kc_local *local = kc_local_of(kc);
	size_t plain_cap = blob_len > KC_BLOB_OVERHEAD ? blob_len - KC_BLOB_OVERHEAD : 1;
	uint8_t *plain = NULL;
	size_t plain_len = 0;
	enum kc_status rc;

	clear_outputs(new_blob, new_blob_len, dst_key_arn_out);
	if (!new_blob || !new_blob_len) {
		rc = kc_fail(err, KC_VALIDATION, "ReEncrypt: no output blob");
		goto out;
	}
	plain = kmsfs_secure_alloc(plain_cap);
	if (!plain) {
		rc = kc_fail(err, KC_INTERNAL, "ReEncrypt: out of secure memory");
		goto out;
	}
	rc = unwrap(local, NULL, "kms:ReEncryptFrom", blob, blob_len, src_ctx, caller,
			plain, plain_cap, &plain_len, NULL, err);
	if (rc == KC_OK)
		rc = wrap(local, dst_key_id, "kms:ReEncryptTo", dst_ctx, caller, plain, plain_len,
				new_blob, new_blob_len, dst_key_arn_out, err);
out:
	kmsfs_secure_free(plain);
	return rc;
}
