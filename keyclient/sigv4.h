/*
 * sigv4.h - AWS Signature Version 4 (header form), both directions.
 *
 * kmsd verifies every request's "Authorization: AWS4-HMAC-SHA256
 * Credential=..., SignedHeaders=..., Signature=..." header with
 * kc_sigv4_verify; the remote transport signs its requests with
 * kc_sigv4_sign. The steps in between (canonical request, string to sign,
 * signing key, signature) are public too, so the AWS test suite can check
 * each of them byte for byte.
 *
 * Canonicalisation follows what the AWS SDKs and the AWS CLI send:
 *   path   each byte outside A-Za-z0-9-._~ and '/' percent-encoded, the
 *          wire path encoded once more ("double encoding"), "." and ".."
 *          segments resolved and "//" collapsed - except for S3, whose
 *          path is signed as it is on the wire;
 *   query  parameters percent-decoded, re-encoded, sorted by name then
 *          value ('+' is a literal plus, not a space);
 *   headers lower-case names in the order of SignedHeaders, values trimmed
 *          with inner whitespace runs collapsed to one space, repeated
 *          headers joined with ',' in the order they came;
 *   payload hex SHA-256 of the body.
 *
 * Only the header form: presigned URLs (X-Amz-Signature in the query)
 * are not accepted, and neither is chunked (streaming) payload signing.
 *
 * Errors come back as kc_status with AWS's error types and messages:
 * KC_MISSING_AUTH, KC_INCOMPLETE_SIGNATURE (Authorization header or date
 * malformed), KC_INVALID_SIGNATURE (scope, clock skew, signature),
 * KC_UNRECOGNIZED_CLIENT (unknown access key id).
 */
#ifndef KMSFS_KEYCLIENT_SIGV4_H
#define KMSFS_KEYCLIENT_SIGV4_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "keyclient.h"

#define KC_SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define KC_SIGV4_TERMINATOR "aws4_request"
#define KC_SIGV4_MAX_SKEW 900            /* seconds, as AWS allows */
#define KC_SIGV4_KEY_LEN 32              /* derived signing key (HMAC-SHA256) */
#define KC_SIGV4_HEX_LEN 64              /* hex SHA-256 / signature */
#define KC_SIGV4_AMZ_DATE_LEN 16         /* "20150830T123600Z" */
#define KC_SIGV4_FIELD_MAX 128           /* access key id, region, service: longest + 1 */
#define KC_SIGV4_SIGNED_HEADERS_MAX 2048 /* "host;x-amz-date;...": longest + 1 */
/* "AWS4-HMAC-SHA256\n" date "\n" date8/region/service/aws4_request "\n" hex */
#define KC_SIGV4_STRING_TO_SIGN_MAX (64 + 2 * KC_SIGV4_FIELD_MAX + KC_SIGV4_HEX_LEN)

/* ---- the request ---------------------------------------------------------- */

/* Borrowed strings. Names in any case; a name may repeat. */
struct kc_http_header {
	const char *name;
	const char *value;
};

/*
 * One HTTP request as it is (or will be) on the wire: path and query raw
 * (still percent-encoded; query without the '?', NULL or "" for none).
 */
struct kc_sigv4_request {
	const char *method;
	const char *path;
	const char *query;
	const struct kc_http_header *headers;
	size_t header_count;
	const uint8_t *body;
	size_t body_len;
};

/*
 * How the path is canonicalised. The default (0) is what every service
 * but S3 does; service "s3" implies KC_SIGV4_PATH_AS_IS.
 */
enum kc_sigv4_flags {
	KC_SIGV4_NO_NORMALIZE = 1u << 0,  /* keep ".", ".." and empty segments (still encoded) */
	KC_SIGV4_PATH_AS_IS = 1u << 1,    /* sign the wire path verbatim (S3) */
};

/* ---- the Authorization header ---------------------------------------------- */

