/*
 * api_data.c - the data-plane operations on symmetric keys: Encrypt,
 * Decrypt, ReEncrypt, GenerateDataKey(WithoutPlaintext), GenerateRandom.
 *
 * Blobs are the engine's own (blob.c): they name their key and key
 * material version, so Decrypt needs no KeyId, and every older material
 * version of a rotated key still decrypts. RSA keys are routed to
 * api_asym.c. Plaintext only ever lives in secure memory, and in the
 * response's base64 text, which kc_api_result_free wipes.
 */
#include "api_internal.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

static const char *const encryption_algorithms[] = {
	"SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE", NULL,
};
static const char *const data_key_specs[] = { "AES_256", "AES_128", NULL };

#define KC_CIPHERTEXT_MAX 6144

/* ---- material ------------------------------------------------------------------------- */

enum kc_status kc_api_material(struct kc_api_req *req, const char *key_id, uint32_t version,
		uint8_t material[KC_KEY_LEN], uint32_t *version_out, struct kc_error *err)
{
	return kc_local_material(req->local, key_id, version, material, version_out, err);
}

int kc_api_seal_new_material(uint32_t version, uint8_t **sealed, size_t *sealed_len, void *arg)
{
	const struct kc_seal_arg *seal = arg;
	uint8_t aad[KC_MATERIAL_AAD_LEN];
	uint8_t key_uuid[KC_UUID_LEN];
	uint8_t *material = NULL;
	int rc = -1;

	if (seal->material && seal->material_len != KC_KEY_LEN)
		return -1;
	if (kc_uuid_parse(seal->key_id, key_uuid) != 0)
		return -1;
	*sealed = malloc(KC_SEALED_KEY_LEN);
	material = kmsfs_secure_alloc(KC_KEY_LEN);
	if (!*sealed || !material)
		goto out;
	if (seal->material)
		memcpy(material, seal->material, KC_KEY_LEN);
	else
		randombytes_buf(material, KC_KEY_LEN);
	kc_material_aad(key_uuid, version, aad);
	kc_seal(seal->local->root_key, aad, sizeof aad, material, KC_KEY_LEN, *sealed);
	*sealed_len = KC_SEALED_KEY_LEN;
	rc = 0;
out:
	kmsfs_secure_free(material);
	if (rc != 0) {
		free(*sealed);
		*sealed = NULL;
	}
	return rc;
}

/* ---- shared pieces ------------------------------------------------------------------------- */

static enum kc_status put_key_arn(struct kc_api_req *req, json_t *resp, const char *name,
		const struct kc_store_key *key)
{
	char arn[KC_ARN_MAX];

	kc_api_key_arn(req, key->key_id, arn);
	kc_api_put_str(resp, name, arn);
	return KC_OK;
}

/* Symmetric keys take SYMMETRIC_DEFAULT (or nothing) as their algorithm. */
static enum kc_status check_symmetric_algorithm(struct kc_api_req *req,
		const struct kc_store_key *key, const char *algorithm, struct kc_error *err)
{
	char arn[KC_ARN_MAX];

	if (!algorithm || strcmp(algorithm, "SYMMETRIC_DEFAULT") == 0)
		return KC_OK;
	kc_api_key_arn(req, key->key_id, arn);
	return kc_fail(err, KC_INVALID_KEY_USAGE,
			"Encryption algorithm %s is not supported by %s (SYMMETRIC_DEFAULT).", algorithm, arn);
}

/* Seal plaintext under key, write CiphertextBlob. */
static enum kc_status seal_into(struct kc_api_req *req, const struct kc_store_key *key,
		const struct kc_context *ctx, const uint8_t *plaintext, size_t plaintext_len,
		json_t *resp, const char *blob_field, struct kc_error *err)
{
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	enum kc_status rc;

	rc = kc_local_seal_for_key(req->local, key, ctx, plaintext, plaintext_len, &blob,
			&blob_len, err);
	if (rc == KC_OK)
		rc = kc_api_put_blob(resp, blob_field, blob, blob_len, err);
	free(blob);
	return rc;
}

/*
 * Open a symmetric blob for action: its key must be the one expected_ref
 * names (if any), the caller authorized, the context right. *plaintext is
 * secure memory the caller frees.
 */
