/*
 * api_asym.c - asymmetric keys through the KMS API: creating RSA and ECC
 * key pairs, GetPublicKey, Sign, Verify, Encrypt/Decrypt with RSA-OAEP,
 * and GenerateDataKeyPair(WithoutPlaintext).
 *
 * A key's private half is its material version 1: PKCS#8 DER sealed
 * under the root key, bound to the key and version like symmetric
 * material. It is unsealed for one Sign or Decrypt and freed right
 * after; Verify and Encrypt need only the stored public key. Data key
 * pairs are sealed under a symmetric key as ordinary blobs, so Decrypt
 * opens their private half like any other ciphertext.
 *
 * The cryptography is asym.c's; what is here is AWS's rules: which
 * algorithms a key spec takes, size limits, and the error types.
 */
#include "api_internal.h"
#include "asym.h"

#include <stdlib.h>
#include <string.h>

/* Every SigningAlgorithmSpec AWS knows (others are ValidationException). */
static const char *const signing_algorithms[] = {
	"RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
	"RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
	"ECDSA_SHA_256", "ECDSA_SHA_384", "ECDSA_SHA_512", "SM2DSA", "ML_DSA_SHAKE_256",
	"ED25519_SHA_512", "ED25519_PH_SHA_512", NULL,
};
static const char *const message_types[] = { "RAW", "DIGEST", "EXTERNAL_MU", NULL };
static const char *const encryption_algorithms[] = {
	"SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE", NULL,
};
static const char *const key_pair_specs[] = {
	"RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521",
	"ECC_SECG_P256K1", "SM2", "ECC_NIST_EDWARDS25519", NULL,
};

#define SIGN_MESSAGE_MAX 4096       /* Sign/Verify Message */
#define SIGNATURE_MAX 6144          /* Verify Signature */
#define CIPHERTEXT_MAX 6144         /* Decrypt CiphertextBlob */

/* ---- key specs and algorithms ------------------------------------------------------------ */

int kc_asym_spec_supported(const char *key_spec)
{
	return kc_asym_spec(key_spec) != NULL;
}

json_t *kc_asym_encryption_algorithms(const char *key_spec, const char *key_usage)
{
	const struct kc_asym_spec *spec = kc_asym_spec(key_spec);
	json_t *list = json_array();

	if (spec && spec->rsa_bits && strcmp(key_usage, "ENCRYPT_DECRYPT") == 0) {
		json_array_append_new(list, json_string("RSAES_OAEP_SHA_1"));
		json_array_append_new(list, json_string("RSAES_OAEP_SHA_256"));
	}
	return list;
}

json_t *kc_asym_signing_algorithms(const char *key_spec, const char *key_usage)
{
	const struct kc_asym_spec *spec = kc_asym_spec(key_spec);
	const struct kc_sig_alg *alg;
	json_t *list = json_array();

	if (!spec || strcmp(key_usage, "SIGN_VERIFY") != 0)
		return list;
	for (size_t i = 0; signing_algorithms[i]; i++) {
		alg = kc_asym_sig_alg(signing_algorithms[i]);
		if (alg && kc_asym_spec_signs(spec, alg))
			json_array_append_new(list, json_string(alg->name));
	}
	return list;
}

/* AWS's InvalidKeyUsageException for an algorithm the key's spec does not take. */
static enum kc_status incompatible(const struct kc_store_key *key, const char *algorithm,
		struct kc_error *err)
{
	return kc_fail(err, KC_INVALID_KEY_USAGE, "Algorithm %s is incompatible with key spec %s.",
			algorithm, key->key_spec);
}

/* ---- the key's two halves ----------------------------------------------------------------- */

struct private_seal {
	struct kc_local *local;
	const char *key_id;
	const uint8_t *der;                /* PKCS#8, secure memory */
	size_t der_len;
};

/* kc_material_sealer_v: the private key as material version `version`. */
static int seal_private_key(uint32_t version, uint8_t **sealed, size_t *sealed_len, void *arg)
{
	const struct private_seal *seal = arg;
	uint8_t aad[KC_MATERIAL_AAD_LEN];
	uint8_t key_uuid[KC_UUID_LEN];

	if (kc_uuid_parse(seal->key_id, key_uuid) != 0)
		return -1;
	kc_material_aad(key_uuid, version, aad);
	return kc_asym_seal_private(seal->local->root_key, aad, sizeof aad, seal->der,
			seal->der_len, sealed, sealed_len);
}

