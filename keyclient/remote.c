/*
 * remote.c - the remote transport: keyclient's second backend, the AWS
 * KMS JSON 1.1 API over HTTP(S) to kmsd or to AWS KMS itself.
 *
 * Here: opening (the endpoint parsed once into the URL, Host and path
 * that every request signs), the principal -> credentials table, and the
 * data-key operations the FS calls. Key management is in remote_keys.c,
 * the HTTP exchange in remote_http.c.
 *
 * Credentials are copied into one kmsfs_secure_alloc block per principal
 * (wiped when replaced or at destroy), so the caller may free its own.
 * Plaintext data keys are decoded by remote_http.c straight into the
 * caller's buffer; on any failure that buffer is wiped.
 */
#include "crypto.h"
#include "remote_internal.h"
#include "sigv4.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <sodium.h>

#define DATA_KEY_MAX 1024   /* GenerateDataKey's NumberOfBytes limit */
#define ENCRYPT_MAX 4096    /* Encrypt's plaintext limit */

struct kc_remote_principal {
	struct kc_remote_principal *next;
	char *name;
	char *secrets;                        /* secure: key id, secret, token, NUL-separated */
	size_t secrets_len;
	struct kc_remote_credentials creds;   /* points into secrets */
};

static void remote_destroy(struct keyclient *kc);

static enum kc_status remote_generate_data_key(struct keyclient *kc, const char *key_id,
		const struct kc_context *ctx, const struct kc_caller *caller,
		uint8_t *plaintext, size_t plaintext_len, uint8_t **blob, size_t *blob_len,
		char key_arn_out[KC_ARN_MAX], struct kc_error *err);
static enum kc_status remote_decrypt(struct keyclient *kc, const char *key_id,
		const uint8_t *blob, size_t blob_len, const struct kc_context *ctx,
		const struct kc_caller *caller, uint8_t *plaintext, size_t plaintext_cap,
		size_t *plaintext_len, char key_arn_out[KC_ARN_MAX], struct kc_error *err);
static enum kc_status remote_encrypt(struct keyclient *kc, const char *key_id,
		const uint8_t *plaintext, size_t plaintext_len, const struct kc_context *ctx,
		const struct kc_caller *caller, uint8_t **blob, size_t *blob_len,
		struct kc_error *err);
static enum kc_status remote_re_encrypt(struct keyclient *kc,
		const uint8_t *blob, size_t blob_len, const struct kc_context *src_ctx,
		const char *dst_key_id, const struct kc_context *dst_ctx,
		const struct kc_caller *caller, uint8_t **new_blob, size_t *new_blob_len,
		char dst_key_arn_out[KC_ARN_MAX], struct kc_error *err);

static const struct keyclient_ops remote_ops = {
	.name = "remote",
	.generate_data_key = remote_generate_data_key,
	.decrypt = remote_decrypt,
	.encrypt = remote_encrypt,
	.re_encrypt = remote_re_encrypt,
	.create_key = kc_remote_create_key,
	.describe_key = kc_remote_describe_key,
	.list_keys = kc_remote_list_keys,
	.set_alias = kc_remote_set_alias,
	.set_key_enabled = kc_remote_set_key_enabled,
	.rotate_key = kc_remote_rotate_key,
	.set_key_principal = kc_remote_set_key_principal,
	.destroy = remote_destroy,
};

/* ---- credentials ---------------------------------------------------------------------- */

static void principal_free(struct kc_remote_principal *p)
{
	if (!p)
		return;
	kmsfs_secure_free(p->secrets);   /* wipes */
	free(p->name);
	free(p);
}

static int creds_complete(const struct kc_remote_credentials *creds)
{
	return creds && creds->access_key_id && *creds->access_key_id &&
		strlen(creds->access_key_id) < KC_SIGV4_FIELD_MAX &&
		creds->secret_access_key && *creds->secret_access_key &&
		(!creds->session_token || *creds->session_token);
}

