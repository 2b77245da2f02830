/*
 * cmd_volume.c - `kmsfs volume`: EBS-like block volumes on a kmsfs mount.
 *
 *   create IMAGE --size SIZE [--mkfs TYPE]
 *   attach IMAGE [--mkfs TYPE [--force]] [--mount DIR] [--read-only]
 *   detach IMAGE|/dev/loopN [--umount]
 *   list [DIR]
 *   snapshot IMAGE DST_CIPHERDIR [snapshot copy options]
 *
 * A volume is a sparse disk image file inside a mounted kmsfs filesystem,
 * attached as a loop device (loopdev.c). Whatever filesystem is made on the
 * device, every block it writes reaches kmsfs as a write to the image file
 * and is sealed under that file's data key; the key service decides who may
 * open the image, as for any other file. Images made here are tagged with
 * the xattr user.kmsfs_volume (the size asked for), so `list DIR` can tell
 * volumes from other files; the name is outside user.kmsfs., which the
 * filesystem keeps for its own attributes and refuses to set.
 *
 * snapshot finds the cipher directory behind the image's mount (the mount
 * source in /proc/self/mountinfo) and hands the image's path inside the
 * volume to the snapshot copy engine, `kmsfs snapshot copy --path REL`,
 * which copies that file's ciphertext out and rewraps (or re-encrypts) its
 * data key for the destination. The image must be detached, so the copy is
 * of a filesystem that was cleanly unmounted.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cli.h"
#include "loopdev.h"

#define VOLUME_XATTR "user.kmsfs_volume"
#define KMSFS_FSTYPE "fuse.kmsfs"
#define SECTOR 512ULL
#define UMOUNT_MAX 64               /* mounts of one device undone by detach --umount */

static const char usage[] =
	"usage: kmsfs volume create IMAGE --size SIZE [--mkfs TYPE]\n"
	"       kmsfs volume attach IMAGE [--mkfs TYPE [--force]] [--mount DIR] [--read-only]\n"
	"       kmsfs volume detach IMAGE|/dev/loopN [--umount]\n"
	"       kmsfs volume list [DIR]\n"
	"       kmsfs volume snapshot IMAGE DST_CIPHERDIR [--key KEY] [--key-service URL]\n"
	"                             [--reencrypt] [--verify] [other snapshot copy options]\n"
	"\n"
	"EBS-like block volumes: a volume is a sparse disk image in a mounted kmsfs\n"
	"filesystem, attached as a loop device; every block is encrypted by kmsfs.\n"
	"\n"
	"create    make a new sparse image of SIZE bytes (K, M, G, T: powers of 1024),\n"
	"          tagged as a volume; --mkfs formats it (through a temporary attach)\n"
	"attach    set up a loop device for IMAGE and print it (/dev/loopN); --mkfs TYPE\n"
	"          runs mkfs.TYPE on it, refusing a device that already holds a filesystem\n"
	"          unless --force; --mount DIR mounts it; --read-only attaches it read-only\n"
	"detach    release the loop device; refused while it is mounted unless --umount\n"
	"list      attached volumes (device, image, size, allocated, mountpoint); with\n"
	"          DIR also the volumes in DIR that are not attached\n"
	"snapshot  copy a detached IMAGE to a new cipher directory with kmsfs snapshot\n"
	"          copy --path (keys rewrapped for --key, or --reencrypt), then say how\n"
	"          to mount it and attach the copy\n";

/* ---- small helpers ----------------------------------------------------------------- */

/* "1.5G": one decimal below 10 units, as ls -h. */
static const char *human(unsigned long long bytes, char buf[24])
{
	static const char units[] = "BKMGTPE";
	double value = (double)bytes;
	int unit = 0;

	while (value >= 1024 && unit < 6) {
		value /= 1024;
		unit++;
	}
	if (unit == 0)
		snprintf(buf, 24, "%lluB", bytes);
	else if (value < 10 && value != (double)(unsigned long long)value)
		snprintf(buf, 24, "%.1f%c", value, units[unit]);
	else
		snprintf(buf, 24, "%.0f%c", value, units[unit]);
	return buf;
}

/* SIZE: digits, then K, M, G or T (powers of 1024), optionally followed by iB or B. */
static int parse_size(const char *text, unsigned long long *out)
{
	unsigned long long number, unit = 1;
	const char *units = "KMGT", *found;
	char *end;

	if (!isdigit((unsigned char)text[0]))
		return -1;
	errno = 0;
	number = strtoull(text, &end, 10);
	if (errno)
		return -1;
	if (*end) {
		found = strchr(units, toupper((unsigned char)*end));
		if (!found)
			return -1;
		for (const char *u = units; u <= found; u++)
			unit *= 1024;
		end++;
		if (*end && strcasecmp(end, "iB") != 0 && strcasecmp(end, "B") != 0)
			return -1;
	}
	if (number == 0 || number > (unsigned long long)INT64_MAX / unit)
		return -1;
	*out = number * unit;
	return 0;
}