/* The newest private key version, unsealed; the caller frees *pkey at once after use. */
static enum kc_status load_private_key(struct kc_api_req *req, const struct kc_store_key *key,
		EVP_PKEY **pkey, struct kc_error *err)
{
	uint8_t aad[KC_MATERIAL_AAD_LEN];
	uint8_t key_uuid[KC_UUID_LEN];
	uint8_t *sealed = NULL;
	size_t sealed_len = 0;
	uint32_t version = 0;
	enum kc_status rc;

	*pkey = NULL;
	rc = kc_store_get_material_v(req->local->store, key->key_id, 0, &sealed, &sealed_len,
			&version, err);
	if (rc != KC_OK)
		return rc;
	if (kc_uuid_parse(key->key_id, key_uuid) == 0) {
		kc_material_aad(key_uuid, version, aad);
		*pkey = kc_asym_unseal_private(req->local->root_key, aad, sizeof aad, sealed, sealed_len);
	}
	free(sealed);
	if (!*pkey)
		return kc_fail(err, KC_INTERNAL, "%s: private key version %u failed authentication "
				"(key store %s altered or corrupted)", req->result->key_arn, version,
				kc_store_path(req->local->store));
	return KC_OK;
}

static enum kc_status load_public_key(struct kc_api_req *req, const struct kc_store_key *key,
		EVP_PKEY **pkey, struct kc_error *err)
{
	uint8_t *der = NULL;
	size_t der_len = 0;
	enum kc_status rc;

	*pkey = NULL;
	rc = kc_store_get_public_key(req->local->store, key->key_id, &der, &der_len, err);
	if (rc != KC_OK)
		return rc;
	*pkey = kc_asym_public_key(der, der_len);
	free(der);
	if (!*pkey)
		return kc_fail(err, KC_INTERNAL, "%s: stored public key is not a valid "
				"SubjectPublicKeyInfo", req->result->key_arn);
	return KC_OK;
}

/* ---- CreateKey ------------------------------------------------------------------------------- */

enum kc_status kc_asym_pair_make(const char *key_spec, struct kc_asym_pair **out,
		struct kc_error *err)
{
	const struct kc_asym_spec *spec = kc_asym_spec(key_spec);

	*out = NULL;
	if (!spec)
		return kc_fail(err, KC_UNSUPPORTED_OPERATION,
				"KeySpec %s is not supported by this key service", key_spec);
	*out = calloc(1, sizeof **out);
	if (!*out)
		return kc_fail(err, KC_INTERNAL, "out of memory");
	if (kc_asym_generate(spec, *out) != 0) {
		free(*out);
		*out = NULL;
		return kc_fail(err, KC_INTERNAL, "generating a %s key pair failed", spec->name);
	}
	return KC_OK;
}

void kc_asym_pair_release(struct kc_asym_pair *pair)
{
	if (!pair)
		return;
	kc_asym_pair_free(pair);
	free(pair);
}

enum kc_status kc_asym_create_key(struct kc_api_req *req, const char *key_id,
		const char *description, int64_t created, const struct kc_key_attrs *attrs,
		const struct kc_asym_pair *pair, struct kc_error *err)
{
	struct kc_key_attrs with_public = *attrs;
	struct private_seal seal;

	with_public.public_key = pair->public_der;
	with_public.public_key_len = pair->public_len;
	seal = (struct private_seal){ req->local, key_id, pair->private_der, pair->private_len };
	return kc_store_create_key_v(req->local->store, key_id, description, created, &with_public,
			seal_private_key, &seal, err);
}

/* ---- GetPublicKey ------------------------------------------------------------------------------ */

/* The fields GetPublicKey and GenerateDataKeyPair share with DescribeKey's view of a spec. */
static void put_algorithms(json_t *resp, const struct kc_store_key *key)
{
	if (strcmp(key->key_usage, "ENCRYPT_DECRYPT") == 0)
		json_object_set_new(resp, "EncryptionAlgorithms",
				kc_asym_encryption_algorithms(key->key_spec, key->key_usage));
	else
		json_object_set_new(resp, "SigningAlgorithms",
				kc_asym_signing_algorithms(key->key_spec, key->key_usage));
}

