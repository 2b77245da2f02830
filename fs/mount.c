/*
 * mount.c - bring a kmsfs volume up as a FUSE mount and serve it.
 *
 * The CLI has already unlocked the key service and authenticated the
 * volume config; this file only builds the FUSE argument list, mounts,
 * detaches from the terminal when asked (after the mount is live, so
 * `kmsfs mount` returns once the directory is usable), and runs the
 * multithreaded loop until fusermount3 -u or SIGTERM/SIGINT.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "fs_internal.h"

/* fsname shows CIPHERDIR in mount(8) and df; commas would split the option. */
static int build_args(const struct kmsfs_mount_opts *opts, struct fuse_args *args)
{
	char fsname[PATH_MAX + 64];
	const char *p;
	size_t n = 0;

	n += (size_t)snprintf(fsname, sizeof(fsname), "-ofsname=");
	for (p = opts->cipherdir; *p && n + 3 < sizeof(fsname); p++) {
		if (*p == ',' || *p == '\\')
			fsname[n++] = '\\';
		fsname[n++] = *p;
	}
	fsname[n] = '\0';
	if (fuse_opt_add_arg(args, "kmsfs") < 0 ||
	    fuse_opt_add_arg(args, fsname) < 0 ||
	    fuse_opt_add_arg(args, "-osubtype=kmsfs") < 0)
		return -ENOMEM;
	for (int i = 0; i < opts->fuse_argc; i++)
		if (fuse_opt_add_arg(args, opts->fuse_argv[i]) < 0)
			return -ENOMEM;
	return 0;
}

/* Leave the terminal: the parent (waiting on notify_fd) returns now. */
static void detach(int notify_fd)
{
	int devnull = open("/dev/null", O_RDWR);
	char ok = 0;

	(void)setsid();
	(void)chdir("/");
	if (devnull >= 0) {
		dup2(devnull, STDIN_FILENO);
		dup2(devnull, STDOUT_FILENO);
		dup2(devnull, STDERR_FILENO);
		if (devnull > STDERR_FILENO)
			close(devnull);
	}
	if (notify_fd >= 0) {
		(void)!write(notify_fd, &ok, 1);
		close(notify_fd);
	}
}

static int serve(struct fuse_session *se)
{
	struct fuse_loop_config *loop = fuse_loop_cfg_create();
	int ret;

	if (!loop)
		return -ENOMEM;
	fuse_loop_cfg_set_max_threads(loop, 16);
	fuse_loop_cfg_set_idle_threads(loop, 8);
	ret = fuse_session_loop_mt(se, loop);
	fuse_loop_cfg_destroy(loop);
	return ret;
}

/* Open files each hold a backing descriptor: allow as many as we may. */
static void raise_fd_limit(void)
{
	struct rlimit lim;

	if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
		lim.rlim_cur = lim.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &lim);
	}
}

int kmsfs_fs_mount(const struct kmsfs_mount_opts *opts, const struct kmsfs_volume *vol,
		   struct keyclient *kc, struct kc_audit *audit, int notify_fd)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct kfs_mount state = {
		.vol = *vol,
		.kc = kc,
		.audit = audit,
		.key_cache_ttl = opts->key_cache_ttl,
		.writeback_cache = opts->writeback_cache,
		.owner_uid = getuid(),
		.principals = opts->principals,
		.principal_count = opts->principal_count,
		.is_root = geteuid() == 0,
	};
	struct fuse_session *se = NULL;
	struct stat root_st;
	int mounted = 0, handlers = 0, ret = 1;

	state.root_fd = open(opts->cipherdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (state.root_fd < 0 || fstat(state.root_fd, &root_st) < 0) {
		fprintf(stderr, "kmsfs: %s: cannot open cipher directory: %s\n",
			opts->cipherdir, strerror(errno));
		return 1;
	}
	kfs = &state;
	/* Refusals and integrity failures go to syslog, and to stderr with -f. */
	openlog("kmsfs", LOG_PID | (opts->foreground ? LOG_PERROR : 0), LOG_DAEMON);
	kfs_inode_root_init(root_st.st_dev, root_st.st_ino);
	raise_fd_limit();
	if (build_args(opts, &args) < 0)
		goto out;
	se = fuse_session_new(&args, &kfs_ll_ops, sizeof(kfs_ll_ops), &state);
	if (!se) {
		fprintf(stderr, "kmsfs: %s: invalid FUSE options\n", opts->mountpoint);
		goto out;
	}
	if (fuse_session_mount(se, opts->mountpoint) != 0) {
		fprintf(stderr, "kmsfs: %s: mount failed\n", opts->mountpoint);
		goto out;
	}
	mounted = 1;
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	handlers = 1;
	if (!opts->foreground)
		detach(notify_fd);
	/* A signal or fusermount3 -u ends the loop; both are a clean stop. */
	ret = serve(se) < 0 && !fuse_session_exited(se) ? 1 : 0;
out:
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (mounted)
		fuse_session_unmount(se);
	if (se)
		fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	kfs_inode_table_destroy();
	kfs_node_table_destroy();
	kfs_bucket_cache_destroy();
	close(state.root_fd);
	closelog();
	kfs = NULL;
	return ret;
}
