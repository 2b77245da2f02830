/*
 * api.c - the engine as an AWS KMS API (kms_api.h): the operation table,
 * the readers that turn request fields into C values with AWS's error
 * types, the writers of response fields, and CloudTrail's view of a
 * request and response (secrets removed, names in camelCase).
 *
 * The handlers live in api_*.c, one file per group of operations.
 */
#include "api_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

/* ---- the operation table ------------------------------------------------------------ */

struct api_op {
	const char *name;
	kc_api_handler handler;
	int read_only;
};

#define OP(name, ro) { #name, kc_api_##name, ro }

static const struct api_op api_ops[] = {
	OP(CancelKeyDeletion, 0), OP(CreateAlias, 0), OP(CreateGrant, 0), OP(CreateKey, 0),
	OP(Decrypt, 1), OP(DeleteAlias, 0), OP(DeleteImportedKeyMaterial, 0),
	OP(DescribeKey, 1), OP(DisableKey, 0), OP(DisableKeyRotation, 0), OP(EnableKey, 0),
	OP(EnableKeyRotation, 0), OP(Encrypt, 1), OP(GenerateDataKey, 1),
	OP(GenerateDataKeyPair, 1), OP(GenerateDataKeyPairWithoutPlaintext, 1),
	OP(GenerateDataKeyWithoutPlaintext, 1), OP(GenerateRandom, 1), OP(GetKeyPolicy, 1),
	OP(GetKeyRotationStatus, 1), OP(GetParametersForImport, 1), OP(GetPublicKey, 1),
	OP(ImportKeyMaterial, 0), OP(ListAliases, 1), OP(ListGrants, 1), OP(ListKeyPolicies, 1),
	OP(ListKeyRotations, 1), OP(ListKeys, 1), OP(ListResourceTags, 1),
	OP(ListRetirableGrants, 1), OP(PutKeyPolicy, 0), OP(ReEncrypt, 1), OP(RetireGrant, 0),
	OP(RevokeGrant, 0), OP(RotateKeyOnDemand, 0), OP(ScheduleKeyDeletion, 0), OP(Sign, 1),
	OP(TagResource, 0), OP(UntagResource, 0), OP(UpdateAlias, 0), OP(UpdateKeyDescription, 0),
	OP(Verify, 1),
};

static const struct api_op *find_op(const char *name)
{
	for (size_t i = 0; i < sizeof api_ops / sizeof *api_ops; i++)
		if (strcmp(api_ops[i].name, name) == 0)
			return &api_ops[i];
	return NULL;
}

/* ---- CloudTrail projections ------------------------------------------------------------ */

/* Fields never logged: secrets, and blobs that are bulky and say nothing. */
static const char *const unlogged_fields[] = {
	"Plaintext", "CiphertextBlob", "SourceCiphertextBlob", "CiphertextForRecipient",
	"PrivateKeyPlaintext", "PrivateKeyCiphertextBlob", "PublicKey", "EncryptedKeyMaterial",
	"ImportToken", "Message", "Signature", "Mac", "GrantToken", "GrantTokens", NULL,
};

static int unlogged(const char *name)
{
	for (size_t i = 0; unlogged_fields[i]; i++)
		if (strcmp(name, unlogged_fields[i]) == 0)
			return 1;
	return 0;
}

/* "KeyId" -> "keyId", "AWSAccountId" -> "aWSAccountId" (CloudTrail lower-cases the first letter). */
static void camel(const char *name, char *out, size_t out_len)
{
	snprintf(out, out_len, "%s", name);
	out[0] = (char)tolower((unsigned char)out[0]);
}

/*
 * Copy value without unlogged fields, renaming object keys to camelCase.
 * The keys of an encryption context are the caller's data: kept verbatim.
 */