/* A filesystem type is a name, not a path: it becomes the program mkfs.TYPE. */
static int valid_fstype(const char *type)
{
	if (!*type || strlen(type) > 32)
		return 0;
	for (const char *p = type; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
			return 0;
	return 1;
}

/*
 * Run argv[0] (found on PATH, else in /usr/sbin and /sbin, where mkfs and
 * blkid live when PATH is a user's) with stdin from /dev/null. Its stdout
 * goes to capture (NUL-terminated, cut at len) or to our stderr, so that our
 * stdout stays what scripts read. Returns the exit status, 128 + a signal,
 * or -1 if it could not start (reason printed).
 */
static int run(char *const argv[], char *capture, size_t len)
{
	int pipe_fd[2] = { -1, -1 }, status, devnull;
	size_t used = 0;
	ssize_t n;
	pid_t pid;

	if (capture && pipe2(pipe_fd, O_CLOEXEC) != 0) {
		cli_error("%s: cannot make a pipe: %s", argv[0], strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		cli_error("%s: cannot start: %s", argv[0], strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		static const char *const dirs[] = { "/usr/sbin/", "/sbin/", "/usr/bin/" };
		char path[PATH_MAX];

		devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, STDIN_FILENO);
		dup2(capture ? pipe_fd[1] : STDERR_FILENO, STDOUT_FILENO);
		execvp(argv[0], argv);
		for (size_t i = 0; errno == ENOENT && i < sizeof(dirs) / sizeof(dirs[0]); i++) {
			snprintf(path, sizeof(path), "%s%s", dirs[i], argv[0]);
			execv(path, argv);
		}
		fprintf(stderr, "kmsfs: %s: cannot run: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (capture) {
		close(pipe_fd[1]);
		while ((n = read(pipe_fd[0], capture + used, len - 1 - used)) > 0)
			used += (size_t)n;
		capture[used] = '\0';
		close(pipe_fd[0]);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			cli_error("%s: lost track of it: %s", argv[0], strerror(errno));
			return -1;
		}
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
fail:
	if (capture) {
		close(pipe_fd[0]);
		close(pipe_fd[1]);
	}
	return -1;
}

/* ---- mounts (cli_mounts.c reads /proc/self/mountinfo) ------------------------------- */

/* Is prefix the path itself or one of its parent directories? */
static int path_under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strcmp(prefix, "/") == 0)
		return path[0] == '/';
	return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

struct holder_search {
	dev_t dev;
	const char *path;
	struct cli_mount *found;    /* the deepest mount of dev above path */
	int matched;
};

static int visit_holder(const struct cli_mount *m, void *arg)
{
	struct holder_search *s = arg;

	if (makedev(m->major, m->minor) != s->dev || !path_under(s->path, m->mountpoint))
		return 0;
	if (!s->matched || strlen(m->mountpoint) >= strlen(s->found->mountpoint)) {
		*s->found = *m;
		s->matched = 1;
	}
	return 0;
}

/* The mount that path (resolved, st_dev dev) is reached through. 1 found, 0 not, -1 error. */
static int mount_holding(dev_t dev, const char *path, struct cli_mount *out)
{
	struct holder_search s = { .dev = dev, .path = path, .found = out };

	if (cli_each_mount(visit_holder, &s) != 0) {
		cli_error("/proc/self/mountinfo: cannot read: %s", strerror(errno));
		return -1;
	}
	return s.matched;
}

struct device_search {
	unsigned int number;          /* loopN */
	char path[LOOPDEV_PATH_MAX];
	char mountpoint[PATH_MAX];    /* the last mount of it */
	int matched;
};

static int visit_device(const struct cli_mount *m, void *arg)
{
	struct device_search *s = arg;

	if ((m->major == 7 && m->minor == s->number) || strcmp(m->source, s->path) == 0) {
		snprintf(s->mountpoint, sizeof(s->mountpoint), "%s", m->mountpoint);
		s->matched = 1;
	}
	return 0;
}

/* Where loopN is mounted (the newest mount, if several). 1, 0 not mounted, -1 error. */
static int device_mountpoint(const struct loopdev *d, char mountpoint[PATH_MAX])
{
	struct device_search *s = calloc(1, sizeof(*s));
	int ret = -1;

	if (!s) {
		cli_error("listing mounts: out of memory");
		return -1;
	}
	s->number = (unsigned)d->number;
	snprintf(s->path, sizeof(s->path), "%s", d->path);
	if (cli_each_mount(visit_device, s) == 0) {
		ret = s->matched;
		if (ret)
			snprintf(mountpoint, PATH_MAX, "%s", s->mountpoint);
	} else {
		cli_error("/proc/self/mountinfo: cannot read: %s", strerror(errno));
	}
	free(s);
	return ret;
}

/* ---- where an image lives ---------------------------------------------------------- */

/* An image and the kmsfs mount it is in. */
struct place {
	char path[PATH_MAX];          /* absolute, symlinks resolved */
	char rel[PATH_MAX];           /* its path inside the kmsfs volume */
	struct cli_mount mount;
	struct stat st;               /* the image; for create, its directory */
};

/*
 * Resolve image (must_exist: the file; else its directory, for create) and
 * check it is on a kmsfs mount. Prints why not, naming cmd and image.
 */
static int locate(const char *cmd, const char *image, int must_exist, struct place *p)
{
	char copy[PATH_MAX], dir[PATH_MAX], *base;
	const char *inside;
	int n, found;

	memset(p, 0, sizeof(*p));
	if (must_exist) {
		if (!realpath(image, p->path))
			return cli_error("volume %s: %s: %s", cmd, image, strerror(errno));
	} else {
		snprintf(copy, sizeof(copy), "%s", image);
		base = basename(copy);
		if (!*base || !strcmp(base, ".") || !strcmp(base, "..") ||
		    image[strlen(image) - 1] == '/')
			return cli_error("volume %s: %s: not a file name", cmd, image);
		snprintf(copy, sizeof(copy), "%s", image);
		if (!realpath(dirname(copy), dir))
			return cli_error("volume %s: %s: directory: %s", cmd, image,
					 strerror(errno));
		snprintf(copy, sizeof(copy), "%s", image);
		n = snprintf(p->path, sizeof(p->path), "%s/%s", strcmp(dir, "/") ? dir : "",
			     basename(copy));
		if (n < 0 || (size_t)n >= sizeof(p->path))
			return cli_error("volume %s: %s: path too long", cmd, image);
	}
	if (stat(must_exist ? p->path : dir, &p->st) != 0)
		return cli_error("volume %s: %s: %s", cmd, image, strerror(errno));
	found = mount_holding(p->st.st_dev, p->path, &p->mount);
	if (found < 0)
		return 1;
	if (!found || strcmp(p->mount.fstype, KMSFS_FSTYPE) != 0)
		return cli_error("volume %s: %s: not on a kmsfs mount (it is on %s%s%s); a volume "
				 "is an image inside a mounted kmsfs filesystem", cmd, image,
				 found ? p->mount.fstype : "an unknown filesystem",
				 found ? " at " : "", found ? p->mount.mountpoint : "");
	/* The volume path: the mount's root inside the volume, then the rest of path. */
	inside = p->path + (strcmp(p->mount.mountpoint, "/") ? strlen(p->mount.mountpoint) : 0);
	while (*inside == '/')
		inside++;
	n = snprintf(p->rel, sizeof(p->rel), "%s%s%s", p->mount.root + 1,
		     p->mount.root[1] && *inside ? "/" : "", inside);
	if (n < 0 || (size_t)n >= sizeof(p->rel))
		return cli_error("volume %s: %s: path too long", cmd, image);
	return 0;
}

/* A detached image must be a non-empty regular file. */
static int check_image(const char *cmd, const struct place *p)
{
	if (!S_ISREG(p->st.st_mode))
		return cli_error("volume %s: %s: not a regular file", cmd, p->path);
	if (p->st.st_size == 0)
		return cli_error("volume %s: %s: empty (create a volume with kmsfs volume create "
				 "IMAGE --size SIZE)", cmd, p->path);
	return 0;
}

/* The loop device the image is attached to: 1 (in d), 0 not attached, -1 error (printed). */
static int attached_as(const char *cmd, const struct place *p, struct loopdev *d)
{
	char err[LOOPDEV_ERR_MAX];
	int found = loopdev_find(p->st.st_dev, p->st.st_ino, p->path, d, err);

	if (found < 0)
		cli_error("volume %s: %s", cmd, err);
	return found;
}

/* ---- formatting and mounting a device ---------------------------------------------- */

/* What blkid finds on dev: "TYPE" of a filesystem or "PTTYPE" of a partition table. */
static int probe(const char *dev, char what[64], char type[64])
{
	char *args[] = { "blkid", "-p", "-o", "export", (char *)dev, NULL };
	char out[4096], *line, *save = NULL;
	int status = run(args, out, sizeof(out));

	what[0] = type[0] = '\0';
	if (status == 2)
		return 0;                  /* nothing found */
	if (status != 0) {
		cli_error("%s: blkid -p failed (exit status %d); cannot tell whether it holds a "
			  "filesystem", dev, status);
		return -1;
	}
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "TYPE=", 5) || (!type[0] && !strncmp(line, "PTTYPE=", 7))) {
			snprintf(what, 64, "%s", line[0] == 'T' ? "filesystem" : "partition table");
			snprintf(type, 64, "%s", strchr(line, '=') + 1);
		}
	}
	return type[0] ? 1 : 0;
}

