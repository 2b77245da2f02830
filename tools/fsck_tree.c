/*
 * fsck_tree.c - walking a cipher directory for `kmsfs fsck`: the regular
 * files to check (each inode once, however many hard links it has), and
 * what kmsfs itself may leave at the root:
 *   .kmsfs.conf.XXXXXX         a config write that never got renamed into place
 *   .kmsfs-xattr-probe.XXXXXX  init's xattr test file, left by a crash
 *   .kmsfs-snapshot.d/ + .kmsfs-snapshot-state   an interrupted kmsfs snapshot copy
 *   .kmsfs-rekey.d/ + .kmsfs-rekey-state         an interrupted kmsfs rekey
 * The first two are always safe to delete. Staging files of an interrupted
 * operation are what its re-run finishes from, so they go only once the
 * state file that drives the re-run is gone. Symlinks, directories, fifos,
 * sockets and devices need no checking; the walk stays on one filesystem
 * and never follows a symlink.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsck.h"

struct interruptible {
	const char *staging;         /* directory of files in flight */
	const char *state;           /* what a re-run resumes from */
	const char *command;
};

static const struct interruptible operations[] = {
	{ FSCK_SNAPSHOT_STAGING, FSCK_SNAPSHOT_STATE, "kmsfs snapshot copy" },
	{ FSCK_REKEY_STAGING, FSCK_REKEY_STATE, "kmsfs rekey" },
};

#define OPERATION_COUNT (sizeof(operations) / sizeof(operations[0]))

/* Hard-link bookkeeping: each inode with several links, and its entry in f->files. */
struct walk {
	struct fsck *f;
	dev_t dev;                   /* the cipher directory's filesystem */
	struct inode_seen { dev_t dev; ino_t ino; size_t file; } *seen;
	size_t seen_count, seen_cap;
};

static int is_staging_name(const char *name)
{
	for (size_t i = 0; i < OPERATION_COUNT; i++)
		if (!strcmp(name, operations[i].staging) || !strcmp(name, operations[i].state))
			return 1;
	return 0;
}

static int has_prefix(const char *name, const char *prefix)
{
	return strncmp(name, prefix, strlen(prefix)) == 0;
}

/* Names at the root that are kmsfs's own, not a user's files. */
static int is_kmsfs_root_name(const char *name)
{
	return !strcmp(name, KMSFS_CONF_NAME) || is_staging_name(name) ||
	       has_prefix(name, FSCK_CONF_TMP_PREFIX) || has_prefix(name, FSCK_PROBE_PREFIX);
}

/* Open addressing on (dev, ino); only files with more than one link go in. */
static size_t inode_slot(const struct walk *w, dev_t dev, ino_t ino)
{
	uint64_t h = ((uint64_t)ino * 0x9e3779b97f4a7c15ULL) ^ (uint64_t)dev;

	return (size_t)(h ^ (h >> 29)) & (w->seen_cap - 1);
}

static int seen_grow(struct walk *w)
{
	struct walk bigger = { .seen_cap = w->seen_cap ? 2 * w->seen_cap : 1024 };

	bigger.seen = calloc(bigger.seen_cap, sizeof(*bigger.seen));
	if (!bigger.seen)
		return -ENOMEM;
	for (size_t i = 0; i < w->seen_cap; i++) {
		size_t s;

		if (!w->seen[i].ino)
			continue;
		for (s = inode_slot(&bigger, w->seen[i].dev, w->seen[i].ino); bigger.seen[s].ino;
		     s = (s + 1) & (bigger.seen_cap - 1))
			;
		bigger.seen[s] = w->seen[i];
	}
	free(w->seen);
	w->seen = bigger.seen;
	w->seen_cap = bigger.seen_cap;
	return 0;
}

