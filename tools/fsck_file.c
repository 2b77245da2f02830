/*
 * fsck_file.c - checking one backing file for `kmsfs fsck`, in the order
 * a reader would trip over its problems:
 *   xattrs       user.kmsfs.* names kmsfs does not write
 *   size 0       an empty file (no header until its first write): fine
 *   header       "KMFS" magic (else a foreign file: not written by kmsfs),
 *                complete, a version and cipher this build reads, the volume's
 *   size         a whole number of stored blocks, or a last one holding data
 *   data key     user.kmsfs.dek present, well formed, opening for this file
 *   blocks       every one authenticates (--quick: a sample), holes are holes
 *
 * A data key that does not open for its file (InvalidCiphertextException)
 * was moved: its header or its xattr came from elsewhere. Phase 1
 * (fsck_file_identify) records every file's id and a hash of its xattr, so
 * the finding can name the file they came from, or say that the key
 * belongs to another volume's key.
 *
 * Nothing here writes to a file's contents. --repair may only remove an
 * xattr named user.kmsfs.* that is not the data key (a mount hides and
 * refuses those names, so no user put it there).
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fsck.h"

#define CHUNK_BLOCKS 64              /* stored blocks read and opened at once */

static const uint8_t kmsfs_magic[4] = { 'K', 'M', 'F', 'S' };

/* One file being checked. */
struct check {
	struct fsck *f;
	struct fsck_file *file;
	int fd;
	uint64_t size;
	struct kmsfs_header hdr;
	size_t stored_len;           /* a full stored block */
	uint64_t nblocks;            /* stored blocks with data (a torn tail not counted) */
	uint64_t data_end;           /* backing offset where they end */
	struct kmsfs_filekey *fk;
	unsigned problems;
	uint64_t bad_blocks, blocks_checked;
	uint64_t progress_bytes;     /* backing bytes counted for progress so far */
	uint8_t *stored, *plain;     /* CHUNK_BLOCKS of each, or fewer for a small file */
	size_t chunk_blocks;
};

