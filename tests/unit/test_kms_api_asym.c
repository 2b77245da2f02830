/*
 * test_kms_api_asym.c - asymmetric keys and key import through the
 * engine's AWS KMS API (kc_api_call with JSON requests, as kmsd hands
 * them over), checked against plain OpenSSL wherever a result can be
 * checked outside the engine:
 *
 *   - CreateKey for every RSA and ECC spec; GetPublicKey parses as DER
 *     SubjectPublicKeyInfo of the right type and size;
 *   - Sign/Verify for every signing algorithm, RAW and DIGEST, each
 *     signature verified by OpenSSL over the message and by Verify in
 *     the other message type; tampering, foreign signatures, wrong
 *     algorithms, wrong digest lengths, disabled keys;
 *   - RSA Encrypt/Decrypt both ways with OpenSSL, AWS's plaintext limits;
 *   - GenerateDataKeyPair(WithoutPlaintext): the pair matches, and its
 *     sealed private key opens through Decrypt with the same context;
 *   - import: PendingImport, wrapping with RSA-OAEP and RSA+AES-KWP, the
 *     imported bytes really are the key (its ciphertext opens with them
 *     outside the engine), token errors, deletion and re-import of the
 *     same material (old ciphertext opens again), different material
 *     refused, expiry in maintenance (kc_import_expire_due);
 *   - after reopening the store, keys still sign and fingerprints hold.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <sqlite3.h>

#include "kms_api_test.h"
#include "local_internal.h"
#include "store_import.h"


static json_t *b64(const uint8_t *data, size_t len)
{
	size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *text = malloc(cap);
	json_t *value;

	sodium_bin2base64(text, cap, data, len, sodium_base64_VARIANT_ORIGINAL);
	value = json_string(text);
	free(text);
	return value;
}

/* A response field decoded (malloc'ed), or NULL when absent. */
static uint8_t *resp_blob(const char *name, size_t *len)
{
	const char *text = json_string_value(json_object_get(last.response, name));
	size_t text_len = text ? strlen(text) : 0, cap = text_len / 4 * 3 + 3;
	uint8_t *out;

	*len = 0;
	if (!text)
		return NULL;
	out = malloc(cap);
	if (sodium_base642bin(out, cap, text, text_len, NULL, len, NULL,
			sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

static void key_arn(const char *key_id, char out[160])
{
	snprintf(out, 160, "arn:aws:kms:us-east-1:111122223333:key/%s", key_id);
}

/* The JSON array of strings equals the NULL-terminated list. */
static int list_is(json_t *array, const char *const *expected)
{
	size_t n = 0;

	while (expected[n])
		n++;
	if (!json_is_array(array) || json_array_size(array) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!json_is_string(json_array_get(array, i)) ||
		    strcmp(json_string_value(json_array_get(array, i)), expected[i]) != 0)
			return 0;
	return 1;
}

/* ---- plain OpenSSL, independent of keyclient/asym.c -------------------------------------------- */

static const EVP_MD *alg_md(const char *algorithm)
{
	if (strstr(algorithm, "512"))
		return EVP_sha512();
	if (strstr(algorithm, "384"))
		return EVP_sha384();
	if (strstr(algorithm, "SHA_1"))
		return EVP_sha1();
	return EVP_sha256();
}

static size_t digest_of(const char *algorithm, const uint8_t *message, size_t len,
		uint8_t digest[EVP_MAX_MD_SIZE])
{
	unsigned int digest_len = 0;

	EVP_Digest(message, len, digest, &digest_len, alg_md(algorithm), NULL);
	return digest_len;
}

/* AWS's signature schemes: PSS with MGF1 of the same hash and a salt as long as the hash. */
static int openssl_verify(EVP_PKEY *pub, const char *algorithm, const uint8_t *message,
		size_t len, const uint8_t *signature, size_t signature_len)
{
	EVP_MD_CTX *md_ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pkey_ctx = NULL;
	int ok;

	ok = EVP_DigestVerifyInit(md_ctx, &pkey_ctx, alg_md(algorithm), NULL, pub) == 1;
	if (ok && strncmp(algorithm, "RSASSA_PSS_", 11) == 0)
		ok = EVP_PKEY_CTX_set_rsa_padding(pkey_ctx, RSA_PKCS1_PSS_PADDING) > 0 &&
			EVP_PKEY_CTX_set_rsa_pss_saltlen(pkey_ctx, RSA_PSS_SALTLEN_DIGEST) > 0;
	ok = ok && EVP_DigestVerify(md_ctx, signature, signature_len, message, len) == 1;
	EVP_MD_CTX_free(md_ctx);
	return ok;
}

/* SHA-256 signature with the key's default scheme (PKCS#1 v1.5 for RSA); malloc'ed. */
static uint8_t *openssl_sign(EVP_PKEY *key, const uint8_t *message, size_t len, size_t *sig_len)
{
	EVP_MD_CTX *md_ctx = EVP_MD_CTX_new();
	uint8_t *signature = NULL;

	*sig_len = 0;
	if (EVP_DigestSignInit(md_ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
	    EVP_DigestSign(md_ctx, NULL, sig_len, message, len) == 1) {
		signature = malloc(*sig_len);
		if (EVP_DigestSign(md_ctx, signature, sig_len, message, len) != 1) {
			free(signature);
			signature = NULL;
		}
	}
	EVP_MD_CTX_free(md_ctx);
	return signature;
}

static uint8_t *oaep_encrypt(EVP_PKEY *pub, const EVP_MD *md, const uint8_t *in, size_t in_len,
		size_t *out_len)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pub, NULL);
	uint8_t *out = NULL;

	*out_len = 0;
	if (EVP_PKEY_encrypt_init(ctx) > 0 &&
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0 &&
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) > 0 && EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) > 0 &&
	    EVP_PKEY_encrypt(ctx, NULL, out_len, in, in_len) > 0) {
		out = malloc(*out_len);
		if (EVP_PKEY_encrypt(ctx, out, out_len, in, in_len) <= 0) {
			free(out);
			out = NULL;
		}
	}
	EVP_PKEY_CTX_free(ctx);
	return out;
}

/* AWS's RSA_AES_KEY_WRAP_*: RSA-OAEP(fresh AES-256 key) ‖ AES-KWP(material). */
static uint8_t *kwp_encrypt(EVP_PKEY *pub, const EVP_MD *md, const uint8_t *in, size_t in_len,
		size_t *out_len)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	uint8_t aes_key[32], *rsa_part, *out;
	size_t rsa_len = 0;
	int len1 = 0, len2 = 0;

	randombytes_buf(aes_key, sizeof aes_key);
	rsa_part = oaep_encrypt(pub, md, aes_key, sizeof aes_key, &rsa_len);
	out = malloc(rsa_len + in_len + 16);
	memcpy(out, rsa_part, rsa_len);
	EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	CHECK(EVP_EncryptInit_ex(ctx, EVP_aes_256_wrap_pad(), NULL, aes_key, NULL) == 1);
	CHECK(EVP_EncryptUpdate(ctx, out + rsa_len, &len1, in, (int)in_len) == 1);
	CHECK(EVP_EncryptFinal_ex(ctx, out + rsa_len + len1, &len2) == 1);
	*out_len = rsa_len + (size_t)len1 + (size_t)len2;
	EVP_CIPHER_CTX_free(ctx);
	free(rsa_part);
	return out;
}

