/*
 * authz.c - who may do what with a key: the local engine's one
 * authorization decision.
 *
 * Every engine operation calls kc_authorize() before it touches key
 * material, so a real key-policy evaluator (Effect/Principal/Action/
 * Resource/Condition, grants) can later replace this function alone.
 * The rule for now:
 *   - the key store owner's principal ("uid:N" of the uid that created
 *     the store) may do everything;
 *   - a principal listed on the key (key_principals) may use it for data
 *     keys (kms:Decrypt, kms:GenerateDataKey*, kms:Encrypt,
 *     kms:ReEncrypt*) and kms:DescribeKey;
 *   - anyone else, and a request with no principal, is denied.
 * Denials carry AWS's message shape.
 */
#include "local_internal.h"

#include <string.h>

static int starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Actions a principal listed on a key may perform. */
static int listed_principal_action(const char *action)
{
	return strcmp(action, "kms:Decrypt") == 0 ||
		strcmp(action, "kms:Encrypt") == 0 ||
		strcmp(action, "kms:DescribeKey") == 0 ||
		starts_with(action, "kms:GenerateDataKey") ||
		starts_with(action, "kms:ReEncrypt");
}

static enum kc_status deny(struct kc_local *local, const char *principal, const char *key_id,
		const char *action, struct kc_error *err)
{
	char resource[KC_ARN_MAX] = "*";

	if (key_id)
		kc_local_key_arn(local, key_id, resource);
	return kc_fail(err, KC_ACCESS_DENIED,
			"User: %.127s is not authorized to perform: %s on resource: %s "
			"because no %s-based policy allows the %s action",
			principal, action, resource, key_id ? "resource" : "identity", action);
}

enum kc_status kc_authorize(struct kc_local *local, const char *key_id, const char *action,
		const struct kc_caller *caller, struct kc_error *err)
{
	const char *principal = caller ? caller->principal : NULL;
	int listed = 0;
	enum kc_status rc;

	if (!principal || !*principal)
		return deny(local, "(unsigned request)", key_id, action, err);
	if (strcmp(principal, local->owner_principal) == 0)
		return KC_OK;
	if (!key_id || !listed_principal_action(action))
		return deny(local, principal, key_id, action, err);
	rc = kc_store_has_principal(local->store, key_id, principal, &listed, err);
	if (rc != KC_OK)
		return rc;
	return listed ? KC_OK : deny(local, principal, key_id, action, err);
}
