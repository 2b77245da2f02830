/*
 * aead.c - one-shot AEAD for kmsfs: AES-GCM through OpenSSL's EVP
 * interface and XChaCha20-Poly1305 through libsodium.
 *
 * Both the file format (via blocks.c, which has its own batched GCM loop)
 * and the key service use these. The wrapper is deliberately more
 * permissive than the file format (any AES key size, any non-zero GCM
 * nonce length) so that Wycheproof vectors can exercise exactly the code
 * that ships. Tags are always 16 bytes: shorter GCM tags weaken forgery
 * resistance and nothing in kmsfs needs them.
 */
#include "crypto.h"
#include "crypto_internal.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/modes.h>
#include <sodium.h>

/* Largest chunk handed to one EVP update call (its length is an int). */
#define GCM_MAX_UPDATE (1u << 30)
/*
 * OpenSSL 3's GCM provider refuses IVs longer than this (GCM_IV_MAX_SIZE),
 * though GCM itself allows any length. Longer nonces take the slow path
 * in gcm_long_iv(); the file format never comes near it.
 */
#define EVP_GCM_MAX_IV_LEN 128

static EVP_CIPHER *gcm_ciphers[3]; /* AES-128/192/256-GCM */
static pthread_once_t gcm_fetch_once = PTHREAD_ONCE_INIT;

static void fetch_gcm_ciphers(void)
{
	gcm_ciphers[0] = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
	gcm_ciphers[1] = EVP_CIPHER_fetch(NULL, "AES-192-GCM", NULL);
	gcm_ciphers[2] = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

const EVP_CIPHER *kmsfs_gcm_cipher(size_t key_len)
{
	pthread_once(&gcm_fetch_once, fetch_gcm_ciphers);
	switch (key_len) {
	case 16: return gcm_ciphers[0];
	case 24: return gcm_ciphers[1];
	case 32: return gcm_ciphers[2];
	default: return NULL;
	}
}

/* ---- cipher names ------------------------------------------------------ */

enum kmsfs_cipher kmsfs_cipher_from_name(const char *name)
{
	if (!name)
		return KMSFS_CIPHER_NONE;
	if (strcmp(name, "aes-256-gcm") == 0)
		return KMSFS_CIPHER_AES_256_GCM;
	if (strcmp(name, "xchacha20-poly1305") == 0)
		return KMSFS_CIPHER_XCHACHA20_POLY1305;
	return KMSFS_CIPHER_NONE;
}

const char *kmsfs_cipher_name(enum kmsfs_cipher cipher)
{
	switch (cipher) {
	case KMSFS_CIPHER_AES_256_GCM: return "aes-256-gcm";
	case KMSFS_CIPHER_XCHACHA20_POLY1305: return "xchacha20-poly1305";
	case KMSFS_CIPHER_NONE: return "none";
	}
	return "unknown";
}

size_t kmsfs_cipher_nonce_len(enum kmsfs_cipher cipher)
{
	switch (cipher) {
	case KMSFS_CIPHER_AES_256_GCM: return 12;
	case KMSFS_CIPHER_XCHACHA20_POLY1305:
		return crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
	case KMSFS_CIPHER_NONE: break;
	}
	return 0;
}

/* ---- AES-GCM through EVP: setup ----------------------------------------- */

/* Feed len bytes through EVP_CipherUpdate in int-sized pieces. out NULL = AAD. */
static int gcm_update(EVP_CIPHER_CTX *ctx, uint8_t *out, const uint8_t *in, size_t len)
{
	while (len > 0) {
		int chunk = (int)(len < GCM_MAX_UPDATE ? len : GCM_MAX_UPDATE);
		int written;

		if (EVP_CipherUpdate(ctx, out, &written, in, chunk) != 1)
			return -EIO;
		in += chunk;
		if (out)
			out += chunk;
		len -= (size_t)chunk;
	}
	return 0;
}

/*
 * Set up ctx for one GCM operation. The IV length must be set before the
 * IV itself, which is why the cipher and the key/IV go in separate inits.
 */
static int gcm_start(EVP_CIPHER_CTX *ctx, int encrypt,
		     const uint8_t *key, size_t key_len,
		     const uint8_t *nonce, size_t nonce_len)
{
	const EVP_CIPHER *evp = kmsfs_gcm_cipher(key_len);

	if (!evp || nonce_len == 0 || nonce_len > INT_MAX)
		return -EINVAL;
	if (EVP_CipherInit_ex(ctx, evp, NULL, NULL, NULL, encrypt) != 1)
		return -EIO;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int)nonce_len, NULL) != 1)
		return -EINVAL;
	if (EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, encrypt) != 1)
		return -EIO;
	return 0;
}

