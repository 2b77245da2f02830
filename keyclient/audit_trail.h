/*
 * audit_trail.h - tamper-evident audit trails, after AWS CloudTrail's log
 * file integrity validation. One module for both writers (kmsfs's
 * keyclient/audit.c, kmsd's tools/kmsd/audit_trail.c) and the reader
 * (`kmsfs audit verify`).
 *
 * A trail is a log directory:
 *   DIR/PREFIX-STAMP[.N].jsonl       CloudTrail records, one file per period
 *                                    (STAMP = period start, YYYYMMDD for daily
 *                                    periods, else YYYYMMDDTHHMMSSZ; .N when a
 *                                    sealed file's period goes on after a restart)
 *   DIR/digests/PREFIX-digest-END.json       one digest per period (END =
 *   DIR/digests/PREFIX-digest-END.json.sig   digestEndTime, YYYYMMDDTHHMMSSZ), its
 *                                    Ed25519 signature in hex
 *   DIR/digest-public-key.pem        the public key, for the auditor
 * and a signing key kept elsewhere (kmsd: data_dir, kmsfs: the key store).
 *
 * At each period end, at a clean shutdown and at start-up (for files left
 * by a crash, or to begin a new trail) the writer seals every log file not yet digested (mode
 * 0400, never appended to again) and writes a digest naming each file's
 * SHA-256, record count and event times, plus the previous digest's name
 * and signature. The signature covers
 *   "kmsfs-audit-digest-1\n" NAME "\n" hex(SHA-256(digest bytes)) "\n" PREV_SIGNATURE "\n"
 * (PREV_SIGNATURE hex, "" for the first digest), so digests form a chain.
 */
#ifndef KMSFS_AUDIT_TRAIL_H
#define KMSFS_AUDIT_TRAIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define KC_AUDIT_ERR_MAX 512
#define KC_AUDIT_DAY 86400u
#define KC_AUDIT_PERIOD_MAX (31u * KC_AUDIT_DAY)
#define KC_AUDIT_DIGEST_DIR "digests"
#define KC_AUDIT_PUBLIC_KEY_FILE "digest-public-key.pem"
#define KC_AUDIT_SIGNED_PREFIX "kmsfs-audit-digest-1\n"
#define KC_AUDIT_SIG_HEX 129            /* 64-byte signature in hex, NUL */
#define KC_AUDIT_HASH_HEX 65            /* SHA-256 in hex, NUL */
#define KC_AUDIT_FPR_HEX 65             /* public-key fingerprint: SHA-256 hex, NUL */
#define KC_AUDIT_PUBLIC_KEY_LEN 32
#define KC_AUDIT_TIME_LEN 21            /* "2024-05-01T12:00:00Z", NUL */
#define KC_AUDIT_NAME_MAX 256

/* ---- the writer (audit_rotate.c) ------------------------------------------------ */

struct kc_audit_trail;

struct kc_audit_trail_options {
	const char *dir;             /* the log directory; created 0700 when missing */
	const char *prefix;          /* "kmsd", "kmsfs": the files' names */
	const char *key_path;        /* signing key, created 0600 on first use;
	                              * NULL: append only - another writer digests */
	unsigned period;             /* seconds per log file and digest; 0: a day, or for
	                              * an append-only opener the period of the trail's
	                              * newest digest */
	int single_process;          /* only this process writes dir (kmsd): held
	                              * locked for its lifetime, no lock per record */
};

/*
 * Open the trail: directory, signing key, public key, a digest of files a
 * crash left undigested, and a thread that digests at each period end.
 * NULL with err filled.
 */
struct kc_audit_trail *kc_audit_trail_open(const struct kc_audit_trail_options *opts,
		char err[KC_AUDIT_ERR_MAX]);
/*
 * Append one "\n"-terminated record with one write(2) (O_APPEND) to the
 * current period's file. 0, or -1 with err filled. Thread-safe.
 */
int kc_audit_trail_append(struct kc_audit_trail *trail, const char *line, size_t len,
		char err[KC_AUDIT_ERR_MAX]);
