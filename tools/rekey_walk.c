/*
 * rekey_walk.c - the backing tree `kmsfs rekey` works through.
 *
 * One job per inode, not per name: a file's data key lives in its inode's
 * xattr, so a hard-linked file is rewrapped once, and re-encrypted once
 * with every name then moved to the new inode. Only regular files carry
 * data keys; directories, symlinks and special files are left alone
 * (directory times are noted, to be put back after renames changed them).
 *
 * Paths are relative to the volume root (and name files in audit records,
 * as a mount does). The walk does not follow symlinks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rekey.h"

/* Names the volume keeps for itself at its root. */
static int is_reserved(const char *dir, const char *name)
{
	return !dir[0] && (!strcmp(name, KMSFS_CONF_NAME) || !strcmp(name, REKEY_STATE_NAME) ||
			   !strcmp(name, REKEY_STAGING_NAME));
}

static char *join(const char *dir, const char *name)
{
	size_t dlen = strlen(dir), nlen = strlen(name);
	char *path = malloc(dlen + nlen + 2);

	if (!path)
		return NULL;
	memcpy(path, dir, dlen);
	if (dlen)
		path[dlen++] = '/';
	memcpy(path + dlen, name, nlen + 1);
	return path;
}

/* (dev, ino) as a 16-byte key for the id map, and a file index as its value. */
static void inode_key(dev_t dev, ino_t ino, uint8_t key[KMSFS_FILE_ID_LEN])
{
	uint64_t d = (uint64_t)dev, i = (uint64_t)ino;

	memcpy(key, &d, 8);
	memcpy(key + 8, &i, 8);
}

static void index_value(size_t index, uint8_t value[KMSFS_FILE_ID_LEN])
{
	uint64_t v = index;

	memset(value, 0, KMSFS_FILE_ID_LEN);
	memcpy(value, &v, 8);
}

static size_t value_index(const uint8_t *value)
{
	uint64_t v;

	memcpy(&v, value, 8);
	return (size_t)v;
}

static int add_link(struct rekey_file *f, char *path)
{
	char **links = realloc(f->links, (f->link_count + 1) * sizeof(*links));

	if (!links)
		return -ENOMEM;
	f->links = links;
	f->links[f->link_count++] = path;
	return 0;
}

/* A regular file: a new job, or another name of an inode seen before. Takes path. */
static int add_file(struct rekey_tree *tree, struct rekey_idmap *inodes, char *path,
		    const struct stat *sb, enum kmsfs_cipher cipher)
{
	uint8_t key[KMSFS_FILE_ID_LEN], value[KMSFS_FILE_ID_LEN];
	const uint8_t *seen;
	struct rekey_file *f;

	inode_key(sb->st_dev, sb->st_ino, key);
	if (sb->st_nlink > 1 && (seen = rekey_idmap_get(inodes, key)))
		return add_link(&tree->files[value_index(seen)], path);
	if (tree->count == tree->cap) {
		size_t cap = tree->cap ? tree->cap * 2 : 256;
		struct rekey_file *files = realloc(tree->files, cap * sizeof(*files));

		if (!files)
			return -ENOMEM;
		tree->files = files;
		tree->cap = cap;
	}
	if (sb->st_nlink > 1) {
		index_value(tree->count, value);
		if (rekey_idmap_put(inodes, key, value) != 0)
			return -ENOMEM;
	}
	f = &tree->files[tree->count++];
	*f = (struct rekey_file){ .path = path, .dev = sb->st_dev, .ino = sb->st_ino,
				  .nlink = sb->st_nlink, .backing_size = sb->st_size,
				  .mtime = sb->st_mtim, .relink_to = -1 };
	if (sb->st_size > 0)
		f->plain_size = kmsfs_plain_size((uint64_t)sb->st_size, cipher);
	tree->total_bytes += f->plain_size;
	return 0;
}

static int add_dir(struct rekey_tree *tree, const char *path, const struct stat *sb)
{
	struct rekey_dir *d;

	if (tree->dir_count == tree->dir_cap) {
		size_t cap = tree->dir_cap ? tree->dir_cap * 2 : 64;
		struct rekey_dir *dirs = realloc(tree->dirs, cap * sizeof(*dirs));

		if (!dirs)
			return -ENOMEM;
		tree->dirs = dirs;
		tree->dir_cap = cap;
	}
	d = &tree->dirs[tree->dir_count];
	d->path = strdup(path);
	if (!d->path)
		return -ENOMEM;
	d->times[0] = sb->st_atim;
	d->times[1] = sb->st_mtim;
	tree->dir_count++;
	return 0;
}

/* Directories still to list: a stack of volume-relative paths. */
struct dir_stack {
	char **paths;
	size_t count, cap;
};

static int push_dir(struct dir_stack *stack, char *path)
{
	if (stack->count == stack->cap) {
		size_t cap = stack->cap ? stack->cap * 2 : 64;
		char **paths = realloc(stack->paths, cap * sizeof(*paths));

		if (!paths)
			return -ENOMEM;
		stack->paths = paths;
		stack->cap = cap;
	}
	stack->paths[stack->count++] = path;
	return 0;
}

/* One directory's entries: files added, subdirectories pushed. */
static int list_dir(int root_fd, const char *path, struct dir_stack *stack,
		    struct rekey_tree *tree, struct rekey_idmap *inodes, enum kmsfs_cipher cipher)
{
	int fd = openat(root_fd, path[0] ? path : ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			O_CLOEXEC);
	struct stat sb;
	struct dirent *de;
	DIR *dir;
	int ret = 0;

