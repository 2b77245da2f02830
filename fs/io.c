/*
 * io.c - file contents as runs of sealed blocks.
 *
 * The kernel speaks in plaintext offsets; the backing file holds a 32-byte
 * header and then one stored block (nonce | ciphertext | tag) per 4096
 * plaintext bytes. Everything here is arithmetic between the two plus the
 * rules that keep a file consistent:
 *   - a partial-block write is read-modify-write under the inode's I/O lock;
 *   - extending a file first re-seals the old short last block to its new
 *     length, and leaves the gap as zeros in the backing file (= holes);
 *   - a block that fails authentication is never returned or overwritten:
 *     EIO, and an audit record naming the file and block;
 *   - one pread or pwrite per request, not per block (DESIGN section 8).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs_internal.h"

#define BS ((uint64_t)KMSFS_BLOCK_SIZE)

/* ---- per-thread scratch buffers ------------------------------------------ */

struct scratch {
	uint8_t *plain;
	size_t plain_cap;
	uint8_t *stored;
	size_t stored_cap;
	uint8_t *reply;              /* what a read hands back to the kernel */
	size_t reply_cap;
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_destroy(void *arg)
{
	struct scratch *s = arg;

	free(s->plain);
	free(s->stored);
	free(s->reply);
	free(s);
}

static void scratch_key_init(void)
{
	pthread_key_create(&scratch_key, scratch_destroy);
}

static int grow(uint8_t **buf, size_t *cap, size_t want)
{
	uint8_t *bigger;

	if (*cap >= want)
		return 0;
	bigger = realloc(*buf, want);
	if (!bigger)
		return -ENOMEM;
	*buf = bigger;
	*cap = want;
	return 0;
}

static struct scratch *scratch_self(void)
{
	struct scratch *s;

	pthread_once(&scratch_once, scratch_key_init);
	s = pthread_getspecific(scratch_key);
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s || pthread_setspecific(scratch_key, s) != 0) {
			free(s);
			return NULL;
		}
	}
	return s;
}

/* A buffer for a read reply of size bytes, reused by this thread (freed at its exit). */
char *kfs_read_buffer(size_t size)
{
	struct scratch *s = scratch_self();

	if (!s || grow(&s->reply, &s->reply_cap, size) < 0)
		return NULL;
	return (char *)s->reply;
}

/* Buffers for nblocks blocks, reused by this thread across requests. */
static struct scratch *scratch_get(uint64_t nblocks)
{
	struct scratch *s;

	s = scratch_self();
	if (!s)
		return NULL;
	if (grow(&s->plain, &s->plain_cap, nblocks * BS) < 0 ||
	    grow(&s->stored, &s->stored_cap,
		 nblocks * kmsfs_stored_block_len(kfs->vol.cipher)) < 0)
		return NULL;
	return s;
}

/* ---- sizes ---------------------------------------------------------------- */

uint64_t kfs_plain_size_of(const struct stat *st)
{
	return kmsfs_plain_size((uint64_t)st->st_size, kfs->vol.cipher);
}

static int plain_size_fd(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	*size = kfs_plain_size_of(&st);
	return 0;
}

static uint64_t block_off(uint64_t block)
{
	return kmsfs_block_offset(block, kfs->vol.cipher);
}

static uint64_t blocks_in(uint64_t plain_size)
{
	return (plain_size + BS - 1) / BS;
}

/* ---- block helpers --------------------------------------------------------- */

static int report_bad_block(struct kfs_file *f, uint64_t block)
{
	kfs_audit_integrity(f->path, "BlockAuthenticationFailure", (int64_t)block,
			    "block failed authentication (modified, moved or truncated)");
	return -EIO;
}

/*
 * Decrypt block `block` into out and pad with zeros to `want` bytes.
 * Past the end of the backing file the block reads as zeros.
 */
static int load_block(struct kfs_file *f, uint64_t block, uint8_t *out, size_t want)
{
	size_t stored_len = kmsfs_stored_block_len(kfs->vol.cipher);
	uint8_t stored[KMSFS_BLOCK_SIZE + 64];
	uint8_t plain[KMSFS_BLOCK_SIZE];
	ssize_t got, plain_len = 0;
	uint64_t bad;

	got = pread(f->fd, stored, stored_len, (off_t)block_off(block));
	if (got < 0)
		return -errno;
	if (got > 0) {
		plain_len = kmsfs_blocks_open(f->node->fk, block, stored, (size_t)got, plain, &bad);
		if (plain_len < 0)
			return report_bad_block(f, bad);
	}
	if ((size_t)plain_len > want)
		plain_len = (ssize_t)want;
	memcpy(out, plain, (size_t)plain_len);
	memset(out + plain_len, 0, want - (size_t)plain_len);
	return 0;
}

