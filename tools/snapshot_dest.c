/*
 * snapshot_dest.c - kmsfs snapshot copy: the destination volume, and
 * what makes an interrupted copy resumable.
 *
 * A copy in progress is marked by DST/.kmsfs-snapshot-state (INI: the
 * source volume's id, the destination key and service, the mode) and
 * works through DST/.kmsfs-snapshot.d/, where every file is written whole
 * under a unique name, then renamed to its final path. So after a crash
 * a final path holds a complete file or nothing, and a re-run of the same
 * command takes up where the last one stopped. The order:
 *
 *   1. state file written (DST is no longer empty, but has no kmsfs.conf)
 *   2. the volume made in .kmsfs-snapshot.d/volume/ (kmsfs_volume_create
 *      wants an empty directory), its kmsfs.conf renamed to DST/kmsfs.conf
 *   3. files ...; at the end the staging directory and state file go.
 *
 * A crash before 2 ends leaves no kmsfs.conf: the re-run makes the volume
 * again (no file was written under the first one). A directory with
 * kmsfs.conf and no state file is somebody's volume and is refused; so is
 * a state file for another source or mode. DST is flock'ed for the run,
 * so two copies never work on one destination.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "snapshot.h"

struct snap_state {
	char source_volume[37];
	char key[KC_ARN_MAX];
	char key_service[256];
	char mode[16];
	int bucket_key;
};

static const char *mode_name(const struct snap *s)
{
	return s->reencrypt ? "reencrypt" : "rewrap";
}

static int on_state_entry(void *user, const char *section, const char *name, const char *value)
{
	struct snap_state *st = user;

	if (strcmp(section, "snapshot"))
		return 1;
	if (!strcmp(name, "source_volume"))
		snprintf(st->source_volume, sizeof(st->source_volume), "%s", value);
	else if (!strcmp(name, "key"))
		snprintf(st->key, sizeof(st->key), "%s", value);
	else if (!strcmp(name, "key_service"))
		snprintf(st->key_service, sizeof(st->key_service), "%s", value);
	else if (!strcmp(name, "mode"))
		snprintf(st->mode, sizeof(st->mode), "%s", value);
	else if (!strcmp(name, "bucket_key"))
		st->bucket_key = !strcmp(value, "true");
	return 1;
}

/* 1 and *st filled when DST has a state file, 0 when not, -1 (printed) when unreadable. */
static int read_state(struct snap *s, struct snap_state *st)
{
	char path[PATH_MAX + 32];
	int rc;

	snprintf(path, sizeof(path), "%s/%s", s->dst, SNAP_STATE_NAME);
	if (faccessat(s->dst_fd, SNAP_STATE_NAME, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -cli_error("snapshot: %s: %s", path, strerror(errno));
	memset(st, 0, sizeof(*st));
	rc = ini_parse(path, on_state_entry, st);
	if (rc != 0 || !st->source_volume[0] || !st->key[0] || !st->key_service[0] ||
	    !st->mode[0])
		return -cli_error("snapshot: %s: not a snapshot state file kmsfs can read "
				  "(line %d); remove it and %s to start over", path, rc, s->dst);
	return 1;
}

/* Written whole and renamed into place, so a crash leaves the old file or the new one. */
static int write_state(struct snap *s, const char *key, const char *key_service, int bucket)
{
	static const char tmp[] = SNAP_STATE_NAME ".tmp";
	FILE *fp;
	int fd = openat(s->dst_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), ok;

	if (fd < 0 || !(fp = fdopen(fd, "w")))
		return cli_error("snapshot: %s/%s: cannot write: %s", s->dst, tmp, strerror(errno));
	fprintf(fp, "# kmsfs snapshot copy in progress. Run the same kmsfs snapshot copy again "
		    "to finish it.\n[snapshot]\nsource_volume = %s\nsource = %s\nkey = %s\n"
		    "key_service = %s\nmode = %s\nbucket_key = %s\n",
		s->src_vol.id, s->src, key, key_service, mode_name(s), bucket ? "true" : "false");
	ok = fflush(fp) == 0 && fsync(fd) == 0;
	ok = fclose(fp) == 0 && ok;
	if (!ok || renameat(s->dst_fd, tmp, s->dst_fd, SNAP_STATE_NAME) < 0 || fsync(s->dst_fd) < 0)
		return cli_error("snapshot: %s/%s: cannot write: %s", s->dst, SNAP_STATE_NAME,
				 strerror(errno));
	return 0;
}

/* Remove what is below dir_fd/name (a leftover staging tree: files and one level of dirs). */
static int remove_tree(int dir_fd, const char *name, int keep_top)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirent *de;
	DIR *dp;
	int ret = 0;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(dp))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (unlinkat(fd, de->d_name, 0) == 0)
			continue;
		if (errno == EISDIR || errno == EPERM)
			ret = remove_tree(fd, de->d_name, 0);
		else
			ret = -errno;
		if (ret < 0)
			break;
	}
	closedir(dp);
	if (ret == 0 && !keep_top && unlinkat(dir_fd, name, AT_REMOVEDIR) < 0)
		ret = -errno;
	return ret;
}

