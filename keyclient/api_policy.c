/*
 * api_policy.c - key policies and grants through the KMS API:
 * GetKeyPolicy, PutKeyPolicy, ListKeyPolicies, CreateGrant, ListGrants,
 * ListRetirableGrants, RetireGrant, RevokeGrant.
 *
 * A key has exactly one policy, named "default" as in AWS. A key made
 * without one has AWS's default key policy, which GetKeyPolicy shows as
 * text. PutKeyPolicy refuses a policy that would stop the caller from
 * ever changing it again, unless BypassPolicyLockoutSafetyCheck says so.
 *
 * Grants take effect at once here (no eventual consistency), so the
 * GrantTokens of a request are validated and otherwise not needed. A
 * grant id is 64 hex digits of randomness; a grant token is base64 of a
 * version byte, the grant id's 32 bytes and 32 more random bytes, so
 * RetireGrant finds a grant from its token with one primary-key read.
 * Grants are stored with their operations and constraints as canonical
 * JSON (AWS's operation order, sorted keys), which is also how CreateGrant
 * recognises a repeated request (same Name and everything else).
 */
#include "api_internal.h"
#include "store_grants.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#define POLICY_NAME "default"
#define POLICY_LIST_DEFAULT 100
#define POLICY_LIST_MAX 1000
#define GRANT_LIST_DEFAULT 50       /* ListGrants, ListRetirableGrants */
#define GRANT_LIST_MAX 100
#define GRANT_OPERATIONS_MAX 64     /* 17 exist; repeats are allowed but not without end */
#define GRANT_TOKENS_MAX 10
#define GRANT_TOKEN_VERSION 1
#define GRANT_ID_BYTES 32
#define GRANT_TOKEN_BYTES (1 + GRANT_ID_BYTES + 32)
#define GRANT_TOKEN_TEXT_MAX 128
#define GRANT_OPERATIONS_TEXT_MAX 512

static const char lockout_message[] =
	"The new key policy will not allow you to update the key policy in the future.";

/* ---- shared readers ----------------------------------------------------------------------- */

/* The key key_ref names, found but not yet authorized (CreateGrant, RetireGrant decide later). */
static enum kc_status find_key(struct kc_api_req *req, const char *key_ref,
		struct kc_store_key *key, struct kc_error *err)
{
	enum kc_status rc;

	rc = kc_local_find_key(req->local, key_ref, key, err);
	if (rc == KC_NOT_FOUND)
		return kc_fail(err, KC_NOT_FOUND, "Key '%.200s' does not exist", key_ref);
	if (rc == KC_OK)
		kc_api_key_arn(req, key->key_id, req->result->key_arn);
	return rc;
}

/* ---- key policies ---------------------------------------------------------------------------- */

/* PolicyName: optional (AWS's default is "default"), at most 128 characters. */
static enum kc_status read_policy_name(struct kc_api_req *req, const char **name,
		struct kc_error *err)
{
	*name = POLICY_NAME;
	return kc_api_str(req, "PolicyName", KC_API_OPTIONAL, 1, 128, name, err);
}

/* Checked after authorization: a key's only policy is "default". */
static enum kc_status check_policy_name(const char *name, struct kc_error *err)
{
	if (strcmp(name, POLICY_NAME) == 0)
		return KC_OK;
	return kc_fail(err, KC_NOT_FOUND, "Key policy %.128s does not exist: a key's only policy "
			"is named " POLICY_NAME, name);
}

KC_API_HANDLER(GetKeyPolicy)
{
	char default_text[KC_POLICY_DEFAULT_MAX];
	const char *name = NULL, *text;
	struct kc_store_key key;
	char *stored = NULL;
	enum kc_status rc;

	rc = read_policy_name(req, &name, err);
	if (rc == KC_OK)
		rc = kc_api_key(req, "KeyId", "kms:GetKeyPolicy", NULL, &key, err);
	if (rc == KC_OK)
		rc = check_policy_name(name, err);
	if (rc == KC_OK)
		rc = kc_store_get_policy(req->local->store, key.key_id, &stored, err);
	if (rc != KC_OK)
		return rc;
	text = stored ? stored : kc_policy_default(req->local->account, default_text,
			sizeof default_text);
	if (!text)
		rc = kc_fail(err, KC_INTERNAL, "no default key policy for account %s", req->local->account);
	else
		kc_api_put_str(resp, "Policy", text);
	kc_api_put_str(resp, "PolicyName", POLICY_NAME);
	free(stored);
	return rc;
}

