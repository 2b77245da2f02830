/*
 * keyclient.c - the backend-independent part of the keyclient interface:
 * AWS error types, error filling, and the keyclient_* wrappers that call
 * a backend through its ops table and write one audit record per
 * data-key call (allowed or denied) when an audit log is attached.
 */
#include "local_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *kc_status_type(enum kc_status status)
{
	switch (status) {
	case KC_OK: return "";
	case KC_NOT_FOUND: return "NotFoundException";
	case KC_DISABLED: return "DisabledException";
	case KC_INVALID_STATE: return "KMSInvalidStateException";
	case KC_INVALID_CIPHERTEXT: return "InvalidCiphertextException";
	case KC_ACCESS_DENIED: return "AccessDeniedException";
	case KC_ALREADY_EXISTS: return "AlreadyExistsException";
	case KC_VALIDATION: return "ValidationException";
	case KC_INVALID_ALIAS: return "InvalidAliasNameException";
	case KC_INVALID_KEY_USAGE: return "InvalidKeyUsageException";
	case KC_INCORRECT_KEY: return "IncorrectKeyException";
	case KC_DEPENDENCY_TIMEOUT: return "DependencyTimeoutException";
	case KC_INTERNAL: return "KMSInternalException";
	case KC_WRONG_PASSPHRASE: return "WrongPassphrase";
	case KC_UNKNOWN_OPERATION: return "UnknownOperationException";
	case KC_SERIALIZATION: return "SerializationException";
	case KC_LIMIT_EXCEEDED: return "LimitExceededException";
	case KC_MALFORMED_POLICY: return "MalformedPolicyDocumentException";
	case KC_TAG: return "TagException";
	case KC_INVALID_ARN: return "InvalidArnException";
	case KC_INVALID_GRANT_ID: return "InvalidGrantIdException";
	case KC_INVALID_GRANT_TOKEN: return "InvalidGrantTokenException";
	case KC_INVALID_MARKER: return "InvalidMarkerException";
	case KC_UNSUPPORTED_OPERATION: return "UnsupportedOperationException";
	case KC_INVALID_IMPORT_TOKEN: return "InvalidImportTokenException";
	case KC_EXPIRED_IMPORT_TOKEN: return "ExpiredImportTokenException";
	case KC_INCORRECT_KEY_MATERIAL: return "IncorrectKeyMaterialException";
	case KC_KMS_INVALID_SIGNATURE: return "KMSInvalidSignatureException";
	case KC_MISSING_AUTH: return "MissingAuthenticationTokenException";
	case KC_UNRECOGNIZED_CLIENT: return "UnrecognizedClientException";
	case KC_INVALID_SIGNATURE: return "InvalidSignatureException";
	case KC_INCOMPLETE_SIGNATURE: return "IncompleteSignatureException";
	}
	return "KMSInternalException";
}

/*
 * AWS KMS answers client errors with 400, authentication failures the
 * service front end rejects with 403, its own faults with 500 and an
 * unavailable dependency with 503.
 */
int kc_status_http(enum kc_status status)
{
	switch (status) {
	case KC_OK: return 200;
	case KC_MISSING_AUTH:
	case KC_INVALID_SIGNATURE:
	case KC_INCOMPLETE_SIGNATURE: return 403;
	case KC_UNRECOGNIZED_CLIENT: return 400;
	case KC_INTERNAL:
	case KC_WRONG_PASSPHRASE: return 500;
	case KC_DEPENDENCY_TIMEOUT: return 503;
	default: return 400;
	}
}

enum kc_status kc_status_from_type(const char *type)
{
	const char *hash;

	if (!type || !*type)
		return KC_INTERNAL;
	/* Some services prefix the type with a namespace: "com.amazon...#Name". */
	hash = strrchr(type, '#');
	if (hash)
		type = hash + 1;
	for (int s = KC_NOT_FOUND; s <= KC_INCOMPLETE_SIGNATURE; s++)
		if (strcmp(type, kc_status_type((enum kc_status)s)) == 0)
			return (enum kc_status)s;
	return KC_INTERNAL;
}

const char *kc_key_state_name(enum kc_key_state state)
{
	switch (state) {
	case KC_KEY_ENABLED: return "Enabled";
	case KC_KEY_DISABLED: return "Disabled";
	case KC_KEY_PENDING_DELETION: return "PendingDeletion";
	case KC_KEY_PENDING_IMPORT: return "PendingImport";
	}
	return "Unknown";
}

