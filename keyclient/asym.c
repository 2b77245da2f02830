/*
 * asym.c - OpenSSL 3 for the KMS API's asymmetric keys (asym.h): the
 * specs and signing algorithms AWS pairs them with, key pairs as PKCS#8
 * and SubjectPublicKeyInfo DER, signatures over digests, RSA-OAEP, AES
 * key wrap with padding, and private keys sealed under the root key.
 *
 * Secrets stay in secure memory (kmsfs_secure_alloc) or inside OpenSSL
 * objects that live for one call. Every failure clears OpenSSL's
 * thread-local error queue: a later, unrelated call must not find it.
 */
#include "asym.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "crypto.h"

/* ---- tables -------------------------------------------------------------------------------- */

static const struct kc_asym_spec specs[] = {
	{ "RSA_2048", 2048, NULL, NULL },
	{ "RSA_3072", 3072, NULL, NULL },
	{ "RSA_4096", 4096, NULL, NULL },
	{ "ECC_NIST_P256", 0, "P-256", "ECDSA_SHA_256" },
	{ "ECC_NIST_P384", 0, "P-384", "ECDSA_SHA_384" },
	{ "ECC_NIST_P521", 0, "P-521", "ECDSA_SHA_512" },
	{ "ECC_SECG_P256K1", 0, "secp256k1", "ECDSA_SHA_256" },
};

static const struct kc_sig_alg sig_algs[] = {
	{ "RSASSA_PSS_SHA_256", "SHA256", 32, KC_SIG_RSA_PSS },
	{ "RSASSA_PSS_SHA_384", "SHA384", 48, KC_SIG_RSA_PSS },
	{ "RSASSA_PSS_SHA_512", "SHA512", 64, KC_SIG_RSA_PSS },
	{ "RSASSA_PKCS1_V1_5_SHA_256", "SHA256", 32, KC_SIG_RSA_PKCS1 },
	{ "RSASSA_PKCS1_V1_5_SHA_384", "SHA384", 48, KC_SIG_RSA_PKCS1 },
	{ "RSASSA_PKCS1_V1_5_SHA_512", "SHA512", 64, KC_SIG_RSA_PKCS1 },
	{ "ECDSA_SHA_256", "SHA256", 32, KC_SIG_ECDSA },
	{ "ECDSA_SHA_384", "SHA384", 48, KC_SIG_ECDSA },
	{ "ECDSA_SHA_512", "SHA512", 64, KC_SIG_ECDSA },
};

const struct kc_asym_spec *kc_asym_spec(const char *name)
{
	for (size_t i = 0; name && i < sizeof specs / sizeof *specs; i++)
		if (strcmp(specs[i].name, name) == 0)
			return &specs[i];
	return NULL;
}

const struct kc_sig_alg *kc_asym_sig_alg(const char *name)
{
	for (size_t i = 0; name && i < sizeof sig_algs / sizeof *sig_algs; i++)
		if (strcmp(sig_algs[i].name, name) == 0)
			return &sig_algs[i];
	return NULL;
}

int kc_asym_spec_signs(const struct kc_asym_spec *spec, const struct kc_sig_alg *alg)
{
	if (spec->rsa_bits)
		return alg->scheme != KC_SIG_ECDSA;
	return strcmp(alg->name, spec->ecdsa) == 0;
}

/* ---- key pairs ------------------------------------------------------------------------------- */

/* PKCS#8 straight into secure memory: no plain-heap copy of the DER. */
static int encode_private(EVP_PKEY *pkey, uint8_t **der, size_t *der_len)
{
	PKCS8_PRIV_KEY_INFO *info = EVP_PKEY2PKCS8(pkey);
	unsigned char *cursor;
	int len = info ? i2d_PKCS8_PRIV_KEY_INFO(info, NULL) : -1;
	int rc = -1;

	*der = len > 0 ? kmsfs_secure_alloc((size_t)len) : NULL;
	if (!*der)
		goto out;
	cursor = *der;
	if (i2d_PKCS8_PRIV_KEY_INFO(info, &cursor) != len)
		goto out;
	*der_len = (size_t)len;
	rc = 0;
out:
	PKCS8_PRIV_KEY_INFO_free(info);   /* clears its copy of the key */
	if (rc != 0) {
		kmsfs_secure_free(*der);
		*der = NULL;
	}
	return rc;
}