enum kc_status kc_api_policy_lockout_check(struct kc_api_req *req, const char *policy_text,
		const struct kc_store_key *key, struct kc_error *err)
{
	struct kc_policy *policy = NULL;
	struct kc_error denied = { 0 };
	enum kc_status rc;

	rc = kc_policy_parse(policy_text, &policy, err);
	if (rc == KC_OK && kc_authorize_with_policy(req->local, policy, key, "kms:PutKeyPolicy",
			req->caller, &denied) != KC_OK)
		rc = kc_fail(err, KC_MALFORMED_POLICY, "%s", lockout_message);
	kc_policy_free(policy);
	return rc;
}

/* The lockout safety check: may the caller still call PutKeyPolicy under the new policy? */
static enum kc_status check_lockout(struct kc_api_req *req, const struct kc_policy *policy,
		const struct kc_store_key *key, struct kc_error *err)
{
	struct kc_error denied = { 0 };

	if (kc_authorize_with_policy(req->local, policy, key, "kms:PutKeyPolicy", req->caller,
			&denied) == KC_OK)
		return KC_OK;
	return kc_fail(err, KC_MALFORMED_POLICY, "%s", lockout_message);
}

KC_API_HANDLER(PutKeyPolicy)
{
	const char *name = NULL, *text = NULL;
	struct kc_policy *policy = NULL;
	struct kc_store_key key;
	enum kc_status rc;
	int bypass = 0;

	(void)resp;
	rc = read_policy_name(req, &name, err);
	if (rc == KC_OK)
		rc = kc_api_str(req, "Policy", KC_API_REQUIRED, 1, KC_POLICY_MAX_BYTES, &text, err);
	if (rc == KC_OK)
		rc = kc_api_bool(req, "BypassPolicyLockoutSafetyCheck", &bypass, NULL, err);
	if (rc == KC_OK)
		rc = kc_api_key(req, "KeyId", "kms:PutKeyPolicy", NULL, &key, err);
	if (rc == KC_OK)
		rc = check_policy_name(name, err);
	if (rc == KC_OK)
		rc = kc_policy_parse(text, &policy, err);
	if (rc == KC_OK && !bypass)
		rc = check_lockout(req, policy, &key, err);
	if (rc == KC_OK)
		rc = kc_store_set_policy(req->local->store, key.key_id, text, err);
	kc_policy_free(policy);
	return rc;
}

KC_API_HANDLER(ListKeyPolicies)
{
	size_t offset = 0, limit = 0;
	struct kc_store_key key;
	json_t *names;
	enum kc_status rc;

	rc = kc_api_list_window(req, POLICY_LIST_DEFAULT, POLICY_LIST_MAX, &offset, &limit, err);
	if (rc == KC_OK)
		rc = kc_api_key(req, "KeyId", "kms:ListKeyPolicies", NULL, &key, err);
	if (rc != KC_OK)
		return rc;
	names = json_array();
	if (offset == 0)
		json_array_append_new(names, json_string(POLICY_NAME));
	json_object_set_new(resp, "PolicyNames", names);
	kc_api_put_page_end(resp, offset + json_array_size(names), 1);
	return KC_OK;
}

/* ---- grant ids and tokens ---------------------------------------------------------------------- */

/* A GrantId field's value: 64 hex digits (either case), lower-cased into out. */
static enum kc_status parse_grant_id(const char *text, char out[KC_GRANT_ID_LEN + 1],
		struct kc_error *err)
{
	size_t i;

	for (i = 0; i < KC_GRANT_ID_LEN && isxdigit((unsigned char)text[i]); i++)
		out[i] = (char)tolower((unsigned char)text[i]);
	out[i] = '\0';
	if (i != KC_GRANT_ID_LEN || text[i] != '\0')
		return kc_fail(err, KC_INVALID_GRANT_ID, "Grant ID %.80s is not valid: a grant ID is "
				"%d hexadecimal digits", text, KC_GRANT_ID_LEN);
	return KC_OK;
}