static json_t *project(json_t *value, int verbatim_keys)
{
	const char *name;
	char renamed[128];
	json_t *child, *copy;
	size_t i;

	if (json_is_array(value)) {
		copy = json_array();
		json_array_foreach(value, i, child)
			json_array_append_new(copy, project(child, 0));
		return copy;
	}
	if (!json_is_object(value))
		return json_deep_copy(value);
	copy = json_object();
	json_object_foreach(value, name, child) {
		if (!verbatim_keys && unlogged(name))
			continue;
		if (verbatim_keys)
			snprintf(renamed, sizeof renamed, "%s", name);
		else
			camel(name, renamed, sizeof renamed);
		json_object_set_new(copy, renamed,
				project(child, !verbatim_keys && strstr(name, "EncryptionContext") != NULL));
	}
	return copy;
}

/* Plaintext-bearing strings are overwritten before jansson frees them. */
static void wipe_strings(json_t *value)
{
	const char *name;
	json_t *child;
	size_t i;

	if (json_is_string(value)) {
		sodium_memzero((char *)json_string_value(value), json_string_length(value));
	} else if (json_is_object(value)) {
		json_object_foreach(value, name, child)
			wipe_strings(child);
	} else if (json_is_array(value)) {
		json_array_foreach(value, i, child)
			wipe_strings(child);
	}
}

static void free_response(struct kc_api_result *result)
{
	static const char *const secret_fields[] = { "Plaintext", "PrivateKeyPlaintext", NULL };

	if (!result->response)
		return;
	for (size_t i = 0; secret_fields[i]; i++)
		wipe_strings(json_object_get(result->response, secret_fields[i]));
	json_decref(result->response);
	result->response = NULL;
}

/* ---- calling ----------------------------------------------------------------------------- */

enum kc_status kc_api_call(struct keyclient *kc, const char *operation, json_t *request,
		const struct kc_caller *caller, struct kc_api_result *result,
		struct kc_error *err)
{
	struct kc_api_req req = { 0 };
	const struct api_op *op;
	json_t *resp = NULL;
	enum kc_status rc;

	memset(result, 0, sizeof *result);
	op = operation ? find_op(operation) : NULL;
	if (!op)
		return kc_fail(err, KC_UNKNOWN_OPERATION, "Operation %.64s is not supported by this service",
				operation ? operation : "(none)");
	result->read_only = op->read_only;
	if (!kc || !kc->ops || strcmp(kc->ops->name, "local") != 0)
		return kc_fail(err, KC_INTERNAL, "the KMS API needs the local engine");
	if (!json_is_object(request))
		return kc_fail(err, KC_SERIALIZATION, "request body must be a JSON object");
	result->audit_request = project(request, 0);
	req = (struct kc_api_req){ kc_local_of(kc), operation, request, caller, result };
	resp = json_object();
	if (!resp)
		return kc_fail(err, KC_INTERNAL, "out of memory");
	rc = op->handler(&req, resp, err);
	if (rc != KC_OK) {
		result->response = resp;    /* may hold plaintext already: wiped by the free */
		free_response(result);
		return rc;
	}
	result->response = resp;
	if (!op->read_only)
		result->audit_response = project(resp, 0);
	/* A handler may have met (and got past) an error on the way: success says nothing. */
	if (err)
		memset(err, 0, sizeof *err);
	return KC_OK;
}

void kc_api_result_free(struct kc_api_result *result)
{
	if (!result)
		return;
	free_response(result);
	json_decref(result->audit_request);
	json_decref(result->audit_response);
	result->audit_request = NULL;
	result->audit_response = NULL;
}

/* ---- reading fields ------------------------------------------------------------------------ */

/* CloudTrail and AWS's validation messages name fields in camelCase. */
enum kc_status kc_api_invalid(struct kc_error *err, const char *name, const char *constraint)
{
	char field[128];

	camel(name, field, sizeof field);
	return kc_fail(err, KC_VALIDATION, "1 validation error detected: Value at '%s' failed to "
			"satisfy constraint: %s", field, constraint);
}

static enum kc_status missing(struct kc_error *err, const char *name)
{
	char field[128];

	camel(name, field, sizeof field);
	return kc_fail(err, KC_VALIDATION, "1 validation error detected: Value null at '%s' failed "
			"to satisfy constraint: Member must not be null", field);
}

static enum kc_status wrong_type(struct kc_error *err, const char *name, const char *expected)
{
	return kc_fail(err, KC_SERIALIZATION, "field %s: expected %s", name, expected);
}