static int encode_public(EVP_PKEY *pkey, uint8_t **der, size_t *der_len)
{
	unsigned char *cursor;
	int len = i2d_PUBKEY(pkey, NULL);

	*der = len > 0 ? malloc((size_t)len) : NULL;
	if (!*der)
		return -1;
	cursor = *der;
	if (i2d_PUBKEY(pkey, &cursor) != len) {
		free(*der);
		*der = NULL;
		return -1;
	}
	*der_len = (size_t)len;
	return 0;
}

int kc_asym_generate(const struct kc_asym_spec *spec, struct kc_asym_pair *pair)
{
	EVP_PKEY *pkey;
	int rc = -1;

	memset(pair, 0, sizeof *pair);
	if (spec->rsa_bits)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)spec->rsa_bits);
	else
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", spec->curve);
	if (!pkey)
		goto out;
	if (encode_private(pkey, &pair->private_der, &pair->private_len) != 0 ||
	    encode_public(pkey, &pair->public_der, &pair->public_len) != 0)
		goto out;
	rc = 0;
out:
	EVP_PKEY_free(pkey);
	if (rc != 0) {
		kc_asym_pair_free(pair);
		ERR_clear_error();
	}
	return rc;
}

void kc_asym_pair_free(struct kc_asym_pair *pair)
{
	kmsfs_secure_free(pair->private_der);
	free(pair->public_der);
	memset(pair, 0, sizeof *pair);
}

EVP_PKEY *kc_asym_private_key(const uint8_t *der, size_t der_len)
{
	const unsigned char *cursor = der;
	PKCS8_PRIV_KEY_INFO *info;
	EVP_PKEY *pkey = NULL;

	if (der_len == 0 || der_len > LONG_MAX)
		return NULL;
	info = d2i_PKCS8_PRIV_KEY_INFO(NULL, &cursor, (long)der_len);
	if (info && cursor == der + der_len)
		pkey = EVP_PKCS82PKEY(info);
	PKCS8_PRIV_KEY_INFO_free(info);
	if (!pkey)
		ERR_clear_error();
	return pkey;
}

EVP_PKEY *kc_asym_public_key(const uint8_t *der, size_t der_len)
{
	const unsigned char *cursor = der;
	EVP_PKEY *pkey;

	if (der_len == 0 || der_len > LONG_MAX)
		return NULL;
	pkey = d2i_PUBKEY(NULL, &cursor, (long)der_len);
	if (pkey && cursor != der + der_len) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	if (!pkey)
		ERR_clear_error();
	return pkey;
}

/* ---- signatures ------------------------------------------------------------------------------- */

int kc_asym_digest(const struct kc_sig_alg *alg, const uint8_t *message, size_t message_len,
		uint8_t digest[EVP_MAX_MD_SIZE])
{
	const EVP_MD *md = EVP_get_digestbyname(alg->md);
	unsigned int len = 0;

	if (!md || EVP_Digest(message, message_len, digest, &len, md, NULL) != 1 ||
	    len != alg->digest_len) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}