static EVP_PKEY *parse_public(const uint8_t *der, size_t len)
{
	const unsigned char *cursor = der;
	EVP_PKEY *pkey = der ? d2i_PUBKEY(NULL, &cursor, (long)len) : NULL;

	if (pkey && cursor != der + len) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	return pkey;
}

static EVP_PKEY *parse_pkcs8(const uint8_t *der, size_t len)
{
	const unsigned char *cursor = der;
	PKCS8_PRIV_KEY_INFO *info = der ? d2i_PKCS8_PRIV_KEY_INFO(NULL, &cursor, (long)len) : NULL;
	EVP_PKEY *pkey = info && cursor == der + len ? EVP_PKCS82PKEY(info) : NULL;

	PKCS8_PRIV_KEY_INFO_free(info);
	return pkey;
}

/* RSA of bits, or EC on group (OpenSSL's short name). */
static int key_is(EVP_PKEY *pkey, int bits, const char *group)
{
	char name[64] = "";
	size_t name_len = 0;

	if (!pkey)
		return 0;
	if (bits)
		return EVP_PKEY_is_a(pkey, "RSA") && EVP_PKEY_get_bits(pkey) == bits;
	return EVP_PKEY_is_a(pkey, "EC") &&
		EVP_PKEY_get_group_name(pkey, name, sizeof name, &name_len) == 1 &&
		strcmp(name, group) == 0;
}

/* ---- the keys under test ------------------------------------------------------------------------ */

static const char *const rsa_encryption[] = { "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", NULL };
static const char *const rsa_signing[] = {
	"RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
	"RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512", NULL,
};
static const char *const ecdsa_256[] = { "ECDSA_SHA_256", NULL };
static const char *const ecdsa_384[] = { "ECDSA_SHA_384", NULL };
static const char *const ecdsa_512[] = { "ECDSA_SHA_512", NULL };

struct test_key {
	const char *create;                /* CreateKey fields */
	const char *spec, *usage;          /* as the key must come out */
	int bits;                          /* RSA */
	const char *group;                 /* EC */
	const char *const *algorithms;     /* EncryptionAlgorithms or SigningAlgorithms */
	char id[64];
	EVP_PKEY *pub;                     /* from GetPublicKey */
};

enum { RSA2048_ENC, RSA2048_SIGN, RSA3072_SIGN, RSA4096_ENC, P256, P384, P521, P256K1, KEY_COUNT };

static struct test_key keys[KEY_COUNT] = {
	[RSA2048_ENC] = { "\"KeySpec\": \"RSA_2048\", \"KeyUsage\": \"ENCRYPT_DECRYPT\"",
		"RSA_2048", "ENCRYPT_DECRYPT", 2048, NULL, rsa_encryption, "", NULL },
	[RSA2048_SIGN] = { "\"KeySpec\": \"RSA_2048\", \"KeyUsage\": \"SIGN_VERIFY\"",
		"RSA_2048", "SIGN_VERIFY", 2048, NULL, rsa_signing, "", NULL },
	[RSA3072_SIGN] = { "\"CustomerMasterKeySpec\": \"RSA_3072\", \"KeyUsage\": \"SIGN_VERIFY\"",
		"RSA_3072", "SIGN_VERIFY", 3072, NULL, rsa_signing, "", NULL },
	/* No KeyUsage: RSA keys default to ENCRYPT_DECRYPT, ECC keys to SIGN_VERIFY. */
	[RSA4096_ENC] = { "\"KeySpec\": \"RSA_4096\"",
		"RSA_4096", "ENCRYPT_DECRYPT", 4096, NULL, rsa_encryption, "", NULL },
	[P256] = { "\"KeySpec\": \"ECC_NIST_P256\"",
		"ECC_NIST_P256", "SIGN_VERIFY", 0, "prime256v1", ecdsa_256, "", NULL },
	[P384] = { "\"KeySpec\": \"ECC_NIST_P384\", \"KeyUsage\": \"SIGN_VERIFY\"",
		"ECC_NIST_P384", "SIGN_VERIFY", 0, "secp384r1", ecdsa_384, "", NULL },
	[P521] = { "\"KeySpec\": \"ECC_NIST_P521\"",
		"ECC_NIST_P521", "SIGN_VERIFY", 0, "secp521r1", ecdsa_512, "", NULL },
	[P256K1] = { "\"KeySpec\": \"ECC_SECG_P256K1\"",
		"ECC_SECG_P256K1", "SIGN_VERIFY", 0, "secp256k1", ecdsa_256, "", NULL },
};

static char symmetric_id[64];

static int signs(const struct test_key *k)
{
	return strcmp(k->usage, "SIGN_VERIFY") == 0;
}

/* ---- CreateKey, GetPublicKey ----------------------------------------------------------------------- */

static void test_create_and_public_keys(void)
{
	const char *field;
	char arn[160];
	uint8_t *der;
	size_t der_len;

	EXPECT("CreateKey", KC_OK, "{}");
	snprintf(symmetric_id, sizeof symmetric_id, "%s", meta_str("KeyId"));
	for (int i = 0; i < KEY_COUNT; i++) {
		struct test_key *k = &keys[i];

		field = signs(k) ? "SigningAlgorithms" : "EncryptionAlgorithms";
		EXPECT("CreateKey", KC_OK, "{%s}", k->create);
		snprintf(k->id, sizeof k->id, "%s", meta_str("KeyId"));
		CHECK(strcmp(meta_str("KeySpec"), k->spec) == 0);
		CHECK(strcmp(meta_str("CustomerMasterKeySpec"), k->spec) == 0);
		CHECK(strcmp(meta_str("KeyUsage"), k->usage) == 0);
		CHECK(strcmp(meta_str("KeyState"), "Enabled") == 0);
		CHECK(list_is(json_object_get(json_object_get(last.response, "KeyMetadata"), field),
				k->algorithms));

		EXPECT("GetPublicKey", KC_OK, "{\"KeyId\": \"%s\"}", k->id);
		key_arn(k->id, arn);
		CHECK(strcmp(resp_str("KeyId"), arn) == 0);
		CHECK(strcmp(resp_str("KeySpec"), k->spec) == 0);
		CHECK(strcmp(resp_str("CustomerMasterKeySpec"), k->spec) == 0);
		CHECK(strcmp(resp_str("KeyUsage"), k->usage) == 0);
		CHECK(list_is(json_object_get(last.response, field), k->algorithms));
		CHECK(json_object_get(last.response, signs(k) ? "EncryptionAlgorithms" :
				"SigningAlgorithms") == NULL);
		der = resp_blob("PublicKey", &der_len);
		k->pub = parse_public(der, der_len);
		CHECK(key_is(k->pub, k->bits, k->group));
		free(der);
	}
	/* Fresh pairs: two keys of one spec do not share a public key. */
	CHECK(keys[RSA2048_ENC].pub && keys[RSA2048_SIGN].pub &&
			EVP_PKEY_eq(keys[RSA2048_ENC].pub, keys[RSA2048_SIGN].pub) != 1);
	EXPECT("GetPublicKey", KC_UNSUPPORTED_OPERATION, "{\"KeyId\": \"%s\"}", symmetric_id);
	EXPECT("GetPublicKey", KC_NOT_FOUND, "{\"KeyId\": \"00000000-0000-4000-8000-000000000000\"}");
	EXPECT("CreateKey", KC_VALIDATION, "{\"KeySpec\": \"ECC_NIST_P256\", \"KeyUsage\": "
			"\"ENCRYPT_DECRYPT\"}");
	/* Through an alias, like any key reference. */
	EXPECT("CreateAlias", KC_OK, "{\"AliasName\": \"alias/signer\", \"TargetKeyId\": \"%s\"}",
			keys[P256].id);
	EXPECT("GetPublicKey", KC_OK, "{\"KeyId\": \"alias/signer\"}");
	CHECK(strcmp(resp_str("KeySpec"), "ECC_NIST_P256") == 0);
}

