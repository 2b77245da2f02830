/*
 * crypto_internal.h - helpers shared inside crypto/ only (not part of the
 * public contract in crypto.h).
 */
#ifndef KMSFS_CRYPTO_INTERNAL_H
#define KMSFS_CRYPTO_INTERNAL_H

#include <stddef.h>

#include <openssl/evp.h>

/*
 * The AES-GCM EVP_CIPHER for a 16-, 24- or 32-byte key, fetched once per
 * process (OpenSSL 3 otherwise does an implicit provider fetch on every
 * init, which is measurable on the 4 KiB block path). NULL for any other
 * key length or if the provider has no GCM. Never freed: it lives as long
 * as the process.
 */
const EVP_CIPHER *kmsfs_gcm_cipher(size_t key_len);

/* keypool.c: slots for secrets of up to KEYPOOL_SLOT bytes in shared locked chunks. */
#define KEYPOOL_SLOT 64                  /* the smallest class: data keys */
#define KEYPOOL_MAX 65536                /* larger secrets get their own sodium_malloc */
/* Zeroed slot of at least len bytes (1..KEYPOOL_MAX), or NULL. */
void *kmsfs_keypool_alloc(size_t len);
int kmsfs_keypool_free(void *ptr);

#endif /* KMSFS_CRYPTO_INTERNAL_H */