enum kc_status kc_fail(struct kc_error *err, enum kc_status status, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return status;
	err->status = status;
	snprintf(err->type, sizeof err->type, "%s", kc_status_type(status));
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	return status;
}

const char *keyclient_service(const struct keyclient *kc)
{
	return kc->service ? kc->service : kc->ops->name;
}

/* ---- wrappers ------------------------------------------------------------------------ */

static enum kc_status no_backend(struct kc_error *err)
{
	return kc_fail(err, KC_INTERNAL, "keyclient: no key service backend");
}

/* Hand the wrapper's local error back to the caller's (which may be NULL). */
static enum kc_status finish(enum kc_status rc, const struct kc_error *local_err,
		struct kc_error *err)
{
	if (err)
		*err = *local_err;   /* KC_OK: status 0, empty type and message */
	return rc;
}

/*
 * One record per call. requestParameters.keyId is the key the caller named
 * or, when it named none (Decrypt), the key the blob turned out to use.
 */
static void audit_call(struct keyclient *kc, const char *event_name, const char *key_id,
		const char *key_arn, const struct kc_context *ctx, const struct kc_caller *caller,
		const char *path, enum kc_status rc, const struct kc_error *local_err)
{
	const char *used_arn = key_arn && *key_arn ? key_arn : NULL;
	struct kc_audit_event ev = {
		.event_source = "kms.amazonaws.com",
		.event_name = event_name,
		.caller = caller,
		.key_id = key_id ? key_id : used_arn,
		.ctx = ctx,
		.path = path,
		.block_index = -1,
		.err = rc == KC_OK ? NULL : local_err,
		.key_arn = used_arn,
	};

	if (kc->audit)
		kc_audit_record(kc->audit, &ev);
}

enum kc_status keyclient_generate_data_key_file(struct keyclient *kc, const char *key_id,
		const struct kc_context *ctx, const struct kc_caller *caller, const char *path,
		uint8_t *plaintext, size_t plaintext_len, uint8_t **blob, size_t *blob_len,
		char key_arn_out[KC_ARN_MAX], struct kc_error *err)
{
	struct kc_error local_err = { 0 };
	char arn[KC_ARN_MAX] = "";
	enum kc_status rc;

	if (!kc || !kc->ops || !kc->ops->generate_data_key)
		return no_backend(err);
	rc = kc->ops->generate_data_key(kc, key_id, ctx, caller, plaintext, plaintext_len,
			blob, blob_len, arn, &local_err);
	audit_call(kc, "GenerateDataKey", key_id, arn, ctx, caller, path, rc, &local_err);
	if (key_arn_out)
		memcpy(key_arn_out, arn, KC_ARN_MAX);
	return finish(rc, &local_err, err);
}

enum kc_status keyclient_generate_data_key(struct keyclient *kc, const char *key_id,
		const struct kc_context *ctx, const struct kc_caller *caller,
		uint8_t *plaintext, size_t plaintext_len, uint8_t **blob, size_t *blob_len,
		char key_arn_out[KC_ARN_MAX], struct kc_error *err)
{
	return keyclient_generate_data_key_file(kc, key_id, ctx, caller, NULL, plaintext,
			plaintext_len, blob, blob_len, key_arn_out, err);
}

enum kc_status keyclient_decrypt_file(struct keyclient *kc, const char *key_id,
		const uint8_t *blob, size_t blob_len, const struct kc_context *ctx,
		const struct kc_caller *caller, const char *path, uint8_t *plaintext,
		size_t plaintext_cap, size_t *plaintext_len, char key_arn_out[KC_ARN_MAX],
		struct kc_error *err)
{
	struct kc_error local_err = { 0 };
	char arn[KC_ARN_MAX] = "";
	enum kc_status rc;

	if (!kc || !kc->ops || !kc->ops->decrypt)
		return no_backend(err);
	rc = kc->ops->decrypt(kc, key_id, blob, blob_len, ctx, caller, plaintext, plaintext_cap,
			plaintext_len, arn, &local_err);
	audit_call(kc, "Decrypt", key_id, arn, ctx, caller, path, rc, &local_err);
	if (key_arn_out)
		memcpy(key_arn_out, arn, KC_ARN_MAX);
	return finish(rc, &local_err, err);
}

enum kc_status keyclient_decrypt(struct keyclient *kc, const char *key_id,
		const uint8_t *blob, size_t blob_len, const struct kc_context *ctx,
		const struct kc_caller *caller, uint8_t *plaintext, size_t plaintext_cap,
		size_t *plaintext_len, char key_arn_out[KC_ARN_MAX], struct kc_error *err)
{
	return keyclient_decrypt_file(kc, key_id, blob, blob_len, ctx, caller, NULL, plaintext,
			plaintext_cap, plaintext_len, key_arn_out, err);
}

