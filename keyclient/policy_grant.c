/*
 * policy_grant.c - grants as pure logic: which operations a grant
 * permits (CreateGrant's Operations) and its encryption-context
 * constraints (EncryptionContextSubset / EncryptionContextEquals).
 *
 * Operations become a bit set so a grant check is one lookup and an AND.
 * Constraint pairs are copied out of the request JSON; matching follows
 * the GrantConstraints API reference: context keys compare without case,
 * values with case.
 */
#include "policy.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- operations ------------------------------------------------------------------ */

/* The CreateGrant Operations enum, in the API reference's order: bit i = name i. */
static const char *const grant_operations[] = {
	"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
	"ReEncryptFrom", "ReEncryptTo", "Sign", "Verify", "GetPublicKey",
	"CreateGrant", "RetireGrant", "DescribeKey", "GenerateDataKeyPair",
	"GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac", "DeriveSharedSecret",
};
#define GRANT_OPERATION_COUNT (sizeof grant_operations / sizeof grant_operations[0])

/*
 * The operations that take an encryption context, so the only ones grant
 * constraints apply to (GrantConstraints: "not applied to operations that
 * do not support an encryption context").
 */
static const char *const context_operations[] = {
	"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
	"ReEncryptFrom", "ReEncryptTo", "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext",
};

/* Index of name in grant_operations; fold_case for IAM action names. -1 if none. */
static int operation_index(const char *name, int fold_case)
{
	size_t i;

	for (i = 0; i < GRANT_OPERATION_COUNT; i++)
		if (fold_case ? strcasecmp(name, grant_operations[i]) == 0 :
				strcmp(name, grant_operations[i]) == 0)
			return (int)i;
	return -1;
}

int kc_grant_operation_valid(const char *name)
{
	return name && operation_index(name, 0) >= 0;
}

enum kc_status kc_grant_operations_parse(json_t *ops, uint32_t *mask, struct kc_error *err)
{
	const char *name;
	json_t *item;
	size_t i;

	*mask = 0;
	if (!json_is_array(ops) || json_array_size(ops) == 0)
		return kc_fail(err, KC_VALIDATION, "Operations must be a non-empty list of grant operations");
	json_array_foreach(ops, i, item) {
		name = json_string_value(item);
		if (!name)
			return kc_fail(err, KC_VALIDATION, "Operations must contain only strings");
		if (!kc_grant_operation_valid(name))
			return kc_fail(err, KC_VALIDATION,
					"Value '%.64s' at 'operations' failed to satisfy constraint: "
					"Member must be a valid grant operation", name);
		*mask |= UINT32_C(1) << operation_index(name, 0);
	}
	return KC_OK;
}

/* "kms:Decrypt" -> "Decrypt"; NULL when it is not a kms: action. */
static const char *kms_operation(const char *action)
{
	if (!action || strncasecmp(action, "kms:", 4) != 0)
		return NULL;
	return action + 4;
}

int kc_grant_operations_cover(uint32_t mask, const char *action)
{
	const char *op = kms_operation(action);
	int index = op ? operation_index(op, 1) : -1;

	return index >= 0 && (mask & (UINT32_C(1) << index)) != 0;
}

json_t *kc_grant_operations_json(uint32_t mask)
{
	json_t *names = json_array();
	size_t i;

	if (!names)
		return NULL;
	for (i = 0; i < GRANT_OPERATION_COUNT; i++) {
		if (!(mask & (UINT32_C(1) << i)))
			continue;
		if (json_array_append_new(names, json_string(grant_operations[i])) != 0) {
			json_decref(names);
			return NULL;
		}
	}
	return names;
}

/* ---- constraints ----------------------------------------------------------------- */

/* One EncryptionContext* map. A request context holds at most that many pairs. */
struct constraint_map {
	int present;
	size_t count;
	char *keys[KC_MAX_CONTEXT_PAIRS];
	char *values[KC_MAX_CONTEXT_PAIRS];
};

struct kc_grant_constraints {
	struct constraint_map subset;
	struct constraint_map equals;
};

static void constraint_map_clear(struct constraint_map *map)
{
	size_t i;

	for (i = 0; i < map->count; i++) {
		free(map->keys[i]);
		free(map->values[i]);
	}
	map->count = 0;
}

void kc_grant_constraints_free(struct kc_grant_constraints *constraints)
{
	if (!constraints)
		return;
	constraint_map_clear(&constraints->subset);
	constraint_map_clear(&constraints->equals);
	free(constraints);
}

static enum kc_status parse_map(json_t *json, const char *member, struct constraint_map *map,
		struct kc_error *err)
{
	const char *key;
	json_t *value;
	size_t n;