/* A sign or verify context for alg over a digest, padding and digest set. */
static EVP_PKEY_CTX *signature_ctx(EVP_PKEY *key, const struct kc_sig_alg *alg, int verify)
{
	const EVP_MD *md = EVP_get_digestbyname(alg->md);
	int rsa = alg->scheme != KC_SIG_ECDSA;
	EVP_PKEY_CTX *ctx = NULL;
	int ok;

	ok = md && EVP_PKEY_is_a(key, rsa ? "RSA" : "EC");
	if (ok)
		ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
	ok = ok && ctx && (verify ? EVP_PKEY_verify_init(ctx) : EVP_PKEY_sign_init(ctx)) > 0;
	if (ok && rsa)
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, alg->scheme == KC_SIG_RSA_PSS ?
				RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) > 0;
	if (ok)
		ok = EVP_PKEY_CTX_set_signature_md(ctx, md) > 0;
	/* AWS's RSASSA_PSS_SHA_n: MGF1 with SHA-n and an n-bit salt. */
	if (ok && alg->scheme == KC_SIG_RSA_PSS)
		ok = EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) > 0 &&
			EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) > 0;
	if (!ok) {
		EVP_PKEY_CTX_free(ctx);
		ERR_clear_error();
		return NULL;
	}
	return ctx;
}

int kc_asym_sign(EVP_PKEY *key, const struct kc_sig_alg *alg, const uint8_t *digest,
		uint8_t **signature, size_t *signature_len)
{
	EVP_PKEY_CTX *ctx = signature_ctx(key, alg, 0);
	size_t len = 0;
	int rc = -1;

	*signature = NULL;
	if (!ctx || EVP_PKEY_sign(ctx, NULL, &len, digest, alg->digest_len) <= 0)
		goto out;
	*signature = malloc(len);
	if (!*signature || EVP_PKEY_sign(ctx, *signature, &len, digest, alg->digest_len) <= 0)
		goto out;
	*signature_len = len;
	rc = 0;
out:
	EVP_PKEY_CTX_free(ctx);
	if (rc != 0) {
		free(*signature);
		*signature = NULL;
		ERR_clear_error();
	}
	return rc;
}

int kc_asym_verify(EVP_PKEY *key, const struct kc_sig_alg *alg, const uint8_t *digest,
		const uint8_t *signature, size_t signature_len)
{
	EVP_PKEY_CTX *ctx = signature_ctx(key, alg, 1);
	int valid;

	if (!ctx)
		return -1;
	/* 0 is a wrong signature, < 0 one OpenSSL could not even parse: both "does not verify". */
	valid = EVP_PKEY_verify(ctx, signature, signature_len, digest, alg->digest_len) == 1;
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return valid;
}

/* ---- RSA-OAEP ------------------------------------------------------------------------------------ */

size_t kc_asym_oaep_max(int rsa_bits, const char *md_name)
{
	const EVP_MD *md = EVP_get_digestbyname(md_name);
	size_t modulus = (size_t)rsa_bits / 8, hash = md ? (size_t)EVP_MD_get_size(md) : 0;

	if (!md || modulus < 2 * hash + 2)
		return 0;
	return modulus - 2 * hash - 2;
}

size_t kc_asym_rsa_bytes(EVP_PKEY *key)
{
	return EVP_PKEY_is_a(key, "RSA") ? (size_t)EVP_PKEY_get_size(key) : 0;
}

static EVP_PKEY_CTX *oaep_ctx(EVP_PKEY *key, const char *md_name, int decrypt)
{
	const EVP_MD *md = EVP_get_digestbyname(md_name);
	EVP_PKEY_CTX *ctx = NULL;
	int ok;

	ok = md && EVP_PKEY_is_a(key, "RSA");
	if (ok)
		ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
	ok = ok && ctx && (decrypt ? EVP_PKEY_decrypt_init(ctx) : EVP_PKEY_encrypt_init(ctx)) > 0 &&
		EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0 &&
		EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) > 0 &&
		EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) > 0;
	if (!ok) {
		EVP_PKEY_CTX_free(ctx);
		ERR_clear_error();
		return NULL;
	}
	return ctx;
}

