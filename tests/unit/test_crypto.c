/*
 * test_crypto.c - unit tests for crypto/: secure memory helpers, the AEAD
 * wrapper's parameter handling, header encoding, the size mapping, and
 * sealing/opening blocks including every tampering case the on-disk
 * contract promises to catch (DESIGN.md section 3).
 *
 * No framework: CHECK() prints the failed condition and counts it; the
 * program exits non-zero if anything failed.
 */
#include "crypto.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                             \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
			failures++;                                             \
		}                                                               \
	} while (0)

#define CHECK_EQ(a, b)                                                          \
	do {                                                                    \
		long long a_val_ = (long long)(a), b_val_ = (long long)(b);    \
		if (a_val_ != b_val_) {                                         \
			fprintf(stderr, "%s:%d: FAILED: %s == %s (%lld != %lld)\n", \
				__FILE__, __LINE__, #a, #b, a_val_, b_val_);    \
			failures++;                                             \
		}                                                               \
	} while (0)

static const enum kmsfs_cipher all_ciphers[] = {
	KMSFS_CIPHER_AES_256_GCM, KMSFS_CIPHER_XCHACHA20_POLY1305,
};
#define NCIPHERS (sizeof(all_ciphers) / sizeof(all_ciphers[0]))

static int all_zero(const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i])
			return 0;
	return 1;
}

static void fill_pattern(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 31 + seed * 7 + (i >> 8));
}

static uint8_t *xmalloc(size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	if (!p) {
		perror("malloc");
		exit(2);
	}
	return p;
}

/* Stored bytes for plain_len bytes of plaintext (no header). */
static size_t stored_len_for(size_t plain_len, enum kmsfs_cipher cipher)
{
	return (size_t)(kmsfs_backing_size(plain_len, cipher) - KMSFS_HEADER_LEN);
}

/* ---- secure memory ------------------------------------------------------ */

static void test_secmem(void)
{
	uint8_t a[32], b[32];
	uint8_t *secret = kmsfs_secure_alloc(64);

	CHECK(secret != NULL);
	if (secret) {
		memset(secret, 0xa5, 64);
		kmsfs_secure_free(secret);
	}
	kmsfs_secure_free(NULL);

	kmsfs_random(a, sizeof(a));
	kmsfs_random(b, sizeof(b));
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	memcpy(b, a, sizeof(a));
	CHECK_EQ(kmsfs_ct_memcmp(a, b, sizeof(a)), 0);
	b[31] ^= 1;
	CHECK(kmsfs_ct_memcmp(a, b, sizeof(a)) != 0);
	kmsfs_wipe(a, sizeof(a));
	CHECK(all_zero(a, sizeof(a)));
}

/*
 * Every size class of the secure pool (and beyond it) hands out zeroed,
 * writable memory of the size asked for, distinct while in use, and the
 * wipe on free means a slot comes back zeroed to the next caller.
 */
static void test_secmem_pool(void)
{
	static const size_t sizes[] = { 1, 64, 65, 512, 513, 4096, 4097, 16384, 65536, 65537, 200000 };
	uint8_t *held[sizeof sizes / sizeof *sizes][3];

	for (size_t round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
			for (size_t j = 0; j < 3; j++) {
				held[i][j] = kmsfs_secure_alloc(sizes[i]);
				CHECK(held[i][j] != NULL);
				if (!held[i][j])
					continue;
				CHECK(all_zero(held[i][j], sizes[i]));
				memset(held[i][j], 0x5a, sizes[i]);
			}
			CHECK(held[i][0] != held[i][1] && held[i][1] != held[i][2]);
		}
		for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
			for (size_t j = 0; j < 3; j++)
				kmsfs_secure_free(held[i][j]);
	}
}

/* ---- cipher names and parameters --------------------------------------- */

