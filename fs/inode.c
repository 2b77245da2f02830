/*
 * inode.c - the kernel's view of the tree: FUSE node ids <-> backing files.
 *
 * One kfs_inode per backing inode (st_dev, st_ino), so every hard link of
 * a file is one kernel inode with one page cache. An inode remembers the
 * names it is known by (parent + name, one per hard link the kernel has
 * looked up); a backing path is rebuilt from them for each operation. No
 * file descriptor is held per inode, so a tree of millions of files does
 * not run into the descriptor limit. Renames and unlinks update the names;
 * an inode with no name left that is still open is reached through one of
 * its open handles.
 *
 * Lifetimes: the kernel's lookup count (nlookup) plus one reference per
 * name of a child that lives in this directory. The root is never freed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "fs_internal.h"

#define INODE_BUCKETS 16384

struct kfs_link {
	struct kfs_inode *parent;
	char *name;
	struct kfs_link *next;
};

static struct kfs_inode *buckets[INODE_BUCKETS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kfs_inode root_inode = { .nlookup = 1 };

static unsigned bucket_of(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev;

	return (unsigned)(h >> 32) % INODE_BUCKETS;
}

void kfs_inode_root_init(dev_t dev, ino_t ino)
{
	root_inode.dev = dev;
	root_inode.ino = ino;
	root_inode.type = S_IFDIR;
}

struct kfs_inode *kfs_inode_of(fuse_ino_t id)
{
	return id == FUSE_ROOT_ID ? &root_inode : (struct kfs_inode *)(uintptr_t)id;
}

fuse_ino_t kfs_inode_id(const struct kfs_inode *in)
{
	return in == &root_inode ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)in;
}

int kfs_inode_is_root(const struct kfs_inode *in)
{
	return in == &root_inode;
}

static void unhash(struct kfs_inode *in)
{
	struct kfs_inode **link = &buckets[bucket_of(in->dev, in->ino)];

	if (!in->hashed)
		return;
	for (; *link; link = &(*link)->next) {
		if (*link == in) {
			*link = in->next;
			break;
		}
	}
	in->hashed = 0;
}

static void release_locked(struct kfs_inode *in);

static void link_free_locked(struct kfs_link *l)
{
	struct kfs_inode *parent = l->parent;

	free(l->name);
	free(l);
	parent->refs--;
	release_locked(parent);
}

/* Free in if nobody needs it; its names drop their parents in turn. */
static void release_locked(struct kfs_inode *in)
{
	if (in == &root_inode || in->nlookup > 0 || in->refs > 0)
		return;
	unhash(in);
	while (in->links) {
		struct kfs_link *l = in->links;

		in->links = l->next;
		link_free_locked(l);
	}
	free(in);
}

static struct kfs_link **find_link(struct kfs_inode *in, const struct kfs_inode *parent,
				   const char *name)
{
	struct kfs_link **l;

	for (l = &in->links; *l; l = &(*l)->next)
		if ((*l)->parent == parent && !strcmp((*l)->name, name))
			return l;
	return NULL;
}

/* Make parent/name this inode's first (preferred) name. */
static void add_link_locked(struct kfs_inode *in, struct kfs_inode *parent, const char *name)
{
	struct kfs_link **found = find_link(in, parent, name), *l;

	if (found) {
		l = *found;
		*found = l->next;
	} else {
		l = calloc(1, sizeof(*l));
		if (!l || !(l->name = strdup(name))) {
			free(l);
			return;      /* the other names still lead here */
		}
		l->parent = parent;
		parent->refs++;
	}
	l->next = in->links;
	in->links = l;
}

static void remove_link_locked(struct kfs_inode *in, const struct kfs_inode *parent,
			       const char *name)
{
	struct kfs_link **found = find_link(in, parent, name), *l;

	if (!found)
		return;
	l = *found;
	*found = l->next;
	link_free_locked(l);
}

static struct kfs_inode *lookup_locked(dev_t dev, ino_t ino)
{
	struct kfs_inode *in;

	for (in = buckets[bucket_of(dev, ino)]; in; in = in->next)
		if (in->dev == dev && in->ino == ino)
			return in;
	return NULL;
}

/*
 * The inode for a backing file just found as parent/name: existing (a hard
 * link, or looked up before) or new. Takes one lookup reference.
 */
