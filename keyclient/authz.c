/*
 * authz.c - who may do what with a key: the local engine's one
 * authorization decision, under two regimes.
 *
 * The embedded engine (kmsfs's own key store, opened without an account)
 * keeps a simple rule, kc_authorize():
 *   - the key store owner's principal ("uid:N" of the uid that created
 *     the store) may do everything;
 *   - a principal listed on the key (key_principals) may use it for data
 *     keys (kms:Decrypt, kms:GenerateDataKey*, kms:Encrypt,
 *     kms:ReEncrypt*) and kms:DescribeKey;
 *   - anyone else, and a request with no principal, is denied.
 *
 * An engine opened with an account (kmsd) decides as AWS KMS does
 * (kc_authorize_request):
 *   - a request with no principal is denied;
 *   - an account-level action (kms:CreateKey, kms:ListKeys, ...) needs
 *     the caller to be of this account and its identity policy to allow it;
 *   - an action on a key asks the key policy (its own, or the default one)
 *     first: a Deny refuses whatever else allows; an Allow naming the
 *     caller allows; an Allow naming only the caller's account (the
 *     default policy) leaves it to the caller's identity policy;
 *   - failing that, a grant on the key to the caller whose operations
 *     include the action, its constraints met by the encryption context,
 *     allows. Grants never reach beyond their operations.
 * The key policy comes compiled from policy_cache.c and grants in one
 * indexed query, so this costs about a microsecond for most requests.
 *
 * Denials carry AWS's messages: "... because no resource-based policy
 * allows the kms:Decrypt action", "... with an explicit deny in a
 * resource-based policy", and "identity-based" where only the identity
 * policy could have allowed it.
 */
#include "local_internal.h"
#include "policy.h"
#include "store_grants.h"

#include <string.h>

/* ---- denials -------------------------------------------------------------------------- */

enum denial_reason {
	NO_RESOURCE_POLICY,   /* nothing on the key allows it */
	NO_IDENTITY_POLICY,   /* only the caller's identity policy could have */
	EXPLICIT_DENY,        /* a Deny statement of the key policy */
};

static enum kc_status deny(struct kc_local *local, const char *principal, const char *key_id,
		const char *action, enum denial_reason why, struct kc_error *err)
{
	char resource[KC_ARN_MAX] = "*";

	if (key_id)
		kc_local_key_arn(local, key_id, resource);
	if (why == EXPLICIT_DENY)
		return kc_fail(err, KC_ACCESS_DENIED,
				"User: %.127s is not authorized to perform: %s on resource: %s "
				"with an explicit deny in a resource-based policy",
				principal, action, resource);
	return kc_fail(err, KC_ACCESS_DENIED,
			"User: %.127s is not authorized to perform: %s on resource: %s "
			"because no %s-based policy allows the %s action",
			principal, action, resource, why == NO_IDENTITY_POLICY ? "identity" : "resource",
			action);
}

static int unsigned_request(const struct kc_caller *caller)
{
	return !caller || !caller->principal || !*caller->principal;
}

/* ---- the embedded engine ---------------------------------------------------------------- */

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

enum kc_status kc_authorize(struct kc_local *local, const char *key_id, const char *action,
		const struct kc_caller *caller, struct kc_error *err)
{
	enum denial_reason why = key_id ? NO_RESOURCE_POLICY : NO_IDENTITY_POLICY;
	int listed = 0;
	enum kc_status rc;

	if (unsigned_request(caller))
		return deny(local, "(unsigned request)", key_id, action, why, err);
	if (strcmp(caller->principal, local->owner_principal) == 0)
		return KC_OK;
	if (!key_id || !listed_principal_action(action))
		return deny(local, caller->principal, key_id, action, why, err);
	rc = kc_store_has_principal(local->store, key_id, caller->principal, &listed, err);
	if (rc != KC_OK)
		return rc;
	return listed ? KC_OK : deny(local, caller->principal, key_id, action, why, err);
}

/* ---- identities ---------------------------------------------------------------------------- */

static int identity_allows(const struct kc_caller *caller, const char *action)
{
	for (const char *const *p = caller->identity_allow; p && *p; p++)
		if (kc_action_match(*p, action))
			return 1;
	return 0;
}

/* Is principal an ARN of account (12 digits)? */
static int in_account(const char *principal, const char *account)
{
	struct kc_arn_parts arn;

	return kc_arn_split(principal, &arn) == 0 && arn.account_len == strlen(account) &&
		memcmp(arn.account, account, arn.account_len) == 0;
}

