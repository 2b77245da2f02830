/*
 * fs_internal.h - private header of kmsfs's FUSE layer.
 *
 * Pieces:
 *   inode.c  - FUSE node ids <-> backing inodes, and the names that lead to them.
 *   node.c   - per-inode state shared by every open of a file: the I/O lock
 *              that makes partial-block writes read-modify-write safely, the
 *              unwrapped data key, and which principals were authorized.
 *   filekey.c- setting up a file's data key: a fresh one on create, an
 *              unwrap through the key service (as the caller) on open.
 *   bucketkey.c- bucket key mode: data keys wrapped locally under a
 *              per-principal bucket key, and the cache of bucket keys.
 *   io.c     - block arithmetic: read, write, truncate, fallocate, lseek
 *              over the sealed blocks of a backing file.
 *   ops.c    - the FUSE operations (path and passthrough plumbing).
 *   mount.c  - fuse_new / mount / loop / signals.
 *   volume.c - CIPHERDIR/kmsfs.conf.
 *   dekfmt.c - the user.kmsfs.dek value's versions and the bucket-key seal.
 *   keyring.c- data keys without a mount (snapshot copy, rekey, fsck).
 *   backing.c- backing files block by block without a mount: copy, re-encrypt, hash.
 */
#ifndef KMSFS_FS_INTERNAL_H
#define KMSFS_FS_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "fs.h"

#define KFS_MAX_GRANTS 8
#define KFS_PRINCIPAL_MAX KMSFS_PRINCIPAL_NAME_MAX

/* The mount-wide state, reachable from every FUSE callback. */
struct kfs_mount {
	int root_fd;                     /* O_PATH|O_DIRECTORY of CIPHERDIR */
	struct kmsfs_volume vol;
	struct keyclient *kc;
	struct kc_audit *audit;
	int key_cache_ttl;
	int writeback_cache;
	uid_t owner_uid;                 /* the mounting user */
	const struct kmsfs_principal_map *principals;   /* NULL: "uid:N" for everyone */
	size_t principal_count;
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
	struct kfs_node *idle_prev, *idle_next;   /* idle list, oldest first */
	int cache_known;                 /* cache_* describe what the page cache holds */
	struct timespec cache_mtime;
	off_t cache_size;
	struct kfs_node *next;
};

/* An open file (fi->fh). */
struct kfs_file {
	int fd;                          /* backing file, O_RDWR when possible */
	struct kfs_node *node;
	char *path;                      /* volume-relative path at open, for messages and audit */
	struct kfs_inode *inode;         /* the kernel inode it was opened through */
	struct kfs_file *next_open;      /* the inode's other open handles */
};

struct kfs_link;

/* A backing inode the kernel holds a node id for (inode.c). */
struct kfs_inode {
	dev_t dev;
	ino_t ino;
	mode_t type;                     /* S_IFMT bits */
	uint64_t nlookup;                /* the kernel's lookup count */
	unsigned refs;                   /* names of children in this directory */
	int hashed;
	struct kfs_link *links;          /* parent + name, one per known hard link */
	struct kfs_file *open_files;
	struct kfs_inode *next;          /* hash chain */
};

/* inode.c */
void kfs_inode_root_init(dev_t dev, ino_t ino);
struct kfs_inode *kfs_inode_of(fuse_ino_t id);
fuse_ino_t kfs_inode_id(const struct kfs_inode *in);
int kfs_inode_is_root(const struct kfs_inode *in);
struct kfs_inode *kfs_inode_found(struct kfs_inode *parent, const char *name,
				  const struct stat *st);
void kfs_inode_forget(struct kfs_inode *in, uint64_t count);
void kfs_inode_unlinked(struct kfs_inode *parent, const char *name, const struct stat *st);
void kfs_inode_renamed(struct kfs_inode *from_parent, const char *from_name,
		       const struct stat *from_st, struct kfs_inode *to_parent,
		       const char *to_name, const struct stat *to_st, int exchanged);
/*
 * Where a backing file is: rel relative to dirfd (the volume root, or a
 * directory opened on the way down when the path is longer than PATH_MAX).
 * path is the whole volume-relative path, for messages and audit records.
 * Fill with kfs_loc_inode/kfs_loc_child (0 or -errno); release with kfs_loc_done.
 */
