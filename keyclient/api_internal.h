/*
 * api_internal.h - private declarations of the engine's AWS KMS API
 * (kms_api.h), shared by its files:
 *   api.c          dispatch, request field readers, response writers,
 *                  the CloudTrail projections of request and response
 *   api_keys.c     CreateKey, DescribeKey, ListKeys, Enable/DisableKey,
 *                  key deletion, rotation, tags, UpdateKeyDescription,
 *                  maintenance (deletion window, automatic rotation)
 *   api_alias.c    Create/Update/Delete/ListAliases
 *   api_data.c     Encrypt, Decrypt, ReEncrypt, GenerateDataKey*,
 *                  GenerateRandom (symmetric keys)
 *   api_asym.c     asymmetric keys: creation, GetPublicKey, Sign, Verify,
 *                  RSA Encrypt/Decrypt, GenerateDataKeyPair*
 *   api_import.c   GetParametersForImport, ImportKeyMaterial,
 *                  DeleteImportedKeyMaterial
 *   api_policy.c   Get/Put/ListKeyPolicies, grants
 *
 * Field names are the AWS KMS API reference's; errors are its types.
 */
#ifndef KMSFS_KEYCLIENT_API_INTERNAL_H
#define KMSFS_KEYCLIENT_API_INTERNAL_H

#include <jansson.h>

#include "crypto.h"
#include "kms_api.h"
#include "local_internal.h"

/* One request being served. */
struct kc_api_req {
	struct kc_local *local;
	const char *operation;
	json_t *params;                    /* the request body, an object */
	const struct kc_caller *caller;
	struct kc_api_result *result;      /* key_arn is set by kc_api_key */
};

/* Fills resp (an empty object) on success. */
typedef enum kc_status (*kc_api_handler)(struct kc_api_req *req, json_t *resp,
		struct kc_error *err);

/* ---- reading request fields (api.c) ---------------------------------------------- */

/*
 * Each reader: a field of the wrong JSON type is SerializationException;
 * a required field that is missing, or a value outside its constraints,
 * is ValidationException in AWS's words ("1 validation error detected:
 * Value null at 'keyId' failed to satisfy constraint: Member must not be
 * null"). An absent optional field leaves *present 0 (when given) and the
 * output untouched.
 */
#define KC_API_REQUIRED 1
#define KC_API_OPTIONAL 0

enum kc_status kc_api_str(struct kc_api_req *req, const char *name, int required,
		size_t min_len, size_t max_len, const char **out, struct kc_error *err);
/* out is one of allowed (a NULL-terminated list). */
enum kc_status kc_api_enum(struct kc_api_req *req, const char *name, int required,
		const char *const *allowed, const char **out, struct kc_error *err);
enum kc_status kc_api_int(struct kc_api_req *req, const char *name, int required,
		int64_t min, int64_t max, int64_t *out, int *present, struct kc_error *err);
enum kc_status kc_api_bool(struct kc_api_req *req, const char *name, int *out, int *present,
		struct kc_error *err);
/*
 * Base64 blob of 1..max_len decoded bytes. secure: decode into secure
 * memory (plaintext, key material); free with kc_api_blob_free(out, secure).
 */
enum kc_status kc_api_blob(struct kc_api_req *req, const char *name, int required,
		size_t max_len, int secure, uint8_t **out, size_t *out_len, struct kc_error *err);
void kc_api_blob_free(uint8_t *blob, int secure);
/* Encryption context: an object of string values (pointers borrowed from the request). */
enum kc_status kc_api_context(struct kc_api_req *req, const char *name,
		struct kc_context *ctx, struct kc_error *err);
/* Array of strings: *out malloc'ed array of borrowed pointers (free() it). */
enum kc_status kc_api_strlist(struct kc_api_req *req, const char *name, int required,
		size_t max_count, const char *const *allowed, const char ***out, size_t *count,
		struct kc_error *err);
/* ValidationException in AWS's wording for field name. */
enum kc_status kc_api_invalid(struct kc_error *err, const char *name, const char *constraint);

/* List paging: Limit (default_limit, 1..max_limit) and the opaque Marker. */
enum kc_status kc_api_list_window(struct kc_api_req *req, int64_t default_limit,
		int64_t max_limit, size_t *offset, size_t *limit, struct kc_error *err);