static enum kc_status open_blob(struct kc_api_req *req, const uint8_t *blob, size_t blob_len,
		const char *expected_ref, const char *action, const struct kc_context *ctx,
		struct kc_store_key *key, uint8_t **plaintext, size_t *plaintext_len,
		struct kc_error *err)
{
	struct kc_blob_header hdr;
	size_t cap = blob_len > KC_BLOB_OVERHEAD ? blob_len - KC_BLOB_OVERHEAD : 1;
	enum kc_status rc;

	*plaintext = NULL;
	rc = kc_local_blob_key(req->local, blob, blob_len, &hdr, key, err);
	if (rc != KC_OK)
		return rc == KC_INVALID_CIPHERTEXT ? kc_fail(err, KC_INVALID_CIPHERTEXT,
				"The ciphertext is invalid or was not made by this key service") : rc;
	rc = kc_local_check_expected_key(req->local, expected_ref, key, err);
	if (rc != KC_OK)
		return rc;
	rc = kc_api_authorize_key(req, key, action, ctx, err);
	if (rc != KC_OK)
		return rc;
	rc = kc_api_require_enabled(req, key, err);
	if (rc != KC_OK)
		return rc;
	*plaintext = kmsfs_secure_alloc(cap);
	if (!*plaintext)
		return kc_fail(err, KC_INTERNAL, "out of secure memory");
	rc = kc_local_open_for_key(req->local, key, &hdr, blob, blob_len, ctx, *plaintext, cap,
			plaintext_len, err);
	if (rc == KC_INVALID_CIPHERTEXT)   /* wrong context or a damaged blob: AWS says no more */
		kc_fail(err, KC_INVALID_CIPHERTEXT, "The ciphertext is invalid, or the encryption "
				"context does not match the one it was encrypted with");
	if (rc != KC_OK) {
		kmsfs_secure_free(*plaintext);
		*plaintext = NULL;
	}
	return rc;
}

/* ---- Encrypt ------------------------------------------------------------------------------- */

KC_API_HANDLER(Encrypt)
{
	const char *algorithm = NULL;
	struct kc_store_key key;
	struct kc_context ctx;
	uint8_t *plaintext = NULL;
	size_t plaintext_len = 0;
	enum kc_status rc;

	rc = kc_api_context(req, "EncryptionContext", &ctx, err);
	if (rc == KC_OK)
		rc = kc_api_enum(req, "EncryptionAlgorithm", KC_API_OPTIONAL, encryption_algorithms,
				&algorithm, err);
	if (rc == KC_OK)
		rc = kc_api_blob(req, "Plaintext", KC_API_REQUIRED, KC_ENCRYPT_MAX, 1, &plaintext,
				&plaintext_len, err);
	if (rc == KC_OK)
		rc = kc_api_key(req, "KeyId", "kms:Encrypt", &ctx, &key, err);
	if (rc == KC_OK)
		rc = kc_api_require_enabled(req, &key, err);
	if (rc != KC_OK)
		goto out;
	if (!kc_api_is_symmetric(&key)) {
		rc = kc_asym_encrypt(req, &key, resp, err);
		goto out;
	}
	rc = check_symmetric_algorithm(req, &key, algorithm, err);
	if (rc == KC_OK)
		rc = kc_api_require_usage(req, &key, "ENCRYPT_DECRYPT", err);
	if (rc == KC_OK)
		rc = seal_into(req, &key, &ctx, plaintext, plaintext_len, resp, "CiphertextBlob", err);
	if (rc == KC_OK) {
		put_key_arn(req, resp, "KeyId", &key);
		kc_api_put_str(resp, "EncryptionAlgorithm", "SYMMETRIC_DEFAULT");
	}
out:
	kc_api_blob_free(plaintext, 1);
	return rc;
}

/* ---- Decrypt ------------------------------------------------------------------------------- */