/* Digest what was written so far (the shutdown digest) and close. NULL is fine. */
void kc_audit_trail_close(struct kc_audit_trail *trail);

/* ---- kmsfs's audit log (audit.c) ------------------------------------------------ */

struct kc_audit;

struct kc_audit_options {
	const char *path;            /* a directory (or a path ending in '/'): a trail of
	                              * kmsfs-STAMP.jsonl files; anything else: one plain
	                              * file, no rotation, no digests */
	const char *key_path;        /* trail: digest signing key; NULL: append only */
	unsigned digest_period;      /* trail: seconds per file and digest; 0: a day (append
	                              * only: the trail's own, from its newest digest) */
};
/* Like kc_audit_open (keyclient.h), with err saying why not. */
struct kc_audit *kc_audit_open_opts(const struct kc_audit_options *opts,
		char err[KC_AUDIT_ERR_MAX]);

/* ---- names and files (audit_digest.c) ------------------------------------------- */

/* A log file's name taken apart: PREFIX-STAMP[.N].jsonl. */
struct kc_audit_log_name {
	char prefix[64];
	time_t start;                /* the period start the stamp names */
	unsigned seq;                /* 1 for the first file of a period, then 2, 3 ... */
};
int kc_audit_log_name_parse(const char *name, struct kc_audit_log_name *out);
void kc_audit_log_name_format(const char *prefix, time_t start, unsigned period, unsigned seq,
		char out[KC_AUDIT_NAME_MAX]);
/* Order of writing: period start, then seq. */
int kc_audit_log_name_cmp(const struct kc_audit_log_name *a, const struct kc_audit_log_name *b);
/* PREFIX-digest-YYYYMMDDTHHMMSSZ.json; parse gives prefix and end (-1 if not one). */
void kc_audit_digest_name_format(const char *prefix, time_t end, char out[KC_AUDIT_NAME_MAX]);
int kc_audit_digest_name_parse(const char *name, char prefix[64], time_t *end);

/* "2024-05-01T12:00:00Z" and back (-1 if malformed). */
void kc_audit_time_format(time_t when, char out[KC_AUDIT_TIME_LEN]);
time_t kc_audit_time_parse(const char *text);

/* What a digest says about one log file, recomputed the same way by the verifier. */
struct kc_audit_file_summary {
	char hash[KC_AUDIT_HASH_HEX];        /* SHA-256 of the bytes, hex */
	uint64_t records;                    /* non-empty lines */
	char oldest[KC_AUDIT_TIME_LEN];      /* eventTime range; "" when no record has one */
	char newest[KC_AUDIT_TIME_LEN];
};
/* Summarize dir_fd/name. 0, or -1 with errno set. */
int kc_audit_file_summarize(int dir_fd, const char *name, struct kc_audit_file_summary *out);

/* ---- keys and signatures (audit_digest.c) --------------------------------------- */

struct kc_audit_key;             /* Ed25519 secret key in secure memory */

/* Load key_path, or create it (0600, directory 0700) when missing. */
struct kc_audit_key *kc_audit_key_load(const char *key_path, char err[KC_AUDIT_ERR_MAX]);
void kc_audit_key_free(struct kc_audit_key *key);
const uint8_t *kc_audit_key_public(const struct kc_audit_key *key);
/* hex(SHA-256(public key)) */
void kc_audit_key_fingerprint(const uint8_t pk[KC_AUDIT_PUBLIC_KEY_LEN], char out[KC_AUDIT_FPR_HEX]);
/* Write DIR/digest-public-key.pem (0644) unless it already holds pk. */
int kc_audit_public_key_publish(int dir_fd, const uint8_t pk[KC_AUDIT_PUBLIC_KEY_LEN],
		char err[KC_AUDIT_ERR_MAX]);
/* Read a public key: PEM (SubjectPublicKeyInfo, Ed25519) or 64 hex digits. */
int kc_audit_public_key_read(const char *path, uint8_t pk[KC_AUDIT_PUBLIC_KEY_LEN],
		char err[KC_AUDIT_ERR_MAX]);

