/*
 * file.c - open files: open/create, read/write, release, fsync,
 * fallocate and lseek. Contents go through io.c; the data key is set up
 * (fresh on create, unwrapped as the caller on open) before the handle is
 * returned, so a refused key is an error from open(2), never from read(2).
 *
 * The page cache is kept across opens when the backing file has not
 * changed since kmsfs last saw it (DESIGN section 8); a backing file
 * edited behind kmsfs's back is read afresh, and fails authentication if
 * it was tampered with.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_internal.h"

static void remember_cache_state(struct kfs_file *f)
{
	struct stat st;

	if (fstat(f->fd, &st) < 0)
		return;
	pthread_mutex_lock(&f->node->key_lock);
	f->node->cache_known = 1;
	f->node->cache_mtime = st.st_mtim;
	f->node->cache_size = st.st_size;
	pthread_mutex_unlock(&f->node->key_lock);
}

static int cache_still_valid(struct kfs_file *f)
{
	struct stat st;
	int valid;

	if (fstat(f->fd, &st) < 0)
		return 0;
	pthread_mutex_lock(&f->node->key_lock);
	valid = f->node->cache_known && f->node->cache_size == st.st_size &&
		f->node->cache_mtime.tv_sec == st.st_mtim.tv_sec &&
		f->node->cache_mtime.tv_nsec == st.st_mtim.tv_nsec;
	pthread_mutex_unlock(&f->node->key_lock);
	return valid;
}

static void hand_out(struct kfs_inode *in, struct kfs_file *f, struct fuse_file_info *fi)
{
	kfs_inode_add_file(in, f);
	fi->fh = (uintptr_t)f;
	fi->keep_cache = cache_still_valid(f);
	if (fi->flags & O_DIRECT)
		fi->direct_io = 1;
}

void kfs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kfs_inode *in = kfs_inode_of(ino);
	int writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	struct kfs_loc loc = { .dirfd = -1 };
	struct kfs_file *f;
	int fd = -1, ret;

	kfs_begin(req);
	ret = kfs_loc_inode(in, &loc);
	if (ret == 0) {
		fd = kfs_open_backing(&loc, fi->flags, 0, 0);
		ret = fd < 0 ? -errno : 0;
	} else if (ret == -ENOENT) {  /* reopened through /proc/PID/fd after unlink */
		fd = kfs_inode_dup_open_fd(in);
		ret = fd < 0 ? -ENOENT : 0;
	}
	if (ret == 0)
		ret = kfs_file_attach(fd, loc.path ? loc.path : "(unlinked)", writable, &f);
	kfs_loc_done(&loc);
	if (ret < 0 && fd >= 0)
		close(fd);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	if (writable && (fi->flags & O_TRUNC)) {
		ret = kfs_io_truncate(f, 0);
		if (ret < 0)
			kfs_file_detach(f);
	}
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	hand_out(in, f, fi);
	if (fuse_reply_open(req, fi) != 0) {
		kfs_inode_remove_file(in, f);
		kfs_file_detach(f);
	}
}

void kfs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		   struct fuse_file_info *fi)
{
	struct kfs_inode *dir = kfs_inode_of(parent);
	struct fuse_entry_param e;
	struct kfs_loc loc;
	struct kfs_file *f;
	int fd, ret;

	kfs_begin(req);
	ret = kfs_is_reserved(dir, name) ? -EPERM : kfs_loc_child(dir, name, &loc);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	fd = kfs_open_backing(&loc, fi->flags, 1, mode);
	if (fd < 0) {
		ret = -errno;
		kfs_loc_done(&loc);
		fuse_reply_err(req, -ret);
		return;
	}
	kfs_own_by_caller(&loc);
	ret = kfs_file_attach(fd, loc.path, 1, &f);
	if (ret < 0) {
		/* The key service said no: the file must not appear at all. */
		close(fd);
		unlinkat(loc.dirfd, loc.rel, 0);
	}
	kfs_loc_done(&loc);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	ret = kfs_lookup_entry(dir, name, &e);
	if (ret < 0) {
		kfs_file_detach(f);
		fuse_reply_err(req, -ret);
		return;
	}
	hand_out(kfs_inode_of(e.ino), f, fi);
	if (fuse_reply_create(req, &e, fi) != 0) {
		kfs_inode_remove_file(f->inode, f);
		kfs_file_detach(f);
	}
}

void kfs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		 struct fuse_file_info *fi)
{
	char *buf = kfs_read_buffer(size);   /* per thread, reused: up to 1 MiB */
	ssize_t got;

	kfs_begin(req);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	got = kfs_io_read(kfs_file_of(fi), buf, size, off);
	if (got < 0)
		fuse_reply_err(req, (int)-got);
	else
		fuse_reply_buf(req, buf, (size_t)got);
}

void kfs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		  struct fuse_file_info *fi)
{
	ssize_t put;

	kfs_begin(req);
	put = kfs_io_write(kfs_file_of(fi), buf, size, off);
	if (put < 0)
		fuse_reply_err(req, (int)-put);
	else
		fuse_reply_write(req, (size_t)put);
}

void kfs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);   /* nothing is buffered in the daemon */
}

void kfs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kfs_file *f = kfs_file_of(fi);

	kfs_begin(req);
	remember_cache_state(f);
	kfs_inode_remove_file(f->inode, f);
	kfs_file_detach(f);
	fuse_reply_err(req, 0);
}

void kfs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int fd = kfs_file_of(fi)->fd;

	kfs_begin(req);
	fuse_reply_err(req, (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0);
}

void kfs_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
		      struct fuse_file_info *fi)
{
	kfs_begin(req);
	fuse_reply_err(req, -kfs_io_fallocate(kfs_file_of(fi), mode, off, len));
}

void kfs_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		  struct fuse_file_info *fi)
{
	off_t pos;

	kfs_begin(req);
	pos = kfs_io_lseek(kfs_file_of(fi), off, whence);
	if (pos < 0)
		fuse_reply_err(req, (int)-pos);
	else
		fuse_reply_lseek(req, pos);
}
