/*
 * fs_internal.h - private header of kmsfs's FUSE layer.
 *
 * Pieces:
 *   node.c   - per-inode state shared by every open of a file: the I/O lock
 *              that makes partial-block writes read-modify-write safely, the
 *              unwrapped data key, and which principals were authorized.
 *   filekey.c- setting up a file's data key: a fresh one on create, an
 *              unwrap through the key service (as the caller) on open.
 *   io.c     - block arithmetic: read, write, truncate, fallocate, lseek
 *              over the sealed blocks of a backing file.
 *   ops.c    - the FUSE operations (path and passthrough plumbing).
 *   mount.c  - fuse_new / mount / loop / signals.
 *   volume.c - CIPHERDIR/kmsfs.conf.
 */
#ifndef KMSFS_FS_INTERNAL_H
#define KMSFS_FS_INTERNAL_H

#include <pthread.h>
#include <sys/stat.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "fs.h"

#define KFS_MAX_GRANTS 8
#define KFS_PRINCIPAL_MAX 64

/* The mount-wide state, reachable from every FUSE callback. */
struct kfs_mount {
	int root_fd;                     /* O_PATH|O_DIRECTORY of CIPHERDIR */
	struct kmsfs_volume vol;
	struct keyclient *kc;
	struct kc_audit *audit;
	int key_cache_ttl;
	int writeback_cache;
	uid_t owner_uid;                 /* the mounting user */
	int is_root;                     /* daemon runs as root: chown new files to the caller */
};

extern struct kfs_mount *kfs;

/* One authorization the key service gave a principal for this inode. */
struct kfs_grant {
	uid_t uid;
	time_t granted_at;
};

struct kfs_node {
	dev_t dev;
	ino_t ino;
	unsigned refs;                   /* open handles + transient users */
	pthread_rwlock_t io_lock;        /* readers shared, writers/truncate exclusive */
	pthread_mutex_t key_lock;        /* serializes key setup for this inode */
	struct kmsfs_filekey *fk;        /* NULL until unwrapped (or keyless empty file) */
	struct kfs_grant grants[KFS_MAX_GRANTS];
	unsigned grant_count;
	time_t idle_since;               /* when refs dropped to 0 */
	struct kfs_node *next;
};

/* An open file (fi->fh). */
struct kfs_file {
	int fd;                          /* backing file, O_RDWR when possible */
	struct kfs_node *node;
	char *path;                      /* volume-relative path at open, for messages and audit */
};

/* node.c */
struct kfs_node *kfs_node_get(dev_t dev, ino_t ino);
void kfs_node_put(struct kfs_node *node);
void kfs_node_table_destroy(void);

/* caller.c-ish helpers (ops.c) */
void kfs_caller_current(struct kc_caller *caller, char principal[KFS_PRINCIPAL_MAX]);

/* filekey.c */
int kfs_key_create(struct kfs_node *node, int fd, const char *path,
		   const struct kc_caller *caller);
int kfs_key_ensure(struct kfs_node *node, int fd, const char *path,
		   const struct kc_caller *caller, int writable);
void kfs_audit_integrity(const char *path, const char *what, int64_t block,
			 const char *reason);

/* io.c: all take node->io_lock themselves */
ssize_t kfs_io_read(struct kfs_file *f, char *buf, size_t size, off_t off);
ssize_t kfs_io_write(struct kfs_file *f, const char *buf, size_t size, off_t off);
int kfs_io_truncate(struct kfs_file *f, off_t size);
int kfs_io_fallocate(struct kfs_file *f, int mode, off_t off, off_t len);
off_t kfs_io_lseek(struct kfs_file *f, off_t off, int whence);
uint64_t kfs_plain_size_of(const struct stat *st);

#endif /* KMSFS_FS_INTERNAL_H */
