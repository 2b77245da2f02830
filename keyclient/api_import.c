/*
 * api_import.c - importing key material (BYOK) through the KMS API:
 * GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial.
 *
 * A key created with Origin EXTERNAL starts PendingImport with no
 * material. GetParametersForImport makes a fresh RSA wrapping key pair
 * and an import token, valid for 24 hours; the private half is sealed
 * under the root key, bound to the key and the token. ImportKeyMaterial
 * unwraps the caller's 32 bytes with it (RSA-OAEP, or RSA-OAEP of an
 * AES key plus AES key wrap with padding), stores them sealed as
 * material version 1, and spends the parameters.
 *
 * A key only ever takes the material it was first given: its
 * fingerprint (HMAC-SHA256 under the root key, bound to the key id)
 * outlives deletion and expiry of the material, and different material
 * is IncorrectKeyMaterialException, as in AWS. Material imported again
 * after deletion is version 1 again, so old ciphertext opens again.
 */
#include "api_internal.h"
#include "asym.h"
#include "store_import.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

/* Every AlgorithmSpec and WrappingKeySpec AWS knows (others are ValidationException). */
static const char *const wrapping_algorithms[] = {
	"RSAES_PKCS1_V1_5", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1",
	"RSA_AES_KEY_WRAP_SHA_256", "SM2PKE", NULL,
};
static const char *const wrapping_key_specs[] = { "RSA_2048", "RSA_3072", "RSA_4096", "SM2", NULL };
static const char *const expiration_models[] = {
	"KEY_MATERIAL_EXPIRES", "KEY_MATERIAL_DOES_NOT_EXPIRE", NULL,
};

#define PARAMETERS_LIFETIME (24 * 3600)
#define VALID_TO_MAX (365 * 86400)          /* ValidTo at most 365 days ahead */
#define TOKEN_RANDOM_LEN 64
#define TOKEN_LEN (KC_UUID_LEN + TOKEN_RANDOM_LEN)   /* key uuid ‖ random */
#define IMPORT_BLOB_MAX 6144                /* ImportToken, EncryptedKeyMaterial */
#define WRAPPING_LABEL "kmsfs import wrapping key v1"
#define WRAPPING_AAD_LEN (sizeof WRAPPING_LABEL - 1 + TOKEN_LEN)
#define FINGERPRINT_LABEL "kmsfs import fingerprint v1"

static int64_t now_seconds(void)
{
	return (int64_t)time(NULL);
}

/* ---- shared checks ------------------------------------------------------------------------- */

/* Import operations are for keys made for it, and not for keys on their way out. */
static enum kc_status check_importable(struct kc_api_req *req, const struct kc_store_key *key,
		struct kc_error *err)
{
	if (strcmp(key->origin, "EXTERNAL") != 0)
		return kc_fail(err, KC_UNSUPPORTED_OPERATION, "%s has Origin %s: key material can be "
				"imported only into keys created with Origin EXTERNAL", req->result->key_arn,
				key->origin);
	if (key->state == KC_KEY_PENDING_DELETION)
		return kc_fail(err, KC_INVALID_STATE, "%s is pending deletion.", req->result->key_arn);
	return KC_OK;
}

/* The sealed wrapping key's AAD: a label, then the token (which begins with the key's uuid). */
static void wrapping_aad(const uint8_t token[TOKEN_LEN], uint8_t aad[WRAPPING_AAD_LEN])
{
	memcpy(aad, WRAPPING_LABEL, sizeof WRAPPING_LABEL - 1);
	memcpy(aad + sizeof WRAPPING_LABEL - 1, token, TOKEN_LEN);
}