/* Seal plain (a run starting at block `first`) and write it in one pwrite. */
static int store_blocks(struct kfs_file *f, uint64_t first, const uint8_t *plain,
			size_t plain_len, uint8_t *stored)
{
	ssize_t stored_len = kmsfs_blocks_seal(f->node->fk, first, plain, plain_len, stored);
	ssize_t put;

	if (stored_len < 0)
		return (int)stored_len;
	put = pwrite(f->fd, stored, (size_t)stored_len, (off_t)block_off(first));
	if (put < 0)
		return -errno;
	return put == stored_len ? 0 : -EIO;
}

/* Re-seal block `block` with a new plaintext length (zero padded or cut). */
static int reseal_block(struct kfs_file *f, uint64_t block, size_t new_len)
{
	uint8_t plain[KMSFS_BLOCK_SIZE];
	uint8_t stored[KMSFS_BLOCK_SIZE + 64];
	int ret = load_block(f, block, plain, new_len);

	if (ret < 0)
		return ret;
	return store_blocks(f, block, plain, new_len, stored);
}

/* The caller's key, set up now if the file is still keyless (empty). */
static int need_key(struct kfs_file *f)
{
	char principal[KFS_PRINCIPAL_MAX];
	struct kc_caller caller;

	if (f->node->fk)
		return 0;
	kfs_caller_current(&caller, principal);
	return kfs_key_ensure(f->node, f->fd, f->path, &caller, 1);
}

/* ---- read ---------------------------------------------------------------- */

ssize_t kfs_io_read(struct kfs_file *f, char *buf, size_t size, off_t off)
{
	size_t stored_block = kmsfs_stored_block_len(kfs->vol.cipher);
	uint64_t first, last, nblocks, skip, bad;
	struct scratch *s;
	uint8_t *plain;
	ssize_t got, plain_len, ret;

	if (size == 0 || !f->node->fk)
		return 0;
	first = (uint64_t)off / BS;
	last = ((uint64_t)off + size - 1) / BS;
	nblocks = last - first + 1;
	skip = (uint64_t)off - first * BS;
	s = scratch_get(nblocks);
	if (!s)
		return -ENOMEM;

	pthread_rwlock_rdlock(&f->node->io_lock);
	got = pread(f->fd, s->stored, nblocks * stored_block, (off_t)block_off(first));
	if (got <= 0) {
		ret = got < 0 ? -errno : 0;
		goto out;
	}
	/* Aligned whole-block reads decrypt straight into the kernel's buffer. */
	plain = (skip == 0 && size % BS == 0) ? (uint8_t *)buf : s->plain;
	plain_len = kmsfs_blocks_open(f->node->fk, first, s->stored, (size_t)got, plain, &bad);
	if (plain_len < 0) {
		ret = report_bad_block(f, bad);
		goto out;
	}
	if ((uint64_t)plain_len <= skip) {
		ret = 0;
		goto out;
	}
	ret = (ssize_t)((uint64_t)plain_len - skip < size ? (uint64_t)plain_len - skip : size);
	if (plain != (uint8_t *)buf)
		memcpy(buf, plain + skip, (size_t)ret);
out:
	pthread_rwlock_unlock(&f->node->io_lock);
	return ret;
}

/* ---- write --------------------------------------------------------------- */

/* Reserve backing space before touching anything, so ENOSPC loses nothing. */
static int reserve_space(struct kfs_file *f, uint64_t from_block, uint64_t new_size)
{
	uint64_t start = block_off(from_block);
	uint64_t end = kmsfs_backing_size(new_size, kfs->vol.cipher);

	if (end <= start)
		return 0;
	if (fallocate(f->fd, FALLOC_FL_KEEP_SIZE, (off_t)start, (off_t)(end - start)) < 0 &&
	    errno != EOPNOTSUPP)
		return -errno;
	return 0;
}

