/*
 * fsck.h - private to `kmsfs fsck`: the state one run shares between its
 * parts.
 *
 *   cmd_fsck.c     options, the config check, the order of the phases, the summary
 *   fsck_tree.c    walking the cipher directory: files to check, leftovers at the root
 *   fsck_file.c    one backing file: header, size, xattrs, data key, blocks
 *   fsck_report.c  findings (stdout and the audit log), counters, progress, the pool
 *
 * Exit status as fsck(8): bits ORed together.
 */
#ifndef KMSFS_FSCK_H
#define KMSFS_FSCK_H

#include <pthread.h>
#include <stdint.h>

#include "cli.h"

#define FSCK_EXIT_OK 0
#define FSCK_EXIT_CORRECTED 1        /* problems found and all of them corrected */
#define FSCK_EXIT_UNCORRECTED 4      /* problems left */
#define FSCK_EXIT_OPERATIONAL 8      /* key store or key service unusable, I/O error */
#define FSCK_EXIT_USAGE 16

/* --quick: blocks per file (the first, the last, the rest spread evenly between). */
#define FSCK_QUICK_BLOCKS 16
/* Bad blocks listed per file; the rest are counted. */
#define FSCK_BAD_BLOCKS_LISTED 32

/* Names kmsfs itself leaves at the cipher directory's root. */
#define FSCK_CONF_TMP_PREFIX ".kmsfs.conf."
#define FSCK_PROBE_PREFIX ".kmsfs-xattr-probe."
/* What an interrupted kmsfs snapshot copy (in DST) or kmsfs rekey leaves there. */
#define FSCK_SNAPSHOT_STAGING ".kmsfs-snapshot.d"
#define FSCK_SNAPSHOT_STATE ".kmsfs-snapshot-state"
#define FSCK_REKEY_STAGING ".kmsfs-rekey.d"
#define FSCK_REKEY_STATE ".kmsfs-rekey-state"

/* One regular file to check; path relative to the cipher directory. */
struct fsck_file {
	char *path;
	uint64_t size;               /* backing size when walked */
	/* phase 1 (fsck_file_identify): for telling where a misplaced key or header came from */
	int has_id;
	uint8_t file_id[KMSFS_FILE_ID_LEN];
	int has_dek;
	uint8_t dek_hash[32];        /* SHA-256 of the user.kmsfs.dek value */
	int key_ok;                  /* phase 2: the data key opened for this file */
};

struct fsck_opts {
	int repair, quick, verbose, progress;
	unsigned jobs;
};

struct fsck {
	struct fsck_opts opts;
	const char *cipherdir;
	int rootfd;
	struct cli_service svc;      /* kc NULL: no key service opened */
	struct kmsfs_volume vol;
	int have_vol;                /* vol holds at least the parsed (peeked) config */
	struct kmsfs_keyring *kr;    /* NULL: data keys and blocks are not checked */
	/* an interrupted snapshot copy or rekey: its staging files must stay */
	int op_in_progress;

	struct fsck_file *files;
	size_t file_count, file_cap;
	size_t *by_id, *by_dek;      /* indexes into files, sorted (phase 1 results) */
	size_t by_id_count, by_dek_count;

	/* counters, updated with __atomic builtins from the workers */
	uint64_t files_done, plain_bytes, blocks_done;
	uint64_t bytes_done, total_bytes;   /* backing bytes, for progress */
	uint64_t findings, repaired;
	int status;                  /* FSCK_EXIT_* bits; under out_lock */
	int abort;                   /* the key service went away: stop checking */
	pthread_mutex_t out_lock;    /* stdout, the progress line, status */
	int progress_shown;
};

/* What a finding is, for stdout and the audit record. */
struct fsck_finding {
	const char *path;            /* volume-relative */
	const char *event;           /* audit eventName, e.g. "BlockAuthenticationFailure" */
	int64_t block;               /* -1: none */
	enum kc_status status;       /* errorCode of the audit record */
	int repaired;                /* --repair corrected it */
	int operational;             /* not a problem of the volume: the check could not run */
};

/* fsck_report.c */
/* Print "PATH: text" (or "PATH: block N: text"), audit it, count it. */
void fsck_report(struct fsck *f, const struct fsck_finding *fd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A line for -v: a file checked and found fine. */
void fsck_verbose(struct fsck *f, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Run fn on every file, opts.jobs threads at once, with progress when asked. */
void fsck_run_pool(struct fsck *f, void (*fn)(struct fsck *f, struct fsck_file *file),
		   int show_progress);
void fsck_add_bytes(struct fsck *f, uint64_t bytes);
void fsck_add_blocks(struct fsck *f, uint64_t blocks);
/* "1.5 MiB" */
void fsck_human_bytes(uint64_t bytes, char *out, size_t len);

/* fsck_tree.c */
/* Collect the regular files to check and deal with what kmsfs leaves at the root. -errno. */
int fsck_walk(struct fsck *f);
void fsck_files_free(struct fsck *f);

/* fsck_file.c */
/* Phase 1: header file id and data key hash, for fsck_check_file's diagnosis. */
void fsck_file_identify(struct fsck *f, struct fsck_file *file);
/* Build f->by_id and f->by_dek from phase 1. -ENOMEM. */
int fsck_index_files(struct fsck *f);
/* Phase 2: every check of one file. */
void fsck_check_file(struct fsck *f, struct fsck_file *file);
/* After phase 2: files sharing a file id although each opens (copies made in the cipher dir). */
void fsck_check_duplicates(struct fsck *f);

#endif /* KMSFS_FSCK_H */
