/*
 * kms_api_test.c - the KMS API unit tests' shared harness (kms_api_test.h).
 */
#include "kms_api_test.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

int failures;
struct keyclient *engine;
struct kc_api_result last;
struct kc_error last_err;
static char scratch[64];
char store_dir[128];

static const char *const admin_allow[] = { "kms:*", NULL };
const struct kc_caller admin = {
	.principal = "arn:aws:iam::" TEST_ACCOUNT ":user/admin",
	.access_key_id = "AKIAADMIN",
	.identity_allow = admin_allow,
};

enum kc_status call_json_as(const struct kc_caller *caller, const char *op, json_t *request)
{
	enum kc_status rc;

	kc_api_result_free(&last);
	memset(&last_err, 0, sizeof last_err);
	if (!request) {
		fprintf(stderr, "bad test request for %s\n", op);
		failures++;
		return KC_INTERNAL;
	}
	rc = kc_api_call(engine, op, request, caller, &last, &last_err);
	json_decref(request);
	/* Success leaves no error behind (kmsd reads err as well as the status). */
	if (rc == KC_OK && (last_err.status != KC_OK || last_err.type[0])) {
		fprintf(stderr, "%s succeeded but left error %s (%s)\n", op, last_err.type, last_err.message);
		failures++;
	}
	return rc;
}

static enum kc_status call_v(const struct kc_caller *caller, const char *op, const char *fmt,
		va_list ap)
{
	char text[16384];
	json_error_t jerr;
	json_t *request;

	vsnprintf(text, sizeof text, fmt, ap);
	request = json_loads(text, 0, &jerr);
	if (!request)
		fprintf(stderr, "bad test JSON for %s: %s: %s\n", op, jerr.text, text);
	return call_json_as(caller, op, request);
}

enum kc_status call_as(const struct kc_caller *caller, const char *op, const char *fmt, ...)
{
	enum kc_status rc;
	va_list ap;

	va_start(ap, fmt);
	rc = call_v(caller, op, fmt, ap);
	va_end(ap);
	return rc;
}

enum kc_status call(const char *op, const char *fmt, ...)
{
	enum kc_status rc;
	va_list ap;

	va_start(ap, fmt);
	rc = call_v(&admin, op, fmt, ap);
	va_end(ap);
	return rc;
}

enum kc_status call_json(const char *op, json_t *request)
{
	return call_json_as(&admin, op, request);
}

void report_status(const char *file, int line, const char *op, enum kc_status got,
		enum kc_status want)
{
	fprintf(stderr, "%s:%d: %s returned %s (%s), want %s\n", file, line, op,
			got ? kc_status_type(got) : "OK", last_err.message,
			want ? kc_status_type(want) : "OK");
	failures++;
}

const char *resp_str(const char *name)
{
	const char *value = json_string_value(json_object_get(last.response, name));

	return value ? value : "";
}

const char *meta_str(const char *name)
{
	const char *value = json_string_value(json_object_get(
			json_object_get(last.response, "KeyMetadata"), name));

	return value ? value : "";
}

enum kc_status test_open_engine(const char *passphrase, int create, struct kc_error *err)
{
	struct kc_local_options opts = {
		.dir = store_dir, .create = create, .passphrase = passphrase,
		.region = TEST_REGION, .account = TEST_ACCOUNT,
	};

	return kc_local_open_opts(&opts, &engine, err);
}

int test_start(const char *test_name, const char *passphrase)
{
	struct kc_error err;

	setenv("KMSFS_ARGON2_OPSLIMIT", "1", 0);
	setenv("KMSFS_ARGON2_MEMLIMIT", "8192", 0);
	snprintf(scratch, sizeof scratch, "/tmp/kmsfs-%s-XXXXXX", test_name);
	if (sodium_init() < 0 || !mkdtemp(scratch)) {
		fprintf(stderr, "%s: no scratch directory\n", test_name);
		return -1;
	}
	snprintf(store_dir, sizeof store_dir, "%s/store", scratch);
	if (test_open_engine(passphrase, 1, &err) != KC_OK) {
		fprintf(stderr, "%s: open: %s\n", test_name, err.message);
		return -1;
	}
	return 0;
}

int test_finish(const char *test_name)
{
	char cmd[sizeof scratch + 16];

	kc_api_result_free(&last);
	keyclient_free(engine);
	engine = NULL;
	snprintf(cmd, sizeof cmd, "rm -rf %s", scratch);
	if (scratch[0] && system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", scratch);
	if (failures) {
		fprintf(stderr, "%s: %d check(s) failed\n", test_name, failures);
		return 1;
	}
	printf("%s: all checks passed\n", test_name);
	return 0;
}