/* An empty staging directory, open in s->staging_fd. */
static int open_staging(struct snap *s)
{
	int ret;

	if (mkdirat(s->dst_fd, SNAP_STAGING_NAME, 0700) < 0 && errno != EEXIST)
		return cli_error("snapshot: %s/%s: cannot create: %s", s->dst, SNAP_STAGING_NAME,
				 strerror(errno));
	ret = remove_tree(s->dst_fd, SNAP_STAGING_NAME, 1);
	if (ret < 0)
		return cli_error("snapshot: %s/%s: cannot clear what an earlier run left: %s",
				 s->dst, SNAP_STAGING_NAME, strerror(-ret));
	s->staging_fd = openat(s->dst_fd, SNAP_STAGING_NAME,
			       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s->staging_fd < 0)
		return cli_error("snapshot: %s/%s: %s", s->dst, SNAP_STAGING_NAME, strerror(errno));
	return 0;
}

void snap_staging_name(struct snap *s, char *out, size_t len)
{
	unsigned long long seq = __atomic_add_fetch(&s->staging_seq, 1, __ATOMIC_RELAXED);

	snprintf(out, len, "%s.%llu", s->staging_tag, seq);
}

/* 1 when DST holds nothing but an earlier run's staging directory, 0 if more, -errno. */
static int dest_is_empty(struct snap *s)
{
	int fd = openat(s->dst_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *dp;
	int empty = 1;

	if (fd < 0 || !(dp = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while ((de = readdir(dp)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, SNAP_STAGING_NAME))
			empty = 0;
	closedir(dp);
	return empty;
}

/*
 * The destination's key service: the source's keyclient when it is the
 * same service (that is what lets a data key move by ReEncrypt alone),
 * else its own, with the --dst-* credentials options.
 */
static int open_dest_service(struct snap *s, const char *service, const char *key)
{
	const struct cli_remote *r = &s->dst_svc.remote;

	if (!strcmp(service, keyclient_service(s->src_svc.kc))) {
		if (r->profile || r->region || r->ca_file)
			return cli_error("snapshot: --dst-profile, --dst-region and "
					 "--dst-ca-file are for a destination on another key "
					 "service (the destination uses the source's, %s)",
					 service);
		s->dst_kc = s->src_svc.kc;
		s->dst_caller = &s->src_svc.caller;
		return 0;
	}
	s->dst_svc.ks = s->src_svc.ks;
	s->dst_svc.audit_log = s->dst_audit_log ? s->dst_audit_log : s->src_svc.audit_log;
	s->dst_own_service = 1;
	if (cli_service_open(&s->dst_svc, service, key) != 0)
		return 1;
	s->dst_kc = s->dst_svc.kc;
	s->dst_caller = &s->dst_svc.caller;
	return 0;
}

/* Steps 2: the volume, made aside and its kmsfs.conf moved in. */
static int create_volume(struct snap *s, const char *key, int bucket)
{
	char where[PATH_MAX + 64], errbuf[512];
	int ret;

	snprintf(where, sizeof(where), "%s/%s/volume", s->dst, SNAP_STAGING_NAME);
	if (mkdirat(s->staging_fd, "volume", 0700) < 0)
		return cli_error("snapshot: %s: cannot create: %s", where, strerror(errno));
	if (kmsfs_volume_create(where, key, s->src_vol.cipher, bucket ? KMSFS_VOLUME_BUCKET_KEY : 0,
				s->dst_kc, s->dst_caller, &s->dst_vol, errbuf, sizeof(errbuf)) != 0)
		return cli_error("snapshot: %s", errbuf);
	if (renameat(s->staging_fd, "volume/" KMSFS_CONF_NAME, s->dst_fd, KMSFS_CONF_NAME) < 0)
		return cli_error("snapshot: %s/%s: cannot move into place: %s", s->dst,
				 KMSFS_CONF_NAME, strerror(errno));
	ret = remove_tree(s->staging_fd, "volume", 0);
	if (ret < 0)
		return cli_error("snapshot: %s: cannot remove: %s", where, strerror(-ret));
	if (fsync(s->dst_fd) < 0)
		return cli_error("snapshot: %s: fsync: %s", s->dst, strerror(errno));
	return 0;
}

/* A fresh copy: DST is empty (or had only an earlier run's staging directory). */
static int start_fresh(struct snap *s)
{
	const char *service = s->key_service ? s->key_service : s->src_vol.key_service;
	const char *key = s->key ? s->key : s->src_vol.key_id;
	int bucket = s->bucket_key >= 0 ? s->bucket_key : s->src_vol.bucket_key;
	int empty = dest_is_empty(s);

	if (empty < 0)
		return cli_error("snapshot: %s: %s", s->dst, strerror(-empty));
	if (!empty)
		return cli_error("snapshot: %s: directory is not empty and is not a kmsfs volume: "
				 "copy into a new or empty directory", s->dst);
	if (strcmp(service, s->src_vol.key_service) && !s->key)
		return cli_error("snapshot: --key-service %s: name the destination key with --key "
				 "(the source's key %s is in %s)", service, s->src_vol.key_id,
				 s->src_vol.key_service);
	if (open_dest_service(s, service, key) || open_staging(s) ||
	    write_state(s, key, service, bucket))
		return 1;
	if (create_volume(s, key, bucket) == 0)
		return 0;
	/* Nothing was copied: leave DST as it was, so a corrected command starts afresh. */
	remove_tree(s->dst_fd, SNAP_STAGING_NAME, 0);
	unlinkat(s->dst_fd, SNAP_STATE_NAME, 0);
	return 1;
}

/* Options given again on a resume must agree with the copy being resumed. */
static int check_resume_options(struct snap *s, const struct snap_state *st)
{
	if (strcmp(st->source_volume, s->src_vol.id))
		return cli_error("snapshot: %s: holds an unfinished copy of another volume "
				 "(%s, not %s's %s): finish that one, or copy into a new "
				 "directory", s->dst,
				 st->source_volume, s->src, s->src_vol.id);
	if (strcmp(st->mode, mode_name(s)))
		return cli_error("snapshot: %s: holds an unfinished copy made %s --reencrypt: "
				 "run it again the same way", s->dst,
				 !strcmp(st->mode, "reencrypt") ? "with" : "without");
	if (s->key_service && strcmp(s->key_service, st->key_service))
		return cli_error("snapshot: %s: the unfinished copy there uses key service %s, "
				 "not %s", s->dst, st->key_service, s->key_service);
	if (s->bucket_key >= 0 && s->bucket_key != st->bucket_key)
		return cli_error("snapshot: %s: the unfinished copy there was started %s "
				 "--bucket-key", s->dst, st->bucket_key ? "with" : "without");
	return 0;
}

/* --key on a resume: the key the copy was started with, as given then or as its ARN. */
static int check_resume_key(struct snap *s, const struct snap_state *st)
{
	if (s->key && strcmp(s->key, st->key) && strcmp(s->key, s->dst_vol.key_id))
		return cli_error("snapshot: %s: the unfinished copy there is under key %s, not %s",
				 s->dst, s->dst_vol.key_id, s->key);
	return 0;
}

/* A re-run: the state file is ours; load the destination (authenticated) and go on. */
static int resume(struct snap *s, const struct snap_state *st)
{
	char errbuf[512];

	if (check_resume_options(s, st) || open_dest_service(s, st->key_service, st->key) ||
	    open_staging(s))
		return 1;
	s->resumed = 1;
	if (faccessat(s->dst_fd, KMSFS_CONF_NAME, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
		if (create_volume(s, st->key, st->bucket_key))
			return 1;
	} else if (kmsfs_volume_load(s->dst, s->dst_kc, s->dst_caller, &s->dst_vol, errbuf,
				     sizeof(errbuf), NULL) != 0) {
		return cli_error("snapshot: %s", errbuf);
	}
	return check_resume_key(s, st);
}

/*
 * DST must not be SRC or inside it (the walk would find the copy): checked
 * on the absolute path DST will have, before anything is made there.
 */
static int check_not_inside(struct snap *s, const char *arg)
{
	char parent[PATH_MAX], *slash, resolved[PATH_MAX];
	size_t len = strlen(s->src);

	snprintf(parent, sizeof(parent), "%s", arg);
	for (size_t n = strlen(parent); n > 1 && parent[n - 1] == '/'; n--)
		parent[n - 1] = '\0';
	if (!realpath(arg, resolved)) {
		if (errno != ENOENT)
			return cli_error("snapshot: %s: %s", arg, strerror(errno));
		slash = strrchr(parent, '/');
		if (slash)
			*slash = '\0';
		if (!realpath(slash ? (*parent ? parent : "/") : ".", resolved))
			return cli_error("snapshot: %s: %s", arg, strerror(errno));
	}
	if (!strncmp(resolved, s->src, len) && (resolved[len] == '\0' || resolved[len] == '/'))
		return cli_error("snapshot: %s is inside the source volume %s", arg, s->src);
	return 0;
}

int snap_dest_open(struct snap *s)
{
	char arg[PATH_MAX];
	struct snap_state st;
	int has_state;

	snprintf(arg, sizeof(arg), "%s", s->dst);
	if (check_not_inside(s, arg))
		return 1;
	if (mkdir(arg, 0700) < 0 && errno != EEXIST)
		return cli_error("snapshot: %s: cannot create: %s", arg, strerror(errno));
	if (!realpath(arg, s->dst))
		return cli_error("snapshot: %s: %s", arg, strerror(errno));
	s->dst_fd = open(s->dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dst_fd < 0)
		return cli_error("snapshot: %s: %s", s->dst, strerror(errno));
	if (flock(s->dst_fd, LOCK_EX | LOCK_NB) < 0)
		return cli_error("snapshot: %s: another kmsfs snapshot copy is working on it (%s)",
				 s->dst, strerror(errno));
	has_state = read_state(s, &st);
	if (has_state < 0)
		return 1;
	if (has_state)
		return resume(s, &st);
	if (faccessat(s->dst_fd, KMSFS_CONF_NAME, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return cli_error("snapshot: %s: already a kmsfs volume (and no unfinished copy is "
				 "there): copy into a new or empty directory", s->dst);
	return start_fresh(s);
}

int snap_dest_finish(struct snap *s)
{
	int ret = remove_tree(s->dst_fd, SNAP_STAGING_NAME, 0);

	if (ret < 0)
		return cli_error("snapshot: %s/%s: cannot remove: %s", s->dst, SNAP_STAGING_NAME,
				 strerror(-ret));
	if (s->staging_fd >= 0) {
		close(s->staging_fd);
		s->staging_fd = -1;
	}
	if (unlinkat(s->dst_fd, SNAP_STATE_NAME, 0) < 0)
		return cli_error("snapshot: %s/%s: cannot remove: %s", s->dst, SNAP_STATE_NAME,
				 strerror(errno));
	if (fsync(s->dst_fd) < 0)
		return cli_error("snapshot: %s: fsync: %s", s->dst, strerror(errno));
	return 0;
}

void snap_dest_close(struct snap *s)
{
	if (s->staging_fd >= 0)
		close(s->staging_fd);
	if (s->dst_fd >= 0)
		close(s->dst_fd);    /* drops the flock */
	s->staging_fd = s->dst_fd = -1;
	if (s->dst_own_service)
		cli_service_close(&s->dst_svc);
}
