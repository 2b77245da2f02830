/*
 * ops.c - the FUSE operations: a passthrough to CIPHERDIR, with file
 * contents going through io.c and data keys through filekey.c.
 *
 * Paths arrive as "/a/b"; every backing call is *at(root_fd, "a/b") so no
 * path strings are glued together (xattr calls, which have no *at form,
 * go through /proc/self/fd). Names, modes, owners and times are stored as
 * they are (format 1 does not hide them). kmsfs.conf in the volume root
 * and xattrs under user.kmsfs. belong to kmsfs and are invisible here.
 */
#define FUSE_USE_VERSION 314

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs_internal.h"

struct kfs_mount *kfs;

/* ---- helpers --------------------------------------------------------------- */

static const char *rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

/* The volume config and anything else kmsfs keeps in the root. */
static int is_reserved(const char *path)
{
	return strcmp(rel(path), KMSFS_CONF_NAME) == 0;
}

static int is_kmsfs_xattr(const char *name)
{
	return strncmp(name, KMSFS_XATTR_PREFIX, strlen(KMSFS_XATTR_PREFIX)) == 0;
}

static struct kfs_file *file_of(const struct fuse_file_info *fi)
{
	return (struct kfs_file *)(uintptr_t)fi->fh;
}

void kfs_caller_current(struct kc_caller *caller, char principal[KFS_PRINCIPAL_MAX])
{
	struct fuse_context *ctx = fuse_get_context();

	caller->uid = ctx && ctx->fuse ? ctx->uid : getuid();
	caller->pid = ctx && ctx->fuse ? ctx->pid : getpid();
	kc_local_principal(caller->uid, principal, KFS_PRINCIPAL_MAX);
	caller->principal = principal;
}

/* New objects belong to the caller when the daemon runs as root (allow_other). */
static void own_by_caller(const char *path)
{
	struct fuse_context *ctx = fuse_get_context();

	if (kfs->is_root && ctx)
		(void)fchownat(kfs->root_fd, rel(path), ctx->uid, ctx->gid, AT_SYMLINK_NOFOLLOW);
}

static void fix_stat(struct stat *st)
{
	if (S_ISREG(st->st_mode))
		st->st_size = (off_t)kfs_plain_size_of(st);
}

static int proc_path(const char *path, char *out, size_t len)
{
	int n = snprintf(out, len, "/proc/self/fd/%d/%s", kfs->root_fd, rel(path));

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---- attributes ------------------------------------------------------------- */

static int kfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	int rc;

	if (fi)
		rc = fstat(file_of(fi)->fd, st);
	else if (is_reserved(path))
		return -ENOENT;
	else
		rc = fstatat(kfs->root_fd, rel(path), st, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH);
	if (rc < 0)
		return -errno;
	fix_stat(st);
	return 0;
}

static int kfs_access(const char *path, int mask)
{
	if (is_reserved(path))
		return -ENOENT;
	return faccessat(kfs->root_fd, rel(path), mask, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int kfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int rc;

	if (fi)
		rc = fchmod(file_of(fi)->fd, mode);
	else if (is_reserved(path))
		return -EPERM;
	else
		rc = fchmodat(kfs->root_fd, rel(path), mode, 0);
	return rc < 0 ? -errno : 0;
}

static int kfs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	int rc;

	if (fi)
		rc = fchown(file_of(fi)->fd, uid, gid);
	else if (is_reserved(path))
		return -EPERM;
	else
		rc = fchownat(kfs->root_fd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW);
	return rc < 0 ? -errno : 0;
}

static int kfs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	int rc;

	if (fi)
		rc = futimens(file_of(fi)->fd, tv);
	else if (is_reserved(path))
		return -EPERM;
	else
		rc = utimensat(kfs->root_fd, rel(path), tv, AT_SYMLINK_NOFOLLOW);
	return rc < 0 ? -errno : 0;
}

static int kfs_statfs(const char *path, struct statvfs *sv)
{
	return fstatvfs(kfs->root_fd, sv) < 0 ? -errno : 0;
}

/* ---- names -------------------------------------------------------------------- */

static int kfs_readlink(const char *path, char *buf, size_t size)
{
	ssize_t len;

	if (size == 0)
		return -EINVAL;
	len = readlinkat(kfs->root_fd, rel(path), buf, size - 1);
	if (len < 0)
		return -errno;
	buf[len] = '\0';
	return 0;
}