static void test_cipher_names(void)
{
	CHECK_EQ(kmsfs_cipher_from_name("aes-256-gcm"), KMSFS_CIPHER_AES_256_GCM);
	CHECK_EQ(kmsfs_cipher_from_name("xchacha20-poly1305"), KMSFS_CIPHER_XCHACHA20_POLY1305);
	CHECK_EQ(kmsfs_cipher_from_name("AES-256-GCM"), KMSFS_CIPHER_NONE);
	CHECK_EQ(kmsfs_cipher_from_name("aes-128-gcm"), KMSFS_CIPHER_NONE);
	CHECK_EQ(kmsfs_cipher_from_name(""), KMSFS_CIPHER_NONE);
	CHECK_EQ(kmsfs_cipher_from_name(NULL), KMSFS_CIPHER_NONE);
	for (size_t i = 0; i < NCIPHERS; i++)
		CHECK_EQ(kmsfs_cipher_from_name(kmsfs_cipher_name(all_ciphers[i])), all_ciphers[i]);
	CHECK(kmsfs_cipher_name(KMSFS_CIPHER_NONE) != NULL);
	CHECK(kmsfs_cipher_name((enum kmsfs_cipher)77) != NULL);

	CHECK_EQ(kmsfs_cipher_nonce_len(KMSFS_CIPHER_AES_256_GCM), 12);
	CHECK_EQ(kmsfs_cipher_nonce_len(KMSFS_CIPHER_XCHACHA20_POLY1305), 24);
	CHECK_EQ(kmsfs_cipher_nonce_len(KMSFS_CIPHER_NONE), 0);
	CHECK_EQ(kmsfs_block_overhead(KMSFS_CIPHER_AES_256_GCM), 28);
	CHECK_EQ(kmsfs_block_overhead(KMSFS_CIPHER_XCHACHA20_POLY1305), 40);
	CHECK_EQ(kmsfs_stored_block_len(KMSFS_CIPHER_AES_256_GCM), 4096 + 28);
	CHECK_EQ(kmsfs_stored_block_len(KMSFS_CIPHER_XCHACHA20_POLY1305), 4096 + 40);
	CHECK_EQ(kmsfs_stored_block_len(KMSFS_CIPHER_NONE), 0);
	CHECK_EQ(kmsfs_plain_size(100000, KMSFS_CIPHER_NONE), 0);
}

/* ---- AEAD wrapper -------------------------------------------------------- */

static void test_aead_roundtrip(enum kmsfs_cipher cipher)
{
	uint8_t key[32], nonce[24], aad[20], msg[300], ct[300], out[300], tag[KMSFS_TAG_LEN];
	size_t nonce_len = kmsfs_cipher_nonce_len(cipher);

	kmsfs_random(key, sizeof(key));
	kmsfs_random(nonce, sizeof(nonce));
	kmsfs_random(aad, sizeof(aad));
	fill_pattern(msg, sizeof(msg), 1);

	CHECK_EQ(kmsfs_aead_seal(cipher, key, 32, nonce, nonce_len, aad, sizeof(aad),
				 msg, sizeof(msg), ct, tag), 0);
	CHECK(memcmp(ct, msg, sizeof(msg)) != 0);
	CHECK_EQ(kmsfs_aead_open(cipher, key, 32, nonce, nonce_len, aad, sizeof(aad),
				 ct, sizeof(ct), tag, KMSFS_TAG_LEN, out), 0);
	CHECK(memcmp(out, msg, sizeof(msg)) == 0);

	/* Authentication failure: error and no plaintext left behind. */
	aad[0] ^= 1;
	memset(out, 0x55, sizeof(out));
	CHECK_EQ(kmsfs_aead_open(cipher, key, 32, nonce, nonce_len, aad, sizeof(aad),
				 ct, sizeof(ct), tag, KMSFS_TAG_LEN, out), -EBADMSG);
	CHECK(all_zero(out, sizeof(out)));
	aad[0] ^= 1;

	/* Tag lengths other than 16 are refused outright. */
	CHECK(kmsfs_aead_open(cipher, key, 32, nonce, nonce_len, aad, sizeof(aad),
			      ct, sizeof(ct), tag, 12, out) < 0);
	CHECK(kmsfs_aead_open(cipher, key, 32, nonce, nonce_len, aad, sizeof(aad),
			      ct, sizeof(ct), tag, 0, out) < 0);

	/* Empty message, no AAD, NULL buffers. */
	CHECK_EQ(kmsfs_aead_seal(cipher, key, 32, nonce, nonce_len, NULL, 0, NULL, 0, NULL, tag), 0);
	CHECK_EQ(kmsfs_aead_open(cipher, key, 32, nonce, nonce_len, NULL, 0, NULL, 0,
				 tag, KMSFS_TAG_LEN, NULL), 0);
	tag[5] ^= 0x10;
	CHECK_EQ(kmsfs_aead_open(cipher, key, 32, nonce, nonce_len, NULL, 0, NULL, 0,
				 tag, KMSFS_TAG_LEN, NULL), -EBADMSG);

	/* Zero-length nonce, bad key length, NULL key. */
	CHECK_EQ(kmsfs_aead_seal(cipher, key, 32, nonce, 0, NULL, 0, msg, 10, ct, tag), -EINVAL);
	CHECK_EQ(kmsfs_aead_seal(cipher, key, 20, nonce, nonce_len, NULL, 0, msg, 10, ct, tag), -EINVAL);
	CHECK_EQ(kmsfs_aead_seal(cipher, NULL, 32, nonce, nonce_len, NULL, 0, msg, 10, ct, tag), -EINVAL);
}

