/*
 * test_offline.c - the keyring and backing-file helpers kmsfs snapshot
 * copy, rekey and fsck are built on (fs/keyring.c, fs/backing.c), against
 * a real local key store in a scratch directory:
 *   - a version-1 data key unwraps, rewraps to another volume and key
 *     through ReEncrypt (no plaintext here), and the moved value no longer
 *     opens for the old volume;
 *   - a bucket-key (version-2) value rewraps within its volume through
 *     ReEncrypt of the bucket key, and to another volume only through the
 *     client (reported as such);
 *   - malformed values are refused;
 *   - a sparse backing file copies byte for byte and stays sparse,
 *     re-encrypts to new ciphertext with the same plaintext hash, and a
 *     flipped bit is found with its block index.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"

static int failures;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		failures++; \
	} \
} while (0)

#define DATA_BLOCKS 3              /* blocks 0..2 hold data, then a hole, then a tail */
#define HOLE_BLOCKS 300
#define TAIL_LEN 1000
#define PLAIN_LEN ((DATA_BLOCKS + HOLE_BLOCKS) * KMSFS_BLOCK_SIZE + TAIL_LEN)

static char scratch[] = "/tmp/kmsfs-test-offline.XXXXXX";
static struct keyclient *kc;
static struct kc_caller caller;
static char principal[64];
static uint8_t plain[PLAIN_LEN];

static void make_volume(struct kmsfs_volume *vol, const char *id, const char *key_arn,
			int bucket_key)
{
	memset(vol, 0, sizeof(*vol));
	snprintf(vol->id, sizeof(vol->id), "%s", id);
	vol->format = KMSFS_FORMAT_VERSION;
	vol->cipher = KMSFS_CIPHER_AES_256_GCM;
	vol->block_size = KMSFS_BLOCK_SIZE;
	snprintf(vol->key_id, sizeof(vol->key_id), "%s", key_arn);
	snprintf(vol->key_service, sizeof(vol->key_service), "local");
	vol->bucket_key = bucket_key;
}

static void sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
	EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL);
}

/* A backing file of plain[] sealed under fk, with the hole left unwritten. */
static int write_backing(const char *path, const struct kmsfs_filekey *fk)
{
	size_t stored = kmsfs_stored_block_len(KMSFS_CIPHER_AES_256_GCM);
	uint8_t hdr[KMSFS_HEADER_LEN], *sealed = malloc(DATA_BLOCKS * stored);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ssize_t n;

	if (fd < 0 || !sealed)
		return -1;
	kmsfs_header_encode(kmsfs_filekey_header(fk), hdr);
	CHECK(pwrite(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr));
	n = kmsfs_blocks_seal(fk, 0, plain, DATA_BLOCKS * KMSFS_BLOCK_SIZE, sealed);
	CHECK(n == (ssize_t)(DATA_BLOCKS * stored));
	CHECK(pwrite(fd, sealed, (size_t)n, KMSFS_HEADER_LEN) == n);
	n = kmsfs_blocks_seal(fk, DATA_BLOCKS + HOLE_BLOCKS,
			      plain + (DATA_BLOCKS + HOLE_BLOCKS) * KMSFS_BLOCK_SIZE, TAIL_LEN,
			      sealed);
	CHECK(n > 0 && pwrite(fd, sealed, (size_t)n,
			      (off_t)kmsfs_block_offset(DATA_BLOCKS + HOLE_BLOCKS,
							KMSFS_CIPHER_AES_256_GCM)) == n);
	free(sealed);
	return fd;
}

static struct kmsfs_filekey *filekey(const struct kmsfs_header *hdr, const uint8_t *dek)
{
	return kmsfs_filekey_new(hdr, dek);
}