/* ---- AES-GCM with nonces longer than EVP accepts ------------------------ */

static const EVP_CIPHER *aes_ecb_cipher(size_t key_len)
{
	switch (key_len) {
	case 16: return EVP_aes_128_ecb();
	case 24: return EVP_aes_192_ecb();
	case 32: return EVP_aes_256_ecb();
	default: return NULL;
	}
}

/* block128_f for OpenSSL's generic GCM code: one AES block via an ECB context. */
static void aes_ecb_block(const unsigned char in[16], unsigned char out[16], const void *key)
{
	int written;

	/* Cannot fail for a keyed ECB context and one whole block. */
	EVP_EncryptUpdate((EVP_CIPHER_CTX *)key, out, &written, in, 16);
}

/*
 * GCM through OpenSSL's mode-level API (CRYPTO_gcm128_*), which hashes an
 * IV of any length into the initial counter as SP 800-38D specifies. The
 * EVP provider path is faster, so this is only used past its IV limit.
 * encrypt: tag_out receives the tag; otherwise tag_in is verified.
 */
static int gcm_long_iv(int encrypt, const uint8_t *key, size_t key_len,
		       const uint8_t *nonce, size_t nonce_len,
		       const uint8_t *aad, size_t aad_len,
		       const uint8_t *in, size_t in_len, uint8_t *out,
		       const uint8_t *tag_in, uint8_t *tag_out)
{
	const EVP_CIPHER *ecb_cipher = aes_ecb_cipher(key_len);
	EVP_CIPHER_CTX *ecb;
	GCM128_CONTEXT *gcm = NULL;
	int ret = -EIO;

	if (!ecb_cipher)
		return -EINVAL;
	ecb = EVP_CIPHER_CTX_new();
	if (!ecb)
		return -ENOMEM;
	if (EVP_EncryptInit_ex(ecb, ecb_cipher, NULL, key, NULL) != 1)
		goto out;
	EVP_CIPHER_CTX_set_padding(ecb, 0);
	gcm = CRYPTO_gcm128_new(ecb, aes_ecb_block);
	if (!gcm) {
		ret = -ENOMEM;
		goto out;
	}
	CRYPTO_gcm128_setiv(gcm, nonce, nonce_len);
	if (aad_len && CRYPTO_gcm128_aad(gcm, aad, aad_len) != 0)
		goto out;
	if (in_len && (encrypt ? CRYPTO_gcm128_encrypt(gcm, in, out, in_len)
			       : CRYPTO_gcm128_decrypt(gcm, in, out, in_len)) != 0)
		goto out;
	if (encrypt) {
		CRYPTO_gcm128_tag(gcm, tag_out, KMSFS_TAG_LEN);
		ret = 0;
	} else {
		/* Constant-time tag comparison inside OpenSSL. */
		ret = CRYPTO_gcm128_finish(gcm, tag_in, KMSFS_TAG_LEN) == 0 ? 0 : -EBADMSG;
	}
out:
	CRYPTO_gcm128_release(gcm); /* clears the hash key and counters */
	EVP_CIPHER_CTX_free(ecb);
	return ret;
}

/* ---- AES-GCM through EVP: seal/open ------------------------------------- */