static void test_aead_params(void)
{
	uint8_t key[32] = { 0 }, nonce[24] = { 0 }, msg[16] = { 0 }, ct[16], tag[16];

	CHECK_EQ(kmsfs_aead_seal(KMSFS_CIPHER_NONE, key, 32, nonce, 12, NULL, 0, msg, 16, ct, tag), -EINVAL);
	/* XChaCha insists on its own sizes. */
	CHECK_EQ(kmsfs_aead_seal(KMSFS_CIPHER_XCHACHA20_POLY1305, key, 32, nonce, 12,
				 NULL, 0, msg, 16, ct, tag), -EINVAL);
	CHECK_EQ(kmsfs_aead_seal(KMSFS_CIPHER_XCHACHA20_POLY1305, key, 16, nonce, 24,
				 NULL, 0, msg, 16, ct, tag), -EINVAL);
	/* AES-GCM takes 16/24/32-byte keys and odd nonce lengths. */
	CHECK_EQ(kmsfs_aead_seal(KMSFS_CIPHER_AES_256_GCM, key, 16, nonce, 1, NULL, 0, msg, 16, ct, tag), 0);
	CHECK_EQ(kmsfs_aead_seal(KMSFS_CIPHER_AES_256_GCM, key, 24, nonce, 24, NULL, 0, msg, 16, ct, tag), 0);
	CHECK_EQ(kmsfs_aead_seal(KMSFS_CIPHER_AES_256_GCM, key, 33, nonce, 12, NULL, 0, msg, 16, ct, tag), -EINVAL);

	/* Known answer: AES-256-GCM, zero key/IV, 16 zero bytes (McGrew-Viega test case 14). */
	static const uint8_t expect_ct[16] = {
		0xce, 0xa7, 0x40, 0x3d, 0x4d, 0x60, 0x6b, 0x6e,
		0x07, 0x4e, 0xc5, 0xd3, 0xba, 0xf3, 0x9d, 0x18 };
	static const uint8_t expect_tag[16] = {
		0xd0, 0xd1, 0xc8, 0xa7, 0x99, 0x99, 0x6b, 0xf0,
		0x26, 0x5b, 0x98, 0xb5, 0xd4, 0x8a, 0xb9, 0x19 };
	CHECK_EQ(kmsfs_aead_seal(KMSFS_CIPHER_AES_256_GCM, key, 32, nonce, 12, NULL, 0, msg, 16, ct, tag), 0);
	CHECK(memcmp(ct, expect_ct, 16) == 0);
	CHECK(memcmp(tag, expect_tag, 16) == 0);
}

/* ---- header ---------------------------------------------------------------- */