	if (fd < 0)
		return -errno;
	ret = fstat(fd, &sb) < 0 ? -errno : add_dir(tree, path, &sb);
	if (ret != 0) {
		close(fd);
		return ret;
	}
	dir = fdopendir(fd);
	if (!dir) {
		ret = -errno;
		close(fd);
		return ret;
	}
	while (ret == 0 && (errno = 0, de = readdir(dir))) {
		char *child;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    is_reserved(path, de->d_name))
			continue;
		if (fstatat(dirfd(dir), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue;    /* gone meanwhile */
		if (!S_ISDIR(sb.st_mode) && !S_ISREG(sb.st_mode))
			continue;
		child = join(path, de->d_name);
		if (!child)
			ret = -ENOMEM;
		else if (S_ISDIR(sb.st_mode))
			ret = push_dir(stack, child);
		else
			ret = add_file(tree, inodes, child, &sb, cipher);
		if (ret != 0)
			free(child);
	}
	if (ret == 0 && errno)
		ret = -errno;
	closedir(dir);
	return ret;
}

/* A file's header id, if it has a readable header. */
static void read_file_id(int root_fd, struct rekey_file *f)
{
	uint8_t bytes[KMSFS_HEADER_LEN];
	struct kmsfs_header hdr;
	int fd = openat(root_fd, f->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return;
	if (pread(fd, bytes, sizeof(bytes), 0) == (ssize_t)sizeof(bytes) &&
	    kmsfs_header_decode(bytes, sizeof(bytes), &hdr) == 0) {
		memcpy(f->file_id, hdr.file_id, KMSFS_FILE_ID_LEN);
		f->id_known = 1;
	}
	close(fd);
}

/* Neither written since the copy was made: it has the original's size and mtime. */
static int same_contents(const struct rekey_file *a, const struct rekey_file *b)
{
	return a->backing_size == b->backing_size && a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/*
 * An interrupted --reencrypt may have moved some names of a hard-linked
 * file to its new inode and not the others: the state file says which old
 * file id became which new one, so the names left on the old inode can
 * rejoin the new one instead of being re-encrypted into a third - unless
 * either was written since (through a mount in between): then both stay,
 * as two files.
 */
static int find_split_links(int root_fd, const struct rekey_state *state, struct rekey_tree *tree)
{
	struct rekey_idmap by_id = { 0 };
	uint8_t value[KMSFS_FILE_ID_LEN];
	int ret = 0;

	for (size_t i = 0; i < tree->count && ret == 0; i++) {
		read_file_id(root_fd, &tree->files[i]);
		if (!tree->files[i].id_known)
			continue;
		index_value(i, value);
		ret = rekey_idmap_put(&by_id, tree->files[i].file_id, value);
	}
	for (size_t i = 0; i < tree->count && ret == 0; i++) {
		struct rekey_file *f = &tree->files[i];
		const uint8_t *new_id, *target;

		if (!f->id_known || rekey_idmap_get(&state->done, f->file_id))
			continue;
		new_id = rekey_idmap_get(&state->origin, f->file_id);
		target = new_id ? rekey_idmap_get(&by_id, new_id) : NULL;
		if (target && value_index(target) != i &&
		    same_contents(f, &tree->files[value_index(target)]))
			f->relink_to = (ssize_t)value_index(target);
	}
	rekey_idmap_free(&by_id);
	return ret;
}

int rekey_walk(int root_fd, const char *cipherdir, enum kmsfs_cipher cipher,
	       const struct rekey_state *state, struct rekey_tree *tree)
{
	struct dir_stack stack = { 0 };
	struct rekey_idmap inodes = { 0 };
	char *root = strdup("");
	int ret;

	ret = root ? push_dir(&stack, root) : -ENOMEM;
	if (ret != 0)
		free(root);
	while (ret == 0 && stack.count) {
		char *path = stack.paths[--stack.count];

		ret = list_dir(root_fd, path, &stack, tree, &inodes, cipher);
		if (ret != 0)
			cli_error("rekey: %s/%s: cannot list: %s", cipherdir, path, strerror(-ret));
		free(path);
	}
	while (stack.count)
		free(stack.paths[--stack.count]);
	free(stack.paths);
	rekey_idmap_free(&inodes);
	if (ret == 0 && state && state->reencrypt && state->origin.count)
		ret = find_split_links(root_fd, state, tree);
	if (ret == -ENOMEM)
		cli_error("rekey: %s: out of memory", cipherdir);
	return ret != 0;
}

void rekey_tree_restore_dir_times(const struct rekey_tree *tree, int root_fd)
{
	for (size_t i = 0; i < tree->dir_count; i++) {
		const struct rekey_dir *d = &tree->dirs[i];
		const char *path = d->path[0] ? d->path : ".";
		struct stat sb;

		if (fstatat(root_fd, path, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    (sb.st_mtim.tv_sec != d->times[1].tv_sec ||
		     sb.st_mtim.tv_nsec != d->times[1].tv_nsec))
			utimensat(root_fd, path, d->times, AT_SYMLINK_NOFOLLOW);
	}
}

void rekey_tree_free(struct rekey_tree *tree)
{
	for (size_t i = 0; i < tree->count; i++) {
		free(tree->files[i].path);
		for (size_t j = 0; j < tree->files[i].link_count; j++)
			free(tree->files[i].links[j]);
		free(tree->files[i].links);
	}
	free(tree->files);
	for (size_t i = 0; i < tree->dir_count; i++)
		free(tree->dirs[i].path);
	free(tree->dirs);
	memset(tree, 0, sizeof(*tree));
}
