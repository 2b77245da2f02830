/*
 * loopdev.h - loop devices for `kmsfs volume` (private to tools/): attach
 * an image file, detach, and list what is attached, with the kernel's
 * loop ioctls and /sys/block/loopN/loop. No losetup needed.
 */
#ifndef KMSFS_LOOPDEV_H
#define KMSFS_LOOPDEV_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#define LOOPDEV_PATH_MAX 32          /* "/dev/loopN" */
#define LOOPDEV_ERR_MAX (PATH_MAX + 256)

struct loopdev {
	char path[LOOPDEV_PATH_MAX];  /* /dev/loopN */
	int number;                   /* N */
	char backing[PATH_MAX];       /* the image as the kernel names it (sysfs backing_file) */
	int have_backing_id;          /* backing_dev/backing_ino are known (LOOP_GET_STATUS64) */
	dev_t backing_dev;            /* st_dev and st_ino of the image */
	ino_t backing_ino;
	unsigned long long size;      /* the device's size in bytes */
	int read_only;
};

/*
 * Attach image to a free loop device (read-only: the device too) and put
 * its path in dev. Another process taking the free device first is
 * retried. Returns 0, or -1 with the reason in err.
 */
int loopdev_attach(const char *image, int read_only, char *dev, size_t dev_len,
		char err[LOOPDEV_ERR_MAX]);

/*
 * Release dev. If something else still has the device open the kernel
 * only marks it to be released on the last close: *deferred is then 1.
 * Returns 0, or -1 with the reason in err.
 */
int loopdev_detach(const char *dev, int *deferred, char err[LOOPDEV_ERR_MAX]);

/* Every attached loop device, by number; free *out. Returns 0 or -1 with err. */
int loopdev_list(struct loopdev **out, size_t *count, char err[LOOPDEV_ERR_MAX]);

/* The attached device whose backing file is (dev, ino) or, failing that, named path. */
int loopdev_find(dev_t dev, ino_t ino, const char *path, struct loopdev *out,
		char err[LOOPDEV_ERR_MAX]);   /* 1 found, 0 not attached, -1 error */

/* What /dev/loopN (or any path to it) is attached to. 1, 0 not attached, -1 error. */
int loopdev_get(const char *dev, struct loopdev *out, char err[LOOPDEV_ERR_MAX]);

/* Is path a loop block device? */
int loopdev_is_loop(const char *path);

#endif /* KMSFS_LOOPDEV_H */
