/*
 * cli.h - shared pieces of the kmsfs command line: option structs for the
 * key store, opening the key service, error reporting, subcommands.
 */
#ifndef KMSFS_CLI_H
#define KMSFS_CLI_H

#include <limits.h>

#include "fs.h"
#include "keyclient.h"

struct cli_keystore {
	const char *dir;             /* --keystore; NULL: the default */
	const char *passfile;        /* --passfile */
	const char *extpass;         /* --extpass */
	char resolved[PATH_MAX];     /* the directory actually used */
};

/* Print "kmsfs: ..." to stderr. Always returns 1 (the exit status). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Open the local key service; create=1 makes the key store if missing. */
int cli_open_keyclient(struct cli_keystore *ks, int create, struct keyclient **out);

/* The caller as the key service sees the user running this command. */
void cli_caller(struct kc_caller *caller, char *principal, size_t len);

/* mkdir -p dir with mode 0700 for what it creates. */
int cli_make_private_dir(const char *dir);

/* Default audit log: KEYSTORE/audit.log. */
void cli_default_audit_path(const struct cli_keystore *ks, char *out, size_t len);

/* ---- cli_remote.c: a remote key service (kmsd or AWS KMS) ---------------------- */

#define CLI_MAX_UID_MAPS 64

struct cli_remote {
	const char *endpoint;        /* --key-service URL, or the volume's key_service */
	const char *region;          /* --region; NULL: the key ARN's, the profile's, AWS_REGION */
	const char *ca_file;         /* --ca-file: PEM CA bundle to trust */
	const char *profile;         /* --profile for this user; NULL: env keys, AWS_PROFILE, default */
	const char *key;             /* the volume's key (its ARN names the region) */
	long timeout_ms;             /* one request's limit; 0: the backend's default */
	struct { uid_t uid; char profile[KMSFS_PRINCIPAL_NAME_MAX]; } uids[CLI_MAX_UID_MAPS];
	size_t uid_count;            /* --map-uid entries */
	/* Filled by cli_open_remote: this user first, then each mapped uid. */
	struct kmsfs_principal_map map[CLI_MAX_UID_MAPS + 1];
	size_t map_count;
};

/* Open the remote service with this user's and each mapped uid's credentials. */
int cli_open_remote(struct cli_remote *r, struct keyclient **out, char *own_principal,
		size_t len);
/* "UID=PROFILE" (--map-uid). */
int cli_parse_map_uid(struct cli_remote *r, const char *text);
/* An INI file's [principals] section: UID = PROFILE lines. */
int cli_read_principals(struct cli_remote *r, const char *path);
/* Is key_service a remote endpoint rather than the embedded engine? */
int cli_is_remote(const char *key_service);

int cmd_init(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_audit(int argc, char **argv);

/* ---- cli_service.c: the key service of a cipher directory, for offline tools ---- */

/*
 * What snapshot, rekey, fsck and volume need to reach a volume's key
 * service without mounting it: the local key store or a remote service
 * with this user's AWS credentials, and the audit log every data-key call
 * is recorded in (FILE, or DIR/ for a signed trail, as kmsfs mount).
 * Fill the option fields, then cli_service_open.
 */
struct cli_service {
	struct cli_keystore ks;      /* --keystore, --passfile, --extpass (local service) */
	struct cli_remote remote;    /* --profile, --region, --ca-file (remote service) */
	const char *audit_log;       /* --audit-log; NULL: KEYSTORE/audit.log */
	unsigned audit_digest_period; /* a trail's seconds per file and digest; 0: a day */
	/* filled by cli_service_open */
	struct keyclient *kc;
	struct kc_audit *audit;
	struct kc_caller caller;     /* this user, as the key service knows them */
	char principal[KMSFS_PRINCIPAL_NAME_MAX];
};

/*
 * Open key_service ("local" or a remote endpoint URL; key, an ARN or NULL,
 * helps find a remote region) and the audit log, and attach the log to
 * the keyclient. Prints why and returns 1 on failure.
 */
int cli_service_open(struct cli_service *s, const char *key_service, const char *key);
/* Close what cli_service_open opened; safe on a zeroed or half-opened struct. */
void cli_service_close(struct cli_service *s);
/*
 * The same key service, volume config authenticated as s's user: peek the
 * config, open its service, load it. Prints why and returns 1 on failure.
 */
int cli_service_open_volume(struct cli_service *s, const char *cipherdir,
		struct kmsfs_volume *vol);

/* ---- cli_mounts.c: what is mounted where (/proc/self/mountinfo) ---------------- */

struct cli_mount {
	unsigned int major, minor;    /* st_dev of what is mounted */
	char root[PATH_MAX];          /* the mounted directory inside that filesystem */
	char mountpoint[PATH_MAX];
	char fstype[64];              /* "ext4", "fuse.kmsfs", ... */
	char source[PATH_MAX];        /* for kmsfs: the cipher directory */
};

/* Calls visit for each mount, in mount order, until it returns non-zero. 0, or -1 with errno. */
typedef int (*cli_mount_visit)(const struct cli_mount *m, void *arg);
int cli_each_mount(cli_mount_visit visit, void *arg);
/*
 * Is the volume in cipherdir (absolute, symlinks resolved) mounted? 1 with
 * its mount point in mountpoint, else 0 (also when mountinfo is unreadable).
 */
int cli_kmsfs_mounted_at(const char *cipherdir, char *mountpoint, size_t len);

int cmd_snapshot(int argc, char **argv);
int cmd_rekey(int argc, char **argv);
int cmd_fsck(int argc, char **argv);
int cmd_volume(int argc, char **argv);

#endif /* KMSFS_CLI_H */