/* mkfs.TYPE on dev, unless it holds something already and force is off. */
static int format_device(const char *cmd, const char *dev, const char *image, const char *fstype,
		int force)
{
	char program[48], what[64], found[64];
	char *args[5];
	int n = 0, status, ext = !strncmp(fstype, "ext", 3);

	switch (probe(dev, what, found)) {
	case -1:
		return 1;
	case 1:
		if (!force)
			return cli_error("volume %s: %s (%s) already holds a %s (%s); --force "
					 "formats it anyway, destroying it", cmd, image, dev, what,
					 found);
		break;
	}
	snprintf(program, sizeof(program), "mkfs.%s", fstype);
	args[n++] = program;
	if (ext)
		args[n++] = "-q";
	/* blkid found nothing, or the user said --force: mkfs must not ask again. */
	if (ext)
		args[n++] = "-F";
	else if (!strcmp(fstype, "xfs") || !strcmp(fstype, "btrfs"))
		args[n++] = "-f";
	args[n++] = (char *)dev;
	args[n] = NULL;
	status = run(args, NULL, 0);
	if (status != 0)
		return cli_error("volume %s: %s: %s %s failed (exit status %d)", cmd, image,
				 program, dev, status);
	return 0;
}

static int mount_device(const char *cmd, const char *dev, const char *dir, int read_only)
{
	char *args[] = { "mount", "-o", read_only ? "ro" : "rw", (char *)dev, (char *)dir, NULL };
	int status = run(args, NULL, 0);

	if (status != 0)
		return cli_error("volume %s: cannot mount %s on %s (mount exited with status %d)",
				 cmd, dev, dir, status);
	return 0;
}

