/*
 * api_policy.c - key policies and grants through the KMS API.
 * Placeholder while the implementation is written.
 */
#include "api_internal.h"

static enum kc_status unsupported(struct kc_api_req *req, struct kc_error *err)
{
	return kc_fail(err, KC_UNSUPPORTED_OPERATION, "%s: not supported yet", req->operation);
}

#define UNSUPPORTED(name) KC_API_HANDLER(name) { (void)resp; return unsupported(req, err); }
UNSUPPORTED(GetKeyPolicy)
UNSUPPORTED(PutKeyPolicy)
UNSUPPORTED(ListKeyPolicies)
UNSUPPORTED(CreateGrant)
UNSUPPORTED(ListGrants)
UNSUPPORTED(ListRetirableGrants)
UNSUPPORTED(RetireGrant)
UNSUPPORTED(RevokeGrant)
