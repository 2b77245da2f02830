/*
 * format.c - file format 1 layout: the 32-byte header and the mapping
 * between plaintext sizes/offsets and backing-file sizes/offsets.
 *
 * Backing file = header ‖ stored block 0 ‖ stored block 1 ‖ ...
 * Every stored block is nonce ‖ ciphertext ‖ tag; all but the last hold
 * KMSFS_BLOCK_SIZE plaintext bytes. Because the overhead per block is a
 * constant, the plaintext size follows from the backing size alone, so
 * stat() never has to decrypt or read anything (DESIGN.md section 3).
 */
#include "crypto.h"

#include <errno.h>
#include <string.h>

static const uint8_t header_magic[4] = { 'K', 'M', 'F', 'S' };

/* Byte offsets inside the encoded header (see crypto.h). */
enum {
	HDR_OFF_MAGIC = 0,
	HDR_OFF_VERSION = 4,
	HDR_OFF_CIPHER = 6,
	HDR_OFF_BLOCK_SIZE = 8,
	HDR_OFF_RESERVED = 12,
	HDR_OFF_FILE_ID = 16,
};

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}

static int cipher_is_known(uint16_t id)
{
	return id == KMSFS_CIPHER_AES_256_GCM || id == KMSFS_CIPHER_XCHACHA20_POLY1305;
}

/* ---- header ------------------------------------------------------------- */

void kmsfs_header_new(struct kmsfs_header *hdr, enum kmsfs_cipher cipher)
{
	memset(hdr, 0, sizeof(*hdr));
	hdr->version = KMSFS_FORMAT_VERSION;
	hdr->cipher = cipher;
	hdr->block_size = KMSFS_BLOCK_SIZE;
	/* 128 random bits: collisions between files are not a practical concern. */
	kmsfs_random(hdr->file_id, sizeof(hdr->file_id));
}

void kmsfs_header_encode(const struct kmsfs_header *hdr, uint8_t out[KMSFS_HEADER_LEN])
{
	memcpy(out + HDR_OFF_MAGIC, header_magic, sizeof(header_magic));
	put_be16(out + HDR_OFF_VERSION, hdr->version);
	put_be16(out + HDR_OFF_CIPHER, (uint16_t)hdr->cipher);
	put_be32(out + HDR_OFF_BLOCK_SIZE, hdr->block_size);
	put_be32(out + HDR_OFF_RESERVED, 0);
	memcpy(out + HDR_OFF_FILE_ID, hdr->file_id, KMSFS_FILE_ID_LEN);
}

/*
 * The header is attacker-reachable input. Accept exactly what this
 * version writes: anything else (a future version, a non-zero reserved
 * field) is refused rather than guessed at.
 */
int kmsfs_header_decode(const uint8_t *in, size_t len, struct kmsfs_header *hdr)
{
	uint16_t version, cipher_id;
	uint32_t block_size;

	if (!in || len < KMSFS_HEADER_LEN)
		return -EIO;
	if (memcmp(in + HDR_OFF_MAGIC, header_magic, sizeof(header_magic)) != 0)
		return -EIO;
	version = get_be16(in + HDR_OFF_VERSION);
	cipher_id = get_be16(in + HDR_OFF_CIPHER);
	block_size = get_be32(in + HDR_OFF_BLOCK_SIZE);
	if (version != KMSFS_FORMAT_VERSION || !cipher_is_known(cipher_id) ||
	    block_size != KMSFS_BLOCK_SIZE || get_be32(in + HDR_OFF_RESERVED) != 0)
		return -EIO;

	memset(hdr, 0, sizeof(*hdr));
	hdr->version = version;
	hdr->cipher = (enum kmsfs_cipher)cipher_id;
	hdr->block_size = block_size;
	memcpy(hdr->file_id, in + HDR_OFF_FILE_ID, KMSFS_FILE_ID_LEN);
	return 0;
}

void kmsfs_file_id_hex(const struct kmsfs_header *hdr, char out[2 * KMSFS_FILE_ID_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < KMSFS_FILE_ID_LEN; i++) {
		out[2 * i] = digits[hdr->file_id[i] >> 4];
		out[2 * i + 1] = digits[hdr->file_id[i] & 0x0f];
	}
	out[2 * KMSFS_FILE_ID_LEN] = '\0';
}

/* ---- size mapping -------------------------------------------------------- */

/* 0 for an unknown cipher, so callers' size arithmetic cannot divide by it. */
size_t kmsfs_block_overhead(enum kmsfs_cipher cipher)
{
	size_t nonce_len = kmsfs_cipher_nonce_len(cipher);

	return nonce_len ? nonce_len + KMSFS_TAG_LEN : 0;
}

size_t kmsfs_stored_block_len(enum kmsfs_cipher cipher)
{
	size_t overhead = kmsfs_block_overhead(cipher);

	return overhead ? KMSFS_BLOCK_SIZE + overhead : 0;
}

/*
 * A trailing stored fragment no longer than the overhead carries no
 * plaintext (it can only come from a torn write); it counts as zero
 * bytes here and is reported as malformed when someone tries to read it.
 */
uint64_t kmsfs_plain_size(uint64_t backing_size, enum kmsfs_cipher cipher)
{
	uint64_t stored_len = kmsfs_stored_block_len(cipher);
	uint64_t overhead = kmsfs_block_overhead(cipher);
	uint64_t data_len, full_blocks, tail_len;

	if (!stored_len || backing_size <= KMSFS_HEADER_LEN)
		return 0;
	data_len = backing_size - KMSFS_HEADER_LEN;
	full_blocks = data_len / stored_len;
	tail_len = data_len % stored_len;
	return full_blocks * KMSFS_BLOCK_SIZE + (tail_len > overhead ? tail_len - overhead : 0);
}

uint64_t kmsfs_backing_size(uint64_t plain_size, enum kmsfs_cipher cipher)
{
	uint64_t stored_len = kmsfs_stored_block_len(cipher);
	uint64_t tail_len = plain_size % KMSFS_BLOCK_SIZE;

	if (!stored_len)
		return 0;
	return KMSFS_HEADER_LEN + (plain_size / KMSFS_BLOCK_SIZE) * stored_len +
	       (tail_len ? tail_len + kmsfs_block_overhead(cipher) : 0);
}

uint64_t kmsfs_block_offset(uint64_t block, enum kmsfs_cipher cipher)
{
	return KMSFS_HEADER_LEN + block * kmsfs_stored_block_len(cipher);
}
