/*
 * attr.c - attributes: getattr/setattr, statfs, access.
 *
 * Sizes are the one attribute kmsfs translates: the backing size maps to
 * the plaintext size without decrypting anything (crypto.h), and a size
 * change is a truncate through io.c. Everything else passes through.
 * An inode with no name left (unlinked while open) is reached through one
 * of its open handles.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs_internal.h"

/* An fd for an inode that has no path any more, or -ENOENT. */
static int orphan_fd(struct kfs_inode *in)
{
	int fd = kfs_inode_dup_open_fd(in);

	return fd < 0 ? -ENOENT : fd;
}

static int stat_inode(struct kfs_inode *in, struct fuse_file_info *fi, struct stat *st)
{
	struct kfs_loc loc;
	int ret, fd;

	if (fi && fi->fh)
		return fstat(kfs_file_of(fi)->fd, st) < 0 ? -errno : 0;
	ret = kfs_loc_inode(in, &loc);
	if (ret == 0) {
		ret = fstatat(loc.dirfd, loc.rel, st, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) < 0 ?
		      -errno : 0;
		kfs_loc_done(&loc);
		return ret;
	}
	if (ret != -ENOENT)
		return ret;
	fd = orphan_fd(in);
	if (fd < 0)
		return fd;
	ret = fstat(fd, st) < 0 ? -errno : 0;
	close(fd);
	return ret;
}

void kfs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	int ret;

	kfs_begin(req);
	ret = stat_inode(kfs_inode_of(ino), fi, &st);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	kfs_fix_stat(&st);
	fuse_reply_attr(req, &st, KFS_TIMEOUT);
}

/* Truncate through a temporary handle (the caller's key rights apply). */
static int truncate_fd(int fd, const char *path, off_t size)
{
	struct kfs_file *f;
	int ret = kfs_file_attach(fd, path, 1, &f);

	if (ret < 0) {
		close(fd);
		return ret;
	}
	ret = kfs_io_truncate(f, size);
	kfs_file_detach(f);
	return ret;
}

static void times_from(const struct stat *attr, int to_set, struct timespec tv[2])
{
	tv[0].tv_nsec = tv[1].tv_nsec = UTIME_OMIT;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		tv[0].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		tv[0] = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		tv[1].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		tv[1] = attr->st_mtim;
}

/* Apply the changes through an fd (open handle, or orphan). */
static int setattr_fd(int fd, struct kfs_file *f, const struct stat *attr, int to_set,
		      const char *path)
{
	uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
	gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
	struct timespec tv[2];

	if ((to_set & FUSE_SET_ATTR_MODE) && fchmod(fd, attr->st_mode & 07777) < 0)
		return -errno;
	if ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) && fchown(fd, uid, gid) < 0)
		return -errno;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		int ret = f ? kfs_io_truncate(f, attr->st_size) :
			      truncate_fd(fcntl(fd, F_DUPFD_CLOEXEC, 0), path, attr->st_size);

		if (ret < 0)
			return ret;
	}
	times_from(attr, to_set, tv);
	if ((to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) && futimens(fd, tv) < 0)
		return -errno;
	return 0;
}

static int setattr_loc(const struct kfs_loc *loc, const struct stat *attr, int to_set)
{
	uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
	gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
	struct timespec tv[2];

	if ((to_set & FUSE_SET_ATTR_MODE) &&
	    fchmodat(loc->dirfd, loc->rel, attr->st_mode & 07777, 0) < 0)
		return -errno;
	if ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) &&
	    fchownat(loc->dirfd, loc->rel, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		int fd = kfs_open_backing(loc, O_RDWR, 0, 0);
		int ret = fd < 0 ? -errno : truncate_fd(fd, loc->path, attr->st_size);

		if (ret < 0)
			return ret;
	}
	times_from(attr, to_set, tv);
	if ((to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) &&
	    utimensat(loc->dirfd, loc->rel, tv, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

void kfs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		    struct fuse_file_info *fi)
{
	struct kfs_inode *in = kfs_inode_of(ino);
	struct kfs_loc loc;
	int ret, fd;

	kfs_begin(req);
	if (fi && fi->fh) {
		struct kfs_file *f = kfs_file_of(fi);

		ret = setattr_fd(f->fd, f, attr, to_set, f->path);
	} else {
		ret = kfs_loc_inode(in, &loc);
		if (ret == 0) {
			ret = setattr_loc(&loc, attr, to_set);
			kfs_loc_done(&loc);
		} else if (ret == -ENOENT && (fd = orphan_fd(in)) >= 0) {
			ret = setattr_fd(fd, NULL, attr, to_set, "(unlinked)");
			close(fd);
		}
	}
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	kfs_op_getattr(req, ino, fi);
}

void kfs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	kfs_begin(req);
	if (fstatvfs(kfs->root_fd, &sv) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

void kfs_op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct kfs_loc loc;
	int ret;

	kfs_begin(req);
	ret = kfs_loc_inode(kfs_inode_of(ino), &loc);
	if (ret == 0) {
		if (faccessat(loc.dirfd, loc.rel, mask, AT_SYMLINK_NOFOLLOW) < 0)
			ret = -errno;
		kfs_loc_done(&loc);
	}
	fuse_reply_err(req, -ret);
}
