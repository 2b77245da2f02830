/*
 * blob.c - the local engine's ciphertext blob (its CiphertextBlob).
 *
 * Version 1, all integers big-endian:
 *   u8 version ‖ 16 key store id ‖ 16 key id (binary UUID) ‖
 *   u32 key material version ‖ 24 nonce ‖ ciphertext ‖ 16 tag
 * XChaCha20-Poly1305 under the key material named by the header; the AAD
 * is the whole header followed by the canonical encryption context, so
 * any edited byte, a different context, or a header transplanted from
 * another blob fails authentication. Every failure is reported as
 * InvalidCiphertextException, as AWS does, without saying which check
 * failed beyond what the header alone reveals.
 */
#include "local_internal.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

static void encode_header(const struct kc_blob_header *hdr, uint8_t out[KC_BLOB_HEADER_LEN])
{
	uint8_t *p = out;

	*p++ = hdr->version;
	memcpy(p, hdr->store_id, KC_STORE_ID_LEN);
	p += KC_STORE_ID_LEN;
	memcpy(p, hdr->key_id, KC_UUID_LEN);
	p += KC_UUID_LEN;
	*p++ = (uint8_t)(hdr->material_version >> 24);
	*p++ = (uint8_t)(hdr->material_version >> 16);
	*p++ = (uint8_t)(hdr->material_version >> 8);
	*p++ = (uint8_t)hdr->material_version;
	memcpy(p, hdr->nonce, KC_NONCE_LEN);
}

enum kc_status kc_blob_parse_header(const uint8_t *blob, size_t blob_len,
		struct kc_blob_header *hdr, struct kc_error *err)
{
	const uint8_t *p = blob;

	if (!blob || blob_len < KC_BLOB_OVERHEAD)
		return kc_fail(err, KC_INVALID_CIPHERTEXT,
				"ciphertext blob: %zu bytes, shorter than the %d-byte minimum", blob_len, KC_BLOB_OVERHEAD);
	if (blob[0] != KC_BLOB_VERSION)
		return kc_fail(err, KC_INVALID_CIPHERTEXT,
				"ciphertext blob: unknown version %u (expected %d)", blob[0], KC_BLOB_VERSION);
	hdr->version = *p++;
	memcpy(hdr->store_id, p, KC_STORE_ID_LEN);
	p += KC_STORE_ID_LEN;
	memcpy(hdr->key_id, p, KC_UUID_LEN);
	p += KC_UUID_LEN;
	hdr->material_version = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	p += 4;
	memcpy(hdr->nonce, p, KC_NONCE_LEN);
	return KC_OK;
}

/* header ‖ context, malloc'ed; NULL on ENOMEM. */
static uint8_t *build_aad(const uint8_t header[KC_BLOB_HEADER_LEN],
		const uint8_t *context, size_t context_len)
{
	uint8_t *aad = malloc(KC_BLOB_HEADER_LEN + context_len);

	if (!aad)
		return NULL;
	memcpy(aad, header, KC_BLOB_HEADER_LEN);
	if (context_len)
		memcpy(aad + KC_BLOB_HEADER_LEN, context, context_len);
	return aad;
}

enum kc_status kc_blob_seal(const uint8_t material[KC_KEY_LEN], struct kc_blob_header *hdr,
		const uint8_t *context, size_t context_len,
		const uint8_t *plaintext, size_t plaintext_len,
		uint8_t **blob, size_t *blob_len, struct kc_error *err)
{
	size_t total = KC_BLOB_OVERHEAD + plaintext_len;
	uint8_t *out = NULL, *aad = NULL;
	enum kc_status rc = KC_OK;

	*blob = NULL;
	*blob_len = 0;
	hdr->version = KC_BLOB_VERSION;
	randombytes_buf(hdr->nonce, KC_NONCE_LEN);
	out = malloc(total);
	if (!out) {
		rc = kc_fail(err, KC_INTERNAL, "ciphertext blob: out of memory");
		goto out;
	}
	encode_header(hdr, out);
	aad = build_aad(out, context, context_len);
	if (!aad) {
		rc = kc_fail(err, KC_INTERNAL, "ciphertext blob: out of memory");
		goto out;
	}
	crypto_aead_xchacha20poly1305_ietf_encrypt_detached(out + KC_BLOB_HEADER_LEN,
			out + KC_BLOB_HEADER_LEN + plaintext_len, NULL, plaintext, plaintext_len,
			aad, KC_BLOB_HEADER_LEN + context_len, NULL, hdr->nonce, material);
	*blob = out;
	*blob_len = total;
	out = NULL;
out:
	free(out);
	free(aad);
	return rc;
}

enum kc_status kc_blob_open(const uint8_t material[KC_KEY_LEN],
		const uint8_t *blob, size_t blob_len,
		const uint8_t *context, size_t context_len,
		uint8_t *plaintext, size_t plaintext_cap, size_t *plaintext_len,
		struct kc_error *err)
{
	struct kc_blob_header hdr;
	size_t ciphertext_len;
	uint8_t *aad = NULL;
	enum kc_status rc;

	*plaintext_len = 0;
	rc = kc_blob_parse_header(blob, blob_len, &hdr, err);
	if (rc != KC_OK)
		goto out;
	ciphertext_len = blob_len - KC_BLOB_OVERHEAD;
	if (ciphertext_len > plaintext_cap) {
		rc = kc_fail(err, KC_VALIDATION,
				"decrypt: plaintext buffer of %zu bytes too small for %zu bytes", plaintext_cap, ciphertext_len);
		goto out;
	}
	aad = build_aad(blob, context, context_len);
	if (!aad) {
		rc = kc_fail(err, KC_INTERNAL, "ciphertext blob: out of memory");
		goto out;
	}
	if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(plaintext, NULL,
			blob + KC_BLOB_HEADER_LEN, ciphertext_len, blob + KC_BLOB_HEADER_LEN + ciphertext_len,
			aad, KC_BLOB_HEADER_LEN + context_len, hdr.nonce, material) != 0) {
		sodium_memzero(plaintext, ciphertext_len);
		rc = kc_fail(err, KC_INVALID_CIPHERTEXT,
				"ciphertext blob: authentication failed (wrong encryption context, or the blob was altered)");
		goto out;
	}
	*plaintext_len = ciphertext_len;
out:
	free(aad);
	return rc;
}
