/*
 * test_keyclient_context.c - canonical encryption context, key
 * references, alias names and UUIDs: the pure functions under the engine.
 */
#include "test_keyclient.h"

#include <stdlib.h>
#include <string.h>

/* The embedded engine's ARN space. */
static enum kc_status kc_keyref_parse_local(const char *ref, enum kc_ref_kind *kind,
		char name[KC_ALIAS_MAX + 1], struct kc_error *err)
{
	return kc_keyref_parse(ref, KC_LOCAL_ARN_PREFIX, kind, name, err);
}

static int same_bytes(const struct kc_context *a, const struct kc_context *b)
{
	struct kc_error err = { 0 };
	uint8_t *bytes_a = NULL, *bytes_b = NULL;
	size_t len_a = 0, len_b = 0;
	int same;

	CHECK_STATUS(kc_context_serialize(a, &bytes_a, &len_a, &err), KC_OK, err);
	CHECK_STATUS(kc_context_serialize(b, &bytes_b, &len_b, &err), KC_OK, err);
	same = bytes_a && bytes_b && len_a == len_b && memcmp(bytes_a, bytes_b, len_a) == 0;
	free(bytes_a);
	free(bytes_b);
	return same;
}

static void test_order_independent(void)
{
	struct kc_context ab = { 0 }, ba = { 0 };

	kc_context_add(&ab, "kmsfs:volume", "v1");
	kc_context_add(&ab, "kmsfs:file", "f1");
	kc_context_add(&ab, "z", "last");
	kc_context_add(&ba, "z", "last");
	kc_context_add(&ba, "kmsfs:file", "f1");
	kc_context_add(&ba, "kmsfs:volume", "v1");
	CHECK(same_bytes(&ab, &ba));
}

static void test_no_concatenation_collision(void)
{
	struct kc_context a_bc = { 0 }, ab_c = { 0 };

	kc_context_add(&a_bc, "a", "bc");
	kc_context_add(&ab_c, "ab", "c");
	CHECK(!same_bytes(&a_bc, &ab_c));
}

static void test_exact_bytes(void)
{
	static const uint8_t want[] = { 0, 2, 0, 1, 'a', 0, 1, 'x', 0, 1, 'b', 0, 0 };
	struct kc_context ctx = { 0 };
	struct kc_error err = { 0 };
	uint8_t *bytes = NULL;
	size_t len = 0;

	kc_context_add(&ctx, "b", "");
	kc_context_add(&ctx, "a", "x");
	CHECK_STATUS(kc_context_serialize(&ctx, &bytes, &len, &err), KC_OK, err);
	CHECK(len == sizeof want && bytes && memcmp(bytes, want, len) == 0);
	free(bytes);
	CHECK_STATUS(kc_context_serialize(NULL, &bytes, &len, &err), KC_OK, err);
	CHECK(len == 2 && bytes && bytes[0] == 0 && bytes[1] == 0);
	free(bytes);
}

static void test_rejects(void)
{
	struct kc_context ctx = { 0 };
	struct kc_error err = { 0 };
	uint8_t *bytes = NULL;
	size_t len = 0;

	kc_context_add(&ctx, "k", "1");
	kc_context_add(&ctx, "k", "2");
	CHECK_STATUS(kc_context_serialize(&ctx, &bytes, &len, &err), KC_VALIDATION, err);
	CHECK(strcmp(err.type, "ValidationException") == 0);
	CHECK(strstr(err.message, "duplicate") != NULL);
	CHECK(bytes == NULL);
	memset(&ctx, 0, sizeof ctx);
	kc_context_add(&ctx, "", "v");
	CHECK_STATUS(kc_context_serialize(&ctx, &bytes, &len, &err), KC_VALIDATION, err);
	memset(&ctx, 0, sizeof ctx);
	for (int i = 0; i < KC_MAX_CONTEXT_PAIRS; i++)
		CHECK(kc_context_add(&ctx, "k", "v") == 0);
	CHECK(kc_context_add(&ctx, "k", "v") == -1);
}