/* Sign / check a digest's bytes as DIGEST_DIR/name chained to prev_sig ("" for none). */
int kc_audit_digest_sign(const struct kc_audit_key *key, const char *name, const char *bytes,
		size_t len, const char *prev_sig, char sig[KC_AUDIT_SIG_HEX]);
int kc_audit_digest_check(const uint8_t pk[KC_AUDIT_PUBLIC_KEY_LEN], const char *name,
		const char *bytes, size_t len, const char *prev_sig, const char *sig);

/* One digest file as read back from disk. */
struct kc_audit_digest_file {
	char name[KC_AUDIT_NAME_MAX];
	char *bytes;                         /* the file, NUL-terminated; NULL if unreadable */
	size_t len;
	char sig[KC_AUDIT_SIG_HEX];          /* from NAME.sig; "" if missing or malformed */
	void *json;                          /* json_t *, NULL if not a digest object */
	const char *prev_name;               /* previousDigestFileName, NULL for none */
	const char *prev_sig;                /* previousDigestSignature, "" for none */
	time_t start, end;                   /* digestStartTime, digestEndTime; -1 if absent */
	const char *fingerprint;             /* digestPublicKeyFingerprint, "" if absent */
};
/* Read DIR/digests/name (and its .sig). Always fills what it can; 0 if readable. */
/*
 * The names in dir_fd that keep(name, arg) accepts, sorted by name (names
 * carry their times, so oldest first; newest_first reverses). *out and its
 * names malloc'ed: kc_audit_free_names. -1 if the directory cannot be read.
 */
int kc_audit_list_names(int dir_fd, int (*keep)(const char *name, void *arg), void *arg,
		int newest_first, char ***out, size_t *count);
void kc_audit_free_names(char **names, size_t count);

int kc_audit_digest_read(int digest_dir_fd, const char *name, struct kc_audit_digest_file *out);
void kc_audit_digest_release(struct kc_audit_digest_file *digest);

/* ---- the verifier (audit_verify.c) ---------------------------------------------- */

enum kc_audit_status {
	KC_AUDIT_VALID,
	KC_AUDIT_NOT_YET_DIGESTED,           /* written after the newest digest: not a finding */
	KC_AUDIT_MODIFIED,
	KC_AUDIT_MISSING,
	KC_AUDIT_OUT_OF_ORDER,
	KC_AUDIT_INVALID_SIGNATURE,
	KC_AUDIT_NOT_IN_DIGEST,              /* older than digested files, yet in no valid digest */
	KC_AUDIT_CHAIN_PROBLEM,              /* no digests, a missing anchor ... */
};
const char *kc_audit_status_name(enum kc_audit_status status);
/* Everything but VALID and NOT_YET_DIGESTED is a finding. */
int kc_audit_status_is_finding(enum kc_audit_status status);

struct kc_audit_verify_options {
	const char *dir;
	const char *public_key_path;         /* NULL: DIR/digest-public-key.pem */
	const char *anchor;                  /* a digest signature recorded elsewhere, or NULL */
};

struct kc_audit_verify_counts {
	unsigned digests_valid, files_valid, not_yet_digested, findings;
	uint64_t records;
	char fingerprint[KC_AUDIT_FPR_HEX];  /* of the public key used */
};

/* file: relative to dir ("kmsd-20240501.jsonl", "digests/kmsd-digest-....json"). */
typedef void (*kc_audit_report_fn)(void *arg, const char *file, enum kc_audit_status status,
		const char *detail);

/* Walk every chain in dir, report each digest and log file. 0, or -1 with err (cannot run). */
int kc_audit_verify(const struct kc_audit_verify_options *opts, kc_audit_report_fn report,
		void *arg, struct kc_audit_verify_counts *counts, char err[KC_AUDIT_ERR_MAX]);

#endif /* KMSFS_AUDIT_TRAIL_H */