static void test_header(void)
{
	struct kmsfs_header hdr, back;
	uint8_t enc[KMSFS_HEADER_LEN], bad[KMSFS_HEADER_LEN];
	char hex[2 * KMSFS_FILE_ID_LEN + 1];

	for (size_t c = 0; c < NCIPHERS; c++) {
		kmsfs_header_new(&hdr, all_ciphers[c]);
		CHECK_EQ(hdr.version, 1);
		CHECK_EQ(hdr.block_size, 4096);
		kmsfs_header_encode(&hdr, enc);
		CHECK(memcmp(enc, "KMFS", 4) == 0);
		CHECK(enc[4] == 0 && enc[5] == 1);
		CHECK(enc[6] == 0 && enc[7] == (uint8_t)all_ciphers[c]);
		CHECK(enc[8] == 0 && enc[9] == 0 && enc[10] == 0x10 && enc[11] == 0);
		CHECK(all_zero(enc + 12, 4));
		CHECK(memcmp(enc + 16, hdr.file_id, 16) == 0);
		CHECK_EQ(kmsfs_header_decode(enc, sizeof(enc), &back), 0);
		CHECK_EQ(back.version, hdr.version);
		CHECK_EQ(back.cipher, hdr.cipher);
		CHECK_EQ(back.block_size, hdr.block_size);
		CHECK(memcmp(back.file_id, hdr.file_id, 16) == 0);
	}

	/* Two new headers never share a file ID. */
	kmsfs_header_new(&back, KMSFS_CIPHER_AES_256_GCM);
	CHECK(memcmp(back.file_id, hdr.file_id, 16) != 0);

	/* Every malformed field is refused. */
	CHECK_EQ(kmsfs_header_decode(enc, KMSFS_HEADER_LEN - 1, &back), -EIO);
	CHECK_EQ(kmsfs_header_decode(NULL, KMSFS_HEADER_LEN, &back), -EIO);
	static const struct { size_t off; uint8_t val; } corruptions[] = {
		{ 0, 'X' }, { 3, 's' },        /* magic */
		{ 4, 1 }, { 5, 2 }, { 5, 0 },  /* version */
		{ 7, 0 }, { 7, 3 }, { 6, 1 },  /* cipher */
		{ 10, 0x20 }, { 11, 1 }, { 8, 1 }, /* block size */
		{ 12, 1 }, { 15, 0x80 },       /* reserved */
	};
	for (size_t i = 0; i < sizeof(corruptions) / sizeof(corruptions[0]); i++) {
		memcpy(bad, enc, sizeof(enc));
		bad[corruptions[i].off] = corruptions[i].val;
		if (kmsfs_header_decode(bad, sizeof(bad), &back) != -EIO) {
			fprintf(stderr, "header with byte %zu = %u accepted\n",
				corruptions[i].off, corruptions[i].val);
			failures++;
		}
	}

	for (int i = 0; i < KMSFS_FILE_ID_LEN; i++)
		hdr.file_id[i] = (uint8_t)(i * 17);
	kmsfs_file_id_hex(&hdr, hex);
	CHECK(strcmp(hex, "00112233445566778899aabbccddeeff") == 0);
}

/* ---- size mapping -------------------------------------------------------- */

static void check_plain_size_roundtrip(uint64_t plain, enum kmsfs_cipher cipher)
{
	uint64_t backing = kmsfs_backing_size(plain, cipher);

	if (kmsfs_plain_size(backing, cipher) != plain) {
		fprintf(stderr, "%s: plain %llu -> backing %llu -> plain %llu\n",
			kmsfs_cipher_name(cipher), (unsigned long long)plain,
			(unsigned long long)backing,
			(unsigned long long)kmsfs_plain_size(backing, cipher));
		failures++;
	}
}

