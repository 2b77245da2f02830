/*
 * secmem.c - library setup and secure memory for kmsfs's crypto module.
 *
 * Key material (DEKs, bucket keys) must never reach swap or a core dump
 * and must not linger after use, so it lives in libsodium's guarded
 * allocations: mlock'ed pages bracketed by guard pages and marked
 * MADV_DONTDUMP. The other helpers here are thin wrappers so the rest of
 * kmsfs never calls libsodium directly for these basics.
 */
#include "crypto.h"
#include "crypto_internal.h"

#include <errno.h>
#include <stdio.h>

#include <openssl/crypto.h>
#include <sodium.h>

int kmsfs_crypto_init(void)
{
	/*
	 * sodium_init() picks the CPU-specific implementations and opens the
	 * random source; without it randombytes_buf() could abort later in a
	 * worker thread, so refuse to start instead.
	 */
	if (sodium_init() < 0) {
		fprintf(stderr, "kmsfs: libsodium initialisation failed\n");
		return -EIO;
	}
	if (OPENSSL_init_crypto(0, NULL) != 1) {
		fprintf(stderr, "kmsfs: OpenSSL initialisation failed\n");
		return -EIO;
	}
	/* Fetch the GCM implementations now so a broken provider fails at start. */
	if (!kmsfs_gcm_cipher(KMSFS_DEK_LEN)) {
		fprintf(stderr, "kmsfs: OpenSSL has no AES-256-GCM implementation\n");
		return -EIO;
	}
	return 0;
}

/* Secrets up to KEYPOOL_MAX bytes share locked chunks: see keypool.c. */
void *kmsfs_secure_alloc(size_t len)
{
	void *ptr;

	if (len > 0 && len <= KEYPOOL_MAX)
		return kmsfs_keypool_alloc(len);
	ptr = sodium_malloc(len);
	if (ptr)
		sodium_memzero(ptr, len);   /* pool slots are zeroed: so is this */
	return ptr;
}

void kmsfs_secure_free(void *ptr)
{
	if (!ptr || kmsfs_keypool_free(ptr))
		return;
	/* sodium_free() wipes before unmapping. */
	sodium_free(ptr);
}

int kmsfs_ct_memcmp(const void *a, const void *b, size_t len)
{
	return sodium_memcmp(a, b, len);
}

void kmsfs_random(void *buf, size_t len)
{
	randombytes_buf(buf, len);
}

void kmsfs_wipe(void *buf, size_t len)
{
	if (buf && len)
		sodium_memzero(buf, len);
}