/* ---- Sign, Verify ----------------------------------------------------------------------------------- */

static json_t *sign_request(const char *key_id, const char *algorithm, const char *type,
		const uint8_t *message, size_t len)
{
	return json_pack("{s:s, s:s, s:s, s:o}", "KeyId", key_id, "SigningAlgorithm", algorithm,
			"MessageType", type, "Message", b64(message, len));
}

static json_t *verify_request(const char *key_id, const char *algorithm, const char *type,
		const uint8_t *message, size_t len, const uint8_t *signature, size_t signature_len)
{
	json_t *request = sign_request(key_id, algorithm, type, message, len);

	json_object_set_new(request, "Signature", b64(signature, signature_len));
	return request;
}

/* One key and algorithm, signing RAW and DIGEST, each checked by OpenSSL and by Verify. */
static void sign_and_verify(const struct test_key *k, const char *algorithm)
{
	static const uint8_t message[] = "kmsfs: asymmetric keys through the KMS API";
	uint8_t digest[EVP_MAX_MD_SIZE], tampered[sizeof message], *signature;
	size_t digest_len = digest_of(algorithm, message, sizeof message, digest), sig_len;
	char arn[160];

	key_arn(k->id, arn);
	memcpy(tampered, message, sizeof message);
	tampered[3] ^= 1;
	for (int digest_mode = 0; digest_mode < 2; digest_mode++) {
		const char *type = digest_mode ? "DIGEST" : "RAW", *other = digest_mode ? "RAW" : "DIGEST";
		const uint8_t *signed_input = digest_mode ? digest : message;
		size_t signed_len = digest_mode ? digest_len : sizeof message;

		EXPECT_JSON("Sign", KC_OK, sign_request(k->id, algorithm, type, signed_input, signed_len));
		CHECK(strcmp(resp_str("KeyId"), arn) == 0);
		CHECK(strcmp(resp_str("SigningAlgorithm"), algorithm) == 0);
		signature = resp_blob("Signature", &sig_len);
		if (!signature) {
			CHECK(signature != NULL);
			continue;
		}
		/* Always over the whole message: a DIGEST signature is the same scheme as a RAW one. */
		if (!openssl_verify(k->pub, algorithm, message, sizeof message, signature, sig_len)) {
			fprintf(stderr, "OpenSSL rejects the %s %s signature of %s\n", type, algorithm, k->spec);
			failures++;
		}
		/* Verify in the other message type: the engine hashes RAW as OpenSSL does. */
		EXPECT_JSON("Verify", KC_OK, verify_request(k->id, algorithm, other,
				digest_mode ? message : digest, digest_mode ? sizeof message : digest_len,
				signature, sig_len));
		CHECK(json_is_true(json_object_get(last.response, "SignatureValid")));
		CHECK(strcmp(resp_str("KeyId"), arn) == 0);
		CHECK(strcmp(resp_str("SigningAlgorithm"), algorithm) == 0);
		EXPECT_JSON("Verify", KC_KMS_INVALID_SIGNATURE, verify_request(k->id, algorithm, "RAW",
				tampered, sizeof tampered, signature, sig_len));
		CHECK(strcmp(last_err.type, "KMSInvalidSignatureException") == 0);
		signature[sig_len / 2] ^= 0x10;
		EXPECT_JSON("Verify", KC_KMS_INVALID_SIGNATURE, verify_request(k->id, algorithm, "RAW",
				message, sizeof message, signature, sig_len));
		free(signature);
	}
}

static void test_sign_verify_all(void)
{
	for (int i = 0; i < KEY_COUNT; i++)
		for (size_t a = 0; signs(&keys[i]) && keys[i].algorithms[a]; a++)
			sign_and_verify(&keys[i], keys[i].algorithms[a]);
}

/* A signature made by OpenSSL with a key the engine never saw does not verify. */
static void test_foreign_signatures(void)
{
	static const uint8_t message[] = "signed elsewhere";
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	uint8_t *signature;
	size_t sig_len;

	signature = openssl_sign(ec, message, sizeof message, &sig_len);
	CHECK(signature && openssl_verify(ec, "ECDSA_SHA_256", message, sizeof message, signature,
			sig_len));
	EXPECT_JSON("Verify", KC_KMS_INVALID_SIGNATURE, verify_request(keys[P256].id,
			"ECDSA_SHA_256", "RAW", message, sizeof message, signature, sig_len));
	free(signature);
	signature = openssl_sign(rsa, message, sizeof message, &sig_len);
	CHECK(signature != NULL);
	EXPECT_JSON("Verify", KC_KMS_INVALID_SIGNATURE, verify_request(keys[RSA2048_SIGN].id,
			"RSASSA_PKCS1_V1_5_SHA_256", "RAW", message, sizeof message, signature, sig_len));
	free(signature);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(rsa);
}