static void test_v1(const char *key_a, const char *key_b)
{
	struct kmsfs_volume vol_a, vol_b;
	struct kmsfs_keyring *kr_a, *kr_b;
	struct kmsfs_header hdr;
	struct kc_error err = { 0 };
	uint8_t *dek = kmsfs_secure_alloc(KMSFS_DEK_LEN), *back = kmsfs_secure_alloc(KMSFS_DEK_LEN);
	uint8_t wrapped[KMSFS_DEK_XATTR_MAX], moved[KMSFS_DEK_XATTR_MAX];
	size_t wrapped_len = 0, moved_len = 0;
	int plaintext_used = -1;

	make_volume(&vol_a, "11111111-1111-4111-8111-111111111111", key_a, 0);
	make_volume(&vol_b, "22222222-2222-4222-8222-222222222222", key_b, 0);
	kr_a = kmsfs_keyring_new(&vol_a, kc, &caller);
	kr_b = kmsfs_keyring_new(&vol_b, kc, &caller);
	kmsfs_header_new(&hdr, KMSFS_CIPHER_AES_256_GCM);

	CHECK(kmsfs_keyring_wrap(kr_a, &hdr, "a.txt", dek, 1, wrapped, &wrapped_len, &err) == 0);
	CHECK(wrapped[0] == 1);
	CHECK(kmsfs_keyring_unwrap(kr_a, &hdr, "a.txt", wrapped, wrapped_len, back, &err) == 0);
	CHECK(memcmp(dek, back, KMSFS_DEK_LEN) == 0);

	CHECK(kmsfs_keyring_rewrap(kr_a, kr_b, &hdr, "a.txt", wrapped, wrapped_len, moved,
				   &moved_len, &plaintext_used, &err) == 0);
	CHECK(plaintext_used == 0);
	CHECK(memmem(moved, moved_len, key_b, strlen(key_b)) != NULL);
	memset(back, 0, KMSFS_DEK_LEN);
	CHECK(kmsfs_keyring_unwrap(kr_b, &hdr, "a.txt", moved, moved_len, back, &err) == 0);
	CHECK(memcmp(dek, back, KMSFS_DEK_LEN) == 0);
	/* Bound to volume B now: volume A's context does not open it. */
	CHECK(kmsfs_keyring_unwrap(kr_a, &hdr, "a.txt", moved, moved_len, back, &err) == -EIO);
	CHECK(err.status == KC_INVALID_CIPHERTEXT);
	/* Nor does another file's header. */
	{
		struct kmsfs_header other;

		kmsfs_header_new(&other, KMSFS_CIPHER_AES_256_GCM);
		CHECK(kmsfs_keyring_unwrap(kr_b, &other, "b.txt", moved, moved_len, back,
					   &err) == -EIO);
	}
	/* Malformed and unknown versions. */
	CHECK(kmsfs_keyring_unwrap(kr_a, &hdr, "a.txt", wrapped, 2, back, &err) == -EIO);
	CHECK(err.status == KC_VALIDATION);
	wrapped[0] = 9;
	CHECK(kmsfs_keyring_unwrap(kr_a, &hdr, "a.txt", wrapped, wrapped_len, back, &err) == -EIO);
	CHECK(strstr(err.message, "version 9") != NULL);

	kmsfs_keyring_free(kr_a);
	kmsfs_keyring_free(kr_b);
	kmsfs_secure_free(dek);
	kmsfs_secure_free(back);
}

