/*
 * rekey.h - private to `kmsfs rekey`: moving a volume to another KMS key in place.
 *
 *   cmd_rekey.c   options, the mount check, the new key, workers, progress, summary
 *   rekey_walk.c  the backing tree: one job per inode, hard links grouped
 *   rekey_state.c CIPHERDIR/.kmsfs-rekey-state (resume after a crash) and the
 *                 staging directory CIPHERDIR/.kmsfs-rekey.d
 *   rekey_file.c  one file: rewrap its data key, or re-encrypt it and swap it in
 *
 * Every step on a file is atomic (an xattr replaced, a rename), so a crash
 * leaves each file either as it was or done, and a re-run finishes the job.
 */
#ifndef KMSFS_REKEY_H
#define KMSFS_REKEY_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "cli.h"

#define REKEY_STATE_NAME ".kmsfs-rekey-state"
#define REKEY_STAGING_NAME ".kmsfs-rekey.d"
/* What an interrupted kmsfs snapshot copy into a volume leaves (snapshot.h): finish it first. */
#define REKEY_SNAPSHOT_STATE ".kmsfs-snapshot-state"

/* ---- rekey_state.c: file ids seen before, by value --------------------------------- */

/* A set of 16-byte file ids, each with a 16-byte value (open addressing). */
struct rekey_idmap {
	struct rekey_idmap_slot {
		uint8_t id[KMSFS_FILE_ID_LEN];
		uint8_t value[KMSFS_FILE_ID_LEN];
		int used;
	} *slots;
	size_t cap, count;
};

int rekey_idmap_put(struct rekey_idmap *map, const uint8_t *id, const uint8_t *value);
/* The value stored for id, or NULL. */
const uint8_t *rekey_idmap_get(const struct rekey_idmap *map, const uint8_t *id);
void rekey_idmap_free(struct rekey_idmap *map);

/*
 * The state file: what an interrupted run was doing, and for --reencrypt
 * which files it finished. INI-shaped, appended to as files finish:
 *   [rekey]  key_id = ARN, mode = rewrap|reencrypt, started = unix seconds
 *   [done]   NEW_FILE_ID = OLD_FILE_ID   (hex; one line per re-encrypted file)
 * It is also the lock that keeps two rekeys of one volume apart.
 */
struct rekey_state {
	int fd;
	char key_arn[KC_ARN_MAX];
	int reencrypt;
	time_t started;
	int resumed;                 /* the file was an earlier run's, for the same job */
	struct rekey_idmap done;     /* new file id -> the old file id it replaced */
	struct rekey_idmap origin;   /* old file id -> the new file id that replaced it */
	pthread_mutex_t lock;
};

/*
 * Lock and read the state file, or start one for this job (key_arn, mode).
 * A state file of another job (another key or mode) is superseded: files
 * already moved stay correct, only the record of them is dropped.
 * Prints why and returns 1 on failure.
 */
int rekey_state_open(struct rekey_state *st, int root_fd, const char *cipherdir,
		     const char *key_arn, int reencrypt);
/* Did this run or the interrupted one re-encrypt a file into new_id? (thread-safe) */
int rekey_state_is_done(struct rekey_state *st, const uint8_t *new_id);
/* Record (durably) that the file old_id became new_id. 0 or -errno. */
int rekey_state_record(struct rekey_state *st, const uint8_t *new_id, const uint8_t *old_id);
/* The job is done: remove the state file and release the lock. */
int rekey_state_finish(struct rekey_state *st, int root_fd, const char *cipherdir);
/* Release the lock, keeping the state file for the next run. */
void rekey_state_close(struct rekey_state *st);

/*
 * CIPHERDIR/.kmsfs-rekey.d, created or emptied of an earlier run's
 * leftovers (each one a copy that never replaced its file). The fd, or -1
 * after printing why.
 */
int rekey_staging_open(int root_fd, const char *cipherdir);
int rekey_staging_remove(int root_fd, int stage_fd, const char *cipherdir);

/* ---- rekey_walk.c: the tree ------------------------------------------------------------ */

/* One inode to do: a regular file and every name it has in the volume. */
struct rekey_file {
	char *path;                  /* volume-relative, also the name in audit records */
	char **links;                /* its other names (hard links) */
	size_t link_count;
	dev_t dev;
	ino_t ino;
	nlink_t nlink;
	uint64_t plain_size;         /* for progress */
	off_t backing_size;
	struct timespec mtime;
	uint8_t file_id[KMSFS_FILE_ID_LEN];
	int id_known;                /* file_id was read (resuming a --reencrypt) */
	ssize_t relink_to;           /* >= 0: an interrupted run re-encrypted this file as
					files[relink_to]; its names only need to join that inode */
};

struct rekey_dir {
	char *path;                  /* "" for the volume root */
	struct timespec times[2];    /* atime, mtime before the run */
};

struct rekey_tree {
	struct rekey_file *files;
	size_t count, cap;
	struct rekey_dir *dirs;
	size_t dir_count, dir_cap;
	uint64_t total_bytes;
};

/*
 * Every regular file under root_fd (not kmsfs.conf, the state file or the
 * staging directory), one entry per inode. With state (resuming a
 * --reencrypt), headers are read to find files whose names an interrupted
 * run left split between the old and the new inode. Prints why, returns 1.
 */
int rekey_walk(int root_fd, const char *cipherdir, enum kmsfs_cipher cipher,
	       const struct rekey_state *state, struct rekey_tree *tree);
/* Put directory times back as they were before the run (renames change them). */
void rekey_tree_restore_dir_times(const struct rekey_tree *tree, int root_fd);
void rekey_tree_free(struct rekey_tree *tree);

/* ---- rekey_file.c and cmd_rekey.c: the run -------------------------------------------- */

struct rekey {
	const char *cipherdir;
	int root_fd, stage_fd;
	int reencrypt;
	struct kmsfs_volume vol;     /* as loaded: the old key */
	struct kmsfs_volume new_vol; /* the same volume under the new key */
	struct kmsfs_keyring *old_kr, *new_kr;
	struct rekey_state state;
	struct rekey_tree tree;
	/* shared by the workers; atomics */
	size_t next_job;
	uint64_t done, skipped, failed, finished, plaintext_keys;
	uint64_t bytes_done;         /* bytes of finished jobs */
	uint64_t *worker_bytes;      /* per worker: bytes of the job in hand */
	uint64_t temp_seq;           /* unique names in the staging directory */
	pthread_mutex_t out_lock;    /* error lines vs the progress line */
	int progress_shown;          /* a progress line is on the terminal */
};

enum rekey_outcome { REKEY_DONE, REKEY_SKIPPED, REKEY_FAILED };

/* Rewrap or re-encrypt one inode; *bytes follows a re-encryption's progress. */
enum rekey_outcome rekey_file(struct rekey *rk, struct rekey_file *f, uint64_t *bytes);

/* "kmsfs: rekey: PATH: reason" on stderr, clearing the progress line first. */
void rekey_report(struct rekey *rk, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* KMSFS_REKEY_H */