static int kfs_mkdir(const char *path, mode_t mode)
{
	if (is_reserved(path))
		return -EPERM;
	if (mkdirat(kfs->root_fd, rel(path), mode) < 0)
		return -errno;
	own_by_caller(path);
	return 0;
}

static int kfs_unlink(const char *path)
{
	if (is_reserved(path))
		return -EPERM;
	return unlinkat(kfs->root_fd, rel(path), 0) < 0 ? -errno : 0;
}

static int kfs_rmdir(const char *path)
{
	return unlinkat(kfs->root_fd, rel(path), AT_REMOVEDIR) < 0 ? -errno : 0;
}

static int kfs_symlink(const char *target, const char *path)
{
	if (is_reserved(path))
		return -EPERM;
	if (symlinkat(target, kfs->root_fd, rel(path)) < 0)
		return -errno;
	own_by_caller(path);
	return 0;
}

static int kfs_rename(const char *from, const char *to, unsigned int flags)
{
	if (is_reserved(from) || is_reserved(to))
		return -EPERM;
	if (renameat2(kfs->root_fd, rel(from), kfs->root_fd, rel(to), flags) < 0)
		return -errno;
	return 0;
}

static int kfs_link(const char *from, const char *to)
{
	if (is_reserved(from) || is_reserved(to))
		return -EPERM;
	return linkat(kfs->root_fd, rel(from), kfs->root_fd, rel(to), 0) < 0 ? -errno : 0;
}

/* ---- open files -------------------------------------------------------------- */

/* Wrap a backing fd in a handle, with the caller's data key ready. */
static int file_attach(int fd, const char *path, int writable, struct kfs_file **out)
{
	char principal[KFS_PRINCIPAL_MAX];
	struct kc_caller caller;
	struct kfs_file *f;
	struct stat st;
	int ret;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->fd = fd;
	f->path = strdup(rel(path));
	f->node = kfs_node_get(st.st_dev, st.st_ino);
	if (!f->path || !f->node) {
		ret = -ENOMEM;
		goto fail;
	}
	kfs_caller_current(&caller, principal);
	ret = kfs_key_ensure(f->node, fd, f->path, &caller, writable);
	if (ret < 0)
		goto fail;
	*out = f;
	return 0;
fail:
	if (f->node)
		kfs_node_put(f->node);
	free(f->path);
	free(f);
	return ret;
}

static void file_detach(struct kfs_file *f)
{
	kfs_node_put(f->node);
	close(f->fd);
	free(f->path);
	free(f);
}

/*
 * The backing file is opened read-write whatever the caller asked for:
 * a partial-block write must read the block it changes. O_APPEND and
 * O_TRUNC never reach it - offsets and sizes are plaintext ones.
 */
static int open_backing(const char *path, int flags, int create, mode_t mode)
{
	int keep = flags & (O_SYNC | O_DSYNC | O_NOATIME);
	int base = keep | O_CLOEXEC | O_NOFOLLOW;
	int fd;

	if (create)
		return openat(kfs->root_fd, rel(path), base | O_RDWR | O_CREAT | O_EXCL, mode);
	fd = openat(kfs->root_fd, rel(path), base | O_RDWR);
	if (fd < 0 && (errno == EACCES || errno == EROFS) && (flags & O_ACCMODE) == O_RDONLY)
		fd = openat(kfs->root_fd, rel(path), base | O_RDONLY);
	return fd;
}

static void set_open_flags(struct fuse_file_info *fi)
{
	if (fi->flags & O_DIRECT)
		fi->direct_io = 1;
}

static int kfs_open(const char *path, struct fuse_file_info *fi)
{
	int writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	struct kfs_file *f;
	int fd, ret;

	if (is_reserved(path))
		return -ENOENT;
	fd = open_backing(path, fi->flags, 0, 0);
	if (fd < 0)
		return -errno;
	ret = file_attach(fd, path, writable, &f);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	if (writable && (fi->flags & O_TRUNC)) {
		ret = kfs_io_truncate(f, 0);
		if (ret < 0) {
			file_detach(f);
			return ret;
		}
	}
	set_open_flags(fi);
	fi->fh = (uintptr_t)f;
	return 0;
}

static int kfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct kfs_file *f;
	int fd, ret;

	if (is_reserved(path))
		return -EPERM;
	fd = open_backing(path, fi->flags, 1, mode);
	if (fd < 0 && errno == EEXIST && !(fi->flags & O_EXCL))
		return kfs_open(path, fi);
	if (fd < 0)
		return -errno;
	own_by_caller(path);
	ret = file_attach(fd, path, 1, &f);
	if (ret < 0) {
		/* The key service said no: the file must not appear at all. */
		close(fd);
		unlinkat(kfs->root_fd, rel(path), 0);
		return ret;
	}
	set_open_flags(fi);
	fi->fh = (uintptr_t)f;
	return 0;
}

