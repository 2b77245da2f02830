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
	char target[PATH_MAX];
	struct kfs_loc loc;
	ssize_t len;
	int ret;

	kfs_begin(req);
	ret = kfs_loc_inode(kfs_inode_of(ino), &loc);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	len = readlinkat(loc.dirfd, loc.rel, target, sizeof(target) - 1);
	ret = len < 0 ? -errno : 0;
	kfs_loc_done(&loc);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	target[len] = '\0';
	fuse_reply_readlink(req, target);
}

/* A regular file gets its header and data key the moment it exists. */
static int make_regular(const struct kfs_loc *loc, mode_t mode)
{
	struct kfs_file *f;
	int fd = kfs_open_backing(loc, O_WRONLY, 1, mode & 07777);
	int ret;

	if (fd < 0)
		return -errno;
	kfs_own_by_caller(loc);
	ret = kfs_file_attach(fd, loc->path, 1, &f);
	if (ret < 0) {
		close(fd);
		unlinkat(loc->dirfd, loc->rel, 0);
		return ret;
	}
	kfs_file_detach(f);
	return 0;
}

enum make_kind { MAKE_NODE, MAKE_DIR, MAKE_SYMLINK };

/* mknod/mkdir/symlink: make the name, give it to the caller, answer with its entry. */
static void make_entry(fuse_req_t req, fuse_ino_t parent, const char *name, enum make_kind kind,
		       mode_t mode, dev_t rdev, const char *target)
{
	struct kfs_inode *dir = kfs_inode_of(parent);
	struct kfs_loc loc;
	int ret;

	kfs_begin(req);
	ret = kfs_is_reserved(dir, name) ? -EPERM : kfs_loc_child(dir, name, &loc);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	if (kind == MAKE_NODE && S_ISREG(mode))
		ret = make_regular(&loc, mode);
	else if (kind == MAKE_NODE)
		ret = mknodat(loc.dirfd, loc.rel, mode, rdev) < 0 ? -errno : 0;
	else if (kind == MAKE_DIR)
		ret = mkdirat(loc.dirfd, loc.rel, mode) < 0 ? -errno : 0;
	else
		ret = symlinkat(target, loc.dirfd, loc.rel) < 0 ? -errno : 0;
	if (ret == 0)
		kfs_own_by_caller(&loc);
	kfs_loc_done(&loc);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		kfs_reply_entry_or_err(req, dir, name);
}

void kfs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	make_entry(req, parent, name, MAKE_NODE, mode, rdev, NULL);
}

void kfs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_entry(req, parent, name, MAKE_DIR, mode, 0, NULL);
}

void kfs_op_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	make_entry(req, parent, name, MAKE_SYMLINK, 0, 0, target);
}

void kfs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct kfs_inode *dir = kfs_inode_of(newparent);
	struct kfs_loc from, to;
	int ret;

	kfs_begin(req);
	ret = kfs_is_reserved(dir, newname) ? -EPERM : kfs_loc_inode(kfs_inode_of(ino), &from);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	ret = kfs_loc_child(dir, newname, &to);
	if (ret == 0) {
		if (linkat(from.dirfd, from.rel, to.dirfd, to.rel, 0) < 0)
			ret = -errno;
		kfs_loc_done(&to);
	}
	kfs_loc_done(&from);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		kfs_reply_entry_or_err(req, dir, newname);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, int flags)
{
	struct kfs_inode *dir = kfs_inode_of(parent);
	struct kfs_loc loc;
	struct stat st;
	int ret;

	kfs_begin(req);
	ret = kfs_is_reserved(dir, name) ? -EPERM : kfs_loc_child(dir, name, &loc);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	if (fstatat(loc.dirfd, loc.rel, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    unlinkat(loc.dirfd, loc.rel, flags) < 0)
		ret = -errno;
	kfs_loc_done(&loc);
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

static int rename_at(const struct kfs_loc *from, const struct kfs_loc *to, unsigned int flags,
		     struct stat *from_st, struct stat *to_st, int *target_exists)
{
	if (fstatat(from->dirfd, from->rel, from_st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	*target_exists = fstatat(to->dirfd, to->rel, to_st, AT_SYMLINK_NOFOLLOW) == 0;
	if (renameat2(from->dirfd, from->rel, to->dirfd, to->rel, flags) < 0)
		return -errno;
	return 0;
}

void kfs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		   const char *newname, unsigned int flags)
{
	struct kfs_inode *from_dir = kfs_inode_of(parent), *to_dir = kfs_inode_of(newparent);
	struct kfs_loc from, to;
	struct stat from_st, to_st;
	int ret, target_exists = 0;

	kfs_begin(req);
	if (kfs_is_reserved(from_dir, name) || kfs_is_reserved(to_dir, newname)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	ret = kfs_loc_child(from_dir, name, &from);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	ret = kfs_loc_child(to_dir, newname, &to);
	if (ret == 0) {
		ret = rename_at(&from, &to, flags, &from_st, &to_st, &target_exists);
		kfs_loc_done(&to);
	}
	kfs_loc_done(&from);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	/* Renaming one hard link onto another of the same file changes nothing. */
	if (!(target_exists && to_st.st_ino == from_st.st_ino && to_st.st_dev == from_st.st_dev))
		kfs_inode_renamed(from_dir, name, &from_st, to_dir, newname,
				  target_exists ? &to_st : NULL, (flags & RENAME_EXCHANGE) != 0);
	fuse_reply_err(req, 0);
}