/* Truncated, and NextMarker when more follow: a page that ended at next of total. */
void kc_api_put_page_end(json_t *resp, size_t next, size_t total);

/* ---- keys and authorization (api.c) ----------------------------------------------- */

/*
 * Resolve the key named by field (key id, key ARN, alias name or alias
 * ARN), record its ARN for the audit record, and authorize action on it
 * for the caller (ctx: the request's encryption context, for policy
 * conditions and grant constraints; may be NULL).
 */
enum kc_status kc_api_key(struct kc_api_req *req, const char *field, const char *action,
		const struct kc_context *ctx, struct kc_store_key *key, struct kc_error *err);
/* The same for a reference already in hand (ReEncrypt's destination, a blob's key). */
enum kc_status kc_api_key_ref(struct kc_api_req *req, const char *key_ref, const char *action,
		const struct kc_context *ctx, struct kc_store_key *key, struct kc_error *err);
/* For a key row already read (a blob's key). */
enum kc_status kc_api_authorize_key(struct kc_api_req *req, const struct kc_store_key *key,
		const char *action, const struct kc_context *ctx, struct kc_error *err);
/* Account-level actions (CreateKey, ListKeys, ListAliases, GenerateRandom). */
enum kc_status kc_api_authorize_account(struct kc_api_req *req, const char *action,
		struct kc_error *err);
/* KC_DISABLED / KC_INVALID_STATE in AWS's words unless the key is Enabled. */
enum kc_status kc_api_require_enabled(struct kc_api_req *req, const struct kc_store_key *key,
		struct kc_error *err);
/* InvalidKeyUsageException unless the key has this usage. */
enum kc_status kc_api_require_usage(struct kc_api_req *req, const struct kc_store_key *key,
		const char *usage, struct kc_error *err);
int kc_api_is_symmetric(const struct kc_store_key *key);

/* ---- writing responses (api.c) ----------------------------------------------------- */

/* Base64 field (never fails silently: KC_INTERNAL on out of memory). */
enum kc_status kc_api_put_blob(json_t *obj, const char *name, const uint8_t *data, size_t len,
		struct kc_error *err);
void kc_api_put_str(json_t *obj, const char *name, const char *value);
void kc_api_put_int(json_t *obj, const char *name, int64_t value);
/* AWS timestamps are epoch seconds as JSON numbers. */
void kc_api_put_time(json_t *obj, const char *name, int64_t unix_seconds);
/* KeyMetadata of key as DescribeKey returns it. */
json_t *kc_api_key_metadata(struct kc_api_req *req, const struct kc_store_key *key);
/* The key's ARN (this engine's region and account). */
void kc_api_key_arn(struct kc_api_req *req, const char *key_id, char out[KC_ARN_MAX]);

/* ---- handlers (one file per group) -------------------------------------------------- */

#define KC_API_HANDLER(name) \
	enum kc_status kc_api_##name(struct kc_api_req *req, json_t *resp, struct kc_error *err)

/* api_keys.c */
KC_API_HANDLER(CreateKey);
KC_API_HANDLER(DescribeKey);
KC_API_HANDLER(ListKeys);
KC_API_HANDLER(EnableKey);
KC_API_HANDLER(DisableKey);
KC_API_HANDLER(ScheduleKeyDeletion);
KC_API_HANDLER(CancelKeyDeletion);
KC_API_HANDLER(EnableKeyRotation);
KC_API_HANDLER(DisableKeyRotation);
KC_API_HANDLER(GetKeyRotationStatus);
KC_API_HANDLER(RotateKeyOnDemand);
KC_API_HANDLER(ListKeyRotations);
KC_API_HANDLER(UpdateKeyDescription);
KC_API_HANDLER(TagResource);
KC_API_HANDLER(UntagResource);
KC_API_HANDLER(ListResourceTags);
/* api_alias.c */
KC_API_HANDLER(CreateAlias);
KC_API_HANDLER(UpdateAlias);
KC_API_HANDLER(DeleteAlias);
KC_API_HANDLER(ListAliases);
/* api_data.c */
KC_API_HANDLER(Encrypt);
KC_API_HANDLER(Decrypt);
KC_API_HANDLER(ReEncrypt);
KC_API_HANDLER(GenerateDataKey);
KC_API_HANDLER(GenerateDataKeyWithoutPlaintext);
KC_API_HANDLER(GenerateRandom);
/* api_asym.c */
KC_API_HANDLER(GetPublicKey);
KC_API_HANDLER(Sign);
KC_API_HANDLER(Verify);
KC_API_HANDLER(GenerateDataKeyPair);
KC_API_HANDLER(GenerateDataKeyPairWithoutPlaintext);
/* api_import.c */
KC_API_HANDLER(GetParametersForImport);
KC_API_HANDLER(ImportKeyMaterial);
KC_API_HANDLER(DeleteImportedKeyMaterial);
/* api_policy.c */
KC_API_HANDLER(GetKeyPolicy);
KC_API_HANDLER(PutKeyPolicy);
KC_API_HANDLER(ListKeyPolicies);
KC_API_HANDLER(CreateGrant);
KC_API_HANDLER(ListGrants);
KC_API_HANDLER(ListRetirableGrants);
KC_API_HANDLER(RetireGrant);
KC_API_HANDLER(RevokeGrant);