/* Detach after a failed step; the step's error is already printed. */
static void undo_attach(const char *cmd, const char *dev)
{
	char err[LOOPDEV_ERR_MAX];
	int deferred;

	if (loopdev_detach(dev, &deferred, err) != 0)
		cli_error("volume %s: and could not detach it again: %s", cmd, err);
}

/* ---- create ------------------------------------------------------------------------ */

static int make_image(const struct place *p, unsigned long long size)
{
	char tag[32];
	int fd, ret = 1;

	fd = open(p->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return cli_error("volume create: %s: already exists (create makes a new "
					 "image; attach an existing one with kmsfs volume attach)",
					 p->path);
		return cli_error("volume create: %s: cannot create: %s", p->path, strerror(errno));
	}
	snprintf(tag, sizeof(tag), "%llu", size);
	if (ftruncate(fd, (off_t)size) != 0)
		cli_error("volume create: %s: cannot make it %llu bytes: %s", p->path, size,
			  strerror(errno));
	else if (fsetxattr(fd, VOLUME_XATTR, tag, strlen(tag), 0) != 0)
		cli_error("volume create: %s: cannot tag it (%s): %s", p->path, VOLUME_XATTR,
			  strerror(errno));
	else if (fsync(fd) != 0)
		cli_error("volume create: %s: fsync: %s", p->path, strerror(errno));
	else
		ret = 0;
	close(fd);
	return ret;
}

/* --mkfs at create: attach, format, detach. */
static int format_image(const char *path, const char *fstype)
{
	char dev[LOOPDEV_PATH_MAX], err[LOOPDEV_ERR_MAX];
	int deferred, ret;

	if (loopdev_attach(path, 0, dev, sizeof(dev), err) != 0)
		return cli_error("volume create: %s", err);
	ret = format_device("create", dev, path, fstype, 0);
	if (loopdev_detach(dev, &deferred, err) != 0) {
		cli_error("volume create: %s", err);
		ret = 1;
	}
	return ret;
}

