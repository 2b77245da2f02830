/*
 * policy.h - key policies and grants: the AWS KMS authorization rules as
 * pure functions (no storage, no I/O). Private to keyclient/.
 *
 * A key policy is parsed and validated once (kc_policy_parse) into a
 * compiled form; kc_policy_eval then answers one request in about a
 * microsecond without touching JSON, so kmsd can check every call.
 *
 * The pieces, one per file:
 *   policy_parse.c  validation and compilation of the policy document,
 *                   the default key policy
 *   policy_eval.c   evaluation: Principal, Action, Resource, Condition
 *   policy_grant.c  grant operations and grant constraints
 *
 * What is modelled is the IAM policy subset AWS KMS key policies use:
 *   Effect Allow|Deny; Principal "*" or {"AWS": ARNs or account ids}
 *   (also {"Service": names}); Action or NotAction; Resource or
 *   NotResource; Condition with StringEquals, StringNotEquals,
 *   StringEqualsIgnoreCase, StringNotEqualsIgnoreCase, StringLike,
 *   StringNotLike, ArnEquals, ArnLike, ArnNotEquals, ArnNotLike, Bool and
 *   Null, each optionally prefixed ForAnyValue: / ForAllValues: or
 *   suffixed IfExists. Other operators (Numeric*, Date*, IpAddress) are
 *   rejected as malformed rather than silently ignored.
 */
#ifndef KMSFS_KEYCLIENT_POLICY_H
#define KMSFS_KEYCLIENT_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "keyclient.h"

/* ---- key policies ---------------------------------------------------------- */

#define KC_POLICY_MAX_BYTES 32768   /* AWS KMS key policy size limit (32 KiB) */

struct kc_policy;

/*
 * The outcome of a key policy for one request, strongest first:
 *   DENY          a Deny statement matches: refuse, whatever else says yes.
 *   ALLOW         an Allow statement names the caller (its ARN, its role
 *                 for an assumed-role session, or "*").
 *   ALLOW_ACCOUNT an Allow statement names only the caller's account
 *                 (arn:aws:iam::<acct>:root or the bare id): the key
 *                 policy delegates to IAM, so the caller's own identity
 *                 policy decides.
 *   NONE          nothing matches: implicit deny (grants may still allow).
 */
enum kc_policy_effect {
	KC_POLICY_NONE = 0,
	KC_POLICY_ALLOW_ACCOUNT,
	KC_POLICY_ALLOW,
	KC_POLICY_DENY,
};

/* One request, as the condition keys see it. Strings are borrowed. */
struct kc_policy_request {
	const char *principal;        /* caller ARN, arn:aws:iam::111122223333:user/bob */
	const char *caller_account;   /* kms:CallerAccount; NULL: taken from principal */
	const char *action;           /* "kms:Decrypt" */
	const char *resource;         /* key ARN; NULL for account-level actions */
	const struct kc_context *ctx; /* encryption context; NULL: none */
	const char *via_service;      /* kms:ViaService; NULL for direct calls */
	/* CreateGrant only: kms:GrantOperations, kms:GrantIsForAWSResource */
	const char *const *grant_operations;
	size_t grant_operation_count;
	int grant_for_aws_resource;
};

/*
 * Validate and compile a policy document. KC_MALFORMED_POLICY with a
 * message saying what is wrong (and in which statement) when the text is
 * not JSON, too large, or not a policy. *out is freed with kc_policy_free.
 */
enum kc_status kc_policy_parse(const char *text, struct kc_policy **out,
		struct kc_error *err);
void kc_policy_free(struct kc_policy *policy);

/* The decision for req (see enum kc_policy_effect). Thread-safe: policy is read-only. */
enum kc_policy_effect kc_policy_eval(const struct kc_policy *policy,
		const struct kc_policy_request *req);

/*
 * IAM action pattern match: '*' any run of characters, '?' exactly one,
 * case-insensitive ("kms:Gen*" matches "kms:GenerateDataKey"). 1 or 0.
 */
int kc_action_match(const char *pattern, const char *action);

/*
 * The default key policy AWS gives a key created without one, in the
 * exact text GetKeyPolicy returns (pretty-printed, "key" : value):
 * account root may do kms:*, i.e. the account's IAM policies decide.
 * Written to buf; returns buf, or NULL when account is not a 12-digit
 * account id or buflen is too small (KC_POLICY_DEFAULT_MAX is enough).
 */
#define KC_POLICY_DEFAULT_MAX 512
const char *kc_policy_default(const char *account, char *buf, size_t buflen);

/* ---- grants ------------------------------------------------------------------ */

/*
 * Grant operations as a bit set (bit i = the i-th name of the CreateGrant
 * Operations enum, in AWS's documented order). Unknown or missing
 * operations: KC_VALIDATION. ops must be a non-empty JSON array of strings.
 */
enum kc_status kc_grant_operations_parse(json_t *ops, uint32_t *mask,
		struct kc_error *err);
/* 1 when name is a valid grant operation ("Decrypt"; case-sensitive, as AWS). */
int kc_grant_operation_valid(const char *name);
/* 1 when the grant's operations include action ("kms:Decrypt" needs "Decrypt"). */
int kc_grant_operations_cover(uint32_t mask, const char *action);
/* The operations as a JSON array of names (ListGrants); new reference, NULL on ENOMEM. */
json_t *kc_grant_operations_json(uint32_t mask);