/* ---- hooks between the groups ----------------------------------------------------------- */

/* api_asym.c: is spec an asymmetric KeySpec this engine makes (RSA_*, ECC_NIST_*)? */
int kc_asym_spec_supported(const char *key_spec);
/*
 * api_asym.c: CreateKey for an asymmetric spec. The key pair is made
 * first, outside the store's transaction (an RSA_4096 pair takes up to a
 * second, and the transaction holds the store lock); then the private key
 * is sealed as material version 1 and the public key stored.
 */
struct kc_asym_pair;
enum kc_status kc_asym_pair_make(const char *key_spec, struct kc_asym_pair **out,
		struct kc_error *err);
void kc_asym_pair_release(struct kc_asym_pair *pair);
enum kc_status kc_asym_create_key(struct kc_api_req *req, const char *key_id,
		const char *description, int64_t created, const struct kc_key_attrs *attrs,
		const struct kc_asym_pair *pair, struct kc_error *err);
/* api_asym.c: Encrypt/Decrypt with an RSA key (EncryptionAlgorithm RSAES_OAEP_SHA_*). */
enum kc_status kc_asym_encrypt(struct kc_api_req *req, const struct kc_store_key *key,
		json_t *resp, struct kc_error *err);
enum kc_status kc_asym_decrypt(struct kc_api_req *req, const struct kc_store_key *key,
		json_t *resp, struct kc_error *err);
/* api_asym.c: EncryptionAlgorithms / SigningAlgorithms of a key spec and usage (JSON array). */
json_t *kc_asym_encryption_algorithms(const char *key_spec, const char *key_usage);
json_t *kc_asym_signing_algorithms(const char *key_spec, const char *key_usage);

/*
 * api_policy.c: the lockout safety check of PutKeyPolicy and CreateKey:
 * KC_MALFORMED_POLICY (AWS's message) unless the caller could still call
 * kms:PutKeyPolicy on key under policy_text.
 */
enum kc_status kc_api_policy_lockout_check(struct kc_api_req *req, const char *policy_text,
		const struct kc_store_key *key, struct kc_error *err);

/* api_data.c: unseal symmetric key material (version 0 = newest) into secure memory. */
enum kc_status kc_api_material(struct kc_api_req *req, const char *key_id, uint32_t version,
		uint8_t material[KC_KEY_LEN], uint32_t *version_out, struct kc_error *err);
/* api_data.c: seal a fresh random 32-byte material version (CreateKey, rotation). */
int kc_api_seal_new_material(uint32_t version, uint8_t **sealed, size_t *sealed_len, void *arg);
struct kc_seal_arg {
	struct kc_local *local;
	const char *key_id;
	const uint8_t *material;           /* NULL: fresh random material */
	size_t material_len;
};

/* api_keys.c / api_import.c: rotation date bookkeeping. */
#define KC_ROTATION_DEFAULT_DAYS 365
#define KC_ROTATION_MIN_DAYS 90
#define KC_ROTATION_MAX_DAYS 2560

/* api_policy.c: grant tokens in a request (GrantTokens) are accepted and ignored
 * beyond validation, as grants take effect at once here (no eventual consistency). */

#endif /* KMSFS_KEYCLIENT_API_INTERNAL_H */