/* Write with node->io_lock held for writing. */
static ssize_t write_locked(struct kfs_file *f, const uint8_t *data, size_t size, uint64_t off)
{
	uint64_t old_size, new_size, end = off + size;
	uint64_t first = off / BS, last = (end - 1) / BS;
	uint64_t span_start = first * BS, span_end;
	int head_loaded = 0, tail_loaded = 0, ret;
	struct scratch *s;

	ret = need_key(f);
	if (ret < 0)
		return ret;
	ret = plain_size_fd(f->fd, &old_size);
	if (ret < 0)
		return ret;
	new_size = end > old_size ? end : old_size;
	span_end = (last + 1) * BS < new_size ? (last + 1) * BS : new_size;
	s = scratch_get(last - first + 1);
	if (!s)
		return -ENOMEM;

	if (new_size > old_size) {
		ret = reserve_space(f, first, new_size);
		if (ret < 0)
			return ret;
	}
	/* The old short last block, left behind before a gap, grows to full size. */
	if (old_size % BS && old_size / BS < first) {
		ret = reseal_block(f, old_size / BS, BS);
		if (ret < 0)
			return ret;
	}
	/* Whole blocks, nothing old to keep: seal straight from the caller's buffer. */
	if (off == span_start && end == span_end) {
		ret = store_blocks(f, first, data, size, s->stored);
		return ret < 0 ? ret : (ssize_t)size;
	}
	if (off > span_start && span_start < old_size) {
		ret = load_block(f, first, s->plain, (size_t)(span_end - span_start < BS ?
							       span_end - span_start : BS));
		if (ret < 0)
			return ret;
		head_loaded = 1;
	}
	if (end < span_end && last * BS < old_size && !(head_loaded && last == first)) {
		ret = load_block(f, last, s->plain + (last - first) * BS,
				 (size_t)(span_end - last * BS));
		if (ret < 0)
			return ret;
		tail_loaded = 1;
	}
	if (!head_loaded)
		memset(s->plain, 0, (size_t)(off - span_start));
	if (!tail_loaded && !(head_loaded && last == first))
		memset(s->plain + (end - span_start), 0, (size_t)(span_end - end));
	memcpy(s->plain + (off - span_start), data, size);

	ret = store_blocks(f, first, s->plain, (size_t)(span_end - span_start), s->stored);
	return ret < 0 ? ret : (ssize_t)size;
}

ssize_t kfs_io_write(struct kfs_file *f, const char *buf, size_t size, off_t off)
{
	ssize_t ret;

	if (size == 0)
		return 0;
	if (off < 0)
		return -EINVAL;
	pthread_rwlock_wrlock(&f->node->io_lock);
	ret = write_locked(f, (const uint8_t *)buf, size, (uint64_t)off);
	pthread_rwlock_unlock(&f->node->io_lock);
	return ret;
}

/* ---- truncate ------------------------------------------------------------ */

static int truncate_locked(struct kfs_file *f, uint64_t new_size)
{
	uint64_t old_size;
	struct stat st;
	int ret;

	if (fstat(f->fd, &st) < 0)
		return -errno;
	old_size = kfs_plain_size_of(&st);
	if (new_size == old_size && (st.st_size > 0 || new_size == 0))
		return 0;
	if (new_size > 0 || st.st_size > 0) {
		ret = need_key(f);
		if (ret < 0)
			return ret;
	}
	if (new_size < old_size && new_size % BS) {
		ret = reseal_block(f, new_size / BS, (size_t)(new_size % BS));
		if (ret < 0)
			return ret;
	} else if (new_size > old_size && old_size % BS) {
		uint64_t last = old_size / BS;
		uint64_t len = new_size - last * BS < BS ? new_size - last * BS : BS;

		ret = reseal_block(f, last, (size_t)len);
		if (ret < 0)
			return ret;
	}
	if (ftruncate(f->fd, (off_t)kmsfs_backing_size(new_size, kfs->vol.cipher)) < 0)
		return -errno;
	return 0;
}

int kfs_io_truncate(struct kfs_file *f, off_t size)
{
	int ret;

	if (size < 0)
		return -EINVAL;
	pthread_rwlock_wrlock(&f->node->io_lock);
	ret = truncate_locked(f, (uint64_t)size);
	pthread_rwlock_unlock(&f->node->io_lock);
	return ret;
}

/* ---- fallocate ----------------------------------------------------------- */

static int zero_range_locked(struct kfs_file *f, uint64_t from, uint64_t to)
{
	static const uint8_t zeros[KMSFS_BLOCK_SIZE];

	while (from < to) {
		size_t chunk = to - from < BS ? (size_t)(to - from) : (size_t)BS;
		ssize_t ret = write_locked(f, zeros, chunk, from);

		if (ret < 0)
			return (int)ret;
		from += chunk;
	}
	return 0;
}

/*
 * Punch [off, off+len) clamped to EOF: whole blocks become holes in the
 * backing file (they read as zeros), the partial blocks at the edges are
 * rewritten with zeros.
 */
static int punch_locked(struct kfs_file *f, uint64_t off, uint64_t len)
{
	uint64_t size, end, first_full, end_full;
	int ret = plain_size_fd(f->fd, &size);

	if (ret < 0)
		return ret;
	end = off + len < size ? off + len : size;
	if (off >= end)
		return 0;
	first_full = (off + BS - 1) / BS;
	end_full = end == size ? blocks_in(size) : end / BS;   /* the short last block may go whole */
	if (first_full >= end_full)
		return zero_range_locked(f, off, end);
	ret = zero_range_locked(f, off, first_full * BS);
	if (ret < 0)
		return ret;
	{
		uint64_t from = block_off(first_full);
		uint64_t to = end == size ? kmsfs_backing_size(size, kfs->vol.cipher)
					  : block_off(end_full);

		if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)from, (off_t)(to - from)) < 0)
			return -errno;
	}
	if (end_full * BS < end)
		return zero_range_locked(f, end_full * BS, end);
	return 0;
}