/* HMAC-SHA256 under the root key of label ‖ key uuid ‖ material. */
static void material_fingerprint(struct kc_local *local, const uint8_t key_uuid[KC_UUID_LEN],
		const uint8_t material[KC_KEY_LEN], uint8_t fingerprint[KC_IMPORT_FINGERPRINT_LEN])
{
	crypto_auth_hmacsha256_state state;

	crypto_auth_hmacsha256_init(&state, local->root_key, KC_KEY_LEN);
	crypto_auth_hmacsha256_update(&state, (const uint8_t *)FINGERPRINT_LABEL,
			sizeof FINGERPRINT_LABEL - 1);
	crypto_auth_hmacsha256_update(&state, key_uuid, KC_UUID_LEN);
	crypto_auth_hmacsha256_update(&state, material, KC_KEY_LEN);
	crypto_auth_hmacsha256_final(&state, fingerprint);
	sodium_memzero(&state, sizeof state);
}

/* ---- GetParametersForImport ------------------------------------------------------------------ */

/* The combinations AWS offers outside China, with the error it gives for the others. */
static enum kc_status check_wrapping(const char *algorithm, const char *key_spec,
		struct kc_error *err)
{
	if (strcmp(algorithm, "RSAES_PKCS1_V1_5") == 0)
		return kc_fail(err, KC_VALIDATION, "WrappingAlgorithm RSAES_PKCS1_V1_5 is no longer "
				"supported: use RSAES_OAEP_SHA_256 or RSA_AES_KEY_WRAP_SHA_256");
	if (strcmp(algorithm, "SM2PKE") == 0 || strcmp(key_spec, "SM2") == 0)
		return kc_fail(err, KC_UNSUPPORTED_OPERATION,
				"SM2 wrapping keys are available only in China Regions");
	return KC_OK;
}

/* A fresh wrapping pair and token, stored; the public key and token go in the response. */
static enum kc_status make_parameters(struct kc_api_req *req, const char *key_id,
		const char *algorithm, const char *key_spec, json_t *resp, struct kc_error *err)
{
	const struct kc_asym_spec *spec = kc_asym_spec(key_spec);
	struct kc_import_params params = { 0 };
	uint8_t token[TOKEN_LEN], aad[WRAPPING_AAD_LEN];
	struct kc_asym_pair pair;
	enum kc_status rc;

	if (kc_uuid_parse(key_id, token) != 0)
		return kc_fail(err, KC_INTERNAL, "key %s: malformed key id in key store", key_id);
	if (!spec || !spec->rsa_bits || kc_asym_generate(spec, &pair) != 0)
		return kc_fail(err, KC_INTERNAL, "generating a %s wrapping key failed", key_spec);
	randombytes_buf(token + KC_UUID_LEN, TOKEN_RANDOM_LEN);
	wrapping_aad(token, aad);
	params.token = token;
	params.token_len = TOKEN_LEN;
	params.expires = now_seconds() + PARAMETERS_LIFETIME;
	snprintf(params.wrapping_spec, sizeof params.wrapping_spec, "%s", key_spec);
	snprintf(params.wrapping_algorithm, sizeof params.wrapping_algorithm, "%s", algorithm);
	if (kc_asym_seal_private(req->local->root_key, aad, sizeof aad, pair.private_der,
			pair.private_len, &params.wrapping_sealed, &params.wrapping_sealed_len) != 0)
		rc = kc_fail(err, KC_INTERNAL, "out of memory sealing the wrapping key");
	else
		rc = kc_store_put_import_params(req->local->store, key_id, &params, err);
	if (rc == KC_OK)
		rc = kc_api_put_blob(resp, "ImportToken", token, TOKEN_LEN, err);
	if (rc == KC_OK)
		rc = kc_api_put_blob(resp, "PublicKey", pair.public_der, pair.public_len, err);
	if (rc == KC_OK) {
		kc_api_put_str(resp, "KeyId", req->result->key_arn);
		kc_api_put_time(resp, "ParametersValidTo", params.expires);
	}
	free(params.wrapping_sealed);
	kc_asym_pair_free(&pair);
	return rc;
}