static void test_keyrefs(void)
{
	static const char uuid[] = "0f8fad5b-d9cb-469f-a165-70867728950e";
	char name[KC_ALIAS_MAX + 1];
	struct kc_error err = { 0 };
	enum kc_ref_kind kind;

	CHECK_STATUS(kc_keyref_parse_local(uuid, &kind, name, &err), KC_OK, err);
	CHECK(kind == KC_REF_KEY_ID && strcmp(name, uuid) == 0);
	CHECK_STATUS(kc_keyref_parse_local("0F8FAD5B-D9CB-469F-A165-70867728950E", &kind, name, &err), KC_OK, err);
	CHECK(kind == KC_REF_KEY_ID && strcmp(name, uuid) == 0);
	CHECK_STATUS(kc_keyref_parse_local("arn:aws:kms:local:000000000000:key/0f8fad5b-d9cb-469f-a165-70867728950e",
			&kind, name, &err), KC_OK, err);
	CHECK(kind == KC_REF_KEY_ID && strcmp(name, uuid) == 0);
	CHECK_STATUS(kc_keyref_parse_local("alias/home", &kind, name, &err), KC_OK, err);
	CHECK(kind == KC_REF_ALIAS && strcmp(name, "alias/home") == 0);
	CHECK_STATUS(kc_keyref_parse_local("arn:aws:kms:local:000000000000:alias/home", &kind, name, &err), KC_OK, err);
	CHECK(kind == KC_REF_ALIAS && strcmp(name, "alias/home") == 0);
	CHECK_STATUS(kc_keyref_parse_local("arn:aws:kms:us-east-1:111122223333:key/0f8fad5b-d9cb-469f-a165-70867728950e",
			&kind, name, &err), KC_NOT_FOUND, err);
	CHECK_STATUS(kc_keyref_parse_local("arn:aws:kms:local:000000000000:0f8fad5b-d9cb-469f-a165-70867728950e",
			&kind, name, &err), KC_NOT_FOUND, err);
	CHECK_STATUS(kc_keyref_parse_local("not-a-key", &kind, name, &err), KC_NOT_FOUND, err);
	CHECK(strstr(err.message, "not-a-key") != NULL);
}

static void test_alias_names(void)
{
	char long_name[300];
	struct kc_error err = { 0 };

	CHECK_STATUS(kc_alias_name_check("alias/home-dir_2/x", &err), KC_OK, err);
	CHECK_STATUS(kc_alias_name_check("home", &err), KC_INVALID_ALIAS, err);
	CHECK(strcmp(err.type, "InvalidAliasNameException") == 0);
	CHECK_STATUS(kc_alias_name_check("alias/", &err), KC_INVALID_ALIAS, err);
	CHECK_STATUS(kc_alias_name_check("alias/aws/s3", &err), KC_INVALID_ALIAS, err);
	CHECK_STATUS(kc_alias_name_check("alias/with space", &err), KC_INVALID_ALIAS, err);
	CHECK_STATUS(kc_alias_name_check("alias/dot.not", &err), KC_INVALID_ALIAS, err);
	memset(long_name, 'a', sizeof long_name);
	memcpy(long_name, "alias/", 6);
	long_name[257] = '\0';
	CHECK_STATUS(kc_alias_name_check(long_name, &err), KC_INVALID_ALIAS, err);
	long_name[256] = '\0';
	CHECK_STATUS(kc_alias_name_check(long_name, &err), KC_OK, err);
}

static void test_uuids(void)
{
	char text[KC_KEY_ID_LEN + 1], again[KC_KEY_ID_LEN + 1];
	uint8_t raw[KC_UUID_LEN];

	kc_uuid_v4(text);
	CHECK(strlen(text) == KC_KEY_ID_LEN && text[14] == '4');
	CHECK(strchr("89ab", text[19]) != NULL);
	CHECK(kc_uuid_parse(text, raw) == 0);
	kc_uuid_format(raw, again);
	CHECK(strcmp(text, again) == 0);
	CHECK(kc_uuid_parse("0f8fad5b-d9cb-469f-a165-70867728950", raw) == -1);
	CHECK(kc_uuid_parse("0f8fad5b_d9cb-469f-a165-70867728950e", raw) == -1);
	CHECK(kc_uuid_parse("0f8fad5b-d9cb-469f-a165-70867728950g", raw) == -1);
}

static void test_status_types(void)
{
	struct kc_error err = { 0 };

	CHECK(strcmp(kc_status_type(KC_WRONG_PASSPHRASE), "WrongPassphrase") == 0);
	CHECK(strcmp(kc_status_type(KC_INTERNAL), "KMSInternalException") == 0);
	CHECK(strcmp(kc_status_type(KC_INVALID_STATE), "KMSInvalidStateException") == 0);
	CHECK(kc_fail(&err, KC_DISABLED, "key %s", "k1") == KC_DISABLED);
	CHECK(err.status == KC_DISABLED && strcmp(err.type, "DisabledException") == 0);
	CHECK(strcmp(err.message, "key k1") == 0);
	CHECK(kc_fail(NULL, KC_NOT_FOUND, "x") == KC_NOT_FOUND);
}

void test_context_suite(void)
{
	test_order_independent();
	test_no_concatenation_collision();
	test_exact_bytes();
	test_rejects();
	test_keyrefs();
	test_alias_names();
	test_uuids();
	test_status_types();
}