enum kc_status keyclient_encrypt_file(struct keyclient *kc, const char *key_id,
		const uint8_t *plaintext, size_t plaintext_len, const struct kc_context *ctx,
		const struct kc_caller *caller, const char *path, uint8_t **blob, size_t *blob_len,
		struct kc_error *err)
{
	struct kc_error local_err = { 0 };
	enum kc_status rc;

	if (!kc || !kc->ops || !kc->ops->encrypt)
		return no_backend(err);
	rc = kc->ops->encrypt(kc, key_id, plaintext, plaintext_len, ctx, caller, blob, blob_len,
			&local_err);
	audit_call(kc, "Encrypt", key_id, NULL, ctx, caller, path, rc, &local_err);
	return finish(rc, &local_err, err);
}

enum kc_status keyclient_encrypt(struct keyclient *kc, const char *key_id,
		const uint8_t *plaintext, size_t plaintext_len, const struct kc_context *ctx,
		const struct kc_caller *caller, uint8_t **blob, size_t *blob_len,
		struct kc_error *err)
{
	return keyclient_encrypt_file(kc, key_id, plaintext, plaintext_len, ctx, caller, NULL,
			blob, blob_len, err);
}

enum kc_status keyclient_re_encrypt_file(struct keyclient *kc,
		const uint8_t *blob, size_t blob_len, const struct kc_context *src_ctx,
		const char *dst_key_id, const struct kc_context *dst_ctx,
		const struct kc_caller *caller, const char *path, uint8_t **new_blob,
		size_t *new_blob_len, char dst_key_arn_out[KC_ARN_MAX], struct kc_error *err)
{
	struct kc_error local_err = { 0 };
	char arn[KC_ARN_MAX] = "";
	enum kc_status rc;

	if (!kc || !kc->ops || !kc->ops->re_encrypt)
		return no_backend(err);
	rc = kc->ops->re_encrypt(kc, blob, blob_len, src_ctx, dst_key_id, dst_ctx, caller,
			new_blob, new_blob_len, arn, &local_err);
	audit_call(kc, "ReEncrypt", dst_key_id, arn, dst_ctx, caller, path, rc, &local_err);
	if (dst_key_arn_out)
		memcpy(dst_key_arn_out, arn, KC_ARN_MAX);
	return finish(rc, &local_err, err);
}

enum kc_status keyclient_re_encrypt(struct keyclient *kc,
		const uint8_t *blob, size_t blob_len, const struct kc_context *src_ctx,
		const char *dst_key_id, const struct kc_context *dst_ctx,
		const struct kc_caller *caller, uint8_t **new_blob, size_t *new_blob_len,
		char dst_key_arn_out[KC_ARN_MAX], struct kc_error *err)
{
	return keyclient_re_encrypt_file(kc, blob, blob_len, src_ctx, dst_key_id, dst_ctx,
			caller, NULL, new_blob, new_blob_len, dst_key_arn_out, err);
}

enum kc_status keyclient_create_alias(struct keyclient *kc, const char *alias_name,
		const char *target_key_id, const struct kc_caller *caller, struct kc_error *err)
{
	struct kc_error local_err = { 0 };
	struct kc_key_info existing;
	enum kc_status rc;

	if (!kc || !kc->ops || !kc->ops->describe_key || !kc->ops->set_alias)
		return no_backend(err);
	if (!target_key_id)
		return kc_fail(err, KC_VALIDATION, "CreateAlias %.64s: target key missing",
				alias_name ? alias_name : "(null)");
	rc = kc->ops->describe_key(kc, alias_name, caller, &existing, &local_err);
	if (rc == KC_OK)
		return kc_fail(err, KC_ALREADY_EXISTS, "alias %s: already exists (points at key %s)",
				alias_name, existing.arn);
	if (rc != KC_NOT_FOUND)
		return finish(rc, &local_err, err);
	return kc->ops->set_alias(kc, alias_name, target_key_id, caller, err);
}

void keyclient_set_audit(struct keyclient *kc, struct kc_audit *audit)
{
	if (kc)
		kc->audit = audit;
}

void keyclient_free(struct keyclient *kc)
{
	if (!kc)
		return;
	if (kc->ops && kc->ops->destroy)
		kc->ops->destroy(kc);
	free(kc);
}
