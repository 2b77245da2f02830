/*
 * fs.h - public interface of kmsfs's FUSE layer.
 *
 * The CLI (tools/) creates volumes with kmsfs_volume_create() and mounts
 * them with kmsfs_fs_mount(). Everything else - FUSE operations, the
 * per-inode key cache, block I/O - stays private to fs/.
 */
#ifndef KMSFS_FS_H
#define KMSFS_FS_H

#include <stdint.h>
#include <sys/types.h>

#include "crypto.h"
#include "keyclient.h"

#define KMSFS_CONF_NAME "kmsfs.conf"
#define KMSFS_DEK_XATTR "user.kmsfs.dek"
#define KMSFS_XATTR_PREFIX "user.kmsfs."

/* A volume's authenticated configuration (CIPHERDIR/kmsfs.conf). */
struct kmsfs_volume {
	char id[37];                 /* UUID */
	int format;                  /* KMSFS_FORMAT_VERSION */
	enum kmsfs_cipher cipher;
	uint32_t block_size;
	char key_id[KC_ARN_MAX];     /* KMS key ARN */
	char key_service[256];       /* "local", or the remote key service's endpoint URL */
	int bucket_key;              /* data keys wrapped under a bucket key (bucketkey.c) */
};

/* kmsfs_volume_create flags */
#define KMSFS_VOLUME_BUCKET_KEY 0x1  /* bucket key mode: bucket_key = true */

/*
 * Write CIPHERDIR/kmsfs.conf for a new volume under key_id, with a MAC
 * keyed by a data key only the key service can unwrap. flags: 0 or
 * KMSFS_VOLUME_BUCKET_KEY. Fails if the directory is not empty-of-config,
 * or lacks user xattr support. errbuf receives "what: why" on failure.
 */
int kmsfs_volume_create(const char *cipherdir, const char *key_id, enum kmsfs_cipher cipher,
			unsigned flags, struct keyclient *kc, const struct kc_caller *caller,
			struct kmsfs_volume *out, char *errbuf, size_t errlen);

/*
 * Parse and validate CIPHERDIR/kmsfs.conf WITHOUT authenticating it: only
 * to learn which key service to open (key_service, key_id); everything
 * else must come from kmsfs_volume_load with that service.
 */
int kmsfs_volume_peek(const char *cipherdir, struct kmsfs_volume *out, char *errbuf,
		      size_t errlen);
/* Parse, validate strictly, and authenticate CIPHERDIR/kmsfs.conf. */
int kmsfs_volume_load(const char *cipherdir, struct keyclient *kc,
		      const struct kc_caller *caller, struct kmsfs_volume *out,
		      char *errbuf, size_t errlen);

/* Is user xattr supported in dir? 0 yes, else -errno. */
int kmsfs_probe_user_xattr(const char *dir);

/* A uid and the principal it is to the key service (a remote mount's profile name). */
#define KMSFS_PRINCIPAL_NAME_MAX 128
struct kmsfs_principal_map {
	uid_t uid;
	char principal[KMSFS_PRINCIPAL_NAME_MAX];
};

struct kmsfs_mount_opts {
	const char *cipherdir;       /* absolute */
	const char *mountpoint;      /* absolute */
	int foreground;
	int key_cache_ttl;           /* seconds an authorized (inode, principal) skips the key service */
	int writeback_cache;
	/*
	 * Who each uid is to the key service. NULL: "uid:N" for every uid (the
	 * embedded engine's principals). Otherwise the listed uids are their
	 * principals and any other uid has none: its requests go unsigned and
	 * are refused (EACCES), whatever the Unix permissions say.
	 */
	const struct kmsfs_principal_map *principals;
	size_t principal_count;
	int fuse_argc;               /* extra FUSE args (e.g. "-o", "allow_other") */
	char **fuse_argv;
};

/*
 * Mount and serve until unmounted or signalled. kc and audit are owned by
 * the caller and must outlive the call. If notify_fd >= 0, one status byte
 * (0) is written to it once the mount is live (used to daemonize).
 * Returns 0 on a clean unmount, else non-zero after printing why.
 */
int kmsfs_fs_mount(const struct kmsfs_mount_opts *opts, const struct kmsfs_volume *vol,
		   struct keyclient *kc, struct kc_audit *audit, int notify_fd);

#endif /* KMSFS_FS_H */