/* The field, or NULL when absent or JSON null (AWS treats null as absent). */
static json_t *field(struct kc_api_req *req, const char *name)
{
	json_t *value = json_object_get(req->params, name);

	return json_is_null(value) ? NULL : value;
}

enum kc_status kc_api_str(struct kc_api_req *req, const char *name, int required,
		size_t min_len, size_t max_len, const char **out, struct kc_error *err)
{
	json_t *value = field(req, name);
	char constraint[96];
	size_t len;

	if (!value)
		return required ? missing(err, name) : KC_OK;
	if (!json_is_string(value))
		return wrong_type(err, name, "a string");
	len = json_string_length(value);
	if (len < min_len || len > max_len) {
		snprintf(constraint, sizeof constraint, "Member must have length between %zu and %zu",
				min_len, max_len);
		return kc_api_invalid(err, name, constraint);
	}
	if (strlen(json_string_value(value)) != len)
		return kc_api_invalid(err, name, "Member must not contain NUL characters");
	*out = json_string_value(value);
	return KC_OK;
}

enum kc_status kc_api_enum(struct kc_api_req *req, const char *name, int required,
		const char *const *allowed, const char **out, struct kc_error *err)
{
	char constraint[512];
	const char *value = NULL;
	enum kc_status rc;
	size_t used;

	rc = kc_api_str(req, name, required, 1, 128, &value, err);
	if (rc != KC_OK || !value)
		return rc;
	for (size_t i = 0; allowed[i]; i++) {
		if (strcmp(value, allowed[i]) == 0) {
			*out = allowed[i];
			return KC_OK;
		}
	}
	used = (size_t)snprintf(constraint, sizeof constraint, "Member must satisfy enum value set: [");
	for (size_t i = 0; allowed[i] && used < sizeof constraint; i++)
		used += (size_t)snprintf(constraint + used, sizeof constraint - used, "%s%s",
				i ? ", " : "", allowed[i]);
	if (used < sizeof constraint)
		snprintf(constraint + used, sizeof constraint - used, "]");
	return kc_api_invalid(err, name, constraint);
}

enum kc_status kc_api_int(struct kc_api_req *req, const char *name, int required,
		int64_t min, int64_t max, int64_t *out, int *present, struct kc_error *err)
{
	json_t *value = field(req, name);
	char constraint[96];
	json_int_t number;

	if (present)
		*present = 0;
	if (!value)
		return required ? missing(err, name) : KC_OK;
	if (!json_is_integer(value))
		return wrong_type(err, name, "an integer");
	number = json_integer_value(value);
	if (number < min || number > max) {
		snprintf(constraint, sizeof constraint, "Member must have value between %lld and %lld",
				(long long)min, (long long)max);
		return kc_api_invalid(err, name, constraint);
	}
	*out = number;
	if (present)
		*present = 1;
	return KC_OK;
}

enum kc_status kc_api_bool(struct kc_api_req *req, const char *name, int *out, int *present,
		struct kc_error *err)
{
	json_t *value = field(req, name);

	if (present)
		*present = 0;
	if (!value)
		return KC_OK;
	if (!json_is_boolean(value))
		return wrong_type(err, name, "a boolean");
	*out = json_is_true(value);
	if (present)
		*present = 1;
	return KC_OK;
}

void kc_api_blob_free(uint8_t *blob, int secure)
{
	if (secure)
		kmsfs_secure_free(blob);
	else
		free(blob);
}

