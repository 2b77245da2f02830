/*
 * policy_eval.c - evaluating a compiled key policy against one request.
 *
 * The IAM rules, restricted to one policy:
 *   - a statement applies when its Action, Resource, Principal and every
 *     condition match;
 *   - any applying Deny wins; otherwise the strongest applying Allow
 *     (naming the caller beats naming only the caller's account);
 *   - a principal naming an account (its root) covers every identity in
 *     that account: for Allow that means "IAM policies decide", for Deny
 *     it denies them all.
 *
 * Condition semantics (IAM "condition operators" and "multivalued keys"):
 *   plain operators are false when the key is absent, their Not variants
 *   (and IfExists) true; ForAnyValue: is false for an absent or empty key,
 *   ForAllValues: true. Several policy values for one key are OR'ed, keys
 *   and operators AND'ed. A negated operator is the negation of its
 *   positive form over the whole value set ("matches none of").
 *
 * Nothing here allocates: a request is answered from the stack.
 */
#include "policy.h"

#include <string.h>
#include <strings.h>

/* ---- matching strings ---------------------------------------------------------- */

static int same_char(char a, char b, int fold_case)
{
	if (fold_case && a >= 'A' && a <= 'Z')
		a = (char)(a - 'A' + 'a');
	if (fold_case && b >= 'A' && b <= 'Z')
		b = (char)(b - 'A' + 'a');
	return a == b;
}

/* Past one UTF-8 character: '?' stands for a character, not a byte. */
static const char *next_char(const char *s)
{
	s++;
	while (((unsigned char)*s & 0xC0) == 0x80)
		s++;
	return s;
}

/*
 * Greedy match remembering only the last '*': when a later literal fails,
 * that star absorbs one more character and matching resumes. Linear in
 * practice, O(n*m) at worst, never recursive.
 */
int kc_wildcard_match(const char *pattern, const char *text, int fold_case)
{
	const char *star = NULL, *star_text = NULL;

	while (*text) {
		if (*pattern == '*') {
			star = pattern++;
			star_text = text;
		} else if (*pattern == '?') {
			pattern++;
			text = next_char(text);
		} else if (*pattern && same_char(*pattern, *text, fold_case)) {
			pattern++;
			text++;
		} else if (star) {
			pattern = star + 1;
			text = star_text = next_char(star_text);
		} else {
			return 0;
		}
	}
	while (*pattern == '*')
		pattern++;
	return *pattern == '\0';
}

int kc_action_match(const char *pattern, const char *action)
{
	if (!pattern || !action)
		return 0;
	return kc_wildcard_match(pattern, action, 1);
}

static int pattern_match(const struct kc_pattern *pattern, const char *text, int fold_case)
{
	switch (pattern->kind) {
	case KC_PATTERN_ANY:
		return 1;
	case KC_PATTERN_EXACT:
		return fold_case ? strcasecmp(pattern->text, text) == 0 : strcmp(pattern->text, text) == 0;
	case KC_PATTERN_GLOB:
		return kc_wildcard_match(pattern->text, text, fold_case);
	}
	return 0;
}

/* ---- ARNs -------------------------------------------------------------------------- */