KC_API_HANDLER(Decrypt)
{
	const char *algorithm = NULL, *key_ref = NULL;
	struct kc_store_key key;
	struct kc_context ctx;
	uint8_t *blob = NULL, *plaintext = NULL;
	size_t blob_len = 0, plaintext_len = 0;
	enum kc_status rc;

	rc = kc_api_context(req, "EncryptionContext", &ctx, err);
	if (rc == KC_OK)
		rc = kc_api_enum(req, "EncryptionAlgorithm", KC_API_OPTIONAL, encryption_algorithms,
				&algorithm, err);
	if (rc == KC_OK)
		rc = kc_api_str(req, "KeyId", KC_API_OPTIONAL, 1, 2048, &key_ref, err);
	if (rc == KC_OK)
		rc = kc_api_blob(req, "CiphertextBlob", KC_API_REQUIRED, KC_CIPHERTEXT_MAX, 0, &blob,
				&blob_len, err);
	if (rc != KC_OK)
		goto out;
	if (algorithm && strcmp(algorithm, "SYMMETRIC_DEFAULT") != 0) {
		/* Asymmetric ciphertext names no key: the caller must. */
		if (!key_ref) {
			rc = kc_api_invalid(err, "KeyId", "KeyId is required for asymmetric decryption");
			goto out;
		}
		rc = kc_api_key(req, "KeyId", "kms:Decrypt", &ctx, &key, err);
		if (rc == KC_OK)
			rc = kc_api_require_enabled(req, &key, err);
		if (rc == KC_OK)
			rc = kc_asym_decrypt(req, &key, resp, err);
		goto out;
	}
	rc = open_blob(req, blob, blob_len, key_ref, "kms:Decrypt", &ctx, &key, &plaintext,
			&plaintext_len, err);
	if (rc == KC_OK)
		rc = kc_api_put_blob(resp, "Plaintext", plaintext, plaintext_len, err);
	if (rc == KC_OK) {
		put_key_arn(req, resp, "KeyId", &key);
		kc_api_put_str(resp, "EncryptionAlgorithm", "SYMMETRIC_DEFAULT");
	}
out:
	kmsfs_secure_free(plaintext);
	free(blob);
	return rc;
}

/* ---- ReEncrypt ---------------------------------------------------------------------------- */

KC_API_HANDLER(ReEncrypt)
{
	const char *src_ref = NULL, *src_alg = NULL, *dst_alg = NULL;
	struct kc_context src_ctx, dst_ctx;
	struct kc_store_key src_key, dst_key;
	uint8_t *blob = NULL, *plaintext = NULL;
	size_t blob_len = 0, plaintext_len = 0;
	enum kc_status rc;

	rc = kc_api_context(req, "SourceEncryptionContext", &src_ctx, err);
	if (rc == KC_OK)
		rc = kc_api_context(req, "DestinationEncryptionContext", &dst_ctx, err);
	if (rc == KC_OK)
		rc = kc_api_str(req, "SourceKeyId", KC_API_OPTIONAL, 1, 2048, &src_ref, err);
	if (rc == KC_OK)
		rc = kc_api_enum(req, "SourceEncryptionAlgorithm", KC_API_OPTIONAL,
				encryption_algorithms, &src_alg, err);
	if (rc == KC_OK)
		rc = kc_api_enum(req, "DestinationEncryptionAlgorithm", KC_API_OPTIONAL,
				encryption_algorithms, &dst_alg, err);
	if (rc == KC_OK)
		rc = kc_api_blob(req, "CiphertextBlob", KC_API_REQUIRED, KC_CIPHERTEXT_MAX, 0, &blob,
				&blob_len, err);
	if (rc != KC_OK)
		goto out;
	if ((src_alg && strcmp(src_alg, "SYMMETRIC_DEFAULT")) ||
	    (dst_alg && strcmp(dst_alg, "SYMMETRIC_DEFAULT"))) {
		rc = kc_fail(err, KC_UNSUPPORTED_OPERATION,
				"ReEncrypt supports symmetric keys only here; decrypt and encrypt with RSA keys");
		goto out;
	}
	rc = open_blob(req, blob, blob_len, src_ref, "kms:ReEncryptFrom", &src_ctx, &src_key,
			&plaintext, &plaintext_len, err);
	if (rc == KC_OK)
		rc = kc_api_key(req, "DestinationKeyId", "kms:ReEncryptTo", &dst_ctx, &dst_key, err);
	if (rc == KC_OK)
		rc = kc_api_require_enabled(req, &dst_key, err);
	if (rc == KC_OK)
		rc = kc_api_require_usage(req, &dst_key, "ENCRYPT_DECRYPT", err);
	if (rc == KC_OK)
		rc = seal_into(req, &dst_key, &dst_ctx, plaintext, plaintext_len, resp,
				"CiphertextBlob", err);
	if (rc == KC_OK) {
		put_key_arn(req, resp, "SourceKeyId", &src_key);
		put_key_arn(req, resp, "KeyId", &dst_key);
		kc_api_put_str(resp, "SourceEncryptionAlgorithm", "SYMMETRIC_DEFAULT");
		kc_api_put_str(resp, "DestinationEncryptionAlgorithm", "SYMMETRIC_DEFAULT");
	}
out:
	kmsfs_secure_free(plaintext);
	free(blob);
	return rc;
}

