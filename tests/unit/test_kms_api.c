/*
 * test_kms_api.c - the engine's AWS KMS API (kms_api.h) driven with JSON
 * requests as kmsd hands them over: key lifecycle, aliases, symmetric
 * data operations, deletion windows, rotation, tags, request validation
 * and the CloudTrail projection of requests.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "kms_api_test.h"

/* CreateKey with extra JSON fields; copies the new key id into out. */
static void create_key(const char *extra, char out[64])
{
	EXPECT("CreateKey", KC_OK, "{%s}", extra);
	snprintf(out, 64, "%s", meta_str("KeyId"));
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_create_describe(void)
{
	char key_id[64], arn[160];

	create_key("\"Description\": \"orders\", \"Tags\": [{\"TagKey\": \"team\", \"TagValue\": \"db\"}]",
			key_id);
	CHECK(strlen(key_id) == 36);
	CHECK(strcmp(meta_str("KeyState"), "Enabled") == 0);
	CHECK(strcmp(meta_str("KeySpec"), "SYMMETRIC_DEFAULT") == 0);
	CHECK(strcmp(meta_str("KeyUsage"), "ENCRYPT_DECRYPT") == 0);
	CHECK(strcmp(meta_str("Description"), "orders") == 0);
	CHECK(strcmp(meta_str("AWSAccountId"), "111122223333") == 0);
	snprintf(arn, sizeof arn, "arn:aws:kms:us-east-1:111122223333:key/%s", key_id);
	CHECK(strcmp(meta_str("Arn"), arn) == 0);
	CHECK(strcmp(last.key_arn, arn) == 0);
	CHECK(!last.read_only);

	EXPECT("DescribeKey", KC_OK, "{\"KeyId\": \"%s\"}", arn);
	CHECK(strcmp(meta_str("KeyId"), key_id) == 0);
	CHECK(last.read_only);
	EXPECT("DescribeKey", KC_NOT_FOUND, "{\"KeyId\": \"0f8fad5b-d9cb-469f-a165-70867728950e\"}");
	EXPECT("DescribeKey", KC_NOT_FOUND, "{\"KeyId\": \"arn:aws:kms:eu-west-1:999999999999:key/%s\"}", key_id);
	EXPECT("DescribeKey", KC_VALIDATION, "{}");
	EXPECT("DescribeKey", KC_SERIALIZATION, "{\"KeyId\": 42}");
	EXPECT("CreateKey", KC_VALIDATION, "{\"KeyUsage\": \"SIGN_VERIFY\"}");
	EXPECT("CreateKey", KC_VALIDATION, "{\"KeySpec\": \"AES_999\"}");
	EXPECT("CreateKey", KC_UNSUPPORTED_OPERATION, "{\"MultiRegion\": true}");
	EXPECT("CreateKey", KC_TAG, "{\"Tags\": [{\"TagKey\": \"aws:x\", \"TagValue\": \"y\"}]}");
	EXPECT("CreateKey", KC_MALFORMED_POLICY, "{\"Policy\": \"{not json\"}");
	/* A policy that would lock its creator out needs BypassPolicyLockoutSafetyCheck. */
#define BOB_ONLY_POLICY "{\\\"Version\\\":\\\"2012-10-17\\\",\\\"Statement\\\":[{" \
	"\\\"Effect\\\":\\\"Allow\\\",\\\"Principal\\\":{\\\"AWS\\\":" \
	"\\\"arn:aws:iam::111122223333:user/bob\\\"},\\\"Action\\\":\\\"kms:*\\\"," \
	"\\\"Resource\\\":\\\"*\\\"}]}"
	EXPECT("CreateKey", KC_MALFORMED_POLICY, "{\"Policy\": \"" BOB_ONLY_POLICY "\"}");
	CHECK(strstr(last_err.message, "will not allow you to update the key policy") != NULL);
	EXPECT("CreateKey", KC_OK, "{\"Policy\": \"" BOB_ONLY_POLICY "\", "
			"\"BypassPolicyLockoutSafetyCheck\": true}");
	snprintf(arn, sizeof arn, "%s", meta_str("KeyId"));
	EXPECT("DescribeKey", KC_ACCESS_DENIED, "{\"KeyId\": \"%s\"}", arn);
	EXPECT("NoSuchOperation", KC_UNKNOWN_OPERATION, "{}");
}

static void test_list_keys(void)
{
	char key_id[64], marker[64];
	size_t first_page;

	for (int i = 0; i < 3; i++)
		create_key("", key_id);
	EXPECT("ListKeys", KC_OK, "{\"Limit\": 2}");
	first_page = json_array_size(json_object_get(last.response, "Keys"));
	CHECK(first_page == 2);
	CHECK(json_is_true(json_object_get(last.response, "Truncated")));
	snprintf(marker, sizeof marker, "%s", resp_str("NextMarker"));
	EXPECT("ListKeys", KC_OK, "{\"Limit\": 1000, \"Marker\": \"%s\"}", marker);
	CHECK(json_array_size(json_object_get(last.response, "Keys")) >= 2);
	CHECK(json_is_false(json_object_get(last.response, "Truncated")));
	EXPECT("ListKeys", KC_INVALID_MARKER, "{\"Marker\": \"garbage\"}");
	EXPECT("ListKeys", KC_VALIDATION, "{\"Limit\": 0}");
}

static void test_encrypt_decrypt(void)
{
	char key_id[64], other[64], blob[2048], arn[160];

	create_key("", key_id);
	create_key("", other);
	snprintf(arn, sizeof arn, "arn:aws:kms:us-east-1:111122223333:key/%s", key_id);
	/* "hello kms" */
	EXPECT("Encrypt", KC_OK, "{\"KeyId\": \"%s\", \"Plaintext\": \"aGVsbG8ga21z\", "
			"\"EncryptionContext\": {\"purpose\": \"test\"}}", key_id);
	snprintf(blob, sizeof blob, "%s", resp_str("CiphertextBlob"));
	CHECK(strcmp(resp_str("KeyId"), arn) == 0);
	CHECK(strcmp(resp_str("EncryptionAlgorithm"), "SYMMETRIC_DEFAULT") == 0);
	CHECK(!json_object_get(last.audit_request, "plaintext"));
	CHECK(json_object_get(last.audit_request, "keyId"));
	CHECK(json_object_get(json_object_get(last.audit_request, "encryptionContext"), "purpose"));

	EXPECT("Decrypt", KC_OK, "{\"CiphertextBlob\": \"%s\", "
			"\"EncryptionContext\": {\"purpose\": \"test\"}}", blob);
	CHECK(strcmp(resp_str("Plaintext"), "aGVsbG8ga21z") == 0);
	CHECK(strcmp(resp_str("KeyId"), arn) == 0);
	CHECK(strcmp(last.key_arn, arn) == 0);
	CHECK(!last.audit_response);
	EXPECT("Decrypt", KC_INVALID_CIPHERTEXT, "{\"CiphertextBlob\": \"%s\", "
			"\"EncryptionContext\": {\"purpose\": \"other\"}}", blob);
	EXPECT("Decrypt", KC_INVALID_CIPHERTEXT, "{\"CiphertextBlob\": \"%s\"}", blob);
	EXPECT("Decrypt", KC_INCORRECT_KEY, "{\"CiphertextBlob\": \"%s\", \"KeyId\": \"%s\", "
			"\"EncryptionContext\": {\"purpose\": \"test\"}}", blob, other);
	EXPECT("Decrypt", KC_INVALID_CIPHERTEXT, "{\"CiphertextBlob\": \"AAAA\"}");
	EXPECT("Decrypt", KC_SERIALIZATION, "{\"CiphertextBlob\": \"not base64!\"}");
	EXPECT("Decrypt", KC_SERIALIZATION, "{\"CiphertextBlob\": \"AAAA\", \"EncryptionContext\": {\"a\": 1}}");
	EXPECT("Encrypt", KC_VALIDATION, "{\"KeyId\": \"%s\"}", key_id);

	EXPECT("ReEncrypt", KC_OK, "{\"CiphertextBlob\": \"%s\", \"SourceEncryptionContext\": "
			"{\"purpose\": \"test\"}, \"DestinationKeyId\": \"%s\"}", blob, other);
	snprintf(blob, sizeof blob, "%s", resp_str("CiphertextBlob"));
	CHECK(strstr(resp_str("SourceKeyId"), key_id) != NULL);
	CHECK(strstr(resp_str("KeyId"), other) != NULL);
	EXPECT("Decrypt", KC_OK, "{\"CiphertextBlob\": \"%s\"}", blob);
	CHECK(strcmp(resp_str("Plaintext"), "aGVsbG8ga21z") == 0);

	EXPECT("DisableKey", KC_OK, "{\"KeyId\": \"%s\"}", other);
	EXPECT("Decrypt", KC_DISABLED, "{\"CiphertextBlob\": \"%s\"}", blob);
	EXPECT("Encrypt", KC_DISABLED, "{\"KeyId\": \"%s\", \"Plaintext\": \"aGk=\"}", other);
	EXPECT("EnableKey", KC_OK, "{\"KeyId\": \"%s\"}", other);
	EXPECT("Decrypt", KC_OK, "{\"CiphertextBlob\": \"%s\"}", blob);
}

static void test_data_keys(void)
{
	char key_id[64], blob[2048];
	const char *plaintext;

	create_key("", key_id);
	EXPECT("GenerateDataKey", KC_OK, "{\"KeyId\": \"%s\", \"KeySpec\": \"AES_256\"}", key_id);
	plaintext = resp_str("Plaintext");
	CHECK(strlen(plaintext) == 44);   /* 32 bytes in base64 */
	snprintf(blob, sizeof blob, "%s", resp_str("CiphertextBlob"));
	{
		char expected[64];

		snprintf(expected, sizeof expected, "%s", plaintext);
		EXPECT("Decrypt", KC_OK, "{\"CiphertextBlob\": \"%s\"}", blob);
		CHECK(strcmp(resp_str("Plaintext"), expected) == 0);
	}
	EXPECT("GenerateDataKey", KC_OK, "{\"KeyId\": \"%s\", \"NumberOfBytes\": 16}", key_id);
	CHECK(strlen(resp_str("Plaintext")) == 24);
	EXPECT("GenerateDataKey", KC_VALIDATION, "{\"KeyId\": \"%s\"}", key_id);
	EXPECT("GenerateDataKey", KC_VALIDATION, "{\"KeyId\": \"%s\", \"NumberOfBytes\": 16, "
			"\"KeySpec\": \"AES_128\"}", key_id);
	EXPECT("GenerateDataKey", KC_VALIDATION, "{\"KeyId\": \"%s\", \"NumberOfBytes\": 1025}", key_id);
	EXPECT("GenerateDataKeyWithoutPlaintext", KC_OK, "{\"KeyId\": \"%s\", \"KeySpec\": \"AES_128\"}",
			key_id);
	CHECK(!json_object_get(last.response, "Plaintext"));
	CHECK(json_object_get(last.response, "CiphertextBlob"));
	EXPECT("GenerateRandom", KC_OK, "{\"NumberOfBytes\": 48}");
	CHECK(strlen(resp_str("Plaintext")) == 64);
	EXPECT("GenerateRandom", KC_VALIDATION, "{\"NumberOfBytes\": 0}");
}

static void test_aliases(void)
{
	char key_id[64], other[64];

	create_key("", key_id);
	create_key("", other);
	EXPECT("CreateAlias", KC_OK, "{\"AliasName\": \"alias/orders\", \"TargetKeyId\": \"%s\"}", key_id);
	EXPECT("CreateAlias", KC_ALREADY_EXISTS, "{\"AliasName\": \"alias/orders\", \"TargetKeyId\": \"%s\"}",
			other);
	EXPECT("CreateAlias", KC_INVALID_ALIAS, "{\"AliasName\": \"orders\", \"TargetKeyId\": \"%s\"}", key_id);
	EXPECT("CreateAlias", KC_INVALID_ALIAS, "{\"AliasName\": \"alias/aws/x\", \"TargetKeyId\": \"%s\"}",
			key_id);
	EXPECT("DescribeKey", KC_OK, "{\"KeyId\": \"alias/orders\"}");
	CHECK(strcmp(meta_str("KeyId"), key_id) == 0);
	EXPECT("DescribeKey", KC_OK, "{\"KeyId\": \"arn:aws:kms:us-east-1:111122223333:alias/orders\"}");
	CHECK(strcmp(meta_str("KeyId"), key_id) == 0);
	EXPECT("Encrypt", KC_OK, "{\"KeyId\": \"alias/orders\", \"Plaintext\": \"aGk=\"}");
	EXPECT("UpdateAlias", KC_OK, "{\"AliasName\": \"alias/orders\", \"TargetKeyId\": \"%s\"}", other);
	EXPECT("DescribeKey", KC_OK, "{\"KeyId\": \"alias/orders\"}");
	CHECK(strcmp(meta_str("KeyId"), other) == 0);
	EXPECT("UpdateAlias", KC_NOT_FOUND, "{\"AliasName\": \"alias/nope\", \"TargetKeyId\": \"%s\"}", other);
	EXPECT("ListAliases", KC_OK, "{\"KeyId\": \"%s\"}", other);
	CHECK(json_array_size(json_object_get(last.response, "Aliases")) == 1);
	CHECK(strcmp(json_string_value(json_object_get(json_array_get(
			json_object_get(last.response, "Aliases"), 0), "AliasName")), "alias/orders") == 0);
	EXPECT("DeleteAlias", KC_OK, "{\"AliasName\": \"alias/orders\"}");
	EXPECT("DeleteAlias", KC_NOT_FOUND, "{\"AliasName\": \"alias/orders\"}");
	EXPECT("DescribeKey", KC_NOT_FOUND, "{\"KeyId\": \"alias/orders\"}");
}

static void test_deletion(void)
{
	char key_id[64], blob[2048];

	create_key("", key_id);
	EXPECT("Encrypt", KC_OK, "{\"KeyId\": \"%s\", \"Plaintext\": \"aGk=\"}", key_id);
	snprintf(blob, sizeof blob, "%s", resp_str("CiphertextBlob"));
	EXPECT("CreateAlias", KC_OK, "{\"AliasName\": \"alias/doomed\", \"TargetKeyId\": \"%s\"}", key_id);
	EXPECT("ScheduleKeyDeletion", KC_VALIDATION, "{\"KeyId\": \"%s\", \"PendingWindowInDays\": 6}", key_id);
	EXPECT("ScheduleKeyDeletion", KC_VALIDATION, "{\"KeyId\": \"%s\", \"PendingWindowInDays\": 31}", key_id);
	EXPECT("ScheduleKeyDeletion", KC_OK, "{\"KeyId\": \"%s\", \"PendingWindowInDays\": 7}", key_id);
	CHECK(strcmp(resp_str("KeyState"), "PendingDeletion") == 0);
	CHECK(json_integer_value(json_object_get(last.response, "PendingWindowInDays")) == 7);
	EXPECT("Decrypt", KC_INVALID_STATE, "{\"CiphertextBlob\": \"%s\"}", blob);
	EXPECT("EnableKey", KC_INVALID_STATE, "{\"KeyId\": \"%s\"}", key_id);
	EXPECT("ScheduleKeyDeletion", KC_INVALID_STATE, "{\"KeyId\": \"%s\"}", key_id);
	EXPECT("CancelKeyDeletion", KC_OK, "{\"KeyId\": \"%s\"}", key_id);
	EXPECT("DescribeKey", KC_OK, "{\"KeyId\": \"%s\"}", key_id);
	CHECK(strcmp(meta_str("KeyState"), "Disabled") == 0);
	EXPECT("CancelKeyDeletion", KC_INVALID_STATE, "{\"KeyId\": \"%s\"}", key_id);

	/* Maintenance before the window ends keeps the key; after, it is gone for good. */
	EXPECT("ScheduleKeyDeletion", KC_OK, "{\"KeyId\": \"%s\", \"PendingWindowInDays\": 7}", key_id);
	CHECK(kc_api_maintenance(engine, time(NULL) + 6 * 86400, &last_err) == KC_OK);
	EXPECT("DescribeKey", KC_OK, "{\"KeyId\": \"%s\"}", key_id);
	CHECK(kc_api_maintenance(engine, time(NULL) + 7 * 86400 + 60, &last_err) == KC_OK);
	EXPECT("DescribeKey", KC_NOT_FOUND, "{\"KeyId\": \"%s\"}", key_id);
	EXPECT("DescribeKey", KC_NOT_FOUND, "{\"KeyId\": \"alias/doomed\"}");
	EXPECT("Decrypt", KC_INVALID_CIPHERTEXT, "{\"CiphertextBlob\": \"%s\"}", blob);
}

static void test_rotation(void)
{
	char key_id[64], old_blob[2048], new_blob[2048];

	create_key("", key_id);
	EXPECT("Encrypt", KC_OK, "{\"KeyId\": \"%s\", \"Plaintext\": \"b2xk\"}", key_id);
	snprintf(old_blob, sizeof old_blob, "%s", resp_str("CiphertextBlob"));
	EXPECT("GetKeyRotationStatus", KC_OK, "{\"KeyId\": \"%s\"}", key_id);
	CHECK(json_is_false(json_object_get(last.response, "KeyRotationEnabled")));
	EXPECT("EnableKeyRotation", KC_VALIDATION, "{\"KeyId\": \"%s\", \"RotationPeriodInDays\": 30}", key_id);
	EXPECT("EnableKeyRotation", KC_OK, "{\"KeyId\": \"%s\", \"RotationPeriodInDays\": 90}", key_id);
	EXPECT("GetKeyRotationStatus", KC_OK, "{\"KeyId\": \"%s\"}", key_id);
	CHECK(json_is_true(json_object_get(last.response, "KeyRotationEnabled")));
	CHECK(json_integer_value(json_object_get(last.response, "RotationPeriodInDays")) == 90);

	EXPECT("RotateKeyOnDemand", KC_OK, "{\"KeyId\": \"%s\"}", key_id);
	/* Automatic rotation when the period has passed. */
	CHECK(kc_api_maintenance(engine, time(NULL) + 91 * 86400, &last_err) == KC_OK);
	EXPECT("ListKeyRotations", KC_OK, "{\"KeyId\": \"%s\"}", key_id);
	CHECK(json_array_size(json_object_get(last.response, "Rotations")) == 2);
	CHECK(strcmp(json_string_value(json_object_get(json_array_get(
			json_object_get(last.response, "Rotations"), 0), "RotationType")), "ON_DEMAND") == 0);
	CHECK(strcmp(json_string_value(json_object_get(json_array_get(
			json_object_get(last.response, "Rotations"), 1), "RotationType")), "AUTOMATIC") == 0);

	/* New ciphertext uses the newest material; the oldest still decrypts. */
	EXPECT("Encrypt", KC_OK, "{\"KeyId\": \"%s\", \"Plaintext\": \"bmV3\"}", key_id);
	snprintf(new_blob, sizeof new_blob, "%s", resp_str("CiphertextBlob"));
	CHECK(strcmp(old_blob, new_blob) != 0);
	EXPECT("Decrypt", KC_OK, "{\"CiphertextBlob\": \"%s\"}", old_blob);
	CHECK(strcmp(resp_str("Plaintext"), "b2xk") == 0);
	EXPECT("Decrypt", KC_OK, "{\"CiphertextBlob\": \"%s\"}", new_blob);
	CHECK(strcmp(resp_str("Plaintext"), "bmV3") == 0);

	EXPECT("DisableKeyRotation", KC_OK, "{\"KeyId\": \"%s\"}", key_id);
	EXPECT("GetKeyRotationStatus", KC_OK, "{\"KeyId\": \"%s\"}", key_id);
	CHECK(json_is_false(json_object_get(last.response, "KeyRotationEnabled")));
	for (int i = 0; i < 9; i++)
		EXPECT("RotateKeyOnDemand", KC_OK, "{\"KeyId\": \"%s\"}", key_id);
	EXPECT("RotateKeyOnDemand", KC_LIMIT_EXCEEDED, "{\"KeyId\": \"%s\"}", key_id);
}

static void test_tags_and_description(void)
{
	char key_id[64];

	create_key("", key_id);
	EXPECT("TagResource", KC_OK, "{\"KeyId\": \"%s\", \"Tags\": [{\"TagKey\": \"b\", \"TagValue\": \"2\"}, "
			"{\"TagKey\": \"a\", \"TagValue\": \"1\"}]}", key_id);
	EXPECT("TagResource", KC_OK, "{\"KeyId\": \"%s\", \"Tags\": [{\"TagKey\": \"a\", \"TagValue\": \"3\"}]}",
			key_id);
	EXPECT("ListResourceTags", KC_OK, "{\"KeyId\": \"%s\"}", key_id);
	CHECK(json_array_size(json_object_get(last.response, "Tags")) == 2);
	CHECK(strcmp(json_string_value(json_object_get(json_array_get(
			json_object_get(last.response, "Tags"), 0), "TagValue")), "3") == 0);
	EXPECT("UntagResource", KC_OK, "{\"KeyId\": \"%s\", \"TagKeys\": [\"a\", \"zzz\"]}", key_id);
	EXPECT("ListResourceTags", KC_OK, "{\"KeyId\": \"%s\"}", key_id);
	CHECK(json_array_size(json_object_get(last.response, "Tags")) == 1);
	EXPECT("TagResource", KC_TAG, "{\"KeyId\": \"%s\", \"Tags\": [{\"TagKey\": \"aws:x\", \"TagValue\": \"1\"}]}",
			key_id);
	EXPECT("UpdateKeyDescription", KC_OK, "{\"KeyId\": \"%s\", \"Description\": \"renamed\"}", key_id);
	EXPECT("DescribeKey", KC_OK, "{\"KeyId\": \"%s\"}", key_id);
	CHECK(strcmp(meta_str("Description"), "renamed") == 0);
}

/* The store keeps its keys across a close and reopen. */
static void test_reopen_durable(void)
{
	char key_id[64];
	struct kc_error err;

	create_key("", key_id);
	kc_api_result_free(&last);
	keyclient_free(engine);
	engine = NULL;
	CHECK(test_open_engine("kms api test", 0, &err) == KC_OK);
	if (!engine)
		return;
	EXPECT("DescribeKey", KC_OK, "{\"KeyId\": \"%s\"}", key_id);
}

int main(void)
{
	if (test_start("kms_api", "kms api test") != 0)
		return 1;
	test_create_describe();
	test_list_keys();
	test_encrypt_decrypt();
	test_data_keys();
	test_aliases();
	test_deletion();
	test_rotation();
	test_tags_and_description();
	test_reopen_durable();
	return test_finish("test_kms_api");
}