KC_API_HANDLER(GetParametersForImport)
{
	const char *algorithm = NULL, *key_spec = NULL;
	struct kc_store_key key;
	enum kc_status rc;

	rc = kc_api_enum(req, "WrappingAlgorithm", KC_API_REQUIRED, wrapping_algorithms, &algorithm,
			err);
	if (rc == KC_OK)
		rc = kc_api_enum(req, "WrappingKeySpec", KC_API_REQUIRED, wrapping_key_specs, &key_spec,
				err);
	if (rc == KC_OK)
		rc = check_wrapping(algorithm, key_spec, err);
	if (rc == KC_OK)
		rc = kc_api_key(req, "KeyId", "kms:GetParametersForImport", NULL, &key, err);
	if (rc == KC_OK)
		rc = check_importable(req, &key, err);
	if (rc == KC_OK)
		rc = make_parameters(req, key.key_id, algorithm, key_spec, resp, err);
	return rc;
}

/* ---- ImportKeyMaterial: the request ------------------------------------------------------------ */

struct import_request {
	uint8_t *token, *wrapped;
	size_t token_len, wrapped_len;
	int64_t valid_to;                  /* 0: the material does not expire */
};

static void import_request_free(struct import_request *ir)
{
	free(ir->token);
	free(ir->wrapped);
}

/* ValidTo: a timestamp in epoch seconds (the SDKs send a number, maybe fractional). */
static enum kc_status read_valid_to(struct kc_api_req *req, int64_t *valid_to, int *present,
		struct kc_error *err)
{
	json_t *value = json_object_get(req->params, "ValidTo");
	double seconds;

	*present = 0;
	if (!value || json_is_null(value))
		return KC_OK;
	if (!json_is_number(value))
		return kc_fail(err, KC_SERIALIZATION, "field ValidTo: expected a timestamp");
	seconds = json_number_value(value);
	if (!(seconds > 0 && seconds < 1e12))
		return kc_api_invalid(err, "ValidTo", "Member must be a date and time in the future");
	*valid_to = (int64_t)seconds;
	*present = 1;
	return KC_OK;
}

/* AWS's rules: ValidTo with KEY_MATERIAL_EXPIRES (the default) only, in the next 365 days. */
static enum kc_status read_expiration(struct kc_api_req *req, int64_t *valid_to,
		struct kc_error *err)
{
	const char *model = "KEY_MATERIAL_EXPIRES";
	int64_t now = now_seconds();
	enum kc_status rc;
	int present = 0;

	*valid_to = 0;
	rc = kc_api_enum(req, "ExpirationModel", KC_API_OPTIONAL, expiration_models, &model, err);
	if (rc == KC_OK)
		rc = read_valid_to(req, valid_to, &present, err);
	if (rc != KC_OK)
		return rc;
	if (strcmp(model, "KEY_MATERIAL_DOES_NOT_EXPIRE") == 0)
		return present ? kc_fail(err, KC_VALIDATION, "ValidTo must be omitted when "
				"ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE") : KC_OK;
	if (!present)
		return kc_fail(err, KC_VALIDATION, "ValidTo is required when ExpirationModel is "
				"KEY_MATERIAL_EXPIRES");
	if (*valid_to <= now || *valid_to > now + VALID_TO_MAX)
		return kc_fail(err, KC_VALIDATION, "ValidTo must be in the future and at most 365 days "
				"from now");
	return KC_OK;
}

static enum kc_status read_import(struct kc_api_req *req, struct import_request *ir,
		struct kc_error *err)
{
	enum kc_status rc;

	memset(ir, 0, sizeof *ir);
	rc = kc_api_blob(req, "ImportToken", KC_API_REQUIRED, IMPORT_BLOB_MAX, 0, &ir->token,
			&ir->token_len, err);
	if (rc == KC_OK)
		rc = kc_api_blob(req, "EncryptedKeyMaterial", KC_API_REQUIRED, IMPORT_BLOB_MAX, 0,
				&ir->wrapped, &ir->wrapped_len, err);
	if (rc == KC_OK)
		rc = read_expiration(req, &ir->valid_to, err);
	return rc;
}

/* ---- ImportKeyMaterial: unwrapping ---------------------------------------------------------------- */

