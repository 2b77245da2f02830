/*
 * loopdev.c - loop devices for `kmsfs volume`: attach an image file with
 * the loop ioctls, detach it, and find what is attached from sysfs.
 *
 * Attaching asks /dev/loop-control for a free device and configures it in
 * one ioctl (LOOP_CONFIGURE, Linux 5.8); an older kernel answers EINVAL or
 * ENOTTY and gets the two-step LOOP_SET_FD + LOOP_SET_STATUS64. Between
 * "free" and "configured" another process (losetup, udisks, a second
 * kmsfs) may take the same device: the ioctl then fails with EBUSY and we
 * ask for another free one.
 *
 * The kernel keeps its own reference to the image file, so the device
 * stays attached after we exit, as with losetup; LO_FLAGS_AUTOCLEAR is not
 * set, because nothing would hold the device open between commands.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "loopdev.h"

#define LOOP_MAJOR_NUMBER 7
#define ATTACH_ATTEMPTS 16          /* free devices taken by others before we give up */
#define NODE_WAIT_MS 1000           /* for devtmpfs/udev to create a new /dev/loopN */
#define CLEAR_WAIT_MS 1000          /* for a detach to take effect */

static int fail(char err[LOOPDEV_ERR_MAX], const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int fail(char err[LOOPDEV_ERR_MAX], const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, LOOPDEV_ERR_MAX, fmt, ap);
	va_end(ap);
	return -1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* One line of a sysfs attribute, without its newline. -1 if it cannot be read. */
static int read_sysfs(int number, const char *attr, char *out, size_t len)
{
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/block/loop%d/%s", number, attr);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, out, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	out[n] = '\0';
	if (n > 0 && out[n - 1] == '\n')
		out[n - 1] = '\0';
	return 0;
}

/* A new /dev/loopN may take devtmpfs or udev a moment to appear. */
static int open_node(const char *path, int flags)
{
	for (long waited = 0; ; waited += 20) {
		int fd = open(path, flags | O_CLOEXEC);

		if (fd >= 0 || errno != ENOENT || waited >= NODE_WAIT_MS)
			return fd;
		sleep_ms(20);
	}
}

/* 0, or -errno: EBUSY means someone else configured the device first. */
static int configure(int loop_fd, int image_fd, const char *image, int read_only)
{
	struct loop_config config;
	int saved;

	memset(&config, 0, sizeof(config));
	config.fd = (unsigned)image_fd;
	/* lo_file_name is informational (64 bytes); sysfs backing_file has the full path. */
	snprintf((char *)config.info.lo_file_name, sizeof(config.info.lo_file_name), "%s", image);
	if (read_only)
		config.info.lo_flags = LO_FLAGS_READ_ONLY;
	if (ioctl(loop_fd, LOOP_CONFIGURE, &config) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOTTY)
		return -errno;
	/* Before Linux 5.8. Read-only follows from image_fd's open mode here. */
	if (ioctl(loop_fd, LOOP_SET_FD, image_fd) != 0)
		return -errno;
	config.info.lo_flags = 0;
	if (ioctl(loop_fd, LOOP_SET_STATUS64, &config.info) != 0) {
		saved = errno;
		(void)ioctl(loop_fd, LOOP_CLR_FD, 0);
		return -saved;
	}
	return 0;
}

int loopdev_attach(const char *image, int read_only, char *dev, size_t dev_len,
		char err[LOOPDEV_ERR_MAX])
{
	int image_fd, control_fd = -1, loop_fd = -1, ret = -1, number, rc;
	char path[LOOPDEV_PATH_MAX];

	image_fd = open(image, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (image_fd < 0) {
		fail(err, "%s: cannot open: %s", image, strerror(errno));
		goto out;
	}
	control_fd = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (control_fd < 0) {
		fail(err, "/dev/loop-control: cannot open: %s%s", strerror(errno),
		     errno == EACCES || errno == EPERM ? " (attaching needs root)" : "");
		goto out;
	}
	for (int attempt = 0; attempt < ATTACH_ATTEMPTS; attempt++) {
		number = ioctl(control_fd, LOOP_CTL_GET_FREE);
		if (number < 0) {
			fail(err, "/dev/loop-control: no free loop device: %s", strerror(errno));
			goto out;
		}
		snprintf(path, sizeof(path), "/dev/loop%d", number);
		loop_fd = open_node(path, O_RDWR);
		if (loop_fd < 0) {
			fail(err, "%s: cannot open: %s", path, strerror(errno));
			goto out;
		}
		rc = configure(loop_fd, image_fd, image, read_only);
		close(loop_fd);
		loop_fd = -1;
		if (rc == 0) {
			snprintf(dev, dev_len, "%s", path);
			ret = 0;
			goto out;
		}
		if (rc != -EBUSY) {
			fail(err, "%s: cannot attach %s: %s", path, image, strerror(-rc));
			goto out;
		}
	}
	fail(err, "%s: no loop device stayed free long enough to attach it (%d tries; "
	     "something else is attaching devices)", image, ATTACH_ATTEMPTS);
out:
	if (control_fd >= 0)
		close(control_fd);
	if (image_fd >= 0)
		close(image_fd);
	return ret;
}

/* N of /dev/loopN, from the device number of path; -1 if it is no loop device. */
static int loop_number(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0 || !S_ISBLK(st.st_mode) || major(st.st_rdev) != LOOP_MAJOR_NUMBER)
		return -1;
	return (int)minor(st.st_rdev);
}

int loopdev_is_loop(const char *path)
{
	return loop_number(path) >= 0;
}

/* Fill d from sysfs (and LOOP_GET_STATUS64 when the node opens). 1, or 0 if detached. */
static int describe(int number, struct loopdev *d)
{
	struct loop_info64 info;
	char text[64];
	int fd;

	memset(d, 0, sizeof(*d));
	d->number = number;
	snprintf(d->path, sizeof(d->path), "/dev/loop%d", number);
	if (read_sysfs(number, "loop/backing_file", d->backing, sizeof(d->backing)) != 0)
		return 0;
	if (read_sysfs(number, "size", text, sizeof(text)) == 0)
		d->size = strtoull(text, NULL, 10) * 512ULL;
	if (read_sysfs(number, "ro", text, sizeof(text)) == 0)
		d->read_only = text[0] == '1';
	fd = open(d->path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (ioctl(fd, LOOP_GET_STATUS64, &info) == 0) {
			d->have_backing_id = 1;
			d->backing_dev = (dev_t)info.lo_device;
			d->backing_ino = (ino_t)info.lo_inode;
		}
		close(fd);
	}
	return 1;
}

int loopdev_get(const char *dev, struct loopdev *out, char err[LOOPDEV_ERR_MAX])
{
	int number = loop_number(dev);

	if (number < 0)
		return fail(err, "%s: not a loop device", dev);
	return describe(number, out);
}

static int by_number(const void *a, const void *b)
{
	const struct loopdev *x = a, *y = b;

	return (x->number > y->number) - (x->number < y->number);
}

int loopdev_list(struct loopdev **out, size_t *count, char err[LOOPDEV_ERR_MAX])
{
	struct loopdev *list = NULL, *grown;
	size_t used = 0, cap = 0;
	struct dirent *entry;
	DIR *dir;
	int number, ret = -1;

	dir = opendir("/sys/block");
	if (!dir)
		return fail(err, "/sys/block: cannot list: %s", strerror(errno));
	while ((entry = readdir(dir))) {
		if (sscanf(entry->d_name, "loop%d", &number) != 1 || number < 0)
			continue;
		if (used == cap) {
			cap = cap ? cap * 2 : 16;
			grown = realloc(list, cap * sizeof(*list));
			if (!grown) {
				fail(err, "listing loop devices: out of memory");
				goto out;
			}
			list = grown;
		}
		if (describe(number, &list[used]))
			used++;
	}
	qsort(list, used, sizeof(*list), by_number);
	*out = list;
	*count = used;
	list = NULL;
	ret = 0;
out:
	closedir(dir);
	free(list);
	return ret;
}

int loopdev_find(dev_t dev, ino_t ino, const char *path, struct loopdev *out,
		char err[LOOPDEV_ERR_MAX])
{
	struct loopdev *list;
	size_t count;
	int found = 0;

	if (loopdev_list(&list, &count, err) != 0)
		return -1;
	for (size_t i = 0; i < count && !found; i++) {
		const struct loopdev *d = &list[i];

		if (d->have_backing_id ? d->backing_dev == dev && d->backing_ino == ino
				       : path && strcmp(d->backing, path) == 0) {
			*out = *d;
			found = 1;
		}
	}
	free(list);
	return found;
}

int loopdev_detach(const char *dev, int *deferred, char err[LOOPDEV_ERR_MAX])
{
	int number = loop_number(dev), fd;
	char backing[PATH_MAX];

	*deferred = 0;
	if (number < 0)
		return fail(err, "%s: not a loop device", dev);
	fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, "%s: cannot open: %s", dev, strerror(errno));
	if (ioctl(fd, LOOP_CLR_FD, 0) != 0) {
		int saved = errno;

		close(fd);
		if (saved == ENXIO)
			return fail(err, "%s: not attached", dev);
		return fail(err, "%s: cannot detach: %s", dev, strerror(saved));
	}
	close(fd);
	/*
	 * With another opener (a mount, a process, udev probing) the kernel only
	 * sets autoclear; the device lets go at the last close. Give a brief
	 * holder such as udev a moment before calling it deferred.
	 */
	for (long waited = 0; waited < CLEAR_WAIT_MS; waited += 20) {
		if (read_sysfs(number, "loop/backing_file", backing, sizeof(backing)) != 0)
			return 0;
		sleep_ms(20);
	}
	*deferred = 1;
	return 0;
}
