/*
 * rekey_state.c - what lets `kmsfs rekey` resume after a crash: the state
 * file CIPHERDIR/.kmsfs-rekey-state and the staging directory
 * CIPHERDIR/.kmsfs-rekey.d.
 *
 * The state file says which job was under way (target key, mode, start)
 * and, for --reencrypt, which files it finished: one line "NEW = OLD"
 * (file ids, hex) per file, appended and fdatasync'ed before the new file
 * replaces the old one. A re-run skips a file whose header id is a NEW
 * there and whose data key already names the target key; the OLD side lets
 * it rejoin hard links a crash left split. A torn last line (the crash hit
 * mid-append) is dropped. Losing the file entirely only costs work: every
 * unfinished file is still complete under its old key.
 *
 * The staging directory holds new files until they are renamed over the
 * old ones (same filesystem, so rename is atomic). Whatever an earlier run
 * left there never replaced anything and is deleted at the next start.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rekey.h"

/* ---- id maps ------------------------------------------------------------------------------ */

static uint64_t idmap_seed;

/* File ids are random, but also attacker-reachable input: mix in a per-run secret. */
static size_t idmap_hash(const uint8_t *id)
{
	uint64_t a, b;

	memcpy(&a, id, 8);
	memcpy(&b, id + 8, 8);
	a = (a ^ idmap_seed) * 0x9e3779b97f4a7c15ULL;
	a ^= (b + idmap_seed) * 0xc2b2ae3d27d4eb4fULL;
	return (size_t)(a ^ (a >> 29));
}

static struct rekey_idmap_slot *idmap_find(const struct rekey_idmap *map, const uint8_t *id)
{
	size_t mask = map->cap - 1;

	for (size_t i = idmap_hash(id) & mask; ; i = (i + 1) & mask) {
		struct rekey_idmap_slot *slot = &map->slots[i];

		if (!slot->used || !memcmp(slot->id, id, KMSFS_FILE_ID_LEN))
			return slot;
	}
}

static int idmap_grow(struct rekey_idmap *map)
{
	struct rekey_idmap bigger = { .cap = map->cap ? map->cap * 2 : 64 };

	if (!idmap_seed)
		kmsfs_random(&idmap_seed, sizeof(idmap_seed));
	bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
	if (!bigger.slots)
		return -ENOMEM;
	for (size_t i = 0; i < map->cap; i++) {
		if (map->slots[i].used)
			*idmap_find(&bigger, map->slots[i].id) = map->slots[i];
	}
	bigger.count = map->count;
	free(map->slots);
	*map = bigger;
	return 0;
}

int rekey_idmap_put(struct rekey_idmap *map, const uint8_t *id, const uint8_t *value)
{
	struct rekey_idmap_slot *slot;

	if ((map->count + 1) * 2 > map->cap && idmap_grow(map) != 0)
		return -ENOMEM;
	slot = idmap_find(map, id);
	if (!slot->used) {
		slot->used = 1;
		memcpy(slot->id, id, KMSFS_FILE_ID_LEN);
		map->count++;
	}
	memcpy(slot->value, value, KMSFS_FILE_ID_LEN);
	return 0;
}

const uint8_t *rekey_idmap_get(const struct rekey_idmap *map, const uint8_t *id)
{
	const struct rekey_idmap_slot *slot;

	if (!map->count)
		return NULL;
	slot = idmap_find(map, id);
	return slot->used ? slot->value : NULL;
}

void rekey_idmap_free(struct rekey_idmap *map)
{
	free(map->slots);
	memset(map, 0, sizeof(*map));
}