static int allocate_locked(struct kfs_file *f, int keep_size, uint64_t off, uint64_t len)
{
	uint64_t size, end = off + len, from, to;
	int ret = plain_size_fd(f->fd, &size);

	if (ret < 0)
		return ret;
	if (!keep_size && end > size) {
		ret = truncate_locked(f, end);
		if (ret < 0)
			return ret;
	}
	/* KEEP_SIZE on the backing file: its size already says the plaintext size. */
	from = block_off(off / BS);
	to = block_off(blocks_in(end));
	if (fallocate(f->fd, FALLOC_FL_KEEP_SIZE, (off_t)from, (off_t)(to - from)) < 0)
		return -errno;
	return 0;
}

int kfs_io_fallocate(struct kfs_file *f, int mode, off_t off, off_t len)
{
	const int known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
	int keep_size = mode & FALLOC_FL_KEEP_SIZE;
	int ret;

	if (mode & ~known)
		return -EOPNOTSUPP;
	if (off < 0 || len <= 0)
		return -EINVAL;
	pthread_rwlock_wrlock(&f->node->io_lock);
	ret = need_key(f);
	if (ret < 0)
		goto out;
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		uint64_t size;

		if ((mode & FALLOC_FL_ZERO_RANGE) && !keep_size) {
			ret = plain_size_fd(f->fd, &size);
			if (ret == 0 && (uint64_t)off + (uint64_t)len > size)
				ret = truncate_locked(f, (uint64_t)off + (uint64_t)len);
			if (ret < 0)
				goto out;
		}
		ret = punch_locked(f, (uint64_t)off, (uint64_t)len);
	} else {
		ret = allocate_locked(f, keep_size, (uint64_t)off, (uint64_t)len);
	}
out:
	pthread_rwlock_unlock(&f->node->io_lock);
	return ret;
}

/* ---- SEEK_DATA / SEEK_HOLE ------------------------------------------------ */

/* Is every stored byte of block `block` a hole in the backing file? */
static int block_is_hole(int fd, uint64_t block, uint64_t backing_size)
{
	uint64_t start = block_off(block);
	uint64_t end = block_off(block + 1) < backing_size ? block_off(block + 1) : backing_size;
	off_t data = lseek(fd, (off_t)start, SEEK_DATA);

	return (data < 0 && errno == ENXIO) || (data >= 0 && (uint64_t)data >= end);
}

static uint64_t block_of_backing(uint64_t backing_off)
{
	uint64_t hdr = KMSFS_HEADER_LEN;

	return backing_off <= hdr ? 0 : (backing_off - hdr) / kmsfs_stored_block_len(kfs->vol.cipher);
}

/*
 * Block granularity, conservative both ways: data may be reported where a
 * block is zeros, a hole only where a whole stored block is unallocated.
 */
static off_t seek_locked(struct kfs_file *f, uint64_t off, int whence)
{
	struct stat st;
	uint64_t size, block, next;
	off_t pos;

	if (fstat(f->fd, &st) < 0)
		return -errno;
	size = kfs_plain_size_of(&st);
	if (off >= size)
		return -ENXIO;
	block = off / BS;
	if (whence == SEEK_DATA) {
		pos = lseek(f->fd, (off_t)block_off(block), SEEK_DATA);
		if (pos < 0)
			return errno == ENXIO ? -ENXIO : -errno;
		block = block_of_backing((uint64_t)pos);
		pos = (off_t)(block * BS > off ? block * BS : off);
		return (uint64_t)pos >= size ? -ENXIO : pos;
	}
	for (;;) {       /* SEEK_HOLE */
		if (block >= blocks_in(size))
			return (off_t)size;
		if (block_is_hole(f->fd, block, (uint64_t)st.st_size))
			return (off_t)(block * BS > off ? block * BS : off);
		pos = lseek(f->fd, (off_t)block_off(block), SEEK_HOLE);
		if (pos < 0)
			return -errno;
		next = block_of_backing((uint64_t)pos);
		if (block_off(next) < (uint64_t)pos)
			next++;       /* that block has data before the hole */
		block = next > block ? next : block + 1;
	}
}

off_t kfs_io_lseek(struct kfs_file *f, off_t off, int whence)
{
	off_t ret;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	if (off < 0)
		return -ENXIO;
	pthread_rwlock_rdlock(&f->node->io_lock);
	ret = seek_locked(f, (uint64_t)off, whence);
	pthread_rwlock_unlock(&f->node->io_lock);
	return ret;
}