static int add_file(struct fsck *f, const char *path, const struct stat *st)
{
	struct fsck_file *file;

	if (f->file_count == f->file_cap) {
		size_t cap = f->file_cap ? 2 * f->file_cap : 256;
		struct fsck_file *grown = realloc(f->files, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		f->files = grown;
		f->file_cap = cap;
	}
	file = &f->files[f->file_count];
	memset(file, 0, sizeof(*file));
	file->path = strdup(path);
	if (!file->path)
		return -ENOMEM;
	file->size = (uint64_t)st->st_size;
	f->total_bytes += file->size;
	f->file_count++;
	return 0;
}

/*
 * A file with several links is checked once, under the name that sorts
 * first, so a finding names the same path whatever order readdir gives.
 * Inode 0 never names a file (empty hash slots are 0).
 */
static int add_linked_file(struct walk *w, const char *path, const struct stat *st)
{
	struct fsck_file *file;
	size_t s;
	int ret;

	if (2 * (w->seen_count + 1) > w->seen_cap && seen_grow(w) < 0)
		return add_file(w->f, path, st);     /* worst case it is checked twice */
	for (s = inode_slot(w, st->st_dev, st->st_ino); w->seen[s].ino;
	     s = (s + 1) & (w->seen_cap - 1)) {
		char *name;

		if (w->seen[s].ino != st->st_ino || w->seen[s].dev != st->st_dev)
			continue;
		file = &w->f->files[w->seen[s].file];
		if (strcmp(path, file->path) >= 0 || !(name = strdup(path)))
			return 0;
		free(file->path);
		file->path = name;
		return 0;
	}
	ret = add_file(w->f, path, st);
	if (ret == 0) {
		w->seen[s] = (struct inode_seen){ st->st_dev, st->st_ino, w->f->file_count - 1 };
		w->seen_count++;
	}
	return ret;
}

static int unreadable_dir(struct fsck *f, const char *path, int err)
{
	struct fsck_finding fd = { .path = path, .event = "UnreadableDirectory", .block = -1,
				   .status = KC_VALIDATION, .operational = 1 };

	fsck_report(f, &fd, "cannot read directory: %s (its files are not checked)",
		    strerror(err));
	return 0;
}

static int walk_dir(struct walk *w, int dirfd, const char *rel);

static int walk_entry(struct walk *w, int dirfd, const char *rel, const char *name)
{
	char path[PATH_MAX];
	struct stat st;
	int n, fd, ret;

	n = rel[0] ? snprintf(path, sizeof(path), "%s/%s", rel, name) :
		     snprintf(path, sizeof(path), "%s", name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return unreadable_dir(w->f, rel, ENAMETOOLONG);
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : unreadable_dir(w->f, path, errno);
	if (S_ISREG(st.st_mode))
		return st.st_nlink > 1 && st.st_ino ? add_linked_file(w, path, &st) :
						      add_file(w->f, path, &st);
	if (!S_ISDIR(st.st_mode) || st.st_dev != w->dev)
		return 0;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return unreadable_dir(w->f, path, errno);
	ret = walk_dir(w, fd, path);   /* closes fd */
	return ret;
}

/* Walk the directory open as dirfd (rel from the root; "" is the root). Closes dirfd. */
static int walk_dir(struct walk *w, int dirfd, const char *rel)
{
	DIR *dp = fdopendir(dirfd);
	struct dirent *de;
	int ret = 0;

	if (!dp) {
		close(dirfd);
		return unreadable_dir(w->f, rel[0] ? rel : ".", errno);
	}
	while (ret == 0 && (de = readdir(dp))) {
		const char *name = de->d_name;

		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		/* At the root: the config and kmsfs's own files are checked on their own. */
		if (!rel[0] && is_kmsfs_root_name(name))
			continue;
		ret = walk_entry(w, dirfd, rel, name);
	}
	closedir(dp);
	return ret;
}

/* ---- leftovers at the root ------------------------------------------------------------- */

/* rm -r of a staging directory, never following a symlink. 0 or -errno. */
static int remove_tree(int dirfd, const char *name)
{
	struct dirent *de;
	DIR *dp;
	int fd, ret = 0;

	if (unlinkat(dirfd, name, 0) == 0)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return errno == ENOENT ? 0 : -errno;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dp = fdopendir(fd);
	if (!dp) {
		ret = -errno;
		close(fd);
		return ret;
	}
	while (ret == 0 && (de = readdir(dp)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			ret = remove_tree(fd, de->d_name);
	closedir(dp);
	if (ret == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0)
		ret = -errno;
	return ret;
}

/* A leftover kmsfs made and nobody needs: deleted with --repair. */
static void leftover(struct fsck *f, const char *name, const char *what)
{
	struct fsck_finding fd = { .path = name, .event = "LeftoverFile", .block = -1,
				   .status = KC_VALIDATION };
	int ret;

	if (!f->opts.repair) {
		fsck_report(f, &fd, "%s (kmsfs fsck --repair deletes it)", what);
		return;
	}
	ret = remove_tree(f->rootfd, name);
	fd.repaired = ret == 0;
	if (ret == 0)
		fsck_report(f, &fd, "%s (deleted)", what);
	else
		fsck_report(f, &fd, "%s (cannot delete: %s)", what, strerror(-ret));
}

static void check_operation(struct fsck *f, const struct interruptible *op)
{
	struct fsck_finding fd = { .event = "InterruptedOperation", .block = -1,
				   .status = KC_VALIDATION };
	struct stat st;
	int has_state = fstatat(f->rootfd, op->state, &st, AT_SYMLINK_NOFOLLOW) == 0;
	int has_staging = fstatat(f->rootfd, op->staging, &st, AT_SYMLINK_NOFOLLOW) == 0;
	char what[256];

	if (has_state) {
		f->op_in_progress = 1;
		fd.path = op->state;
		fsck_report(f, &fd, "an interrupted %s: re-run %s to finish%s", op->command,
			    op->command, has_staging ? " (its staging files are kept: the re-run "
			    "needs them)" : "");
		return;
	}
	if (!has_staging)
		return;
	snprintf(what, sizeof(what), "staging files of an interrupted %s whose state file is "
		 "gone (a re-run starts over without them)", op->command);
	leftover(f, op->staging, what);
}

/* Config temp files and xattr probes at the root. */
static int check_root_leftovers(struct fsck *f)
{
	int fd = openat(f->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *dp;

	if (fd < 0 || !(dp = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while ((de = readdir(dp))) {
		if (has_prefix(de->d_name, FSCK_CONF_TMP_PREFIX))
			leftover(f, de->d_name, "temporary file of an unfinished kmsfs.conf write");
		else if (has_prefix(de->d_name, FSCK_PROBE_PREFIX))
			leftover(f, de->d_name, "xattr probe left by an interrupted kmsfs init");
	}
	closedir(dp);
	return 0;
}

int fsck_walk(struct fsck *f)
{
	struct walk w = { .f = f };
	struct stat st;
	int fd, ret;

	for (size_t i = 0; i < OPERATION_COUNT; i++)
		check_operation(f, &operations[i]);
	ret = check_root_leftovers(f);
	if (ret < 0)
		return ret;
	if (fstat(f->rootfd, &st) < 0)
		return -errno;
	w.dev = st.st_dev;
	fd = openat(f->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = walk_dir(&w, fd, "");
	free(w.seen);
	return ret;
}

void fsck_files_free(struct fsck *f)
{
	for (size_t i = 0; i < f->file_count; i++)
		free(f->files[i].path);
	free(f->files);
	free(f->by_id);
	free(f->by_dek);
	f->files = NULL;
	f->by_id = f->by_dek = NULL;
	f->file_count = f->file_cap = 0;
}