	if (!json_is_object(json))
		return kc_fail(err, KC_VALIDATION, "Constraints.%s must be a map of strings", member);
	if (json_object_size(json) > KC_MAX_CONTEXT_PAIRS)
		return kc_fail(err, KC_VALIDATION, "Constraints.%s has more than %d pairs",
				member, KC_MAX_CONTEXT_PAIRS);
	map->present = 1;
	json_object_foreach(json, key, value) {
		if (*key == '\0' || !json_is_string(value))
			return kc_fail(err, KC_VALIDATION, "Constraints.%s must map non-empty keys "
					"to strings", member);
		n = map->count;
		map->keys[n] = strdup(key);
		map->values[n] = strdup(json_string_value(value));
		map->count++;
		if (!map->keys[n] || !map->values[n])
			return kc_fail(err, KC_INTERNAL, "out of memory");
	}
	return KC_OK;
}

static enum kc_status parse_constraint_members(json_t *json, struct kc_grant_constraints *c,
		struct kc_error *err)
{
	const char *member;
	json_t *value;
	enum kc_status rc;

	if (!json_is_object(json))
		return kc_fail(err, KC_VALIDATION, "Constraints must be an object");
	json_object_foreach(json, member, value) {
		if (strcmp(member, "EncryptionContextSubset") == 0)
			rc = parse_map(value, member, &c->subset, err);
		else if (strcmp(member, "EncryptionContextEquals") == 0)
			rc = parse_map(value, member, &c->equals, err);
		else
			rc = kc_fail(err, KC_VALIDATION, "Constraints: unknown member \"%.64s\" "
					"(EncryptionContextSubset or EncryptionContextEquals)", member);
		if (rc != KC_OK)
			return rc;
	}
	return KC_OK;
}

enum kc_status kc_grant_constraints_parse(json_t *constraints,
		struct kc_grant_constraints **out, struct kc_error *err)
{
	struct kc_grant_constraints *parsed = NULL;
	enum kc_status rc = KC_OK;

	*out = NULL;
	if (!constraints || json_is_null(constraints))
		goto out;
	parsed = calloc(1, sizeof *parsed);
	if (!parsed) {
		rc = kc_fail(err, KC_INTERNAL, "out of memory");
		goto out;
	}
	rc = parse_constraint_members(constraints, parsed, err);
	if (rc == KC_OK) {
		*out = parsed;
		parsed = NULL;
	}
out:
	kc_grant_constraints_free(parsed);
	return rc;
}

/* Key without case, value with case (GrantConstraints). */
static int same_pair(const char *key_a, const char *value_a, const char *key_b, const char *value_b)
{
	return strcasecmp(key_a, key_b) == 0 && strcmp(value_a, value_b) == 0;
}

static int context_has(const struct kc_context *ctx, const char *key, const char *value)
{
	size_t i;

	for (i = 0; ctx && i < ctx->count; i++)
		if (same_pair(ctx->pairs[i].key, ctx->pairs[i].value, key, value))
			return 1;
	return 0;
}

static int map_has(const struct constraint_map *map, const char *key, const char *value)
{
	size_t i;

	for (i = 0; i < map->count; i++)
		if (same_pair(map->keys[i], map->values[i], key, value))
			return 1;
	return 0;
}

static int map_within_context(const struct constraint_map *map, const struct kc_context *ctx)
{
	size_t i;

	for (i = 0; i < map->count; i++)
		if (!context_has(ctx, map->keys[i], map->values[i]))
			return 0;
	return 1;
}

static int context_within_map(const struct kc_context *ctx, const struct constraint_map *map)
{
	size_t i;

	for (i = 0; ctx && i < ctx->count; i++)
		if (!map_has(map, ctx->pairs[i].key, ctx->pairs[i].value))
			return 0;
	return 1;
}

int kc_grant_constraints_match(const struct kc_grant_constraints *constraints,
		const struct kc_context *ctx)
{
	if (!constraints)
		return 1;
	if (constraints->subset.present && !map_within_context(&constraints->subset, ctx))
		return 0;
	if (constraints->equals.present && !(map_within_context(&constraints->equals, ctx) &&
			context_within_map(ctx, &constraints->equals)))
		return 0;
	return 1;
}

static int takes_encryption_context(const char *action)
{
	const char *op = kms_operation(action);
	size_t i;

	for (i = 0; op && i < sizeof context_operations / sizeof context_operations[0]; i++)
		if (strcasecmp(op, context_operations[i]) == 0)
			return 1;
	return 0;
}

int kc_grant_permits(uint32_t ops_mask, const struct kc_grant_constraints *constraints,
		const char *action, const struct kc_context *ctx)
{
	if (!kc_grant_operations_cover(ops_mask, action))
		return 0;
	return !takes_encryption_context(action) || kc_grant_constraints_match(constraints, ctx);
}