static void test_signing_errors(void)
{
	static uint8_t big[4097];
	uint8_t *signature;
	size_t sig_len;

	/* Algorithms the key's spec does not take, or keys not for signing. */
	EXPECT_JSON("Sign", KC_INVALID_KEY_USAGE, sign_request(keys[P256].id, "ECDSA_SHA_384", "RAW",
			big, 10));
	CHECK(strstr(last_err.message, "incompatible with key spec ECC_NIST_P256") != NULL);
	EXPECT_JSON("Sign", KC_INVALID_KEY_USAGE, sign_request(keys[P384].id, "RSASSA_PSS_SHA_384",
			"RAW", big, 10));
	EXPECT_JSON("Sign", KC_INVALID_KEY_USAGE, sign_request(keys[RSA2048_SIGN].id, "ECDSA_SHA_256",
			"RAW", big, 10));
	EXPECT_JSON("Sign", KC_INVALID_KEY_USAGE, sign_request(keys[RSA2048_ENC].id,
			"RSASSA_PSS_SHA_256", "RAW", big, 10));
	EXPECT_JSON("Sign", KC_INVALID_KEY_USAGE, sign_request(symmetric_id, "RSASSA_PSS_SHA_256",
			"RAW", big, 10));
	EXPECT_JSON("Verify", KC_INVALID_KEY_USAGE, verify_request(keys[P521].id, "ECDSA_SHA_256",
			"RAW", big, 10, big, 64));
	/* Not an AWS algorithm, or none: validation. */
	EXPECT_JSON("Sign", KC_VALIDATION, sign_request(keys[P256].id, "ECDSA_SHA_1", "RAW", big, 10));
	EXPECT("Sign", KC_VALIDATION, "{\"KeyId\": \"%s\", \"Message\": \"aGk=\"}", keys[P256].id);
	EXPECT("Sign", KC_VALIDATION, "{\"KeyId\": \"%s\", \"Message\": \"aGk=\", \"SigningAlgorithm\": "
			"\"ECDSA_SHA_256\", \"MessageType\": \"HASHED\"}", keys[P256].id);
	EXPECT("Verify", KC_VALIDATION, "{\"KeyId\": \"%s\", \"Message\": \"aGk=\", \"SigningAlgorithm\": "
			"\"ECDSA_SHA_256\"}", keys[P256].id);
	/* DIGEST must be exactly the algorithm's digest length. */
	EXPECT_JSON("Sign", KC_VALIDATION, sign_request(keys[P256].id, "ECDSA_SHA_256", "DIGEST",
			big, 31));
	CHECK(strstr(last_err.message, "Digest is invalid length") != NULL);
	EXPECT_JSON("Sign", KC_VALIDATION, sign_request(keys[P256].id, "ECDSA_SHA_256", "DIGEST",
			big, 33));
	EXPECT_JSON("Sign", KC_VALIDATION, sign_request(keys[P384].id, "ECDSA_SHA_384", "DIGEST",
			big, 32));
	EXPECT_JSON("Sign", KC_VALIDATION, sign_request(keys[RSA2048_SIGN].id,
			"RSASSA_PKCS1_V1_5_SHA_512", "DIGEST", big, 32));
	EXPECT_JSON("Sign", KC_OK, sign_request(keys[RSA2048_SIGN].id, "RSASSA_PKCS1_V1_5_SHA_512",
			"DIGEST", big, 64));
	/* Messages up to 4096 bytes. */
	EXPECT_JSON("Sign", KC_OK, sign_request(keys[P256].id, "ECDSA_SHA_256", "RAW", big, 4096));
	signature = resp_blob("Signature", &sig_len);
	CHECK(signature && openssl_verify(keys[P256].pub, "ECDSA_SHA_256", big, 4096, signature,
			sig_len));
	EXPECT_JSON("Verify", KC_OK, verify_request(keys[P256].id, "ECDSA_SHA_256", "RAW", big, 4096,
			signature, sig_len ? sig_len : 1));
	/* A valid signature under another algorithm of the same key does not verify. */
	free(signature);
	EXPECT_JSON("Sign", KC_OK, sign_request(keys[RSA2048_SIGN].id, "RSASSA_PSS_SHA_256", "RAW",
			big, 100));
	signature = resp_blob("Signature", &sig_len);
	EXPECT_JSON("Verify", KC_KMS_INVALID_SIGNATURE, verify_request(keys[RSA2048_SIGN].id,
			"RSASSA_PKCS1_V1_5_SHA_256", "RAW", big, 100, signature, sig_len ? sig_len : 1));
	EXPECT_JSON("Sign", KC_VALIDATION, sign_request(keys[P256].id, "ECDSA_SHA_256", "RAW", big,
			4097));
	/* State: a disabled key neither signs nor verifies. */
	EXPECT("DisableKey", KC_OK, "{\"KeyId\": \"%s\"}", keys[RSA2048_SIGN].id);
	EXPECT_JSON("Sign", KC_DISABLED, sign_request(keys[RSA2048_SIGN].id, "RSASSA_PSS_SHA_256",
			"RAW", big, 100));
	EXPECT_JSON("Verify", KC_DISABLED, verify_request(keys[RSA2048_SIGN].id, "RSASSA_PSS_SHA_256",
			"RAW", big, 100, signature, sig_len ? sig_len : 1));
	EXPECT("GetPublicKey", KC_DISABLED, "{\"KeyId\": \"%s\"}", keys[RSA2048_SIGN].id);
	EXPECT("EnableKey", KC_OK, "{\"KeyId\": \"%s\"}", keys[RSA2048_SIGN].id);
	EXPECT_JSON("Verify", KC_OK, verify_request(keys[RSA2048_SIGN].id, "RSASSA_PSS_SHA_256",
			"RAW", big, 100, signature, sig_len ? sig_len : 1));
	free(signature);
}

/* ---- RSA Encrypt, Decrypt ------------------------------------------------------------------------- */

static json_t *encrypt_request(const char *key_id, const char *algorithm, const uint8_t *plain,
		size_t len)
{
	return json_pack("{s:s, s:s, s:o}", "KeyId", key_id, "EncryptionAlgorithm", algorithm,
			"Plaintext", b64(plain, len));
}

static json_t *decrypt_request(const char *key_id, const char *algorithm, const uint8_t *blob,
		size_t len)
{
	return json_pack("{s:s, s:s, s:o}", "KeyId", key_id, "EncryptionAlgorithm", algorithm,
			"CiphertextBlob", b64(blob, len));
}

/* Decrypt through the API gives exactly want. */
static int decrypts_to(const char *key_id, const char *algorithm, const uint8_t *blob,
		size_t blob_len, const uint8_t *want, size_t want_len)
{
	uint8_t *plain;
	size_t plain_len;
	int same;

	if (call_json("Decrypt", decrypt_request(key_id, algorithm, blob, blob_len)) != KC_OK) {
		fprintf(stderr, "Decrypt failed: %s: %s\n", last_err.type, last_err.message);
		return 0;
	}
	plain = resp_blob("Plaintext", &plain_len);
	same = plain && plain_len == want_len && memcmp(plain, want, want_len) == 0 &&
		strcmp(resp_str("EncryptionAlgorithm"), algorithm) == 0;
	free(plain);
	return same;
}

/* AWS's documented limits: modulus - 2 * hash - 2 bytes. */
static void rsa_round_trips(const struct test_key *k, const char *algorithm, size_t limit)
{
	const EVP_MD *md = strcmp(algorithm, "RSAES_OAEP_SHA_1") == 0 ? EVP_sha1() : EVP_sha256();
	const char *other = md == EVP_sha1() ? "RSAES_OAEP_SHA_256" : "RSAES_OAEP_SHA_1";
	uint8_t plain[512], *blob;
	size_t blob_len;
	char arn[160];

	key_arn(k->id, arn);
	randombytes_buf(plain, sizeof plain);
	EXPECT_JSON("Encrypt", KC_OK, encrypt_request(k->id, algorithm, plain, limit));
	CHECK(strcmp(resp_str("KeyId"), arn) == 0);
	CHECK(strcmp(resp_str("EncryptionAlgorithm"), algorithm) == 0);
	blob = resp_blob("CiphertextBlob", &blob_len);
	CHECK(blob && blob_len == (size_t)k->bits / 8);
	CHECK(blob && decrypts_to(k->id, algorithm, blob, blob_len, plain, limit));
	CHECK(strcmp(resp_str("KeyId"), arn) == 0);
	/* The other OAEP hash does not open it; neither does a damaged ciphertext. */
	EXPECT_JSON("Decrypt", KC_INVALID_CIPHERTEXT, decrypt_request(k->id, other, blob, blob_len));
	EXPECT_JSON("Decrypt", KC_INVALID_CIPHERTEXT, decrypt_request(k->id, algorithm, blob,
			blob_len - 1));
	if (blob)
		blob[blob_len / 3] ^= 1;
	EXPECT_JSON("Decrypt", KC_INVALID_CIPHERTEXT, decrypt_request(k->id, algorithm, blob,
			blob_len));
	free(blob);
	EXPECT_JSON("Encrypt", KC_VALIDATION, encrypt_request(k->id, algorithm, plain, limit + 1));
	/* OpenSSL encrypts with the public key; the engine decrypts. */
	blob = oaep_encrypt(k->pub, md, plain, 77, &blob_len);
	CHECK(blob && decrypts_to(k->id, algorithm, blob, blob_len, plain, 77));
	free(blob);
}

