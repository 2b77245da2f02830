/*
 * test_policy.c - unit tests of the key-policy and grant evaluator
 * (keyclient/policy.h): the default key policy, principals, Deny over
 * Allow, action and resource patterns, every condition operator and key,
 * malformed documents, grant operations and constraints, and a rough
 * timing of one evaluation. Exits non-zero if any check failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy.h"

static int failures;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, __func__, #cond); \
		failures++; \
	} \
} while (0)

#define ACCOUNT "111122223333"
#define OTHER_ACCOUNT "444455556666"
#define BOB "arn:aws:iam::" ACCOUNT ":user/bob"
#define ALICE "arn:aws:iam::" ACCOUNT ":user/alice"
#define MALLORY "arn:aws:iam::" OTHER_ACCOUNT ":user/mallory"
#define ROOT "arn:aws:iam::" ACCOUNT ":root"
#define KEY_ARN "arn:aws:kms:us-east-1:" ACCOUNT ":key/1234abcd-12ab-34cd-56ef-1234567890ab"
#define OTHER_KEY_ARN "arn:aws:kms:us-east-1:" ACCOUNT ":key/0987dcba-09fe-87dc-65ba-ab0987654321"

#define POLICY(statements) "{\"Version\":\"2012-10-17\",\"Statement\":[" statements "]}"
#define ALLOW_ACCOUNT_ALL \
	"{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" ROOT "\"},\"Action\":\"kms:*\",\"Resource\":\"*\"}"

static const char *effect_name(enum kc_policy_effect effect)
{
	switch (effect) {
	case KC_POLICY_NONE: return "NONE";
	case KC_POLICY_ALLOW_ACCOUNT: return "ALLOW_ACCOUNT";
	case KC_POLICY_ALLOW: return "ALLOW";
	case KC_POLICY_DENY: return "DENY";
	}
	return "?";
}

#define CHECK_EFFECT(expr, want) do { \
	enum kc_policy_effect got_ = (expr); \
	if (got_ != (want)) { \
		fprintf(stderr, "%s:%d: %s: %s gave %s, want %s\n", __FILE__, __LINE__, __func__, \
			#expr, effect_name(got_), effect_name(want)); \
		failures++; \
	} \
} while (0)

/* Parses text, which must be valid; NULL (reported) otherwise. */
static struct kc_policy *parse_ok(const char *text, int line)
{
	struct kc_error err = { 0 };
	struct kc_policy *policy = NULL;

	if (kc_policy_parse(text, &policy, &err) != KC_OK || !policy) {
		fprintf(stderr, "%s:%d: policy rejected: %s: %s\n", __FILE__, line, err.type, err.message);
		failures++;
		return NULL;
	}
	return policy;
}
#define PARSE_OK(text) parse_ok((text), __LINE__)

/* A Decrypt request on KEY_ARN by principal with ctx. */
static struct kc_policy_request request(const char *principal, const char *action,
		const struct kc_context *ctx)
{
	struct kc_policy_request req = {
		.principal = principal, .action = action, .resource = KEY_ARN, .ctx = ctx,
	};
	return req;
}

static enum kc_policy_effect eval(const struct kc_policy *policy, const char *principal,
		const char *action)
{
	struct kc_policy_request req = request(principal, action, NULL);

	return policy ? kc_policy_eval(policy, &req) : KC_POLICY_NONE;
}

static struct kc_context context2(const char *k1, const char *v1, const char *k2, const char *v2)
{
	struct kc_context ctx = { 0 };

	if (k1)
		kc_context_add(&ctx, k1, v1);
	if (k2)
		kc_context_add(&ctx, k2, v2);
	return ctx;
}

/* ---- the default key policy ----------------------------------------------------- */

static void test_default_policy_text(void)
{
	static const char want[] =
		"{\n"
		"  \"Version\" : \"2012-10-17\",\n"
		"  \"Id\" : \"key-default-1\",\n"
		"  \"Statement\" : [ {\n"
		"    \"Sid\" : \"Enable IAM User Permissions\",\n"
		"    \"Effect\" : \"Allow\",\n"
		"    \"Principal\" : {\n"
		"      \"AWS\" : \"arn:aws:iam::111122223333:root\"\n"
		"    },\n"
		"    \"Action\" : \"kms:*\",\n"
		"    \"Resource\" : \"*\"\n"
		"  } ]\n"
		"}";
	char buf[KC_POLICY_DEFAULT_MAX], tiny[64];

	CHECK(kc_policy_default(ACCOUNT, buf, sizeof buf) == buf);
	CHECK(strcmp(buf, want) == 0);
	CHECK(kc_policy_default(ACCOUNT, tiny, sizeof tiny) == NULL);
	CHECK(kc_policy_default(NULL, buf, sizeof buf) == NULL);
	CHECK(kc_policy_default("12345", buf, sizeof buf) == NULL);
	CHECK(kc_policy_default("11112222333\"", buf, sizeof buf) == NULL);
}

static void test_default_policy_eval(void)
{
	char buf[KC_POLICY_DEFAULT_MAX];
	struct kc_policy *policy = PARSE_OK(kc_policy_default(ACCOUNT, buf, sizeof buf));

	CHECK_EFFECT(eval(policy, BOB, "kms:Decrypt"), KC_POLICY_ALLOW_ACCOUNT);
	CHECK_EFFECT(eval(policy, BOB, "kms:PutKeyPolicy"), KC_POLICY_ALLOW_ACCOUNT);
	CHECK_EFFECT(eval(policy, MALLORY, "kms:Decrypt"), KC_POLICY_NONE);
	/* the account root itself is named directly */
	CHECK_EFFECT(eval(policy, ROOT, "kms:Decrypt"), KC_POLICY_ALLOW);
	/* kms:* does not cover other services */
	CHECK_EFFECT(eval(policy, BOB, "s3:GetObject"), KC_POLICY_NONE);
	/* no principal at all: nobody's account */
	CHECK_EFFECT(eval(policy, NULL, "kms:Decrypt"), KC_POLICY_NONE);
	kc_policy_free(policy);
}

/* ---- principals ------------------------------------------------------------------------ */

static void test_direct_principal(void)
{
	struct kc_policy *policy = PARSE_OK(POLICY(
		"{\"Sid\":\"bob\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" BOB "\"},"
		"\"Action\":\"kms:Decrypt\",\"Resource\":\"*\"}"));

	CHECK_EFFECT(eval(policy, BOB, "kms:Decrypt"), KC_POLICY_ALLOW);
	CHECK_EFFECT(eval(policy, ALICE, "kms:Decrypt"), KC_POLICY_NONE);
	CHECK_EFFECT(eval(policy, BOB, "kms:Encrypt"), KC_POLICY_NONE);
	kc_policy_free(policy);
}

