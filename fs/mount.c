/*
 * mount.c - bring a kmsfs volume up as a FUSE mount and serve it.
 *
 * The CLI has already unlocked the key service and authenticated the
 * volume config; this file only builds the FUSE argument list, mounts,
 * detaches from the terminal when asked (after the mount is live, so
 * `kmsfs mount` returns once the directory is usable), and runs the
 * multithreaded loop until fusermount3 -u or SIGTERM/SIGINT.
 */
#define FUSE_USE_VERSION 314

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_internal.h"

extern const struct fuse_operations kfs_operations;

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

static int serve(struct fuse *fuse)
{
	struct fuse_loop_config *loop = fuse_loop_cfg_create();
	int ret;

	if (!loop)
		return -ENOMEM;
	fuse_loop_cfg_set_max_threads(loop, 16);
	fuse_loop_cfg_set_idle_threads(loop, 8);
	ret = fuse_loop_mt(fuse, loop);
	fuse_loop_cfg_destroy(loop);
	return ret;
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
		.is_root = geteuid() == 0,
	};
	struct fuse *fuse = NULL;
	int mounted = 0, ret = 1;

	state.root_fd = open(opts->cipherdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (state.root_fd < 0) {
		fprintf(stderr, "kmsfs: %s: cannot open cipher directory: %s\n",
			opts->cipherdir, strerror(errno));
		return 1;
	}
	kfs = &state;
	if (build_args(opts, &args) < 0)
		goto out;
	fuse = fuse_new(&args, &kfs_operations, sizeof(kfs_operations), NULL);
	if (!fuse) {
		fprintf(stderr, "kmsfs: %s: invalid FUSE options\n", opts->mountpoint);
		goto out;
	}
	if (fuse_mount(fuse, opts->mountpoint) != 0) {
		fprintf(stderr, "kmsfs: %s: mount failed\n", opts->mountpoint);
		goto out;
	}
	mounted = 1;
	if (fuse_set_signal_handlers(fuse_get_session(fuse)) != 0)
		goto out;
	if (!opts->foreground)
		detach(notify_fd);
	/* A signal or fusermount3 -u ends the loop; both are a clean stop. */
	ret = serve(fuse) < 0 && !fuse_session_exited(fuse_get_session(fuse)) ? 1 : 0;
	fuse_remove_signal_handlers(fuse_get_session(fuse));
out:
	if (mounted)
		fuse_unmount(fuse);
	if (fuse)
		fuse_destroy(fuse);
	fuse_opt_free_args(&args);
	kfs_node_table_destroy();
	close(state.root_fd);
	kfs = NULL;
	return ret;
}
