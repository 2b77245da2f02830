/*
 * policy_parse.c - key policy validation and compilation, and the default
 * key policy.
 *
 * kc_policy_parse walks the JSON once and produces struct kc_policy:
 * action/resource patterns classified (any / exact / wildcard), principals
 * reduced to "anyone", "an account" or "this ARN", condition operators and
 * keys resolved to enums, and every condition value turned into a string.
 * Evaluation (policy_eval.c) then never looks at JSON again.
 *
 * Everything the compiled policy points to lives in one arena owned by
 * the policy, so kc_policy_free is a walk over a few blocks.
 *
 * Validation follows IAM where it is strict (unknown elements, bad Effect,
 * duplicate Sids or JSON keys are errors) and is stricter where being lax
 * would silently change meaning: an operator kmsfs cannot evaluate, or a
 * NotPrincipal, is rejected rather than ignored.
 */
#include "policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the arena ------------------------------------------------------------- */

#define ARENA_BLOCK_MIN 4096
#define ARENA_ALIGN 16

struct kc_policy_arena {
	struct kc_policy_arena *next;
	size_t used;
	size_t cap;
	unsigned char *data;
};

static struct kc_policy_arena *arena_grow(struct kc_policy *policy, size_t need)
{
	struct kc_policy_arena *block = malloc(sizeof *block);
	size_t cap = need > ARENA_BLOCK_MIN ? need : ARENA_BLOCK_MIN;

	if (!block)
		return NULL;
	block->data = malloc(cap);
	if (!block->data) {
		free(block);
		return NULL;
	}
	block->used = 0;
	block->cap = cap;
	block->next = policy->arena;
	policy->arena = block;
	return block;
}

/* Zeroed, ARENA_ALIGN-aligned memory that lives as long as the policy. */
static void *arena_alloc(struct kc_policy *policy, size_t size)
{
	struct kc_policy_arena *block = policy->arena;
	void *p;

	size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (size == 0)
		size = ARENA_ALIGN;
	if (!block || block->cap - block->used < size)
		block = arena_grow(policy, size);
	if (!block)
		return NULL;
	p = block->data + block->used;
	block->used += size;
	memset(p, 0, size);
	return p;
}

static void *arena_array(struct kc_policy *policy, size_t count, size_t size)
{
	if (size && count > (size_t)-1 / size)
		return NULL;
	return arena_alloc(policy, count * size);
}

static const char *arena_strndup(struct kc_policy *policy, const char *s, size_t len)
{
	char *copy = arena_alloc(policy, len + 1);

	if (copy)
		memcpy(copy, s, len);
	return copy;
}

static const char *arena_strdup(struct kc_policy *policy, const char *s)
{
	return arena_strndup(policy, s, strlen(s));
}

void kc_policy_free(struct kc_policy *policy)
{
	struct kc_policy_arena *block, *next;

	if (!policy)
		return;
	for (block = policy->arena; block; block = next) {
		next = block->next;
		free(block->data);
		free(block);
	}
	free(policy);
}

/* ---- errors ------------------------------------------------------------------ */

/* What is being compiled, so every message can say where the problem is. */
struct compile {
	struct kc_policy *policy;
	struct kc_error *err;
	size_t statement;       /* 1-based; 0 while outside any statement */
	const char *sid;
};