struct kfs_inode *kfs_inode_found(struct kfs_inode *parent, const char *name,
				  const struct stat *st)
{
	struct kfs_inode *in;

	pthread_mutex_lock(&table_lock);
	in = lookup_locked(st->st_dev, st->st_ino);
	if (in && in->type != (st->st_mode & S_IFMT)) {
		unhash(in);  /* the inode number was reused for another kind of file */
		in = NULL;
	}
	if (!in) {
		unsigned b = bucket_of(st->st_dev, st->st_ino);

		in = calloc(1, sizeof(*in));
		if (!in)
			goto out;
		in->dev = st->st_dev;
		in->ino = st->st_ino;
		in->type = st->st_mode & S_IFMT;
		in->next = buckets[b];
		in->hashed = 1;
		buckets[b] = in;
	}
	in->nlookup++;
	add_link_locked(in, parent, name);
out:
	pthread_mutex_unlock(&table_lock);
	return in;
}

void kfs_inode_forget(struct kfs_inode *in, uint64_t count)
{
	if (in == &root_inode)
		return;
	pthread_mutex_lock(&table_lock);
	in->nlookup = count > in->nlookup ? 0 : in->nlookup - count;
	release_locked(in);
	pthread_mutex_unlock(&table_lock);
}

void kfs_inode_unlinked(struct kfs_inode *parent, const char *name, const struct stat *st)
{
	struct kfs_inode *in;

	pthread_mutex_lock(&table_lock);
	in = lookup_locked(st->st_dev, st->st_ino);
	if (in)
		remove_link_locked(in, parent, name);
	pthread_mutex_unlock(&table_lock);
}

void kfs_inode_renamed(struct kfs_inode *from_parent, const char *from_name,
		       const struct stat *from_st, struct kfs_inode *to_parent,
		       const char *to_name, const struct stat *to_st, int exchanged)
{
	struct kfs_inode *moved, *other = NULL;

	pthread_mutex_lock(&table_lock);
	moved = lookup_locked(from_st->st_dev, from_st->st_ino);
	if (to_st)
		other = lookup_locked(to_st->st_dev, to_st->st_ino);
	if (other && other != moved) {
		remove_link_locked(other, to_parent, to_name);
		if (exchanged)
			add_link_locked(other, from_parent, from_name);
	}
	if (moved) {
		add_link_locked(moved, to_parent, to_name);
		remove_link_locked(moved, from_parent, from_name);
	}
	pthread_mutex_unlock(&table_lock);
}

/* Length of the path "a/b/c" (0 for the root), or -ENOENT if a name is missing. */
static ssize_t path_len_locked(const struct kfs_inode *in)
{
	size_t len = 0;

	while (in != &root_inode) {
		if (!in->links)
			return -ENOENT;
		len += strlen(in->links->name) + (len ? 1 : 0);
		in = in->links->parent;
	}
	return (ssize_t)len;
}

/* Write the path into buf (exactly len bytes + NUL), filling from the end. */
static void path_fill_locked(const struct kfs_inode *in, char *buf, size_t len)
{
	size_t pos = len;

	buf[len] = '\0';
	while (in != &root_inode) {
		const struct kfs_link *l = in->links;
		size_t n = strlen(l->name);

		if (pos < len)
			buf[--pos] = '/';
		pos -= n;
		memcpy(buf + pos, l->name, n);
		in = l->parent;
	}
}

/* Heap copy of in's path plus room for "/" extra; "." for the root. */
static int path_alloc(const struct kfs_inode *in, const char *extra, char **out)
{
	size_t extra_len = extra ? strlen(extra) + 1 : 0;
	ssize_t len;
	char *buf;

	pthread_mutex_lock(&table_lock);
	len = path_len_locked(in);
	if (len < 0) {
		pthread_mutex_unlock(&table_lock);
		return (int)len;
	}
	buf = malloc((size_t)len + extra_len + 2);
	if (!buf) {
		pthread_mutex_unlock(&table_lock);
		return -ENOMEM;
	}
	path_fill_locked(in, buf, (size_t)len);
	pthread_mutex_unlock(&table_lock);
	if (extra) {
		if (len)
			buf[len++] = '/';
		strcpy(buf + len, extra);
	} else if (len == 0) {
		strcpy(buf, ".");
	}
	*out = buf;
	return 0;
}

/*
 * Paths longer than PATH_MAX are legal below a mount point; the kernel
 * only refuses them in one system call. Walk down with openat() until
 * the rest fits.
 */