int kc_account_id_valid(const char *s, size_t len)
{
	size_t i;

	if (!s || len != 12)
		return 0;
	for (i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* Up to the next ':' (or end); *len gets the field length, returns the field. */
static const char *arn_field(const char **cursor, size_t *len)
{
	const char *start = *cursor;
	const char *colon = strchr(start, ':');

	if (!colon)
		return NULL;
	*len = (size_t)(colon - start);
	*cursor = colon + 1;
	return start;
}

int kc_arn_split(const char *text, struct kc_arn_parts *out)
{
	const char *cursor = text;
	size_t prefix_len;

	if (!text || !arn_field(&cursor, &prefix_len) || prefix_len != 3 ||
			strncmp(text, "arn", 3) != 0)
		return -1;
	out->partition = arn_field(&cursor, &out->partition_len);
	out->service = out->partition ? arn_field(&cursor, &out->service_len) : NULL;
	out->region = out->service ? arn_field(&cursor, &out->region_len) : NULL;
	out->account = out->region ? arn_field(&cursor, &out->account_len) : NULL;
	if (!out->account || out->partition_len == 0 || out->service_len == 0)
		return -1;
	out->resource = cursor;
	return 0;
}

static int field_equals(const char *a, size_t a_len, const char *b, size_t b_len)
{
	return a_len == b_len && memcmp(a, b, a_len) == 0;
}

/* ---- the request, prepared once --------------------------------------------------- */

struct eval_request {
	const struct kc_policy_request *req;
	const char *account;          /* the caller's account, NULL when unknown */
	char account_buf[16];
	struct kc_arn_parts caller;   /* the caller's ARN split, when caller_is_arn */
	int caller_is_arn;
};

static void prepare_request(struct eval_request *er, const struct kc_policy_request *req)
{
	memset(er, 0, sizeof *er);
	er->req = req;
	er->caller_is_arn = req->principal && kc_arn_split(req->principal, &er->caller) == 0;
	er->account = req->caller_account;
	if (!er->account && er->caller_is_arn &&
			kc_account_id_valid(er->caller.account, er->caller.account_len)) {
		memcpy(er->account_buf, er->caller.account, er->caller.account_len);
		er->account = er->account_buf;
	}
}

/* ---- Principal --------------------------------------------------------------------- */

enum principal_match { PRINCIPAL_NO, PRINCIPAL_ACCOUNT, PRINCIPAL_DIRECT };

static int caller_is_account_root(const struct eval_request *er)
{
	return er->caller_is_arn && field_equals(er->caller.service, er->caller.service_len, "iam", 3) &&
		strcmp(er->caller.resource, "root") == 0;
}

/*
 * An assumed-role session (arn:aws:sts::A:assumed-role/R/session) is the
 * role arn:aws:iam::A:role[/path]/R for principal matching, as in IAM.
 */
static int session_of_role(const struct eval_request *er, const char *role_arn)
{
	struct kc_arn_parts role;
	const char *role_name, *session_role, *slash;

	if (!er->caller_is_arn || strncmp(er->caller.resource, "assumed-role/", 13) != 0 ||
			!field_equals(er->caller.service, er->caller.service_len, "sts", 3))
		return 0;
	if (kc_arn_split(role_arn, &role) != 0 || strncmp(role.resource, "role/", 5) != 0 ||
			!field_equals(role.service, role.service_len, "iam", 3) ||
			!field_equals(role.partition, role.partition_len,
				er->caller.partition, er->caller.partition_len) ||
			!field_equals(role.account, role.account_len,
				er->caller.account, er->caller.account_len))
		return 0;
	role_name = strrchr(role.resource, '/') + 1;
	session_role = er->caller.resource + 13;
	slash = strchr(session_role, '/');
	return slash && field_equals(session_role, (size_t)(slash - session_role),
			role_name, strlen(role_name));
}

static enum principal_match match_one_principal(const struct kc_principal *principal,
		const struct eval_request *er)
{
	const char *caller = er->req->principal;

	switch (principal->kind) {
	case KC_PRINCIPAL_ANY:
		return PRINCIPAL_DIRECT;
	case KC_PRINCIPAL_ACCOUNT:
		if (!er->account || strcmp(principal->value, er->account) != 0)
			return PRINCIPAL_NO;
		return caller_is_account_root(er) ? PRINCIPAL_DIRECT : PRINCIPAL_ACCOUNT;
	case KC_PRINCIPAL_ARN:
		if (caller && strcmp(principal->value, caller) == 0)
			return PRINCIPAL_DIRECT;
		return session_of_role(er, principal->value) ? PRINCIPAL_DIRECT : PRINCIPAL_NO;
	case KC_PRINCIPAL_SERVICE:
		return caller && strcmp(principal->value, caller) == 0 ? PRINCIPAL_DIRECT : PRINCIPAL_NO;
	}
	return PRINCIPAL_NO;
}

static enum principal_match match_principals(const struct kc_statement *stmt,
		const struct eval_request *er)
{
	enum principal_match best = PRINCIPAL_NO, m;
	size_t i;

	for (i = 0; i < stmt->principal_count && best != PRINCIPAL_DIRECT; i++) {
		m = match_one_principal(&stmt->principals[i], er);
		if (m > best)
			best = m;
	}
	return best;
}

/* ---- Action and Resource ------------------------------------------------------------ */

static int match_actions(const struct kc_statement *stmt, const char *action)
{
	size_t i;

	for (i = 0; i < stmt->action_count; i++)
		if (pattern_match(&stmt->actions[i], action, 1))
			return !stmt->not_action;
	return stmt->not_action;
}

/* No resource (account-level action): only "*" names it. ARNs compare case-sensitively. */
static int match_resources(const struct kc_statement *stmt, const char *resource)
{
	size_t i;

	for (i = 0; i < stmt->resource_count; i++)
		if (resource ? pattern_match(&stmt->resources[i], resource, 0) :
				stmt->resources[i].kind == KC_PATTERN_ANY)
			return !stmt->not_resource;
	return stmt->not_resource;
}

/* ---- Condition ------------------------------------------------------------------------ */

/* Walks the request's values for one condition key; NULL when done. */
struct value_walk {
	const struct kc_condition *cond;
	const struct eval_request *er;
	size_t pos;
};

static const char *single_value(struct value_walk *walk, const char *value)
{
	return walk->pos++ == 0 ? value : NULL;
}

static const char *next_context_value(struct value_walk *walk, int keys_only)
{
	const struct kc_context *ctx = walk->er->req->ctx;
	const struct kc_pair *pair;

	while (ctx && walk->pos < ctx->count) {
		pair = &ctx->pairs[walk->pos++];
		if (keys_only)
			return pair->key;
		if (strcasecmp(pair->key, walk->cond->context_key) == 0)
			return pair->value;
	}
	return NULL;
}

static const char *next_request_value(struct value_walk *walk)
{
	const struct kc_policy_request *req = walk->er->req;

	switch (walk->cond->key) {
	case KC_KEY_ENCRYPTION_CONTEXT:
		return next_context_value(walk, 0);
	case KC_KEY_ENCRYPTION_CONTEXT_KEYS:
		return next_context_value(walk, 1);
	case KC_KEY_CALLER_ACCOUNT:
		return single_value(walk, walk->er->account);
	case KC_KEY_VIA_SERVICE:
		return single_value(walk, req->via_service);
	case KC_KEY_PRINCIPAL_ARN:
		return single_value(walk, req->principal);
	case KC_KEY_GRANT_OPERATIONS:
		return req->grant_operations && walk->pos < req->grant_operation_count ?
			req->grant_operations[walk->pos++] : NULL;
	case KC_KEY_GRANT_FOR_AWS_RESOURCE:
		if (strcasecmp(req->action, "kms:CreateGrant") != 0)
			return NULL;
		return single_value(walk, req->grant_for_aws_resource ? "true" : "false");
	case KC_KEY_UNKNOWN:
		return NULL;
	}
	return NULL;
}

static int operator_match(enum kc_cond_op op, const char *policy_value, const char *value)
{
	switch (op) {
	case KC_COND_STRING_EQUALS:
		return strcmp(policy_value, value) == 0;
	case KC_COND_STRING_EQUALS_IGNORE_CASE:
	case KC_COND_BOOL:
		return strcasecmp(policy_value, value) == 0;
	case KC_COND_STRING_LIKE:
		return kc_wildcard_match(policy_value, value, 0);
	case KC_COND_NULL:
		return 0;
	}
	return 0;
}

/* The positive operator against every policy value (OR). */
static int matches_any_policy_value(const struct kc_condition *cond, const char *value)
{
	size_t i;

	for (i = 0; i < cond->value_count; i++)
		if (operator_match(cond->op, cond->values[i], value))
			return 1;
	return 0;
}

/* Null: "true" asks for the key to be absent, "false" for it to be present. */
static int null_holds(const struct kc_condition *cond, int present)
{
	size_t i;

	for (i = 0; i < cond->value_count; i++)
		if ((strcmp(cond->values[i], "true") == 0) != present)
			return 1;
	return 0;
}

static int condition_holds(const struct kc_condition *cond, const struct eval_request *er)
{
	struct value_walk walk = { .cond = cond, .er = er };
	int present = 0, some = 0, every = 1, m;
	const char *value;

	while ((value = next_request_value(&walk)) != NULL) {
		present = 1;
		m = matches_any_policy_value(cond, value) != cond->negated;
		some |= m;
		every &= m;
	}
	if (cond->op == KC_COND_NULL)
		return null_holds(cond, present);
	if (!present) {
		if (cond->set == KC_SET_ANY_VALUE)
			return 0;
		return cond->set == KC_SET_ALL_VALUES || cond->negated || cond->if_exists;
	}
	if (cond->set == KC_SET_ALL_VALUES)
		return every;
	if (cond->set == KC_SET_ANY_VALUE)
		return some;
	/* single-valued use: "equals one of" / "equals none of" */
	return cond->negated ? every : some;
}

static int conditions_hold(const struct kc_statement *stmt, const struct eval_request *er)
{
	size_t i;

	for (i = 0; i < stmt->condition_count; i++)
		if (!condition_holds(&stmt->conditions[i], er))
			return 0;
	return 1;
}

/* ---- statements and the policy --------------------------------------------------------- */

/* How the statement names the caller, PRINCIPAL_NO when it does not apply at all. */
static enum principal_match statement_applies(const struct kc_statement *stmt,
		const struct eval_request *er)
{
	enum principal_match who;

	if (!match_actions(stmt, er->req->action))
		return PRINCIPAL_NO;
	who = match_principals(stmt, er);
	if (who == PRINCIPAL_NO || !match_resources(stmt, er->req->resource) ||
			!conditions_hold(stmt, er))
		return PRINCIPAL_NO;
	return who;
}

enum kc_policy_effect kc_policy_eval(const struct kc_policy *policy,
		const struct kc_policy_request *req)
{
	enum kc_policy_effect result = KC_POLICY_NONE;
	const struct kc_statement *stmt;
	struct eval_request er;
	enum principal_match who;
	size_t i;

	if (!policy || !req || !req->action)
		return KC_POLICY_NONE;
	prepare_request(&er, req);
	for (i = 0; i < policy->statement_count; i++) {
		stmt = &policy->statements[i];
		/* once an Allow names the caller, only a Deny can change the answer */
		if (!stmt->deny && result == KC_POLICY_ALLOW)
			continue;
		who = statement_applies(stmt, &er);
		if (who == PRINCIPAL_NO)
			continue;
		if (stmt->deny)
			return KC_POLICY_DENY;
		if (who == PRINCIPAL_DIRECT)
			result = KC_POLICY_ALLOW;
		else if (result == KC_POLICY_NONE)
			result = KC_POLICY_ALLOW_ACCOUNT;
	}
	return result;
}