KC_API_HANDLER(GetPublicKey)
{
	struct kc_store_key key;
	uint8_t *der = NULL;
	size_t der_len = 0;
	enum kc_status rc;

	rc = kc_api_key(req, "KeyId", "kms:GetPublicKey", NULL, &key, err);
	if (rc == KC_OK && kc_api_is_symmetric(&key))
		rc = kc_fail(err, KC_UNSUPPORTED_OPERATION, "%s is a symmetric key: it has no public key",
				req->result->key_arn);
	if (rc == KC_OK)
		rc = kc_api_require_enabled(req, &key, err);
	if (rc == KC_OK)
		rc = kc_store_get_public_key(req->local->store, key.key_id, &der, &der_len, err);
	if (rc == KC_OK)
		rc = kc_api_put_blob(resp, "PublicKey", der, der_len, err);
	if (rc == KC_OK) {
		kc_api_put_str(resp, "KeyId", req->result->key_arn);
		kc_api_put_str(resp, "KeySpec", key.key_spec);
		kc_api_put_str(resp, "CustomerMasterKeySpec", key.key_spec);
		kc_api_put_str(resp, "KeyUsage", key.key_usage);
		put_algorithms(resp, &key);
	}
	free(der);
	return rc;
}

/* ---- Sign and Verify -------------------------------------------------------------------------- */

struct signing {
	struct kc_store_key key;
	const struct kc_sig_alg *alg;
	uint8_t digest[EVP_MAX_MD_SIZE];
};

static enum kc_status check_signing_algorithm(const struct kc_store_key *key,
		const char *algorithm, const struct kc_sig_alg **alg, struct kc_error *err)
{
	const struct kc_asym_spec *spec = kc_asym_spec(key->key_spec);

	*alg = kc_asym_sig_alg(algorithm);
	if (!spec || !*alg || !kc_asym_spec_signs(spec, *alg))
		return incompatible(key, algorithm, err);
	return KC_OK;
}

/* RAW messages are hashed here; a DIGEST must already be exactly the algorithm's length. */
static enum kc_status message_digest(const struct kc_sig_alg *alg, const char *message_type,
		const uint8_t *message, size_t message_len, uint8_t digest[EVP_MAX_MD_SIZE],
		struct kc_error *err)
{
	if (strcmp(message_type, "EXTERNAL_MU") == 0)
		return kc_fail(err, KC_VALIDATION,
				"MessageType EXTERNAL_MU is valid only with ML_DSA_SHAKE_256");
	if (strcmp(message_type, "DIGEST") == 0) {
		if (message_len != alg->digest_len)
			return kc_fail(err, KC_VALIDATION, "Digest is invalid length for algorithm %s.",
					alg->name);
		memcpy(digest, message, message_len);
		return KC_OK;
	}
	if (kc_asym_digest(alg, message, message_len, digest) != 0)
		return kc_fail(err, KC_INTERNAL, "hashing the message for %s failed", alg->name);
	return KC_OK;
}

/* What Sign and Verify share: fields, key, authorization, state, usage, algorithm, digest. */
static enum kc_status prepare_signing(struct kc_api_req *req, const char *action,
		struct signing *sg, struct kc_error *err)
{
	const char *algorithm = NULL, *message_type = "RAW";
	uint8_t *message = NULL;
	size_t message_len = 0;
	enum kc_status rc;

	rc = kc_api_enum(req, "MessageType", KC_API_OPTIONAL, message_types, &message_type, err);
	if (rc == KC_OK)
		rc = kc_api_enum(req, "SigningAlgorithm", KC_API_REQUIRED, signing_algorithms,
				&algorithm, err);
	if (rc == KC_OK)
		rc = kc_api_blob(req, "Message", KC_API_REQUIRED, SIGN_MESSAGE_MAX, 0, &message,
				&message_len, err);
	if (rc == KC_OK)
		rc = kc_api_key(req, "KeyId", action, NULL, &sg->key, err);
	if (rc == KC_OK)
		rc = kc_api_require_enabled(req, &sg->key, err);
	if (rc == KC_OK)
		rc = kc_api_require_usage(req, &sg->key, "SIGN_VERIFY", err);
	if (rc == KC_OK)
		rc = check_signing_algorithm(&sg->key, algorithm, &sg->alg, err);
	if (rc == KC_OK)
		rc = message_digest(sg->alg, message_type, message, message_len, sg->digest, err);
	free(message);
	return rc;
}

