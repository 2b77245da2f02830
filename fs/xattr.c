/*
 * xattr.c - user extended attributes, passed through to the backing file.
 *
 * Names under user.kmsfs. are kmsfs's own (the wrapped data key lives in
 * user.kmsfs.dek): they are left out of listings, read as absent, and
 * setting or removing them is refused. The xattr calls have no *at form,
 * so the backing file is named through /proc/self/fd/<dirfd>/<path>.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "fs_internal.h"

static int is_kmsfs_xattr(const char *name)
{
	return strncmp(name, KMSFS_XATTR_PREFIX, strlen(KMSFS_XATTR_PREFIX)) == 0;
}

/*
 * /proc/self/fd/<dirfd>/<rel>. For a path longer than PATH_MAX the
 * directory stays open in *loc until the caller is done with out.
 */
static int proc_path(fuse_ino_t ino, struct kfs_loc *loc, char *out, size_t len)
{
	int n, ret = kfs_loc_inode(kfs_inode_of(ino), loc);

	if (ret < 0)
		return ret;
	n = snprintf(out, len, "/proc/self/fd/%d/%s", loc->dirfd, loc->rel);
	if (n < 0 || (size_t)n >= len) {
		kfs_loc_done(loc);
		return -ENAMETOOLONG;
	}
	return 0;
}

void kfs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		     size_t size, int flags)
{
	char p[PATH_MAX + 32];
	struct kfs_loc loc = { .dirfd = -1 };
	int ret;

	kfs_begin(req);
	ret = is_kmsfs_xattr(name) ? -EPERM : proc_path(ino, &loc, p, sizeof(p));
	if (ret == 0 && lsetxattr(p, name, value, size, flags) < 0)
		ret = -errno;
	kfs_loc_done(&loc);
	fuse_reply_err(req, -ret);
}

void kfs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char p[PATH_MAX + 32];
	struct kfs_loc loc = { .dirfd = -1 };
	char *value = NULL;
	ssize_t len = 0;
	int ret;

	kfs_begin(req);
	ret = is_kmsfs_xattr(name) ? -ENODATA : proc_path(ino, &loc, p, sizeof(p));
	if (ret == 0 && size && !(value = malloc(size)))
		ret = -ENOMEM;
	if (ret == 0 && (len = lgetxattr(p, name, value, size)) < 0)
		ret = -errno;
	kfs_loc_done(&loc);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)len);
	else
		fuse_reply_buf(req, value, (size_t)len);
	free(value);
}

/* The backing list minus kmsfs's own names, packed in place. */
static ssize_t filtered_list(const char *p, char **out)
{
	ssize_t len = llistxattr(p, NULL, 0), kept = 0;
	char *all;

	*out = NULL;
	if (len <= 0)
		return len < 0 ? -errno : 0;
	all = malloc((size_t)len);
	if (!all)
		return -ENOMEM;
	len = llistxattr(p, all, (size_t)len);
	if (len < 0) {
		free(all);
		return errno == ERANGE ? -EAGAIN : -errno;   /* grew meanwhile */
	}
	for (char *name = all; name < all + len; name += strlen(name) + 1) {
		size_t n = strlen(name) + 1;

		if (!is_kmsfs_xattr(name)) {
			memmove(all + kept, name, n);
			kept += (ssize_t)n;
		}
	}
	*out = all;
	return kept;
}

void kfs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char p[PATH_MAX + 32];
	struct kfs_loc loc = { .dirfd = -1 };
	char *list = NULL;
	ssize_t len;
	int ret;

	kfs_begin(req);
	ret = proc_path(ino, &loc, p, sizeof(p));
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	len = filtered_list(p, &list);
	kfs_loc_done(&loc);
	if (len < 0)
		fuse_reply_err(req, (int)-len);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)len);
	else if ((size_t)len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, list, (size_t)len);
	free(list);
}

void kfs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	char p[PATH_MAX + 32];
	struct kfs_loc loc = { .dirfd = -1 };
	int ret;

	kfs_begin(req);
	ret = is_kmsfs_xattr(name) ? -EPERM : proc_path(ino, &loc, p, sizeof(p));
	if (ret == 0 && lremovexattr(p, name) < 0)
		ret = -errno;
	kfs_loc_done(&loc);
	fuse_reply_err(req, -ret);
}
