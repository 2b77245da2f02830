/*
 * snapshot_walk.c - kmsfs snapshot copy: list the source tree.
 *
 * One thread walks the source (names sorted, so every run of the same
 * copy sees the same order and picks the same first name of a hard-linked
 * file), creating each directory in the destination as it goes: files can
 * then be copied in any order by the workers. Directories are created
 * 0700 and get their own modes, owners, times and xattrs at the end
 * (snapshot_copy.c), because creating entries in them changes their
 * mtime and a read-only mode would stop the copy.
 *
 * At the source root, kmsfs.conf and any .kmsfs-* leftovers (a probe file,
 * a config being written) are not part of the volume's contents.
 * --path REL limits the walk to REL (with everything below it) and the
 * directories leading to it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapshot.h"

enum selection { SEL_NONE, SEL_ANCESTOR, SEL_ALL };

static int add_entry(struct snap *s, char *rel, const struct stat *st, unsigned depth)
{
	if (s->count == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		struct snap_entry *grown = realloc(s->entries, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		s->entries = grown;
		s->cap = cap;
	}
	s->entries[s->count] = (struct snap_entry){ .rel = rel, .st = *st, .depth = depth,
						    .primary = s->count };
	s->count++;
	return 0;
}

/* Is rel one of the --path entries, below one, or a directory leading to one? */
static enum selection select_path(struct snap *s, const char *rel)
{
	size_t len = strlen(rel);
	enum selection sel = SEL_NONE;

	for (size_t i = 0; i < s->path_count; i++) {
		const char *p = s->paths[i];
		size_t plen = strlen(p);

		if (!strcmp(p, rel)) {
			s->path_found[i] = 1;
			return SEL_ALL;
		}
		if (len > plen && !strncmp(rel, p, plen) && rel[plen] == '/')
			return SEL_ALL;
		if (plen > len && !strncmp(p, rel, len) && p[len] == '/')
			sel = SEL_ANCESTOR;
	}
	return sel;
}

static int skipped_at_root(const char *name)
{
	return !strcmp(name, KMSFS_CONF_NAME) ||
	       !strncmp(name, SNAP_LEFTOVER_PREFIX, strlen(SNAP_LEFTOVER_PREFIX));
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in an open directory, sorted; *count of them. The fd is consumed. */
static int read_names(int dir_fd, char ***names, size_t *count)
{
	DIR *dp = fdopendir(dir_fd);
	struct dirent *de;
	size_t n = 0, cap = 0;
	char **list = NULL;

	if (!dp) {
		int err = -errno;

		close(dir_fd);
		return err;
	}
	while ((errno = 0, de = readdir(dp))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			char **grown = realloc(list, (cap = cap ? cap * 2 : 32) * sizeof(*list));

			if (!grown)
				goto nomem;
			list = grown;
		}
		if (!(list[n] = strdup(de->d_name)))
			goto nomem;
		n++;
	}
	closedir(dp);
	qsort(list, n, sizeof(*list), by_name);
	*names = list;
	*count = n;
	return 0;
nomem:
	while (n)
		free(list[--n]);
	free(list);
	closedir(dp);
	return -ENOMEM;
}

/*
 * Create the destination directory for rel: 0700 until its attributes are
 * applied. One an earlier run made may already have its final mode (a
 * read-only one too): open it up again, the end of this run sets it back.
 */