static void problem(struct check *c, const char *event, int64_t block, enum kc_status status,
		    int repaired, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void problem(struct check *c, const char *event, int64_t block, enum kc_status status,
		    int repaired, const char *fmt, ...)
{
	struct fsck_finding fd = { .path = c->file->path, .event = event, .block = block,
				   .status = status, .repaired = repaired };
	char text[900];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (!repaired)
		c->problems++;
	fsck_report(c->f, &fd, "%s", text);
}

/* The key service could not be asked: not the volume's fault, and every other file waits too. */
static void cannot_check(struct check *c, const char *event, enum kc_status status,
			 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void cannot_check(struct check *c, const char *event, enum kc_status status,
			 const char *fmt, ...)
{
	struct fsck_finding fd = { .path = c->file->path, .event = event, .block = -1,
				   .status = status, .operational = 1 };
	char text[900];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	c->problems++;
	fsck_report(c->f, &fd, "%s", text);
}

static int open_backing(struct fsck *f, const char *path)
{
	int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
	int fd = openat(f->rootfd, path, flags | O_NOATIME);

	/* O_NOATIME is for the file's owner (or root) only. */
	if (fd < 0 && errno == EPERM)
		fd = openat(f->rootfd, path, flags);
	return fd;
}

/* ---- phase 1: who is who ------------------------------------------------------------------ */

void fsck_file_identify(struct fsck *f, struct fsck_file *file)
{
	uint8_t hdr_bytes[KMSFS_HEADER_LEN], *value = NULL;
	struct kmsfs_header hdr;
	ssize_t got;
	int fd = open_backing(f, file->path);

	if (fd < 0)
		return;
	got = pread(fd, hdr_bytes, sizeof(hdr_bytes), 0);
	if (got > 0 && kmsfs_header_decode(hdr_bytes, (size_t)got, &hdr) == 0) {
		memcpy(file->file_id, hdr.file_id, KMSFS_FILE_ID_LEN);
		file->has_id = 1;
	}
	value = malloc(KMSFS_DEK_XATTR_MAX);
	got = value ? fgetxattr(fd, KMSFS_DEK_XATTR, value, KMSFS_DEK_XATTR_MAX) : -1;
	if (got > 0) {
		crypto_generichash(file->dek_hash, sizeof(file->dek_hash), value, (size_t)got,
				   NULL, 0);
		file->has_dek = 1;
	}
	free(value);
	close(fd);
}

static struct fsck *sort_ctx;        /* qsort has no argument; indexing runs on one thread */

static int by_id_cmp(const void *a, const void *b)
{
	const struct fsck_file *x = &sort_ctx->files[*(const size_t *)a];
	const struct fsck_file *y = &sort_ctx->files[*(const size_t *)b];

	return memcmp(x->file_id, y->file_id, KMSFS_FILE_ID_LEN);
}

static int by_dek_cmp(const void *a, const void *b)
{
	const struct fsck_file *x = &sort_ctx->files[*(const size_t *)a];
	const struct fsck_file *y = &sort_ctx->files[*(const size_t *)b];

	return memcmp(x->dek_hash, y->dek_hash, sizeof(x->dek_hash));
}

int fsck_index_files(struct fsck *f)
{
	size_t n = f->file_count ? f->file_count : 1;

	f->by_id = malloc(n * sizeof(size_t));
	f->by_dek = malloc(n * sizeof(size_t));
	if (!f->by_id || !f->by_dek)
		return -ENOMEM;
	f->by_id_count = f->by_dek_count = 0;
	for (size_t i = 0; i < f->file_count; i++) {
		if (f->files[i].has_id)
			f->by_id[f->by_id_count++] = i;
		if (f->files[i].has_dek)
			f->by_dek[f->by_dek_count++] = i;
	}
	sort_ctx = f;
	qsort(f->by_id, f->by_id_count, sizeof(size_t), by_id_cmp);
	qsort(f->by_dek, f->by_dek_count, sizeof(size_t), by_dek_cmp);
	sort_ctx = NULL;
	return 0;
}

/* Another file whose key (field at offset off, len bytes) equals self's; NULL if none. */
static const struct fsck_file *other_with(const struct fsck *f, const size_t *index, size_t count,
					  const struct fsck_file *self, size_t off, size_t len)
{
	const uint8_t *want = (const uint8_t *)self + off;
	size_t lo = 0, hi = count;

	while (lo < hi) {                /* first entry >= want */
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp((const uint8_t *)&f->files[index[mid]] + off, want, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < count; lo++) {
		const struct fsck_file *other = &f->files[index[lo]];

		if (memcmp((const uint8_t *)other + off, want, len) != 0)
			break;
		if (other != self)
			return other;
	}
	return NULL;
}

static const struct fsck_file *other_with_id(const struct fsck *f, const struct fsck_file *self)
{
	return other_with(f, f->by_id, f->by_id_count, self,
			  offsetof(struct fsck_file, file_id), KMSFS_FILE_ID_LEN);
}

static const struct fsck_file *other_with_dek(const struct fsck *f, const struct fsck_file *self)
{
	if (!self->has_dek)
		return NULL;
	return other_with(f, f->by_dek, f->by_dek_count, self,
			  offsetof(struct fsck_file, dek_hash), sizeof(self->dek_hash));
}

/* ---- xattrs -------------------------------------------------------------------------------- */

static void check_xattrs(struct check *c)
{
	char names[8192];
	ssize_t len = flistxattr(c->fd, names, sizeof(names));
	size_t prefix = strlen(KMSFS_XATTR_PREFIX);

	if (len < 0)
		return;              /* ERANGE: a huge list; the data key is read on its own */
	for (char *name = names; name < names + len; name += strlen(name) + 1) {
		if (strncmp(name, KMSFS_XATTR_PREFIX, prefix) || !strcmp(name, KMSFS_DEK_XATTR))
			continue;
		if (!c->f->opts.repair)
			problem(c, "UnknownXattr", -1, KC_VALIDATION, 0, "unknown kmsfs xattr %s "
				"(kmsfs fsck --repair removes it)", name);
		else if (c->f->op_in_progress)
			problem(c, "UnknownXattr", -1, KC_VALIDATION, 0, "unknown kmsfs xattr %s "
				"(kept: an interrupted snapshot copy or rekey may own it)", name);
		else if (fremovexattr(c->fd, name) < 0)
			problem(c, "UnknownXattr", -1, KC_VALIDATION, 0, "unknown kmsfs xattr %s "
				"(cannot remove: %s)", name, strerror(errno));
		else
			problem(c, "UnknownXattr", -1, KC_VALIDATION, 1, "unknown kmsfs xattr %s "
				"(removed)", name);
	}
}

/* ---- header and size ----------------------------------------------------------------------- */

static uint32_t be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* 0 when the header is one this volume's files have; else reported, -1. */
static int check_header(struct check *c)
{
	const struct kmsfs_volume *vol = &c->f->vol;
	uint8_t b[KMSFS_HEADER_LEN];
	ssize_t got = pread(c->fd, b, sizeof(b), 0);
	size_t magic_len;

	if (got < 0) {
		problem(c, "ReadError", -1, KC_VALIDATION, 0, "cannot read the header: %s",
			strerror(errno));
		return -1;
	}
	magic_len = (size_t)got < sizeof(kmsfs_magic) ? (size_t)got : sizeof(kmsfs_magic);
	if (memcmp(b, kmsfs_magic, magic_len) != 0) {
		problem(c, "ForeignFile", -1, KC_INVALID_CIPHERTEXT, 0, "foreign file: no kmsfs "
			"header, so not written by kmsfs (put into the cipher directory "
			"directly?); a mount cannot read it");
		return -1;
	}
	if ((size_t)got < sizeof(b)) {
		problem(c, "HeaderTruncated", -1, KC_INVALID_CIPHERTEXT, 0, "truncated header "
			"(%zd of %d bytes)", got, KMSFS_HEADER_LEN);
		return -1;
	}
	if (kmsfs_header_decode(b, sizeof(b), &c->hdr) < 0) {
		problem(c, "UnsupportedHeader", -1, KC_INVALID_CIPHERTEXT, 0, "unsupported header "
			"(version %u, cipher %u, block size %u, reserved %u: this kmsfs reads "
			"version %d, ciphers 1 and 2, block size %d, reserved 0)",
			(unsigned)(b[4] << 8 | b[5]), (unsigned)(b[6] << 8 | b[7]), be32(b + 8),
			be32(b + 12), KMSFS_FORMAT_VERSION, KMSFS_BLOCK_SIZE);
		return -1;
	}
	if (c->hdr.cipher != vol->cipher || c->hdr.block_size != vol->block_size) {
		problem(c, "UnsupportedHeader", -1, KC_INVALID_CIPHERTEXT, 0, "header says %s with "
			"%u-byte blocks, the volume uses %s with %u-byte blocks (a file from "
			"another volume?)", kmsfs_cipher_name(c->hdr.cipher), c->hdr.block_size,
			kmsfs_cipher_name(vol->cipher), vol->block_size);
		return -1;
	}
	return 0;
}

/* Sets nblocks and data_end; a torn last block is reported and left out. */
static void check_size(struct check *c)
{
	size_t overhead = kmsfs_block_overhead(c->hdr.cipher);
	uint64_t data = c->size - KMSFS_HEADER_LEN;
	uint64_t full = data / c->stored_len, tail = data % c->stored_len;

	c->nblocks = full;
	c->data_end = KMSFS_HEADER_LEN + full * c->stored_len;
	if (tail > overhead) {
		c->nblocks++;
		c->data_end = c->size;
	} else if (tail) {
		problem(c, "BlockTruncated", (int64_t)full, KC_INVALID_CIPHERTEXT, 0,
			"truncated: %llu stored bytes, a block needs at least %zu (nonce, tag and "
			"data; a torn write?)", (unsigned long long)tail, overhead + 1);
	}
}

/* ---- the data key -------------------------------------------------------------------------- */

/* The key ARN a user.kmsfs.dek value names (both versions start u8 version | u8 len | ARN). */
static void value_arn(const uint8_t *value, size_t len, char *arn, size_t arn_len)
{
	size_t n = len >= 2 ? value[1] : 0;

	arn[0] = '\0';
	if (len < 2 + n || n == 0 || n >= arn_len)
		return;
	memcpy(arn, value + 2, n);
	arn[n] = '\0';
}

/* Why a well-formed data key does not open here: where its header or xattr came from. */
static void not_bound(struct check *c, const uint8_t *value, size_t len,
		      const struct kc_error *err)
{
	const struct fsck_file *same_id = other_with_id(c->f, c->file);
	const struct fsck_file *same_dek = other_with_dek(c->f, c->file);
	char arn[KC_ARN_MAX];

	value_arn(value, len, arn, sizeof(arn));
	if (same_id && same_dek && same_id != same_dek)
		problem(c, "DataKeyNotBound", -1, err->status, 0, "data key does not open for this "
			"file (%s): its header is a copy of %s's and its user.kmsfs.dek a copy of "
			"%s's", err->type, same_id->path, same_dek->path);
	else if (same_id)
		problem(c, "DataKeyNotBound", -1, err->status, 0, "data key does not open for this "
			"file (%s): its header is a copy of %s's (same file id): a header moved "
			"between files", err->type, same_id->path);
	else if (same_dek)
		problem(c, "DataKeyNotBound", -1, err->status, 0, "data key does not open for this "
			"file (%s): its user.kmsfs.dek is a copy of %s's: an xattr moved between "
			"files", err->type, same_dek->path);
	else if (arn[0] && strcmp(arn, c->f->vol.key_id) != 0)
		problem(c, "DataKeyNotBound", -1, err->status, 0, "data key does not open for this "
			"file (%s): wrapped under key %s, not this volume's key %s: a file from "
			"another volume (copy files between volumes with kmsfs snapshot copy or "
			"through both mounts)", err->type, arn, c->f->vol.key_id);
	else
		problem(c, "DataKeyNotBound", -1, err->status, 0, "data key does not open for this "
			"file (%s): its header and user.kmsfs.dek match no other file here, so it "
			"was copied in from another volume (or its xattr was damaged)", err->type);
}

/* The user.kmsfs.dek value (value holds KMSFS_DEK_XATTR_MAX), or the problem reported and -1. */
static ssize_t read_dek_value(struct check *c, uint8_t *value)
{
	ssize_t len = fgetxattr(c->fd, KMSFS_DEK_XATTR, value, KMSFS_DEK_XATTR_MAX);

	if (len < 0 && errno == ENODATA) {
		problem(c, "MissingDataKey", -1, KC_INVALID_CIPHERTEXT, 0, "no user.kmsfs.dek "
			"xattr: its data key is lost and it cannot be decrypted (copied without "
			"xattrs? use cp -a, rsync -X or kmsfs snapshot copy)");
		return -1;
	}
	if (len <= 0) {
		problem(c, "MalformedDataKey", -1, KC_VALIDATION, 0, "user.kmsfs.dek %s",
			len == 0 ? "is empty" : errno == ERANGE ? "is too large" : strerror(errno));
		return -1;
	}
	return len;
}

/*
 * 0 with c->fk set, or -1: the problem reported, or (no keyring) the
 * value is there but cannot be opened.
 */
static int open_key(struct check *c)
{
	uint8_t *value = malloc(KMSFS_DEK_XATTR_MAX);
	struct kc_error err = { 0 };
	ssize_t len;
	int ret = -1, error;

	if (!value) {
		cannot_check(c, "DataKeyNotChecked", KC_INTERNAL, "out of memory");
		goto out;
	}
	len = read_dek_value(c, value);
	if (len < 0 || !c->f->kr)
		goto out;
	c->fk = kmsfs_keyring_filekey(c->f->kr, &c->hdr, c->file->path, value, (size_t)len,
				      &error, &err);
	if (c->fk) {
		ret = 0;
		goto out;
	}
	if (error == -ENOMEM)
		cannot_check(c, "DataKeyNotChecked", KC_INTERNAL, "out of secure memory");
	else if (err.status == KC_INVALID_CIPHERTEXT || err.status == KC_INCORRECT_KEY)
		not_bound(c, value, (size_t)len, &err);
	else if (err.status == KC_VALIDATION)
		problem(c, "MalformedDataKey", -1, err.status, 0, "user.kmsfs.dek is malformed: %s",
			err.message);
	else if (kmsfs_errno_for_status(err.status) == -EACCES)
		problem(c, "DataKeyNotChecked", -1, err.status, 0, "cannot check: the key service "
			"refused the data key: %s (%s)", err.message, err.type);
	else {
		cannot_check(c, "DataKeyNotChecked", err.status, "cannot check: key service "
			     "unavailable: %s (%s)", err.message, err.type[0] ? err.type : "error");
		__atomic_store_n(&c->f->abort, 1, __ATOMIC_RELAXED);
	}
out:
	free(value);
	return ret;
}

/* ---- blocks -------------------------------------------------------------------------------- */

static void bad_block(struct check *c, uint64_t index)
{
	if (++c->bad_blocks <= FSCK_BAD_BLOCKS_LISTED)
		problem(c, "BlockAuthenticationFailure", (int64_t)index, KC_INVALID_CIPHERTEXT, 0,
			"authentication failed");
}

/* Read and open stored blocks [first, first + count). -1 on a read error (reported). */
static int check_run(struct check *c, uint64_t first, size_t count)
{
	uint64_t off = kmsfs_block_offset(first, c->hdr.cipher), bad = 0;
	size_t want = count * c->stored_len, got = 0;

	if (off + want > c->data_end)
		want = (size_t)(c->data_end - off);
	while (got < want) {
		ssize_t n = pread(c->fd, c->stored + got, want - got, (off_t)(off + got));

		if (n <= 0) {
			problem(c, "ReadError", (int64_t)first, KC_VALIDATION, 0, "cannot read: %s",
				n < 0 ? strerror(errno) : "file shrank while being checked");
			return -1;
		}
		got += (size_t)n;
	}
	if (kmsfs_blocks_open(c->fk, first, c->stored, want, c->plain, &bad) < 0) {
		/* Something is wrong in this run: open block by block to name every bad one. */
		for (size_t i = 0; i < count; i++) {
			size_t at = i * c->stored_len;
			size_t len = want - at < c->stored_len ? want - at : c->stored_len;

			if (kmsfs_blocks_open(c->fk, first + i, c->stored + at, len, c->plain,
					      &bad) < 0)
				bad_block(c, first + i);
		}
	}
	c->blocks_checked += count;
	c->progress_bytes += want;
	fsck_add_blocks(c->f, count);
	fsck_add_bytes(c->f, want);
	return 0;
}

static int check_range(struct check *c, uint64_t first, uint64_t end)
{
	while (first < end && !__atomic_load_n(&c->f->abort, __ATOMIC_RELAXED)) {
		size_t count = end - first < c->chunk_blocks ? (size_t)(end - first) :
							       c->chunk_blocks;

		if (check_run(c, first, count) < 0)
			return -1;
		first += count;
	}
	return 0;
}

/* Every block with data; the regions SEEK_DATA skips are holes, which read as zeros. */
static void check_all_blocks(struct check *c)
{
	uint64_t pos = 0, next_block = 0;

	while (pos < c->data_end) {
		off_t data = lseek(c->fd, (off_t)pos, SEEK_DATA), hole;
		uint64_t first, end;

		if (data < 0 && errno == ENXIO)
			break;
		if (data < 0) {      /* no SEEK_DATA here: read it all */
			data = (off_t)pos;
			hole = (off_t)c->data_end;
		} else {
			hole = lseek(c->fd, data, SEEK_HOLE);
			if (hole < 0 || (uint64_t)hole > c->data_end)
				hole = (off_t)c->data_end;
		}
		pos = (uint64_t)hole;
		if ((uint64_t)hole <= KMSFS_HEADER_LEN)
			continue;
		first = (uint64_t)data < KMSFS_HEADER_LEN ? 0 :
			((uint64_t)data - KMSFS_HEADER_LEN) / c->stored_len;
		end = ((uint64_t)hole - 1 - KMSFS_HEADER_LEN) / c->stored_len + 1;
		if (first < next_block)
			first = next_block;
		if (end > c->nblocks)
			end = c->nblocks;
		if (first < end && check_range(c, first, end) < 0)
			return;
		if (end > next_block)
			next_block = end;
	}
}

/* --quick: the first block, the last, and the rest of FSCK_QUICK_BLOCKS spread between. */
static void check_sample(struct check *c)
{
	uint64_t last = c->nblocks - 1, prev = UINT64_MAX;

	for (uint64_t i = 0; i < FSCK_QUICK_BLOCKS; i++) {
		uint64_t block = last * i / (FSCK_QUICK_BLOCKS - 1);

		if (block == prev)
			continue;
		prev = block;
		if (check_run(c, block, 1) < 0)
			return;
	}
}

static void check_blocks(struct check *c)
{
	c->chunk_blocks = c->nblocks < CHUNK_BLOCKS ? (size_t)c->nblocks : CHUNK_BLOCKS;
	if (c->chunk_blocks == 0)
		return;
	c->stored = malloc(c->chunk_blocks * c->stored_len);
	c->plain = malloc(c->chunk_blocks * KMSFS_BLOCK_SIZE);
	if (!c->stored || !c->plain) {
		cannot_check(c, "BlocksNotChecked", KC_INTERNAL, "cannot check blocks: out of "
			     "memory");
		goto out;
	}
	if (c->f->opts.quick)
		check_sample(c);
	else
		check_all_blocks(c);
	if (c->bad_blocks > FSCK_BAD_BLOCKS_LISTED)
		problem(c, "BlockAuthenticationFailure", -1, KC_INVALID_CIPHERTEXT, 0,
			"%llu more blocks failed authentication (%llu in all)",
			(unsigned long long)(c->bad_blocks - FSCK_BAD_BLOCKS_LISTED),
			(unsigned long long)c->bad_blocks);
out:
	if (c->plain)
		kmsfs_wipe(c->plain, c->chunk_blocks * KMSFS_BLOCK_SIZE);
	free(c->plain);
	free(c->stored);
	c->plain = c->stored = NULL;
}

/* ---- one file ------------------------------------------------------------------------------ */

static void check_contents(struct check *c)
{
	if (c->size == 0)
		return;              /* an empty file: its header comes with the first write */
	if (check_header(c) < 0)
		return;
	c->stored_len = kmsfs_stored_block_len(c->hdr.cipher);
	check_size(c);
	/* Without a keyring (the key refused) only the xattr's presence is checked. */
	if (open_key(c) < 0)
		return;
	c->file->key_ok = 1;
	check_blocks(c);
}

void fsck_check_file(struct fsck *f, struct fsck_file *file)
{
	struct check c = { .f = f, .file = file };
	uint64_t plain;
	struct stat st;

	c.fd = open_backing(f, file->path);
	if (c.fd < 0) {
		if (errno != ENOENT)         /* deleted since the walk: nothing to check */
			problem(&c, "ReadError", -1, KC_VALIDATION, 0, "cannot open: %s",
				strerror(errno));
		return;
	}
	if (fstat(c.fd, &st) < 0 || !S_ISREG(st.st_mode))
		goto out;
	c.size = (uint64_t)st.st_size;
	check_xattrs(&c);
	check_contents(&c);
	plain = kmsfs_plain_size(c.size, c.hdr.cipher ? c.hdr.cipher : f->vol.cipher);
	__atomic_add_fetch(&f->files_done, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&f->plain_bytes, plain, __ATOMIC_RELAXED);
	/* The header and holes were not read: count them now, so progress ends at the total. */
	if (c.size > c.progress_bytes)
		fsck_add_bytes(f, c.size - c.progress_bytes);
	if (c.problems)
		fsck_verbose(f, file->path, "checked: %u problem%s", c.problems,
			     c.problems == 1 ? "" : "s");
	else
		fsck_verbose(f, file->path, "ok (%llu bytes, %llu block%s checked)",
			     (unsigned long long)plain, (unsigned long long)c.blocks_checked,
			     c.blocks_checked == 1 ? "" : "s");
out:
	kmsfs_filekey_free(c.fk);
	close(c.fd);
}

/* ---- after every file ---------------------------------------------------------------------- */

void fsck_check_duplicates(struct fsck *f)
{
	for (size_t i = 0; i + 1 < f->by_id_count; i++) {
		struct fsck_file *a = &f->files[f->by_id[i]], *b = &f->files[f->by_id[i + 1]];
		struct fsck_finding fd = { .path = b->path, .event = "DuplicateFileId",
					   .block = -1, .status = KC_INVALID_CIPHERTEXT };

		if (memcmp(a->file_id, b->file_id, KMSFS_FILE_ID_LEN) || !a->key_ok || !b->key_ok)
			continue;
		fsck_report(f, &fd, "same file id and data key as %s: a copy made in the cipher "
			    "directory, not through a mount (blocks could be swapped between the "
			    "two unnoticed; copy it through the mount instead)", a->path);
	}
}