/* A principal entry holding its own secure copy of creds; NULL when out of memory. */
static struct kc_remote_principal *principal_new(const char *name,
		const struct kc_remote_credentials *creds)
{
	size_t id_len = strlen(creds->access_key_id) + 1;
	size_t secret_len = strlen(creds->secret_access_key) + 1;
	size_t token_len = creds->session_token ? strlen(creds->session_token) + 1 : 0;
	struct kc_remote_principal *p = calloc(1, sizeof *p);

	if (!p)
		return NULL;
	p->name = strdup(name);
	p->secrets_len = id_len + secret_len + token_len;
	p->secrets = kmsfs_secure_alloc(p->secrets_len);
	if (!p->name || !p->secrets) {
		principal_free(p);
		return NULL;
	}
	memcpy(p->secrets, creds->access_key_id, id_len);
	memcpy(p->secrets + id_len, creds->secret_access_key, secret_len);
	if (token_len)
		memcpy(p->secrets + id_len + secret_len, creds->session_token, token_len);
	p->creds.access_key_id = p->secrets;
	p->creds.secret_access_key = p->secrets + id_len;
	p->creds.session_token = token_len ? p->secrets + id_len + secret_len : NULL;
	return p;
}

/* Put p in the table; the entry it replaces (same name), if any, is returned for freeing. */
static struct kc_remote_principal *principal_insert(struct kc_remote *remote,
		struct kc_remote_principal *p)
{
	struct kc_remote_principal **link = &remote->principals, *old = NULL;

	pthread_rwlock_wrlock(&remote->principals_lock);
	while (*link && strcmp((*link)->name, p->name) != 0)
		link = &(*link)->next;
	if (*link) {
		old = *link;
		p->next = old->next;
	}
	*link = p;
	pthread_rwlock_unlock(&remote->principals_lock);
	return old;
}

enum kc_status kc_remote_add_principal(struct keyclient *kc, const char *principal,
		const struct kc_remote_credentials *creds, struct kc_error *err)
{
	struct kc_remote_principal *p;

	if (!kc || kc->ops != &remote_ops)
		return kc_fail(err, KC_VALIDATION, "credentials: not a remote keyclient");
	if (!principal || !*principal || !creds_complete(creds))
		return kc_fail(err, KC_VALIDATION, "credentials for %.128s: principal, access key id or "
				"secret access key missing (or empty session token)",
				principal ? principal : "(null)");
	p = principal_new(principal, creds);
	if (!p)
		return kc_fail(err, KC_INTERNAL, "credentials for %.128s: out of secure memory", principal);
	principal_free(principal_insert(kc_remote_of(kc), p));
	return KC_OK;
}

const struct kc_remote_credentials *kc_remote_credentials_hold(struct kc_remote *remote,
		const char *principal)
{
	const struct kc_remote_principal *p;

	pthread_rwlock_rdlock(&remote->principals_lock);
	for (p = principal ? remote->principals : NULL; p; p = p->next)
		if (strcmp(p->name, principal) == 0)
			return &p->creds;
	return NULL;
}

void kc_remote_credentials_release(struct kc_remote *remote)
{
	pthread_rwlock_unlock(&remote->principals_lock);
}

/* ---- opening ------------------------------------------------------------------------- */

static void remote_free(struct kc_remote *remote)
{
	struct kc_remote_principal *p, *next;

	if (!remote)
		return;
	kc_remote_pool_free(remote);
	for (p = remote->principals; p; p = next) {
		next = p->next;
		principal_free(p);
	}
	pthread_mutex_destroy(&remote->pool_lock);
	pthread_rwlock_destroy(&remote->principals_lock);
	free(remote->endpoint);
	free(remote->url);
	free(remote->path);
	free(remote->ca_file);
	free(remote);
}

/* Refuse what a signed request cannot carry: credentials, a query, a fragment. */
static int endpoint_extras(CURLU *url)
{
	static const CURLUPart parts[] = { CURLUPART_USER, CURLUPART_PASSWORD, CURLUPART_QUERY,
		CURLUPART_FRAGMENT };
	char *value;

	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		value = NULL;
		if (curl_url_get(url, parts[i], &value, 0) == CURLUE_OK) {
			curl_free(value);
			return 1;
		}
	}
	return 0;
}

