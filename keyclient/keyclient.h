/*
 * keyclient.h - the one interface kmsfs uses to reach a key service.
 *
 * Modelled on aws-encryption-sdk-c's keyrings: a small vtable, and the
 * caller never knows which backend answered. Backends:
 *   - the local engine (embedded key service: SQLite key store whose key
 *     material is sealed under a root key) - the default, and kmsd's
 *     engine (kms_api.h serves it as the AWS KMS API);
 *   - the remote transport (remote.c): the AWS KMS JSON 1.1 API over
 *     HTTP(S) with SigV4, to kmsd or to AWS KMS itself.
 *
 * Every operation takes the caller's principal and, for data-key
 * operations, an encryption context; errors come back as AWS KMS error
 * types (kc_error.type, e.g. "AccessDeniedException") with a message.
 *
 * The audit log (CloudTrail-format JSON Lines) also lives here: every
 * data-key decrypt through a keyclient is recorded, allowed or denied.
 */
#ifndef KMSFS_KEYCLIENT_H
#define KMSFS_KEYCLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- status and errors ------------------------------------------------ */

enum kc_status {
	KC_OK = 0,
	KC_NOT_FOUND,            /* NotFoundException */
	KC_DISABLED,             /* DisabledException */
	KC_INVALID_STATE,        /* KMSInvalidStateException */
	KC_INVALID_CIPHERTEXT,   /* InvalidCiphertextException */
	KC_ACCESS_DENIED,        /* AccessDeniedException */
	KC_ALREADY_EXISTS,       /* AlreadyExistsException */
	KC_VALIDATION,           /* ValidationException */
	KC_INVALID_ALIAS,        /* InvalidAliasNameException */
	KC_INVALID_KEY_USAGE,    /* InvalidKeyUsageException */
	KC_INCORRECT_KEY,        /* IncorrectKeyException (decrypt with wrong KeyId) */
	KC_DEPENDENCY_TIMEOUT,   /* DependencyTimeoutException (service unreachable) */
	KC_INTERNAL,             /* KMSInternalException */
	KC_WRONG_PASSPHRASE,     /* not an AWS type: the key store could not be unlocked */
	/* the rest of the AWS KMS API's error types (kmsd, remote transport) */
	KC_UNKNOWN_OPERATION,    /* UnknownOperationException */
	KC_SERIALIZATION,        /* SerializationException (bad JSON, wrong field type) */
	KC_LIMIT_EXCEEDED,       /* LimitExceededException */
	KC_MALFORMED_POLICY,     /* MalformedPolicyDocumentException */
	KC_TAG,                  /* TagException */
	KC_INVALID_ARN,          /* InvalidArnException */
	KC_INVALID_GRANT_ID,     /* InvalidGrantIdException */
	KC_INVALID_GRANT_TOKEN,  /* InvalidGrantTokenException */
	KC_INVALID_MARKER,       /* InvalidMarkerException */
	KC_UNSUPPORTED_OPERATION,/* UnsupportedOperationException */
	KC_INVALID_IMPORT_TOKEN, /* InvalidImportTokenException */
	KC_EXPIRED_IMPORT_TOKEN, /* ExpiredImportTokenException */
	KC_INCORRECT_KEY_MATERIAL, /* IncorrectKeyMaterialException */
	KC_KMS_INVALID_SIGNATURE,/* KMSInvalidSignatureException (Verify: signature does not match) */
	KC_MISSING_AUTH,         /* MissingAuthenticationTokenException (unsigned request) */
	KC_UNRECOGNIZED_CLIENT,  /* UnrecognizedClientException (unknown access key id) */
	KC_INVALID_SIGNATURE,    /* InvalidSignatureException (SigV4 signature wrong or expired) */
	KC_INCOMPLETE_SIGNATURE, /* IncompleteSignatureException (Authorization header malformed) */
};

struct kc_error {
	enum kc_status status;
	char type[64];           /* AWS __type name, "" when KC_OK */
	char message[512];       /* human readable; never contains key material */
};

