/*
 * namei.c - operations on names: lookup and forget, creating and removing
 * directory entries, rename and link. Names are stored as they are
 * (format 1 does not encrypt them); what changes here is the inode table's
 * idea of which names lead to which inode.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_internal.h"

void kfs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int ret;

	kfs_begin(req);
	ret = kfs_lookup_entry(kfs_inode_of(parent), name, &e);
	if (ret == -ENOENT) {
		/* A negative entry with no timeout: the name may appear any time. */
		memset(&e, 0, sizeof(e));
		fuse_reply_entry(req, &e);
	} else if (ret < 0) {
		fuse_reply_err(req, -ret);
	} else {
		fuse_reply_entry(req, &e);
	}
}

void kfs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	kfs_inode_forget(kfs_inode_of(ino), nlookup);
	fuse_reply_none(req);
}

void kfs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		kfs_inode_forget(kfs_inode_of(forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

void kfs_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char path[PATH_MAX], target[PATH_MAX];
	ssize_t len;
	int ret;

	kfs_begin(req);
	ret = kfs_inode_path(kfs_inode_of(ino), path, sizeof(path));
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	len = readlinkat(kfs->root_fd, path, target, sizeof(target) - 1);
	if (len < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	target[len] = '\0';
	fuse_reply_readlink(req, target);
}

/* Common tail of mknod/mkdir/symlink: the path is made; answer with its entry. */
static void made(fuse_req_t req, struct kfs_inode *parent, const char *name, const char *path)
{
	kfs_own_by_caller(path);
	kfs_reply_entry_or_err(req, parent, name);
}

/* A regular file gets its header and data key the moment it exists. */
static int make_regular(const char *path, mode_t mode)
{
	struct kfs_file *f;
	int fd = kfs_open_backing(path, O_WRONLY, 1, mode & 07777);
	int ret;

	if (fd < 0)
		return -errno;
	kfs_own_by_caller(path);
	ret = kfs_file_attach(fd, path, 1, &f);
	if (ret < 0) {
		close(fd);
		unlinkat(kfs->root_fd, path, 0);
		return ret;
	}
	kfs_file_detach(f);
	return 0;
}

void kfs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct kfs_inode *dir = kfs_inode_of(parent);
	char path[PATH_MAX];
	int ret;

	kfs_begin(req);
	ret = kfs_is_reserved(dir, name) ? -EPERM : kfs_child_path(dir, name, path, sizeof(path));
	if (ret == 0) {
		if (S_ISREG(mode))
			ret = make_regular(path, mode);
		else if (mknodat(kfs->root_fd, path, mode, rdev) < 0)
			ret = -errno;
	}
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		made(req, dir, name, path);
}

void kfs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct kfs_inode *dir = kfs_inode_of(parent);
	char path[PATH_MAX];
	int ret;

	kfs_begin(req);
	ret = kfs_is_reserved(dir, name) ? -EPERM : kfs_child_path(dir, name, path, sizeof(path));
	if (ret == 0 && mkdirat(kfs->root_fd, path, mode) < 0)
		ret = -errno;
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		made(req, dir, name, path);
}

void kfs_op_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	struct kfs_inode *dir = kfs_inode_of(parent);
	char path[PATH_MAX];
	int ret;

	kfs_begin(req);
	ret = kfs_is_reserved(dir, name) ? -EPERM : kfs_child_path(dir, name, path, sizeof(path));
	if (ret == 0 && symlinkat(target, kfs->root_fd, path) < 0)
		ret = -errno;
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		made(req, dir, name, path);
}

void kfs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct kfs_inode *dir = kfs_inode_of(newparent);
	char from[PATH_MAX], to[PATH_MAX];
	int ret;

	kfs_begin(req);
	ret = kfs_is_reserved(dir, newname) ? -EPERM :
	      kfs_inode_path(kfs_inode_of(ino), from, sizeof(from));
	if (ret == 0)
		ret = kfs_child_path(dir, newname, to, sizeof(to));
	if (ret == 0 && linkat(kfs->root_fd, from, kfs->root_fd, to, 0) < 0)
		ret = -errno;
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		kfs_reply_entry_or_err(req, dir, newname);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, int flags)
{
	struct kfs_inode *dir = kfs_inode_of(parent);
	char path[PATH_MAX];
	struct stat st;
	int ret;

	kfs_begin(req);
	ret = kfs_is_reserved(dir, name) ? -EPERM : kfs_child_path(dir, name, path, sizeof(path));
	if (ret == 0 && fstatat(kfs->root_fd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		ret = -errno;
	if (ret == 0 && unlinkat(kfs->root_fd, path, flags) < 0)
		ret = -errno;
	if (ret == 0)
		kfs_inode_unlinked(dir, name, &st);
	fuse_reply_err(req, -ret);
}

void kfs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, 0);
}

void kfs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, AT_REMOVEDIR);
}

void kfs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		   const char *newname, unsigned int flags)
{
	struct kfs_inode *from_dir = kfs_inode_of(parent), *to_dir = kfs_inode_of(newparent);
	char from[PATH_MAX], to[PATH_MAX];
	struct stat from_st, to_st;
	int ret, target_exists;

	kfs_begin(req);
	if (kfs_is_reserved(from_dir, name) || kfs_is_reserved(to_dir, newname)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	ret = kfs_child_path(from_dir, name, from, sizeof(from));
	if (ret == 0)
		ret = kfs_child_path(to_dir, newname, to, sizeof(to));
	if (ret == 0 && fstatat(kfs->root_fd, from, &from_st, AT_SYMLINK_NOFOLLOW) < 0)
		ret = -errno;
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	target_exists = fstatat(kfs->root_fd, to, &to_st, AT_SYMLINK_NOFOLLOW) == 0;
	if (renameat2(kfs->root_fd, from, kfs->root_fd, to, flags) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	/* Renaming one hard link onto another of the same file changes nothing. */
	if (!(target_exists && to_st.st_ino == from_st.st_ino && to_st.st_dev == from_st.st_dev))
		kfs_inode_renamed(from_dir, name, &from_st, to_dir, newname,
				  target_exists ? &to_st : NULL, (flags & RENAME_EXCHANGE) != 0);
	fuse_reply_err(req, 0);
}