static void test_principal_forms(void)
{
	struct kc_policy *policy = PARSE_OK(POLICY(
		"{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":[\"" ALICE "\",\"" OTHER_ACCOUNT "\"]},"
		"\"Action\":\"kms:Decrypt\",\"Resource\":\"*\"}"));

	CHECK_EFFECT(eval(policy, ALICE, "kms:Decrypt"), KC_POLICY_ALLOW);
	/* a bare account id is that account's root: delegation to its IAM */
	CHECK_EFFECT(eval(policy, MALLORY, "kms:Decrypt"), KC_POLICY_ALLOW_ACCOUNT);
	CHECK_EFFECT(eval(policy, BOB, "kms:Decrypt"), KC_POLICY_NONE);
	kc_policy_free(policy);

	policy = PARSE_OK(POLICY("{\"Effect\":\"Allow\",\"Principal\":\"*\","
		"\"Action\":\"kms:Encrypt\",\"Resource\":\"*\"}"));
	CHECK_EFFECT(eval(policy, MALLORY, "kms:Encrypt"), KC_POLICY_ALLOW);
	CHECK_EFFECT(eval(policy, NULL, "kms:Encrypt"), KC_POLICY_ALLOW);
	kc_policy_free(policy);

	policy = PARSE_OK(POLICY("{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"*\"},"
		"\"Action\":\"kms:Encrypt\",\"Resource\":\"*\"}"));
	CHECK_EFFECT(eval(policy, BOB, "kms:Encrypt"), KC_POLICY_ALLOW);
	kc_policy_free(policy);
}

static void test_caller_account_given(void)
{
	struct kc_policy *policy = PARSE_OK(POLICY(ALLOW_ACCOUNT_ALL));
	struct kc_policy_request req = request("uid:1000", "kms:Decrypt", NULL);

	/* a principal that is not an ARN: the account comes from the request */
	CHECK_EFFECT(kc_policy_eval(policy, &req), KC_POLICY_NONE);
	req.caller_account = ACCOUNT;
	CHECK_EFFECT(kc_policy_eval(policy, &req), KC_POLICY_ALLOW_ACCOUNT);
	kc_policy_free(policy);
}

static void test_assumed_role(void)
{
	struct kc_policy *policy = PARSE_OK(POLICY(
		"{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"arn:aws:iam::" ACCOUNT ":role/ops/Admin\"},"
		"\"Action\":\"kms:*\",\"Resource\":\"*\"}"));

	CHECK_EFFECT(eval(policy, "arn:aws:sts::" ACCOUNT ":assumed-role/Admin/session-1",
			"kms:Decrypt"), KC_POLICY_ALLOW);
	CHECK_EFFECT(eval(policy, "arn:aws:sts::" ACCOUNT ":assumed-role/Admins/session-1",
			"kms:Decrypt"), KC_POLICY_NONE);
	CHECK_EFFECT(eval(policy, "arn:aws:sts::" OTHER_ACCOUNT ":assumed-role/Admin/session-1",
			"kms:Decrypt"), KC_POLICY_NONE);
	kc_policy_free(policy);
}

/* ---- Deny ------------------------------------------------------------------------------- */

static void test_deny_beats_allow(void)
{
	static const char *const orders[] = {
		POLICY(ALLOW_ACCOUNT_ALL ","
			"{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" BOB "\"},\"Action\":\"kms:*\",\"Resource\":\"*\"},"
			"{\"Effect\":\"Deny\",\"Principal\":{\"AWS\":\"" BOB "\"},\"Action\":\"kms:Decrypt\",\"Resource\":\"*\"}"),
		POLICY("{\"Effect\":\"Deny\",\"Principal\":{\"AWS\":\"" BOB "\"},\"Action\":\"kms:Decrypt\",\"Resource\":\"*\"},"
			"{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" BOB "\"},\"Action\":\"kms:*\",\"Resource\":\"*\"},"
			ALLOW_ACCOUNT_ALL),
	};
	struct kc_policy *policy;
	size_t i;

	for (i = 0; i < sizeof orders / sizeof orders[0]; i++) {
		policy = PARSE_OK(orders[i]);
		CHECK_EFFECT(eval(policy, BOB, "kms:Decrypt"), KC_POLICY_DENY);
		CHECK_EFFECT(eval(policy, BOB, "kms:Encrypt"), KC_POLICY_ALLOW);
		CHECK_EFFECT(eval(policy, ALICE, "kms:Decrypt"), KC_POLICY_ALLOW_ACCOUNT);
		kc_policy_free(policy);
	}
}

static void test_deny_account_root(void)
{
	struct kc_policy *policy = PARSE_OK(POLICY(
		"{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kms:*\",\"Resource\":\"*\"},"
		"{\"Effect\":\"Deny\",\"Principal\":{\"AWS\":\"" ACCOUNT "\"},"
		"\"Action\":\"kms:ScheduleKeyDeletion\",\"Resource\":\"*\"}"));

	/* a Deny naming the account covers everyone in it, root included */
	CHECK_EFFECT(eval(policy, ALICE, "kms:ScheduleKeyDeletion"), KC_POLICY_DENY);
	CHECK_EFFECT(eval(policy, ROOT, "kms:ScheduleKeyDeletion"), KC_POLICY_DENY);
	CHECK_EFFECT(eval(policy, MALLORY, "kms:ScheduleKeyDeletion"), KC_POLICY_ALLOW);
	CHECK_EFFECT(eval(policy, ALICE, "kms:Decrypt"), KC_POLICY_ALLOW);
	kc_policy_free(policy);
}

/* ---- actions and resources ---------------------------------------------------------- */

static void test_action_match(void)
{
	CHECK(kc_action_match("kms:Gen*", "kms:GenerateDataKey"));
	CHECK(kc_action_match("kms:Gen*", "kms:GenerateDataKeyWithoutPlaintext"));
	CHECK(!kc_action_match("kms:Gen*", "kms:Decrypt"));
	CHECK(kc_action_match("kms:*", "kms:Decrypt"));
	CHECK(!kc_action_match("kms:*", "s3:GetObject"));
	CHECK(kc_action_match("*", "s3:GetObject"));
	CHECK(kc_action_match("kms:Decrypt", "kms:DECRYPT"));
	CHECK(kc_action_match("KMS:decrypt", "kms:Decrypt"));
	CHECK(!kc_action_match("kms:Decrypt", "kms:DecryptX"));
	CHECK(!kc_action_match("kms:Decrypt", "kms:Decryp"));
	CHECK(kc_action_match("kms:Describe?ey", "kms:DescribeKey"));
	CHECK(!kc_action_match("kms:Describe?ey", "kms:DescribeKKey"));
	CHECK(!kc_action_match("kms:Describe?ey", "kms:Describeey"));
	CHECK(kc_action_match("kms:*Key", "kms:DescribeKey"));
	CHECK(!kc_action_match("kms:*Key", "kms:DescribeKeys"));
	CHECK(kc_action_match("kms:*Data*Key*", "kms:GenerateDataKeyPair"));
	CHECK(kc_action_match("kms:*a*b", "kms:xaxxab"));   /* needs backtracking */
	CHECK(!kc_action_match("kms:*a*b", "kms:xaxxa"));
	CHECK(kc_action_match("kms:**", "kms:"));
	CHECK(!kc_action_match(NULL, "kms:Decrypt"));
	CHECK(!kc_action_match("kms:*", NULL));
	/* '?' is one character, not one byte */
	CHECK(kc_wildcard_match("caf?", "caf\xc3\xa9", 0));
	CHECK(!kc_wildcard_match("caf??", "caf\xc3\xa9", 0));
}

static void test_action_patterns_in_policy(void)
{
	struct kc_policy *policy = PARSE_OK(POLICY(
		"{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" BOB "\"},"
		"\"Action\":[\"kms:Gen*\",\"kms:DECRYPT\",\"kms:Describe?ey\"],\"Resource\":\"*\"}"));

	CHECK_EFFECT(eval(policy, BOB, "kms:GenerateDataKey"), KC_POLICY_ALLOW);
	CHECK_EFFECT(eval(policy, BOB, "kms:GenerateDataKeyWithoutPlaintext"), KC_POLICY_ALLOW);
	CHECK_EFFECT(eval(policy, BOB, "kms:Decrypt"), KC_POLICY_ALLOW);
	CHECK_EFFECT(eval(policy, BOB, "kms:describekey"), KC_POLICY_ALLOW);
	CHECK_EFFECT(eval(policy, BOB, "kms:Encrypt"), KC_POLICY_NONE);
	CHECK_EFFECT(eval(policy, BOB, "kms:ReEncryptFrom"), KC_POLICY_NONE);
	kc_policy_free(policy);
}

static void test_not_action(void)
{
	struct kc_policy *policy = PARSE_OK(POLICY(
		"{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" BOB "\"},"
		"\"NotAction\":[\"kms:ScheduleKeyDeletion\",\"kms:Put*\"],\"Resource\":\"*\"}"));

	CHECK_EFFECT(eval(policy, BOB, "kms:Decrypt"), KC_POLICY_ALLOW);
	CHECK_EFFECT(eval(policy, BOB, "kms:ScheduleKeyDeletion"), KC_POLICY_NONE);
	CHECK_EFFECT(eval(policy, BOB, "kms:PutKeyPolicy"), KC_POLICY_NONE);
	kc_policy_free(policy);

	policy = PARSE_OK(POLICY(ALLOW_ACCOUNT_ALL ","
		"{\"Effect\":\"Deny\",\"Principal\":\"*\",\"NotAction\":\"kms:Decrypt\",\"Resource\":\"*\"}"));
	CHECK_EFFECT(eval(policy, BOB, "kms:Decrypt"), KC_POLICY_ALLOW_ACCOUNT);
	CHECK_EFFECT(eval(policy, BOB, "kms:Encrypt"), KC_POLICY_DENY);
	kc_policy_free(policy);
}

static void test_resources(void)
{
	struct kc_policy *policy = PARSE_OK(POLICY(
		"{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" BOB "\"},"
		"\"Action\":\"kms:*\",\"Resource\":\"" OTHER_KEY_ARN "\"}"));
	struct kc_policy_request req = request(BOB, "kms:Decrypt", NULL);

	CHECK_EFFECT(kc_policy_eval(policy, &req), KC_POLICY_NONE);
	req.resource = OTHER_KEY_ARN;
	CHECK_EFFECT(kc_policy_eval(policy, &req), KC_POLICY_ALLOW);
	req.resource = NULL;   /* an account-level action: only "*" covers it */
	CHECK_EFFECT(kc_policy_eval(policy, &req), KC_POLICY_NONE);
	kc_policy_free(policy);

	policy = PARSE_OK(POLICY(
		"{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" BOB "\"},"
		"\"Action\":\"kms:*\",\"Resource\":\"arn:aws:kms:*:" ACCOUNT ":key/*\"}"));
	req.resource = KEY_ARN;
	CHECK_EFFECT(kc_policy_eval(policy, &req), KC_POLICY_ALLOW);
	req.resource = "arn:aws:kms:us-east-1:" OTHER_ACCOUNT ":key/x";
	CHECK_EFFECT(kc_policy_eval(policy, &req), KC_POLICY_NONE);
	/* ARNs are case-sensitive */
	req.resource = "ARN:AWS:KMS:us-east-1:" ACCOUNT ":KEY/x";
	CHECK_EFFECT(kc_policy_eval(policy, &req), KC_POLICY_NONE);
	kc_policy_free(policy);

	policy = PARSE_OK(POLICY(
		"{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" BOB "\"},"
		"\"Action\":\"kms:*\",\"NotResource\":\"" OTHER_KEY_ARN "\"}"));
	req.resource = KEY_ARN;
	CHECK_EFFECT(kc_policy_eval(policy, &req), KC_POLICY_ALLOW);
	req.resource = OTHER_KEY_ARN;
	CHECK_EFFECT(kc_policy_eval(policy, &req), KC_POLICY_NONE);
	kc_policy_free(policy);

	policy = PARSE_OK(POLICY(ALLOW_ACCOUNT_ALL));
	req.resource = NULL;
	CHECK_EFFECT(kc_policy_eval(policy, &req), KC_POLICY_ALLOW_ACCOUNT);
	kc_policy_free(policy);
}

/* ---- conditions ---------------------------------------------------------------------- */

/*
 * 1 when "Allow bob kms:* if <condition>" allows req (bob is filled in
 * unless req names a principal), 0 when not, -1 when the policy was
 * rejected (reported).
 */
static int condition_allows(const char *condition, struct kc_policy_request req, int line)
{
	char text[4096];
	struct kc_policy *policy;
	enum kc_policy_effect effect;

	snprintf(text, sizeof text, POLICY(
		"{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" BOB "\"},"
		"\"Action\":\"kms:*\",\"Resource\":\"*\",\"Condition\":%s}"), condition);
	policy = parse_ok(text, line);
	if (!policy)
		return -1;
	if (!req.principal)
		req.principal = BOB;
	if (!req.action)
		req.action = "kms:Decrypt";
	effect = kc_policy_eval(policy, &req);
	kc_policy_free(policy);
	return effect == KC_POLICY_ALLOW;
}

#define ALLOWS(cond, req) (condition_allows((cond), (req), __LINE__) == 1)
#define REFUSES(cond, req) (condition_allows((cond), (req), __LINE__) == 0)

/* A request carrying only an encryption context. */
static struct kc_policy_request with_ctx(const struct kc_context *ctx)
{
	struct kc_policy_request req = { .resource = KEY_ARN, .ctx = ctx };
	return req;
}

static void test_string_equals(void)
{
	static const char cond[] = "{\"StringEquals\":{\"kms:EncryptionContext:Department\":\"IT\"}}";
	struct kc_context it = context2("Department", "IT", NULL, NULL);
	struct kc_context lower = context2("Department", "it", NULL, NULL);
	struct kc_context key_case = context2("department", "IT", NULL, NULL);
	struct kc_context other = context2("Project", "IT", NULL, NULL);

	CHECK(ALLOWS(cond, with_ctx(&it)));
	CHECK(REFUSES(cond, with_ctx(&lower)));
	/* the context key inside the condition key is case-insensitive (KMS guide) */
	CHECK(ALLOWS(cond, with_ctx(&key_case)));
	CHECK(REFUSES(cond, with_ctx(&other)));
	CHECK(REFUSES(cond, with_ctx(NULL)));
	/* condition key names are case-insensitive */
	CHECK(ALLOWS("{\"StringEquals\":{\"KMS:ENCRYPTIONCONTEXT:Department\":\"IT\"}}", with_ctx(&it)));
	/* several values OR */
	CHECK(ALLOWS("{\"StringEquals\":{\"kms:EncryptionContext:Department\":[\"HR\",\"IT\"]}}",
			with_ctx(&it)));
}

static void test_string_not_equals(void)
{
	static const char cond[] = "{\"StringNotEquals\":{\"kms:EncryptionContext:Department\":[\"IT\",\"HR\"]}}";
	struct kc_context it = context2("Department", "IT", NULL, NULL);
	struct kc_context ops = context2("Department", "Ops", NULL, NULL);

	CHECK(REFUSES(cond, with_ctx(&it)));
	CHECK(ALLOWS(cond, with_ctx(&ops)));
	/* absent key: Not operators match (IAM) */
	CHECK(ALLOWS(cond, with_ctx(NULL)));
}

static void test_ignore_case(void)
{
	struct kc_context it = context2("Department", "It", NULL, NULL);

	CHECK(ALLOWS("{\"StringEqualsIgnoreCase\":{\"kms:EncryptionContext:Department\":\"iT\"}}",
			with_ctx(&it)));
	CHECK(REFUSES("{\"StringEqualsIgnoreCase\":{\"kms:EncryptionContext:Department\":\"HR\"}}",
			with_ctx(&it)));
	CHECK(REFUSES("{\"StringNotEqualsIgnoreCase\":{\"kms:EncryptionContext:Department\":\"IT\"}}",
			with_ctx(&it)));
	CHECK(ALLOWS("{\"StringNotEqualsIgnoreCase\":{\"kms:EncryptionContext:Department\":\"HR\"}}",
			with_ctx(&it)));
	CHECK(REFUSES("{\"StringEqualsIgnoreCase\":{\"kms:EncryptionContext:Department\":\"IT\"}}",
			with_ctx(NULL)));
}

static void test_string_like(void)
{
	static const char like[] = "{\"StringLike\":{\"kms:EncryptionContext:app\":\"web-?\?-*\"}}";
	static const char not_like[] = "{\"StringNotLike\":{\"kms:EncryptionContext:app\":\"web-*\"}}";
	struct kc_context good = context2("app", "web-42-frontend", NULL, NULL);
	struct kc_context short_id = context2("app", "web-4-frontend", NULL, NULL);
	struct kc_context upper = context2("app", "WEB-42-frontend", NULL, NULL);
	struct kc_context db = context2("app", "db-1", NULL, NULL);

	CHECK(ALLOWS(like, with_ctx(&good)));
	CHECK(REFUSES(like, with_ctx(&short_id)));
	CHECK(REFUSES(like, with_ctx(&upper)));   /* StringLike is case-sensitive */
	CHECK(REFUSES(like, with_ctx(NULL)));
	CHECK(REFUSES(not_like, with_ctx(&good)));
	CHECK(ALLOWS(not_like, with_ctx(&db)));
	CHECK(ALLOWS(not_like, with_ctx(NULL)));
}

static void test_if_exists(void)
{
	static const char cond[] = "{\"StringEqualsIfExists\":{\"kms:EncryptionContext:Department\":\"IT\"}}";
	struct kc_context it = context2("Department", "IT", NULL, NULL);
	struct kc_context hr = context2("Department", "HR", NULL, NULL);

	CHECK(ALLOWS(cond, with_ctx(NULL)));
	CHECK(ALLOWS(cond, with_ctx(&it)));
	CHECK(REFUSES(cond, with_ctx(&hr)));
}

static void test_bool(void)
{
	struct kc_policy_request grant = { .action = "kms:CreateGrant", .grant_for_aws_resource = 1 };
	static const char *const forms[] = {
		"{\"Bool\":{\"kms:GrantIsForAWSResource\":true}}",
		"{\"Bool\":{\"kms:GrantIsForAWSResource\":\"true\"}}",
		"{\"Bool\":{\"kms:GrantIsForAWSResource\":\"True\"}}",
	};
	size_t i;

	for (i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		grant.action = "kms:CreateGrant";
		grant.grant_for_aws_resource = 1;
		CHECK(ALLOWS(forms[i], grant));
		grant.grant_for_aws_resource = 0;
		CHECK(REFUSES(forms[i], grant));
		/* the key exists only for CreateGrant */
		grant.action = "kms:Decrypt";
		grant.grant_for_aws_resource = 1;
		CHECK(REFUSES(forms[i], grant));
	}
	grant.action = "kms:CreateGrant";
	grant.grant_for_aws_resource = 0;
	CHECK(ALLOWS("{\"Bool\":{\"kms:GrantIsForAWSResource\":false}}", grant));
}

static void test_null(void)
{
	struct kc_context ctx = context2("a", "1", NULL, NULL);
	struct kc_context empty = { 0 };

	CHECK(ALLOWS("{\"Null\":{\"kms:EncryptionContextKeys\":\"false\"}}", with_ctx(&ctx)));
	CHECK(REFUSES("{\"Null\":{\"kms:EncryptionContextKeys\":false}}", with_ctx(NULL)));
	CHECK(REFUSES("{\"Null\":{\"kms:EncryptionContextKeys\":false}}", with_ctx(&empty)));
	CHECK(ALLOWS("{\"Null\":{\"kms:EncryptionContextKeys\":true}}", with_ctx(NULL)));
	CHECK(REFUSES("{\"Null\":{\"kms:EncryptionContextKeys\":true}}", with_ctx(&ctx)));
}

static void test_context_keys_sets(void)
{
	static const char any[] = "{\"ForAnyValue:StringEquals\":{\"kms:EncryptionContextKeys\":[\"a\",\"b\"]}}";
	static const char all[] = "{\"ForAllValues:StringEquals\":{\"kms:EncryptionContextKeys\":[\"a\",\"b\"]}}";
	static const char all_not[] = "{\"ForAllValues:StringNotEquals\":{\"kms:EncryptionContextKeys\":\"secret\"}}";
	static const char any_not[] = "{\"ForAnyValue:StringNotEquals\":{\"kms:EncryptionContextKeys\":\"a\"}}";
	static const char plain[] = "{\"StringEquals\":{\"kms:EncryptionContextKeys\":\"a\"}}";
	struct kc_context a = context2("a", "1", NULL, NULL);
	struct kc_context ab = context2("a", "1", "b", "2");
	struct kc_context ac = context2("a", "1", "c", "3");
	struct kc_context c = context2("c", "3", NULL, NULL);
	struct kc_context a_secret = context2("a", "1", "secret", "x");
	struct kc_context upper_a = context2("A", "1", NULL, NULL);

	CHECK(ALLOWS(any, with_ctx(&a)));
	CHECK(ALLOWS(any, with_ctx(&ac)));
	CHECK(REFUSES(any, with_ctx(&c)));
	CHECK(REFUSES(any, with_ctx(NULL)));      /* ForAnyValue: absent is false */
	CHECK(ALLOWS(all, with_ctx(&ab)));
	CHECK(REFUSES(all, with_ctx(&ac)));
	CHECK(ALLOWS(all, with_ctx(NULL)));       /* ForAllValues: absent is true */
	CHECK(ALLOWS(all_not, with_ctx(&ac)));
	CHECK(REFUSES(all_not, with_ctx(&a_secret)));
	CHECK(ALLOWS(any_not, with_ctx(&ac)));
	CHECK(REFUSES(any_not, with_ctx(&a)));
	CHECK(REFUSES(any_not, with_ctx(NULL)));
	CHECK(ALLOWS(plain, with_ctx(&ab)));
	/* the keys as values: case-sensitive under StringEquals */
	CHECK(REFUSES(plain, with_ctx(&upper_a)));
	CHECK(ALLOWS("{\"StringEqualsIgnoreCase\":{\"kms:EncryptionContextKeys\":\"a\"}}",
			with_ctx(&upper_a)));
}

static void test_context_value_sets(void)
{
	static const char any_like[] = "{\"ForAnyValue:StringLike\":{\"kms:EncryptionContext:k\":\"x-*\"}}";
	static const char all_eq[] = "{\"ForAllValues:StringEquals\":{\"kms:EncryptionContext:k\":[\"v1\",\"v2\"]}}";
	struct kc_context x1 = context2("k", "x-1", NULL, NULL);
	struct kc_context y1 = context2("k", "y-1", NULL, NULL);
	struct kc_context v1 = context2("k", "v1", "other", "zzz");
	struct kc_context v3 = context2("k", "v3", NULL, NULL);

	CHECK(ALLOWS(any_like, with_ctx(&x1)));
	CHECK(REFUSES(any_like, with_ctx(&y1)));
	CHECK(REFUSES(any_like, with_ctx(NULL)));
	CHECK(ALLOWS(all_eq, with_ctx(&v1)));    /* other keys are not k's values */
	CHECK(REFUSES(all_eq, with_ctx(&v3)));
	CHECK(ALLOWS(all_eq, with_ctx(NULL)));
}

static void test_caller_keys(void)
{
	struct kc_policy_request req = { .resource = KEY_ARN };

	CHECK(ALLOWS("{\"StringEquals\":{\"kms:CallerAccount\":\"" ACCOUNT "\"}}", req));
	CHECK(ALLOWS("{\"StringEquals\":{\"kms:CallerAccount\":" ACCOUNT "}}", req));   /* a JSON number */
	CHECK(ALLOWS("{\"StringEquals\":{\"aws:PrincipalAccount\":\"" ACCOUNT "\"}}", req));
	CHECK(REFUSES("{\"StringEquals\":{\"kms:CallerAccount\":\"" OTHER_ACCOUNT "\"}}", req));
	req.caller_account = OTHER_ACCOUNT;   /* given explicitly, it wins over the ARN */
	CHECK(ALLOWS("{\"StringEquals\":{\"kms:CallerAccount\":\"" OTHER_ACCOUNT "\"}}", req));
	req.caller_account = NULL;

	CHECK(ALLOWS("{\"ArnLike\":{\"aws:PrincipalArn\":\"arn:aws:iam::" ACCOUNT ":user/b*\"}}", req));
	CHECK(ALLOWS("{\"ArnEquals\":{\"aws:PrincipalArn\":\"" BOB "\"}}", req));
	CHECK(REFUSES("{\"ArnNotLike\":{\"aws:PrincipalArn\":\"arn:aws:iam::*:user/bob\"}}", req));
	CHECK(ALLOWS("{\"ArnNotEquals\":{\"aws:PrincipalArn\":\"" ALICE "\"}}", req));
	CHECK(ALLOWS("{\"StringLike\":{\"aws:principalarn\":\"*:user/bob\"}}", req));
	CHECK(REFUSES("{\"StringLike\":{\"aws:PrincipalArn\":\"*:user/alice\"}}", req));
}

static void test_via_service(void)
{
	static const char via_ec2[] = "{\"StringEquals\":{\"kms:ViaService\":\"ec2.us-east-1.amazonaws.com\"}}";
	static const char not_via[] = "{\"StringNotEquals\":{\"kms:ViaService\":\"ec2.us-east-1.amazonaws.com\"}}";
	struct kc_policy_request req = { .resource = KEY_ARN };

	CHECK(REFUSES(via_ec2, req));          /* direct call: no kms:ViaService */
	CHECK(ALLOWS(not_via, req));
	req.via_service = "ec2.us-east-1.amazonaws.com";
	CHECK(ALLOWS(via_ec2, req));
	CHECK(REFUSES(not_via, req));
	req.via_service = "s3.us-east-1.amazonaws.com";
	CHECK(REFUSES(via_ec2, req));
	CHECK(ALLOWS("{\"StringLike\":{\"kms:ViaService\":\"*.amazonaws.com\"}}", req));
}

static void test_grant_operations_key(void)
{
	static const char only_encrypt[] =
		"{\"ForAllValues:StringEquals\":{\"kms:GrantOperations\":[\"Encrypt\",\"ReEncryptTo\"]}}";
	static const char any_decrypt[] = "{\"ForAnyValue:StringEquals\":{\"kms:GrantOperations\":\"Decrypt\"}}";
	static const char *const encrypt[] = { "Encrypt" };
	static const char *const encrypt_decrypt[] = { "Encrypt", "Decrypt" };
	struct kc_policy_request req = { .action = "kms:CreateGrant", .resource = KEY_ARN };

	req.grant_operations = encrypt;
	req.grant_operation_count = 1;
	CHECK(ALLOWS(only_encrypt, req));
	CHECK(REFUSES(any_decrypt, req));
	req.grant_operations = encrypt_decrypt;
	req.grant_operation_count = 2;
	CHECK(REFUSES(only_encrypt, req));
	CHECK(ALLOWS(any_decrypt, req));
	req.grant_operations = NULL;
	req.grant_operation_count = 0;
	CHECK(REFUSES(any_decrypt, req));
}

static void test_condition_logic(void)
{
	struct kc_context it_app = context2("Department", "IT", "App", "web");
	struct kc_context it_db = context2("Department", "IT", "App", "db");
	struct kc_policy_request req = with_ctx(&it_app);

	/* keys within an operator AND */
	CHECK(ALLOWS("{\"StringEquals\":{\"kms:EncryptionContext:Department\":\"IT\","
			"\"kms:EncryptionContext:App\":\"web\"}}", req));
	CHECK(REFUSES("{\"StringEquals\":{\"kms:EncryptionContext:Department\":\"IT\","
			"\"kms:EncryptionContext:App\":\"db\"}}", req));
	/* operators AND */
	CHECK(ALLOWS("{\"StringEquals\":{\"kms:EncryptionContext:Department\":\"IT\"},"
			"\"StringLike\":{\"kms:EncryptionContext:App\":\"w*\"}}", req));
	req.ctx = &it_db;
	CHECK(REFUSES("{\"StringEquals\":{\"kms:EncryptionContext:Department\":\"IT\"},"
			"\"StringLike\":{\"kms:EncryptionContext:App\":\"w*\"}}", req));
	/* keys kmsfs does not know are accepted and never present */
	CHECK(REFUSES("{\"StringEquals\":{\"kms:KeySpec\":\"SYMMETRIC_DEFAULT\"}}", req));
	CHECK(ALLOWS("{\"StringNotEquals\":{\"aws:SourceVpce\":\"vpce-1\"}}", req));
	/* an empty Condition is no condition */
	CHECK(ALLOWS("{}", req));
}

static void test_deny_with_condition(void)
{
	struct kc_policy *policy = PARSE_OK(POLICY(ALLOW_ACCOUNT_ALL ","
		"{\"Effect\":\"Deny\",\"Principal\":\"*\",\"Action\":\"kms:Decrypt\",\"Resource\":\"*\","
		"\"Condition\":{\"StringNotEquals\":{\"kms:EncryptionContext:Department\":\"IT\"}}}"));
	struct kc_context it = context2("Department", "IT", NULL, NULL);
	struct kc_context hr = context2("Department", "HR", NULL, NULL);
	struct kc_policy_request req = request(BOB, "kms:Decrypt", &it);

	CHECK_EFFECT(kc_policy_eval(policy, &req), KC_POLICY_ALLOW_ACCOUNT);
	req.ctx = &hr;
	CHECK_EFFECT(kc_policy_eval(policy, &req), KC_POLICY_DENY);
	req.ctx = NULL;   /* no context: the Not operator matches, so the Deny applies */
	CHECK_EFFECT(kc_policy_eval(policy, &req), KC_POLICY_DENY);
	req.action = "kms:Encrypt";
	CHECK_EFFECT(kc_policy_eval(policy, &req), KC_POLICY_ALLOW_ACCOUNT);
	kc_policy_free(policy);
}

/* ---- malformed documents ---------------------------------------------------------------- */

#define STMT(body) POLICY("{" body "}")
#define BOB_PRINCIPAL "\"Principal\":{\"AWS\":\"" BOB "\"}"
#define ALLOW_BOB "\"Effect\":\"Allow\"," BOB_PRINCIPAL
#define ALL_KEYS ",\"Action\":\"kms:*\",\"Resource\":\"*\""

static const struct {
	const char *text;
	const char *says;     /* a word the message must contain */
} malformed_policies[] = {
	{ "", "empty" },
	{ "not json", "JSON" },
	{ "{\"Version\":\"2012-10-17\",\"Statement\":[", "JSON" },
	{ "[]", "object" },
	{ "{\"Version\":\"2012-10-17\"}", "Statement" },
	{ "{\"Statement\":[]}", "empty" },
	{ "{\"Statement\":\"Allow\"}", "Statement" },
	{ "{\"Statement\":[42]}", "not an object" },
	{ "{\"Version\":\"2020-01-01\",\"Statement\":{" ALLOW_BOB ALL_KEYS "}}", "Version" },
	{ "{\"Statement\":{" ALLOW_BOB ALL_KEYS "},\"Extra\":1}", "Extra" },
	{ "{\"Id\":7,\"Statement\":{" ALLOW_BOB ALL_KEYS "}}", "Id" },
	{ STMT("\"Effect\":\"allow\"," BOB_PRINCIPAL ALL_KEYS), "Effect" },
	{ STMT(BOB_PRINCIPAL ALL_KEYS), "Effect" },
	{ STMT("\"Effect\":\"Allow\"" ALL_KEYS), "Principal" },
	{ STMT("\"Effect\":\"Allow\",\"Principal\":\"bob\"" ALL_KEYS), "Principal" },
	{ STMT("\"Effect\":\"Allow\",\"Principal\":{}" ALL_KEYS), "Principal" },
	{ STMT("\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"arn:aws:iam::12:user/x\"}" ALL_KEYS), "Principal" },
	{ STMT("\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"bob\"}" ALL_KEYS), "Principal" },
	{ STMT("\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"arn:aws:iam::" ACCOUNT ":user/*\"}" ALL_KEYS),
		"wildcard" },
	{ STMT("\"Effect\":\"Allow\",\"Principal\":{\"Federated\":\"cognito\"}" ALL_KEYS), "Federated" },
	{ STMT("\"Effect\":\"Allow\",\"NotPrincipal\":{\"AWS\":\"" BOB "\"}" ALL_KEYS), "NotPrincipal" },
	{ STMT(ALLOW_BOB ",\"Resource\":\"*\""), "Action" },
	{ STMT(ALLOW_BOB ",\"Action\":\"kms:*\",\"NotAction\":\"kms:Decrypt\",\"Resource\":\"*\""), "NotAction" },
	{ STMT(ALLOW_BOB ",\"Action\":\"Decrypt\",\"Resource\":\"*\""), "Decrypt" },
	{ STMT(ALLOW_BOB ",\"Action\":[],\"Resource\":\"*\""), "empty" },
	{ STMT(ALLOW_BOB ",\"Action\":[7],\"Resource\":\"*\""), "strings" },
	{ STMT(ALLOW_BOB ",\"Action\":\"kms:*\""), "Resource" },
	{ STMT(ALLOW_BOB ",\"Action\":\"kms:*\",\"Resource\":\"key/1\""), "ARN" },
	{ STMT(ALLOW_BOB ALL_KEYS ",\"Effects\":\"Allow\""), "Effects" },
	{ STMT(ALLOW_BOB ALL_KEYS ",\"Sid\":5"), "Sid" },
	{ STMT(ALLOW_BOB ALL_KEYS ",\"Condition\":[]"), "Condition" },
	{ STMT(ALLOW_BOB ALL_KEYS ",\"Condition\":{\"StringSortOf\":{\"kms:ViaService\":\"x\"}}"),
		"StringSortOf" },
	{ STMT(ALLOW_BOB ALL_KEYS ",\"Condition\":{\"NumericLessThan\":{\"kms:ViaService\":1}}"),
		"not supported" },
	{ STMT(ALLOW_BOB ALL_KEYS ",\"Condition\":{\"ForSomeValues:StringEquals\":{\"kms:ViaService\":\"x\"}}"),
		"ForSomeValues" },
	{ STMT(ALLOW_BOB ALL_KEYS ",\"Condition\":{\"StringEquals\":\"kms:ViaService\"}"), "StringEquals" },
	{ STMT(ALLOW_BOB ALL_KEYS ",\"Condition\":{\"StringEquals\":{}}"), "StringEquals" },
	{ STMT(ALLOW_BOB ALL_KEYS ",\"Condition\":{\"StringEquals\":{\"kms:ViaService\":[]}}"), "empty" },
	{ STMT(ALLOW_BOB ALL_KEYS ",\"Condition\":{\"StringEquals\":{\"kms:ViaService\":null}}"), "values" },
	{ STMT(ALLOW_BOB ALL_KEYS ",\"Condition\":{\"StringEquals\":{\"kms:ViaService\":{\"a\":1}}}"), "values" },
	{ STMT(ALLOW_BOB ALL_KEYS ",\"Condition\":{\"StringEquals\":{\"kms:ViaService\":1.5}}"), "values" },
	{ STMT(ALLOW_BOB ALL_KEYS ",\"Condition\":{\"Bool\":{\"kms:GrantIsForAWSResource\":\"yes\"}}"), "Bool" },
	{ STMT(ALLOW_BOB ALL_KEYS ",\"Condition\":{\"ForAllValues:Null\":{\"kms:ViaService\":true}}"), "Null" },
	{ STMT(ALLOW_BOB ALL_KEYS ",\"Condition\":{\"StringEquals\":{\"kms:EncryptionContext:\":\"x\"}}"),
		"context key" },
	{ POLICY("{\"Sid\":\"s\"," ALLOW_BOB ALL_KEYS "},{\"Sid\":\"s\"," ALLOW_BOB ALL_KEYS "}"), "duplicate" },
	{ STMT(ALLOW_BOB ALL_KEYS ",\"Action\":\"kms:Decrypt\""), "duplicate" },
};

static void test_malformed(void)
{
	struct kc_policy *policy;
	struct kc_error err;
	size_t i;

	for (i = 0; i < sizeof malformed_policies / sizeof malformed_policies[0]; i++) {
		memset(&err, 0, sizeof err);
		policy = (struct kc_policy *)1;
		if (kc_policy_parse(malformed_policies[i].text, &policy, &err) != KC_MALFORMED_POLICY) {
			fprintf(stderr, "%s:%d: accepted malformed policy %zu: %s\n", __FILE__, __LINE__,
					i, malformed_policies[i].text);
			failures++;
			kc_policy_free(policy);
			continue;
		}
		CHECK(policy == NULL);
		CHECK(strcmp(err.type, "MalformedPolicyDocumentException") == 0);
		if (!strcasestr(err.message, malformed_policies[i].says)) {
			fprintf(stderr, "%s:%d: policy %zu: message \"%s\" does not mention \"%s\"\n",
					__FILE__, __LINE__, i, err.message, malformed_policies[i].says);
			failures++;
		}
	}
	memset(&err, 0, sizeof err);
	CHECK(kc_policy_parse(NULL, &policy, &err) == KC_MALFORMED_POLICY);
}

/* A valid policy padded with spaces to exactly size bytes. */
static char *padded_policy(size_t size)
{
	static const char body[] = POLICY(ALLOW_ACCOUNT_ALL);
	char *text = malloc(size + 1);

	if (!text)
		return NULL;
	memset(text, ' ', size);
	memcpy(text, body, sizeof body - 1);
	text[size] = '\0';
	return text;
}

static void test_size_limit(void)
{
	char *at_limit = padded_policy(KC_POLICY_MAX_BYTES);
	char *over = padded_policy(KC_POLICY_MAX_BYTES + 1);
	struct kc_policy *policy = NULL;
	struct kc_error err = { 0 };

	CHECK(at_limit && over);
	if (!at_limit || !over)
		goto out;
	CHECK(kc_policy_parse(at_limit, &policy, &err) == KC_OK);
	kc_policy_free(policy);
	policy = NULL;
	CHECK(kc_policy_parse(over, &policy, &err) == KC_MALFORMED_POLICY);
	CHECK(policy == NULL);
	CHECK(strstr(err.message, "32768") != NULL);
out:
	free(at_limit);
	free(over);
}

static void test_message_names_statement(void)
{
	struct kc_policy *policy = NULL;
	struct kc_error err = { 0 };

	CHECK(kc_policy_parse(POLICY(ALLOW_ACCOUNT_ALL ",{\"Sid\":\"second\",\"Effect\":\"Maybe\","
			BOB_PRINCIPAL ALL_KEYS "}"), &policy, &err) == KC_MALFORMED_POLICY);
	CHECK(strstr(err.message, "Statement 2") != NULL);
	CHECK(strstr(err.message, "second") != NULL);
}

static void test_valid_variants(void)
{
	static const char *const valid[] = {
		/* Statement as a single object, no Version, Service principal */
		"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"Service\":\"ec2.amazonaws.com\"},"
			"\"Action\":\"kms:Decrypt\",\"Resource\":\"*\"}}",
		"{\"Version\":\"2008-10-17\",\"Id\":\"x\",\"Statement\":{" ALLOW_BOB ALL_KEYS "}}",
		/* the EBS managed-key statement from the KMS guide */
		POLICY("{\"Sid\":\"Allow access through EBS\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"*\"},"
			"\"Condition\":{\"StringEquals\":{\"kms:CallerAccount\":\"" ACCOUNT "\","
			"\"kms:ViaService\":\"ec2.us-west-2.amazonaws.com\"}},"
			"\"Action\":[\"kms:Encrypt\",\"kms:Decrypt\",\"kms:ReEncrypt*\",\"kms:GenerateDataKey*\","
			"\"kms:CreateGrant\",\"kms:DescribeKey\"],\"Resource\":\"*\"}"),
		STMT(ALLOW_BOB ALL_KEYS ",\"Condition\":{\"forallvalues:stringequalsifexists\":"
			"{\"kms:EncryptionContextKeys\":[\"a\"]}}"),
	};
	struct kc_policy *policy;
	size_t i;

	for (i = 0; i < sizeof valid / sizeof valid[0]; i++) {
		policy = PARSE_OK(valid[i]);
		kc_policy_free(policy);
	}
}

static void test_service_principal(void)
{
	struct kc_policy *policy = PARSE_OK("{\"Statement\":{\"Effect\":\"Allow\","
		"\"Principal\":{\"Service\":[\"ec2.amazonaws.com\"]},\"Action\":\"kms:Decrypt\",\"Resource\":\"*\"}}");

	CHECK_EFFECT(eval(policy, "ec2.amazonaws.com", "kms:Decrypt"), KC_POLICY_ALLOW);
	CHECK_EFFECT(eval(policy, BOB, "kms:Decrypt"), KC_POLICY_NONE);
	kc_policy_free(policy);
}

/* ---- grants ----------------------------------------------------------------------------- */

static struct kc_grant_constraints *constraints_from(const char *text, enum kc_status want)
{
	struct kc_grant_constraints *constraints = (struct kc_grant_constraints *)1;
	struct kc_error err = { 0 };
	json_t *json = json_loads(text, 0, NULL);
	enum kc_status rc;

	if (!json) {
		fprintf(stderr, "test JSON does not parse: %s\n", text);
		failures++;
		return NULL;
	}
	rc = kc_grant_constraints_parse(json, &constraints, &err);
	json_decref(json);
	if (rc != want) {
		fprintf(stderr, "%s: constraints %s gave %s (%s)\n", __func__, text,
				rc == KC_OK ? "KC_OK" : kc_status_type(rc), err.message);
		failures++;
	}
	if (rc != KC_OK) {
		CHECK(constraints == NULL);
		CHECK(strcmp(err.type, "ValidationException") == 0);
		return NULL;
	}
	return constraints;
}

static void test_constraints_subset(void)
{
	struct kc_grant_constraints *c = constraints_from(
		"{\"EncryptionContextSubset\":{\"Department\":\"IT\"}}", KC_OK);
	struct kc_context exact = context2("Department", "IT", NULL, NULL);
	struct kc_context more = context2("Department", "IT", "App", "web");
	struct kc_context key_case = context2("DEPARTMENT", "IT", NULL, NULL);
	struct kc_context value_case = context2("Department", "it", NULL, NULL);
	struct kc_context other = context2("App", "web", NULL, NULL);

	CHECK(c != NULL);
	CHECK(kc_grant_constraints_match(c, &exact));
	CHECK(kc_grant_constraints_match(c, &more));
	CHECK(kc_grant_constraints_match(c, &key_case));   /* keys ignore case (GrantConstraints) */
	CHECK(!kc_grant_constraints_match(c, &value_case));
	CHECK(!kc_grant_constraints_match(c, &other));
	CHECK(!kc_grant_constraints_match(c, NULL));
	kc_grant_constraints_free(c);
}

static void test_constraints_equals(void)
{
	struct kc_grant_constraints *c = constraints_from(
		"{\"EncryptionContextEquals\":{\"a\":\"1\",\"b\":\"2\"}}", KC_OK);
	struct kc_context same = context2("b", "2", "a", "1");
	struct kc_context fewer = context2("a", "1", NULL, NULL);
	struct kc_context more = context2("a", "1", "b", "2");
	struct kc_context wrong = context2("a", "1", "b", "3");

	kc_context_add(&more, "c", "3");
	CHECK(c != NULL);
	CHECK(kc_grant_constraints_match(c, &same));
	CHECK(!kc_grant_constraints_match(c, &fewer));
	CHECK(!kc_grant_constraints_match(c, &more));
	CHECK(!kc_grant_constraints_match(c, &wrong));
	CHECK(!kc_grant_constraints_match(c, NULL));
	kc_grant_constraints_free(c);

	c = constraints_from("{\"EncryptionContextEquals\":{}}", KC_OK);
	CHECK(kc_grant_constraints_match(c, NULL));
	CHECK(!kc_grant_constraints_match(c, &fewer));
	kc_grant_constraints_free(c);
}

static void test_constraints_none_and_invalid(void)
{
	struct kc_grant_constraints *c = (struct kc_grant_constraints *)1;
	struct kc_context any = context2("a", "1", NULL, NULL);
	struct kc_error err = { 0 };
	json_t *null = json_null();

	CHECK(kc_grant_constraints_parse(NULL, &c, &err) == KC_OK && c == NULL);
	CHECK(kc_grant_constraints_parse(null, &c, &err) == KC_OK && c == NULL);
	json_decref(null);
	CHECK(kc_grant_constraints_match(NULL, &any));
	CHECK(kc_grant_constraints_match(NULL, NULL));

	constraints_from("[]", KC_VALIDATION);
	constraints_from("{\"EncryptionContextSubSet\":{\"a\":\"1\"}}", KC_VALIDATION);
	constraints_from("{\"EncryptionContextSubset\":[\"a\"]}", KC_VALIDATION);
	constraints_from("{\"EncryptionContextSubset\":{\"a\":1}}", KC_VALIDATION);
	constraints_from("{\"EncryptionContextEquals\":{\"\":\"1\"}}", KC_VALIDATION);
	constraints_from("{\"EncryptionContextSubset\":{\"k1\":\"v\",\"k2\":\"v\",\"k3\":\"v\",\"k4\":\"v\","
		"\"k5\":\"v\",\"k6\":\"v\",\"k7\":\"v\",\"k8\":\"v\",\"k9\":\"v\",\"k10\":\"v\",\"k11\":\"v\","
		"\"k12\":\"v\",\"k13\":\"v\",\"k14\":\"v\",\"k15\":\"v\",\"k16\":\"v\",\"k17\":\"v\"}}",
		KC_VALIDATION);
}

static enum kc_status operations_from(const char *text, uint32_t *mask)
{
	struct kc_error err = { 0 };
	json_t *json = json_loads(text, JSON_DECODE_ANY, NULL);
	enum kc_status rc;

	rc = kc_grant_operations_parse(json, mask, &err);
	json_decref(json);
	if (rc != KC_OK)
		CHECK(strcmp(err.type, "ValidationException") == 0);
	return rc;
}

static void test_grant_operations(void)
{
	uint32_t mask = 0;
	json_t *names;
	char *text;

	CHECK(operations_from("[\"Decrypt\",\"GenerateDataKey\",\"Decrypt\"]", &mask) == KC_OK);
	CHECK(kc_grant_operations_cover(mask, "kms:Decrypt"));
	CHECK(kc_grant_operations_cover(mask, "kms:GenerateDataKey"));
	CHECK(!kc_grant_operations_cover(mask, "kms:GenerateDataKeyWithoutPlaintext"));
	CHECK(!kc_grant_operations_cover(mask, "kms:Encrypt"));
	CHECK(!kc_grant_operations_cover(mask, "Decrypt"));   /* not an action name */
	CHECK(!kc_grant_operations_cover(mask, NULL));
	names = kc_grant_operations_json(mask);
	text = names ? json_dumps(names, JSON_COMPACT) : NULL;
	CHECK(text && strcmp(text, "[\"Decrypt\",\"GenerateDataKey\"]") == 0);
	free(text);
	json_decref(names);

	CHECK(kc_grant_operation_valid("DeriveSharedSecret"));
	CHECK(kc_grant_operation_valid("ReEncryptFrom"));
	CHECK(!kc_grant_operation_valid("decrypt"));
	CHECK(!kc_grant_operation_valid("ScheduleKeyDeletion"));
	CHECK(!kc_grant_operation_valid(NULL));
	CHECK(operations_from("[\"Decrypt\",\"Fly\"]", &mask) == KC_VALIDATION);
	CHECK(operations_from("[]", &mask) == KC_VALIDATION);
	CHECK(operations_from("\"Decrypt\"", &mask) == KC_VALIDATION);
	CHECK(operations_from("[1]", &mask) == KC_VALIDATION);
}

static void test_grant_permits(void)
{
	struct kc_grant_constraints *c = constraints_from(
		"{\"EncryptionContextSubset\":{\"volume\":\"v1\"}}", KC_OK);
	struct kc_context v1 = context2("volume", "v1", "file", "f");
	struct kc_context v2 = context2("volume", "v2", "file", "f");
	uint32_t mask = 0;

	CHECK(operations_from("[\"Decrypt\",\"DescribeKey\",\"ReEncryptFrom\"]", &mask) == KC_OK);
	CHECK(kc_grant_permits(mask, c, "kms:Decrypt", &v1));
	CHECK(!kc_grant_permits(mask, c, "kms:Decrypt", &v2));
	CHECK(!kc_grant_permits(mask, c, "kms:ReEncryptFrom", &v2));
	/* constraints do not apply to operations without an encryption context */
	CHECK(kc_grant_permits(mask, c, "kms:DescribeKey", &v2));
	CHECK(kc_grant_permits(mask, c, "kms:DescribeKey", NULL));
	CHECK(!kc_grant_permits(mask, c, "kms:Encrypt", &v1));
	CHECK(kc_grant_permits(mask, NULL, "kms:Decrypt", &v2));
	kc_grant_constraints_free(c);
}

/* ---- speed -------------------------------------------------------------------------------- */

/*
 * kmsd checks the key policy on every request (>20k/s): a typical policy
 * should take about a microsecond. The bound here is loose (sanitizer
 * builds are slow); the number is printed for a human to look at.
 */
static void test_eval_speed(void)
{
	struct kc_policy *policy = PARSE_OK(POLICY(ALLOW_ACCOUNT_ALL ","
		"{\"Sid\":\"use\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":[\"" ALICE "\",\"" BOB "\"]},"
		"\"Action\":[\"kms:Encrypt\",\"kms:Decrypt\",\"kms:ReEncrypt*\",\"kms:GenerateDataKey*\"],"
		"\"Resource\":\"*\",\"Condition\":{\"StringEquals\":{\"kms:EncryptionContext:kmsfs:volume\":\"v1\"},"
		"\"ForAllValues:StringLike\":{\"kms:EncryptionContextKeys\":[\"kmsfs:*\"]}}},"
		"{\"Effect\":\"Deny\",\"Principal\":\"*\",\"Action\":\"kms:ScheduleKeyDeletion\",\"Resource\":\"*\"}"));
	struct kc_context ctx = context2("kmsfs:volume", "v1", "kmsfs:file", "0123456789abcdef");
	struct kc_policy_request req = request(BOB, "kms:Decrypt", &ctx);
	const long rounds = 200000;
	struct timespec start, end;
	double ns_per_eval;
	long i, allowed = 0;

	if (!policy)
		return;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (i = 0; i < rounds; i++)
		allowed += kc_policy_eval(policy, &req) == KC_POLICY_ALLOW;
	clock_gettime(CLOCK_MONOTONIC, &end);
	ns_per_eval = ((double)(end.tv_sec - start.tv_sec) * 1e9 +
			(double)(end.tv_nsec - start.tv_nsec)) / (double)rounds;
	printf("policy eval: %.0f ns per request\n", ns_per_eval);
	CHECK(allowed == rounds);
	CHECK(ns_per_eval < 20000.0);
	kc_policy_free(policy);
}

int main(void)
{
	test_default_policy_text();
	test_default_policy_eval();
	test_direct_principal();
	test_principal_forms();
	test_caller_account_given();
	test_assumed_role();
	test_service_principal();
	test_deny_beats_allow();
	test_deny_account_root();
	test_action_match();
	test_action_patterns_in_policy();
	test_not_action();
	test_resources();
	test_string_equals();
	test_string_not_equals();
	test_ignore_case();
	test_string_like();
	test_if_exists();
	test_bool();
	test_null();
	test_context_keys_sets();
	test_context_value_sets();
	test_caller_keys();
	test_via_service();
	test_grant_operations_key();
	test_condition_logic();
	test_deny_with_condition();
	test_malformed();
	test_size_limit();
	test_message_names_statement();
	test_valid_variants();
	test_constraints_subset();
	test_constraints_equals();
	test_constraints_none_and_invalid();
	test_grant_operations();
	test_grant_permits();
	test_eval_speed();
	if (failures) {
		fprintf(stderr, "test_policy: %d check(s) failed\n", failures);
		return 1;
	}
	printf("test_policy: all checks passed\n");
	return 0;
}