static void new_grant_id_and_token(char grant_id[KC_GRANT_ID_LEN + 1],
		char token[GRANT_TOKEN_TEXT_MAX])
{
	uint8_t raw[GRANT_TOKEN_BYTES];

	raw[0] = GRANT_TOKEN_VERSION;
	randombytes_buf(raw + 1, sizeof raw - 1);
	sodium_bin2hex(grant_id, KC_GRANT_ID_LEN + 1, raw + 1, GRANT_ID_BYTES);
	sodium_bin2base64(token, GRANT_TOKEN_TEXT_MAX, raw, sizeof raw,
			sodium_base64_VARIANT_ORIGINAL);
}

/* The grant id a token names; InvalidGrantTokenException for anything not made here. */
static enum kc_status grant_id_of_token(const char *token, char grant_id[KC_GRANT_ID_LEN + 1],
		struct kc_error *err)
{
	uint8_t raw[GRANT_TOKEN_BYTES];
	size_t len = 0;

	if (sodium_base642bin(raw, sizeof raw, token, strlen(token), NULL, &len, NULL,
			sodium_base64_VARIANT_ORIGINAL) != 0 || len != sizeof raw ||
			raw[0] != GRANT_TOKEN_VERSION)
		return kc_fail(err, KC_INVALID_GRANT_TOKEN, "The grant token is not valid");
	sodium_bin2hex(grant_id, KC_GRANT_ID_LEN + 1, raw + 1, GRANT_ID_BYTES);
	return KC_OK;
}

/* ---- grants as JSON ------------------------------------------------------------------------------ */

/* One grant as ListGrants shows it (GrantListEntry). */
static json_t *grant_entry(struct kc_api_req *req, const struct kc_grant *grant)
{
	json_t *entry = json_object();
	char arn[KC_ARN_MAX];

	kc_api_key_arn(req, grant->key_id, arn);
	kc_api_put_str(entry, "KeyId", arn);
	kc_api_put_str(entry, "GrantId", grant->grant_id);
	if (grant->name)
		kc_api_put_str(entry, "Name", grant->name);
	kc_api_put_time(entry, "CreationDate", grant->created);
	kc_api_put_str(entry, "GranteePrincipal", grant->grantee);
	if (grant->retiring)
		kc_api_put_str(entry, "RetiringPrincipal", grant->retiring);
	kc_api_put_str(entry, "IssuingAccount", grant->issuing);
	json_object_set_new(entry, "Operations", json_loads(grant->operations, 0, NULL));
	if (grant->constraints)
		json_object_set_new(entry, "Constraints", json_loads(grant->constraints, 0, NULL));
	return entry;
}

struct grant_page {
	struct kc_api_req *req;
	const char *grant_id;   /* ListGrants' GrantId filter, NULL: none */
	json_t *grants;
	size_t seen, offset, limit;
};

static int add_to_page(const struct kc_grant *grant, void *arg)
{
	struct grant_page *page = arg;

	if (page->grant_id && strcmp(grant->grant_id, page->grant_id) != 0)
		return 0;
	if (page->seen++ < page->offset || json_array_size(page->grants) >= page->limit)
		return 0;
	json_array_append_new(page->grants, grant_entry(page->req, grant));
	return 0;
}

static void put_grant_page(json_t *resp, struct grant_page *page)
{
	json_object_set_new(resp, "Grants", page->grants);
	kc_api_put_page_end(resp, page->offset + json_array_size(page->grants), page->seen);
}

/* ---- CreateGrant ------------------------------------------------------------------------------------ */

struct grant_input {
	const char *grantee, *retiring, *name;
	const char **operations;       /* borrowed names, the array malloc'ed */
	size_t operation_count;
	uint32_t mask;
	char *operations_text;         /* canonical JSON, malloc'ed */
	char *constraints_text;        /* canonical JSON, malloc'ed; NULL: none */
};