static int volume_create(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "mkfs", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *size_text = NULL, *fstype = NULL;
	unsigned long long size = 0;
	char shown[24];
	struct place *p;
	int opt, ret = 1;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': size_text = optarg; break;
		case 'm': fstype = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind != argc - 1 || !size_text) {
		cli_error("volume create: needs IMAGE and --size SIZE");
		fputs(usage, stderr);
		return 2;
	}
	if (parse_size(size_text, &size) != 0)
		return cli_error("volume create: --size %s: not a size (e.g. 256M, 10G: a number "
				 "with K, M, G or T)", size_text);
	if (size % SECTOR)
		return cli_error("volume create: --size %s: not a whole number of 512-byte sectors",
				 size_text);
	if (fstype && !valid_fstype(fstype))
		return cli_error("volume create: --mkfs %s: not a filesystem type", fstype);
	p = malloc(sizeof(*p));
	if (!p)
		return cli_error("volume create: out of memory");
	if (locate("create", argv[optind], 0, p) != 0 || make_image(p, size) != 0)
		goto out;
	if (fstype && format_image(p->path, fstype) != 0) {
		unlink(p->path);           /* ours, and useless unformatted: let a re-run work */
		goto out;
	}
	printf("%s: volume of %s (%llu bytes), sparse%s%s\n", p->path, human(size, shown), size,
	       fstype ? ", formatted " : "", fstype ? fstype : "");
	ret = 0;
out:
	free(p);
	return ret;
}

/* ---- attach ------------------------------------------------------------------------ */

struct attach_opts {
	const char *fstype;           /* --mkfs */
	const char *mount_dir;        /* --mount */
	int force, read_only;
};

static int check_attach_opts(const struct attach_opts *o)
{
	struct stat st;

	if (o->force && !o->fstype)
		return cli_error("volume attach: --force only goes with --mkfs TYPE");
	if (o->fstype && o->read_only)
		return cli_error("volume attach: --mkfs cannot format a --read-only attach");
	if (o->fstype && !valid_fstype(o->fstype))
		return cli_error("volume attach: --mkfs %s: not a filesystem type", o->fstype);
	if (o->mount_dir && stat(o->mount_dir, &st) != 0)
		return cli_error("volume attach: --mount %s: %s", o->mount_dir, strerror(errno));
	if (o->mount_dir && !S_ISDIR(st.st_mode))
		return cli_error("volume attach: --mount %s: not a directory", o->mount_dir);
	return 0;
}

static int attach(const struct place *p, const struct attach_opts *o)
{
	char dev[LOOPDEV_PATH_MAX], err[LOOPDEV_ERR_MAX];
	struct loopdev existing;

	switch (attached_as("attach", p, &existing)) {
	case -1:
		return 1;
	case 1:
		return cli_error("volume attach: %s: already attached as %s (detach it first: "
				 "kmsfs volume detach %s)", p->path, existing.path, existing.path);
	}
	if (loopdev_attach(p->path, o->read_only, dev, sizeof(dev), err) != 0)
		return cli_error("volume attach: %s", err);
	if (o->fstype && format_device("attach", dev, p->path, o->fstype, o->force) != 0)
		goto undo;
	if (o->mount_dir && mount_device("attach", dev, o->mount_dir, o->read_only) != 0)
		goto undo;
	printf("%s\n", dev);
	fflush(stdout);                /* the device first, then what was done with it */
	if (o->fstype)
		fprintf(stderr, "kmsfs: volume attach: formatted %s (%s) as %s\n", dev, p->path,
			o->fstype);
	if (o->mount_dir)
		fprintf(stderr, "kmsfs: volume attach: mounted %s on %s%s\n", dev, o->mount_dir,
			o->read_only ? " (read-only)" : "");
	return 0;
undo:
	undo_attach("attach", dev);
	return 1;
}