enum kc_status kc_api_blob(struct kc_api_req *req, const char *name, int required,
		size_t max_len, int secure, uint8_t **out, size_t *out_len, struct kc_error *err)
{
	json_t *value = field(req, name);
	char constraint[96];
	const char *text;
	uint8_t *decoded;
	size_t text_len, cap, len = 0;

	*out = NULL;
	*out_len = 0;
	if (!value)
		return required ? missing(err, name) : KC_OK;
	if (!json_is_string(value))
		return wrong_type(err, name, "a base64 string");
	text = json_string_value(value);
	text_len = json_string_length(value);
	cap = text_len / 4 * 3 + 3;
	/* Base64 of max_len bytes is ceil(max_len/3)*4 characters: 2 padding bytes of slack. */
	if (text_len / 4 * 3 > max_len + 2) {
		snprintf(constraint, sizeof constraint, "Member must have length less than or equal to %zu",
				max_len);
		return kc_api_invalid(err, name, constraint);
	}
	decoded = secure ? kmsfs_secure_alloc(cap) : malloc(cap);
	if (!decoded)
		return kc_fail(err, KC_INTERNAL, "out of memory decoding %s", name);
	if (sodium_base642bin(decoded, cap, text, text_len, "\n\r", &len, NULL,
			sodium_base64_VARIANT_ORIGINAL) != 0) {
		kc_api_blob_free(decoded, secure);
		return kc_fail(err, KC_SERIALIZATION, "field %s: not valid base64", name);
	}
	if (len == 0 || len > max_len) {
		kc_api_blob_free(decoded, secure);
		snprintf(constraint, sizeof constraint, "Member must have length between 1 and %zu", max_len);
		return kc_api_invalid(err, name, constraint);
	}
	*out = decoded;
	*out_len = len;
	return KC_OK;
}

enum kc_status kc_api_context(struct kc_api_req *req, const char *name,
		struct kc_context *ctx, struct kc_error *err)
{
	json_t *value = field(req, name), *pair_value;
	const char *key;

	memset(ctx, 0, sizeof *ctx);
	if (!value)
		return KC_OK;
	if (!json_is_object(value))
		return wrong_type(err, name, "an object of strings");
	json_object_foreach(value, key, pair_value) {
		if (!json_is_string(pair_value))
			return wrong_type(err, name, "an object of strings");
		if (!*key || strlen(json_string_value(pair_value)) != json_string_length(pair_value))
			return kc_api_invalid(err, name, "keys must be non-empty, values without NUL");
		if (kc_context_add(ctx, key, json_string_value(pair_value)) != 0)
			return kc_api_invalid(err, name, "Member must have at most 16 pairs");
	}
	return KC_OK;
}

enum kc_status kc_api_strlist(struct kc_api_req *req, const char *name, int required,
		size_t max_count, const char *const *allowed, const char ***out, size_t *count,
		struct kc_error *err)
{
	json_t *value = field(req, name), *item;
	const char **list;
	size_t i, n;
	int known;

	*out = NULL;
	*count = 0;
	if (!value)
		return required ? missing(err, name) : KC_OK;
	if (!json_is_array(value))
		return wrong_type(err, name, "a list of strings");
	n = json_array_size(value);
	if (n > max_count || (required && n == 0))
		return kc_api_invalid(err, name, "Member must have a valid number of items");
	list = calloc(n ? n : 1, sizeof *list);
	if (!list)
		return kc_fail(err, KC_INTERNAL, "out of memory");
	json_array_foreach(value, i, item) {
		if (!json_is_string(item)) {
			free(list);
			return wrong_type(err, name, "a list of strings");
		}
		list[i] = json_string_value(item);
		known = !allowed;
		for (size_t a = 0; allowed && allowed[a] && !known; a++)
			known = strcmp(list[i], allowed[a]) == 0;
		if (!known) {
			free(list);
			return kc_api_invalid(err, name, "Member must satisfy enum value set");
		}
	}
	*out = list;
	*count = n;
	return KC_OK;
}

/* ---- list paging ------------------------------------------------------------------------ */

/*
 * List paging for every List* operation: Limit, and a Marker that is
 * opaque to clients ("kmsd-<offset>" here); garbage is InvalidMarkerException.
 */