static void test_sizes(enum kmsfs_cipher cipher)
{
	uint64_t overhead = kmsfs_block_overhead(cipher);
	uint64_t stored = kmsfs_stored_block_len(cipher);
	static const uint64_t sizes[] = {
		0, 1, 2, 4095, 4096, 4097, 8191, 8192, 8193, 12288,
		1 << 20, (1 << 20) - 1, (1 << 20) + 1, 1ull << 40, (1ull << 40) + 123,
	};

	CHECK_EQ(kmsfs_backing_size(0, cipher), KMSFS_HEADER_LEN);
	CHECK_EQ(kmsfs_backing_size(1, cipher), KMSFS_HEADER_LEN + 1 + overhead);
	CHECK_EQ(kmsfs_backing_size(4095, cipher), KMSFS_HEADER_LEN + 4095 + overhead);
	CHECK_EQ(kmsfs_backing_size(4096, cipher), KMSFS_HEADER_LEN + stored);
	CHECK_EQ(kmsfs_backing_size(4097, cipher), KMSFS_HEADER_LEN + stored + 1 + overhead);
	CHECK_EQ(kmsfs_block_offset(0, cipher), KMSFS_HEADER_LEN);
	CHECK_EQ(kmsfs_block_offset(3, cipher), KMSFS_HEADER_LEN + 3 * stored);

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		check_plain_size_roundtrip(sizes[i], cipher);
	for (uint64_t p = 0; p <= 3 * 4096 + 10; p++)
		check_plain_size_roundtrip(p, cipher);

	/* Backing sizes: header-only or less is empty; torn tails add nothing. */
	for (uint64_t b = 0; b <= KMSFS_HEADER_LEN; b++)
		CHECK_EQ(kmsfs_plain_size(b, cipher), 0);
	CHECK_EQ(kmsfs_plain_size(KMSFS_HEADER_LEN + overhead, cipher), 0);
	CHECK_EQ(kmsfs_plain_size(KMSFS_HEADER_LEN + overhead + 1, cipher), 1);
	CHECK_EQ(kmsfs_plain_size(KMSFS_HEADER_LEN + stored + overhead, cipher), 4096);
	for (uint64_t b = 0; b <= 2 * stored + 100; b++) {
		uint64_t plain = kmsfs_plain_size(b, cipher);
		uint64_t tail = b > KMSFS_HEADER_LEN ? (b - KMSFS_HEADER_LEN) % stored : 0;

		/* A well-formed backing size maps back exactly; a torn one maps below. */
		if (b < KMSFS_HEADER_LEN)
			continue;
		if (tail == 0 || tail > overhead)
			CHECK_EQ(kmsfs_backing_size(plain, cipher), b);
		else
			CHECK(kmsfs_backing_size(plain, cipher) < b);
	}
}

/* ---- blocks ---------------------------------------------------------------- */

static struct kmsfs_filekey *new_filekey(enum kmsfs_cipher cipher, const uint8_t *dek)
{
	struct kmsfs_header hdr;
	struct kmsfs_filekey *fk;

	kmsfs_header_new(&hdr, cipher);
	fk = kmsfs_filekey_new(&hdr, dek);
	if (!fk) {
		fprintf(stderr, "kmsfs_filekey_new failed\n");
		exit(2);
	}
	return fk;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/*
 * Decrypt one stored block by hand through the generic AEAD, to pin the
 * on-disk contract: nonce ‖ ct ‖ tag, AAD = header bytes ‖ BE64 index.
 */
static int open_by_contract(const struct kmsfs_filekey *fk, const uint8_t *dek,
			    uint64_t index, const uint8_t *stored, size_t plain_len,
			    uint8_t *out)
{
	const struct kmsfs_header *hdr = kmsfs_filekey_header(fk);
	size_t nonce_len = kmsfs_cipher_nonce_len(hdr->cipher);
	uint8_t aad[KMSFS_HEADER_LEN + 8];

	kmsfs_header_encode(hdr, aad);
	put_be64(aad + KMSFS_HEADER_LEN, index);
	return kmsfs_aead_open(hdr->cipher, dek, KMSFS_DEK_LEN, stored, nonce_len,
			       aad, sizeof(aad), stored + nonce_len, plain_len,
			       stored + nonce_len + plain_len, KMSFS_TAG_LEN, out);
}

static void test_blocks_roundtrip(enum kmsfs_cipher cipher)
{
	static const size_t lens[] = { 1, 100, 4095, 4096, 4097, 8192, 3 * 4096 + 17, 1 << 20 };
	static const uint64_t firsts[] = { 0, 7, 1ull << 40 };
	uint8_t dek[KMSFS_DEK_LEN];
	struct kmsfs_filekey *fk;

	kmsfs_random(dek, sizeof(dek));
	fk = new_filekey(cipher, dek);
	CHECK_EQ(kmsfs_filekey_header(fk)->cipher, cipher);

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t len = lens[i], slen = stored_len_for(len, cipher);
		uint64_t first = firsts[i % 3];
		uint8_t *plain = xmalloc(len), *stored = xmalloc(slen), *again = xmalloc(slen);
		uint8_t *out = xmalloc(len);
		uint64_t bad = 12345;

		fill_pattern(plain, len, (unsigned)i);
		CHECK_EQ(kmsfs_blocks_seal(fk, first, plain, len, stored), slen);
		CHECK_EQ(kmsfs_blocks_open(fk, first, stored, slen, out, &bad), len);
		CHECK(memcmp(out, plain, len) == 0);
		CHECK_EQ(bad, 12345);
		/* Fresh nonces: the same plaintext never seals to the same bytes. */
		CHECK_EQ(kmsfs_blocks_seal(fk, first, plain, len, again), slen);
		CHECK(memcmp(stored, again, slen) != 0);
		/* ... and blocks within one call get distinct nonces. */
		size_t nonce_len = kmsfs_cipher_nonce_len(cipher);
		size_t block_len = kmsfs_stored_block_len(cipher);
		for (size_t off = block_len; off < slen; off += block_len)
			CHECK(memcmp(stored + off - block_len, stored + off, nonce_len) != 0);
		/* The first block decrypts by the documented layout and AAD. */
		size_t first_len = len < 4096 ? len : 4096;
		CHECK_EQ(open_by_contract(fk, dek, first, stored, first_len, out), 0);
		CHECK(memcmp(out, plain, first_len) == 0);
		free(plain);
		free(stored);
		free(again);
		free(out);
	}
	CHECK_EQ(kmsfs_blocks_seal(fk, 0, NULL, 0, NULL), 0);
	CHECK_EQ(kmsfs_blocks_open(fk, 0, NULL, 0, NULL, NULL), 0);
	kmsfs_filekey_free(fk);
	kmsfs_filekey_free(NULL);
}

