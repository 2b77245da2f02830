/*
 * blocks.c - per-file key state and sealing/opening runs of data blocks.
 *
 * This is the filesystem's hot path: every read and write of up to 1 MiB
 * (256 blocks) comes through here, from many FUSE worker threads at once.
 * So a call sets the key up once and then only changes the nonce per
 * block, the nonces for a whole call come from one CSPRNG draw rather
 * than a system call per block, and holes are recognised without a full
 * scan in the common (non-hole) case.
 *
 * Each stored block is nonce ‖ ciphertext ‖ tag. Its additional data is
 * the file's 32 encoded header bytes (magic, version, cipher, block size,
 * file ID) followed by the block index as a big-endian u64. A block copied
 * to another index, into another file, or under an edited header therefore
 * fails authentication (DESIGN.md section 3).
 */
#include "crypto.h"
#include "crypto_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#define BLOCK_INDEX_LEN 8
#define BLOCK_AAD_LEN (KMSFS_HEADER_LEN + BLOCK_INDEX_LEN)
#define MAX_NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
/* Nonces drawn at once when sealing: 256 blocks = one 1 MiB FUSE write. */
#define NONCE_BATCH_BLOCKS 256

struct kmsfs_filekey {
	struct kmsfs_header hdr;
	uint8_t hdr_bytes[KMSFS_HEADER_LEN]; /* encoded once; the AAD prefix */
	uint8_t *dek;                        /* KMSFS_DEK_LEN bytes, sodium_malloc */
};

/* ---- file key -------------------------------------------------------------- */

struct kmsfs_filekey *kmsfs_filekey_new(const struct kmsfs_header *hdr, const uint8_t *dek)
{
	struct kmsfs_filekey *fk;

	if (!hdr || !dek || !kmsfs_block_overhead(hdr->cipher)) {
		errno = EINVAL;
		return NULL;
	}
	fk = calloc(1, sizeof(*fk));
	if (!fk)
		return NULL;
	fk->dek = kmsfs_secure_alloc(KMSFS_DEK_LEN);
	if (!fk->dek) {
		free(fk);
		errno = ENOMEM;
		return NULL;
	}
	memcpy(fk->dek, dek, KMSFS_DEK_LEN);
	fk->hdr = *hdr;
	kmsfs_header_encode(hdr, fk->hdr_bytes);
	return fk;
}

void kmsfs_filekey_free(struct kmsfs_filekey *fk)
{
	if (!fk)
		return;
	kmsfs_secure_free(fk->dek); /* wipes the DEK */
	free(fk);
}

const struct kmsfs_header *kmsfs_filekey_header(const struct kmsfs_filekey *fk)
{
	return &fk->hdr;
}

/* ---- one call's cipher state ---------------------------------------------- */

/*
 * State for one seal/open call. It is private to the calling thread,
 * which is what makes a shared, immutable kmsfs_filekey thread-safe.
 */
struct block_run {
	const struct kmsfs_filekey *fk;
	EVP_CIPHER_CTX *gcm;          /* AES-GCM only: keyed once per call */
	size_t nonce_len;
	uint8_t aad[BLOCK_AAD_LEN];   /* header bytes ‖ current block index */
};

static int run_start(struct block_run *run, const struct kmsfs_filekey *fk, int encrypt)
{
	memset(run, 0, sizeof(*run));
	run->fk = fk;
	run->nonce_len = kmsfs_cipher_nonce_len(fk->hdr.cipher);
	memcpy(run->aad, fk->hdr_bytes, KMSFS_HEADER_LEN);
	if (fk->hdr.cipher != KMSFS_CIPHER_AES_256_GCM)
		return 0;

	/* Expand the key once; each block then only supplies a fresh IV. */
	run->gcm = EVP_CIPHER_CTX_new();
	if (!run->gcm)
		return -ENOMEM;
	if (EVP_CipherInit_ex(run->gcm, kmsfs_gcm_cipher(KMSFS_DEK_LEN), NULL,
			      fk->dek, NULL, encrypt) != 1)
		return -EIO;
	return 0;
}

/* Frees the context, which also clears OpenSSL's copy of the key schedule. */
static void run_end(struct block_run *run)
{
	EVP_CIPHER_CTX_free(run->gcm);
	run->gcm = NULL;
}

static void run_set_index(struct block_run *run, uint64_t index)
{
	uint8_t *p = run->aad + KMSFS_HEADER_LEN;

	for (int i = BLOCK_INDEX_LEN - 1; i >= 0; i--, index >>= 8)
		p[i] = (uint8_t)index;
}

/* ---- one block --------------------------------------------------------------- */