enum kc_status kc_api_list_window(struct kc_api_req *req, int64_t default_limit,
		int64_t max_limit, size_t *offset, size_t *limit, struct kc_error *err)
{
	const char *marker = NULL;
	int64_t requested = default_limit;
	unsigned long long parsed;
	char *end = NULL;
	enum kc_status rc;

	rc = kc_api_int(req, "Limit", KC_API_OPTIONAL, 1, max_limit, &requested, NULL, err);
	if (rc == KC_OK)
		rc = kc_api_str(req, "Marker", KC_API_OPTIONAL, 1, 1024, &marker, err);
	if (rc != KC_OK)
		return rc;
	*limit = (size_t)requested;
	*offset = 0;
	if (!marker)
		return KC_OK;
	if (strncmp(marker, "kmsd-", 5) != 0 || !isdigit((unsigned char)marker[5]))
		return kc_fail(err, KC_INVALID_MARKER, "Marker %.64s is not valid", marker);
	parsed = strtoull(marker + 5, &end, 10);
	if (*end)
		return kc_fail(err, KC_INVALID_MARKER, "Marker %.64s is not valid", marker);
	*offset = (size_t)parsed;
	return KC_OK;
}

/* Truncated / NextMarker for a page that ended at next (of total). */
void kc_api_put_page_end(json_t *resp, size_t next, size_t total)
{
	char marker[32];

	json_object_set_new(resp, "Truncated", json_boolean(next < total));
	if (next < total) {
		snprintf(marker, sizeof marker, "kmsd-%zu", next);
		kc_api_put_str(resp, "NextMarker", marker);
	}
}

/* ---- keys ----------------------------------------------------------------------------------- */

void kc_api_key_arn(struct kc_api_req *req, const char *key_id, char out[KC_ARN_MAX])
{
	kc_local_key_arn(req->local, key_id, out);
}

enum kc_status kc_api_key_ref(struct kc_api_req *req, const char *key_ref, const char *action,
		const struct kc_context *ctx, struct kc_store_key *key, struct kc_error *err)
{
	enum kc_status rc;

	rc = kc_local_find_key(req->local, key_ref, key, err);
	if (rc == KC_NOT_FOUND)
		return kc_fail(err, KC_NOT_FOUND, "Key '%.200s' does not exist", key_ref);
	if (rc != KC_OK)
		return rc;
	kc_api_key_arn(req, key->key_id, req->result->key_arn);
	return kc_authorize_request(req->local, key, action, ctx, req->caller, err);
}

enum kc_status kc_api_authorize_key(struct kc_api_req *req, const struct kc_store_key *key,
		const char *action, const struct kc_context *ctx, struct kc_error *err)
{
	kc_api_key_arn(req, key->key_id, req->result->key_arn);
	return kc_authorize_request(req->local, key, action, ctx, req->caller, err);
}

enum kc_status kc_api_key(struct kc_api_req *req, const char *field_name, const char *action,
		const struct kc_context *ctx, struct kc_store_key *key, struct kc_error *err)
{
	const char *key_ref = NULL;
	enum kc_status rc;

	rc = kc_api_str(req, field_name, KC_API_REQUIRED, 1, 2048, &key_ref, err);
	if (rc != KC_OK)
		return rc;
	return kc_api_key_ref(req, key_ref, action, ctx, key, err);
}

enum kc_status kc_api_authorize_account(struct kc_api_req *req, const char *action,
		struct kc_error *err)
{
	return kc_authorize_request(req->local, NULL, action, NULL, req->caller, err);
}

enum kc_status kc_api_require_enabled(struct kc_api_req *req, const struct kc_store_key *key,
		struct kc_error *err)
{
	char arn[KC_ARN_MAX];

	kc_api_key_arn(req, key->key_id, arn);
	/* Imported material past its ValidTo is gone, even before maintenance deletes it. */
	if (key->state == KC_KEY_ENABLED && key->valid_to && key->valid_to <= (int64_t)time(NULL))
		return kc_fail(err, KC_INVALID_STATE, "%s is pending import (its imported key material "
				"expired).", arn);
	if (key->state == KC_KEY_ENABLED)
		return KC_OK;
	if (key->state == KC_KEY_DISABLED)
		return kc_fail(err, KC_DISABLED, "%s is disabled.", arn);
	return kc_fail(err, KC_INVALID_STATE, "%s is %s.", arn, kc_key_state_name(key->state));
}

