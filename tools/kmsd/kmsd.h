/*
 * kmsd.h - private declarations shared by the pieces of kmsd, the AWS KMS
 * JSON 1.1 front end over the local key engine (DESIGN.md §6).
 *
 *   main.c         command line, start-up, signals, maintenance thread
 *   config.c       the INI configuration: parse, validate, secret files
 *   server.c       libmicrohttpd: listener, body collection, replies
 *   request.c      one API request: checks, dispatch, reply, audit
 *   auth.c         SigV4 verification against the configured users
 *   audit_trail.c  CloudTrail-format records in daily JSON Lines files
 *   util.c         UUIDs, times, safe JSON text, secret-bearing files
 *
 * Nothing outside tools/kmsd includes this header.
 */
#ifndef KMSFS_KMSD_H
#define KMSFS_KMSD_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>

#include "keyclient.h"
#include "sigv4.h"

#define KMSD_VERSION "0.1.0"
#define KMSD_UUID_LEN 36             /* text form of a UUID */
#define KMSD_ERR_MAX (PATH_MAX + 1024) /* one error message: a path and the reason */
#define KMSD_ERROR_TYPE_MAX 64       /* fits kc_error.type */

/* ---- configuration (config.c) ------------------------------------------------------ */

enum kmsd_root_kind {
	KMSD_ROOT_NONE,
	KMSD_ROOT_PASSPHRASE_FILE,   /* root_key = passphrase-file:PATH */
	KMSD_ROOT_KEYFILE,           /* root_key = keyfile:PATH */
	KMSD_ROOT_PKCS11,            /* root_key = pkcs11:URI */
};

struct kmsd_user {
	char *name;                  /* from [user NAME] */
	char *arn;                   /* arn:aws:iam::ACCOUNT:user/NAME */
	char *principal_id;          /* stable "AIDA..." id for CloudTrail's principalId */
	char *access_key_id;
	char *secret;                /* sodium_malloc'ed, NUL-terminated */
	char **allow;                /* NULL-terminated action patterns; NULL: none */
	size_t allow_count;
};

struct kmsd_config {
	char path[PATH_MAX];         /* the configuration file, absolute */
	char dir[PATH_MAX];          /* its directory: relative paths start here */

	char *listen;                /* as written: "127.0.0.1:4599", "[::1]:0" */
	struct sockaddr_storage listen_addr;
	socklen_t listen_addr_len;

	char *region;
	char *account;
	char *data_dir;              /* absolute */
	char *audit_dir;             /* absolute */
	unsigned digest_period;      /* seconds per audit file and digest */
	enum kmsd_root_kind root_kind;
	char *root_path;             /* passphrase file or key file, absolute */
	char *pkcs11_uri;            /* sodium_malloc'ed: may hold pin-value */
	char *pkcs11_module;         /* absolute; NULL: the engine's default */
	char *tls_cert;              /* absolute; NULL: plain HTTP */
	char *tls_key;
	int create_store;            /* create the key store when data_dir has none */

	unsigned threads;
	size_t max_body;
	unsigned connection_timeout; /* seconds a connection may sit idle */
	unsigned max_connections;

	struct kmsd_user *users;
	size_t user_count;
};

/* Parse and validate path; on failure err says which file, line and why. */
int kmsd_config_load(const char *path, struct kmsd_config *cfg, char err[KMSD_ERR_MAX]);
/* Check the secret files the configuration names (mode, type, not empty). */
int kmsd_config_check_files(const struct kmsd_config *cfg, char err[KMSD_ERR_MAX]);
/* Wipes the secrets and frees everything; the struct may be reused. */
void kmsd_config_free(struct kmsd_config *cfg);
/* The user owning access_key_id, or NULL. */
const struct kmsd_user *kmsd_config_find_user(const struct kmsd_config *cfg,
		const char *access_key_id);

/* ---- utilities (util.c) ------------------------------------------------------------ */

/* Random (version 4) UUID, lower-case text. */
void kmsd_uuid_v4(char out[KMSD_UUID_LEN + 1]);
/* "2024-05-01T12:00:00Z" */
void kmsd_iso8601(time_t when, char out[32]);
/*
 * A JSON string for text that came from the network: bytes outside
 * printable ASCII become '?', and at most max bytes are kept. Never NULL
 * unless out of memory.
 */
json_t *kmsd_json_text(const char *text, size_t max);
/*
 * Read a file that holds a secret into sodium_malloc'ed memory (NUL
 * appended; free with sodium_free). Refused when it is not a regular file,
 * when group or others have any access to it, when it is empty or larger
 * than max. what names it in messages ("passphrase file").
 */
char *kmsd_read_secret_file(const char *path, const char *what, size_t max, size_t *len,
		char err[KMSD_ERR_MAX]);
/* A file with nothing secret in it (a certificate), malloc'ed and NUL-terminated. */
char *kmsd_read_text_file(const char *path, const char *what, size_t max,
		char err[KMSD_ERR_MAX]);