/* Is root_arn arn:aws:iam::<A>:root, and principal of account A? */
static int account_root_of(const char *root_arn, const char *principal)
{
	char account[KC_ACCOUNT_LEN + 1];
	struct kc_arn_parts root;

	if (!root_arn || kc_arn_split(root_arn, &root) != 0 || strcmp(root.resource, "root") != 0 ||
			!kc_account_id_valid(root.account, root.account_len))
		return 0;
	memcpy(account, root.account, KC_ACCOUNT_LEN);
	account[KC_ACCOUNT_LEN] = '\0';
	return in_account(principal, account);
}

/* ---- key policy ------------------------------------------------------------------------------ */

/* What the key policy and identity policy say, before any grant is asked. */
enum verdict { ALLOWED, DENIED_EXPLICITLY, NOT_ALLOWED };

static enum verdict policy_verdict(const struct kc_policy *policy,
		const struct kc_policy_request *req, const struct kc_caller *caller)
{
	switch (kc_policy_eval(policy, req)) {
	case KC_POLICY_DENY:
		return DENIED_EXPLICITLY;
	case KC_POLICY_ALLOW:
		return ALLOWED;
	case KC_POLICY_ALLOW_ACCOUNT:
		return identity_allows(caller, req->action) ? ALLOWED : NOT_ALLOWED;
	case KC_POLICY_NONE:
		break;
	}
	return NOT_ALLOWED;
}

/* The request as key policy conditions see it; arn receives the key's ARN (the resource). */
static void policy_request(struct kc_local *local, const struct kc_store_key *key,
		const char *action, const struct kc_context *ctx, const struct kc_caller *caller,
		char arn[KC_ARN_MAX], struct kc_policy_request *out)
{
	kc_local_key_arn(local, key->key_id, arn);
	*out = (struct kc_policy_request){
		.principal = caller->principal,
		.caller_account = in_account(caller->principal, local->account) ? local->account : NULL,
		.action = action,
		.resource = arn,
		.ctx = ctx,
	};
}

/* ---- grants ------------------------------------------------------------------------------------ */

/* The operations of a stored grant (a JSON array of names) as a mask. 0, or -1 if damaged. */
static int grant_operations_mask(const char *operations, uint32_t *mask)
{
	json_t *names = json_loads(operations, 0, NULL);
	enum kc_status rc = names ? kc_grant_operations_parse(names, mask, NULL) : KC_VALIDATION;

	json_decref(names);
	return rc == KC_OK ? 0 : -1;
}

struct grant_check {
	const char *action;
	const struct kc_context *ctx;
	uint32_t create_mask;   /* CreateGrant: the operations asked for (0 otherwise) */
	int allowed;
};

/* One of the caller's grants on the key: does it allow the action? Stops at the first that does. */
static int grant_allows(const struct kc_grant *grant, void *arg)
{
	struct grant_check *check = arg;
	struct kc_grant_constraints *constraints = NULL;
	json_t *json = NULL;
	uint32_t mask = 0;

	/* a damaged row allows nothing; neither does a grant asked to give more than it has */
	if (grant_operations_mask(grant->operations, &mask) != 0 ||
			!kc_grant_operations_cover(mask, check->action) ||
			(check->create_mask & ~mask) != 0)
		return 0;
	if (grant->constraints) {
		json = json_loads(grant->constraints, 0, NULL);
		if (!json || kc_grant_constraints_parse(json, &constraints, NULL) != KC_OK)
			goto out;
	}
	check->allowed = kc_grant_permits(mask, constraints, check->action, check->ctx);
out:
	kc_grant_constraints_free(constraints);
	json_decref(json);
	return check->allowed;
}

/* ---- the account-mode decision ---------------------------------------------------------------- */

/* CreateGrant's extra input: the operations the new grant would have. */
struct grant_request {
	const char *const *operations;
	size_t count;
	uint32_t mask;
};

static enum kc_status authorize_key_action(struct kc_local *local, const struct kc_store_key *key,
		const char *action, const struct kc_context *ctx, const struct grant_request *grant_req,
		const struct kc_caller *caller, struct kc_error *err)
{
	struct grant_check check = { action, ctx, grant_req ? grant_req->mask : 0, 0 };
	struct kc_policy_entry *entry = NULL;
	struct kc_policy_request req;
	char arn[KC_ARN_MAX];
	enum verdict verdict;
	enum kc_status rc;

	rc = kc_policy_cache_get(local, key, &entry, err);
	if (rc != KC_OK)
		return rc;
	policy_request(local, key, action, ctx, caller, arn, &req);
	if (grant_req) {
		req.grant_operations = grant_req->operations;
		req.grant_operation_count = grant_req->count;
	}
	verdict = policy_verdict(kc_policy_entry_policy(entry), &req, caller);
	kc_policy_entry_release(entry);
	if (verdict == ALLOWED)
		return KC_OK;
	if (verdict == DENIED_EXPLICITLY)
		return deny(local, caller->principal, key->key_id, action, EXPLICIT_DENY, err);
	rc = kc_store_each_grant(local->store, key->key_id, caller->principal, grant_allows, &check,
			err);
	if (rc != KC_OK)
		return rc;
	return check.allowed ? KC_OK :
		deny(local, caller->principal, key->key_id, action, NO_RESOURCE_POLICY, err);
}