static int volume_attach(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "mkfs", required_argument, NULL, 'm' },
		{ "force", no_argument, NULL, 'f' },
		{ "mount", required_argument, NULL, 'M' },
		{ "read-only", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct attach_opts o = { 0 };
	struct place *p;
	int opt, ret = 1;

	while ((opt = getopt_long(argc, argv, "rh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'm': o.fstype = optarg; break;
		case 'f': o.force = 1; break;
		case 'M': o.mount_dir = optarg; break;
		case 'r': o.read_only = 1; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		cli_error("volume attach: needs one IMAGE");
		fputs(usage, stderr);
		return 2;
	}
	if (check_attach_opts(&o) != 0)
		return 1;
	p = malloc(sizeof(*p));
	if (!p)
		return cli_error("volume attach: out of memory");
	if (locate("attach", argv[optind], 1, p) == 0 && check_image("attach", p) == 0)
		ret = attach(p, &o);
	free(p);
	return ret;
}

/* ---- detach ------------------------------------------------------------------------ */

/* The device named by a /dev/loopN or by its image. Prints why on failure. */
static int device_of(const char *arg, struct loopdev *d)
{
	char err[LOOPDEV_ERR_MAX];
	struct place *p;
	int found = -1;

	if (loopdev_is_loop(arg)) {
		found = loopdev_get(arg, d, err);
		if (found < 0)
			cli_error("volume detach: %s", err);
		else if (!found)
			cli_error("volume detach: %s: not attached", arg);
		return found == 1 ? 0 : 1;
	}
	p = malloc(sizeof(*p));
	if (!p)
		return cli_error("volume detach: out of memory");
	if (locate("detach", arg, 1, p) == 0) {
		found = attached_as("detach", p, d);
		if (found == 0)
			cli_error("volume detach: %s: not attached to any loop device", p->path);
	}
	free(p);
	return found == 1 ? 0 : 1;
}

/* Something stacked on the device (device-mapper, md) holds it as a mount would. */
static int holder_of(const struct loopdev *d, char name[256])
{
	char path[64];
	struct dirent *entry;
	DIR *dir;
	int found = 0;

	snprintf(path, sizeof(path), "/sys/block/loop%d/holders", d->number);
	dir = opendir(path);
	if (!dir)
		return 0;
	while (!found && (entry = readdir(dir)))
		if (entry->d_name[0] != '.') {
			snprintf(name, 256, "%s", entry->d_name);
			found = 1;
		}
	closedir(dir);
	return found;
}

/* Unmount every mount of d (--umount). */
static int unmount_all(const struct loopdev *d)
{
	char mountpoint[PATH_MAX];
	int mounted;

	for (int i = 0; i < UMOUNT_MAX; i++) {
		mounted = device_mountpoint(d, mountpoint);
		if (mounted <= 0)
			return mounted < 0;
		if (umount2(mountpoint, 0) != 0)
			return cli_error("volume detach: %s: cannot unmount %s: %s%s", d->path,
					 mountpoint, strerror(errno),
					 errno == EBUSY ? " (files open there?)" : "");
		fprintf(stderr, "kmsfs: volume detach: unmounted %s from %s\n", d->path,
			mountpoint);
	}
	return cli_error("volume detach: %s: still mounted after %d unmounts", d->path, UMOUNT_MAX);
}

static int detach(const struct loopdev *d, int umount_too)
{
	char mountpoint[PATH_MAX], holder[256], err[LOOPDEV_ERR_MAX];
	int mounted, deferred;

	mounted = device_mountpoint(d, mountpoint);
	if (mounted < 0)
		return 1;
	if (holder_of(d, holder))
		return cli_error("volume detach: %s (%s): in use by %s (remove that first)",
				 d->path, d->backing, holder);
	if (mounted && !umount_too)
		return cli_error("volume detach: %s (%s): mounted on %s; unmount it first, or use "
				 "--umount", d->path, d->backing, mountpoint);
	if (mounted && unmount_all(d) != 0)
		return 1;
	if (loopdev_detach(d->path, &deferred, err) != 0)
		return cli_error("volume detach: %s", err);
	printf("detached %s (%s)%s\n", d->path, d->backing, deferred ?
	       "; it is still open elsewhere, so the kernel releases it at the last close" : "");
	return 0;
}

static int volume_detach(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "umount", no_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct loopdev d;
	int opt, umount_too = 0;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u': umount_too = 1; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		cli_error("volume detach: needs one IMAGE or /dev/loopN");
		fputs(usage, stderr);
		return 2;
	}
	if (device_of(argv[optind], &d) != 0)
		return 1;
	return detach(&d, umount_too);
}

/* ---- list -------------------------------------------------------------------------- */

struct kmsfs_dev_search {
	dev_t dev;
	int is_kmsfs;
};

static int visit_kmsfs_dev(const struct cli_mount *m, void *arg)
{
	struct kmsfs_dev_search *s = arg;

	if (makedev(m->major, m->minor) != s->dev)
		return 0;
	s->is_kmsfs = strcmp(m->fstype, KMSFS_FSTYPE) == 0;
	return 1;
}

/* Is the loop device's backing file on a kmsfs mount? */
static int on_kmsfs(const struct loopdev *d)
{
	struct kmsfs_dev_search s = { 0 };
	struct stat st;

	if (d->have_backing_id)
		s.dev = d->backing_dev;
	else if (stat(d->backing, &st) == 0)
		s.dev = st.st_dev;
	else
		return 0;
	if (cli_each_mount(visit_kmsfs_dev, &s) != 0)
		return 0;
	return s.is_kmsfs;
}

static void print_row(const char *dev, const char *image, unsigned long long size,
		const struct stat *st, const char *mountpoint)
{
	char size_text[24], alloc_text[24];

	printf("%-12s %-8s %-9s %-24s %s\n", dev, human(size, size_text),
	       st ? human((unsigned long long)st->st_blocks * 512ULL, alloc_text) : "-",
	       mountpoint, image);
}

/* The attached kmsfs volumes. */
static int list_attached(struct loopdev *list, size_t count)
{
	char mountpoint[PATH_MAX];
	struct stat st;
	int mounted;

	for (size_t i = 0; i < count; i++) {
		const struct loopdev *d = &list[i];

		if (!on_kmsfs(d))
			continue;
		mounted = device_mountpoint(d, mountpoint);
		if (mounted < 0)
			return 1;
		print_row(d->path, d->backing, d->size, stat(d->backing, &st) == 0 ? &st : NULL,
			  mounted ? mountpoint : "-");
	}
	return 0;
}

static int is_attached(struct loopdev *list, size_t count, const struct stat *st)
{
	for (size_t i = 0; i < count; i++)
		if (list[i].have_backing_id && list[i].backing_dev == st->st_dev &&
		    list[i].backing_ino == st->st_ino)
			return 1;
	return 0;
}

/* The tagged images in dir that are not attached. */
static int list_detached(const char *dir, struct loopdev *list, size_t count)
{
	char path[PATH_MAX], tag[32];
	struct dirent *entry;
	struct stat st;
	DIR *d = opendir(dir);
	int n;

	if (!d)
		return cli_error("volume list: %s: %s", dir, strerror(errno));
	while ((entry = readdir(d))) {
		n = snprintf(path, sizeof(path), "%s/%s", dir, entry->d_name);
		if (n < 0 || (size_t)n >= sizeof(path) || lstat(path, &st) != 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (getxattr(path, VOLUME_XATTR, tag, sizeof(tag)) < 0 ||
		    is_attached(list, count, &st))
			continue;
		print_row("-", path, (unsigned long long)st.st_size, &st, "-");
	}
	closedir(d);
	return 0;
}

static int volume_list(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	char err[LOOPDEV_ERR_MAX], dir[PATH_MAX];
	struct loopdev *list;
	size_t count;
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind < argc - 1) {
		cli_error("volume list: takes at most one DIR");
		fputs(usage, stderr);
		return 2;
	}
	if (optind == argc - 1 && !realpath(argv[optind], dir))
		return cli_error("volume list: %s: %s", argv[optind], strerror(errno));
	if (loopdev_list(&list, &count, err) != 0)
		return cli_error("volume list: %s", err);
	printf("%-12s %-8s %-9s %-24s %s\n", "DEVICE", "SIZE", "ALLOCATED", "MOUNTPOINT", "IMAGE");
	ret = list_attached(list, count);
	if (!ret && optind == argc - 1)
		ret = list_detached(dir, list, count);
	free(list);
	return ret;
}

/* ---- snapshot ---------------------------------------------------------------------- */

/*
 * Options of `kmsfs snapshot copy` that take a value, so that their value
 * is not taken for IMAGE or DST. Everything else starting with - passes
 * through as it is (--opt=VALUE always works).
 */
static const char *const snapshot_value_opts[] = {
	"--keystore", "--passfile", "--extpass", "--audit-log", "--key", "--key-service",
	"--profile", "--region", "--ca-file", "--dst-profile", "--dst-region", "--dst-ca-file",
	"--dst-audit-log", "--jobs", NULL
};

static int takes_value(const char *arg)
{
	for (const char *const *o = snapshot_value_opts; *o; o++)
		if (!strcmp(arg, *o))
			return 1;
	return 0;
}

struct snapshot_args {
	const char *image, *dst;
	char **pass;                  /* options for snapshot copy, in order */
	int pass_count;
};

/* Split argv into IMAGE, DST and the options passed on. 0, 1 error, 2 usage, 3 help. */
static int split_snapshot_args(int argc, char **argv, struct snapshot_args *a)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (!strcmp(arg, "--help") || !strcmp(arg, "-h"))
			return 3;
		if (!strcmp(arg, "--path") || !strncmp(arg, "--path=", 7))
			return cli_error("volume snapshot: --path is set by volume snapshot (the "
					 "image's path inside its volume)");
		if (arg[0] == '-' && arg[1]) {
			a->pass[a->pass_count++] = argv[i];
			if (takes_value(arg)) {
				if (i + 1 >= argc)
					return cli_error("volume snapshot: %s needs a value", arg);
				a->pass[a->pass_count++] = argv[++i];
			}
		} else if (!a->image) {
			a->image = arg;
		} else if (!a->dst) {
			a->dst = arg;
		} else {
			cli_error("volume snapshot: unexpected argument \"%s\" (an option with a "
				  "value? write it as --option=VALUE)", arg);
			return 2;
		}
	}
	if (!a->image || !a->dst) {
		cli_error("volume snapshot: needs IMAGE and DST_CIPHERDIR");
		return 2;
	}
	return 0;
}