/* URL, Host header ("host" or "host:port", as given) and path of the endpoint. */
static enum kc_status endpoint_parts(struct kc_remote *remote, CURLU *url, struct kc_error *err)
{
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *full = NULL;
	enum kc_status rc = KC_OK;

	if (curl_url_get(url, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
	    curl_url_get(url, CURLUPART_HOST, &host, 0) != CURLUE_OK || endpoint_extras(url) ||
	    curl_url_get(url, CURLUPART_PATH, &path, 0) != CURLUE_OK ||
	    curl_url_get(url, CURLUPART_URL, &full, 0) != CURLUE_OK) {
		rc = kc_fail(err, KC_VALIDATION, "endpoint %.200s: not an http:// or https:// URL "
				"(without credentials, query or fragment)", remote->endpoint);
		goto out;
	}
	curl_url_get(url, CURLUPART_PORT, &port, 0);   /* none: the scheme's default */
	if ((size_t)snprintf(remote->host, sizeof remote->host, "%s%s%s", host, port ? ":" : "",
			port ? port : "") >= sizeof remote->host) {
		rc = kc_fail(err, KC_VALIDATION, "endpoint %.200s: host name too long", remote->endpoint);
		goto out;
	}
	remote->path = strdup(path);
	remote->url = strdup(full);
	if (!remote->path || !remote->url)
		rc = kc_fail(err, KC_INTERNAL, "endpoint %.200s: out of memory", remote->endpoint);
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(full);
	return rc;
}

static enum kc_status parse_endpoint(struct kc_remote *remote, struct kc_error *err)
{
	CURLU *url = curl_url();
	enum kc_status rc;

	if (!url)
		return kc_fail(err, KC_INTERNAL, "endpoint: out of memory");
	if (curl_url_set(url, CURLUPART_URL, remote->endpoint, 0) != CURLUE_OK)
		rc = kc_fail(err, KC_VALIDATION, "endpoint %.200s: not a URL", remote->endpoint);
	else
		rc = endpoint_parts(remote, url, err);
	curl_url_cleanup(url);
	return rc;
}

static long or_default(long value, long fallback)
{
	return value > 0 ? value : fallback;
}

/* Options with their defaults filled in, and the ones that cannot work refused. */
static enum kc_status take_options(struct kc_remote *remote, const struct kc_remote_options *opts,
		struct kc_error *err)
{
	if (!opts->region || !*opts->region || strlen(opts->region) >= sizeof remote->region)
		return kc_fail(err, KC_VALIDATION, "remote key service: region missing or too long");
	if (opts->retries < KC_REMOTE_NO_RETRY || opts->connect_timeout_ms < 0 ||
	    opts->request_timeout_ms < 0 || opts->backoff_base_ms < 0 || opts->backoff_max_ms < 0)
		return kc_fail(err, KC_VALIDATION, "remote key service: negative timeout, backoff or retries");
	snprintf(remote->region, sizeof remote->region, "%s", opts->region);
	remote->connect_timeout_ms = or_default(opts->connect_timeout_ms, KC_REMOTE_CONNECT_TIMEOUT_MS);
	remote->request_timeout_ms = or_default(opts->request_timeout_ms, KC_REMOTE_REQUEST_TIMEOUT_MS);
	remote->retries = opts->retries == KC_REMOTE_NO_RETRY ? 0 :
		opts->retries ? opts->retries : KC_REMOTE_RETRIES;
	remote->backoff_base_ms = or_default(opts->backoff_base_ms, KC_REMOTE_BACKOFF_BASE_MS);
	remote->backoff_max_ms = or_default(opts->backoff_max_ms, KC_REMOTE_BACKOFF_MAX_MS);
	if (opts->ca_file) {
		remote->ca_file = strdup(opts->ca_file);
		if (!remote->ca_file)
			return kc_fail(err, KC_INTERNAL, "remote key service: out of memory");
	}
	return KC_OK;
}

static struct kc_remote *remote_new(const char *endpoint)
{
	struct kc_remote *remote = calloc(1, sizeof *remote);
	pthread_rwlockattr_t attr;