int kc_asym_oaep_encrypt(EVP_PKEY *key, const char *md, const uint8_t *plaintext,
		size_t plaintext_len, uint8_t **ciphertext, size_t *ciphertext_len)
{
	EVP_PKEY_CTX *ctx = oaep_ctx(key, md, 0);
	size_t len = 0;
	int rc = -1;

	*ciphertext = NULL;
	if (!ctx || EVP_PKEY_encrypt(ctx, NULL, &len, plaintext, plaintext_len) <= 0)
		goto out;
	*ciphertext = malloc(len);
	if (!*ciphertext || EVP_PKEY_encrypt(ctx, *ciphertext, &len, plaintext, plaintext_len) <= 0)
		goto out;
	*ciphertext_len = len;
	rc = 0;
out:
	EVP_PKEY_CTX_free(ctx);
	if (rc != 0) {
		free(*ciphertext);
		*ciphertext = NULL;
		ERR_clear_error();
	}
	return rc;
}

int kc_asym_oaep_decrypt(EVP_PKEY *key, const char *md, const uint8_t *ciphertext,
		size_t ciphertext_len, uint8_t *plaintext, size_t plaintext_cap, size_t *plaintext_len)
{
	EVP_PKEY_CTX *ctx = oaep_ctx(key, md, 1);
	size_t len = 0;
	int rc = -1;

	if (!ctx || EVP_PKEY_decrypt(ctx, NULL, &len, ciphertext, ciphertext_len) <= 0 ||
	    len > plaintext_cap)
		goto out;
	if (EVP_PKEY_decrypt(ctx, plaintext, &len, ciphertext, ciphertext_len) <= 0)
		goto out;
	*plaintext_len = len;
	rc = 0;
out:
	EVP_PKEY_CTX_free(ctx);
	if (rc != 0) {
		kmsfs_wipe(plaintext, plaintext_cap);
		ERR_clear_error();
	}
	return rc;
}

/* ---- AES key wrap with padding ------------------------------------------------------------------- */

int kc_aes_kwp_unwrap(const uint8_t kek[KC_AES_KWP_KEY_LEN], const uint8_t *wrapped,
		size_t wrapped_len, uint8_t *plaintext, size_t plaintext_cap, size_t *plaintext_len)
{
	EVP_CIPHER_CTX *ctx = NULL;
	int update_len = 0, final_len = 0, rc = -1;

	/* RFC 5649: whole 64-bit blocks, at least two. */
	if (wrapped_len < 16 || wrapped_len % 8 || wrapped_len > INT_MAX || plaintext_cap < wrapped_len)
		goto out;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		goto out;
	EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_wrap_pad(), NULL, kek, NULL) != 1 ||
	    EVP_DecryptUpdate(ctx, plaintext, &update_len, wrapped, (int)wrapped_len) != 1 ||
	    EVP_DecryptFinal_ex(ctx, plaintext + update_len, &final_len) != 1)
		goto out;
	*plaintext_len = (size_t)update_len + (size_t)final_len;
	rc = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	if (rc != 0) {
		kmsfs_wipe(plaintext, plaintext_cap);
		ERR_clear_error();
	}
	return rc;
}

/* ---- sealed private keys ------------------------------------------------------------------------- */

int kc_asym_seal_private(const uint8_t root_key[KC_KEY_LEN], const uint8_t *aad, size_t aad_len,
		const uint8_t *der, size_t der_len, uint8_t **sealed, size_t *sealed_len)
{
	*sealed = malloc(KC_SEALED_LEN(der_len));
	if (!*sealed)
		return -1;
	kc_seal(root_key, aad, aad_len, der, der_len, *sealed);
	*sealed_len = KC_SEALED_LEN(der_len);
	return 0;
}

EVP_PKEY *kc_asym_unseal_private(const uint8_t root_key[KC_KEY_LEN], const uint8_t *aad,
		size_t aad_len, const uint8_t *sealed, size_t sealed_len)
{
	EVP_PKEY *pkey = NULL;
	uint8_t *der = NULL;
	size_t der_len;

	if (sealed_len <= KC_SEALED_LEN(0))
		return NULL;
	der_len = sealed_len - KC_SEALED_LEN(0);
	der = kmsfs_secure_alloc(der_len);
	if (der && kc_unseal(root_key, aad, aad_len, sealed, sealed_len, der) == 0)
		pkey = kc_asym_private_key(der, der_len);
	kmsfs_secure_free(der);
	return pkey;
}