static void grant_input_free(struct grant_input *in)
{
	free(in->operations);
	free(in->operations_text);
	free(in->constraints_text);
}

/* A principal is an IAM or STS ARN of an account (users, roles, sessions, the root). */
static enum kc_status check_principal(const char *field, const char *value, struct kc_error *err)
{
	struct kc_arn_parts arn;
	int iam_or_sts;

	if (kc_arn_split(value, &arn) == 0) {
		iam_or_sts = arn.service_len == 3 && (strncmp(arn.service, "iam", 3) == 0 ||
				strncmp(arn.service, "sts", 3) == 0);
		if (iam_or_sts && kc_account_id_valid(arn.account, arn.account_len) && *arn.resource)
			return KC_OK;
	}
	return kc_fail(err, KC_INVALID_ARN, "%s %.200s is not a valid principal ARN", field, value);
}

/* Name: 1 to 256 of [a-zA-Z0-9:/_-], as the API reference's pattern. */
static enum kc_status check_grant_name(const char *name, struct kc_error *err)
{
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(":/_-", *p))
			return kc_api_invalid(err, "Name", "Member must satisfy regular expression "
					"pattern: ^[a-zA-Z0-9:/_-]+$");
	return KC_OK;
}

/* Operations: validated, and kept as names (policy conditions), mask and canonical text. */
static enum kc_status read_operations(struct kc_api_req *req, struct grant_input *in,
		struct kc_error *err)
{
	json_t *canonical;
	enum kc_status rc;

	rc = kc_api_strlist(req, "Operations", KC_API_REQUIRED, GRANT_OPERATIONS_MAX, NULL,
			&in->operations, &in->operation_count, err);
	if (rc == KC_OK)
		rc = kc_grant_operations_parse(json_object_get(req->params, "Operations"), &in->mask, err);
	if (rc != KC_OK)
		return rc;
	canonical = kc_grant_operations_json(in->mask);
	in->operations_text = canonical ? json_dumps(canonical, JSON_COMPACT) : NULL;
	json_decref(canonical);
	return in->operations_text ? KC_OK : kc_fail(err, KC_INTERNAL, "out of memory");
}

/* Constraints: validated, and kept as canonical text (sorted keys). */
static enum kc_status read_constraints(struct kc_api_req *req, struct grant_input *in,
		struct kc_error *err)
{
	json_t *value = json_object_get(req->params, "Constraints");
	struct kc_grant_constraints *parsed = NULL;
	enum kc_status rc;

	if (!value || json_is_null(value))
		return KC_OK;
	rc = kc_grant_constraints_parse(value, &parsed, err);
	kc_grant_constraints_free(parsed);
	if (rc != KC_OK)
		return rc;
	in->constraints_text = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS);
	return in->constraints_text ? KC_OK : kc_fail(err, KC_INTERNAL, "out of memory");
}

static enum kc_status read_grant_input(struct kc_api_req *req, struct grant_input *in,
		struct kc_error *err)
{
	const char **tokens = NULL;
	size_t token_count = 0;
	enum kc_status rc;

	rc = kc_api_str(req, "GranteePrincipal", KC_API_REQUIRED, 1, KC_GRANT_PRINCIPAL_MAX,
			&in->grantee, err);
	if (rc == KC_OK)
		rc = kc_api_str(req, "RetiringPrincipal", KC_API_OPTIONAL, 1, KC_GRANT_PRINCIPAL_MAX,
				&in->retiring, err);
	if (rc == KC_OK)
		rc = kc_api_str(req, "Name", KC_API_OPTIONAL, 1, KC_GRANT_NAME_MAX, &in->name, err);
	if (rc == KC_OK && in->name)
		rc = check_grant_name(in->name, err);
	if (rc == KC_OK)
		rc = kc_api_strlist(req, "GrantTokens", KC_API_OPTIONAL, GRANT_TOKENS_MAX, NULL,
				&tokens, &token_count, err);
	free(tokens);
	if (rc == KC_OK)
		rc = read_operations(req, in, err);
	if (rc == KC_OK)
		rc = read_constraints(req, in, err);
	if (rc == KC_OK)
		rc = check_principal("GranteePrincipal", in->grantee, err);
	if (rc == KC_OK && in->retiring)
		rc = check_principal("RetiringPrincipal", in->retiring, err);
	return rc;
}