struct kfs_loc {
	int dirfd;
	const char *rel;
	char *path;
};
int kfs_loc_inode(const struct kfs_inode *in, struct kfs_loc *loc);
int kfs_loc_child(const struct kfs_inode *parent, const char *name, struct kfs_loc *loc);
void kfs_loc_done(struct kfs_loc *loc);
void kfs_inode_add_file(struct kfs_inode *in, struct kfs_file *f);
void kfs_inode_remove_file(struct kfs_inode *in, struct kfs_file *f);
int kfs_inode_dup_open_fd(struct kfs_inode *in);
void kfs_inode_table_destroy(void);

/* node.c */
struct kfs_node *kfs_node_get(dev_t dev, ino_t ino);
void kfs_node_put(struct kfs_node *node);
void kfs_node_table_destroy(void);

/* ops.c: shared by the operation files */
#define KFS_TIMEOUT 1.0                  /* entry and attribute cache, seconds */
extern const struct fuse_lowlevel_ops kfs_ll_ops;
void kfs_begin(fuse_req_t req);          /* every operation starts here */
/* The caller of the request this thread is serving (the daemon itself outside one). */
void kfs_caller_current(struct kc_caller *caller, char principal[KFS_PRINCIPAL_MAX]);
void kfs_fix_stat(struct stat *st);      /* backing size -> plaintext size */
void kfs_own_by_caller(const struct kfs_loc *loc);
int kfs_is_reserved(const struct kfs_inode *parent, const char *name);
int kfs_lookup_entry(struct kfs_inode *parent, const char *name, struct fuse_entry_param *e);
void kfs_reply_entry_or_err(fuse_req_t req, struct kfs_inode *parent, const char *name);
struct kfs_file *kfs_file_of(const struct fuse_file_info *fi);
int kfs_file_attach(int fd, const char *path, int writable, struct kfs_file **out);
void kfs_file_detach(struct kfs_file *f);
int kfs_open_backing(const struct kfs_loc *loc, int flags, int create, mode_t mode);

/* namei.c, attr.c, file.c, dir.c, xattr.c: the operations themselves */
void kfs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void kfs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void kfs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void kfs_op_readlink(fuse_req_t req, fuse_ino_t ino);
void kfs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void kfs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void kfs_op_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name);
void kfs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void kfs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void kfs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void kfs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		   const char *newname, unsigned int flags);
void kfs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void kfs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		    struct fuse_file_info *fi);
void kfs_op_statfs(fuse_req_t req, fuse_ino_t ino);
void kfs_op_access(fuse_req_t req, fuse_ino_t ino, int mask);
void kfs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void kfs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		   struct fuse_file_info *fi);
void kfs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		 struct fuse_file_info *fi);
void kfs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		  struct fuse_file_info *fi);
void kfs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void kfs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void kfs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void kfs_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
		      struct fuse_file_info *fi);
void kfs_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		  struct fuse_file_info *fi);
void kfs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void kfs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
void kfs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi);
void kfs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void kfs_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void kfs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		     size_t size, int flags);
void kfs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void kfs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void kfs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* dekfmt.c: the user.kmsfs.dek value (see there for the layouts) */
#define KFS_DEK_XATTR_MAX KMSFS_DEK_XATTR_MAX
#define KFS_DEK_XATTR_V1 1               /* GenerateDataKey per file */
#define KFS_DEK_XATTR_BUCKET 2           /* sealed locally under a bucket key */
#define KFS_BUCKET_CIPHER KMSFS_CIPHER_XCHACHA20_POLY1305
#define KFS_BUCKET_NONCE_LEN 24
#define KFS_BUCKET_KEY_LEN 32
#define KFS_VOLUME_ID_LEN 36             /* a UUID's text: volume.c accepts nothing else */
#define KFS_BUCKET_AAD_LABEL "kmsfs bucket v1"
#define KFS_BUCKET_AAD_LEN (sizeof(KFS_BUCKET_AAD_LABEL) - 1 + KFS_VOLUME_ID_LEN + \
			    KMSFS_FILE_ID_LEN)
