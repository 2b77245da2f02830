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
 * What a key-service answer is to a user, as the mount answers it (S3-like):
 * 0 for KC_OK; -EACCES when the key service refuses (not allowed, unsigned
 * or badly signed, a disabled, missing or pending-deletion key); -EIO for
 * anything else (unreachable, a damaged blob).
 */
int kmsfs_errno_for_status(enum kc_status status);

/*
 * Parse and validate CIPHERDIR/kmsfs.conf WITHOUT authenticating it: only
 * to learn which key service to open (key_service, key_id); everything
 * else must come from kmsfs_volume_load with that service.
 */
int kmsfs_volume_peek(const char *cipherdir, struct kmsfs_volume *out, char *errbuf,
		      size_t errlen);
/*
 * Parse, validate strictly, and authenticate CIPHERDIR/kmsfs.conf. 0, or:
 * -EINVAL unreadable, malformed or naming another key service; -EBADMSG
 * modified (the MAC or its wrapped key does not verify); -EACCES the key
 * service refuses the volume's key; -EIO it cannot be asked; -ENOMEM.
 * errbuf says which, with the AWS error type where there is one; kc_err
 * (may be NULL) gets the key service's own answer when it was asked.
 */
int kmsfs_volume_load(const char *cipherdir, struct keyclient *kc,
		      const struct kc_caller *caller, struct kmsfs_volume *out,
		      char *errbuf, size_t errlen, struct kc_error *kc_err);

/*
 * Rewrite CIPHERDIR/kmsfs.conf for the same volume under new_key_id: a new
 * config MAC key from that key, every other field kept; written atomically
 * (a crash leaves the old or the new file). For kmsfs rekey, after every
 * file's data key has moved to the new key.
 */
int kmsfs_volume_rekey(const char *cipherdir, const struct kmsfs_volume *vol,
		       const char *new_key_id, struct keyclient *kc,
		       const struct kc_caller *caller, struct kmsfs_volume *out,
		       char *errbuf, size_t errlen);

/* ---- a volume without a mount: snapshot copy, rekey, fsck (keyring.c, backing.c) ---- */

/* Largest user.kmsfs.dek value. */
#define KMSFS_DEK_XATTR_MAX 4096

/*
 * The data keys of one volume, reached without mounting it: unwrap a
 * file's key, wrap a key for a file, rewrap a file's key for another key
 * or volume. Key-service calls go through kc and are audited by it (with
 * the file's path); a data key sealed or opened locally under a bucket
 * key gets its own audit record (eventSource "kmsfs", bucketKey true), as
 * in a mount. Bucket keys are cached for the keyring's life, so a tree
 * costs one key-service call per bucket key, not one per file.
 * Safe to use from several threads at once. kc must outlive it.
 */
struct kmsfs_keyring;

struct kmsfs_keyring *kmsfs_keyring_new(const struct kmsfs_volume *vol, struct keyclient *kc,
					const struct kc_caller *caller);
/* Wipes every cached bucket key. NULL is fine. */
void kmsfs_keyring_free(struct kmsfs_keyring *kr);
const struct kmsfs_volume *kmsfs_keyring_volume(const struct kmsfs_keyring *kr);

/*
 * The data key of the file with header hdr from its user.kmsfs.dek value.
 * 0; -EIO when the value is malformed (KC_VALIDATION) or does not open for
 * this file and volume (KC_INVALID_CIPHERTEXT: damaged, or moved from
 * another file or volume); -EACCES when the key service refuses (disabled
 * key, no permission); -EIO when it is unreachable. err says which.
 * path (volume-relative, may be NULL) names the file in audit records.
 */
int kmsfs_keyring_unwrap(struct kmsfs_keyring *kr, const struct kmsfs_header *hdr,
			 const char *path, const uint8_t *wrapped, size_t wrapped_len,
			 uint8_t dek[KMSFS_DEK_LEN], struct kc_error *err);

/*
 * A user.kmsfs.dek value for the file with header hdr in kr's volume:
 * version 1 under the volume's key, or version 2 under a bucket key when
 * the volume has bucket_key. fresh=1: dek receives a new random data key
 * (GenerateDataKey, or random bytes sealed under the bucket key);
 * fresh=0: the data key in dek is wrapped (Encrypt, or sealed).
 * out holds KMSFS_DEK_XATTR_MAX bytes. 0 or -errno as for unwrap.
 */
int kmsfs_keyring_wrap(struct kmsfs_keyring *kr, const struct kmsfs_header *hdr,
		       const char *path, uint8_t dek[KMSFS_DEK_LEN], int fresh,
		       uint8_t *out, size_t *out_len, struct kc_error *err);

/*
 * The same two as file keys (kmsfs_filekey_new), so the plaintext data key
 * never leaves locked memory: the file's key from its value; a new file's
 * key, with a fresh header (random file id, the volume's cipher) and its
 * value in out. NULL on failure, with the errno in *error and err filled.
 */
struct kmsfs_filekey *kmsfs_keyring_filekey(struct kmsfs_keyring *kr,
					    const struct kmsfs_header *hdr, const char *path,
					    const uint8_t *wrapped, size_t wrapped_len,
					    int *error, struct kc_error *err);
struct kmsfs_filekey *kmsfs_keyring_new_filekey(struct kmsfs_keyring *kr, const char *path,
						uint8_t *out, size_t *out_len, int *error,
						struct kc_error *err);

/*
 * The file's value in src's volume rewrapped for dst's volume and key,
 * the data key unchanged (contents stay valid as ciphertext). Without the
 * plaintext data key when possible: version 1 -> version 1 through
 * ReEncrypt when both keyrings share a keyclient (whatever dst's bucket
 * key mode: the mount opens either version); version 2 within one volume
 * (rekey) by ReEncrypt of its bucket key. Otherwise (another key service,
 * or a bucket-key file moving to another volume, whose seal binds the
 * volume id, or out of bucket key mode) unwrap then wrap, and
 * *plaintext_used (may be NULL) is set to 1.
 */
int kmsfs_keyring_rewrap(struct kmsfs_keyring *src, struct kmsfs_keyring *dst,
			 const struct kmsfs_header *hdr, const char *path,
			 const uint8_t *wrapped, size_t wrapped_len,
			 uint8_t *out, size_t *out_len, int *plaintext_used,
			 struct kc_error *err);

/*
 * Backing files, block by block. Holes stay holes: only the data regions
 * SEEK_DATA finds are read, and an all-zero stored block (a hole in the
 * plaintext) is never written. *bytes (may be NULL) is advanced atomically
 * by the plaintext-sized amount done, for progress across threads.
 */
/* Byte copy of a backing file (header and sealed blocks), sparse. 0 or -errno. */
int kmsfs_backing_copy(int src_fd, int dst_fd, uint64_t *bytes);
/*
 * Decrypt src (sealed under src_fk) and seal every block again under
 * dst_fk (a new file id and data key) into dst_fd, header included; dst is
 * truncated to the right size. -EIO when a source block fails
 * authentication, with *bad_block (may be NULL) naming it; other -errno.
 */
int kmsfs_backing_reencrypt(int src_fd, const struct kmsfs_filekey *src_fk, int dst_fd,
			    const struct kmsfs_filekey *dst_fk, uint64_t *bad_block,
			    uint64_t *bytes);
/*
 * SHA-256 of the plaintext of a backing file (holes as zeros), checking
 * every block. -EIO with *bad_block on an authentication failure.
 */
int kmsfs_backing_hash(int fd, const struct kmsfs_filekey *fk, uint8_t out[32],
		       uint64_t *bad_block, uint64_t *bytes);

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