static void test_v2(const char *key_a, const char *key_b)
{
	struct kmsfs_volume vol, rekeyed, other;
	struct kmsfs_keyring *kr, *kr_new, *kr_other;
	struct kmsfs_header hdr;
	struct kc_error err = { 0 };
	uint8_t *dek = kmsfs_secure_alloc(KMSFS_DEK_LEN), *back = kmsfs_secure_alloc(KMSFS_DEK_LEN);
	uint8_t wrapped[KMSFS_DEK_XATTR_MAX], moved[KMSFS_DEK_XATTR_MAX];
	size_t wrapped_len = 0, moved_len = 0;
	int plaintext_used = -1;

	make_volume(&vol, "33333333-3333-4333-8333-333333333333", key_a, 1);
	rekeyed = vol;
	snprintf(rekeyed.key_id, sizeof(rekeyed.key_id), "%s", key_b);
	make_volume(&other, "44444444-4444-4444-8444-444444444444", key_b, 1);
	kr = kmsfs_keyring_new(&vol, kc, &caller);
	kr_new = kmsfs_keyring_new(&rekeyed, kc, &caller);
	kr_other = kmsfs_keyring_new(&other, kc, &caller);
	kmsfs_header_new(&hdr, KMSFS_CIPHER_AES_256_GCM);

	CHECK(kmsfs_keyring_wrap(kr, &hdr, "v2.bin", dek, 1, wrapped, &wrapped_len, &err) == 0);
	CHECK(wrapped[0] == 2);
	CHECK(kmsfs_keyring_unwrap(kr, &hdr, "v2.bin", wrapped, wrapped_len, back, &err) == 0);
	CHECK(memcmp(dek, back, KMSFS_DEK_LEN) == 0);

	/* Rekey: same volume, the bucket key moves, the seal stays. */
	CHECK(kmsfs_keyring_rewrap(kr, kr_new, &hdr, "v2.bin", wrapped, wrapped_len, moved,
				   &moved_len, &plaintext_used, &err) == 0);
	CHECK(plaintext_used == 0);
	CHECK(memmem(moved, moved_len, key_b, strlen(key_b)) != NULL);
	CHECK(memcmp(moved + moved_len - 72, wrapped + wrapped_len - 72, 72) == 0);
	memset(back, 0, KMSFS_DEK_LEN);
	CHECK(kmsfs_keyring_unwrap(kr_new, &hdr, "v2.bin", moved, moved_len, back, &err) == 0);
	CHECK(memcmp(dek, back, KMSFS_DEK_LEN) == 0);

	/* A version-1 file of a bucket-key volume stays version 1, through ReEncrypt. */
	{
		struct kmsfs_volume plain_vol;
		struct kmsfs_keyring *kr_plain;

		make_volume(&plain_vol, vol.id, key_a, 0);
		kr_plain = kmsfs_keyring_new(&plain_vol, kc, &caller);
		CHECK(kmsfs_keyring_wrap(kr_plain, &hdr, "v1.bin", back, 1, moved, &moved_len,
					 &err) == 0);
		CHECK(kmsfs_keyring_rewrap(kr_plain, kr_new, &hdr, "v1.bin", moved, moved_len,
					   wrapped + 0, &wrapped_len, &plaintext_used, &err) == 0);
		CHECK(plaintext_used == 0 && wrapped[0] == 1);
		CHECK(kmsfs_keyring_unwrap(kr_new, &hdr, "v1.bin", wrapped, wrapped_len, back,
					   &err) == 0);
		kmsfs_keyring_free(kr_plain);
		/* Back to the version-2 value for the rest. */
		CHECK(kmsfs_keyring_wrap(kr, &hdr, "v2.bin", dek, 0, wrapped, &wrapped_len,
					 &err) == 0);
	}

	/* Another volume: the seal binds the volume id, so through the client. */
	CHECK(kmsfs_keyring_rewrap(kr, kr_other, &hdr, "v2.bin", wrapped, wrapped_len, moved,
				   &moved_len, &plaintext_used, &err) == 0);
	CHECK(plaintext_used == 1);
	memset(back, 0, KMSFS_DEK_LEN);
	CHECK(kmsfs_keyring_unwrap(kr_other, &hdr, "v2.bin", moved, moved_len, back, &err) == 0);
	CHECK(memcmp(dek, back, KMSFS_DEK_LEN) == 0);
	CHECK(kmsfs_keyring_unwrap(kr, &hdr, "v2.bin", moved, moved_len, back, &err) == -EIO);

	kmsfs_keyring_free(kr);
	kmsfs_keyring_free(kr_new);
	kmsfs_keyring_free(kr_other);
	kmsfs_secure_free(dek);
	kmsfs_secure_free(back);
}

static int count_equal_blocks(const char *a, const char *b)
{
	size_t stored = kmsfs_stored_block_len(KMSFS_CIPHER_AES_256_GCM);
	uint8_t *ba = malloc(stored), *bb = malloc(stored);
	int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY), equal = 0;

	for (uint64_t i = 0; i <= DATA_BLOCKS + HOLE_BLOCKS; i++) {
		off_t off = (off_t)kmsfs_block_offset(i, KMSFS_CIPHER_AES_256_GCM);
		ssize_t na = pread(fa, ba, stored, off), nb = pread(fb, bb, stored, off);
		int zero = 1;

		for (ssize_t j = 0; j < na; j++)
			zero &= ba[j] == 0;
		if (!zero && na == nb && memcmp(ba, bb, (size_t)na) == 0)
			equal++;
	}
	close(fa);
	close(fb);
	free(ba);
	free(bb);
	return equal;
}

