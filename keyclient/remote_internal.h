/*
 * remote_internal.h - private declarations of the remote transport.
 *
 *   remote.c       opening, principals and their credentials, the
 *                  data-key operations (GenerateDataKey, Decrypt,
 *                  Encrypt, ReEncrypt)
 *   remote_keys.c  key management (CreateKey, DescribeKey, ListKeys,
 *                  aliases, Enable/DisableKey, RotateKeyOnDemand)
 *   remote_http.c  one JSON 1.1 call: body, SigV4, libcurl, retries with
 *                  backoff, the AWS error in the answer, and the plaintext
 *                  field decoded straight into the caller's secure buffer
 *
 * Nothing outside keyclient/ includes this header except its unit tests.
 */
#ifndef KMSFS_KEYCLIENT_REMOTE_INTERNAL_H
#define KMSFS_KEYCLIENT_REMOTE_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "keyclient.h"

#define KC_REMOTE_CONNECT_TIMEOUT_MS 2000
#define KC_REMOTE_REQUEST_TIMEOUT_MS 5000
#define KC_REMOTE_RETRIES 3
#define KC_REMOTE_BACKOFF_BASE_MS 50
#define KC_REMOTE_BACKOFF_MAX_MS 1000
#define KC_REMOTE_RESPONSE_MAX (4u << 20)   /* an answer longer than this is refused */
#define KC_REMOTE_HOST_MAX 300              /* "[v6 address]:port", a DNS name and port */
#define KC_REMOTE_REGION_MAX 64

struct kc_remote_conn;        /* remote_http.c: one libcurl handle and its buffers */
struct kc_remote_principal;   /* remote.c: one principal's credentials */

struct kc_remote {
	char *endpoint;                      /* as given, for messages */
	char *url;                           /* what libcurl is pointed at */
	char host[KC_REMOTE_HOST_MAX];       /* the Host header (signed) */
	char *path;                          /* the request path (signed): "/" */
	char region[KC_REMOTE_REGION_MAX];
	char *ca_file;                       /* NULL: the system's CAs */
	long connect_timeout_ms;
	long request_timeout_ms;
	int retries;
	long backoff_base_ms;
	long backoff_max_ms;

	/* Idle connections, one per thread that has been in a call at once. */
	pthread_mutex_t pool_lock;
	struct kc_remote_conn *idle;

	/* principal -> credentials; read by every call, written by add_principal. */
	pthread_rwlock_t principals_lock;
	struct kc_remote_principal *principals;
};

static inline struct kc_remote *kc_remote_of(struct keyclient *kc)
{
	return kc->impl;
}

/* ---- remote.c: credentials ---------------------------------------------------- */

/*
 * The credentials principal signs with, or NULL (unsigned). Returned with
 * principals_lock read-held: the strings stay valid until
 * kc_remote_credentials_release, which must be called either way.
 */
const struct kc_remote_credentials *kc_remote_credentials_hold(struct kc_remote *remote,
		const char *principal);
void kc_remote_credentials_release(struct kc_remote *remote);

/* ---- remote_http.c: one call -------------------------------------------------- */

/*
 * One operation. request is borrowed and must not hold secrets: a secret
 * input (Encrypt's plaintext) goes in secret_in and is written into the
 * body, in secure memory, as the base64 field secret_in_name. With
 * plaintext_out set, the answer's "Plaintext" is decoded straight into it
 * (plaintext_cap bytes, *plaintext_len set) and blanked before the rest of
 * the answer is parsed into *response (the caller json_decref's it).
 */
struct kc_remote_call {
	const char *operation;               /* "GenerateDataKey" */
	const struct kc_caller *caller;
	json_t *request;
	const char *secret_in_name;
	const uint8_t *secret_in;
	size_t secret_in_len;
	uint8_t *plaintext_out;
	size_t plaintext_cap;
	size_t *plaintext_len;
	json_t *response;
};

/* Send call (with retries); KC_OK with call->response set, or err filled. */
enum kc_status kc_remote_call(struct kc_remote *remote, struct kc_remote_call *call,
		struct kc_error *err);

/* Set up libcurl once per process. 0 or -1. */
int kc_remote_http_init(void);
/* Free every idle connection (all must be idle: no call in progress). */
void kc_remote_pool_free(struct kc_remote *remote);

/* ---- remote.c: JSON helpers shared by the operations ---------------------------- */

/* The encryption context as an EncryptionContext object (none: no field). */
void kc_remote_put_context(json_t *request, const char *field, const struct kc_context *ctx);
/* A blob field as base64. -1 when out of memory. */
int kc_remote_put_blob(json_t *request, const char *field, const uint8_t *blob, size_t len);
/* The base64 field of a response decoded into a malloc'ed blob; KC_INTERNAL when missing. */
enum kc_status kc_remote_get_blob(const struct kc_remote_call *call, const char *field,
		uint8_t **blob, size_t *blob_len, struct kc_error *err);
/* A string field copied into out (cap bytes); KC_INTERNAL when missing or too long. */
enum kc_status kc_remote_get_string(const struct kc_remote_call *call, json_t *obj,
		const char *field, char *out, size_t cap, struct kc_error *err);

/* ---- remote_keys.c: key management ops ------------------------------------------ */

enum kc_status kc_remote_create_key(struct keyclient *kc, const char *description,
		const struct kc_caller *caller, struct kc_key_info *out, struct kc_error *err);
enum kc_status kc_remote_describe_key(struct keyclient *kc, const char *key_id,
		const struct kc_caller *caller, struct kc_key_info *out, struct kc_error *err);
enum kc_status kc_remote_list_keys(struct keyclient *kc, const struct kc_caller *caller,
		int (*fn)(const struct kc_key_info *info, void *arg), void *arg,
		struct kc_error *err);
enum kc_status kc_remote_set_alias(struct keyclient *kc, const char *alias_name,
		const char *target_key_id, const struct kc_caller *caller, struct kc_error *err);
enum kc_status kc_remote_set_key_enabled(struct keyclient *kc, const char *key_id, int enabled,
		const struct kc_caller *caller, struct kc_error *err);
enum kc_status kc_remote_rotate_key(struct keyclient *kc, const char *key_id,
		const struct kc_caller *caller, struct kc_error *err);
enum kc_status kc_remote_set_key_principal(struct keyclient *kc, const char *key_id,
		const char *principal, int allow, const struct kc_caller *caller,
		struct kc_error *err);

#endif /* KMSFS_KEYCLIENT_REMOTE_INTERNAL_H */