static int same_optional(const char *a, const char *b)
{
	return a && b ? strcmp(a, b) == 0 : a == b;
}

struct same_grant {
	const struct grant_input *in;
	char grant_id[KC_GRANT_ID_LEN + 1];
	char token[GRANT_TOKEN_TEXT_MAX];
	int found;
};

/* The AWS idempotency rule: a grant with the same Name and the same everything else. */
static int is_same_grant(const struct kc_grant *grant, void *arg)
{
	struct same_grant *same = arg;
	const struct grant_input *in = same->in;

	if (!same_optional(grant->name, in->name) || !same_optional(grant->retiring, in->retiring) ||
			strcmp(grant->operations, in->operations_text) != 0 ||
			!same_optional(grant->constraints, in->constraints_text))
		return 0;
	snprintf(same->grant_id, sizeof same->grant_id, "%s", grant->grant_id);
	snprintf(same->token, sizeof same->token, "%s", grant->token);
	same->found = 1;
	return 1;
}

/* Inside the transaction: the existing grant for a repeated request, or a new one. */
static enum kc_status store_grant(struct kc_api_req *req, const struct kc_store_key *key,
		const struct grant_input *in, json_t *resp, struct kc_error *err)
{
	struct same_grant same = { .in = in };
	char issuing[64];
	struct kc_grant grant;
	enum kc_status rc = KC_OK;

	if (in->name)
		rc = kc_store_each_grant(req->local->store, key->key_id, in->grantee, is_same_grant,
				&same, err);
	if (rc != KC_OK || same.found)
		goto out;
	new_grant_id_and_token(same.grant_id, same.token);
	snprintf(issuing, sizeof issuing, "arn:aws:iam::%s:root", req->local->account);
	grant = (struct kc_grant){
		.grant_id = same.grant_id, .key_id = key->key_id, .name = in->name,
		.grantee = in->grantee, .retiring = in->retiring, .issuing = issuing,
		.operations = in->operations_text, .constraints = in->constraints_text,
		.token = same.token, .created = (int64_t)time(NULL),
	};
	rc = kc_store_grant_insert(req->local->store, &grant, err);
out:
	if (rc == KC_OK) {
		kc_api_put_str(resp, "GrantId", same.grant_id);
		kc_api_put_str(resp, "GrantToken", same.token);
	}
	return rc;
}

KC_API_HANDLER(CreateGrant)
{
	struct grant_input in = { 0 };
	const char *key_ref = NULL;
	struct kc_store_key key;
	enum kc_status rc;

	rc = read_grant_input(req, &in, err);
	if (rc == KC_OK)
		rc = kc_api_str(req, "KeyId", KC_API_REQUIRED, 1, 2048, &key_ref, err);
	if (rc == KC_OK)
		rc = find_key(req, key_ref, &key, err);
	if (rc == KC_OK)
		rc = kc_authorize_create_grant(req->local, &key, in.operations, in.operation_count,
				in.mask, req->caller, err);
	if (rc == KC_OK && key.state == KC_KEY_PENDING_DELETION)
		rc = kc_fail(err, KC_INVALID_STATE, "%s is pending deletion.", req->result->key_arn);
	if (rc == KC_OK)
		rc = kc_store_txn_begin(req->local->store, err);
	if (rc == KC_OK)
		rc = kc_store_txn_end(req->local->store, store_grant(req, &key, &in, resp, err), err);
	grant_input_free(&in);
	return rc;
}

/* ---- listing -------------------------------------------------------------------------------------------- */

