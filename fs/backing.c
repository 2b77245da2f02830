/*
 * backing.c - whole backing files, block by block, without a mount: the
 * ciphertext copy, re-encryption and plaintext hash behind kmsfs snapshot
 * copy, rekey --reencrypt and fsck.
 *
 * Holes matter here as much as bytes (a 10 GiB sparse disk image must stay
 * sparse), so every loop walks the data regions SEEK_DATA/SEEK_HOLE report
 * and never writes an all-zero stored block - which is how format 1 spells
 * a hole (DESIGN section 3). The destination is sized with ftruncate
 * first, so whatever is not written reads as a hole. Filesystems without
 * SEEK_DATA report one data region, and the all-zero test still keeps
 * their holes.
 *
 * Work goes in runs of RUN_BLOCKS blocks: one pread and as few pwrites as
 * the holes allow per run.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs_internal.h"

#define RUN_BLOCKS 256                         /* 1 MiB of plaintext per run */
#define COPY_CHUNK (1u << 20)

static int all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return 0;
	return 1;
}

static void progress_add(uint64_t *bytes, uint64_t n)
{
	if (bytes && n)
		__atomic_fetch_add(bytes, n, __ATOMIC_RELAXED);
}

static int pread_full(int fd, uint8_t *buf, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t got = pread(fd, buf, len, off);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			return -EIO;           /* shrank under us */
		buf += got;
		len -= (size_t)got;
		off += got;
	}
	return 0;
}

static int pwrite_full(int fd, const uint8_t *buf, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t put = pwrite(fd, buf, len, off);

		if (put < 0 && errno == EINTR)
			continue;
		if (put < 0)
			return -errno;
		buf += put;
		len -= (size_t)put;
		off += put;
	}
	return 0;
}

/*
 * The next data region at or after off, as [*data, *hole). 0, 1 when there
 * is none before size, or -errno.
 */
static int next_data(int fd, off_t off, off_t size, off_t *data, off_t *hole)
{
	off_t d = lseek(fd, off, SEEK_DATA), h;

	if (d < 0 && errno == ENXIO)
		return 1;
	if (d < 0 && errno != EINVAL && errno != EOPNOTSUPP)
		return -errno;
	if (d < 0)
		d = off;                       /* no SEEK_DATA: all data */
	if (d >= size)
		return 1;
	h = lseek(fd, d, SEEK_HOLE);
	*data = d;
	*hole = h < 0 || h > size ? size : h;
	return 0;
}

/* Write the non-zero 4 KiB pieces of buf, in as few pwrites as they allow. */
static int write_sparse(int fd, const uint8_t *buf, size_t len, off_t off)
{
	size_t start = 0, pos = 0;
	int ret;

	while (pos < len) {
		size_t piece = len - pos < 4096 ? len - pos : 4096;

		if (all_zero(buf + pos, piece)) {
			if (pos > start && (ret = pwrite_full(fd, buf + start, pos - start,
							      off + (off_t)start)) < 0)
				return ret;
			start = pos + piece;
		}
		pos += piece;
	}
	if (pos > start)
		return pwrite_full(fd, buf + start, pos - start, off + (off_t)start);
	return 0;
}

int kmsfs_backing_copy(int src_fd, int dst_fd, uint64_t *bytes)
{
	struct stat st;
	uint8_t *buf = NULL;
	off_t off = 0, data = 0, hole = 0;
	uint64_t plain_total, reported = 0;
	enum kmsfs_cipher cipher = KMSFS_CIPHER_AES_256_GCM;
	uint8_t hdr_bytes[KMSFS_HEADER_LEN];
	struct kmsfs_header hdr;
	int ret;

	if (fstat(src_fd, &st) < 0)
		return -errno;
	if (ftruncate(dst_fd, st.st_size) < 0)
		return -errno;
	/* Progress counts plaintext bytes, as the other two do; the header says how. */
	if (st.st_size >= KMSFS_HEADER_LEN &&
	    pread_full(src_fd, hdr_bytes, sizeof(hdr_bytes), 0) == 0 &&
	    kmsfs_header_decode(hdr_bytes, sizeof(hdr_bytes), &hdr) == 0)
		cipher = hdr.cipher;
	plain_total = kmsfs_plain_size((uint64_t)st.st_size, cipher);
	buf = malloc(COPY_CHUNK);
	if (!buf)
		return -ENOMEM;
	while ((ret = next_data(src_fd, off, st.st_size, &data, &hole)) == 0) {
		for (off = data; off < hole; ) {
			size_t n = (size_t)(hole - off) < COPY_CHUNK ? (size_t)(hole - off) :
				   COPY_CHUNK;
			uint64_t done;

			if ((ret = pread_full(src_fd, buf, n, off)) < 0 ||
			    (ret = write_sparse(dst_fd, buf, n, off)) < 0)
				goto out;
			off += (off_t)n;
			done = kmsfs_plain_size((uint64_t)off, cipher);
			if (done > reported) {
				progress_add(bytes, done - reported);
				reported = done;
			}
		}
	}
	if (ret > 0)
		ret = 0;
	if (ret == 0 && plain_total > reported)
		progress_add(bytes, plain_total - reported);
out:
	free(buf);
	return ret;
}

