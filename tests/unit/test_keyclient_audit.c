/*
 * test_keyclient_audit.c - the CloudTrail-format audit log: records from
 * the keyclient wrappers (allowed and denied) and an FS integrity event,
 * parsed back with jansson and checked field by field; concurrent writers
 * never interleave; no data key ever appears in the log.
 */
#include "test_keyclient.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#define MAX_RECORDS 512

static const char *str_at(json_t *record, const char *path1, const char *path2)
{
	json_t *value = json_object_get(record, path1);

	if (path2)
		value = json_object_get(value, path2);
	return json_string_value(value);
}

static int str_is(json_t *record, const char *path1, const char *path2, const char *want)
{
	const char *got = str_at(record, path1, path2);

	return got && strcmp(got, want) == 0;
}

/* Parse every line of path; returns the record count (-1 on a bad line). */
static int load_records(const char *path, json_t *records[MAX_RECORDS])
{
	FILE *f = fopen(path, "r");
	char line[8192];
	int count = 0;

	if (!f)
		return -1;
	while (count < MAX_RECORDS && fgets(line, sizeof line, f)) {
		json_error_t jerr;
		records[count] = json_loads(line, 0, &jerr);
		if (!records[count]) {
			fprintf(stderr, "audit line %d is not JSON: %s\n", count + 1, jerr.text);
			count = -1;
			break;
		}
		count++;
	}
	fclose(f);
	return count;
}

static void free_records(json_t *records[MAX_RECORDS], int count)
{
	for (int i = 0; i < count; i++)
		json_decref(records[i]);
}

static void check_common(json_t *record, const char *event_name)
{
	const char *time_text = str_at(record, "eventTime", NULL);
	const char *request_id = str_at(record, "requestID", NULL);
	const char *event_id = str_at(record, "eventID", NULL);

	CHECK(str_is(record, "eventVersion", NULL, "1.08"));
	CHECK(str_is(record, "eventName", NULL, event_name));
	CHECK(time_text && strlen(time_text) == 20 && time_text[10] == 'T' && time_text[19] == 'Z');
	CHECK(str_is(record, "awsRegion", NULL, "local"));
	CHECK(str_is(record, "sourceIPAddress", NULL, "localhost"));
	CHECK(str_is(record, "userAgent", NULL, "kmsfs/0.1"));
	CHECK(str_is(record, "userIdentity", "type", "LocalUser"));
	CHECK(request_id && strlen(request_id) == KC_KEY_ID_LEN);
	CHECK(event_id && strlen(event_id) == KC_KEY_ID_LEN && strcmp(event_id, request_id) != 0);
}

static void check_kms_record(json_t *record, const char *event_name, const char *principal,
		const char *arn, const char *error_code)
{
	json_t *resource = json_array_get(json_object_get(record, "resources"), 0);
	json_t *extra = json_object_get(record, "additionalEventData");

	check_common(record, event_name);
	CHECK(str_is(record, "eventSource", NULL, "kms.amazonaws.com"));
	CHECK(str_is(record, "eventType", NULL, "AwsApiCall"));
	CHECK(str_is(record, "userIdentity", "principalId", principal));
	CHECK(str_is(record, "userIdentity", "arn", principal));
	CHECK(str_is(json_object_get(record, "requestParameters"), "encryptionContext", "kmsfs:file", "audited"));
	CHECK(str_is(json_object_get(record, "requestParameters"), "encryptionContext", "kmsfs:volume", "vol"));
	CHECK(str_is(resource, "type", NULL, "AWS::KMS::Key"));
	CHECK(str_is(resource, "ARN", NULL, arn));
	CHECK(json_integer_value(json_object_get(extra, "pid")) == getpid());
	CHECK(str_is(extra, "processName", NULL, "test_keyclient"));
	CHECK(json_is_true(json_object_get(record, "readOnly")) == (strcmp(event_name, "Decrypt") == 0));
	if (error_code) {
		CHECK(str_is(record, "errorCode", NULL, error_code));
		CHECK(str_at(record, "errorMessage", NULL) != NULL);
	} else {
		CHECK(json_object_get(record, "errorCode") == NULL);
		CHECK(json_object_get(record, "errorMessage") == NULL);
	}
}

static void check_fs_record(json_t *record)
{
	json_t *extra = json_object_get(record, "additionalEventData");

	check_common(record, "BlockAuthenticationFailure");
	CHECK(str_is(record, "eventSource", NULL, "kmsfs"));
	CHECK(str_is(record, "eventType", NULL, "AwsServiceEvent"));
	CHECK(str_is(extra, "path", NULL, "/docs/report.odt"));
	CHECK(json_integer_value(json_object_get(extra, "blockIndex")) == 7);
	CHECK(json_object_get(record, "resources") == NULL);
	CHECK(json_object_get(record, "requestParameters") != NULL);
	CHECK(json_object_get(json_object_get(record, "requestParameters"), "keyId") == NULL);
	CHECK(str_is(record, "errorCode", NULL, "InvalidCiphertextException"));
}

/* No raw or hex copy of the data key in the log. */
static void check_no_key(const char *path, const uint8_t *dek)
{
	char hex[65], text[65536];
	FILE *f = fopen(path, "r");
	size_t len = f ? fread(text, 1, sizeof text - 1, f) : 0;

	if (f)
		fclose(f);
	text[len] = '\0';
	sodium_bin2hex(hex, sizeof hex, dek, 32);
	CHECK(memmem(text, len, dek, 32) == NULL);
	CHECK(strstr(text, hex) == NULL);
}