/* The outstanding parameters, if the token is theirs and still valid. */
static enum kc_status check_token(struct kc_api_req *req, const struct kc_store_key *key,
		const struct import_request *ir, struct kc_import_params *params, struct kc_error *err)
{
	uint8_t key_uuid[KC_UUID_LEN] = { 0 };
	enum kc_status rc;

	rc = kc_store_get_import_params(req->local->store, key->key_id, params, err);
	if (rc == KC_NOT_FOUND)
		return kc_fail(err, KC_INVALID_IMPORT_TOKEN, "%s has no outstanding import parameters: "
				"call GetParametersForImport", req->result->key_arn);
	if (rc != KC_OK)
		return rc;
	if (ir->token_len != params->token_len ||
	    sodium_memcmp(ir->token, params->token, params->token_len) != 0) {
		kc_uuid_parse(key->key_id, key_uuid);
		return kc_fail(err, KC_INVALID_IMPORT_TOKEN, "The import token %s %s",
				ir->token_len == TOKEN_LEN && memcmp(ir->token, key_uuid, KC_UUID_LEN) != 0 ?
				"was issued for another key, not" : "is not the current one of",
				req->result->key_arn);
	}
	if (params->expires <= now_seconds())
		return kc_fail(err, KC_EXPIRED_IMPORT_TOKEN, "The import token for %s has expired: "
				"call GetParametersForImport again", req->result->key_arn);
	return KC_OK;
}

/* OpenSSL's digest for a wrapping algorithm's RSA-OAEP step. */
static const char *wrapping_md(const char *algorithm)
{
	return strstr(algorithm, "SHA_256") ? "SHA256" : "SHA1";
}

/* RSA_AES_KEY_WRAP_*: RSA-OAEP(ephemeral AES-256 key) ‖ AES-KWP(material). */
static int unwrap_two_step(EVP_PKEY *wrapping, const char *md, const uint8_t *wrapped,
		size_t wrapped_len, uint8_t *material, size_t material_cap, size_t *material_len)
{
	size_t modulus_len = kc_asym_rsa_bytes(wrapping), aes_key_len = 0;
	uint8_t *aes_key = kmsfs_secure_alloc(modulus_len ? modulus_len : 1);
	int rc = -1;

	if (!aes_key || wrapped_len <= modulus_len)
		goto out;
	if (kc_asym_oaep_decrypt(wrapping, md, wrapped, modulus_len, aes_key, modulus_len,
			&aes_key_len) != 0 || aes_key_len != KC_AES_KWP_KEY_LEN)
		goto out;
	rc = kc_aes_kwp_unwrap(aes_key, wrapped + modulus_len, wrapped_len - modulus_len, material,
			material_cap, material_len);
out:
	kmsfs_secure_free(aes_key);
	return rc;
}

/* The caller's material, unwrapped into *material (secure memory, KC_KEY_LEN bytes). */
static enum kc_status unwrap_material(struct kc_api_req *req, const struct kc_store_key *key,
		const struct import_request *ir, uint8_t **material, struct kc_error *err)
{
	struct kc_import_params params;
	uint8_t aad[WRAPPING_AAD_LEN];
	EVP_PKEY *wrapping = NULL;
	size_t cap = ir->wrapped_len + KC_KEY_LEN, len = 0;
	enum kc_status rc;
	int unwrapped;

	*material = NULL;
	rc = check_token(req, key, ir, &params, err);
	if (rc != KC_OK)
		goto out;
	wrapping_aad(params.token, aad);
	wrapping = kc_asym_unseal_private(req->local->root_key, aad, sizeof aad,
			params.wrapping_sealed, params.wrapping_sealed_len);
	*material = kmsfs_secure_alloc(cap);
	if (!wrapping || !*material) {
		rc = kc_fail(err, KC_INTERNAL, "%s: the import wrapping key does not open (key store "
				"%s altered or corrupted)", req->result->key_arn, kc_store_path(req->local->store));
		goto out;
	}
	if (strncmp(params.wrapping_algorithm, "RSA_AES_KEY_WRAP_", 17) == 0)
		unwrapped = unwrap_two_step(wrapping, wrapping_md(params.wrapping_algorithm),
				ir->wrapped, ir->wrapped_len, *material, cap, &len);
	else
		unwrapped = kc_asym_oaep_decrypt(wrapping, wrapping_md(params.wrapping_algorithm),
				ir->wrapped, ir->wrapped_len, *material, cap, &len);
	if (unwrapped != 0)
		rc = kc_fail(err, KC_INVALID_CIPHERTEXT, "EncryptedKeyMaterial does not decrypt with "
				"the wrapping key and %s", params.wrapping_algorithm);
	else if (len != KC_KEY_LEN)
		rc = kc_fail(err, KC_INCORRECT_KEY_MATERIAL, "Key material of %zu bytes is not valid "
				"for %s: a symmetric key takes 256 bits", len, req->result->key_arn);
out:
	EVP_PKEY_free(wrapping);
	kc_import_params_free(&params);
	if (rc != KC_OK) {
		kmsfs_secure_free(*material);
		*material = NULL;
	}
	return rc;
}