static int make_dest_dir(struct snap *s, const char *rel)
{
	struct stat st;

	if (mkdirat(s->dst_fd, rel, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	if (fstatat(s->dst_fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -EEXIST;
	if ((st.st_mode & 0700) != 0700 && fchmodat(s->dst_fd, rel, 0700, 0) < 0)
		return -errno;
	return 0;
}

static char *join(const char *dir, const char *name)
{
	size_t dlen = strlen(dir), nlen = strlen(name);
	char *out = malloc(dlen + nlen + 2);

	if (!out)
		return NULL;
	if (dlen) {
		memcpy(out, dir, dlen);
		out[dlen++] = '/';
	}
	memcpy(out + dlen, name, nlen + 1);
	return out;
}

static int walk_dir(struct snap *s, const char *dir_rel, unsigned depth, int select_all);

/* One name in a directory: record it, and for a directory create it and go in. */
static int walk_name(struct snap *s, const char *dir_rel, const char *name, unsigned depth,
		     int select_all)
{
	enum selection sel = SEL_ALL;
	struct stat st;
	char *rel;
	int ret;

	if (depth == 0 && skipped_at_root(name))
		return 0;
	rel = join(dir_rel, name);
	if (!rel)
		return -ENOMEM;
	if (!select_all && s->paths)
		sel = select_path(s, rel);
	if (sel == SEL_NONE) {
		free(rel);
		return 0;
	}
	if (fstatat(s->src_fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		snap_fail(s, rel, "cannot read: %s", strerror(errno));
		free(rel);
		return 0;
	}
	if (sel == SEL_ANCESTOR && !S_ISDIR(st.st_mode)) {
		free(rel);
		return 0;
	}
	if (add_entry(s, rel, &st, depth) < 0) {
		free(rel);
		return -ENOMEM;
	}
	if (!S_ISDIR(st.st_mode))
		return 0;
	ret = make_dest_dir(s, rel);
	if (ret < 0) {
		s->entries[s->count - 1].failed = 1;
		snap_fail(s, rel, "cannot create the directory in %s: %s", s->dst, strerror(-ret));
		return 0;
	}
	return walk_dir(s, rel, depth + 1, sel == SEL_ALL);
}

static int walk_dir(struct snap *s, const char *dir_rel, unsigned depth, int select_all)
{
	int fd = openat(s->src_fd, *dir_rel ? dir_rel : ".",
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	char **names = NULL;
	size_t count = 0, i;
	int ret = 0;

	if (fd < 0 || (ret = read_names(fd, &names, &count)) < 0) {
		if (fd < 0)
			ret = -errno;
		if (ret == -ENOMEM)
			return ret;
		snap_fail(s, *dir_rel ? dir_rel : ".", "cannot list the directory: %s",
			  strerror(-ret));
		return 0;
	}
	for (i = 0; i < count && ret == 0; i++)
		ret = walk_name(s, dir_rel, names[i], depth, select_all);
	for (i = 0; i < count; i++)
		free(names[i]);
	free(names);
	return ret;
}

/* Hard links: order non-directories by inode, so the names of one file are adjacent. */
static const struct snap *sort_ctx;

static int by_inode(const void *a, const void *b)
{
	const struct snap_entry *x = &sort_ctx->entries[*(const size_t *)a];
	const struct snap_entry *y = &sort_ctx->entries[*(const size_t *)b];

	if (x->st.st_ino != y->st.st_ino)
		return x->st.st_ino < y->st.st_ino ? -1 : 1;
	return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

/*
 * Every name of a multiply-linked file points at its first name (the
 * walk's order), whose copy the others are linked to after the file phase.
 */
static int group_links(struct snap *s)
{
	size_t *linked = malloc((s->count ? s->count : 1) * sizeof(*linked)), n = 0;

	if (!linked)
		return -ENOMEM;
	for (size_t i = 0; i < s->count; i++)
		if (!S_ISDIR(s->entries[i].st.st_mode) && s->entries[i].st.st_nlink > 1)
			linked[n++] = i;
	sort_ctx = s;
	qsort(linked, n, sizeof(*linked), by_inode);
	for (size_t i = 1; i < n; i++) {
		struct snap_entry *prev = &s->entries[linked[i - 1]], *e = &s->entries[linked[i]];

		if (e->st.st_ino == prev->st.st_ino && e->st.st_dev == prev->st.st_dev)
			e->primary = prev->primary;
	}
	free(linked);
	return 0;
}

int snap_walk(struct snap *s)
{
	int ret = walk_dir(s, "", 0, s->paths == NULL);

	if (ret == 0)
		ret = group_links(s);
	if (ret < 0)
		return cli_error("snapshot: %s: cannot list the volume: %s", s->src,
				 strerror(-ret));
	for (size_t i = 0; i < s->path_count; i++)
		if (!s->path_found[i])
			snap_fail(s, s->paths[i], "not in the source volume %s", s->src);
	return 0;
}

void snap_entries_free(struct snap *s)
{
	for (size_t i = 0; i < s->count; i++)
		free(s->entries[i].rel);
	free(s->entries);
	s->entries = NULL;
	s->count = s->cap = 0;
}
