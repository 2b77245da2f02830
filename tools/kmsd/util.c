/*
 * util.c - small things the rest of kmsd shares: request and event ids
 * (UUID v4), CloudTrail timestamps, JSON strings built from untrusted
 * network text, and reading the files that hold secrets (passphrase,
 * TLS private key) into locked memory after checking nobody else can
 * read them.
 */
#include "kmsd.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

void kmsd_uuid_v4(char out[KMSD_UUID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t raw[16];
	size_t pos = 0;

	randombytes_buf(raw, sizeof raw);
	raw[6] = (uint8_t)((raw[6] & 0x0f) | 0x40);   /* version 4 */
	raw[8] = (uint8_t)((raw[8] & 0x3f) | 0x80);   /* RFC 4122 variant */
	for (size_t i = 0; i < sizeof raw; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[pos++] = '-';
		out[pos++] = hex[raw[i] >> 4];
		out[pos++] = hex[raw[i] & 0x0f];
	}
	out[pos] = '\0';
}

void kmsd_iso8601(time_t when, char out[32])
{
	struct tm tm;

	gmtime_r(&when, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *kmsd_json_text(const char *text, size_t max)
{
	size_t len;
	char *copy;
	json_t *value;

	if (!text)
		return json_null();
	len = strnlen(text, max);
	copy = malloc(len + 1);
	if (!copy)
		return NULL;
	/* Header values are bytes, not UTF-8: keep printable ASCII only. */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		copy[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	copy[len] = '\0';
	value = json_stringn(copy, len);
	free(copy);
	return value;
}

/*
 * Open path and check that it may hold a secret: a regular file that
 * group and others cannot touch. Returns the descriptor or -1.
 */
static int open_secret_file(const char *path, const char *what, struct stat *st,
		char err[KMSD_ERR_MAX])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		snprintf(err, KMSD_ERR_MAX, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, st) != 0) {
		snprintf(err, KMSD_ERR_MAX, "%s %s: %s", what, path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st->st_mode)) {
		snprintf(err, KMSD_ERR_MAX, "%s %s: not a regular file", what, path);
		goto fail;
	}
	if (st->st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, KMSD_ERR_MAX,
			 "%s %s: group or others have access to it (mode %04o) and it holds "
			 "secrets; run chmod 600 %s", what, path,
			 (unsigned)(st->st_mode & 07777), path);
		goto fail;
	}
	if (st->st_size == 0) {
		snprintf(err, KMSD_ERR_MAX, "%s %s: empty", what, path);
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

int kmsd_check_secret_file(const char *path, const char *what, char err[KMSD_ERR_MAX])
{
	struct stat st;
	int fd = open_secret_file(path, what, &st, err);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

char *kmsd_read_secret_file(const char *path, const char *what, size_t max, size_t *len,
		char err[KMSD_ERR_MAX])
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0, size;
	ssize_t n;
	int fd = open_secret_file(path, what, &st, err);

	if (fd < 0)
		return NULL;
	if ((uintmax_t)st.st_size > max) {
		snprintf(err, KMSD_ERR_MAX, "%s %s: larger than %zu bytes", what, path, max);
		goto out;
	}
	size = (size_t)st.st_size;
	buf = sodium_malloc(size + 1);
	if (!buf) {
		snprintf(err, KMSD_ERR_MAX, "%s %s: out of locked memory", what, path);
		goto out;
	}
	while (got < size) {
		n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, KMSD_ERR_MAX, "%s %s: %s", what, path,
				 n < 0 ? strerror(errno) : "changed size while being read");
			sodium_free(buf);
			buf = NULL;
			goto out;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	*len = got;
out:
	close(fd);
	return buf;
}

char *kmsd_read_text_file(const char *path, const char *what, size_t max,
		char err[KMSD_ERR_MAX])
{
	FILE *file = fopen(path, "re");
	char *text = NULL;
	size_t got;

	if (!file) {
		snprintf(err, KMSD_ERR_MAX, "%s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	text = malloc(max + 1);
	if (!text) {
		snprintf(err, KMSD_ERR_MAX, "%s %s: out of memory", what, path);
		goto out;
	}
	got = fread(text, 1, max + 1, file);
	if (ferror(file) || got == 0 || got > max) {
		snprintf(err, KMSD_ERR_MAX, "%s %s: %s", what, path, ferror(file) ?
			 strerror(errno) : got == 0 ? "empty" : "too large");
		free(text);
		text = NULL;
		goto out;
	}
	text[got] = '\0';
out:
	fclose(file);
	return text;
}

/*
 * jansson keeps every string of a parsed request (an Encrypt's Plaintext,
 * base64) in its own heap blocks, and the engine builds Decrypt answers
 * the same way. Wiping each block as it is freed means a freed request
 * leaves no plaintext behind in the heap for a later allocation (or a
 * core dump) to find.
 */
static void *json_block_alloc(size_t size)
{
	return malloc(size);
}

static void json_block_free(void *block)
{
	if (!block)
		return;
	sodium_memzero(block, malloc_usable_size(block));
	free(block);
}

void kmsd_json_wipe_on_free(void)
{
	json_set_alloc_funcs(json_block_alloc, json_block_free);
}