static int gcm_seal(const uint8_t *key, size_t key_len,
		    const uint8_t *nonce, size_t nonce_len,
		    const uint8_t *aad, size_t aad_len,
		    const uint8_t *in, size_t in_len,
		    uint8_t *out, uint8_t tag[KMSFS_TAG_LEN])
{
	EVP_CIPHER_CTX *ctx;
	uint8_t final_block[16];
	int final_len;
	int ret;

	if (nonce_len > EVP_GCM_MAX_IV_LEN)
		return gcm_long_iv(1, key, key_len, nonce, nonce_len, aad, aad_len,
				   in, in_len, out, NULL, tag);
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -ENOMEM;
	ret = gcm_start(ctx, 1, key, key_len, nonce, nonce_len);
	if (ret)
		goto out;
	ret = gcm_update(ctx, NULL, aad, aad_len);
	if (!ret)
		ret = gcm_update(ctx, out, in, in_len);
	if (ret)
		goto out;
	/* GCM is a stream mode: final emits no bytes, it only computes the tag. */
	if (EVP_EncryptFinal_ex(ctx, final_block, &final_len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, KMSFS_TAG_LEN, tag) != 1)
		ret = -EIO;
out:
	/* Freeing the context also clears the expanded key schedule. */
	EVP_CIPHER_CTX_free(ctx);
	return ret;
}

static int gcm_open(const uint8_t *key, size_t key_len,
		    const uint8_t *nonce, size_t nonce_len,
		    const uint8_t *aad, size_t aad_len,
		    const uint8_t *in, size_t in_len,
		    const uint8_t *tag, uint8_t *out)
{
	EVP_CIPHER_CTX *ctx;
	uint8_t final_block[16];
	int final_len;
	int ret;

	if (nonce_len > EVP_GCM_MAX_IV_LEN)
		return gcm_long_iv(0, key, key_len, nonce, nonce_len, aad, aad_len,
				   in, in_len, out, tag, NULL);
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -ENOMEM;
	ret = gcm_start(ctx, 0, key, key_len, nonce, nonce_len);
	if (ret)
		goto out;
	ret = gcm_update(ctx, NULL, aad, aad_len);
	if (!ret)
		ret = gcm_update(ctx, out, in, in_len);
	if (ret)
		goto out;
	/* The tag ctrl takes a non-const pointer but only reads it. */
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, KMSFS_TAG_LEN, (void *)tag) != 1) {
		ret = -EIO;
		goto out;
	}
	if (EVP_DecryptFinal_ex(ctx, final_block, &final_len) != 1)
		ret = -EBADMSG;
out:
	EVP_CIPHER_CTX_free(ctx);
	return ret;
}

/* ---- XChaCha20-Poly1305 ------------------------------------------------ */

static int xchacha_check(size_t key_len, size_t nonce_len)
{
	if (key_len != crypto_aead_xchacha20poly1305_ietf_KEYBYTES ||
	    nonce_len != crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
		return -EINVAL;
	return 0;
}

static int xchacha_seal(const uint8_t *key, size_t key_len,
			const uint8_t *nonce, size_t nonce_len,
			const uint8_t *aad, size_t aad_len,
			const uint8_t *in, size_t in_len,
			uint8_t *out, uint8_t tag[KMSFS_TAG_LEN])
{
	uint8_t empty_out;
	int ret = xchacha_check(key_len, nonce_len);

	if (ret)
		return ret;
	if (in_len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX)
		return -EINVAL;
	/* libsodium declares out non-NULL even for an empty message. */
	if (!out)
		out = &empty_out;
	if (crypto_aead_xchacha20poly1305_ietf_encrypt_detached(out, tag, NULL,
			in, in_len, aad, aad_len, NULL, nonce, key) != 0)
		return -EIO;
	return 0;
}

static int xchacha_open(const uint8_t *key, size_t key_len,
			const uint8_t *nonce, size_t nonce_len,
			const uint8_t *aad, size_t aad_len,
			const uint8_t *in, size_t in_len,
			const uint8_t *tag, uint8_t *out)
{
	static const uint8_t empty_in;
	int ret = xchacha_check(key_len, nonce_len);

	if (ret)
		return ret;
	/* libsodium declares the ciphertext non-NULL even when it is empty. */
	if (!in)
		in = &empty_in;
	/* libsodium verifies the tag before it decrypts anything into out. */
	if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(out, NULL,
			in, in_len, tag, aad, aad_len, nonce, key) != 0)
		return -EBADMSG;
	return 0;
}

