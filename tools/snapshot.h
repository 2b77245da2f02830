/*
 * snapshot.h - private to `kmsfs snapshot copy` (cmd_snapshot.c, snapshot_*.c).
 *
 * The copy runs in phases over one list of source entries:
 *   dest  (snapshot_dest.c)  make or resume the destination volume, its state
 *                            file and staging directory, and clean up at the end;
 *   walk  (snapshot_walk.c)  list the source tree single-threaded, create every
 *                            directory, group hard links;
 *   copy  (snapshot_copy.c)  workers copy files, symlinks and special files
 *                            through the staging directory; then hard links,
 *                            directory attributes, and --verify;
 *   pool  (snapshot_pool.c)  the worker threads, progress line and counters.
 */
#ifndef KMSFS_SNAPSHOT_H
#define KMSFS_SNAPSHOT_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

#include "cli.h"

#define SNAP_STATE_NAME ".kmsfs-snapshot-state"
#define SNAP_STAGING_NAME ".kmsfs-snapshot.d"
#define SNAP_LEFTOVER_PREFIX ".kmsfs-"
#define SNAP_MAX_PATHS 64            /* --path options */

/* One source entry below the volume root. */
struct snap_entry {
	char *rel;                   /* volume-relative path */
	struct stat st;              /* the source's lstat at walk time */
	unsigned depth;              /* 0 for a child of the root */
	size_t primary;              /* hard link: the entry whose copy the others link to */
	int done;                    /* at its final path in the destination */
	int failed;                  /* reported; not linked to, not verified */
};

/* Counters the workers advance (__atomic) and the progress line and summary read. */
struct snap_stats {
	uint64_t files_total, bytes_total;       /* regular files to copy, plaintext bytes */
	uint64_t files_done, bytes_done;
	uint64_t files_present;                  /* already at their final path (resumed) */
	uint64_t symlinks, specials, links, dirs;
	uint64_t rewrap_service;                 /* data key rewrapped by ReEncrypt */
	uint64_t rewrap_client;                  /* unwrapped and wrapped again here */
	uint64_t keys_fresh;                     /* --reencrypt: new data keys */
	uint64_t verified;
	uint64_t failures;
};

/* A worker's slot: the plaintext bytes done in the file it is working on. */
struct snap_worker {
	struct snap *s;
	uint64_t cur_bytes;
	pthread_t thread;
};

struct snap {
	/* options */
	const char *key;             /* --key; NULL: the source's key */
	const char *key_service;     /* --key-service; NULL: the source's service */
	const char *dst_audit_log;   /* --dst-audit-log; NULL: --audit-log's */
	int reencrypt, verify, progress;
	int bucket_key;              /* -1: the source's mode */
	unsigned jobs;
	const char **paths;          /* --path, normalized; NULL: everything */
	size_t path_count;
	char src[PATH_MAX], dst[PATH_MAX];

	/* key services and volumes */
	struct cli_service src_svc, dst_svc;
	int dst_own_service;         /* dst_svc opened (another service); else src_svc's kc */
	struct keyclient *dst_kc;
	const struct kc_caller *dst_caller;
	struct kmsfs_volume src_vol, dst_vol;
	struct kmsfs_keyring *src_kr, *dst_kr;

	/* directories */
	int src_fd, dst_fd, staging_fd;
	int resumed;

	/* the source tree */
	struct snap_entry *entries;
	size_t count, cap;
	int path_found[SNAP_MAX_PATHS];          /* --path REL seen in the source */

	/* the run */
	struct snap_stats stats;
	uint64_t staging_seq;
	char staging_tag[20];        /* this run's prefix for staging names */
	pthread_mutex_t out_lock;    /* stderr: error lines and the progress line */
	int progress_shown;          /* a progress line is on the terminal */
	double started;
};

/* snapshot_pool.c */
double snap_now(void);
/* "kmsfs: snapshot: REL: why" on stderr (clearing the progress line), one failure more. */
void snap_fail(struct snap *s, const char *rel, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void snap_note(struct snap *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * Run fn on each of items (indexes into s->entries) on s->jobs threads,
 * showing progress (what: "copying", "verifying") when s->progress.
 */
void snap_pool_run(struct snap *s, const size_t *items, size_t n, const char *what,
		   void (*fn)(struct snap *s, struct snap_worker *w, struct snap_entry *e));
void snap_format_bytes(uint64_t n, char *out, size_t len);
/* Plaintext size of a regular file from its source backing size; 0 for anything else. */
uint64_t snap_plain_size(const struct snap *s, const struct snap_entry *e);

/* snapshot_dest.c */
int snap_dest_open(struct snap *s);
int snap_dest_finish(struct snap *s);
void snap_dest_close(struct snap *s);
/* A new name in the staging directory (unique within and across runs). */
void snap_staging_name(struct snap *s, char *out, size_t len);

/* snapshot_walk.c */
int snap_walk(struct snap *s);
void snap_entries_free(struct snap *s);

/* snapshot_copy.c */
int snap_copy(struct snap *s);
int snap_verify(struct snap *s);
int snap_root_attrs(struct snap *s);
/* Copy every extended attribute but user.kmsfs.* from src to dst (fds, or paths if fd < 0). */
int snap_copy_xattrs(int src_fd, const char *src_path, int dst_fd, const char *dst_path,
		     char *why, size_t why_len);

#endif /* KMSFS_SNAPSHOT_H */