static enum kc_status malformed(const struct compile *cc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static enum kc_status malformed(const struct compile *cc, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (cc->statement == 0)
		return kc_fail(cc->err, KC_MALFORMED_POLICY, "%s", what);
	if (cc->sid)
		return kc_fail(cc->err, KC_MALFORMED_POLICY, "Statement %zu (Sid \"%.32s\"): %s",
				cc->statement, cc->sid, what);
	return kc_fail(cc->err, KC_MALFORMED_POLICY, "Statement %zu: %s", cc->statement, what);
}

static enum kc_status out_of_memory(const struct compile *cc)
{
	return kc_fail(cc->err, KC_INTERNAL, "out of memory compiling the key policy");
}

/* ---- small helpers --------------------------------------------------------- */

/* A string or a non-empty array of strings; *count gets the number of strings. */
static enum kc_status string_list_size(const struct compile *cc, json_t *value,
		const char *element, size_t *count)
{
	size_t i;

	if (json_is_string(value)) {
		*count = 1;
		return KC_OK;
	}
	if (!json_is_array(value))
		return malformed(cc, "%s must be a string or an array of strings", element);
	if (json_array_size(value) == 0)
		return malformed(cc, "%s is an empty array", element);
	for (i = 0; i < json_array_size(value); i++)
		if (!json_is_string(json_array_get(value, i)))
			return malformed(cc, "%s must contain only strings", element);
	*count = json_array_size(value);
	return KC_OK;
}

/* The i-th string of a string-or-array value (string_list_size checked it). */
static const char *string_list_item(json_t *value, size_t i)
{
	return json_string_value(json_is_array(value) ? json_array_get(value, i) : value);
}

static enum kc_pattern_kind pattern_kind(const char *text)
{
	if (strcmp(text, "*") == 0)
		return KC_PATTERN_ANY;
	return strpbrk(text, "*?") ? KC_PATTERN_GLOB : KC_PATTERN_EXACT;
}

/* ---- Action / NotAction / Resource / NotResource ---------------------------- */

/* "*" or service:name, the service made of letters, digits and '-'. */
static int action_well_formed(const char *action)
{
	const char *colon = strchr(action, ':');
	const char *c;

	if (strcmp(action, "*") == 0)
		return 1;
	if (!colon || colon == action || colon[1] == '\0')
		return 0;
	for (c = action; c < colon; c++)
		if (!(*c == '-' || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
				(*c >= '0' && *c <= '9')))
			return 0;
	return 1;
}

static enum kc_status compile_patterns(const struct compile *cc, json_t *value,
		const char *element, int is_action, struct kc_pattern **out, size_t *count)
{
	enum kc_status rc;
	const char *text;
	size_t i;

	rc = string_list_size(cc, value, element, count);
	if (rc != KC_OK)
		return rc;
	*out = arena_array(cc->policy, *count, sizeof **out);
	if (!*out)
		return out_of_memory(cc);
	for (i = 0; i < *count; i++) {
		text = string_list_item(value, i);
		if (is_action && !action_well_formed(text))
			return malformed(cc, "%s \"%.64s\" is not of the form service:action", element, text);
		if (!is_action && strcmp(text, "*") != 0 && strncmp(text, "arn:", 4) != 0)
			return malformed(cc, "%s \"%.64s\" is neither \"*\" nor an ARN", element, text);
		(*out)[i].text = arena_strdup(cc->policy, text);
		if (!(*out)[i].text)
			return out_of_memory(cc);
		(*out)[i].kind = pattern_kind(text);
	}
	return KC_OK;
}

/* Exactly one of name / Not<name> (Action, Resource). */
static enum kc_status pick_either(const struct compile *cc, json_t *statement,
		const char *name, const char *not_name, json_t **value, int *negated)
{
	json_t *plain = json_object_get(statement, name);
	json_t *negative = json_object_get(statement, not_name);

	if (plain && negative)
		return malformed(cc, "has both %s and %s", name, not_name);
	if (!plain && !negative)
		return malformed(cc, "has no %s (or %s)", name, not_name);
	*value = plain ? plain : negative;
	*negated = negative != NULL;
	return KC_OK;
}

/* ---- Principal ----------------------------------------------------------------- */

/*
 * One {"AWS": ...} entry: "*", an account id, the account root ARN
 * (both mean the account) or an IAM/STS ARN naming one identity.
 * Wildcards other than a lone "*" are not allowed in principals (IAM).
 */
static enum kc_status compile_aws_principal(const struct compile *cc, const char *text,
		struct kc_principal *out)
{
	struct kc_arn_parts arn;

	if (strcmp(text, "*") == 0) {
		out->kind = KC_PRINCIPAL_ANY;
		return KC_OK;
	}
	if (strpbrk(text, "*?"))
		return malformed(cc, "Principal \"%.64s\": wildcards are not allowed in principals", text);
	out->kind = KC_PRINCIPAL_ACCOUNT;
	if (kc_account_id_valid(text, strlen(text))) {
		out->value = arena_strdup(cc->policy, text);
		return out->value ? KC_OK : out_of_memory(cc);
	}
	if (kc_arn_split(text, &arn) != 0 || !kc_account_id_valid(arn.account, arn.account_len) ||
			arn.region_len != 0 || *arn.resource == '\0' ||
			!((arn.service_len == 3 && strncmp(arn.service, "iam", 3) == 0) ||
			  (arn.service_len == 3 && strncmp(arn.service, "sts", 3) == 0)))
		return malformed(cc, "Principal \"%.64s\" is not an account id or an IAM ARN", text);
	if (strncmp(arn.service, "iam", 3) == 0 && strcmp(arn.resource, "root") == 0) {
		out->value = arena_strndup(cc->policy, arn.account, arn.account_len);
		return out->value ? KC_OK : out_of_memory(cc);
	}
	out->kind = KC_PRINCIPAL_ARN;
	out->value = arena_strdup(cc->policy, text);
	return out->value ? KC_OK : out_of_memory(cc);
}

static enum kc_status compile_service_principal(const struct compile *cc, const char *text,
		struct kc_principal *out)
{
	if (*text == '\0' || strpbrk(text, "*?"))
		return malformed(cc, "Principal Service \"%.64s\" is not a service name", text);
	out->kind = KC_PRINCIPAL_SERVICE;
	out->value = arena_strdup(cc->policy, text);
	return out->value ? KC_OK : out_of_memory(cc);
}

/* How many principals {"AWS": ..., "Service": ...} lists; rejects other types. */
static enum kc_status count_principals(const struct compile *cc, json_t *value, size_t *total)
{
	const char *type;
	json_t *list;
	size_t count;
	enum kc_status rc;

	*total = 0;
	json_object_foreach(value, type, list) {
		if (strcmp(type, "AWS") != 0 && strcmp(type, "Service") != 0)
			return malformed(cc, "Principal type \"%.32s\" is not supported "
					"(use \"AWS\" or \"Service\")", type);
		rc = string_list_size(cc, list, "Principal", &count);
		if (rc != KC_OK)
			return rc;
		*total += count;
	}
	if (*total == 0)
		return malformed(cc, "Principal is an empty object");
	return KC_OK;
}

/* "Principal": "*" - the same as {"AWS": "*"}. */
static enum kc_status compile_anyone(const struct compile *cc, struct kc_statement *stmt)
{
	stmt->principals = arena_alloc(cc->policy, sizeof *stmt->principals);
	if (!stmt->principals)
		return out_of_memory(cc);
	stmt->principals[0].kind = KC_PRINCIPAL_ANY;
	stmt->principal_count = 1;
	return KC_OK;
}

static enum kc_status compile_principal(const struct compile *cc, json_t *value,
		struct kc_statement *stmt)
{
	const char *type, *text;
	json_t *list;
	size_t i, n = 0, count;
	enum kc_status rc;

	if (json_is_string(value) && strcmp(json_string_value(value), "*") == 0)
		return compile_anyone(cc, stmt);
	if (!json_is_object(value))
		return malformed(cc, "Principal must be \"*\" or an object such as {\"AWS\": \"...\"}");
	rc = count_principals(cc, value, &stmt->principal_count);
	if (rc != KC_OK)
		return rc;
	stmt->principals = arena_array(cc->policy, stmt->principal_count, sizeof *stmt->principals);
	if (!stmt->principals)
		return out_of_memory(cc);
	json_object_foreach(value, type, list) {
		count = json_is_array(list) ? json_array_size(list) : 1;
		for (i = 0; i < count; i++, n++) {
			text = string_list_item(list, i);
			rc = strcmp(type, "AWS") == 0 ?
				compile_aws_principal(cc, text, &stmt->principals[n]) :
				compile_service_principal(cc, text, &stmt->principals[n]);
			if (rc != KC_OK)
				return rc;
		}
	}
	return KC_OK;
}

/* ---- Condition ------------------------------------------------------------------ */

static const struct {
	const char *name;
	enum kc_cond_op op;
	int negated;
} condition_operators[] = {
	{ "StringEquals", KC_COND_STRING_EQUALS, 0 },
	{ "StringNotEquals", KC_COND_STRING_EQUALS, 1 },
	{ "StringEqualsIgnoreCase", KC_COND_STRING_EQUALS_IGNORE_CASE, 0 },
	{ "StringNotEqualsIgnoreCase", KC_COND_STRING_EQUALS_IGNORE_CASE, 1 },
	{ "StringLike", KC_COND_STRING_LIKE, 0 },
	{ "StringNotLike", KC_COND_STRING_LIKE, 1 },
	/* IAM lets ArnEquals take wildcards too: both are StringLike on ARNs. */
	{ "ArnEquals", KC_COND_STRING_LIKE, 0 },
	{ "ArnLike", KC_COND_STRING_LIKE, 0 },
	{ "ArnNotEquals", KC_COND_STRING_LIKE, 1 },
	{ "ArnNotLike", KC_COND_STRING_LIKE, 1 },
	{ "Bool", KC_COND_BOOL, 0 },
	{ "Null", KC_COND_NULL, 0 },
};

/* IAM operator families kmsfs does not evaluate: said so, not "unknown". */
static const char *const unsupported_operator_prefixes[] = {
	"Numeric", "Date", "IpAddress", "NotIpAddress", "Binary",
};

static int strip_prefix(const char **s, const char *prefix)
{
	size_t len = strlen(prefix);

	if (strncasecmp(*s, prefix, len) != 0)
		return 0;
	*s += len;
	return 1;
}

/*
 * "ForAnyValue:StringLikeIfExists" -> op, negated, set, if_exists.
 * Operator names compare case-insensitively: accepting a spelling AWS
 * might reject costs less than rejecting one it accepts.
 */
static enum kc_status parse_operator(const struct compile *cc, const char *name,
		struct kc_condition *cond)
{
	char base[64];
	const char *rest = name;
	size_t len, i;

	if (strip_prefix(&rest, "ForAnyValue:"))
		cond->set = KC_SET_ANY_VALUE;
	else if (strip_prefix(&rest, "ForAllValues:"))
		cond->set = KC_SET_ALL_VALUES;
	len = strlen(rest);
	if (len >= sizeof base)
		return malformed(cc, "unknown condition operator \"%.64s\"", name);
	memcpy(base, rest, len + 1);
	if (len > 8 && strcasecmp(base + len - 8, "IfExists") == 0) {
		base[len - 8] = '\0';
		cond->if_exists = 1;
	}
	for (i = 0; i < sizeof condition_operators / sizeof condition_operators[0]; i++) {
		if (strcasecmp(base, condition_operators[i].name) != 0)
			continue;
		cond->op = condition_operators[i].op;
		cond->negated = condition_operators[i].negated;
		if (cond->op == KC_COND_NULL && (cond->set != KC_SET_SINGLE || cond->if_exists))
			return malformed(cc, "condition operator \"%.64s\": Null takes no "
					"ForAnyValue/ForAllValues/IfExists", name);
		return KC_OK;
	}
	for (i = 0; i < sizeof unsupported_operator_prefixes / sizeof unsupported_operator_prefixes[0]; i++)
		if (strncasecmp(base, unsupported_operator_prefixes[i],
				strlen(unsupported_operator_prefixes[i])) == 0)
			return malformed(cc, "condition operator \"%.64s\" is not supported by kmsfs", name);
	return malformed(cc, "unknown condition operator \"%.64s\"", name);
}

static const struct {
	const char *name;
	enum kc_cond_key key;
} condition_keys[] = {
	{ "kms:EncryptionContextKeys", KC_KEY_ENCRYPTION_CONTEXT_KEYS },
	{ "kms:CallerAccount", KC_KEY_CALLER_ACCOUNT },
	{ "aws:PrincipalAccount", KC_KEY_CALLER_ACCOUNT },
	{ "kms:ViaService", KC_KEY_VIA_SERVICE },
	{ "aws:PrincipalArn", KC_KEY_PRINCIPAL_ARN },
	{ "kms:GrantOperations", KC_KEY_GRANT_OPERATIONS },
	{ "kms:GrantIsForAWSResource", KC_KEY_GRANT_FOR_AWS_RESOURCE },
};

#define EC_KEY_PREFIX "kms:EncryptionContext:"

/*
 * Condition key names are case-insensitive (IAM), and so is the context
 * key inside kms:EncryptionContext:<key>: the KMS developer guide says a
 * policy "does not check the case of either element of the condition
 * key" - to pin the key's case, combine it with kms:EncryptionContextKeys
 * and a case-sensitive operator. So the context key is kept as written
 * and compared with strcasecmp at evaluation. Keys kmsfs does not know
 * are accepted and never present in a request, as in IAM.
 */
static enum kc_status parse_condition_key(const struct compile *cc, const char *name,
		struct kc_condition *cond)
{
	size_t i;

	if (*name == '\0')
		return malformed(cc, "condition key is empty");
	if (strncasecmp(name, EC_KEY_PREFIX, strlen(EC_KEY_PREFIX)) == 0) {
		if (name[strlen(EC_KEY_PREFIX)] == '\0')
			return malformed(cc, "condition key \"%s\" names no context key", name);
		cond->key = KC_KEY_ENCRYPTION_CONTEXT;
		cond->context_key = arena_strdup(cc->policy, name + strlen(EC_KEY_PREFIX));
		return cond->context_key ? KC_OK : out_of_memory(cc);
	}
	cond->key = KC_KEY_UNKNOWN;
	for (i = 0; i < sizeof condition_keys / sizeof condition_keys[0]; i++)
		if (strcasecmp(name, condition_keys[i].name) == 0)
			cond->key = condition_keys[i].key;
	return KC_OK;
}

/* Bool and Null take true/false, as JSON booleans or strings (any case). */
static const char *boolean_text(json_t *value)
{
	const char *s;

	if (json_is_boolean(value))
		return json_is_true(value) ? "true" : "false";
	s = json_string_value(value);
	if (s && strcasecmp(s, "true") == 0)
		return "true";
	if (s && strcasecmp(s, "false") == 0)
		return "false";
	return NULL;
}

/* One condition value as text: strings as is, booleans and integers spelled out. */
static enum kc_status value_text(const struct compile *cc, const struct kc_condition *cond,
		const char *key, json_t *value, const char **out)
{
	char number[32];

	if (cond->op == KC_COND_BOOL || cond->op == KC_COND_NULL) {
		*out = boolean_text(value);
		if (!*out)
			return malformed(cc, "condition key \"%.64s\": %s takes true or false", key,
					cond->op == KC_COND_BOOL ? "Bool" : "Null");
		return KC_OK;
	}
	if (json_is_string(value))
		*out = arena_strdup(cc->policy, json_string_value(value));
	else if (json_is_boolean(value))
		*out = json_is_true(value) ? "true" : "false";
	else if (json_is_integer(value)) {
		snprintf(number, sizeof number, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
		*out = arena_strdup(cc->policy, number);
	} else
		return malformed(cc, "condition key \"%.64s\": values must be strings, "
				"booleans or integers", key);
	return *out ? KC_OK : out_of_memory(cc);
}

static enum kc_status compile_values(const struct compile *cc, const char *key,
		json_t *value, struct kc_condition *cond)
{
	size_t i, count = json_is_array(value) ? json_array_size(value) : 1;
	enum kc_status rc;

	if (count == 0)
		return malformed(cc, "condition key \"%.64s\" has an empty value list", key);
	cond->values = arena_array(cc->policy, count, sizeof *cond->values);
	if (!cond->values)
		return out_of_memory(cc);
	for (i = 0; i < count; i++) {
		rc = value_text(cc, cond, key,
				json_is_array(value) ? json_array_get(value, i) : value,
				&cond->values[i]);
		if (rc != KC_OK)
			return rc;
	}
	cond->value_count = count;
	return KC_OK;
}

/* {"Operator": {"key": value(s), ...}, ...}: one kc_condition per key. */
static enum kc_status count_conditions(const struct compile *cc, json_t *block, size_t *total)
{
	const char *op_name;
	json_t *keys;

	if (!json_is_object(block))
		return malformed(cc, "Condition must be an object");
	*total = 0;
	json_object_foreach(block, op_name, keys) {
		if (!json_is_object(keys) || json_object_size(keys) == 0)
			return malformed(cc, "condition operator \"%.64s\" must map condition keys "
					"to values", op_name);
		*total += json_object_size(keys);
	}
	return KC_OK;
}

static enum kc_status compile_conditions(const struct compile *cc, json_t *block,
		struct kc_statement *stmt)
{
	const char *op_name, *key_name;
	json_t *keys, *value;
	struct kc_condition *cond;
	enum kc_status rc;
	size_t n = 0;

	rc = count_conditions(cc, block, &stmt->condition_count);
	if (rc != KC_OK || stmt->condition_count == 0)
		return rc;
	stmt->conditions = arena_array(cc->policy, stmt->condition_count, sizeof *stmt->conditions);
	if (!stmt->conditions)
		return out_of_memory(cc);
	json_object_foreach(block, op_name, keys) {
		json_object_foreach(keys, key_name, value) {
			cond = &stmt->conditions[n++];
			rc = parse_operator(cc, op_name, cond);
			if (rc == KC_OK)
				rc = parse_condition_key(cc, key_name, cond);
			if (rc == KC_OK)
				rc = compile_values(cc, key_name, value, cond);
			if (rc != KC_OK)
				return rc;
		}
	}
	return KC_OK;
}

/* ---- statements and the document -------------------------------------------------- */

static const char *const statement_elements[] = {
	"Sid", "Effect", "Principal", "Action", "NotAction", "Resource", "NotResource", "Condition",
};

static enum kc_status check_statement_elements(const struct compile *cc, json_t *json)
{
	const char *name;
	json_t *value;
	size_t i;

	json_object_foreach(json, name, value) {
		for (i = 0; i < sizeof statement_elements / sizeof statement_elements[0]; i++)
			if (strcmp(name, statement_elements[i]) == 0)
				break;
		if (strcmp(name, "NotPrincipal") == 0)
			return malformed(cc, "NotPrincipal is not supported");
		if (i == sizeof statement_elements / sizeof statement_elements[0])
			return malformed(cc, "unknown element \"%.64s\"", name);
	}
	return KC_OK;
}

static enum kc_status compile_effect(const struct compile *cc, json_t *json,
		struct kc_statement *stmt)
{
	const char *effect = json_string_value(json_object_get(json, "Effect"));

	if (!json_object_get(json, "Effect"))
		return malformed(cc, "has no Effect");
	if (!effect || (strcmp(effect, "Allow") != 0 && strcmp(effect, "Deny") != 0))
		return malformed(cc, "Effect must be \"Allow\" or \"Deny\"");
	stmt->deny = strcmp(effect, "Deny") == 0;
	return KC_OK;
}

static enum kc_status compile_statement(struct compile *cc, json_t *json,
		struct kc_statement *stmt)
{
	json_t *sid = json_object_get(json, "Sid");
	json_t *element = NULL, *condition;
	enum kc_status rc;

	if (!json_is_object(json))
		return malformed(cc, "is not an object");
	if (sid && !json_is_string(sid))
		return malformed(cc, "Sid must be a string");
	if (sid) {
		stmt->sid = arena_strdup(cc->policy, json_string_value(sid));
		if (!stmt->sid)
			return out_of_memory(cc);
		cc->sid = stmt->sid;
	}
	rc = check_statement_elements(cc, json);
	if (rc == KC_OK)
		rc = compile_effect(cc, json, stmt);
	if (rc == KC_OK && !json_object_get(json, "Principal"))
		rc = malformed(cc, "has no Principal");
	if (rc == KC_OK)
		rc = compile_principal(cc, json_object_get(json, "Principal"), stmt);
	if (rc == KC_OK)
		rc = pick_either(cc, json, "Action", "NotAction", &element, &stmt->not_action);
	if (rc == KC_OK)
		rc = compile_patterns(cc, element, stmt->not_action ? "NotAction" : "Action", 1,
				&stmt->actions, &stmt->action_count);
	if (rc == KC_OK)
		rc = pick_either(cc, json, "Resource", "NotResource", &element, &stmt->not_resource);
	if (rc == KC_OK)
		rc = compile_patterns(cc, element, stmt->not_resource ? "NotResource" : "Resource", 0,
				&stmt->resources, &stmt->resource_count);
	condition = json_object_get(json, "Condition");
	if (rc == KC_OK && condition)
		rc = compile_conditions(cc, condition, stmt);
	return rc;
}

/* IAM requires Sids to be unique within a policy. */
static enum kc_status check_unique_sids(struct compile *cc)
{
	const struct kc_policy *policy = cc->policy;
	size_t i, j;

	for (i = 0; i < policy->statement_count; i++) {
		if (!policy->statements[i].sid)
			continue;
		for (j = 0; j < i; j++) {
			if (policy->statements[j].sid &&
					strcmp(policy->statements[i].sid, policy->statements[j].sid) == 0) {
				cc->statement = 0;
				return malformed(cc, "duplicate Sid \"%.64s\" (statements %zu and %zu)",
						policy->statements[i].sid, j + 1, i + 1);
			}
		}
	}
	return KC_OK;
}

static enum kc_status check_document_elements(struct compile *cc, json_t *root)
{
	const char *name;
	json_t *value;
	const char *version;

	json_object_foreach(root, name, value) {
		if (strcmp(name, "Version") == 0) {
			version = json_string_value(value);
			if (!version || (strcmp(version, "2012-10-17") != 0 &&
					strcmp(version, "2008-10-17") != 0))
				return malformed(cc, "Version must be \"2012-10-17\" or \"2008-10-17\"");
		} else if (strcmp(name, "Id") == 0) {
			if (!json_is_string(value))
				return malformed(cc, "Id must be a string");
		} else if (strcmp(name, "Statement") != 0) {
			return malformed(cc, "unknown policy element \"%.64s\"", name);
		}
	}
	return KC_OK;
}

static enum kc_status compile_document(struct compile *cc, json_t *root)
{
	struct kc_policy *policy = cc->policy;
	json_t *statements;
	enum kc_status rc;
	size_t i;

	if (!json_is_object(root))
		return malformed(cc, "policy must be a JSON object");
	rc = check_document_elements(cc, root);
	if (rc != KC_OK)
		return rc;
	statements = json_object_get(root, "Statement");
	if (!statements)
		return malformed(cc, "policy has no Statement");
	if (!json_is_object(statements) && !json_is_array(statements))
		return malformed(cc, "Statement must be an object or an array of objects");
	policy->statement_count = json_is_array(statements) ? json_array_size(statements) : 1;
	if (policy->statement_count == 0)
		return malformed(cc, "Statement is an empty array");
	policy->statements = arena_array(policy, policy->statement_count, sizeof *policy->statements);
	if (!policy->statements)
		return out_of_memory(cc);
	for (i = 0; i < policy->statement_count; i++) {
		cc->statement = i + 1;
		cc->sid = NULL;
		rc = compile_statement(cc, json_is_array(statements) ?
				json_array_get(statements, i) : statements, &policy->statements[i]);
		if (rc != KC_OK)
			return rc;
	}
	return check_unique_sids(cc);
}

enum kc_status kc_policy_parse(const char *text, struct kc_policy **out, struct kc_error *err)
{
	struct compile cc = { .err = err };
	json_error_t json_err;
	json_t *root = NULL;
	enum kc_status rc;
	size_t len;

	*out = NULL;
	len = text ? strnlen(text, KC_POLICY_MAX_BYTES + 1) : 0;
	if (len == 0)
		return malformed(&cc, "policy document is empty");
	if (len > KC_POLICY_MAX_BYTES)
		return malformed(&cc, "policy document is larger than %d bytes", KC_POLICY_MAX_BYTES);
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &json_err);
	if (!root)
		return malformed(&cc, "policy is not valid JSON: %.120s (line %d, column %d)",
				json_err.text, json_err.line, json_err.column);
	cc.policy = calloc(1, sizeof *cc.policy);
	if (!cc.policy) {
		rc = out_of_memory(&cc);
		goto out;
	}
	rc = compile_document(&cc, root);
	if (rc == KC_OK) {
		*out = cc.policy;
		cc.policy = NULL;
	}
out:
	kc_policy_free(cc.policy);
	json_decref(root);
	return rc;
}

/* ---- the default key policy ---------------------------------------------------------- */

/*
 * Byte for byte what AWS KMS GetKeyPolicy returns for a key created
 * without a policy (its Jackson-style pretty printing: two-space indent,
 * " : " separators, "[ {" / "} ]" around the one statement, no final
 * newline), so tools comparing policy text see what they see against AWS.
 */
#define KC_DEFAULT_POLICY_FORMAT \
	"{\n" \
	"  \"Version\" : \"2012-10-17\",\n" \
	"  \"Id\" : \"key-default-1\",\n" \
	"  \"Statement\" : [ {\n" \
	"    \"Sid\" : \"Enable IAM User Permissions\",\n" \
	"    \"Effect\" : \"Allow\",\n" \
	"    \"Principal\" : {\n" \
	"      \"AWS\" : \"arn:aws:iam::%s:root\"\n" \
	"    },\n" \
	"    \"Action\" : \"kms:*\",\n" \
	"    \"Resource\" : \"*\"\n" \
	"  } ]\n" \
	"}"

const char *kc_policy_default(const char *account, char *buf, size_t buflen)
{
	int n;

	/* pasted into JSON unescaped, and the policy must pass kc_policy_parse */
	if (!account || !buf || !kc_account_id_valid(account, strlen(account)))
		return NULL;
	n = snprintf(buf, buflen, KC_DEFAULT_POLICY_FORMAT, account);
	if (n < 0 || (size_t)n >= buflen)
		return NULL;
	return buf;
}