/* The same checks without reading (for --check-config). */
int kmsd_check_secret_file(const char *path, const char *what, char err[KMSD_ERR_MAX]);
/* Make jansson wipe every block it frees (request bodies hold plaintext). */
void kmsd_json_wipe_on_free(void);

/* ---- audit trail (audit_trail.c) --------------------------------------------------- */

struct kmsd_audit_trail;

/*
 * Open the trail in cfg->audit_dir (created 0700 if missing): one file per
 * digest_period (a UTC day: kmsd-YYYYMMDD.jsonl), mode 0600, append only,
 * sealed by signed digests. NULL with err filled.
 */
struct kmsd_audit_trail *kmsd_audit_open(const struct kmsd_config *cfg, char err[KMSD_ERR_MAX]);
void kmsd_audit_close(struct kmsd_audit_trail *trail);

/* What one request leaves in the trail. Every pointer may be NULL except the ids. */
struct kmsd_audit_event {
	const char *request_id;
	const char *event_id;
	time_t event_time;
	const char *event_name;          /* the operation, as the client named it */
	const struct kmsd_user *user;    /* NULL: not authenticated */
	const char *claimed_key_id;      /* access key id the request claimed (unauthenticated) */
	const char *source_ip;
	const char *user_agent;
	json_t *request_parameters;      /* borrowed */
	json_t *response_elements;       /* borrowed */
	const char *error_code;          /* NULL: success */
	const char *error_message;
	int read_only;
	const char *key_arn;             /* "" or NULL: no resources */
};

/* One record, one write(2). 0, or -1 with err filled (the caller must not answer 200). */
int kmsd_audit_write(struct kmsd_audit_trail *trail, const struct kmsd_audit_event *ev,
		char err[KMSD_ERR_MAX]);

/* ---- the service ------------------------------------------------------------------- */

struct kmsd {
	struct kmsd_config *config;
	struct keyclient *kc;
	struct kmsd_audit_trail *audit;
	struct MHD_Daemon *daemon;
	struct kc_sigv4_key_cache *sigv4_cache;   /* derived signing keys, shared by threads */
	int verbose;
	uint16_t port;                   /* the port actually bound */
	char *tls_key_pem;               /* sodium_malloc'ed while the daemon runs */
	char *tls_cert_pem;              /* malloc'ed */
};

/* ---- one request (request.c, auth.c) ----------------------------------------------- */

/* What server.c hands to request.c: borrowed for the duration of the call. */
struct kmsd_http_request {
	char request_id[KMSD_UUID_LEN + 1];
	time_t received;
	struct timespec started;         /* CLOCK_MONOTONIC, for the verbose log */
	const char *method;
	const char *path;
	const char *query;               /* raw query string without '?', "" if none */
	const struct kc_http_header *headers;
	size_t header_count;
	const uint8_t *body;             /* sodium_malloc'ed by server.c */
	size_t body_len;
	int body_too_large;
	char source_ip[64];
};

/* What request.c hands back: the reply to send. */
struct kmsd_reply {
	unsigned http_status;
	char error_type[KMSD_ERROR_TYPE_MAX];   /* "" on success */
	char *body;                      /* JSON text, owned; see secure */
	size_t body_len;
	int secure;                      /* body is sodium_malloc'ed (it holds plaintext) */
};

/* Answer one complete request: authenticate, dispatch, audit. Never fails to fill reply. */
void kmsd_request_run(struct kmsd *kmsd, const struct kmsd_http_request *req,
		struct kmsd_reply *reply);
/* Free (wiping when secure) a reply body. */
void kmsd_reply_body_free(char *body, size_t len, int secure);

/* Value of header name (case-insensitive), or NULL. */
const char *kmsd_header(const struct kmsd_http_request *req, const char *name);

/*
 * Verify req's SigV4 signature against the configured users. KC_OK sets
 * *user; otherwise err has the AWS error (MissingAuthenticationToken,
 * UnrecognizedClient, InvalidSignature, IncompleteSignature). claimed
 * receives the access key id the Authorization header names ("" if none),
 * for the audit record of a request that fails authentication.
 */
enum kc_status kmsd_authenticate(const struct kmsd *kmsd, const struct kmsd_http_request *req,
		const struct kmsd_user **user, char *claimed, size_t claimed_len,
		struct kc_error *err);

/* ---- server (server.c) ------------------------------------------------------------- */

/* Start listening (kmsd->port set). 0, or -1 with err filled. */
int kmsd_server_start(struct kmsd *kmsd, char err[KMSD_ERR_MAX]);
/* Stop accepting, finish what runs, close every connection. */
void kmsd_server_stop(struct kmsd *kmsd);

/* ---- json_text.c: compact JSON text of a value kmsd built ---------------------------- */

/* Bytes kmsd_json_out writes (no NUL). */
size_t kmsd_json_out_size(json_t *value);
/* Writes the text (exactly kmsd_json_out_size bytes, no NUL) and returns its length. */
size_t kmsd_json_out(json_t *value, char *out);

#endif /* KMSFS_KMSD_H */