KC_API_HANDLER(ListGrants)
{
	struct grant_page page = { .req = req };
	const char *grant_id_text = NULL, *grantee = NULL;
	char grant_id[KC_GRANT_ID_LEN + 1];
	struct kc_store_key key;
	enum kc_status rc;

	rc = kc_api_list_window(req, GRANT_LIST_DEFAULT, GRANT_LIST_MAX, &page.offset, &page.limit, err);
	if (rc == KC_OK)
		rc = kc_api_str(req, "GrantId", KC_API_OPTIONAL, 1, 128, &grant_id_text, err);
	if (rc == KC_OK)
		rc = kc_api_str(req, "GranteePrincipal", KC_API_OPTIONAL, 1, KC_GRANT_PRINCIPAL_MAX,
				&grantee, err);
	if (rc == KC_OK && grant_id_text)
		rc = parse_grant_id(grant_id_text, grant_id, err);
	if (rc == KC_OK)
		rc = kc_api_key(req, "KeyId", "kms:ListGrants", NULL, &key, err);
	if (rc != KC_OK)
		return rc;
	page.grant_id = grant_id_text ? grant_id : NULL;
	page.grants = json_array();
	rc = kc_store_each_grant(req->local->store, key.key_id, grantee, add_to_page, &page, err);
	put_grant_page(resp, &page);
	return rc;
}

KC_API_HANDLER(ListRetirableGrants)
{
	struct grant_page page = { .req = req };
	const char *retiring = NULL;
	enum kc_status rc;

	rc = kc_api_list_window(req, GRANT_LIST_DEFAULT, GRANT_LIST_MAX, &page.offset, &page.limit, err);
	if (rc == KC_OK)
		rc = kc_api_str(req, "RetiringPrincipal", KC_API_REQUIRED, 1, KC_GRANT_PRINCIPAL_MAX,
				&retiring, err);
	if (rc == KC_OK)
		rc = kc_api_authorize_account(req, "kms:ListRetirableGrants", err);
	if (rc != KC_OK)
		return rc;
	page.grants = json_array();
	rc = kc_store_each_retirable(req->local->store, retiring, add_to_page, &page, err);
	put_grant_page(resp, &page);
	return rc;
}

/* ---- RetireGrant, RevokeGrant ------------------------------------------------------------------------------ */

/* A grant copied out of its row: what RetireGrant needs after the read. */
struct held_grant {
	char grant_id[KC_GRANT_ID_LEN + 1];
	char key_id[KC_KEY_ID_LEN + 1];
	char grantee[KC_GRANT_PRINCIPAL_MAX + 1];
	char retiring[KC_GRANT_PRINCIPAL_MAX + 1];
	char issuing[64];
	char operations[GRANT_OPERATIONS_TEXT_MAX];
	char token[GRANT_TOKEN_TEXT_MAX];
	int has_retiring;
};

static int hold_grant(const struct kc_grant *grant, void *arg)
{
	struct held_grant *held = arg;

	snprintf(held->grant_id, sizeof held->grant_id, "%s", grant->grant_id);
	snprintf(held->key_id, sizeof held->key_id, "%s", grant->key_id);
	snprintf(held->grantee, sizeof held->grantee, "%s", grant->grantee);
	snprintf(held->retiring, sizeof held->retiring, "%s", grant->retiring ? grant->retiring : "");
	snprintf(held->issuing, sizeof held->issuing, "%s", grant->issuing);
	snprintf(held->operations, sizeof held->operations, "%s", grant->operations);
	snprintf(held->token, sizeof held->token, "%s", grant->token);
	held->has_retiring = grant->retiring != NULL;
	return 1;
}

/* The grant a token names; NotFoundException for a well-made token of no grant here. */
static enum kc_status grant_of_token(struct kc_api_req *req, const char *token,
		struct held_grant *held, struct kc_error *err)
{
	char grant_id[KC_GRANT_ID_LEN + 1];
	enum kc_status rc;

	rc = grant_id_of_token(token, grant_id, err);
	if (rc == KC_OK)
		rc = kc_store_grant_get(req->local->store, grant_id, hold_grant, held, err);
	if (rc == KC_NOT_FOUND || (rc == KC_OK && strcmp(token, held->token) != 0))
		rc = kc_fail(err, KC_NOT_FOUND, "Grant token not found");
	return rc;
}

static enum kc_status grant_of_id(struct kc_api_req *req, const char *grant_id_text,
		struct held_grant *held, struct kc_error *err)
{
	char grant_id[KC_GRANT_ID_LEN + 1];
	enum kc_status rc;