static int kfs_mknod(const char *path, mode_t mode, dev_t rdev)
{
	struct fuse_file_info fi = { .flags = O_WRONLY | O_EXCL };
	int ret;

	if (is_reserved(path))
		return -EPERM;
	if (S_ISREG(mode)) {
		ret = kfs_create(path, mode & 07777, &fi);
		if (ret == 0)
			file_detach(file_of(&fi));
		return ret;
	}
	if (mknodat(kfs->root_fd, rel(path), mode, rdev) < 0)
		return -errno;
	own_by_caller(path);
	return 0;
}

static int kfs_read(const char *path, char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	return (int)kfs_io_read(file_of(fi), buf, size, off);
}

static int kfs_write(const char *path, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	return (int)kfs_io_write(file_of(fi), buf, size, off);
}

static int kfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct kfs_file *f;
	int fd, ret;

	if (fi)
		return kfs_io_truncate(file_of(fi), size);
	if (is_reserved(path))
		return -EPERM;
	fd = open_backing(path, O_RDWR, 0, 0);
	if (fd < 0)
		return -errno;
	ret = file_attach(fd, path, 1, &f);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	ret = kfs_io_truncate(f, size);
	file_detach(f);
	return ret;
}

static int kfs_fallocate(const char *path, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	return kfs_io_fallocate(file_of(fi), mode, off, len);
}

static off_t kfs_lseek(const char *path, off_t off, int whence, struct fuse_file_info *fi)
{
	return kfs_io_lseek(file_of(fi), off, whence);
}

static int kfs_release(const char *path, struct fuse_file_info *fi)
{
	file_detach(file_of(fi));
	return 0;
}

static int kfs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	int fd = file_of(fi)->fd;

	return (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? -errno : 0;
}

static int kfs_flush(const char *path, struct fuse_file_info *fi)
{
	return 0;   /* nothing is buffered in the daemon */
}

/* ---- extended attributes --------------------------------------------------- */

static int kfs_setxattr(const char *path, const char *name, const char *value,
			size_t size, int flags)
{
	char p[PATH_MAX + 32];
	int ret;

	if (is_kmsfs_xattr(name))
		return -EPERM;
	ret = proc_path(path, p, sizeof(p));
	if (ret < 0)
		return ret;
	return lsetxattr(p, name, value, size, flags) < 0 ? -errno : 0;
}

static int kfs_getxattr(const char *path, const char *name, char *value, size_t size)
{
	char p[PATH_MAX + 32];
	ssize_t len;
	int ret;

	if (is_kmsfs_xattr(name))
		return -ENODATA;
	ret = proc_path(path, p, sizeof(p));
	if (ret < 0)
		return ret;
	len = lgetxattr(p, name, value, size);
	return len < 0 ? -errno : (int)len;
}

/* List, minus kmsfs's own names. With size 0 the kernel asks for a bound. */
static int kfs_listxattr(const char *path, char *list, size_t size)
{
	char p[PATH_MAX + 32];
	char *all = NULL, *name;
	ssize_t len;
	size_t out = 0;
	int ret = proc_path(path, p, sizeof(p));

	if (ret < 0)
		return ret;
	len = llistxattr(p, NULL, 0);
	if (len <= 0)
		return len < 0 ? -errno : 0;
	all = malloc((size_t)len);
	if (!all)
		return -ENOMEM;
	len = llistxattr(p, all, (size_t)len);
	if (len < 0) {
		ret = -errno;
		goto out;
	}
	for (name = all; name < all + len; name += strlen(name) + 1) {
		size_t n = strlen(name) + 1;

		if (is_kmsfs_xattr(name))
			continue;
		if (size && out + n > size) {
			ret = -ERANGE;
			goto out;
		}
		if (size)
			memcpy(list + out, name, n);
		out += n;
	}
	ret = (int)out;
out:
	free(all);
	return ret;
}

static int kfs_removexattr(const char *path, const char *name)
{
	char p[PATH_MAX + 32];
	int ret;

	if (is_kmsfs_xattr(name))
		return -EPERM;
	ret = proc_path(path, p, sizeof(p));
	if (ret < 0)
		return ret;
	return lremovexattr(p, name) < 0 ? -errno : 0;
}

/* ---- directories ------------------------------------------------------------ */