static void test_backing(void)
{
	char src_path[4200], copy_path[4200], re_path[4200];
	uint8_t *dek = kmsfs_secure_alloc(KMSFS_DEK_LEN), *dek2 = kmsfs_secure_alloc(KMSFS_DEK_LEN);
	uint8_t want[32], got[32];
	struct kmsfs_header hdr, hdr2;
	struct kmsfs_filekey *fk, *fk2;
	uint64_t bad = 0, bytes = 0;
	struct stat st_src, st_copy, st_re;
	int src, copy, re;

	for (size_t i = 0; i < PLAIN_LEN; i++)
		plain[i] = (uint8_t)(i * 7 + i / 4096);
	memset(plain + DATA_BLOCKS * KMSFS_BLOCK_SIZE, 0, HOLE_BLOCKS * KMSFS_BLOCK_SIZE);
	sha256(plain, PLAIN_LEN, want);

	kmsfs_random(dek, KMSFS_DEK_LEN);
	kmsfs_header_new(&hdr, KMSFS_CIPHER_AES_256_GCM);
	fk = filekey(&hdr, dek);
	snprintf(src_path, sizeof(src_path), "%s/src", scratch);
	snprintf(copy_path, sizeof(copy_path), "%s/copy", scratch);
	snprintf(re_path, sizeof(re_path), "%s/re", scratch);
	src = write_backing(src_path, fk);
	CHECK(src >= 0);

	CHECK(kmsfs_backing_hash(src, fk, got, &bad, &bytes) == 0);
	CHECK(memcmp(want, got, 32) == 0);
	CHECK(bytes == PLAIN_LEN);

	copy = open(copy_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	bytes = 0;
	CHECK(kmsfs_backing_copy(src, copy, &bytes) == 0);
	CHECK(bytes == PLAIN_LEN);
	CHECK(fstat(src, &st_src) == 0 && fstat(copy, &st_copy) == 0);
	CHECK(st_copy.st_size == st_src.st_size);
	CHECK(st_copy.st_blocks * 512 < 64 * 1024);          /* the hole stayed a hole */
	CHECK(kmsfs_backing_hash(copy, fk, got, &bad, NULL) == 0);
	CHECK(memcmp(want, got, 32) == 0);

	kmsfs_random(dek2, KMSFS_DEK_LEN);
	kmsfs_header_new(&hdr2, KMSFS_CIPHER_AES_256_GCM);
	fk2 = filekey(&hdr2, dek2);
	re = open(re_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(kmsfs_backing_reencrypt(src, fk, re, fk2, &bad, NULL) == 0);
	CHECK(fstat(re, &st_re) == 0 && st_re.st_size == st_src.st_size);
	CHECK(st_re.st_blocks * 512 < 64 * 1024);
	CHECK(kmsfs_backing_hash(re, fk2, got, &bad, NULL) == 0);
	CHECK(memcmp(want, got, 32) == 0);
	CHECK(kmsfs_backing_hash(re, fk, got, &bad, NULL) == -EIO);   /* old key: no */
	CHECK(count_equal_blocks(src_path, re_path) == 0);
	CHECK(count_equal_blocks(src_path, copy_path) == DATA_BLOCKS + 1);

	/* A flipped bit in block 2 is found, and named. */
	{
		off_t off = (off_t)kmsfs_block_offset(2, KMSFS_CIPHER_AES_256_GCM) + 100;
		uint8_t byte;

		CHECK(pread(copy, &byte, 1, off) == 1);
		byte ^= 0x10;
		CHECK(pwrite(copy, &byte, 1, off) == 1);
		bad = 0;
		CHECK(kmsfs_backing_hash(copy, fk, got, &bad, NULL) == -EIO);
		CHECK(bad == 2);
		CHECK(kmsfs_backing_reencrypt(copy, fk, re, fk2, &bad, NULL) == -EIO);
	}
	close(src);
	close(copy);
	close(re);
	kmsfs_filekey_free(fk);
	kmsfs_filekey_free(fk2);
	kmsfs_secure_free(dek);
	kmsfs_secure_free(dek2);
}

int main(void)
{
	struct kc_key_info key_a, key_b;
	struct kc_error err = { 0 };
	char store[4200];

	if (kmsfs_crypto_init() != 0 || !mkdtemp(scratch))
		return 2;
	snprintf(store, sizeof(store), "%s/store", scratch);
	kc_local_principal(getuid(), principal, sizeof(principal));
	caller = (struct kc_caller){ .principal = principal, .uid = getuid(), .pid = getpid() };
	if (kc_local_open(store, "offline test passphrase", 1, &kc, &err) != KC_OK ||
	    kc->ops->create_key(kc, "A", &caller, &key_a, &err) != KC_OK ||
	    kc->ops->create_key(kc, "B", &caller, &key_b, &err) != KC_OK) {
		fprintf(stderr, "key store: %s\n", err.message);
		return 2;
	}
	test_v1(key_a.arn, key_b.arn);
	test_v2(key_a.arn, key_b.arn);
	test_backing();
	keyclient_free(kc);
	if (failures) {
		fprintf(stderr, "test_offline: %d check(s) failed (scratch %s)\n", failures, scratch);
	} else {
		char rm[sizeof(scratch) + 16];

		snprintf(rm, sizeof(rm), "rm -rf '%s'", scratch);
		if (system(rm) != 0)
			fprintf(stderr, "test_offline: could not remove %s\n", scratch);
		printf("test_offline: all checks passed\n");
	}
	return failures ? 1 : 0;
}