	rc = parse_grant_id(grant_id_text, grant_id, err);
	if (rc == KC_OK)
		rc = kc_store_grant_get(req->local->store, grant_id, hold_grant, held, err);
	if (rc == KC_NOT_FOUND)
		rc = kc_fail(err, KC_NOT_FOUND, "Grant ID %s not found", grant_id);
	return rc;
}

/* The grant RetireGrant names: by GrantToken, or by KeyId and GrantId. *key_ref: KeyId or NULL. */
static enum kc_status grant_to_retire(struct kc_api_req *req, struct held_grant *held,
		const char **key_ref, struct kc_error *err)
{
	const char *token = NULL, *grant_id_text = NULL;
	enum kc_status rc;

	*key_ref = NULL;
	rc = kc_api_str(req, "GrantToken", KC_API_OPTIONAL, 1, 8192, &token, err);
	if (rc == KC_OK)
		rc = kc_api_str(req, "KeyId", KC_API_OPTIONAL, 1, 2048, key_ref, err);
	if (rc == KC_OK)
		rc = kc_api_str(req, "GrantId", KC_API_OPTIONAL, 1, 128, &grant_id_text, err);
	if (rc != KC_OK)
		return rc;
	if (token)
		return grant_of_token(req, token, held, err);
	if (*key_ref && grant_id_text)
		return grant_of_id(req, grant_id_text, held, err);
	return kc_fail(err, KC_VALIDATION, "Either GrantToken, or both KeyId and GrantId, "
			"must be specified");
}

/* The grant's key; when the request names a key too, the grant must be on it. */
static enum kc_status key_of_grant(struct kc_api_req *req, const char *key_ref,
		const struct held_grant *held, struct kc_store_key *key, struct kc_error *err)
{
	enum kc_status rc;

	if (key_ref) {
		rc = find_key(req, key_ref, key, err);
		if (rc == KC_OK && strcmp(key->key_id, held->key_id) != 0)
			rc = kc_fail(err, KC_NOT_FOUND, "Grant ID %s not found for key %s",
					held->grant_id, req->result->key_arn);
		return rc;
	}
	rc = kc_store_get_key(req->local->store, held->key_id, key, err);
	if (rc == KC_OK)
		kc_api_key_arn(req, key->key_id, req->result->key_arn);
	return rc;
}

KC_API_HANDLER(RetireGrant)
{
	struct held_grant held = { 0 };
	const char *key_ref = NULL;
	struct kc_store_key key;
	struct kc_grant view;
	enum kc_status rc;

	(void)resp;
	rc = grant_to_retire(req, &held, &key_ref, err);
	if (rc == KC_OK)
		rc = key_of_grant(req, key_ref, &held, &key, err);
	if (rc != KC_OK)
		return rc;
	view = (struct kc_grant){
		.grant_id = held.grant_id, .key_id = held.key_id, .grantee = held.grantee,
		.retiring = held.has_retiring ? held.retiring : NULL, .issuing = held.issuing,
		.operations = held.operations, .token = held.token,
	};
	rc = kc_authorize_retire(req->local, &key, &view, req->caller, err);
	if (rc == KC_OK)
		rc = kc_store_grant_delete(req->local->store, key.key_id, held.grant_id, err);
	return rc;
}

KC_API_HANDLER(RevokeGrant)
{
	char grant_id[KC_GRANT_ID_LEN + 1];
	const char *grant_id_text = NULL;
	struct kc_store_key key;
	enum kc_status rc;

	(void)resp;
	rc = kc_api_str(req, "GrantId", KC_API_REQUIRED, 1, 128, &grant_id_text, err);
	if (rc == KC_OK)
		rc = parse_grant_id(grant_id_text, grant_id, err);
	if (rc == KC_OK)
		rc = kc_api_key(req, "KeyId", "kms:RevokeGrant", NULL, &key, err);
	if (rc != KC_OK)
		return rc;
	rc = kc_store_grant_delete(req->local->store, key.key_id, grant_id, err);
	if (rc == KC_NOT_FOUND)
		rc = kc_fail(err, KC_NOT_FOUND, "Grant ID %s not found for key %s", grant_id,
				req->result->key_arn);
	return rc;
}