/* Seals 3 blocks (the last short) at first_block; returns stored length. */
struct sealed_run {
	struct kmsfs_filekey *fk;
	uint8_t dek[KMSFS_DEK_LEN];
	uint8_t plain[2 * 4096 + 1000];
	uint8_t stored[3 * (4096 + 40)];
	size_t stored_len;
	size_t block_len;   /* full stored block */
	size_t nonce_len;
	uint64_t first;
};

static void sealed_run_init(struct sealed_run *r, enum kmsfs_cipher cipher)
{
	r->first = 10;
	kmsfs_random(r->dek, sizeof(r->dek));
	r->fk = new_filekey(cipher, r->dek);
	fill_pattern(r->plain, sizeof(r->plain), 3);
	r->block_len = kmsfs_stored_block_len(cipher);
	r->nonce_len = kmsfs_cipher_nonce_len(cipher);
	r->stored_len = (size_t)kmsfs_blocks_seal(r->fk, r->first, r->plain, sizeof(r->plain), r->stored);
	CHECK_EQ(r->stored_len, stored_len_for(sizeof(r->plain), cipher));
}

/* Opens stored as r's file would; expects -EIO at block want_bad and a wiped buffer. */
static void expect_bad(const struct kmsfs_filekey *fk, uint64_t first, const uint8_t *stored,
		       size_t stored_len, uint64_t want_bad, const char *what)
{
	uint8_t out[sizeof(((struct sealed_run *)0)->plain)];
	/* An exactly sized copy, so ASan catches any read past stored_len. */
	uint8_t *exact = xmalloc(stored_len);
	uint64_t bad = ~0ull;
	ssize_t ret;

	memcpy(exact, stored, stored_len);
	memset(out, 0x77, sizeof(out));
	ret = kmsfs_blocks_open(fk, first, exact, stored_len, out, &bad);
	free(exact);
	if (ret != -EIO || bad != want_bad) {
		fprintf(stderr, "%s: open returned %zd bad_block %llu, want -EIO at %llu\n",
			what, ret, (unsigned long long)bad, (unsigned long long)want_bad);
		failures++;
	}
	if (!all_zero(out, (size_t)kmsfs_plain_size(stored_len + KMSFS_HEADER_LEN,
						     kmsfs_filekey_header(fk)->cipher))) {
		fprintf(stderr, "%s: plaintext not wiped after failure\n", what);
		failures++;
	}
}