KC_API_HANDLER(Sign)
{
	struct signing sg;
	EVP_PKEY *pkey = NULL;
	uint8_t *signature = NULL;
	size_t signature_len = 0;
	enum kc_status rc;

	rc = prepare_signing(req, "kms:Sign", &sg, err);
	if (rc == KC_OK)
		rc = load_private_key(req, &sg.key, &pkey, err);
	if (rc == KC_OK && kc_asym_sign(pkey, sg.alg, sg.digest, &signature, &signature_len) != 0)
		rc = kc_fail(err, KC_INTERNAL, "%s: signing with %s failed", req->result->key_arn,
				sg.alg->name);
	EVP_PKEY_free(pkey);
	if (rc == KC_OK)
		rc = kc_api_put_blob(resp, "Signature", signature, signature_len, err);
	if (rc == KC_OK) {
		kc_api_put_str(resp, "KeyId", req->result->key_arn);
		kc_api_put_str(resp, "SigningAlgorithm", sg.alg->name);
	}
	free(signature);
	return rc;
}

KC_API_HANDLER(Verify)
{
	struct signing sg;
	EVP_PKEY *pkey = NULL;
	uint8_t *signature = NULL;
	size_t signature_len = 0;
	enum kc_status rc;
	int valid = -1;

	rc = kc_api_blob(req, "Signature", KC_API_REQUIRED, SIGNATURE_MAX, 0, &signature,
			&signature_len, err);
	if (rc == KC_OK)
		rc = prepare_signing(req, "kms:Verify", &sg, err);
	if (rc == KC_OK)
		rc = load_public_key(req, &sg.key, &pkey, err);
	if (rc == KC_OK)
		valid = kc_asym_verify(pkey, sg.alg, sg.digest, signature, signature_len);
	EVP_PKEY_free(pkey);
	/* AWS answers a signature that does not verify with an error, never SignatureValid false. */
	if (rc == KC_OK && valid == 0)
		rc = kc_fail(err, KC_KMS_INVALID_SIGNATURE, "The signature does not verify for %s "
				"with %s", req->result->key_arn, sg.alg->name);
	else if (rc == KC_OK && valid < 0)
		rc = kc_fail(err, KC_INTERNAL, "%s: verifying with %s failed", req->result->key_arn,
				sg.alg->name);
	if (rc == KC_OK) {
		kc_api_put_str(resp, "KeyId", req->result->key_arn);
		json_object_set_new(resp, "SignatureValid", json_true());
		kc_api_put_str(resp, "SigningAlgorithm", sg.alg->name);
	}
	free(signature);
	return rc;
}

/* ---- Encrypt and Decrypt with RSA -------------------------------------------------------------- */

/* OpenSSL's digest for an RSAES_OAEP_* EncryptionAlgorithm, NULL for any other. */
static const char *oaep_md(const char *algorithm)
{
	if (algorithm && strcmp(algorithm, "RSAES_OAEP_SHA_1") == 0)
		return "SHA1";
	if (algorithm && strcmp(algorithm, "RSAES_OAEP_SHA_256") == 0)
		return "SHA256";
	return NULL;
}

struct rsa_crypt {
	const struct kc_asym_spec *spec;
	const char *algorithm;             /* EncryptionAlgorithm as given */
	const char *md;
};

/*
 * The checks Encrypt and Decrypt share once api_data.c has found the key,
 * authorized the caller and seen it enabled: usage, algorithm (absent
 * means SYMMETRIC_DEFAULT, which no RSA key takes), and no encryption
 * context, which asymmetric algorithms cannot bind.
 */
static enum kc_status prepare_rsa(struct kc_api_req *req, const struct kc_store_key *key,
		struct rsa_crypt *rsa, struct kc_error *err)
{
	struct kc_context ctx = { 0 };
	enum kc_status rc;