struct kfs_dir {
	DIR *dp;
	struct dirent *entry;
	off_t offset;
	int is_root;
};

static int kfs_opendir(const char *path, struct fuse_file_info *fi)
{
	struct kfs_dir *d = calloc(1, sizeof(*d));
	int fd;

	if (!d)
		return -ENOMEM;
	fd = openat(kfs->root_fd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d->dp = fdopendir(fd))) {
		int err = errno;

		if (fd >= 0)
			close(fd);
		free(d);
		return -err;
	}
	d->is_root = strcmp(rel(path), ".") == 0;
	fi->fh = (uintptr_t)d;
	return 0;
}

static int kfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t offset,
		       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct kfs_dir *d = (struct kfs_dir *)(uintptr_t)fi->fh;

	if (offset != d->offset) {
		seekdir(d->dp, offset);
		d->entry = NULL;
		d->offset = offset;
	}
	for (;;) {
		struct stat st;
		enum fuse_fill_dir_flags fill = 0;

		if (!d->entry) {
			d->entry = readdir(d->dp);
			if (!d->entry)
				break;
		}
		if (d->is_root && strcmp(d->entry->d_name, KMSFS_CONF_NAME) == 0)
			goto next;
		memset(&st, 0, sizeof(st));
		if ((flags & FUSE_READDIR_PLUS) &&
		    fstatat(dirfd(d->dp), d->entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			fix_stat(&st);
			fill = FUSE_FILL_DIR_PLUS;
		} else {
			st.st_ino = d->entry->d_ino;
			st.st_mode = (mode_t)d->entry->d_type << 12;
		}
		if (filler(buf, d->entry->d_name, &st, telldir(d->dp), fill))
			break;
next:
		d->offset = telldir(d->dp);
		d->entry = NULL;
	}
	return 0;
}

static int kfs_releasedir(const char *path, struct fuse_file_info *fi)
{
	struct kfs_dir *d = (struct kfs_dir *)(uintptr_t)fi->fh;

	closedir(d->dp);
	free(d);
	return 0;
}

static int kfs_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct kfs_dir *d = (struct kfs_dir *)(uintptr_t)fi->fh;

	return fsync(dirfd(d->dp)) < 0 ? -errno : 0;
}

/* ---- lifecycle ---------------------------------------------------------------- */

static void *kfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/* Big requests: the cost is round trips, not AES (DESIGN section 8). */
	conn->max_write = 1u << 20;
	conn->max_readahead = 1u << 20;
	conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (kfs->writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	/* No flock/posix-lock ops: the kernel then keeps locks itself, per mount. */
	conn->want &= ~(unsigned)(FUSE_CAP_FLOCK_LOCKS | FUSE_CAP_POSIX_LOCKS);

	cfg->use_ino = 1;          /* backing inode numbers: stable for tar/rsync */
	cfg->readdir_ino = 1;
	cfg->hard_remove = 1;      /* unlink while open: ops use the fd, not the path */
	cfg->nullpath_ok = 1;
	cfg->auto_cache = 1;       /* keep the page cache across opens of unchanged files */
	cfg->entry_timeout = 1.0;
	cfg->attr_timeout = 1.0;
	cfg->negative_timeout = 0.0;
	return kfs;
}

const struct fuse_operations kfs_operations = {
	.init = kfs_init,
	.getattr = kfs_getattr,
	.access = kfs_access,
	.readlink = kfs_readlink,
	.mknod = kfs_mknod,
	.mkdir = kfs_mkdir,
	.unlink = kfs_unlink,
	.rmdir = kfs_rmdir,
	.symlink = kfs_symlink,
	.rename = kfs_rename,
	.link = kfs_link,
	.chmod = kfs_chmod,
	.chown = kfs_chown,
	.truncate = kfs_truncate,
	.utimens = kfs_utimens,
	.open = kfs_open,
	.create = kfs_create,
	.read = kfs_read,
	.write = kfs_write,
	.statfs = kfs_statfs,
	.flush = kfs_flush,
	.release = kfs_release,
	.fsync = kfs_fsync,
	.fallocate = kfs_fallocate,
	.lseek = kfs_lseek,
	.setxattr = kfs_setxattr,
	.getxattr = kfs_getxattr,
	.listxattr = kfs_listxattr,
	.removexattr = kfs_removexattr,
	.opendir = kfs_opendir,
	.readdir = kfs_readdir,
	.releasedir = kfs_releasedir,
	.fsyncdir = kfs_fsyncdir,
};