/* ---- ImportKeyMaterial: storing ----------------------------------------------------------------- */

/*
 * The key's recorded fingerprint, or one taken from material it still
 * has (a key given material before fingerprints were kept); *present 0
 * when it never had any.
 */
static enum kc_status known_fingerprint(struct kc_api_req *req, const struct kc_store_key *key,
		uint8_t fingerprint[KC_IMPORT_FINGERPRINT_LEN], int *present, struct kc_error *err)
{
	uint8_t key_uuid[KC_UUID_LEN] = { 0 };
	uint8_t *existing = NULL;
	enum kc_status rc;

	rc = kc_store_get_import_fingerprint(req->local->store, key->key_id, fingerprint, present,
			err);
	if (rc != KC_OK || *present || key->material_versions == 0)
		return rc;
	existing = kmsfs_secure_alloc(KC_KEY_LEN);
	if (!existing)
		return kc_fail(err, KC_INTERNAL, "out of secure memory");
	kc_uuid_parse(key->key_id, key_uuid);
	rc = kc_api_material(req, key->key_id, 0, existing, NULL, err);
	if (rc == KC_OK) {
		material_fingerprint(req->local, key_uuid, existing, fingerprint);
		*present = 1;
	}
	kmsfs_secure_free(existing);
	return rc;
}

/* Same material as before, or the first: recorded. Different: IncorrectKeyMaterialException. */
static enum kc_status admit_material(struct kc_api_req *req, const struct kc_store_key *key,
		const uint8_t *material, struct kc_error *err)
{
	uint8_t known[KC_IMPORT_FINGERPRINT_LEN], offered[KC_IMPORT_FINGERPRINT_LEN];
	uint8_t key_uuid[KC_UUID_LEN] = { 0 };
	enum kc_status rc;
	int present = 0;

	kc_uuid_parse(key->key_id, key_uuid);
	material_fingerprint(req->local, key_uuid, material, offered);
	rc = known_fingerprint(req, key, known, &present, err);
	if (rc != KC_OK)
		return rc;
	if (present && sodium_memcmp(known, offered, sizeof known) != 0)
		return kc_fail(err, KC_INCORRECT_KEY_MATERIAL, "The key material is not the key "
				"material previously imported into %s", req->result->key_arn);
	return kc_store_set_import_fingerprint(req->local->store, key->key_id, offered, err);
}

/*
 * One transaction: the key re-read (a concurrent import or deletion
 * counts), material admitted, version 1 stored when the key has none,
 * ValidTo set, PendingImport -> Enabled, parameters spent.
 */