struct kc_sigv4_auth {
	char access_key_id[KC_SIGV4_FIELD_MAX];
	char date[9];                    /* YYYYMMDD of the credential scope */
	char region[KC_SIGV4_FIELD_MAX];
	char service[KC_SIGV4_FIELD_MAX];
	char terminator[KC_SIGV4_FIELD_MAX];
	char signed_headers[KC_SIGV4_SIGNED_HEADERS_MAX];  /* as sent: "host;x-amz-date" */
	char signature[KC_SIGV4_HEX_LEN + 1];              /* as sent (at most 64 chars) */
};

/*
 * Parse "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/kms/aws4_request,
 * SignedHeaders=host;x-amz-date, Signature=<hex>" (components in any
 * order, spaces after the commas optional). Only the syntax is checked
 * here; kc_sigv4_verify checks the values. Anything malformed (another
 * algorithm, a missing or repeated component, a credential without five
 * '/'-separated parts, an over-long field): KC_INCOMPLETE_SIGNATURE with
 * AWS's message.
 */
enum kc_status kc_sigv4_parse_authorization(const char *value, struct kc_sigv4_auth *out,
		struct kc_error *err);

/* ---- the signing steps ------------------------------------------------------- */

/* Lower-case hex SHA-256 of data (the payload hash, x-amz-content-sha256). 0 or -1. */
int kc_sigv4_sha256_hex(const void *data, size_t len, char out[KC_SIGV4_HEX_LEN + 1]);

/*
 * The canonical request over the headers named in signed_headers
 * ("host;x-amz-date", the Authorization header's list; each is looked up
 * in req case-insensitively, a missing one signs as empty). payload_hash
 * NULL: the SHA-256 of req's body. flags: enum kc_sigv4_flags.
 *
 * _into writes like snprintf: at most cap bytes, NUL-terminated when cap
 * > 0, and *len gets the full length; when *len >= cap, call again with a
 * bigger buffer. KC_INTERNAL only when memory runs out.
 * kc_sigv4_canonical_request returns a malloc'ed string instead.
 */
enum kc_status kc_sigv4_canonical_request_into(const struct kc_sigv4_request *req,
		const char *signed_headers, const char *payload_hash, unsigned flags,
		char *buf, size_t cap, size_t *len, struct kc_error *err);
enum kc_status kc_sigv4_canonical_request(const struct kc_sigv4_request *req,
		const char *signed_headers, const char *payload_hash, unsigned flags,
		char **out, struct kc_error *err);

/*
 * The headers kc_sigv4_sign signs: every header of req, lower-cased,
 * sorted, once each, but for those proxies and HTTP stacks add or change
 * on the way (authorization, user-agent, expect, x-amzn-trace-id,
 * connection, transfer-encoding). KC_VALIDATION when a name is empty or
 * not an HTTP token, or the list would not fit out.
 */
enum kc_status kc_sigv4_signed_headers(const struct kc_sigv4_request *req,
		char out[KC_SIGV4_SIGNED_HEADERS_MAX], struct kc_error *err);

/*
 * "AWS4-HMAC-SHA256\n<amz_date>\n<YYYYMMDD>/<region>/<service>/aws4_request\n
 * <hex SHA-256 of the canonical request>". amz_date is "20150830T123600Z".
 * KC_VALIDATION when amz_date is malformed or region/service too long.
 */
enum kc_status kc_sigv4_string_to_sign(const char *amz_date, const char *region,
		const char *service, const char *canonical_request, size_t canonical_len,
		char out[KC_SIGV4_STRING_TO_SIGN_MAX], struct kc_error *err);

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" secret, date8), region), service), "aws4_request"). */
enum kc_status kc_sigv4_signing_key(const char *secret, const char *date8,
		const char *region, const char *service, uint8_t out[KC_SIGV4_KEY_LEN],
		struct kc_error *err);