/*
 * Grant constraints: {"EncryptionContextSubset": {...}} and/or
 * {"EncryptionContextEquals": {...}} (both given: both must hold).
 * A NULL or JSON null constraints object means none: *out = NULL.
 * Anything else malformed: KC_VALIDATION.
 */
struct kc_grant_constraints;
enum kc_status kc_grant_constraints_parse(json_t *constraints,
		struct kc_grant_constraints **out, struct kc_error *err);
void kc_grant_constraints_free(struct kc_grant_constraints *constraints);
/*
 * 1 when ctx (NULL = empty) satisfies the constraints (NULL = none):
 * Subset: every constraint pair is in ctx, ctx may have more; Equals:
 * exactly the same pairs. As AWS documents for grant constraints, the
 * context key compares case-insensitively and the value case-sensitively.
 */
int kc_grant_constraints_match(const struct kc_grant_constraints *constraints,
		const struct kc_context *ctx);
/*
 * The whole grant check for one action: the operations cover it and, for
 * operations that take an encryption context (Encrypt, Decrypt,
 * GenerateDataKey*, ReEncryptFrom/To), the constraints hold. Constraints
 * do not apply to other operations (DescribeKey, CreateGrant, ...), as in AWS.
 */
int kc_grant_permits(uint32_t ops_mask, const struct kc_grant_constraints *constraints,
		const char *action, const struct kc_context *ctx);

/* ---- the compiled form (only policy_*.c look inside) ------------------------- */

enum kc_pattern_kind {
	KC_PATTERN_ANY,      /* "*" */
	KC_PATTERN_EXACT,    /* no wildcard: one string compare */
	KC_PATTERN_GLOB,     /* has '*' or '?' */
};

struct kc_pattern {
	const char *text;
	enum kc_pattern_kind kind;
};

enum kc_principal_kind {
	KC_PRINCIPAL_ANY,      /* "*" or {"AWS": "*"} */
	KC_PRINCIPAL_ACCOUNT,  /* "111122223333" or arn:aws:iam::111122223333:root */
	KC_PRINCIPAL_ARN,      /* an IAM user, role or assumed-role session */
	KC_PRINCIPAL_SERVICE,  /* {"Service": "x.amazonaws.com"}: compared as a name */
};

struct kc_principal {
	enum kc_principal_kind kind;
	const char *value;     /* account id, ARN or service; NULL for ANY */
};

enum kc_cond_op {
	KC_COND_STRING_EQUALS,
	KC_COND_STRING_EQUALS_IGNORE_CASE,
	KC_COND_STRING_LIKE,         /* also ArnEquals/ArnLike: both take wildcards */
	KC_COND_BOOL,
	KC_COND_NULL,
};

enum kc_cond_set { KC_SET_SINGLE, KC_SET_ANY_VALUE, KC_SET_ALL_VALUES };

enum kc_cond_key {
	KC_KEY_UNKNOWN,              /* accepted, never present in a request */
	KC_KEY_ENCRYPTION_CONTEXT,   /* kms:EncryptionContext:<context_key> */
	KC_KEY_ENCRYPTION_CONTEXT_KEYS,
	KC_KEY_CALLER_ACCOUNT,       /* kms:CallerAccount, aws:PrincipalAccount */
	KC_KEY_VIA_SERVICE,
	KC_KEY_PRINCIPAL_ARN,
	KC_KEY_GRANT_OPERATIONS,
	KC_KEY_GRANT_FOR_AWS_RESOURCE,
};

struct kc_condition {
	enum kc_cond_op op;
	int negated;                 /* the Not variant of op */
	enum kc_cond_set set;
	int if_exists;
	enum kc_cond_key key;
	const char *context_key;     /* KC_KEY_ENCRYPTION_CONTEXT only */
	const char **values;         /* policy values, OR'ed; Bool/Null: "true"/"false" */
	size_t value_count;
};

struct kc_statement {
	const char *sid;             /* NULL when absent */
	int deny;
	int not_action;
	int not_resource;
	struct kc_pattern *actions;  /* case-insensitive */
	size_t action_count;
	struct kc_pattern *resources;
	size_t resource_count;
	struct kc_principal *principals;
	size_t principal_count;
	struct kc_condition *conditions;  /* AND'ed */
	size_t condition_count;
};

struct kc_policy_arena;

struct kc_policy {
	struct kc_statement *statements;
	size_t statement_count;
	struct kc_policy_arena *arena;   /* owns every string and array above */
};

/* Wildcard match ('*', '?'); fold_case: ASCII case-insensitive. policy_eval.c. */
int kc_wildcard_match(const char *pattern, const char *text, int fold_case);

/*
 * arn:partition:service:region:account:resource split in place (no copies;
 * fields are pointer + length, resource runs to the end). 0, or -1 when
 * text is not of that shape. policy_eval.c.
 */
struct kc_arn_parts {
	const char *partition, *service, *region, *account, *resource;
	size_t partition_len, service_len, region_len, account_len;
};
int kc_arn_split(const char *text, struct kc_arn_parts *out);
/* 1 when s is an AWS account id: exactly 12 ASCII digits (len bytes). */
int kc_account_id_valid(const char *s, size_t len);

#endif /* KMSFS_KEYCLIENT_POLICY_H */
