/*
 * api_asym.c - asymmetric keys (RSA, ECC NIST) through the KMS API.
 * Placeholder while the implementation is written: every entry point
 * answers UnsupportedOperationException.
 */
#include "api_internal.h"

#include <string.h>

static enum kc_status unsupported(struct kc_api_req *req, struct kc_error *err)
{
	return kc_fail(err, KC_UNSUPPORTED_OPERATION, "%s: asymmetric keys are not supported yet",
			req->operation);
}

int kc_asym_spec_supported(const char *key_spec)
{
	(void)key_spec;
	return 0;
}

enum kc_status kc_asym_create_key(struct kc_api_req *req, const char *key_id,
		const char *description, int64_t created, const struct kc_key_attrs *attrs,
		struct kc_error *err)
{
	(void)key_id; (void)description; (void)created; (void)attrs;
	return unsupported(req, err);
}

enum kc_status kc_asym_encrypt(struct kc_api_req *req, const struct kc_store_key *key,
		json_t *resp, struct kc_error *err)
{
	(void)key; (void)resp;
	return unsupported(req, err);
}

enum kc_status kc_asym_decrypt(struct kc_api_req *req, const struct kc_store_key *key,
		json_t *resp, struct kc_error *err)
{
	(void)key; (void)resp;
	return unsupported(req, err);
}

json_t *kc_asym_encryption_algorithms(const char *key_spec, const char *key_usage)
{
	(void)key_spec; (void)key_usage;
	return json_array();
}

json_t *kc_asym_signing_algorithms(const char *key_spec, const char *key_usage)
{
	(void)key_spec; (void)key_usage;
	return json_array();
}

#define UNSUPPORTED(name) KC_API_HANDLER(name) { (void)resp; return unsupported(req, err); }
UNSUPPORTED(GetPublicKey)
UNSUPPORTED(Sign)
UNSUPPORTED(Verify)
UNSUPPORTED(GenerateDataKeyPair)
UNSUPPORTED(GenerateDataKeyPairWithoutPlaintext)