/*
 * One run of blocks [first, first + count) of a backing file: its stored
 * bytes in stored (stored_len of them), which blocks are holes in is_hole.
 * 1 when the whole run lies in a hole (nothing read), 0, or -errno.
 */
struct block_run {
	uint64_t first;
	size_t count;
	size_t plain_len;
	size_t stored_len;
	uint8_t is_hole[RUN_BLOCKS];
};

static void run_layout(struct block_run *run, uint64_t first, uint64_t plain_size,
		       enum kmsfs_cipher cipher)
{
	uint64_t left = plain_size - first * KMSFS_BLOCK_SIZE;
	uint64_t max = (uint64_t)RUN_BLOCKS * KMSFS_BLOCK_SIZE;

	run->first = first;
	run->plain_len = (size_t)(left < max ? left : max);
	run->count = (run->plain_len + KMSFS_BLOCK_SIZE - 1) / KMSFS_BLOCK_SIZE;
	run->stored_len = run->plain_len + run->count * kmsfs_block_overhead(cipher);
}

static int run_read(int fd, struct block_run *run, enum kmsfs_cipher cipher, uint8_t *stored)
{
	off_t start = (off_t)kmsfs_block_offset(run->first, cipher);
	off_t data = lseek(fd, start, SEEK_DATA);
	size_t stored_block = kmsfs_stored_block_len(cipher);
	int ret;

	if ((data < 0 && errno == ENXIO) ||
	    (data >= 0 && data >= start + (off_t)run->stored_len))
		return 1;
	ret = pread_full(fd, stored, run->stored_len, start);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < run->count; i++) {
		size_t len = i + 1 < run->count ? stored_block :
			     run->stored_len - i * stored_block;

		run->is_hole[i] = all_zero(stored + i * stored_block, len);
	}
	return 0;
}

/* Seal and write the non-hole blocks of a decrypted run under fk, in contiguous pieces. */
static int run_write(int fd, const struct kmsfs_filekey *fk, const struct block_run *run,
		     const uint8_t *plain, uint8_t *sealed)
{
	enum kmsfs_cipher cipher = kmsfs_filekey_header(fk)->cipher;
	size_t i = 0;

	while (i < run->count) {
		size_t j = i, len;
		ssize_t n;
		int ret;

		if (run->is_hole[i]) {
			i++;
			continue;
		}
		while (j < run->count && !run->is_hole[j])
			j++;
		len = (j == run->count ? run->plain_len : j * KMSFS_BLOCK_SIZE) -
		      i * KMSFS_BLOCK_SIZE;
		n = kmsfs_blocks_seal(fk, run->first + i, plain + i * KMSFS_BLOCK_SIZE, len, sealed);
		if (n < 0)
			return (int)n;
		ret = pwrite_full(fd, sealed, (size_t)n,
				  (off_t)kmsfs_block_offset(run->first + i, cipher));
		if (ret < 0)
			return ret;
		i = j;
	}
	return 0;
}

/* Buffers for one run: stored in, plaintext, stored out. */
struct run_buffers {
	uint8_t *stored, *plain, *sealed;
};