static enum kc_status store_material(struct kc_api_req *req, const char *key_id,
		const uint8_t *material, int64_t valid_to, struct kc_error *err)
{
	struct kc_seal_arg seal = { req->local, key_id, material, KC_KEY_LEN };
	struct kc_store *store = req->local->store;
	struct kc_store_key key;
	enum kc_status rc;

	rc = kc_store_txn_begin(store, err);
	if (rc != KC_OK)
		return rc;
	rc = kc_store_get_key(store, key_id, &key, err);
	if (rc == KC_OK)
		rc = check_importable(req, &key, err);
	if (rc == KC_OK)
		rc = admit_material(req, &key, material, err);
	if (rc == KC_OK && key.material_versions == 0)
		rc = kc_store_add_material_v(store, key_id, NULL, kc_api_seal_new_material, &seal, NULL,
				err);
	if (rc == KC_OK)
		rc = kc_store_set_key_int(store, key_id, KC_COL_VALID_TO, valid_to, err);
	if (rc == KC_OK && key.state == KC_KEY_PENDING_IMPORT)
		rc = kc_store_set_state(store, key_id, KC_KEY_ENABLED, err);
	if (rc == KC_OK)
		rc = kc_store_spend_import_params(store, key_id, err);
	return kc_store_txn_end(store, rc, err);
}

KC_API_HANDLER(ImportKeyMaterial)
{
	struct import_request ir;
	struct kc_store_key key;
	uint8_t *material = NULL;
	enum kc_status rc;

	(void)resp;
	rc = read_import(req, &ir, err);
	if (rc == KC_OK)
		rc = kc_api_key(req, "KeyId", "kms:ImportKeyMaterial", NULL, &key, err);
	if (rc == KC_OK)
		rc = check_importable(req, &key, err);
	if (rc == KC_OK)
		rc = unwrap_material(req, &key, &ir, &material, err);
	if (rc == KC_OK)
		rc = store_material(req, key.key_id, material, ir.valid_to, err);
	kmsfs_secure_free(material);
	import_request_free(&ir);
	return rc;
}

/* ---- DeleteImportedKeyMaterial ----------------------------------------------------------------- */

/*
 * One transaction: the fingerprint made sure of (so only this material
 * can come back), every material version deleted, the key PendingImport
 * (a key pending deletion stays so).
 */
static enum kc_status delete_material(struct kc_api_req *req, const char *key_id,
		struct kc_error *err)
{
	uint8_t fingerprint[KC_IMPORT_FINGERPRINT_LEN];
	struct kc_store *store = req->local->store;
	struct kc_store_key key;
	enum kc_status rc;
	int present = 0;

	rc = kc_store_txn_begin(store, err);
	if (rc != KC_OK)
		return rc;
	rc = kc_store_get_key(store, key_id, &key, err);
	if (rc == KC_OK && key.material_versions == 0)
		rc = kc_fail(err, KC_INVALID_STATE, "%s has no key material: it is %s.",
				req->result->key_arn, kc_key_state_name(key.state));
	if (rc == KC_OK)
		rc = known_fingerprint(req, &key, fingerprint, &present, err);
	if (rc == KC_OK && present)
		rc = kc_store_set_import_fingerprint(store, key_id, fingerprint, err);
	if (rc == KC_OK)
		rc = kc_store_delete_materials(store, key_id, err);
	if (rc == KC_OK && key.state != KC_KEY_PENDING_DELETION)
		rc = kc_store_set_state(store, key_id, KC_KEY_PENDING_IMPORT, err);
	return kc_store_txn_end(store, rc, err);
}

KC_API_HANDLER(DeleteImportedKeyMaterial)
{
	struct kc_store_key key;
	enum kc_status rc;

	rc = kc_api_key(req, "KeyId", "kms:DeleteImportedKeyMaterial", NULL, &key, err);
	/* Unlike an import, a key pending deletion may still lose its material. */
	if (rc == KC_OK && strcmp(key.origin, "EXTERNAL") != 0)
		rc = kc_fail(err, KC_UNSUPPORTED_OPERATION, "%s has Origin %s: only imported key "
				"material can be deleted", req->result->key_arn, key.origin);
	if (rc == KC_OK)
		rc = delete_material(req, key.key_id, err);
	if (rc == KC_OK)
		kc_api_put_str(resp, "KeyId", req->result->key_arn);
	return rc;
}