/* ---- the state file ------------------------------------------------------------------------ */

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int parse_hex_id(const char *text, size_t len, uint8_t *out)
{
	if (len != 2 * KMSFS_FILE_ID_LEN)
		return -1;
	for (size_t i = 0; i < KMSFS_FILE_ID_LEN; i++) {
		int hi = hex_nibble(text[2 * i]), lo = hex_nibble(text[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static void hex_id(const uint8_t *id, char out[2 * KMSFS_FILE_ID_LEN + 1])
{
	for (size_t i = 0; i < KMSFS_FILE_ID_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

static void trim(char **start, char **end)
{
	while (*start < *end && (**start == ' ' || **start == '\t'))
		(*start)++;
	while (*end > *start && ((*end)[-1] == ' ' || (*end)[-1] == '\t' || (*end)[-1] == '\r'))
		(*end)--;
}

/* The [rekey] section as an earlier run wrote it. */
struct state_text {
	char key_arn[KC_ARN_MAX];
	int mode;                    /* -1 unknown, 0 rewrap, 1 reencrypt */
	long long started;
	int header_ok;
};

static void parse_line(struct rekey_state *st, struct state_text *seen, int in_done,
		       char *line, char *end)
{
	char *eq = memchr(line, '=', (size_t)(end - line)), *key_end, *value;

	if (!eq)
		return;
	key_end = eq;
	value = eq + 1;
	trim(&line, &key_end);
	trim(&value, &end);
	*key_end = '\0';
	*end = '\0';
	if (in_done) {
		uint8_t new_id[KMSFS_FILE_ID_LEN], old_id[KMSFS_FILE_ID_LEN];

		if (parse_hex_id(line, (size_t)(key_end - line), new_id) == 0 &&
		    parse_hex_id(value, (size_t)(end - value), old_id) == 0 &&
		    rekey_idmap_put(&st->done, new_id, old_id) == 0)
			rekey_idmap_put(&st->origin, old_id, new_id);
	} else if (!strcmp(line, "key_id")) {
		snprintf(seen->key_arn, sizeof(seen->key_arn), "%s", value);
	} else if (!strcmp(line, "mode")) {
		seen->mode = !strcmp(value, "reencrypt") ? 1 : !strcmp(value, "rewrap") ? 0 : -1;
	} else if (!strcmp(line, "started")) {
		seen->started = strtoll(value, NULL, 10);
	}
}

/* Lines up to the last newline; a torn last line is not one. Returns bytes used. */
static size_t parse_state(struct rekey_state *st, struct state_text *seen, char *text, size_t len)
{
	char *line = text, *end = text + len;
	int section = 0;             /* 1 [rekey], 2 [done] */
	size_t used = 0;

	while (line < end) {
		char *nl = memchr(line, '\n', (size_t)(end - line));

		if (!nl)
			break;
		*nl = '\0';
		if (!strncmp(line, "[rekey]", 7))
			section = 1;
		else if (!strncmp(line, "[done]", 6))
			section = 2;
		else if (section && line[0] != '#')
			parse_line(st, seen, section == 2, line, nl);
		line = nl + 1;
		used = (size_t)(line - text);
	}
	seen->header_ok = seen->key_arn[0] && seen->mode >= 0 && seen->started > 0;
	return used;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t put = write(fd, buf, len);

		if (put < 0 && errno == EINTR)
			continue;
		if (put <= 0)
			return put < 0 ? -errno : -EIO;
		buf += put;
		len -= (size_t)put;
	}
	return 0;
}

static int start_state(struct rekey_state *st)
{
	char text[KC_ARN_MAX + 256];
	int len, ret;

	len = snprintf(text, sizeof(text),
		       "# kmsfs rekey: an interrupted `kmsfs rekey`. Run it again to finish.\n"
		       "[rekey]\nkey_id = %s\nmode = %s\nstarted = %lld\n[done]\n",
		       st->key_arn, st->reencrypt ? "reencrypt" : "rewrap",
		       (long long)st->started);
	if (ftruncate(st->fd, 0) < 0 || lseek(st->fd, 0, SEEK_SET) < 0)
		return -errno;
	ret = write_all(st->fd, text, (size_t)len);
	if (ret == 0 && fsync(st->fd) < 0)
		ret = -errno;
	return ret;
}

/* Read what an earlier run left, and keep it if it was this same job. */
static int load_state(struct rekey_state *st, const char *cipherdir)
{
	struct state_text seen = { .mode = -1 };
	struct stat sb;
	char *text = NULL;
	size_t used, got = 0;
	int ret = 0;

	if (fstat(st->fd, &sb) < 0)
		return -errno;
	if (sb.st_size == 0)
		return start_state(st);
	text = malloc((size_t)sb.st_size + 1);
	if (!text)
		return -ENOMEM;
	while (got < (size_t)sb.st_size) {
		ssize_t n = pread(st->fd, text + got, (size_t)sb.st_size - got, (off_t)got);

		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			goto out;
		}
		got += (size_t)n;
	}
	used = parse_state(st, &seen, text, got);
	if (seen.header_ok && !strcmp(seen.key_arn, st->key_arn) && seen.mode == st->reencrypt) {
		st->resumed = 1;
		st->started = (time_t)seen.started;
		/* Appends go after the last whole line. */
		if (ftruncate(st->fd, (off_t)used) < 0 || lseek(st->fd, 0, SEEK_END) < 0)
			ret = -errno;
		goto out;
	}
	if (seen.header_ok)
		fprintf(stderr, "kmsfs: rekey: %s: an interrupted rekey to %s (%s) is "
			"superseded by this one\n", cipherdir, seen.key_arn,
			seen.mode ? "reencrypt" : "rewrap");
	rekey_idmap_free(&st->done);
	rekey_idmap_free(&st->origin);
	ret = start_state(st);
out:
	free(text);
	return ret;
}

/* Open and lock the state file, making sure the name still leads to the locked inode. */
static int lock_state(struct rekey_state *st, int root_fd, const char *cipherdir)
{
	for (int attempt = 0; attempt < 5; attempt++) {
		struct stat locked, named;

		st->fd = openat(root_fd, REKEY_STATE_NAME,
				O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (st->fd < 0)
			return cli_error("rekey: %s/%s: %s", cipherdir, REKEY_STATE_NAME,
					 strerror(errno));
		if (flock(st->fd, LOCK_EX | LOCK_NB) < 0) {
			int err = errno;

			close(st->fd);
			st->fd = -1;
			if (err == EWOULDBLOCK)
				return cli_error("rekey: %s: another kmsfs rekey is running on "
						 "this volume (%s is locked)", cipherdir,
						 REKEY_STATE_NAME);
			return cli_error("rekey: %s/%s: cannot lock: %s", cipherdir,
					 REKEY_STATE_NAME, strerror(err));
		}
		/* The run before us may have finished and removed the file meanwhile. */
		if (fstat(st->fd, &locked) == 0 &&
		    fstatat(root_fd, REKEY_STATE_NAME, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
		    locked.st_ino == named.st_ino && locked.st_dev == named.st_dev)
			return 0;
		close(st->fd);
		st->fd = -1;
	}
	return cli_error("rekey: %s/%s: keeps being replaced by another process", cipherdir,
			 REKEY_STATE_NAME);
}

int rekey_state_open(struct rekey_state *st, int root_fd, const char *cipherdir,
		     const char *key_arn, int reencrypt)
{
	int ret;

	snprintf(st->key_arn, sizeof(st->key_arn), "%s", key_arn);
	st->reencrypt = reencrypt;
	st->started = time(NULL);
	pthread_mutex_init(&st->lock, NULL);
	if (lock_state(st, root_fd, cipherdir) != 0)
		return 1;
	ret = load_state(st, cipherdir);
	if (ret < 0) {
		rekey_state_close(st);
		return cli_error("rekey: %s/%s: %s", cipherdir, REKEY_STATE_NAME, strerror(-ret));
	}
	return 0;
}

int rekey_state_is_done(struct rekey_state *st, const uint8_t *new_id)
{
	int done;

	pthread_mutex_lock(&st->lock);
	done = rekey_idmap_get(&st->done, new_id) != NULL;
	pthread_mutex_unlock(&st->lock);
	return done;
}

int rekey_state_record(struct rekey_state *st, const uint8_t *new_id, const uint8_t *old_id)
{
	char line[4 * KMSFS_FILE_ID_LEN + 8], new_hex[2 * KMSFS_FILE_ID_LEN + 1];
	char old_hex[2 * KMSFS_FILE_ID_LEN + 1];
	int ret;

	hex_id(new_id, new_hex);
	hex_id(old_id, old_hex);
	snprintf(line, sizeof(line), "%s = %s\n", new_hex, old_hex);
	pthread_mutex_lock(&st->lock);
	ret = write_all(st->fd, line, strlen(line));
	if (ret == 0 && fdatasync(st->fd) < 0)
		ret = -errno;
	if (ret == 0)
		ret = rekey_idmap_put(&st->done, new_id, old_id);
	if (ret == 0)
		ret = rekey_idmap_put(&st->origin, old_id, new_id);
	pthread_mutex_unlock(&st->lock);
	return ret;
}

int rekey_state_finish(struct rekey_state *st, int root_fd, const char *cipherdir)
{
	int ret = 0;

	if (unlinkat(root_fd, REKEY_STATE_NAME, 0) < 0)
		ret = cli_error("rekey: %s/%s: cannot remove: %s", cipherdir, REKEY_STATE_NAME,
				strerror(errno));
	rekey_state_close(st);
	return ret;
}

void rekey_state_close(struct rekey_state *st)
{
	if (st->fd >= 0)
		close(st->fd);
	st->fd = -1;
	rekey_idmap_free(&st->done);
	rekey_idmap_free(&st->origin);
	pthread_mutex_destroy(&st->lock);
}

/* ---- the staging directory ------------------------------------------------------------------- */

static int clean_staging(int stage_fd, const char *cipherdir)
{
	int dup_fd = dup(stage_fd), ret = 0;
	DIR *dir = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	struct dirent *de;

	if (!dir) {
		if (dup_fd >= 0)
			close(dup_fd);
		return cli_error("rekey: %s/%s: %s", cipherdir, REKEY_STAGING_NAME,
				 strerror(errno));
	}
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (unlinkat(stage_fd, de->d_name, 0) < 0) {
			ret = cli_error("rekey: %s/%s/%s: cannot remove an earlier run's leftover: "
					"%s", cipherdir, REKEY_STAGING_NAME, de->d_name,
					strerror(errno));
			break;
		}
	}
	closedir(dir);
	return ret;
}

int rekey_staging_open(int root_fd, const char *cipherdir)
{
	int fd;

	if (mkdirat(root_fd, REKEY_STAGING_NAME, 0700) < 0 && errno != EEXIST) {
		cli_error("rekey: %s/%s: cannot create: %s", cipherdir, REKEY_STAGING_NAME,
			  strerror(errno));
		return -1;
	}
	fd = openat(root_fd, REKEY_STAGING_NAME, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		cli_error("rekey: %s/%s: %s", cipherdir, REKEY_STAGING_NAME, strerror(errno));
		return -1;
	}
	if (clean_staging(fd, cipherdir) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int rekey_staging_remove(int root_fd, int stage_fd, const char *cipherdir)
{
	int ret = 0;

	if (stage_fd < 0)
		return 0;
	ret = clean_staging(stage_fd, cipherdir);
	close(stage_fd);
	if (ret == 0 && unlinkat(root_fd, REKEY_STAGING_NAME, AT_REMOVEDIR) < 0)
		ret = cli_error("rekey: %s/%s: cannot remove: %s", cipherdir, REKEY_STAGING_NAME,
				strerror(errno));
	return ret;
}