/* Lower-case hex HMAC-SHA256(signing key, string to sign). */
enum kc_status kc_sigv4_signature(const uint8_t key[KC_SIGV4_KEY_LEN],
		const char *string_to_sign, size_t len, char out[KC_SIGV4_HEX_LEN + 1],
		struct kc_error *err);

/* ---- signing (the client side) ---------------------------------------------- */

struct kc_sigv4_sign_params {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;   /* NULL: none; else signed as x-amz-security-token */
	const char *region;
	const char *service;         /* "kms" */
	const char *amz_date;        /* "20150830T123600Z", UTC */
	unsigned flags;              /* enum kc_sigv4_flags */
};

/*
 * The Authorization header value for req (malloc'ed into
 * *authorization_out). req must carry Host and whatever else the request
 * will carry (Content-Type, X-Amz-Target, ...); every header but the
 * kc_sigv4_signed_headers exceptions is signed. X-Amz-Date (amz_date) and,
 * with a session token, X-Amz-Security-Token are signed whether or not req
 * has them: the caller must send them. A header req has that disagrees
 * with amz_date, the token or the body's hash (X-Amz-Content-Sha256), a
 * missing Host: KC_VALIDATION.
 */
enum kc_status kc_sigv4_sign(const struct kc_sigv4_request *req,
		const struct kc_sigv4_sign_params *p, char **authorization_out,
		struct kc_error *err);

/* ---- verifying (the server side) ---------------------------------------------- */

/*
 * Derived signing keys, reused while the access key, day, region, service
 * and secret stay the same, so a verification costs two SHA-256 and one
 * HMAC instead of five HMACs. A handful of entries in locked memory,
 * mutex-protected: share one between threads. NULL when out of memory.
 */
struct kc_sigv4_key_cache;
struct kc_sigv4_key_cache *kc_sigv4_key_cache_new(void);
void kc_sigv4_key_cache_free(struct kc_sigv4_key_cache *cache);   /* wipes; NULL is fine */

/*
 * lookup returns the secret access key of access_key_id, or NULL when it
 * is unknown. The string must stay valid until release (if set) is called
 * with it, or until kc_sigv4_verify returns.
 */
struct kc_sigv4_verify_params {
	const char *region;                 /* this service's region: "us-east-1" (required) */
	const char *service;                /* "kms" (required) */
	time_t now;
	time_t max_skew;                    /* seconds; 0 means KC_SIGV4_MAX_SKEW */
	unsigned flags;                     /* enum kc_sigv4_flags */
	const char *(*lookup)(const char *access_key_id, void *arg);   /* required */
	void (*release)(const char *secret, void *arg);   /* may be NULL */
	void *arg;
	struct kc_sigv4_key_cache *cache;   /* may be NULL */
};

/* Who signed a request that verified. */
struct kc_sigv4_identity {
	char access_key_id[KC_SIGV4_FIELD_MAX];
	time_t signed_at;                   /* X-Amz-Date (or Date) */
};

/*
 * Verify req's Authorization header. In order: no Authorization header
 * -> KC_MISSING_AUTH; malformed header, no X-Amz-Date/Date or a malformed
 * one, host not signed -> KC_INCOMPLETE_SIGNATURE; credential scope of
 * another day, region, service or terminator, a date further than the
 * skew from now -> KC_INVALID_SIGNATURE; unknown access key ->
 * KC_UNRECOGNIZED_CLIENT; a signed X-Amz-Content-Sha256 that is not the
 * body's hash, or a signature that does not match (compared in constant
 * time) -> KC_INVALID_SIGNATURE. X-Amz-Security-Token is only a header
 * here: signed or not, it is not checked. who (may be NULL) is filled on
 * KC_OK.
 */
enum kc_status kc_sigv4_verify(const struct kc_sigv4_request *req,
		const struct kc_sigv4_verify_params *p, struct kc_sigv4_identity *who,
		struct kc_error *err);

#endif /* KMSFS_KEYCLIENT_SIGV4_H */