static void test_rsa_encryption(void)
{
	static const uint8_t hello[] = "hello";

	rsa_round_trips(&keys[RSA2048_ENC], "RSAES_OAEP_SHA_1", 214);
	rsa_round_trips(&keys[RSA2048_ENC], "RSAES_OAEP_SHA_256", 190);
	rsa_round_trips(&keys[RSA4096_ENC], "RSAES_OAEP_SHA_1", 470);
	rsa_round_trips(&keys[RSA4096_ENC], "RSAES_OAEP_SHA_256", 446);
	/* No algorithm is SYMMETRIC_DEFAULT, which RSA keys do not take. */
	EXPECT("Encrypt", KC_INVALID_KEY_USAGE, "{\"KeyId\": \"%s\", \"Plaintext\": \"aGk=\"}",
			keys[RSA2048_ENC].id);
	CHECK(strstr(last_err.message, "SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048") != NULL);
	EXPECT_JSON("Encrypt", KC_INVALID_KEY_USAGE, encrypt_request(keys[RSA2048_ENC].id,
			"SYMMETRIC_DEFAULT", hello, 5));
	EXPECT_JSON("Encrypt", KC_VALIDATION, encrypt_request(keys[RSA2048_ENC].id,
			"RSAES_OAEP_SHA_512", hello, 5));
	EXPECT("Encrypt", KC_VALIDATION, "{\"KeyId\": \"%s\", \"Plaintext\": \"aGk=\", "
			"\"EncryptionAlgorithm\": \"RSAES_OAEP_SHA_256\", \"EncryptionContext\": {\"a\": \"b\"}}",
			keys[RSA2048_ENC].id);
	/* Keys not for encryption, and symmetric keys with an RSA algorithm. */
	EXPECT_JSON("Encrypt", KC_INVALID_KEY_USAGE, encrypt_request(keys[RSA2048_SIGN].id,
			"RSAES_OAEP_SHA_256", hello, 5));
	EXPECT_JSON("Encrypt", KC_INVALID_KEY_USAGE, encrypt_request(keys[P256].id,
			"RSAES_OAEP_SHA_256", hello, 5));
	EXPECT_JSON("Encrypt", KC_INVALID_KEY_USAGE, encrypt_request(symmetric_id,
			"RSAES_OAEP_SHA_256", hello, 5));
	EXPECT_JSON("Decrypt", KC_INVALID_KEY_USAGE, decrypt_request(keys[RSA2048_SIGN].id,
			"RSAES_OAEP_SHA_256", hello, 5));
	EXPECT_JSON("Decrypt", KC_INVALID_KEY_USAGE, decrypt_request(symmetric_id,
			"RSAES_OAEP_SHA_256", hello, 5));
	/* Asymmetric ciphertext names no key: the request must. */
	EXPECT("Decrypt", KC_VALIDATION, "{\"CiphertextBlob\": \"aGk=\", \"EncryptionAlgorithm\": "
			"\"RSAES_OAEP_SHA_256\"}");
	EXPECT("DisableKey", KC_OK, "{\"KeyId\": \"%s\"}", keys[RSA2048_ENC].id);
	EXPECT_JSON("Encrypt", KC_DISABLED, encrypt_request(keys[RSA2048_ENC].id,
			"RSAES_OAEP_SHA_256", hello, 5));
	EXPECT("EnableKey", KC_OK, "{\"KeyId\": \"%s\"}", keys[RSA2048_ENC].id);
}

/* ---- GenerateDataKeyPair ----------------------------------------------------------------------------- */

struct pair_spec {
	const char *name;
	int bits;
	const char *group;
};

static const struct pair_spec pair_specs[] = {
	{ "RSA_2048", 2048, NULL }, { "RSA_3072", 3072, NULL }, { "RSA_4096", 4096, NULL },
	{ "ECC_NIST_P256", 0, "prime256v1" }, { "ECC_NIST_P384", 0, "secp384r1" },
	{ "ECC_NIST_P521", 0, "secp521r1" }, { "ECC_SECG_P256K1", 0, "secp256k1" },
};

/* The private key signs what the public key verifies, and they are one pair. */
static int pair_matches(EVP_PKEY *private_key, EVP_PKEY *public_key)
{
	static const uint8_t message[] = "data key pair";
	uint8_t *signature;
	size_t sig_len;
	int ok;

	if (!private_key || !public_key || EVP_PKEY_eq(private_key, public_key) != 1)
		return 0;
	signature = openssl_sign(private_key, message, sizeof message, &sig_len);
	ok = signature && openssl_verify(public_key, EVP_PKEY_is_a(public_key, "RSA") ?
			"RSASSA_PKCS1_V1_5_SHA_256" : "ECDSA_SHA_256", message, sizeof message, signature,
			sig_len);
	free(signature);
	return ok;
}

static json_t *pair_request(const char *key_id, const char *spec)
{
	return json_pack("{s:s, s:s, s:{s:s}}", "KeyId", key_id, "KeyPairSpec", spec,
			"EncryptionContext", "purpose", "pair test");
}

static void one_data_key_pair(const struct pair_spec *spec)
{
	uint8_t *plain, *public_der, *blob, *opened;
	size_t plain_len, public_len, blob_len, opened_len;
	EVP_PKEY *private_key, *public_key;
	char arn[160];

	key_arn(symmetric_id, arn);
	EXPECT_JSON("GenerateDataKeyPair", KC_OK, pair_request(symmetric_id, spec->name));
	CHECK(strcmp(resp_str("KeyId"), arn) == 0);
	CHECK(strcmp(resp_str("KeyPairSpec"), spec->name) == 0);
	plain = resp_blob("PrivateKeyPlaintext", &plain_len);
	public_der = resp_blob("PublicKey", &public_len);
	blob = resp_blob("PrivateKeyCiphertextBlob", &blob_len);
	private_key = parse_pkcs8(plain, plain_len);
	public_key = parse_public(public_der, public_len);
	CHECK(key_is(private_key, spec->bits, spec->group));
	CHECK(key_is(public_key, spec->bits, spec->group));
	CHECK(pair_matches(private_key, public_key));
	/* Decrypt opens the sealed private key, with the same context only. */
	EXPECT_JSON("Decrypt", KC_OK, json_pack("{s:o, s:{s:s}}", "CiphertextBlob",
			b64(blob, blob_len), "EncryptionContext", "purpose", "pair test"));
	opened = resp_blob("Plaintext", &opened_len);
	CHECK(opened && plain && opened_len == plain_len && memcmp(opened, plain, plain_len) == 0);
	CHECK(strcmp(resp_str("KeyId"), arn) == 0);
	EXPECT_JSON("Decrypt", KC_INVALID_CIPHERTEXT, json_pack("{s:o}", "CiphertextBlob",
			b64(blob, blob_len)));
	EVP_PKEY_free(private_key);
	EVP_PKEY_free(public_key);
	free(opened);
	free(plain);
	free(public_der);
	free(blob);
}

