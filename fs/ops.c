/*
 * ops.c - the FUSE low-level operation table and what every operation
 * shares: who the caller is, how a backing stat becomes a plaintext one,
 * how a name becomes a kernel entry, how an open file is represented.
 *
 * The operations themselves live by subject: namei.c (names), attr.c
 * (attributes), file.c (contents), dir.c (listing), xattr.c. Every backing
 * call is *at(dirfd, "a/b") with a location rebuilt from the inode's names
 * (inode.c: kfs_loc). kmsfs.conf in the volume root is kmsfs's own and invisible.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fs_internal.h"

struct kfs_mount *kfs;

static __thread const struct fuse_ctx *current_ctx;

void kfs_begin(fuse_req_t req)
{
	current_ctx = fuse_req_ctx(req);
}

/* The mount's principal for uid, or NULL (unsigned) when a map is set and lacks it. */
static const char *mapped_principal(uid_t uid)
{
	for (size_t i = 0; i < kfs->principal_count; i++)
		if (kfs->principals[i].uid == uid)
			return kfs->principals[i].principal;
	return NULL;
}

void kfs_caller_current(struct kc_caller *caller, char principal[KFS_PRINCIPAL_MAX])
{
	const char *mapped;

	caller->uid = current_ctx ? current_ctx->uid : getuid();
	caller->pid = current_ctx ? current_ctx->pid : getpid();
	if (!kfs || !kfs->principals) {
		kc_local_principal(caller->uid, principal, KFS_PRINCIPAL_MAX);
		caller->principal = principal;
		return;
	}
	mapped = mapped_principal(caller->uid);
	if (mapped)
		snprintf(principal, KFS_PRINCIPAL_MAX, "%s", mapped);
	caller->principal = mapped ? principal : NULL;
}

/* New objects belong to the caller when the daemon runs as root (allow_other). */
void kfs_own_by_caller(const struct kfs_loc *loc)
{
	if (kfs->is_root && current_ctx &&
	    (current_ctx->uid != geteuid() || current_ctx->gid != getegid()))
		(void)fchownat(loc->dirfd, loc->rel, current_ctx->uid, current_ctx->gid,
			       AT_SYMLINK_NOFOLLOW);
}

void kfs_fix_stat(struct stat *st)
{
	if (S_ISREG(st->st_mode))
		st->st_size = (off_t)kfs_plain_size_of(st);
}

int kfs_is_reserved(const struct kfs_inode *parent, const char *name)
{
	return kfs_inode_is_root(parent) && strcmp(name, KMSFS_CONF_NAME) == 0;
}

/* stat parent/name, find or make its inode (one lookup reference), fill e. */
int kfs_lookup_entry(struct kfs_inode *parent, const char *name, struct fuse_entry_param *e)
{
	struct kfs_loc loc;
	struct kfs_inode *in;
	int ret;

	memset(e, 0, sizeof(*e));
	if (kfs_is_reserved(parent, name))
		return -ENOENT;
	ret = kfs_loc_child(parent, name, &loc);
	if (ret < 0)
		return ret;
	ret = fstatat(loc.dirfd, loc.rel, &e->attr, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	kfs_loc_done(&loc);
	if (ret < 0)
		return ret;
	in = kfs_inode_found(parent, name, &e->attr);
	if (!in)
		return -ENOMEM;
	kfs_fix_stat(&e->attr);
	e->ino = kfs_inode_id(in);
	e->attr_timeout = KFS_TIMEOUT;
	e->entry_timeout = KFS_TIMEOUT;
	return 0;
}

void kfs_reply_entry_or_err(fuse_req_t req, struct kfs_inode *parent, const char *name)
{
	struct fuse_entry_param e;
	int ret = kfs_lookup_entry(parent, name, &e);

	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_entry(req, &e);
}

struct kfs_file *kfs_file_of(const struct fuse_file_info *fi)
{
	return (struct kfs_file *)(uintptr_t)fi->fh;
}

/* Wrap a backing fd in a handle, with the caller's data key ready. */
int kfs_file_attach(int fd, const char *path, int writable, struct kfs_file **out)
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
	f->path = strdup(path);
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

void kfs_file_detach(struct kfs_file *f)
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
int kfs_open_backing(const struct kfs_loc *loc, int flags, int create, mode_t mode)
{
	int base = (flags & (O_SYNC | O_DSYNC | O_NOATIME)) | O_CLOEXEC | O_NOFOLLOW;
	int fd;

	if (create)
		return openat(loc->dirfd, loc->rel, base | O_RDWR | O_CREAT | O_EXCL, mode);
	fd = openat(loc->dirfd, loc->rel, base | O_RDWR);
	if (fd < 0 && (errno == EACCES || errno == EROFS) && (flags & O_ACCMODE) == O_RDONLY)
		fd = openat(loc->dirfd, loc->rel, base | O_RDONLY);
	return fd;
}

static void kfs_init(void *userdata, struct fuse_conn_info *conn)
{
	/* Big requests: the cost is round trips, not AES (DESIGN section 8). */
	conn->max_write = 1u << 20;
	conn->max_readahead = 1u << 20;
	conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO;
	if (kfs->writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	/* No flock/posix-lock ops: the kernel keeps locks itself, per mount. */
	conn->want &= ~(unsigned)(FUSE_CAP_FLOCK_LOCKS | FUSE_CAP_POSIX_LOCKS);
}

const struct fuse_lowlevel_ops kfs_ll_ops = {
	.init = kfs_init,
	.lookup = kfs_op_lookup,
	.forget = kfs_op_forget,
	.forget_multi = kfs_op_forget_multi,
	.getattr = kfs_op_getattr,
	.setattr = kfs_op_setattr,
	.readlink = kfs_op_readlink,
	.mknod = kfs_op_mknod,
	.mkdir = kfs_op_mkdir,
	.unlink = kfs_op_unlink,
	.rmdir = kfs_op_rmdir,
	.symlink = kfs_op_symlink,
	.rename = kfs_op_rename,
	.link = kfs_op_link,
	.open = kfs_op_open,
	.read = kfs_op_read,
	.write = kfs_op_write,
	.flush = kfs_op_flush,
	.release = kfs_op_release,
	.fsync = kfs_op_fsync,
	.opendir = kfs_op_opendir,
	.readdir = kfs_op_readdir,
	.readdirplus = kfs_op_readdirplus,
	.releasedir = kfs_op_releasedir,
	.fsyncdir = kfs_op_fsyncdir,
	.statfs = kfs_op_statfs,
	.setxattr = kfs_op_setxattr,
	.getxattr = kfs_op_getxattr,
	.listxattr = kfs_op_listxattr,
	.removexattr = kfs_op_removexattr,
	.access = kfs_op_access,
	.create = kfs_op_create,
	.fallocate = kfs_op_fallocate,
	.lseek = kfs_op_lseek,
};