static int loc_shorten(struct kfs_loc *loc)
{
	const char *rest = loc->path;

	while (strlen(rest) >= PATH_MAX - 1) {
		const char *cut = rest + PATH_MAX - 2;
		char *prefix;
		int fd;

		while (cut > rest && *cut != '/')
			cut--;
		if (cut == rest)
			return -ENAMETOOLONG;     /* a single name longer than PATH_MAX */
		prefix = strndup(rest, (size_t)(cut - rest));
		if (!prefix)
			return -ENOMEM;
		fd = openat(loc->dirfd, prefix, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		free(prefix);
		if (fd < 0)
			return -errno;
		if (loc->dirfd != kfs->root_fd)
			close(loc->dirfd);
		loc->dirfd = fd;
		rest = cut + 1;
	}
	loc->rel = rest;
	return 0;
}

static int loc_make(const struct kfs_inode *in, const char *name, struct kfs_loc *loc)
{
	int ret;

	loc->dirfd = kfs->root_fd;
	loc->path = NULL;
	loc->rel = NULL;
	ret = path_alloc(in, name, &loc->path);
	if (ret == 0)
		ret = loc_shorten(loc);
	if (ret < 0)
		kfs_loc_done(loc);
	return ret;
}

int kfs_loc_inode(const struct kfs_inode *in, struct kfs_loc *loc)
{
	return loc_make(in, NULL, loc);
}

int kfs_loc_child(const struct kfs_inode *parent, const char *name, struct kfs_loc *loc)
{
	loc->dirfd = -1;
	loc->path = NULL;
	if (strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	return loc_make(parent, name, loc);
}

void kfs_loc_done(struct kfs_loc *loc)
{
	if (loc->dirfd >= 0 && loc->dirfd != kfs->root_fd)
		close(loc->dirfd);
	loc->dirfd = -1;
	free(loc->path);
	loc->path = NULL;
}

/* Open handles of an inode, to reach it once it has no name. */
void kfs_inode_add_file(struct kfs_inode *in, struct kfs_file *f)
{
	pthread_mutex_lock(&table_lock);
	f->inode = in;
	f->next_open = in->open_files;
	in->open_files = f;
	pthread_mutex_unlock(&table_lock);
}

void kfs_inode_remove_file(struct kfs_inode *in, struct kfs_file *f)
{
	pthread_mutex_lock(&table_lock);
	for (struct kfs_file **l = &in->open_files; *l; l = &(*l)->next_open) {
		if (*l == f) {
			*l = f->next_open;
			break;
		}
	}
	pthread_mutex_unlock(&table_lock);
}

/* A dup of some open handle's backing fd (caller closes it), or -1. */
int kfs_inode_dup_open_fd(struct kfs_inode *in)
{
	int fd = -1;

	pthread_mutex_lock(&table_lock);
	if (in->open_files)
		fd = fcntl(in->open_files->fd, F_DUPFD_CLOEXEC, 0);
	pthread_mutex_unlock(&table_lock);
	return fd;
}

/*
 * At unmount: the kernel has forgotten everything, free what is left -
 * including handles still open when the daemon was told to stop (SIGTERM
 * with a file open: FUSE sends no release for them).
 */
void kfs_inode_table_destroy(void)
{
	struct kfs_file *orphans = NULL;

	pthread_mutex_lock(&table_lock);
	for (unsigned b = 0; b < INODE_BUCKETS; b++) {
		for (struct kfs_inode *in = buckets[b]; in; in = in->next) {
			in->nlookup = 0;
			in->refs = 0;
		}
	}
	for (unsigned b = 0; b < INODE_BUCKETS; b++) {
		while (buckets[b]) {
			struct kfs_inode *in = buckets[b];

			buckets[b] = in->next;
			in->hashed = 0;
			while (in->open_files) {
				struct kfs_file *f = in->open_files;

				in->open_files = f->next_open;
				f->next_open = orphans;
				orphans = f;
			}
			while (in->links) {
				struct kfs_link *l = in->links;

				in->links = l->next;
				free(l->name);
				free(l);
			}
			free(in);
		}
	}
	pthread_mutex_unlock(&table_lock);
	while (orphans) {
		struct kfs_file *f = orphans;

		orphans = f->next_open;
		kfs_file_detach(f);
	}
}