static void run_audited_calls(struct test_fixture *fx, uint8_t *dek)
{
	struct kc_context ctx;
	struct kc_error err = { 0 };
	struct kc_error fs_err = { 0 };
	uint8_t *blob = NULL, *denied_blob = NULL;
	size_t blob_len = 0, dek_len = 0, denied_len = 0;
	struct kc_audit_event fs_event = {
		.event_source = "kmsfs",
		.event_name = "BlockAuthenticationFailure",
		.caller = test_owner(),
		.path = "/docs/report.odt",
		.block_index = 7,
		.err = &fs_err,
	};

	test_file_context(&ctx, "vol", "audited");
	CHECK_STATUS(keyclient_generate_data_key(fx->kc, fx->key.key_id, &ctx, test_owner(), dek, 32,
			&blob, &blob_len, NULL, &err), KC_OK, err);
	CHECK_STATUS(keyclient_decrypt(fx->kc, NULL, blob, blob_len, &ctx, test_stranger(), dek, 32,
			&dek_len, NULL, &err), KC_ACCESS_DENIED, err);
	CHECK_STATUS(keyclient_decrypt_file(fx->kc, NULL, blob, blob_len, &ctx, test_owner(),
			"/docs/audited.txt", dek, 32, &dek_len, NULL, &err), KC_OK, err);
	CHECK_STATUS(keyclient_generate_data_key(fx->kc, fx->key.key_id, &ctx, test_stranger(), dek, 32,
			&denied_blob, &denied_len, NULL, &err), KC_ACCESS_DENIED, err);
	CHECK(denied_blob == NULL && denied_len == 0);
	kc_fail(&fs_err, KC_INVALID_CIPHERTEXT, "block 7 failed authentication");
	kc_audit_record(fx->kc->audit, &fs_event);
	free(blob);
}

static void test_records(void)
{
	struct test_fixture fx;
	json_t *records[MAX_RECORDS];
	struct kc_audit *audit;
	char path[4096];
	uint8_t *dek = sodium_malloc(32);
	struct stat st;
	int count;

	if (test_fixture_open(&fx, "audit") != 0)
		goto out;
	test_path("audit.jsonl", path);
	audit = kc_audit_open(path);
	CHECK(audit != NULL);
	if (!audit)
		goto out;
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	keyclient_set_audit(fx.kc, audit);
	run_audited_calls(&fx, dek);
	keyclient_set_audit(fx.kc, NULL);
	kc_audit_close(audit);

	count = load_records(path, records);
	CHECK(count == 5);
	if (count == 5) {
		const char *owner = test_owner()->principal;
		check_kms_record(records[0], "GenerateDataKey", owner, fx.key.arn, NULL);
		CHECK(str_is(records[0], "requestParameters", "keyId", fx.key.key_id));
		check_kms_record(records[1], "Decrypt", "uid:64999", fx.key.arn, "AccessDeniedException");
		CHECK(strstr(str_at(records[1], "errorMessage", NULL), "kms:Decrypt") != NULL);
		/* Decrypt named no key: keyId is the key the blob used. */
		CHECK(str_is(records[1], "requestParameters", "keyId", fx.key.arn));
		CHECK(json_object_get(json_object_get(records[1], "additionalEventData"), "path") == NULL);
		check_kms_record(records[2], "Decrypt", owner, fx.key.arn, NULL);
		CHECK(str_is(records[2], "additionalEventData", "path", "/docs/audited.txt"));
		check_kms_record(records[3], "GenerateDataKey", "uid:64999", fx.key.arn, "AccessDeniedException");
		check_fs_record(records[4]);
	}
	if (count > 0)
		free_records(records, count);
	check_no_key(path, dek);
out:
	test_fixture_close(&fx);
	sodium_free(dek);
}

struct writer_job {
	struct kc_audit *audit;
	int index;
};

static void *audit_writer(void *arg)
{
	struct writer_job *job = arg;
	struct kc_context ctx;
	char file[32];
	struct kc_audit_event ev = {
		.event_source = "kms.amazonaws.com",
		.event_name = "Decrypt",
		.caller = test_owner(),
		.key_id = "alias/concurrent",
		.ctx = &ctx,
		.block_index = -1,
	};

	snprintf(file, sizeof file, "writer-%d", job->index);
	test_file_context(&ctx, "vol", file);
	for (int i = 0; i < 50; i++)
		kc_audit_record(job->audit, &ev);
	return NULL;
}

static void test_concurrent_writers(void)
{
	json_t *records[MAX_RECORDS];
	struct writer_job jobs[4];
	pthread_t threads[4];
	struct kc_audit *audit;
	char path[4096];
	int count;

	audit = kc_audit_open(test_path("concurrent.jsonl", path));
	CHECK(audit != NULL);
	if (!audit)
		return;
	for (int i = 0; i < 4; i++) {
		jobs[i] = (struct writer_job){ .audit = audit, .index = i };
		CHECK(pthread_create(&threads[i], NULL, audit_writer, &jobs[i]) == 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(threads[i], NULL);
	kc_audit_close(audit);
	count = load_records(path, records);
	CHECK(count == 200);
	if (count > 0) {
		CHECK(str_is(json_array_get(json_object_get(records[0], "resources"), 0), "ARN", NULL,
				"arn:aws:kms:local:000000000000:alias/concurrent"));
		free_records(records, count);
	}
	CHECK(kc_audit_open("/nonexistent-dir/audit.jsonl") == NULL);
}

void test_audit_suite(void)
{
	test_records();
	test_concurrent_writers();
}