	rsa->algorithm = NULL;
	rc = kc_api_enum(req, "EncryptionAlgorithm", KC_API_OPTIONAL, encryption_algorithms,
			&rsa->algorithm, err);
	if (rc == KC_OK)
		rc = kc_api_context(req, "EncryptionContext", &ctx, err);
	if (rc == KC_OK)
		rc = kc_api_require_usage(req, key, "ENCRYPT_DECRYPT", err);
	if (rc != KC_OK)
		return rc;
	rsa->spec = kc_asym_spec(key->key_spec);
	rsa->md = oaep_md(rsa->algorithm);
	if (!rsa->spec || !rsa->spec->rsa_bits || !rsa->md)
		return incompatible(key, rsa->algorithm ? rsa->algorithm : "SYMMETRIC_DEFAULT", err);
	if (ctx.count > 0)
		return kc_fail(err, KC_VALIDATION, "EncryptionContext is not supported with asymmetric "
				"KMS keys: %s is %s", req->result->key_arn, key->key_spec);
	return KC_OK;
}

enum kc_status kc_asym_encrypt(struct kc_api_req *req, const struct kc_store_key *key,
		json_t *resp, struct kc_error *err)
{
	struct rsa_crypt rsa;
	EVP_PKEY *pkey = NULL;
	uint8_t *plaintext = NULL, *ciphertext = NULL;
	size_t plaintext_len = 0, ciphertext_len = 0, limit;
	enum kc_status rc;

	rc = prepare_rsa(req, key, &rsa, err);
	if (rc == KC_OK)
		rc = kc_api_blob(req, "Plaintext", KC_API_REQUIRED, KC_ENCRYPT_MAX, 1, &plaintext,
				&plaintext_len, err);
	if (rc != KC_OK)
		goto out;
	limit = kc_asym_oaep_max(rsa.spec->rsa_bits, rsa.md);
	if (plaintext_len > limit) {
		rc = kc_fail(err, KC_VALIDATION, "Plaintext of %zu bytes is too long: %s with %s "
				"encrypts at most %zu bytes", plaintext_len, key->key_spec, rsa.algorithm, limit);
		goto out;
	}
	rc = load_public_key(req, key, &pkey, err);
	if (rc == KC_OK && kc_asym_oaep_encrypt(pkey, rsa.md, plaintext, plaintext_len, &ciphertext,
			&ciphertext_len) != 0)
		rc = kc_fail(err, KC_INTERNAL, "%s: %s encryption failed", req->result->key_arn,
				rsa.algorithm);
	if (rc == KC_OK)
		rc = kc_api_put_blob(resp, "CiphertextBlob", ciphertext, ciphertext_len, err);
	if (rc == KC_OK) {
		kc_api_put_str(resp, "KeyId", req->result->key_arn);
		kc_api_put_str(resp, "EncryptionAlgorithm", rsa.algorithm);
	}
out:
	EVP_PKEY_free(pkey);
	kc_api_blob_free(plaintext, 1);
	free(ciphertext);
	return rc;
}

enum kc_status kc_asym_decrypt(struct kc_api_req *req, const struct kc_store_key *key,
		json_t *resp, struct kc_error *err)
{
	struct rsa_crypt rsa;
	EVP_PKEY *pkey = NULL;
	uint8_t *ciphertext = NULL, *plaintext = NULL;
	size_t ciphertext_len = 0, plaintext_len = 0, modulus_len = 0;
	enum kc_status rc;

	rc = prepare_rsa(req, key, &rsa, err);
	if (rc == KC_OK)
		rc = kc_api_blob(req, "CiphertextBlob", KC_API_REQUIRED, CIPHERTEXT_MAX, 0, &ciphertext,
				&ciphertext_len, err);
	if (rc == KC_OK)
		rc = load_private_key(req, key, &pkey, err);
	if (rc != KC_OK)
		goto out;
	modulus_len = kc_asym_rsa_bytes(pkey);
	plaintext = kmsfs_secure_alloc(modulus_len ? modulus_len : 1);
	if (!plaintext) {
		rc = kc_fail(err, KC_INTERNAL, "out of secure memory");
		goto out;
	}
	/* Wrong length, wrong key, wrong algorithm or damage: AWS says only that much. */
	if (ciphertext_len != modulus_len || kc_asym_oaep_decrypt(pkey, rsa.md, ciphertext,
			ciphertext_len, plaintext, modulus_len, &plaintext_len) != 0) {
		rc = kc_fail(err, KC_INVALID_CIPHERTEXT, "The ciphertext is invalid, or was not "
				"encrypted under %s with %s", req->result->key_arn, rsa.algorithm);
		goto out;
	}
	rc = kc_api_put_blob(resp, "Plaintext", plaintext, plaintext_len, err);
	if (rc == KC_OK) {
		kc_api_put_str(resp, "KeyId", req->result->key_arn);
		kc_api_put_str(resp, "EncryptionAlgorithm", rsa.algorithm);
	}
out:
	EVP_PKEY_free(pkey);
	kmsfs_secure_free(plaintext);
	free(ciphertext);
	return rc;
}