/* stored already starts with the nonce; fills in ciphertext and tag. */
static int gcm_seal_block(struct block_run *run, const uint8_t *plain, size_t len,
			  uint8_t *stored)
{
	uint8_t *ct = stored + run->nonce_len;
	uint8_t final_block[16];
	int written;

	if (EVP_EncryptInit_ex(run->gcm, NULL, NULL, NULL, stored) != 1 ||
	    EVP_EncryptUpdate(run->gcm, NULL, &written, run->aad, BLOCK_AAD_LEN) != 1 ||
	    EVP_EncryptUpdate(run->gcm, ct, &written, plain, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(run->gcm, final_block, &written) != 1 ||
	    EVP_CIPHER_CTX_ctrl(run->gcm, EVP_CTRL_GCM_GET_TAG, KMSFS_TAG_LEN, ct + len) != 1)
		return -EIO;
	return 0;
}

static int gcm_open_block(struct block_run *run, const uint8_t *stored, size_t len,
			  uint8_t *plain)
{
	const uint8_t *ct = stored + run->nonce_len;
	uint8_t final_block[16];
	int written;

	if (EVP_DecryptInit_ex(run->gcm, NULL, NULL, NULL, stored) != 1 ||
	    EVP_DecryptUpdate(run->gcm, NULL, &written, run->aad, BLOCK_AAD_LEN) != 1 ||
	    EVP_DecryptUpdate(run->gcm, plain, &written, ct, (int)len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(run->gcm, EVP_CTRL_GCM_SET_TAG, KMSFS_TAG_LEN,
				(void *)(ct + len)) != 1 ||
	    EVP_DecryptFinal_ex(run->gcm, final_block, &written) != 1)
		return -EBADMSG;
	return 0;
}

static int xchacha_seal_block(struct block_run *run, const uint8_t *plain, size_t len,
			      uint8_t *stored)
{
	uint8_t *ct = stored + run->nonce_len;

	if (crypto_aead_xchacha20poly1305_ietf_encrypt_detached(ct, ct + len, NULL,
			plain, len, run->aad, BLOCK_AAD_LEN, NULL, stored, run->fk->dek) != 0)
		return -EIO;
	return 0;
}

static int xchacha_open_block(struct block_run *run, const uint8_t *stored, size_t len,
			      uint8_t *plain)
{
	const uint8_t *ct = stored + run->nonce_len;

	if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(plain, NULL,
			ct, len, ct + len, run->aad, BLOCK_AAD_LEN, stored, run->fk->dek) != 0)
		return -EBADMSG;
	return 0;
}

static int seal_block(struct block_run *run, const uint8_t *plain, size_t len, uint8_t *stored)
{
	if (run->gcm)
		return gcm_seal_block(run, plain, len, stored);
	return xchacha_seal_block(run, plain, len, stored);
}

static int open_block(struct block_run *run, const uint8_t *stored, size_t len, uint8_t *plain)
{
	if (run->gcm)
		return gcm_open_block(run, stored, len, plain);
	return xchacha_open_block(run, stored, len, plain);
}

/*
 * Holes: a sparse region of the backing file reads as zeros, and must
 * read back as plaintext zeros. A real stored block begins with a random
 * nonce, so checking the ends first rejects almost every non-hole at
 * once; the rest is memcmp against itself shifted by one byte, which
 * runs at memcmp's vectorised speed.
 */
static int is_all_zero(const uint8_t *buf, size_t len)
{
	if (len == 0)
		return 1;
	if (buf[0] != 0 || buf[len - 1] != 0)
		return 0;
	return memcmp(buf, buf + 1, len - 1) == 0;
}

/* ---- runs of blocks ------------------------------------------------------- */

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/*
 * Nonces are random: 96 bits for GCM, 192 for XChaCha. Asking the kernel
 * for each one costs a system call per 4 KiB block (libsodium also splits
 * larger requests into 256-byte getrandom calls), about 8% of AES-GCM's
 * time at 1 MiB. Instead one call draws a fresh 256-bit seed from the OS
 * and expands it with ChaCha20 (randombytes_buf_deterministic), which is
 * indistinguishable from kernel randomness while the seed stays secret;
 * the seed is wiped straight away and never reused, so there is no
 * generator state to leak or to duplicate across fork().
 */
static void draw_nonces(uint8_t *nonces, size_t nonce_len, size_t blocks_left)
{
	uint8_t seed[randombytes_SEEDBYTES];

	kmsfs_random(seed, sizeof(seed));
	randombytes_buf_deterministic(nonces, nonce_len * min_size(blocks_left, NONCE_BATCH_BLOCKS),
				      seed);
	kmsfs_wipe(seed, sizeof(seed));
}

static ssize_t seal_run(struct block_run *run, uint64_t first_block,
			const uint8_t *plain, size_t plain_len, uint8_t *stored_out)
{
	uint8_t nonces[NONCE_BATCH_BLOCKS * MAX_NONCE_LEN];
	size_t nblocks = (plain_len + KMSFS_BLOCK_SIZE - 1) / KMSFS_BLOCK_SIZE;
	size_t overhead = run->nonce_len + KMSFS_TAG_LEN;
	uint8_t *out = stored_out;

	for (size_t i = 0; i < nblocks; i++) {
		size_t slot = i % NONCE_BATCH_BLOCKS;
		size_t offset = i * KMSFS_BLOCK_SIZE;
		size_t len = min_size(KMSFS_BLOCK_SIZE, plain_len - offset);
		int ret;

		if (slot == 0)
			draw_nonces(nonces, run->nonce_len, nblocks - i);
		memcpy(out, nonces + slot * run->nonce_len, run->nonce_len);
		run_set_index(run, first_block + i);
		ret = seal_block(run, plain + offset, len, out);
		if (ret)
			return ret;
		out += len + overhead;
	}
	return out - stored_out;
}

ssize_t kmsfs_blocks_seal(const struct kmsfs_filekey *fk, uint64_t first_block,
			  const uint8_t *plain, size_t plain_len, uint8_t *stored_out)
{
	struct block_run run;
	ssize_t ret;

	/* Stored data is < 2x the plaintext, so this keeps the result in range. */
	if (!fk || plain_len > SSIZE_MAX / 2 || ((!plain || !stored_out) && plain_len))
		return -EINVAL;
	if (plain_len == 0)
		return 0;
	ret = run_start(&run, fk, 1);
	if (ret)
		goto out;
	ret = seal_run(&run, first_block, plain, plain_len, stored_out);
out:
	run_end(&run);
	return ret;
}

/* Plaintext bytes that stored_len bytes of stored blocks decode to. */
static size_t plain_len_of(size_t stored_len, size_t overhead)
{
	size_t stored_block = KMSFS_BLOCK_SIZE + overhead;
	size_t tail = stored_len % stored_block;

	return stored_len / stored_block * KMSFS_BLOCK_SIZE + (tail > overhead ? tail - overhead : 0);
}

/*
 * Opens one stored block of stored_len bytes (a full one, or the short
 * last one) into plain. Returns the plaintext length or -EIO.
 */
static ssize_t open_one(struct block_run *run, const uint8_t *stored, size_t stored_len,
			uint8_t *plain)
{
	size_t overhead = run->nonce_len + KMSFS_TAG_LEN;
	size_t len = stored_len > overhead ? stored_len - overhead : 0;

	if (is_all_zero(stored, stored_len)) {
		if (len)
			memset(plain, 0, len);
		return (ssize_t)len;
	}
	/* Too short to hold a nonce, a tag and at least one byte: torn or forged. */
	if (stored_len <= overhead)
		return -EIO;
	if (open_block(run, stored, len, plain) != 0)
		return -EIO;
	return (ssize_t)len;
}

static ssize_t open_run(struct block_run *run, uint64_t first_block,
			const uint8_t *stored, size_t stored_len, uint8_t *plain_out,
			uint64_t *bad_block)
{
	size_t stored_block = KMSFS_BLOCK_SIZE + run->nonce_len + KMSFS_TAG_LEN;
	size_t plain_off = 0;

	for (size_t i = 0; i * stored_block < stored_len; i++) {
		size_t offset = i * stored_block;
		size_t len = min_size(stored_block, stored_len - offset);
		ssize_t opened;

		run_set_index(run, first_block + i);
		opened = open_one(run, stored + offset, len, plain_out + plain_off);
		if (opened < 0) {
			if (bad_block)
				*bad_block = first_block + i;
			return opened;
		}
		plain_off += (size_t)opened;
	}
	return (ssize_t)plain_off;
}

ssize_t kmsfs_blocks_open(const struct kmsfs_filekey *fk, uint64_t first_block,
			  const uint8_t *stored, size_t stored_len, uint8_t *plain_out,
			  uint64_t *bad_block)
{
	struct block_run run;
	size_t plain_len;
	ssize_t ret;

	if (!fk || stored_len > SSIZE_MAX || ((!stored || !plain_out) && stored_len))
		return -EINVAL;
	if (stored_len == 0)
		return 0;
	plain_len = plain_len_of(stored_len, kmsfs_block_overhead(fk->hdr.cipher));
	ret = run_start(&run, fk, 0);
	if (ret)
		goto out;
	ret = open_run(&run, first_block, stored, stored_len, plain_out, bad_block);
out:
	run_end(&run);
	/* Blocks before the bad one decrypted fine, but a failed read returns nothing. */
	if (ret < 0 && plain_len)
		kmsfs_wipe(plain_out, plain_len);
	return ret;
}
