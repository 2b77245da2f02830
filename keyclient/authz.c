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
#include "policy.h"

#include <ctype.h>
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

/* IAM wildcards: '*' any run, '?' one character, case-insensitive. */
static int pattern_match(const char *pattern, const char *text)
{
	if (*pattern == '\0')
		return *text == '\0';
	if (*pattern == '*')
		return pattern_match(pattern + 1, text) || (*text && pattern_match(pattern, text + 1));
	if (*text && (*pattern == '?' || tolower((unsigned char)*pattern) == tolower((unsigned char)*text)))
		return pattern_match(pattern + 1, text + 1);
	return 0;
}

static int identity_allows(const struct kc_caller *caller, const char *action)
{
	for (const char *const *p = caller->identity_allow; p && *p; p++)
		if (pattern_match(*p, action))
			return 1;
	return 0;
}

enum kc_status kc_authorize_request(struct kc_local *local, const struct kc_store_key *key,
		const char *action, const struct kc_context *ctx, const struct kc_caller *caller,
		struct kc_error *err)
{
	const char *principal = caller ? caller->principal : NULL;

	(void)ctx;
	if (!local->account_mode)
		return kc_authorize(local, key ? key->key_id : NULL, action, caller, err);
	if (!principal || !*principal)
		return deny(local, "(unsigned request)", key ? key->key_id : NULL, action, err);
	/* Until key policies are evaluated: the default policy, so the identity policy decides. */
	if (identity_allows(caller, action))
		return KC_OK;
	return deny(local, principal, key ? key->key_id : NULL, action, err);
}

enum kc_status kc_policy_check(const char *text, struct kc_error *err)
{
	struct kc_policy *policy = NULL;
	enum kc_status rc = kc_policy_parse(text, &policy, err);

	kc_policy_free(policy);
	return rc;
}