/* AWS KMS __type name for a status ("AccessDeniedException", ...). */
const char *kc_status_type(enum kc_status status);
/* The HTTP status AWS KMS answers a status with (200, 400, 403, 500, 503). */
int kc_status_http(enum kc_status status);
/* Inverse of kc_status_type (the remote transport reads __type); KC_INTERNAL if unknown. */
enum kc_status kc_status_from_type(const char *type);
/* Fill err (may be NULL) and return status; printf-style message. */
enum kc_status kc_fail(struct kc_error *err, enum kc_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- encryption context ------------------------------------------------ */

#define KC_MAX_CONTEXT_PAIRS 16

struct kc_pair {
	const char *key;
	const char *value;
};

struct kc_context {
	size_t count;
	struct kc_pair pairs[KC_MAX_CONTEXT_PAIRS];
};

/* Append a pair (pointers are borrowed). -1 when full. */
int kc_context_add(struct kc_context *ctx, const char *key, const char *value);

/* ---- caller identity --------------------------------------------------- */

/*
 * Who is asking. principal is the name the key service authorizes
 * ("uid:1000" for the local engine, an IAM ARN for a remote service);
 * uid/pid/process are recorded in the audit log.
 */
struct kc_caller {
	const char *principal;
	uid_t uid;
	pid_t pid;
	/*
	 * Remote callers (kmsd) also carry their access key id, where the
	 * request came from, and their identity policy: the IAM-style action
	 * patterns their own policy allows ("kms:*", "kms:Describe*"), a
	 * NULL-terminated array, NULL for none. An engine opened with an
	 * account (kc_local_options.account) authorizes by key policy, grants
	 * and this identity policy, as AWS KMS does.
	 */
	const char *access_key_id;
	const char *source_ip;
	const char *user_agent;
	const char *const *identity_allow;
};

/* ---- key metadata ------------------------------------------------------ */

#define KC_KEY_ID_LEN 36         /* UUID text form */
#define KC_ARN_MAX 160

enum kc_key_state {
	KC_KEY_ENABLED, KC_KEY_DISABLED, KC_KEY_PENDING_DELETION, KC_KEY_PENDING_IMPORT,
};

struct kc_key_info {
	char key_id[KC_KEY_ID_LEN + 1];
	char arn[KC_ARN_MAX];
	char description[256];
	enum kc_key_state state;
	int64_t creation_date;          /* unix seconds */
	uint32_t material_versions;     /* number of key material versions (rotations + 1) */
	char aliases[8][256];           /* "alias/name" */
	size_t alias_count;
	char principals[8][128];        /* principals listed on the key (besides the owner) */
	size_t principal_count;
};

/* ---- the interface ------------------------------------------------------ */

struct keyclient;
struct kc_audit;

/*
 * Data-key operations (the FS path) and key management (the CLI path).
 * Plaintext outputs (data keys) are written into caller-provided buffers,
 * which must be secure memory; blobs are malloc'ed and owned by the caller.
 * key_id may be a key id, key ARN, "alias/name" or alias ARN.
 * key_arn_out (may be NULL) receives the ARN of the key that was used.
 */
struct keyclient_ops {
	const char *name;   /* "local", "remote" */

	enum kc_status (*generate_data_key)(struct keyclient *kc, const char *key_id,
			const struct kc_context *ctx, const struct kc_caller *caller,
			uint8_t *plaintext, size_t plaintext_len,
			uint8_t **blob, size_t *blob_len,
			char key_arn_out[KC_ARN_MAX], struct kc_error *err);
	/* key_id NULL: any key of this service (the blob names its key). */
	enum kc_status (*decrypt)(struct keyclient *kc, const char *key_id,
			const uint8_t *blob, size_t blob_len,
			const struct kc_context *ctx, const struct kc_caller *caller,
			uint8_t *plaintext, size_t plaintext_cap, size_t *plaintext_len,
			char key_arn_out[KC_ARN_MAX], struct kc_error *err);
	enum kc_status (*encrypt)(struct keyclient *kc, const char *key_id,
			const uint8_t *plaintext, size_t plaintext_len,
			const struct kc_context *ctx, const struct kc_caller *caller,
			uint8_t **blob, size_t *blob_len, struct kc_error *err);
	enum kc_status (*re_encrypt)(struct keyclient *kc,
			const uint8_t *blob, size_t blob_len, const struct kc_context *src_ctx,
			const char *dst_key_id, const struct kc_context *dst_ctx,
			const struct kc_caller *caller,
			uint8_t **new_blob, size_t *new_blob_len,
			char dst_key_arn_out[KC_ARN_MAX], struct kc_error *err);

	/* key management */
	enum kc_status (*create_key)(struct keyclient *kc, const char *description,
			const struct kc_caller *caller, struct kc_key_info *out, struct kc_error *err);
	enum kc_status (*describe_key)(struct keyclient *kc, const char *key_id,
			const struct kc_caller *caller, struct kc_key_info *out, struct kc_error *err);
	/* Calls fn once per key; stops early if fn returns non-zero. */
	enum kc_status (*list_keys)(struct keyclient *kc, const struct kc_caller *caller,
			int (*fn)(const struct kc_key_info *info, void *arg), void *arg,
			struct kc_error *err);
	/* alias_name "alias/x"; target_key_id NULL deletes the alias. Re-pointing an alias is allowed. */
	enum kc_status (*set_alias)(struct keyclient *kc, const char *alias_name,
			const char *target_key_id, const struct kc_caller *caller, struct kc_error *err);
	enum kc_status (*set_key_enabled)(struct keyclient *kc, const char *key_id, int enabled,
			const struct kc_caller *caller, struct kc_error *err);
	/* New key material; older versions stay for decrypt. */
	enum kc_status (*rotate_key)(struct keyclient *kc, const char *key_id,
			const struct kc_caller *caller, struct kc_error *err);
	/* Add (allow=1) or remove (allow=0) a principal listed on the key. */
	enum kc_status (*set_key_principal)(struct keyclient *kc, const char *key_id,
			const char *principal, int allow, const struct kc_caller *caller,
			struct kc_error *err);

	/* Frees kc->impl (wiping secrets); keyclient_free frees kc itself. */
	void (*destroy)(struct keyclient *kc);
};

struct keyclient {
	const struct keyclient_ops *ops;
	struct kc_audit *audit;    /* may be NULL; set with keyclient_set_audit */
	void *impl;                /* backend state */
	const char *service;       /* which service answers: NULL = ops->name; a remote endpoint URL */
};

/* What a volume records as its key service: "local", or the remote endpoint. */
const char *keyclient_service(const struct keyclient *kc);

/*
 * Convenience wrappers: kc->ops->x(kc, ...), plus one audit record per
 * call (allowed or denied) when an audit log is set.
 */
enum kc_status keyclient_generate_data_key(struct keyclient *kc, const char *key_id,
		const struct kc_context *ctx, const struct kc_caller *caller,
		uint8_t *plaintext, size_t plaintext_len, uint8_t **blob, size_t *blob_len,
		char key_arn_out[KC_ARN_MAX], struct kc_error *err);
enum kc_status keyclient_decrypt(struct keyclient *kc, const char *key_id,
		const uint8_t *blob, size_t blob_len, const struct kc_context *ctx,
		const struct kc_caller *caller, uint8_t *plaintext, size_t plaintext_cap,
		size_t *plaintext_len, char key_arn_out[KC_ARN_MAX], struct kc_error *err);
/*
 * The same two calls on behalf of a file: path (inside the volume, may be
 * NULL) goes into the audit record's additionalEventData.path, so the log
 * says which file a data key was generated or decrypted for.
 */
enum kc_status keyclient_generate_data_key_file(struct keyclient *kc, const char *key_id,
		const struct kc_context *ctx, const struct kc_caller *caller, const char *path,
		uint8_t *plaintext, size_t plaintext_len, uint8_t **blob, size_t *blob_len,
		char key_arn_out[KC_ARN_MAX], struct kc_error *err);
enum kc_status keyclient_decrypt_file(struct keyclient *kc, const char *key_id,
		const uint8_t *blob, size_t blob_len, const struct kc_context *ctx,
		const struct kc_caller *caller, const char *path, uint8_t *plaintext,
		size_t plaintext_cap, size_t *plaintext_len, char key_arn_out[KC_ARN_MAX],
		struct kc_error *err);
enum kc_status keyclient_encrypt(struct keyclient *kc, const char *key_id,
		const uint8_t *plaintext, size_t plaintext_len, const struct kc_context *ctx,
		const struct kc_caller *caller, uint8_t **blob, size_t *blob_len,
		struct kc_error *err);
enum kc_status keyclient_re_encrypt(struct keyclient *kc,
		const uint8_t *blob, size_t blob_len, const struct kc_context *src_ctx,
		const char *dst_key_id, const struct kc_context *dst_ctx,
		const struct kc_caller *caller, uint8_t **new_blob, size_t *new_blob_len,
		char dst_key_arn_out[KC_ARN_MAX], struct kc_error *err);
/* Encrypt and ReEncrypt on behalf of a file (snapshot copy, rekey): path as above. */
enum kc_status keyclient_encrypt_file(struct keyclient *kc, const char *key_id,
		const uint8_t *plaintext, size_t plaintext_len, const struct kc_context *ctx,
		const struct kc_caller *caller, const char *path, uint8_t **blob, size_t *blob_len,
		struct kc_error *err);
enum kc_status keyclient_re_encrypt_file(struct keyclient *kc,
		const uint8_t *blob, size_t blob_len, const struct kc_context *src_ctx,
		const char *dst_key_id, const struct kc_context *dst_ctx,
		const struct kc_caller *caller, const char *path, uint8_t **new_blob,
		size_t *new_blob_len, char dst_key_arn_out[KC_ARN_MAX], struct kc_error *err);
/*
 * CreateAlias: like ops->set_alias, but KC_ALREADY_EXISTS when alias_name
 * already names a key (ops->set_alias re-points it). Checked through
 * describe_key, so two concurrent creators may both succeed.
 */
enum kc_status keyclient_create_alias(struct keyclient *kc, const char *alias_name,
		const char *target_key_id, const struct kc_caller *caller, struct kc_error *err);
/* The audit log is borrowed: close it after keyclient_free. */
void keyclient_set_audit(struct keyclient *kc, struct kc_audit *audit);
/* ops->destroy (wipes the backend's secrets), then frees kc. NULL is fine. */
void keyclient_free(struct keyclient *kc);

/* "Enabled", "Disabled", "PendingDeletion" (AWS KeyState names). */
const char *kc_key_state_name(enum kc_key_state state);

/* ---- the local engine ---------------------------------------------------- */

/*
 * Where a passphrase comes from, in this order: passfile, extpass command,
 * the KMSFS_PASSPHRASE environment variable, a prompt on the TTY (twice
 * when creating). Returns a NUL-terminated passphrase in secure memory
 * (free with kmsfs_secure_free) or NULL with err filled.
 */
struct kc_passphrase_source {
	const char *passfile;
	const char *extpass;
	int confirm;      /* ask twice on a TTY (creating a key store) */
};
char *kc_passphrase_get(const struct kc_passphrase_source *src, struct kc_error *err);

/* Default key store directory: $XDG_DATA_HOME/kmsfs or ~/.local/share/kmsfs. */
int kc_default_keystore(char *out, size_t out_len);
/* Does the key store at dir exist (has its database)? */
int kc_keystore_exists(const char *dir);

/*
 * Open (or, with create=1, create if missing) the key store at dir and
 * unlock it with passphrase. Wrong passphrase: KC_WRONG_PASSPHRASE.
 * The key store's owner is the uid that created it (principal "uid:N").
 */
enum kc_status kc_local_open(const char *dir, const char *passphrase, int create,
		struct keyclient **out, struct kc_error *err);

/*
 * The same engine as a key service (kmsd): where its root key comes from,
 * and the region and account its ARNs name. Exactly one root key source:
 *   passphrase   Argon2id over the passphrase (as kc_local_open);
 *   keyfile      a file holding at least 32 random bytes (mode 0600 or
 *                stricter), HKDF'd to the root key;
 *   pkcs11_uri   an RFC 7512 PKCS#11 URI ("pkcs11:token=kmsd;object=root;
 *                pin-value=..." or pin-source=file); the root key is random
 *                and kept wrapped by that token's AES key, which never
 *                leaves the token (the custom-key-store analogue).
 * region/account NULL: "local" / "000000000000" and the embedded engine's
 * owner-and-listed-principals rule; with an account set, every request is
 * authorized by key policy, grants and the caller's identity policy.
 */
struct kc_local_options {
	const char *dir;
	int create;
	const char *passphrase;
	const char *keyfile;
	const char *pkcs11_uri;
	const char *pkcs11_module;   /* NULL: the p11-kit proxy, or SoftHSM's module */
	const char *region;
	const char *account;
	int exclusive;               /* hold the store for this process alone (a key service) */
};
enum kc_status kc_local_open_opts(const struct kc_local_options *opts,
		struct keyclient **out, struct kc_error *err);

/* Principal name the local engine uses for a uid: "uid:N". */
void kc_local_principal(uid_t uid, char *out, size_t out_len);

/* ---- the remote transport -------------------------------------------------- */

/*
 * The same interface over the AWS KMS JSON 1.1 API (HTTP or HTTPS, SigV4),
 * to kmsd or to AWS KMS itself. Each call is signed with the credentials
 * registered for caller->principal (kc_remote_add_principal); a principal
 * with none sends the request unsigned, which the service answers with
 * MissingAuthenticationTokenException.
 *
 * Network errors, timeouts, HTTP 5xx and throttling errors
 * (ThrottlingException and the rest of the AWS SDKs' list) are retried
 * with exponential backoff and full jitter; other 4xx answers never are.
 * When the attempts run out unanswered: KC_DEPENDENCY_TIMEOUT ("key
 * service <endpoint> unreachable: ..."). TLS peers are always verified.
 * set_key_principal answers KC_UNSUPPORTED_OPERATION: a remote key's
 * policy and grants are managed with the service's own tools.
 */
struct kc_remote_options {
	const char *endpoint;        /* "http://127.0.0.1:4599", "https://kms.us-east-1.amazonaws.com" */
	const char *region;          /* the SigV4 credential scope: "us-east-1" */
	const char *ca_file;         /* PEM CA bundle to trust instead of the system's; NULL: system */
	long connect_timeout_ms;     /* 0: 2000 */
	long request_timeout_ms;     /* one attempt, connecting included; 0: 5000 */
	int retries;                 /* attempts after the first; 0: 3, KC_REMOTE_NO_RETRY: none */
	long backoff_base_ms;        /* first retry waits up to this; 0: 50 */
	long backoff_max_ms;         /* no retry waits longer; 0: 1000 */
};
#define KC_REMOTE_NO_RETRY (-1)

/* What signs a principal's requests; copied into secure memory by kc_remote_add_principal. */
struct kc_remote_credentials {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;   /* NULL: long-term keys; else sent as X-Amz-Security-Token */
};

/* No network traffic yet: connections are made by the first calls. */
enum kc_status kc_remote_open(const struct kc_remote_options *opts, struct keyclient **out,
		struct kc_error *err);

/*
 * Sign principal's calls with creds from now on (replacing what it had:
 * refreshed session credentials). Safe while other threads make calls.
 * kc not a remote keyclient, or creds incomplete: KC_VALIDATION.
 */
enum kc_status kc_remote_add_principal(struct keyclient *kc, const char *principal,
		const struct kc_remote_credentials *creds, struct kc_error *err);

/* ---- audit log ------------------------------------------------------------ */

struct kc_audit;

/* Open (create, append) a CloudTrail-format JSON Lines log. NULL with errno set. */
struct kc_audit *kc_audit_open(const char *path);
void kc_audit_close(struct kc_audit *audit);

/*
 * One record. event_source e.g. "kms.amazonaws.com" or "kmsfs";
 * event_name e.g. "Decrypt", "GenerateDataKey", "BlockAuthenticationFailure".
 * key_id/ctx/path may be NULL; block_index < 0 means none. err NULL or
 * KC_OK means success (no errorCode). Each record is written with one
 * write(2) on an O_APPEND descriptor, so concurrent writers never interleave.
 */
struct kc_audit_event {
	const char *event_source;
	const char *event_name;
	const struct kc_caller *caller;
	const char *key_id;
	const struct kc_context *ctx;
	const char *path;          /* file path inside the volume, for FS events */
	int64_t block_index;
	const struct kc_error *err;
	const char *key_arn;       /* ARN of the key actually used, for resources; NULL: from key_id */
	int bucket_key;            /* data key (un)wrapped locally under a bucket key:
				      additionalEventData.bucketKey = true */
};
void kc_audit_record(struct kc_audit *audit, const struct kc_audit_event *ev);

#endif /* KMSFS_KEYCLIENT_H */