static void test_data_key_pairs(void)
{
	uint8_t *public_der, *blob, *opened;
	size_t public_len, blob_len, opened_len;
	EVP_PKEY *private_key = NULL, *public_key;

	for (size_t i = 0; i < sizeof pair_specs / sizeof *pair_specs; i++)
		one_data_key_pair(&pair_specs[i]);

	EXPECT_JSON("GenerateDataKeyPairWithoutPlaintext", KC_OK, pair_request(symmetric_id,
			"ECC_NIST_P384"));
	CHECK(json_object_get(last.response, "PrivateKeyPlaintext") == NULL);
	CHECK(strcmp(resp_str("KeyPairSpec"), "ECC_NIST_P384") == 0);
	public_der = resp_blob("PublicKey", &public_len);
	blob = resp_blob("PrivateKeyCiphertextBlob", &blob_len);
	public_key = parse_public(public_der, public_len);
	EXPECT_JSON("Decrypt", KC_OK, json_pack("{s:o, s:{s:s}}", "CiphertextBlob",
			b64(blob, blob_len), "EncryptionContext", "purpose", "pair test"));
	opened = resp_blob("Plaintext", &opened_len);
	private_key = parse_pkcs8(opened, opened_len);
	CHECK(pair_matches(private_key, public_key));
	EVP_PKEY_free(private_key);
	EVP_PKEY_free(public_key);
	free(opened);
	free(public_der);
	free(blob);

	/* Pairs are sealed under symmetric encryption keys only. */
	EXPECT_JSON("GenerateDataKeyPair", KC_INVALID_KEY_USAGE, pair_request(keys[RSA2048_ENC].id,
			"RSA_2048"));
	EXPECT_JSON("GenerateDataKeyPairWithoutPlaintext", KC_INVALID_KEY_USAGE,
			pair_request(keys[P256].id, "ECC_NIST_P256"));
	EXPECT_JSON("GenerateDataKeyPair", KC_UNSUPPORTED_OPERATION, pair_request(symmetric_id, "SM2"));
	EXPECT_JSON("GenerateDataKeyPair", KC_VALIDATION, pair_request(symmetric_id, "RSA_1024"));
	EXPECT("GenerateDataKeyPair", KC_VALIDATION, "{\"KeyId\": \"%s\"}", symmetric_id);
	EXPECT("DisableKey", KC_OK, "{\"KeyId\": \"%s\"}", symmetric_id);
	EXPECT_JSON("GenerateDataKeyPair", KC_DISABLED, pair_request(symmetric_id, "ECC_NIST_P256"));
	EXPECT("EnableKey", KC_OK, "{\"KeyId\": \"%s\"}", symmetric_id);
}

/* ---- import ----------------------------------------------------------------------------------------- */

struct import_params {
	uint8_t *token;
	size_t token_len;
	EVP_PKEY *wrapping;
	const char *algorithm;
};

static void import_params_free(struct import_params *p)
{
	free(p->token);
	EVP_PKEY_free(p->wrapping);
	memset(p, 0, sizeof *p);
}

static void get_params(const char *key_id, const char *algorithm, const char *spec, int bits,
		struct import_params *p)
{
	uint8_t *der;
	size_t der_len;
	double valid_to, now = (double)time(NULL);
	char arn[160];

	memset(p, 0, sizeof *p);
	p->algorithm = algorithm;
	EXPECT("GetParametersForImport", KC_OK, "{\"KeyId\": \"%s\", \"WrappingAlgorithm\": \"%s\", "
			"\"WrappingKeySpec\": \"%s\"}", key_id, algorithm, spec);
	key_arn(key_id, arn);
	CHECK(strcmp(resp_str("KeyId"), arn) == 0);
	valid_to = json_number_value(json_object_get(last.response, "ParametersValidTo"));
	CHECK(valid_to >= now + 86400 - 5 && valid_to <= now + 86400 + 5);
	p->token = resp_blob("ImportToken", &p->token_len);
	CHECK(p->token && p->token_len >= 64);
	der = resp_blob("PublicKey", &der_len);
	p->wrapping = parse_public(der, der_len);
	CHECK(key_is(p->wrapping, bits, NULL));
	free(der);
}

/* material wrapped as p->algorithm says, with extra request fields (a JSON object's text). */
static enum kc_status import_with(const char *key_id, const struct import_params *p,
		const uint8_t *material, size_t material_len, const char *extra)
{
	const EVP_MD *md = strstr(p->algorithm, "SHA_256") ? EVP_sha256() : EVP_sha1();
	uint8_t *wrapped;
	size_t wrapped_len = 0;
	json_t *request, *extra_fields;

	if (!p->wrapping)
		return KC_INTERNAL;
	if (strncmp(p->algorithm, "RSA_AES_KEY_WRAP_", 17) == 0)
		wrapped = kwp_encrypt(p->wrapping, md, material, material_len, &wrapped_len);
	else
		wrapped = oaep_encrypt(p->wrapping, md, material, material_len, &wrapped_len);
	request = json_pack("{s:s, s:o, s:o}", "KeyId", key_id, "ImportToken",
			b64(p->token, p->token_len), "EncryptedKeyMaterial", b64(wrapped, wrapped_len));
	extra_fields = json_loads(extra, 0, NULL);
	CHECK(extra_fields != NULL);
	json_object_update(request, extra_fields);
	json_decref(extra_fields);
	free(wrapped);
	return call_json("ImportKeyMaterial", request);
}

#define NO_EXPIRY "{\"ExpirationModel\": \"KEY_MATERIAL_DOES_NOT_EXPIRE\"}"

#define EXPECT_IMPORT(want, key_id, p, material, len, extra) do { \
	enum kc_status got_ = import_with(key_id, p, material, len, extra); \
	if (got_ != (want)) \
		report_status(__FILE__, __LINE__, "ImportKeyMaterial", got_, want); \
} while (0)

static const char *key_state(const char *key_id)
{
	static char state[32];

	EXPECT("DescribeKey", KC_OK, "{\"KeyId\": \"%s\"}", key_id);
	snprintf(state, sizeof state, "%s", meta_str("KeyState"));
	return state;
}

/* Encrypt through the API, then open the blob outside the engine with the imported bytes. */
static uint8_t *encrypt_and_check(const char *key_id, const uint8_t material[32], size_t *blob_len)
{
	static const uint8_t plain[] = "sealed under imported material";
	struct kc_error err = { 0 };
	uint8_t *blob, *context = NULL, opened[64];
	size_t context_len = 0, opened_len = 0;

	EXPECT_JSON("Encrypt", KC_OK, json_pack("{s:s, s:o}", "KeyId", key_id, "Plaintext",
			b64(plain, sizeof plain)));
	blob = resp_blob("CiphertextBlob", blob_len);
	CHECK(blob != NULL);
	CHECK(kc_context_serialize(NULL, &context, &context_len, &err) == KC_OK);
	CHECK(blob && kc_blob_open(material, blob, *blob_len, context, context_len, opened,
			sizeof opened, &opened_len, &err) == KC_OK);
	CHECK(opened_len == sizeof plain && memcmp(opened, plain, sizeof plain) == 0);
	free(context);
	return blob;
}

static enum kc_status decrypt_blob(const uint8_t *blob, size_t blob_len)
{
	return call_json("Decrypt", json_pack("{s:o}", "CiphertextBlob", b64(blob, blob_len)));
}