enum kc_status kc_api_require_usage(struct kc_api_req *req, const struct kc_store_key *key,
		const char *usage, struct kc_error *err)
{
	char arn[KC_ARN_MAX];

	if (strcmp(key->key_usage, usage) == 0)
		return KC_OK;
	kc_api_key_arn(req, key->key_id, arn);
	return kc_fail(err, KC_INVALID_KEY_USAGE, "%s key usage is %s which is not valid for %s.",
			arn, key->key_usage, req->operation);
}

int kc_api_is_symmetric(const struct kc_store_key *key)
{
	return strcmp(key->key_spec, "SYMMETRIC_DEFAULT") == 0;
}

/* ---- writing responses ------------------------------------------------------------------------ */

enum kc_status kc_api_put_blob(json_t *obj, const char *name, const uint8_t *data, size_t len,
		struct kc_error *err)
{
	size_t text_len = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *text = kmsfs_secure_alloc(text_len);
	json_t *value;

	if (!text)
		return kc_fail(err, KC_INTERNAL, "out of memory encoding %s", name);
	sodium_bin2base64(text, text_len, data, len, sodium_base64_VARIANT_ORIGINAL);
	value = json_stringn(text, strlen(text));
	kmsfs_secure_free(text);   /* wipes the base64 copy of a plaintext */
	if (!value || json_object_set_new(obj, name, value) != 0)
		return kc_fail(err, KC_INTERNAL, "out of memory encoding %s", name);
	return KC_OK;
}

void kc_api_put_str(json_t *obj, const char *name, const char *value)
{
	json_object_set_new(obj, name, json_string(value));
}

void kc_api_put_int(json_t *obj, const char *name, int64_t value)
{
	json_object_set_new(obj, name, json_integer(value));
}

void kc_api_put_time(json_t *obj, const char *name, int64_t unix_seconds)
{
	json_object_set_new(obj, name, json_real((double)unix_seconds));
}

json_t *kc_api_key_metadata(struct kc_api_req *req, const struct kc_store_key *key)
{
	json_t *meta = json_object();
	char arn[KC_ARN_MAX];
	int symmetric = kc_api_is_symmetric(key);

	kc_api_key_arn(req, key->key_id, arn);
	kc_api_put_str(meta, "AWSAccountId", req->local->account);
	kc_api_put_str(meta, "KeyId", key->key_id);
	kc_api_put_str(meta, "Arn", arn);
	kc_api_put_time(meta, "CreationDate", key->created);
	json_object_set_new(meta, "Enabled", json_boolean(key->state == KC_KEY_ENABLED));
	kc_api_put_str(meta, "Description", key->description);
	kc_api_put_str(meta, "KeyUsage", key->key_usage);
	kc_api_put_str(meta, "KeyState", kc_key_state_name(key->state));
	if (key->state == KC_KEY_PENDING_DELETION) {
		kc_api_put_time(meta, "DeletionDate", key->deletion_date);
		kc_api_put_int(meta, "PendingDeletionWindowInDays", key->pending_window_days);
	}
	kc_api_put_str(meta, "Origin", key->origin);
	kc_api_put_str(meta, "KeyManager", "CUSTOMER");
	kc_api_put_str(meta, "CustomerMasterKeySpec", key->key_spec);
	kc_api_put_str(meta, "KeySpec", key->key_spec);
	if (symmetric) {
		json_object_set_new(meta, "EncryptionAlgorithms", json_pack("[s]", "SYMMETRIC_DEFAULT"));
	} else if (strcmp(key->key_usage, "ENCRYPT_DECRYPT") == 0) {
		json_object_set_new(meta, "EncryptionAlgorithms",
				kc_asym_encryption_algorithms(key->key_spec, key->key_usage));
	} else {
		json_object_set_new(meta, "SigningAlgorithms",
				kc_asym_signing_algorithms(key->key_spec, key->key_usage));
	}
	json_object_set_new(meta, "MultiRegion", json_false());
	if (strcmp(key->origin, "EXTERNAL") == 0) {
		kc_api_put_str(meta, "ExpirationModel",
				key->valid_to ? "KEY_MATERIAL_EXPIRES" : "KEY_MATERIAL_DOES_NOT_EXPIRE");
		if (key->valid_to)
			kc_api_put_time(meta, "ValidTo", key->valid_to);
	}
	return meta;
}
