/*
 * asym.h - the asymmetric cryptography behind the KMS API's RSA and ECC
 * keys and key import (api_asym.c, api_import.c), on OpenSSL 3: key pair
 * generation, DER encoding and decoding, signatures over a digest,
 * RSA-OAEP, AES key wrap with padding, and private keys sealed under the
 * root key.
 *
 * Private keys exist only as PKCS#8 DER in secure memory or as EVP_PKEY
 * objects the caller frees right after use. Nothing here reports why an
 * operation failed beyond -1 / NULL: callers choose the AWS error, and
 * no key bytes can reach a message. The OpenSSL error queue is cleared
 * on every failure so one request's errors never show up in another's.
 */
#ifndef KMSFS_KEYCLIENT_ASYM_H
#define KMSFS_KEYCLIENT_ASYM_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "local_internal.h"

/* ---- key specs ------------------------------------------------------------------------- */

struct kc_asym_spec {
	const char *name;          /* KeySpec / KeyPairSpec: "RSA_2048", "ECC_NIST_P256", ... */
	int rsa_bits;              /* 0 for elliptic curves */
	const char *curve;         /* OpenSSL group name; NULL for RSA */
	const char *ecdsa;         /* the one SigningAlgorithm of an ECC spec; NULL for RSA */
};

/* The spec this engine makes keys of, or NULL. */
const struct kc_asym_spec *kc_asym_spec(const char *name);

/* ---- key pairs ------------------------------------------------------------------------- */

struct kc_asym_pair {
	uint8_t *private_der;      /* PKCS#8 PrivateKeyInfo, secure memory */
	size_t private_len;
	uint8_t *public_der;       /* X.509 SubjectPublicKeyInfo, malloc'ed */
	size_t public_len;
};

/* A fresh key pair of spec. 0 or -1 (pair left empty). */
int kc_asym_generate(const struct kc_asym_spec *spec, struct kc_asym_pair *pair);
/* Wipes and frees both halves; the struct may be reused. */
void kc_asym_pair_free(struct kc_asym_pair *pair);

/* Whole-buffer DER decoders (trailing bytes refused). NULL when not a key. */
EVP_PKEY *kc_asym_private_key(const uint8_t *der, size_t der_len);
EVP_PKEY *kc_asym_public_key(const uint8_t *der, size_t der_len);

/* ---- signatures ------------------------------------------------------------------------ */

enum kc_sig_scheme { KC_SIG_RSA_PSS, KC_SIG_RSA_PKCS1, KC_SIG_ECDSA };

struct kc_sig_alg {
	const char *name;          /* SigningAlgorithm: "RSASSA_PSS_SHA_256", "ECDSA_SHA_384", ... */
	const char *md;            /* OpenSSL digest name */
	size_t digest_len;         /* a DIGEST message must be exactly this long */
	enum kc_sig_scheme scheme;
};

/* A signing algorithm this engine implements, or NULL. */
const struct kc_sig_alg *kc_asym_sig_alg(const char *name);
/* Does a key of spec sign with alg (AWS's pairing)? */
int kc_asym_spec_signs(const struct kc_asym_spec *spec, const struct kc_sig_alg *alg);
/* alg's digest of message into digest (alg->digest_len bytes). 0 or -1. */
int kc_asym_digest(const struct kc_sig_alg *alg, const uint8_t *message, size_t message_len,
		uint8_t digest[EVP_MAX_MD_SIZE]);
/*
 * Sign a digest (alg->digest_len bytes). RSA-PSS uses MGF1 with the same
 * digest and a salt as long as the digest; ECDSA signatures are DER.
 * *signature malloc'ed. 0 or -1.
 */
int kc_asym_sign(EVP_PKEY *key, const struct kc_sig_alg *alg, const uint8_t *digest,
		uint8_t **signature, size_t *signature_len);
/* 1: signature verifies; 0: it does not (or is malformed); -1: could not try. */
int kc_asym_verify(EVP_PKEY *key, const struct kc_sig_alg *alg, const uint8_t *digest,
		const uint8_t *signature, size_t signature_len);

/* ---- RSA-OAEP ----------------------------------------------------------------------------- */

/*
 * md is the OpenSSL digest name used for both the label hash and MGF1
 * ("SHA1", "SHA256"), as AWS's RSAES_OAEP_SHA_1 / RSAES_OAEP_SHA_256.
 */
/* The largest plaintext: modulus bytes - 2 * digest bytes - 2 (0 when md is unknown). */
size_t kc_asym_oaep_max(int rsa_bits, const char *md);
/* *ciphertext malloc'ed (modulus bytes long). 0 or -1. */
int kc_asym_oaep_encrypt(EVP_PKEY *key, const char *md, const uint8_t *plaintext,
		size_t plaintext_len, uint8_t **ciphertext, size_t *ciphertext_len);
/* plaintext: caller's secure memory of plaintext_cap bytes. 0 or -1 (wrong key, damaged). */
int kc_asym_oaep_decrypt(EVP_PKEY *key, const char *md, const uint8_t *ciphertext,
		size_t ciphertext_len, uint8_t *plaintext, size_t plaintext_cap, size_t *plaintext_len);
/* The modulus length in bytes of an RSA key (0 for other keys). */
size_t kc_asym_rsa_bytes(EVP_PKEY *key);

/* ---- AES key wrap with padding (RFC 5649) -------------------------------------------------- */

#define KC_AES_KWP_KEY_LEN 32      /* AES-256, as AWS's RSA_AES_KEY_WRAP_* */

/* plaintext: caller's secure memory of at least wrapped_len bytes. 0 or -1. */
int kc_aes_kwp_unwrap(const uint8_t kek[KC_AES_KWP_KEY_LEN], const uint8_t *wrapped,
		size_t wrapped_len, uint8_t *plaintext, size_t plaintext_cap, size_t *plaintext_len);

/* ---- private keys sealed under the root key ----------------------------------------------- */

/* *sealed malloc'ed, KC_SEALED_LEN(der_len) bytes. 0 or -1. */
int kc_asym_seal_private(const uint8_t root_key[KC_KEY_LEN], const uint8_t *aad, size_t aad_len,
		const uint8_t *der, size_t der_len, uint8_t **sealed, size_t *sealed_len);
/* Unseal (in secure memory, wiped at once) and decode. NULL when it does not open. */
EVP_PKEY *kc_asym_unseal_private(const uint8_t root_key[KC_KEY_LEN], const uint8_t *aad,
		size_t aad_len, const uint8_t *sealed, size_t sealed_len);

#endif /* KMSFS_KEYCLIENT_ASYM_H */