/* ---- GenerateDataKey ------------------------------------------------------------------------ */

/* NumberOfBytes or KeySpec, exactly one (AWS's rule). */
static enum kc_status data_key_length(struct kc_api_req *req, size_t *len, struct kc_error *err)
{
	const char *spec = NULL;
	int64_t number = 0;
	int have_number = 0;
	enum kc_status rc;

	rc = kc_api_int(req, "NumberOfBytes", KC_API_OPTIONAL, 1, KC_DATA_KEY_MAX, &number,
			&have_number, err);
	if (rc == KC_OK)
		rc = kc_api_enum(req, "KeySpec", KC_API_OPTIONAL, data_key_specs, &spec, err);
	if (rc != KC_OK)
		return rc;
	if (have_number == !!spec)
		return kc_fail(err, KC_VALIDATION,
				"Please specify either number of bytes or key spec (but not both).");
	*len = spec ? (strcmp(spec, "AES_128") == 0 ? 16 : 32) : (size_t)number;
	return KC_OK;
}

static enum kc_status generate_data_key(struct kc_api_req *req, json_t *resp, int with_plaintext,
		struct kc_error *err)
{
	const char *action = with_plaintext ? "kms:GenerateDataKey" :
		"kms:GenerateDataKeyWithoutPlaintext";
	struct kc_store_key key;
	struct kc_context ctx;
	uint8_t *plaintext = NULL;
	size_t len = 0;
	enum kc_status rc;

	rc = kc_api_context(req, "EncryptionContext", &ctx, err);
	if (rc == KC_OK)
		rc = data_key_length(req, &len, err);
	if (rc == KC_OK)
		rc = kc_api_key(req, "KeyId", action, &ctx, &key, err);
	if (rc == KC_OK)
		rc = kc_api_require_enabled(req, &key, err);
	if (rc == KC_OK && !kc_api_is_symmetric(&key))
		rc = kc_fail(err, KC_INVALID_KEY_USAGE, "%s is an asymmetric key (%s): data keys need "
				"a symmetric encryption key", req->result->key_arn, key.key_spec);
	if (rc == KC_OK)
		rc = kc_api_require_usage(req, &key, "ENCRYPT_DECRYPT", err);
	if (rc != KC_OK)
		return rc;
	plaintext = kmsfs_secure_alloc(len);
	if (!plaintext)
		return kc_fail(err, KC_INTERNAL, "out of secure memory");
	randombytes_buf(plaintext, len);
	rc = seal_into(req, &key, &ctx, plaintext, len, resp, "CiphertextBlob", err);
	if (rc == KC_OK && with_plaintext)
		rc = kc_api_put_blob(resp, "Plaintext", plaintext, len, err);
	kmsfs_secure_free(plaintext);
	if (rc == KC_OK)
		put_key_arn(req, resp, "KeyId", &key);
	return rc;
}

KC_API_HANDLER(GenerateDataKey)
{
	return generate_data_key(req, resp, 1, err);
}

KC_API_HANDLER(GenerateDataKeyWithoutPlaintext)
{
	return generate_data_key(req, resp, 0, err);
}

/* ---- GenerateRandom ---------------------------------------------------------------------------- */

KC_API_HANDLER(GenerateRandom)
{
	uint8_t *random = NULL;
	int64_t number = 0;
	enum kc_status rc;

	rc = kc_api_int(req, "NumberOfBytes", KC_API_REQUIRED, 1, KC_DATA_KEY_MAX, &number, NULL, err);
	if (rc == KC_OK)
		rc = kc_api_authorize_account(req, "kms:GenerateRandom", err);
	if (rc != KC_OK)
		return rc;
	random = kmsfs_secure_alloc((size_t)number);
	if (!random)
		return kc_fail(err, KC_INTERNAL, "out of secure memory");
	randombytes_buf(random, (size_t)number);
	rc = kc_api_put_blob(resp, "Plaintext", random, (size_t)number, err);
	kmsfs_secure_free(random);
	return rc;
}