/* Flush the kernel's writeback cache for the image into its backing file. */
static int flush_image(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return cli_error("volume snapshot: %s: cannot open: %s", path, strerror(errno));
	if (fsync(fd) != 0)
		ret = cli_error("volume snapshot: %s: fsync: %s", path, strerror(errno));
	close(fd);
	return ret;
}

static int run_copy(const struct place *p, const struct snapshot_args *a)
{
	char **args = calloc((size_t)a->pass_count + 8, sizeof(*args));
	int n = 0, ret;

	if (!args)
		return cli_error("volume snapshot: out of memory");
	args[n++] = "snapshot";
	args[n++] = "copy";
	args[n++] = "--path";
	args[n++] = (char *)p->rel;
	for (int i = 0; i < a->pass_count; i++)
		args[n++] = a->pass[i];
	args[n++] = (char *)p->mount.source;
	args[n++] = (char *)a->dst;
	args[n] = NULL;
	optind = 0;                    /* getopt starts over for the copy's own options */
	ret = cmd_snapshot(n, args);
	free(args);
	return ret;
}

static int snapshot(const struct place *p, const struct snapshot_args *a)
{
	char conf[PATH_MAX + 16], dst[PATH_MAX];
	struct loopdev d;
	int ret;

	switch (attached_as("snapshot", p, &d)) {
	case -1:
		return 1;
	case 1:
		return cli_error("volume snapshot: %s: attached as %s; detach it first (kmsfs "
				 "volume detach %s) so the copy is of a cleanly unmounted "
				 "filesystem", p->path, d.path, d.path);
	}
	snprintf(conf, sizeof(conf), "%s/kmsfs.conf", p->mount.source);
	if (access(conf, F_OK) != 0)
		return cli_error("volume snapshot: %s: the mount's source %s is not a kmsfs cipher "
				 "directory (no kmsfs.conf: %s)", p->path, p->mount.source,
				 strerror(errno));
	if (flush_image(p->path) != 0)
		return 1;
	ret = run_copy(p, a);
	if (ret != 0) {
		cli_error("volume snapshot: %s: the copy to %s failed (see above)", p->path,
			  a->dst);
		return ret;
	}
	if (!realpath(a->dst, dst))
		snprintf(dst, sizeof(dst), "%s", a->dst);
	printf("volume snapshot: %s is in %s as %s\nUse it with:\n"
	       "  kmsfs mount %s MOUNTPOINT\n"
	       "  kmsfs volume attach MOUNTPOINT/%s [--mount DIR]\n",
	       p->path, dst, p->rel, dst, p->rel);
	return 0;
}