static int buffers_new(struct run_buffers *b)
{
	size_t stored_max = (size_t)RUN_BLOCKS * (KMSFS_BLOCK_SIZE + 64);

	b->stored = malloc(stored_max);
	b->plain = malloc((size_t)RUN_BLOCKS * KMSFS_BLOCK_SIZE);
	b->sealed = malloc(stored_max);
	return b->stored && b->plain && b->sealed ? 0 : -ENOMEM;
}

static void buffers_free(struct run_buffers *b)
{
	if (b->plain)
		kmsfs_wipe(b->plain, (size_t)RUN_BLOCKS * KMSFS_BLOCK_SIZE);
	free(b->stored);
	free(b->plain);
	free(b->sealed);
}

static int file_plain_size(int fd, enum kmsfs_cipher cipher, uint64_t *plain_size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	*plain_size = kmsfs_plain_size((uint64_t)st.st_size, cipher);
	return 0;
}

int kmsfs_backing_reencrypt(int src_fd, const struct kmsfs_filekey *src_fk, int dst_fd,
			    const struct kmsfs_filekey *dst_fk, uint64_t *bad_block,
			    uint64_t *bytes)
{
	enum kmsfs_cipher src_cipher = kmsfs_filekey_header(src_fk)->cipher;
	enum kmsfs_cipher dst_cipher = kmsfs_filekey_header(dst_fk)->cipher;
	uint8_t hdr_bytes[KMSFS_HEADER_LEN];
	struct run_buffers b = { 0 };
	struct block_run run;
	uint64_t plain_size = 0;
	int ret;

	ret = file_plain_size(src_fd, src_cipher, &plain_size);
	if (ret < 0)
		return ret;
	kmsfs_header_encode(kmsfs_filekey_header(dst_fk), hdr_bytes);
	if (ftruncate(dst_fd, (off_t)kmsfs_backing_size(plain_size, dst_cipher)) < 0)
		return -errno;
	ret = pwrite_full(dst_fd, hdr_bytes, sizeof(hdr_bytes), 0);
	if (ret < 0 || (ret = buffers_new(&b)) < 0)
		goto out;
	for (uint64_t first = 0; first * KMSFS_BLOCK_SIZE < plain_size; first += run.count) {
		run_layout(&run, first, plain_size, src_cipher);
		ret = run_read(src_fd, &run, src_cipher, b.stored);
		if (ret < 0)
			goto out;
		if (ret == 0) {
			ssize_t n = kmsfs_blocks_open(src_fk, first, b.stored, run.stored_len,
						      b.plain, bad_block);

			if (n < 0) {
				ret = (int)n;
				goto out;
			}
			ret = run_write(dst_fd, dst_fk, &run, b.plain, b.sealed);
			if (ret < 0)
				goto out;
		}
		progress_add(bytes, run.plain_len);
	}
	ret = 0;
out:
	buffers_free(&b);
	return ret;
}

int kmsfs_backing_hash(int fd, const struct kmsfs_filekey *fk, uint8_t out[32],
		       uint64_t *bad_block, uint64_t *bytes)
{
	enum kmsfs_cipher cipher = kmsfs_filekey_header(fk)->cipher;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	struct run_buffers b = { 0 };
	struct block_run run;
	uint64_t plain_size = 0;
	int ret;

	if (!md)
		return -ENOMEM;
	ret = file_plain_size(fd, cipher, &plain_size);
	if (ret < 0 || (ret = buffers_new(&b)) < 0)
		goto out;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		ret = -EIO;
		goto out;
	}
	for (uint64_t first = 0; first * KMSFS_BLOCK_SIZE < plain_size; first += run.count) {
		run_layout(&run, first, plain_size, cipher);
		ret = run_read(fd, &run, cipher, b.stored);
		if (ret < 0)
			goto out;
		if (ret == 1) {
			memset(b.plain, 0, run.plain_len);   /* a hole reads as zeros */
		} else {
			ssize_t n = kmsfs_blocks_open(fk, first, b.stored, run.stored_len, b.plain,
						      bad_block);

			if (n < 0) {
				ret = (int)n;
				goto out;
			}
		}
		EVP_DigestUpdate(md, b.plain, run.plain_len);
		progress_add(bytes, run.plain_len);
	}
	ret = EVP_DigestFinal_ex(md, out, NULL) == 1 ? 0 : -EIO;
out:
	EVP_MD_CTX_free(md);
	buffers_free(&b);
	return ret;
}