/* A decoded value: pointers into it. nonce/sealed/tag: version 2 only. */
struct kfs_dek_fields {
	char key_arn[KC_ARN_MAX];
	const uint8_t *blob;             /* v1: the data key's blob; v2: the bucket key's */
	size_t blob_len;
	const uint8_t *nonce, *sealed, *tag;
};
/* {"kmsfs:volume": id[, "kmsfs:file": fid]}: file_id_hex NULL for a bucket key's context. */
void kfs_dek_context(struct kc_context *ctx, const char *volume_id, const char *file_id_hex);
/* out holds KMSFS_DEK_XATTR_MAX bytes; -EINVAL when it would not fit. Decoders: -EIO. */
int kfs_dek_encode_v1(const char *key_arn, const uint8_t *blob, size_t blob_len,
		      uint8_t *out, size_t *out_len);
int kfs_dek_decode_v1(const uint8_t *value, size_t len, struct kfs_dek_fields *f);
int kfs_dek_encode_v2(const struct kfs_dek_fields *f, uint8_t *out, size_t *out_len);
int kfs_dek_decode_v2(const uint8_t *value, size_t len, struct kfs_dek_fields *f);
/*
 * Seal a data key under a bucket key (whose blob and key ARN go into the
 * value), bound to volume and file (AAD), into a version-2 value; open one.
 * 0 or -errno.
 */
int kfs_dek_bucket_seal(const uint8_t *bucket_key, const char *key_arn, const uint8_t *blob,
			size_t blob_len, const char *volume_id, const struct kmsfs_header *hdr,
			const uint8_t *dek, uint8_t *out, size_t *out_len);
int kfs_dek_bucket_open(const uint8_t *bucket_key, const char *volume_id,
			const struct kmsfs_header *hdr, const struct kfs_dek_fields *f,
			uint8_t *dek);
/*
 * The file's own record for a data key sealed or opened under a bucket key
 * (no key-service call behind it): eventSource "kmsfs", the file's context
 * and path, bucketKey true. audit NULL: nothing.
 */
void kfs_dek_audit_bucket(struct kc_audit *audit, const char *event_name,
			  const char *volume_id, const struct kmsfs_header *hdr, const char *path,
			  const struct kc_caller *caller, const char *key_arn,
			  const struct kc_error *err);

/* filekey.c */
/* A file's user.kmsfs.dek value, and when the key service last allowed its use. */
struct kfs_wrapped_dek {
	uint8_t value[KFS_DEK_XATTR_MAX];
	size_t len;
	time_t authorized_at;            /* grants for the file count from here */
};
int kfs_key_create(struct kfs_node *node, int fd, const char *path,
		   const struct kc_caller *caller);
int kfs_key_ensure(struct kfs_node *node, int fd, const char *path,
		   const struct kc_caller *caller, int writable);
void kfs_audit_integrity(const char *path, const char *what, int64_t block,
			 const char *reason);

/*
 * bucketkey.c. kfs_bucket_wrap: a fresh data key (into dek, secure memory)
 * for the file with header hdr, sealed under the caller's current bucket
 * key; out gets the version-2 xattr value. kfs_bucket_unwrap: the data key
 * from the version-2 value in wrapped, as the caller; sets authorized_at.
 * Both 0 or -errno (EACCES refused, EIO unreachable or damaged), and both
 * write the file's own audit record.
 */
int kfs_bucket_wrap(const struct kmsfs_header *hdr, const char *path,
		    const struct kc_caller *caller, uint8_t *dek, struct kfs_wrapped_dek *out);
int kfs_bucket_unwrap(const struct kmsfs_header *hdr, const char *path,
		      const struct kc_caller *caller, struct kfs_wrapped_dek *wrapped,
		      uint8_t *dek);
void kfs_bucket_cache_destroy(void);    /* unmount: wipe every cached bucket key */

/* io.c: all take node->io_lock themselves */
ssize_t kfs_io_read(struct kfs_file *f, char *buf, size_t size, off_t off);
ssize_t kfs_io_write(struct kfs_file *f, const char *buf, size_t size, off_t off);
int kfs_io_truncate(struct kfs_file *f, off_t size);
int kfs_io_fallocate(struct kfs_file *f, int mode, off_t off, off_t len);
off_t kfs_io_lseek(struct kfs_file *f, off_t off, int whence);
uint64_t kfs_plain_size_of(const struct stat *st);
char *kfs_read_buffer(size_t size);

#endif /* KMSFS_FS_INTERNAL_H */