static int volume_snapshot(int argc, char **argv)
{
	struct snapshot_args a = { 0 };
	struct place *p = NULL;
	int ret;

	a.pass = calloc((size_t)argc + 1, sizeof(*a.pass));
	if (!a.pass)
		return cli_error("volume snapshot: out of memory");
	ret = split_snapshot_args(argc, argv, &a);
	if (ret == 3) {
		fputs(usage, stdout);
		ret = 0;
		goto out;
	}
	if (ret == 2)
		fputs(usage, stderr);
	if (ret != 0)
		goto out;
	ret = 1;
	p = malloc(sizeof(*p));
	if (!p) {
		cli_error("volume snapshot: out of memory");
		goto out;
	}
	if (locate("snapshot", a.image, 1, p) == 0 && check_image("snapshot", p) == 0)
		ret = snapshot(p, &a);
out:
	free(p);
	free(a.pass);
	return ret;
}

/* ---- dispatch ---------------------------------------------------------------------- */

int cmd_volume(int argc, char **argv)
{
	const char *action = argc > 1 ? argv[1] : NULL;

	if (!action || !strcmp(action, "--help") || !strcmp(action, "-h")) {
		fputs(usage, action ? stdout : stderr);
		return action ? 0 : 2;
	}
	if (!strcmp(action, "create"))
		return volume_create(argc - 1, argv + 1);
	if (!strcmp(action, "attach"))
		return volume_attach(argc - 1, argv + 1);
	if (!strcmp(action, "detach"))
		return volume_detach(argc - 1, argv + 1);
	if (!strcmp(action, "list"))
		return volume_list(argc - 1, argv + 1);
	if (!strcmp(action, "snapshot"))
		return volume_snapshot(argc - 1, argv + 1);
	cli_error("unknown volume action \"%s\"", action);
	fputs(usage, stderr);
	return 2;
}
