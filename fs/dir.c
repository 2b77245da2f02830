/*
 * dir.c - directory listing: opendir, readdir, readdirplus.
 *
 * readdirplus answers each entry with its attributes (plaintext sizes) and
 * a lookup reference, so `ls -l` needs no further round trips. kmsfs.conf
 * is left out of the volume root.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_internal.h"

struct kfs_dir {
	DIR *dp;
	struct dirent *entry;        /* read but not yet handed out */
	off_t offset;
	struct kfs_inode *inode;
};

static struct kfs_dir *dir_of(const struct fuse_file_info *fi)
{
	return (struct kfs_dir *)(uintptr_t)fi->fh;
}

void kfs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kfs_inode *in = kfs_inode_of(ino);
	struct kfs_loc loc;
	struct kfs_dir *d;
	int fd, ret;

	kfs_begin(req);
	ret = kfs_loc_inode(in, &loc);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	d = calloc(1, sizeof(*d));
	fd = d ? openat(loc.dirfd, loc.rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (fd < 0 && d)
		ret = -errno;
	kfs_loc_done(&loc);
	if (ret < 0)
		errno = -ret;
	if (fd < 0 || !(d->dp = fdopendir(fd))) {
		int err = d ? errno : ENOMEM;

		if (fd >= 0)
			close(fd);
		free(d);
		fuse_reply_err(req, err);
		return;
	}
	d->inode = in;
	fi->fh = (uintptr_t)d;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) != 0) {
		closedir(d->dp);
		free(d);
	}
}

static int is_dot(const char *name)
{
	return !strcmp(name, ".") || !strcmp(name, "..");
}

/* Add one entry to buf; 0 when it does not fit (and nothing was taken). */
static size_t add_entry(fuse_req_t req, struct kfs_dir *d, char *buf, size_t room,
			const struct dirent *de, off_t next, int plus)
{
	struct fuse_entry_param e;
	size_t used;

	memset(&e, 0, sizeof(e));
	e.attr.st_ino = de->d_ino;
	e.attr.st_mode = (mode_t)de->d_type << 12;
	if (!plus)
		return fuse_add_direntry(req, buf, room, de->d_name, &e.attr, next);
	if (!is_dot(de->d_name) && kfs_lookup_entry(d->inode, de->d_name, &e) < 0) {
		memset(&e, 0, sizeof(e));    /* vanished meanwhile: list it without attributes */
		e.attr.st_ino = de->d_ino;
		e.attr.st_mode = (mode_t)de->d_type << 12;
	}
	used = fuse_add_direntry_plus(req, buf, room, de->d_name, &e, next);
	if (used > room && e.ino)
		kfs_inode_forget(kfs_inode_of(e.ino), 1);  /* not sent: give the reference back */
	return used;
}

static void list(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		 struct fuse_file_info *fi, int plus)
{
	struct kfs_dir *d = dir_of(fi);
	char *buf = calloc(1, size);
	size_t filled = 0;

	kfs_begin(req);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (off != d->offset) {
		seekdir(d->dp, off);
		d->entry = NULL;
		d->offset = off;
	}
	for (;;) {
		size_t used;
		off_t next;

		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry)
				break;
		}
		next = telldir(d->dp);
		if (!(kfs_inode_is_root(d->inode) && !strcmp(d->entry->d_name, KMSFS_CONF_NAME))) {
			used = add_entry(req, d, buf + filled, size - filled, d->entry, next, plus);
			if (used > size - filled)
				break;
			filled += used;
		}
		d->entry = NULL;
		d->offset = next;
	}
	fuse_reply_buf(req, buf, filled);
	free(buf);
}

void kfs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	list(req, ino, size, off, fi, 0);
}

void kfs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	list(req, ino, size, off, fi, 1);
}

void kfs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kfs_dir *d = dir_of(fi);

	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

void kfs_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int fd = dirfd(dir_of(fi)->dp);

	fuse_reply_err(req, (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0);
}