static enum kc_status authorize_account_mode(struct kc_local *local,
		const struct kc_store_key *key, const char *action, const struct kc_context *ctx,
		const struct grant_request *grant_req, const struct kc_caller *caller,
		struct kc_error *err)
{
	const char *key_id = key ? key->key_id : NULL;

	if (unsigned_request(caller))
		return deny(local, "(unsigned request)", key_id, action,
				key ? NO_RESOURCE_POLICY : NO_IDENTITY_POLICY, err);
	if (key)
		return authorize_key_action(local, key, action, ctx, grant_req, caller, err);
	/* no key policy to ask: the caller's own account and identity policy decide */
	if (in_account(caller->principal, local->account) && identity_allows(caller, action))
		return KC_OK;
	return deny(local, caller->principal, NULL, action, NO_IDENTITY_POLICY, err);
}

enum kc_status kc_authorize_request(struct kc_local *local, const struct kc_store_key *key,
		const char *action, const struct kc_context *ctx, const struct kc_caller *caller,
		struct kc_error *err)
{
	if (!local->account_mode)
		return kc_authorize(local, key ? key->key_id : NULL, action, caller, err);
	return authorize_account_mode(local, key, action, ctx, NULL, caller, err);
}

enum kc_status kc_authorize_create_grant(struct kc_local *local, const struct kc_store_key *key,
		const char *const *operations, size_t operation_count, uint32_t operations_mask,
		const struct kc_caller *caller, struct kc_error *err)
{
	struct grant_request grant_req = { operations, operation_count, operations_mask };

	if (!local->account_mode)
		return kc_authorize(local, key->key_id, "kms:CreateGrant", caller, err);
	return authorize_account_mode(local, key, "kms:CreateGrant", NULL, &grant_req, caller, err);
}

enum kc_status kc_authorize_retire(struct kc_local *local, const struct kc_store_key *key,
		const struct kc_grant *grant, const struct kc_caller *caller, struct kc_error *err)
{
	const char *principal = caller ? caller->principal : NULL;
	uint32_t mask = 0;

	if (!local->account_mode)
		return kc_authorize(local, key->key_id, "kms:RetireGrant", caller, err);
	if (unsigned_request(caller))
		return deny(local, "(unsigned request)", key->key_id, "kms:RetireGrant",
				NO_IDENTITY_POLICY, err);
	if (grant->retiring && strcmp(grant->retiring, principal) == 0)
		return KC_OK;
	if (strcmp(grant->grantee, principal) == 0 &&
			grant_operations_mask(grant->operations, &mask) == 0 &&
			kc_grant_operations_cover(mask, "kms:RetireGrant"))
		return KC_OK;
	if (strcmp(grant->issuing, principal) == 0)
		return KC_OK;
	/* kms:RetireGrant is delegated by IAM in the key's account or the retiring account */
	if (identity_allows(caller, "kms:RetireGrant") &&
			(in_account(principal, local->account) || account_root_of(grant->retiring, principal)))
		return KC_OK;
	return deny(local, principal, key->key_id, "kms:RetireGrant", NO_IDENTITY_POLICY, err);
}

enum kc_status kc_authorize_with_policy(struct kc_local *local, const struct kc_policy *policy,
		const struct kc_store_key *key, const char *action, const struct kc_caller *caller,
		struct kc_error *err)
{
	struct kc_policy_request req;
	char arn[KC_ARN_MAX];

	if (!local->account_mode)
		return KC_OK;
	if (unsigned_request(caller))
		return deny(local, "(unsigned request)", key->key_id, action, NO_RESOURCE_POLICY, err);
	policy_request(local, key, action, NULL, caller, arn, &req);
	switch (policy_verdict(policy, &req, caller)) {
	case ALLOWED:
		return KC_OK;
	case DENIED_EXPLICITLY:
		return deny(local, caller->principal, key->key_id, action, EXPLICIT_DENY, err);
	case NOT_ALLOWED:
		break;
	}
	return deny(local, caller->principal, key->key_id, action, NO_RESOURCE_POLICY, err);
}

enum kc_status kc_policy_check(const char *text, struct kc_error *err)
{
	struct kc_policy *policy = NULL;
	enum kc_status rc = kc_policy_parse(text, &policy, err);

	kc_policy_free(policy);
	return rc;
}