/* ---- GenerateDataKeyPair ---------------------------------------------------------------------- */

/* The key a data key pair is sealed under: symmetric, for encryption. */
static enum kc_status check_pair_key(struct kc_api_req *req, const struct kc_store_key *key,
		struct kc_error *err)
{
	enum kc_status rc = kc_api_require_enabled(req, key, err);

	if (rc == KC_OK && !kc_api_is_symmetric(key))
		rc = kc_fail(err, KC_INVALID_KEY_USAGE, "%s is an asymmetric key (%s): data key pairs "
				"need a symmetric encryption key", req->result->key_arn, key->key_spec);
	if (rc == KC_OK)
		rc = kc_api_require_usage(req, key, "ENCRYPT_DECRYPT", err);
	return rc;
}

/* Fills the response from a fresh pair: the private half sealed (and plain when asked). */
static enum kc_status put_pair(struct kc_api_req *req, const struct kc_store_key *key,
		const struct kc_context *ctx, const struct kc_asym_pair *pair, int with_plaintext,
		json_t *resp, struct kc_error *err)
{
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	enum kc_status rc;

	rc = kc_local_seal_for_key(req->local, key, ctx, pair->private_der, pair->private_len,
			&blob, &blob_len, err);
	if (rc == KC_OK)
		rc = kc_api_put_blob(resp, "PrivateKeyCiphertextBlob", blob, blob_len, err);
	if (rc == KC_OK && with_plaintext)
		rc = kc_api_put_blob(resp, "PrivateKeyPlaintext", pair->private_der, pair->private_len,
				err);
	if (rc == KC_OK)
		rc = kc_api_put_blob(resp, "PublicKey", pair->public_der, pair->public_len, err);
	free(blob);
	return rc;
}

static enum kc_status generate_data_key_pair(struct kc_api_req *req, json_t *resp,
		int with_plaintext, struct kc_error *err)
{
	const char *action = with_plaintext ? "kms:GenerateDataKeyPair" :
		"kms:GenerateDataKeyPairWithoutPlaintext";
	const struct kc_asym_spec *spec = NULL;
	const char *pair_spec = NULL;
	struct kc_asym_pair pair = { 0 };
	struct kc_store_key key;
	struct kc_context ctx;
	enum kc_status rc;

	rc = kc_api_context(req, "EncryptionContext", &ctx, err);
	if (rc == KC_OK)
		rc = kc_api_enum(req, "KeyPairSpec", KC_API_REQUIRED, key_pair_specs, &pair_spec, err);
	if (rc == KC_OK)
		rc = kc_api_key(req, "KeyId", action, &ctx, &key, err);
	if (rc == KC_OK)
		rc = check_pair_key(req, &key, err);
	if (rc == KC_OK && !(spec = kc_asym_spec(pair_spec)))
		rc = kc_fail(err, KC_UNSUPPORTED_OPERATION,
				"KeyPairSpec %s is not supported by this key service", pair_spec);
	if (rc == KC_OK && kc_asym_generate(spec, &pair) != 0)
		rc = kc_fail(err, KC_INTERNAL, "generating a %s key pair failed", pair_spec);
	if (rc == KC_OK)
		rc = put_pair(req, &key, &ctx, &pair, with_plaintext, resp, err);
	if (rc == KC_OK) {
		kc_api_put_str(resp, "KeyId", req->result->key_arn);
		kc_api_put_str(resp, "KeyPairSpec", pair_spec);
	}
	kc_asym_pair_free(&pair);
	return rc;
}

KC_API_HANDLER(GenerateDataKeyPair)
{
	return generate_data_key_pair(req, resp, 1, err);
}

KC_API_HANDLER(GenerateDataKeyPairWithoutPlaintext)
{
	return generate_data_key_pair(req, resp, 0, err);
}
