/*
 * seal.c - small secrets sealed under the key store's root key.
 *
 * Key material and the passphrase verifier are stored as
 * nonce ‖ ciphertext ‖ tag, XChaCha20-Poly1305 with a fresh random
 * 192-bit nonce each time. The AAD binds each sealed secret to where it
 * belongs (key id ‖ material version, or the store id), so rows cannot be
 * swapped inside the database unnoticed.
 */
#include "local_internal.h"

#include <string.h>

#include <sodium.h>

void kc_seal(const uint8_t key[KC_KEY_LEN], const uint8_t *aad, size_t aad_len,
		const uint8_t *in, size_t in_len, uint8_t *out)
{
	uint8_t *nonce = out, *ciphertext = out + KC_NONCE_LEN;

	randombytes_buf(nonce, KC_NONCE_LEN);
	crypto_aead_xchacha20poly1305_ietf_encrypt_detached(ciphertext,
			ciphertext + in_len, NULL, in, in_len, aad, aad_len, NULL, nonce, key);
}

int kc_unseal(const uint8_t key[KC_KEY_LEN], const uint8_t *aad, size_t aad_len,
		const uint8_t *sealed, size_t sealed_len, uint8_t *out)
{
	size_t plain_len;

	if (sealed_len < KC_SEALED_LEN(0))
		return -1;
	plain_len = sealed_len - KC_SEALED_LEN(0);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(out, NULL,
			sealed + KC_NONCE_LEN, plain_len, sealed + KC_NONCE_LEN + plain_len,
			aad, aad_len, sealed, key) != 0) {
		sodium_memzero(out, plain_len);
		return -1;
	}
	return 0;
}

void kc_material_aad(const uint8_t key_uuid[KC_UUID_LEN], uint32_t version,
		uint8_t out[KC_MATERIAL_AAD_LEN])
{
	memcpy(out, key_uuid, KC_UUID_LEN);
	out[KC_UUID_LEN] = (uint8_t)(version >> 24);
	out[KC_UUID_LEN + 1] = (uint8_t)(version >> 16);
	out[KC_UUID_LEN + 2] = (uint8_t)(version >> 8);
	out[KC_UUID_LEN + 3] = (uint8_t)version;
}