	if (!remote)
		return NULL;
	pthread_mutex_init(&remote->pool_lock, NULL);
	/*
	 * Writer first: glibc's default lets a steady stream of signing calls
	 * (the FS under load) starve kc_remote_add_principal's refresh forever.
	 * Safe because no thread takes the read lock twice.
	 */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&remote->principals_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	remote->endpoint = strdup(endpoint);
	if (!remote->endpoint) {
		remote_free(remote);
		return NULL;
	}
	return remote;
}

enum kc_status kc_remote_open(const struct kc_remote_options *opts, struct keyclient **out,
		struct kc_error *err)
{
	struct kc_remote *remote = NULL;
	struct keyclient *kc = NULL;
	enum kc_status rc;

	if (out)
		*out = NULL;
	if (!opts || !opts->endpoint || !*opts->endpoint || !out) {
		rc = kc_fail(err, KC_VALIDATION, "remote key service: endpoint missing");
		goto out;
	}
	if (kc_remote_http_init() != 0 || sodium_init() < 0) {
		rc = kc_fail(err, KC_INTERNAL, "remote key service: libcurl or libsodium failed to start");
		goto out;
	}
	remote = remote_new(opts->endpoint);
	kc = calloc(1, sizeof *kc);
	if (!remote || !kc) {
		rc = kc_fail(err, KC_INTERNAL, "remote key service: out of memory");
		goto out;
	}
	rc = take_options(remote, opts, err);
	if (rc == KC_OK)
		rc = parse_endpoint(remote, err);
	if (rc != KC_OK)
		goto out;
	kc->ops = &remote_ops;
	kc->impl = remote;
	kc->service = remote->endpoint;   /* what a volume records as its key service */
	*out = kc;
	kc = NULL;
	remote = NULL;
out:
	remote_free(remote);
	free(kc);
	return rc;
}

static void remote_destroy(struct keyclient *kc)
{
	remote_free(kc_remote_of(kc));
	kc->impl = NULL;
}

/* ---- JSON helpers ----------------------------------------------------------------------- */

void kc_remote_put_context(json_t *request, const char *field, const struct kc_context *ctx)
{
	json_t *pairs;

	if (!ctx || ctx->count == 0)
		return;
	pairs = json_object();
	for (size_t i = 0; i < ctx->count && i < KC_MAX_CONTEXT_PAIRS; i++)
		json_object_set_new(pairs, ctx->pairs[i].key, json_string(ctx->pairs[i].value));
	json_object_set_new(request, field, pairs);
}

int kc_remote_put_blob(json_t *request, const char *field, const uint8_t *blob, size_t len)
{
	size_t encoded_len = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *encoded = malloc(encoded_len);
	int rc;

	if (!encoded)
		return -1;
	sodium_bin2base64(encoded, encoded_len, blob, len, sodium_base64_VARIANT_ORIGINAL);
	rc = json_object_set_new(request, field, json_string(encoded));
	free(encoded);
	return rc;
}

enum kc_status kc_remote_get_blob(const struct kc_remote_call *call, const char *field,
		uint8_t **blob, size_t *blob_len, struct kc_error *err)
{
	const char *encoded = json_string_value(json_object_get(call->response, field));
	size_t encoded_len = encoded ? strlen(encoded) : 0;
	const char *end = NULL;
	uint8_t *decoded;

	*blob = NULL;
	*blob_len = 0;
	if (!encoded_len)
		return kc_fail(err, KC_INTERNAL, "%s answer: no %s", call->operation, field);
	decoded = malloc(encoded_len);   /* base64 decodes to less */
	if (!decoded)
		return kc_fail(err, KC_INTERNAL, "%s answer: out of memory", call->operation);
	if (sodium_base642bin(decoded, encoded_len, encoded, encoded_len, NULL, blob_len, &end,
			sodium_base64_VARIANT_ORIGINAL) != 0 || end != encoded + encoded_len) {
		free(decoded);
		*blob_len = 0;
		return kc_fail(err, KC_INTERNAL, "%s answer: %s is not base64", call->operation, field);
	}
	*blob = decoded;
	return KC_OK;
}

enum kc_status kc_remote_get_string(const struct kc_remote_call *call, json_t *obj,
		const char *field, char *out, size_t cap, struct kc_error *err)
{
	const char *value = json_string_value(json_object_get(obj, field));

	if (!value || strlen(value) >= cap)
		return kc_fail(err, KC_INTERNAL, "%s answer: %s missing or longer than %zu",
				call->operation, field, cap - 1);
	memcpy(out, value, strlen(value) + 1);
	return KC_OK;
}

/* ---- data-key operations ---------------------------------------------------------------- */

static void clear_outputs(uint8_t **blob, size_t *blob_len, char arn_out[KC_ARN_MAX])
{
	if (blob)
		*blob = NULL;
	if (blob_len)
		*blob_len = 0;
	if (arn_out)
		arn_out[0] = '\0';
}

/* The answer's KeyId (an ARN) into arn_out, if the caller wants it. */
static enum kc_status get_arn(const struct kc_remote_call *call, char arn_out[KC_ARN_MAX],
		struct kc_error *err)
{
	if (!arn_out)
		return KC_OK;
	return kc_remote_get_string(call, call->response, "KeyId", arn_out, KC_ARN_MAX, err);
}

/* A request object with the key (when given: Decrypt's is optional) and the context. */
static json_t *request_new(const char *key_field, const char *key_id, const char *ctx_field,
		const struct kc_context *ctx)
{
	json_t *request = json_object();

	if (request && key_id)
		json_object_set_new(request, key_field, json_string(key_id));
	if (request)
		kc_remote_put_context(request, ctx_field, ctx);
	return request;
}

static enum kc_status remote_generate_data_key(struct keyclient *kc, const char *key_id,
		const struct kc_context *ctx, const struct kc_caller *caller,
		uint8_t *plaintext, size_t plaintext_len, uint8_t **blob, size_t *blob_len,
		char key_arn_out[KC_ARN_MAX], struct kc_error *err)
{
	struct kc_remote_call call = { .operation = "GenerateDataKey", .caller = caller };
	size_t got = 0;
	enum kc_status rc;

	clear_outputs(blob, blob_len, key_arn_out);
	if (!key_id || !plaintext || !blob || !blob_len || plaintext_len == 0 ||
	    plaintext_len > DATA_KEY_MAX)
		return kc_fail(err, KC_VALIDATION, "GenerateDataKey: key id missing or data key length "
				"%zu not in 1..%d", plaintext_len, DATA_KEY_MAX);
	call.request = request_new("KeyId", key_id, "EncryptionContext", ctx);
	json_object_set_new(call.request, "NumberOfBytes", json_integer((json_int_t)plaintext_len));
	call.plaintext_out = plaintext;
	call.plaintext_cap = plaintext_len;
	call.plaintext_len = &got;
	rc = kc_remote_call(kc_remote_of(kc), &call, err);
	if (rc == KC_OK && got != plaintext_len)
		rc = kc_fail(err, KC_INTERNAL, "GenerateDataKey answer: a %zu-byte data key, not %zu",
				got, plaintext_len);
	if (rc == KC_OK)
		rc = kc_remote_get_blob(&call, "CiphertextBlob", blob, blob_len, err);
	if (rc == KC_OK)
		rc = get_arn(&call, key_arn_out, err);
	if (rc != KC_OK) {
		sodium_memzero(plaintext, plaintext_len);
		free(*blob);
		clear_outputs(blob, blob_len, NULL);
	}
	json_decref(call.request);
	json_decref(call.response);
	return rc;
}

static enum kc_status remote_decrypt(struct keyclient *kc, const char *key_id,
		const uint8_t *blob, size_t blob_len, const struct kc_context *ctx,
		const struct kc_caller *caller, uint8_t *plaintext, size_t plaintext_cap,
		size_t *plaintext_len, char key_arn_out[KC_ARN_MAX], struct kc_error *err)
{
	struct kc_remote_call call = { .operation = "Decrypt", .caller = caller };
	enum kc_status rc;

	clear_outputs(NULL, NULL, key_arn_out);
	if (!plaintext || !plaintext_len || !blob || blob_len == 0)
		return kc_fail(err, KC_VALIDATION, "Decrypt: no ciphertext blob or plaintext buffer");
	*plaintext_len = 0;
	call.request = request_new("KeyId", key_id, "EncryptionContext", ctx);
	if (kc_remote_put_blob(call.request, "CiphertextBlob", blob, blob_len) != 0) {
		rc = kc_fail(err, KC_INTERNAL, "Decrypt: out of memory");
		goto out;
	}
	call.plaintext_out = plaintext;
	call.plaintext_cap = plaintext_cap;
	call.plaintext_len = plaintext_len;
	rc = kc_remote_call(kc_remote_of(kc), &call, err);
	if (rc == KC_OK)
		rc = get_arn(&call, key_arn_out, err);
	if (rc != KC_OK) {
		sodium_memzero(plaintext, plaintext_cap);
		*plaintext_len = 0;
	}
out:
	json_decref(call.request);
	json_decref(call.response);
	return rc;
}

static enum kc_status remote_encrypt(struct keyclient *kc, const char *key_id,
		const uint8_t *plaintext, size_t plaintext_len, const struct kc_context *ctx,
		const struct kc_caller *caller, uint8_t **blob, size_t *blob_len,
		struct kc_error *err)
{
	struct kc_remote_call call = {
		.operation = "Encrypt", .caller = caller,
		.secret_in_name = "Plaintext", .secret_in = plaintext, .secret_in_len = plaintext_len,
	};
	enum kc_status rc;