static void test_blocks_tamper(enum kmsfs_cipher cipher)
{
	struct sealed_run r;
	uint8_t copy[sizeof(r.stored)];
	const char *name = kmsfs_cipher_name(cipher);

	sealed_run_init(&r, cipher);
	size_t last_start = 2 * r.block_len;
	/* Bits to flip: in the nonce, ciphertext and tag of each block. */
	struct { size_t off; uint64_t block; const char *what; } flips[] = {
		{ 0, 0, "nonce of block 0" },
		{ r.nonce_len - 1, 0, "last nonce byte of block 0" },
		{ r.block_len + r.nonce_len + 5, 1, "ciphertext of block 1" },
		{ r.block_len + r.block_len - 1, 1, "tag of block 1" },
		{ last_start + r.nonce_len + 999, 2, "last ciphertext byte of short block 2" },
		{ r.stored_len - 16, 2, "tag of short block 2" },
		{ r.stored_len - 1, 2, "last tag byte of short block 2" },
	};
	for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
		char what[128];

		memcpy(copy, r.stored, r.stored_len);
		copy[flips[i].off] ^= 0x01;
		snprintf(what, sizeof(what), "%s: flipped bit in %s", name, flips[i].what);
		expect_bad(r.fk, r.first, copy, r.stored_len, r.first + flips[i].block, what);
	}

	/* Blocks 0 and 1 swapped: each is now at the wrong index. */
	memcpy(copy, r.stored + r.block_len, r.block_len);
	memcpy(copy + r.block_len, r.stored, r.block_len);
	memcpy(copy + 2 * r.block_len, r.stored + 2 * r.block_len, r.stored_len - 2 * r.block_len);
	expect_bad(r.fk, r.first, copy, r.stored_len, r.first, "swapped blocks");

	/* The whole run read as if it started elsewhere. */
	expect_bad(r.fk, r.first + 1, r.stored, r.stored_len, r.first + 1, "shifted index");
	expect_bad(r.fk, 0, r.stored, r.stored_len, 0, "index 0");

	/* Same DEK, another file ID: a block copied between files. */
	struct kmsfs_filekey *other = new_filekey(cipher, r.dek);
	expect_bad(other, r.first, r.stored, r.stored_len, r.first, "other file id");
	kmsfs_filekey_free(other);

	/* Same header, wrong DEK. */
	uint8_t wrong_dek[KMSFS_DEK_LEN];
	kmsfs_random(wrong_dek, sizeof(wrong_dek));
	other = kmsfs_filekey_new(kmsfs_filekey_header(r.fk), wrong_dek);
	CHECK(other != NULL);
	expect_bad(other, r.first, r.stored, r.stored_len, r.first, "wrong dek");
	kmsfs_filekey_free(other);

	/* Truncated last block (a torn write): authentication fails. */
	expect_bad(r.fk, r.first, r.stored, r.stored_len - 1, r.first + 2, "truncated tail");
	/* Tail no longer than the overhead and not zero: malformed. */
	expect_bad(r.fk, r.first, r.stored, 2 * r.block_len + r.nonce_len + 16, r.first + 2,
		   "tail of exactly overhead bytes");
	expect_bad(r.fk, r.first, r.stored, 2 * r.block_len + 1, r.first + 2, "one-byte tail");

	kmsfs_filekey_free(r.fk);
}

static void test_blocks_holes(enum kmsfs_cipher cipher)
{
	struct sealed_run r;
	uint8_t copy[sizeof(r.stored)], out[sizeof(r.plain)];
	uint64_t bad = 99;
	size_t overhead;

	sealed_run_init(&r, cipher);
	overhead = kmsfs_block_overhead(cipher);

	/* An all-zero run (full blocks and a short tail) reads as zeros. */
	memset(copy, 0, sizeof(copy));
	memset(out, 0x77, sizeof(out));
	CHECK_EQ(kmsfs_blocks_open(r.fk, r.first, copy, r.stored_len, out, &bad), sizeof(r.plain));
	CHECK(all_zero(out, sizeof(out)));
	CHECK_EQ(bad, 99);

	/* A hole in the middle of real data. */
	memcpy(copy, r.stored, r.stored_len);
	memset(copy + r.block_len, 0, r.block_len);
	memset(out, 0x77, sizeof(out));
	CHECK_EQ(kmsfs_blocks_open(r.fk, r.first, copy, r.stored_len, out, NULL), sizeof(r.plain));
	CHECK(memcmp(out, r.plain, 4096) == 0);
	CHECK(all_zero(out + 4096, 4096));
	CHECK(memcmp(out + 8192, r.plain + 8192, 1000) == 0);

	/* A zero tail too short to hold data is an empty hole, not an error. */
	memset(copy + 2 * r.block_len, 0, overhead);
	CHECK_EQ(kmsfs_blocks_open(r.fk, r.first, copy, 2 * r.block_len + overhead, out, NULL), 8192);
	CHECK_EQ(kmsfs_blocks_open(r.fk, r.first, copy, 2 * r.block_len + 1, out, NULL), 8192);

	/* A hole block with one non-zero byte is forged data, not a hole. */
	copy[r.block_len + 100] = 1;
	expect_bad(r.fk, r.first, copy, r.stored_len, r.first + 1, "almost-zero block");
	memset(copy + r.block_len, 0, r.block_len);
	copy[2 * r.block_len - 1] = 1;
	expect_bad(r.fk, r.first, copy, r.stored_len, r.first + 1, "zero block with last byte set");

	kmsfs_filekey_free(r.fk);
}