/* ---- public entry points ----------------------------------------------- */

/* NULL is only acceptable for a buffer whose length is zero. */
static int buffers_ok(const uint8_t *key, const uint8_t *nonce, size_t nonce_len,
		      const uint8_t *aad, size_t aad_len,
		      const uint8_t *in, const uint8_t *out, size_t in_len)
{
	return key && (nonce || !nonce_len) && (aad || !aad_len) &&
	       ((in && out) || !in_len);
}

int kmsfs_aead_seal(enum kmsfs_cipher cipher,
		    const uint8_t *key, size_t key_len,
		    const uint8_t *nonce, size_t nonce_len,
		    const uint8_t *aad, size_t aad_len,
		    const uint8_t *in, size_t in_len,
		    uint8_t *out, uint8_t tag[KMSFS_TAG_LEN])
{
	if (!tag || !buffers_ok(key, nonce, nonce_len, aad, aad_len, in, out, in_len))
		return -EINVAL;
	switch (cipher) {
	case KMSFS_CIPHER_AES_256_GCM:
		return gcm_seal(key, key_len, nonce, nonce_len, aad, aad_len,
				in, in_len, out, tag);
	case KMSFS_CIPHER_XCHACHA20_POLY1305:
		return xchacha_seal(key, key_len, nonce, nonce_len, aad, aad_len,
				    in, in_len, out, tag);
	case KMSFS_CIPHER_NONE:
		break;
	}
	return -EINVAL;
}

static int aead_open_dispatch(enum kmsfs_cipher cipher,
			      const uint8_t *key, size_t key_len,
			      const uint8_t *nonce, size_t nonce_len,
			      const uint8_t *aad, size_t aad_len,
			      const uint8_t *in, size_t in_len,
			      const uint8_t *tag, uint8_t *out)
{
	switch (cipher) {
	case KMSFS_CIPHER_AES_256_GCM:
		return gcm_open(key, key_len, nonce, nonce_len, aad, aad_len,
				in, in_len, tag, out);
	case KMSFS_CIPHER_XCHACHA20_POLY1305:
		return xchacha_open(key, key_len, nonce, nonce_len, aad, aad_len,
				    in, in_len, tag, out);
	case KMSFS_CIPHER_NONE:
		break;
	}
	return -EINVAL;
}

int kmsfs_aead_open(enum kmsfs_cipher cipher,
		    const uint8_t *key, size_t key_len,
		    const uint8_t *nonce, size_t nonce_len,
		    const uint8_t *aad, size_t aad_len,
		    const uint8_t *in, size_t in_len,
		    const uint8_t *tag, size_t tag_len,
		    uint8_t *out)
{
	int ret;

	if (!tag || !buffers_ok(key, nonce, nonce_len, aad, aad_len, in, out, in_len))
		return -EINVAL;
	/* A truncated (or padded) tag is a message we refuse to authenticate. */
	if (tag_len != KMSFS_TAG_LEN)
		return -EBADMSG;
	ret = aead_open_dispatch(cipher, key, key_len, nonce, nonce_len,
				 aad, aad_len, in, in_len, tag, out);
	/*
	 * GCM decrypts before it can check the tag: never hand back
	 * unauthenticated plaintext, whatever went wrong.
	 */
	if (ret && in_len)
		kmsfs_wipe(out, in_len);
	return ret;
}