	clear_outputs(blob, blob_len, NULL);
	if (!key_id || !plaintext || !blob || !blob_len || plaintext_len == 0 ||
	    plaintext_len > ENCRYPT_MAX)
		return kc_fail(err, KC_VALIDATION, "Encrypt: key id missing or plaintext length %zu "
				"not in 1..%d", plaintext_len, ENCRYPT_MAX);
	call.request = request_new("KeyId", key_id, "EncryptionContext", ctx);
	rc = kc_remote_call(kc_remote_of(kc), &call, err);
	if (rc == KC_OK)
		rc = kc_remote_get_blob(&call, "CiphertextBlob", blob, blob_len, err);
	json_decref(call.request);
	json_decref(call.response);
	return rc;
}

static enum kc_status remote_re_encrypt(struct keyclient *kc,
		const uint8_t *blob, size_t blob_len, const struct kc_context *src_ctx,
		const char *dst_key_id, const struct kc_context *dst_ctx,
		const struct kc_caller *caller, uint8_t **new_blob, size_t *new_blob_len,
		char dst_key_arn_out[KC_ARN_MAX], struct kc_error *err)
{
	struct kc_remote_call call = { .operation = "ReEncrypt", .caller = caller };
	enum kc_status rc;

	clear_outputs(new_blob, new_blob_len, dst_key_arn_out);
	if (!blob || blob_len == 0 || !dst_key_id || !new_blob || !new_blob_len)
		return kc_fail(err, KC_VALIDATION, "ReEncrypt: ciphertext blob, destination key or "
				"output missing");
	call.request = request_new("DestinationKeyId", dst_key_id, "DestinationEncryptionContext",
			dst_ctx);
	kc_remote_put_context(call.request, "SourceEncryptionContext", src_ctx);
	if (kc_remote_put_blob(call.request, "CiphertextBlob", blob, blob_len) != 0) {
		rc = kc_fail(err, KC_INTERNAL, "ReEncrypt: out of memory");
		goto out;
	}
	rc = kc_remote_call(kc_remote_of(kc), &call, err);
	if (rc == KC_OK)
		rc = kc_remote_get_blob(&call, "CiphertextBlob", new_blob, new_blob_len, err);
	if (rc == KC_OK)
		rc = get_arn(&call, dst_key_arn_out, err);
	if (rc != KC_OK) {
		free(*new_blob);
		clear_outputs(new_blob, new_blob_len, NULL);
	}
out:
	json_decref(call.request);
	json_decref(call.response);
	return rc;
}