static void test_filekey_params(void)
{
	struct kmsfs_header hdr;
	uint8_t dek[KMSFS_DEK_LEN] = { 0 };

	kmsfs_header_new(&hdr, KMSFS_CIPHER_NONE);
	CHECK(kmsfs_filekey_new(&hdr, dek) == NULL);
	kmsfs_header_new(&hdr, KMSFS_CIPHER_AES_256_GCM);
	CHECK(kmsfs_filekey_new(&hdr, NULL) == NULL);
	CHECK(kmsfs_filekey_new(NULL, dek) == NULL);
	CHECK_EQ(kmsfs_blocks_seal(NULL, 0, dek, 1, dek), -EINVAL);
}

/* ---- threads --------------------------------------------------------------- */

#define THREADS 4
#define THREAD_ROUNDS 50
#define THREAD_LEN (64 * 1024 + 300)

struct thread_arg {
	const struct kmsfs_filekey *fk;
	unsigned id;
	int failed;
};

static void *thread_main(void *p)
{
	struct thread_arg *arg = p;
	enum kmsfs_cipher cipher = kmsfs_filekey_header(arg->fk)->cipher;
	size_t slen = stored_len_for(THREAD_LEN, cipher);
	uint8_t *plain = xmalloc(THREAD_LEN), *out = xmalloc(THREAD_LEN), *stored = xmalloc(slen);

	for (unsigned round = 0; round < THREAD_ROUNDS && !arg->failed; round++) {
		uint64_t first = arg->id * 1000 + round;

		fill_pattern(plain, THREAD_LEN, arg->id + round);
		if (kmsfs_blocks_seal(arg->fk, first, plain, THREAD_LEN, stored) != (ssize_t)slen ||
		    kmsfs_blocks_open(arg->fk, first, stored, slen, out, NULL) != THREAD_LEN ||
		    memcmp(plain, out, THREAD_LEN) != 0)
			arg->failed = 1;
	}
	free(plain);
	free(out);
	free(stored);
	return NULL;
}

static void test_threads(enum kmsfs_cipher cipher)
{
	uint8_t dek[KMSFS_DEK_LEN];
	struct kmsfs_filekey *fk;
	pthread_t threads[THREADS];
	struct thread_arg args[THREADS];

	kmsfs_random(dek, sizeof(dek));
	fk = new_filekey(cipher, dek);
	for (unsigned i = 0; i < THREADS; i++) {
		args[i] = (struct thread_arg){ .fk = fk, .id = i };
		CHECK_EQ(pthread_create(&threads[i], NULL, thread_main, &args[i]), 0);
	}
	for (unsigned i = 0; i < THREADS; i++) {
		pthread_join(threads[i], NULL);
		CHECK_EQ(args[i].failed, 0);
	}
	kmsfs_filekey_free(fk);
}

int main(void)
{
	if (kmsfs_crypto_init() != 0) {
		fprintf(stderr, "kmsfs_crypto_init failed\n");
		return 1;
	}
	test_secmem();
	test_secmem_pool();
	test_cipher_names();
	test_aead_params();
	test_header();
	test_filekey_params();
	for (size_t c = 0; c < NCIPHERS; c++) {
		enum kmsfs_cipher cipher = all_ciphers[c];

		test_aead_roundtrip(cipher);
		test_sizes(cipher);
		test_blocks_roundtrip(cipher);
		test_blocks_tamper(cipher);
		test_blocks_holes(cipher);
		test_threads(cipher);
	}
	if (failures) {
		fprintf(stderr, "test_crypto: %d check(s) failed\n", failures);
		return 1;
	}
	printf("test_crypto: all checks passed\n");
	return 0;
}