/* Pushes the key's outstanding parameters' expiry into the past, as 24 hours would. */
static void expire_params(const char *key_id)
{
	char db_path[256], *message = NULL, sql[160];
	sqlite3 *db = NULL;

	snprintf(db_path, sizeof db_path, "%s/keystore.db", store_dir);
	snprintf(sql, sizeof sql, "UPDATE import_params SET expires = 1 WHERE key_id = '%s'", key_id);
	CHECK(sqlite3_open(db_path, &db) == SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	CHECK(sqlite3_exec(db, sql, NULL, NULL, &message) == SQLITE_OK && sqlite3_changes(db) == 1);
	sqlite3_free(message);
	sqlite3_close(db);
}

static char imported_id[64];
static uint8_t imported_material[32];

static void test_import_errors_first(const char *key_id, const struct import_params *p)
{
	uint8_t short_material[16], garbage[256] = { 0 };
	char extra[160];

	randombytes_buf(short_material, sizeof short_material);
	/* Expiration rules, before anything is unwrapped. */
	EXPECT_IMPORT(KC_VALIDATION, key_id, p, imported_material, 32, "{}");
	snprintf(extra, sizeof extra, "{\"ExpirationModel\": \"KEY_MATERIAL_DOES_NOT_EXPIRE\", "
			"\"ValidTo\": %lld}", (long long)time(NULL) + 3600);
	EXPECT_IMPORT(KC_VALIDATION, key_id, p, imported_material, 32, extra);
	snprintf(extra, sizeof extra, "{\"ValidTo\": %lld}", (long long)time(NULL) - 10);
	EXPECT_IMPORT(KC_VALIDATION, key_id, p, imported_material, 32, extra);
	snprintf(extra, sizeof extra, "{\"ValidTo\": %lld}", (long long)time(NULL) + 366 * 86400LL);
	EXPECT_IMPORT(KC_VALIDATION, key_id, p, imported_material, 32, extra);
	/* Material of the wrong size, and bytes the wrapping key cannot open. */
	EXPECT_IMPORT(KC_INCORRECT_KEY_MATERIAL, key_id, p, short_material, sizeof short_material,
			NO_EXPIRY);
	EXPECT_JSON("ImportKeyMaterial", KC_INVALID_CIPHERTEXT, json_pack("{s:s, s:o, s:o, s:s}",
			"KeyId", key_id, "ImportToken", b64(p->token, p->token_len), "EncryptedKeyMaterial",
			b64(garbage, sizeof garbage), "ExpirationModel", "KEY_MATERIAL_DOES_NOT_EXPIRE"));
}

static void test_import(void)
{
	struct import_params p, other_p;
	char other_id[64], arn[160];
	uint8_t *blob, different[32];
	size_t blob_len;

	randombytes_buf(imported_material, sizeof imported_material);
	randombytes_buf(different, sizeof different);
	EXPECT("CreateKey", KC_OK, "{\"Origin\": \"EXTERNAL\", \"Description\": \"byok\"}");
	snprintf(imported_id, sizeof imported_id, "%s", meta_str("KeyId"));
	CHECK(strcmp(meta_str("KeyState"), "PendingImport") == 0);
	CHECK(strcmp(meta_str("Origin"), "EXTERNAL") == 0);
	EXPECT("Encrypt", KC_INVALID_STATE, "{\"KeyId\": \"%s\", \"Plaintext\": \"aGk=\"}", imported_id);
	EXPECT("CreateKey", KC_OK, "{\"Origin\": \"EXTERNAL\"}");
	snprintf(other_id, sizeof other_id, "%s", meta_str("KeyId"));

	/* Parameters: not for keys whose material the service made; only known algorithms. */
	EXPECT("GetParametersForImport", KC_UNSUPPORTED_OPERATION, "{\"KeyId\": \"%s\", "
			"\"WrappingAlgorithm\": \"RSAES_OAEP_SHA_256\", \"WrappingKeySpec\": \"RSA_2048\"}",
			symmetric_id);
	EXPECT("GetParametersForImport", KC_VALIDATION, "{\"KeyId\": \"%s\", "
			"\"WrappingAlgorithm\": \"RSAES_PKCS1_V1_5\", \"WrappingKeySpec\": \"RSA_2048\"}",
			imported_id);
	EXPECT("GetParametersForImport", KC_VALIDATION, "{\"KeyId\": \"%s\", "
			"\"WrappingAlgorithm\": \"RSAES_OAEP_SHA_256\", \"WrappingKeySpec\": \"RSA_1024\"}",
			imported_id);
	EXPECT("GetParametersForImport", KC_VALIDATION, "{\"KeyId\": \"%s\", "
			"\"WrappingAlgorithm\": \"RSAES_OAEP_SHA_256\"}", imported_id);
	EXPECT("ImportKeyMaterial", KC_INVALID_IMPORT_TOKEN, "{\"KeyId\": \"%s\", \"ImportToken\": "
			"\"AAAA\", \"EncryptedKeyMaterial\": \"AAAA\", \"ExpirationModel\": "
			"\"KEY_MATERIAL_DOES_NOT_EXPIRE\"}", imported_id);

	get_params(imported_id, "RSAES_OAEP_SHA_256", "RSA_2048", 2048, &p);
	get_params(other_id, "RSAES_OAEP_SHA_1", "RSA_2048", 2048, &other_p);
	test_import_errors_first(imported_id, &p);
	/* Another key's token (wrapped for that key, even): not this key's. */
	EXPECT_IMPORT(KC_INVALID_IMPORT_TOKEN, imported_id, &other_p, imported_material, 32, NO_EXPIRY);
	/* The right token with material wrapped under the other key's public key. */
	{
		struct import_params mixed = p;

		mixed.wrapping = other_p.wrapping;
		EXPECT_IMPORT(KC_INVALID_CIPHERTEXT, imported_id, &mixed, imported_material, 32, NO_EXPIRY);
	}
	EXPECT_IMPORT(KC_OK, imported_id, &p, imported_material, 32, NO_EXPIRY);
	CHECK(last.audit_request && !json_object_get(last.audit_request, "importToken") &&
			!json_object_get(last.audit_request, "encryptedKeyMaterial"));
	CHECK(strcmp(key_state(imported_id), "Enabled") == 0);
	CHECK(strcmp(meta_str("ExpirationModel"), "KEY_MATERIAL_DOES_NOT_EXPIRE") == 0);
	/* Spent: the same token does not import twice. */
	EXPECT_IMPORT(KC_INVALID_IMPORT_TOKEN, imported_id, &p, imported_material, 32, NO_EXPIRY);

	blob = encrypt_and_check(imported_id, imported_material, &blob_len);
	CHECK(decrypt_blob(blob, blob_len) == KC_OK);
	key_arn(imported_id, arn);
	CHECK(strcmp(resp_str("KeyId"), arn) == 0);

	/* Different material into a key that has some: refused. */
	import_params_free(&p);
	get_params(imported_id, "RSAES_OAEP_SHA_1", "RSA_3072", 3072, &p);
	EXPECT_IMPORT(KC_INCORRECT_KEY_MATERIAL, imported_id, &p, different, 32, NO_EXPIRY);

	/* Deleted material: PendingImport, nothing works, old ciphertext waits. */
	EXPECT("DeleteImportedKeyMaterial", KC_OK, "{\"KeyId\": \"%s\"}", imported_id);
	CHECK(strcmp(key_state(imported_id), "PendingImport") == 0);
	EXPECT("DeleteImportedKeyMaterial", KC_INVALID_STATE, "{\"KeyId\": \"%s\"}", imported_id);
	EXPECT("DeleteImportedKeyMaterial", KC_UNSUPPORTED_OPERATION, "{\"KeyId\": \"%s\"}", symmetric_id);
	EXPECT("Encrypt", KC_INVALID_STATE, "{\"KeyId\": \"%s\", \"Plaintext\": \"aGk=\"}", imported_id);
	CHECK(decrypt_blob(blob, blob_len) == KC_INVALID_STATE);
	/* Different material after deletion: still refused (the fingerprint outlives the material). */
	EXPECT_IMPORT(KC_INCORRECT_KEY_MATERIAL, imported_id, &p, different, 32, NO_EXPIRY);
	CHECK(strcmp(key_state(imported_id), "PendingImport") == 0);
	/* An expired token, even the right one. */
	expire_params(imported_id);
	EXPECT_IMPORT(KC_EXPIRED_IMPORT_TOKEN, imported_id, &p, imported_material, 32, NO_EXPIRY);
	import_params_free(&p);

	/* The same material again, through RSA + AES key wrap: the old ciphertext opens again. */
	get_params(imported_id, "RSA_AES_KEY_WRAP_SHA_256", "RSA_4096", 4096, &p);
	EXPECT_IMPORT(KC_OK, imported_id, &p, imported_material, 32, NO_EXPIRY);
	CHECK(strcmp(key_state(imported_id), "Enabled") == 0);
	CHECK(decrypt_blob(blob, blob_len) == KC_OK);
	free(blob);
	blob = encrypt_and_check(imported_id, imported_material, &blob_len);
	free(blob);
	import_params_free(&p);
	get_params(imported_id, "RSA_AES_KEY_WRAP_SHA_1", "RSA_2048", 2048, &p);
	EXPECT_IMPORT(KC_INCORRECT_KEY_MATERIAL, imported_id, &p, different, 32, NO_EXPIRY);
	import_params_free(&p);

	/* The other key takes its own, different material through its own parameters. */
	EXPECT_IMPORT(KC_OK, other_id, &other_p, different, 32, NO_EXPIRY);
	blob = encrypt_and_check(other_id, different, &blob_len);
	free(blob);
	import_params_free(&other_p);
}

static void test_import_expiry(void)
{
	struct kc_local *local = kc_local_of(engine);
	struct import_params p;
	struct kc_error err = { 0 };
	int64_t now = (int64_t)time(NULL);
	uint8_t material[32], *blob;
	size_t blob_len;
	char key_id[64], extra[96];

	randombytes_buf(material, sizeof material);
	EXPECT("CreateKey", KC_OK, "{\"Origin\": \"EXTERNAL\"}");
	snprintf(key_id, sizeof key_id, "%s", meta_str("KeyId"));
	get_params(key_id, "RSAES_OAEP_SHA_256", "RSA_2048", 2048, &p);
	snprintf(extra, sizeof extra, "{\"ExpirationModel\": \"KEY_MATERIAL_EXPIRES\", \"ValidTo\": "
			"%lld.5}", (long long)now + 3600);
	EXPECT_IMPORT(KC_OK, key_id, &p, material, 32, extra);
	import_params_free(&p);
	CHECK(strcmp(key_state(key_id), "Enabled") == 0);
	CHECK(strcmp(meta_str("ExpirationModel"), "KEY_MATERIAL_EXPIRES") == 0);
	CHECK(json_number_value(json_object_get(json_object_get(last.response, "KeyMetadata"),
			"ValidTo")) == (double)(now + 3600));
	blob = encrypt_and_check(key_id, material, &blob_len);

	/* Not yet due; then due: the material goes, the key waits for it again. */
	CHECK(kc_import_expire_due(local, now, &err) == KC_OK);
	CHECK(strcmp(key_state(key_id), "Enabled") == 0);
	CHECK(kc_import_expire_due(local, now + 3600, &err) == KC_OK);
	CHECK(strcmp(key_state(key_id), "PendingImport") == 0);
	CHECK(decrypt_blob(blob, blob_len) == KC_INVALID_STATE);
	EXPECT("Encrypt", KC_INVALID_STATE, "{\"KeyId\": \"%s\", \"Plaintext\": \"aGk=\"}", key_id);
	CHECK(kc_import_expire_due(local, now + 7200, &err) == KC_OK);   /* nothing left: no change */

	/* Reimported (now for good): the old ciphertext opens again. */
	get_params(key_id, "RSAES_OAEP_SHA_256", "RSA_2048", 2048, &p);
	EXPECT_IMPORT(KC_OK, key_id, &p, material, 32, NO_EXPIRY);
	import_params_free(&p);
	CHECK(decrypt_blob(blob, blob_len) == KC_OK);
	CHECK(kc_import_expire_due(local, now + 400 * 86400LL, &err) == KC_OK);
	CHECK(strcmp(key_state(key_id), "Enabled") == 0);
	free(blob);

	/* A key pending deletion loses expired material but stays pending deletion. */
	get_params(key_id, "RSAES_OAEP_SHA_256", "RSA_2048", 2048, &p);
	snprintf(extra, sizeof extra, "{\"ValidTo\": %lld}", (long long)now + 600);
	EXPECT_IMPORT(KC_OK, key_id, &p, material, 32, extra);
	import_params_free(&p);
	EXPECT("ScheduleKeyDeletion", KC_OK, "{\"KeyId\": \"%s\"}", key_id);
	CHECK(kc_import_expire_due(local, now + 600, &err) == KC_OK);
	CHECK(strcmp(key_state(key_id), "PendingDeletion") == 0);
	EXPECT("CancelKeyDeletion", KC_OK, "{\"KeyId\": \"%s\"}", key_id);
	CHECK(strcmp(key_state(key_id), "PendingImport") == 0);   /* no material left to enable */
}

/* ---- reopening --------------------------------------------------------------------------------------- */

static void test_reopen(void)
{
	static const uint8_t message[] = "after reopening";
	struct import_params p;
	struct kc_error err;
	uint8_t *signature, different[32];
	size_t sig_len;

	kc_api_result_free(&last);
	keyclient_free(engine);
	engine = NULL;
	CHECK(test_open_engine("kms asym test", 0, &err) == KC_OK);
	if (!engine)
		return;
	EXPECT_JSON("Sign", KC_OK, sign_request(keys[P521].id, "ECDSA_SHA_512", "RAW", message,
			sizeof message));
	signature = resp_blob("Signature", &sig_len);
	CHECK(signature && openssl_verify(keys[P521].pub, "ECDSA_SHA_512", message, sizeof message,
			signature, sig_len));
	free(signature);
	/* The fingerprint is in the store, not in memory. */
	randombytes_buf(different, sizeof different);
	EXPECT("DeleteImportedKeyMaterial", KC_OK, "{\"KeyId\": \"%s\"}", imported_id);
	get_params(imported_id, "RSAES_OAEP_SHA_256", "RSA_2048", 2048, &p);
	EXPECT_IMPORT(KC_INCORRECT_KEY_MATERIAL, imported_id, &p, different, 32, NO_EXPIRY);
	EXPECT_IMPORT(KC_OK, imported_id, &p, imported_material, 32, NO_EXPIRY);
	import_params_free(&p);
}

int main(void)
{
	if (test_start("kms_api_asym", "kms asym test") != 0)
		return 1;
	test_create_and_public_keys();
	test_sign_verify_all();
	test_foreign_signatures();
	test_signing_errors();
	test_rsa_encryption();
	test_data_key_pairs();
	test_import();
	test_import_expiry();
	test_reopen();
	for (int i = 0; i < KEY_COUNT; i++)
		EVP_PKEY_free(keys[i].pub);
	return test_finish("test_kms_api_asym");
}
