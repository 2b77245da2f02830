/*
 * fuzz_request.c - libFuzzer target for kmsd's request handler: the
 * whole path a request takes after the HTTP layer (authentication,
 * JSON parsing, dispatch to every KMS operation of the engine, the
 * reply, the audit record), on a real key store.
 *
 * Input layout: byte 0 picks the mode, then "Operation\n", then the body.
 *   mode even: the body is signed correctly (so the fuzzer gets past
 *              SigV4 and into the operations' field handling);
 *   mode odd:  the next line is used verbatim as the Authorization
 *              header (the SigV4 parser and verifier on hostile input).
 * The store holds a symmetric key (alias/fuzz) made at start, so
 * requests naming it reach the crypto; the fuzzer may create, rotate,
 * schedule or tag keys as it goes.
 *
 * Every reply must be a complete JSON object with an HTTP status AWS
 * uses; anything else aborts (a finding).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "crypto.h"
#include "kms_api.h"
#include "kmsd.h"

#define FUZZ_ACCESS_KEY "AKIAFUZZFUZZFUZZFUZZ"
#define FUZZ_SECRET "fuzzsecretfuzzsecretfuzzsecretfuzzsecret"
#define TRUNCATE_EVERY 20000

static struct kmsd service;
static struct kmsd_config config;
static char scratch[] = "/tmp/kmsd-fuzz-XXXXXX";
static unsigned long runs;

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		abort();
	chmod(path, 0600);
}

static void fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_request setup: %s: %s\n", what, detail);
	abort();
}

/* A key the fuzzer's requests can name as alias/fuzz. */
static void seed_key(void)
{
	struct kc_caller caller = { .principal = "arn:aws:iam::111122223333:user/fuzz",
		.identity_allow = (const char *const[]){ "kms:*", NULL } };
	struct kc_api_result result;
	struct kc_error err;
	json_t *request = json_object();
	char key_id[64];

	if (kc_api_call(service.kc, "CreateKey", request, &caller, &result, &err) != KC_OK)
		fail("CreateKey", err.message);
	snprintf(key_id, sizeof key_id, "%s", json_string_value(json_object_get(
			json_object_get(result.response, "KeyMetadata"), "KeyId")));
	kc_api_result_free(&result);
	json_decref(request);
	request = json_pack("{s:s, s:s}", "AliasName", "alias/fuzz", "TargetKeyId", key_id);
	if (kc_api_call(service.kc, "CreateAlias", request, &caller, &result, &err) != KC_OK)
		fail("CreateAlias", err.message);
	kc_api_result_free(&result);
	json_decref(request);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct kc_local_options opts = { 0 };
	char path[256], text[1024], err[KMSD_ERR_MAX];
	struct kc_error kerr;

	(void)argc;
	(void)argv;
	setenv("KMSFS_ARGON2_OPSLIMIT", "1", 1);
	setenv("KMSFS_ARGON2_MEMLIMIT", "8192", 1);
	if (kmsfs_crypto_init() != 0 || !mkdtemp(scratch))
		fail("init", "crypto or scratch directory");
	snprintf(path, sizeof path, "%s/pass", scratch);
	write_file(path, "fuzz passphrase\n");
	snprintf(text, sizeof text,
		"[kmsd]\nlisten = 127.0.0.1:0\nregion = us-east-1\naccount = 111122223333\n"
		"data_dir = %s/data\nroot_key = passphrase-file:%s/pass\naudit_dir = %s/audit\n"
		"[user fuzz]\naccess_key_id = " FUZZ_ACCESS_KEY "\nsecret_access_key = " FUZZ_SECRET
		"\nallow = kms:*\n", scratch, scratch, scratch);
	snprintf(path, sizeof path, "%s/kmsd.conf", scratch);
	write_file(path, text);
	if (kmsd_config_load(path, &config, err) != 0)
		fail("config", err);
	opts = (struct kc_local_options){ .dir = config.data_dir, .create = 1,
		.passphrase = "fuzz passphrase", .region = config.region, .account = config.account,
		.exclusive = 1 };
	if (kc_local_open_opts(&opts, &service.kc, &kerr) != KC_OK)
		fail("engine", kerr.message);
	service.config = &config;
	service.audit = kmsd_audit_open(&config, err);
	service.sigv4_cache = kc_sigv4_key_cache_new();
	if (!service.audit || !service.sigv4_cache)
		fail("audit trail", err);
	seed_key();
	return 0;
}

/* Keep the audit trail from filling the disk over a long run. */
static void trim_audit(void)
{
	char path[512], day[16];
	time_t now = time(NULL);
	struct tm tm;

	if (++runs % TRUNCATE_EVERY)
		return;
	gmtime_r(&now, &tm);
	strftime(day, sizeof day, "%Y%m%d", &tm);
	snprintf(path, sizeof path, "%s/kmsd-%s.jsonl", config.audit_dir, day);
	if (truncate(path, 0) != 0)
		perror(path);
}

/* Every reply is a JSON object with a status AWS KMS answers with. */
static void check_reply(const struct kmsd_reply *reply)
{
	json_error_t jerr;
	json_t *body;

	if (reply->http_status != 200 && reply->http_status != 400 && reply->http_status != 403 &&
	    reply->http_status != 404 && reply->http_status != 413 && reply->http_status != 500 &&
	    reply->http_status != 503)
		abort();
	body = reply->body ? json_loadb(reply->body, reply->body_len, 0, &jerr) : NULL;
	if (!json_is_object(body))
		abort();
	if (reply->http_status != 200 && !json_is_string(json_object_get(body, "__type")))
		abort();
	json_decref(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char operation[128] = "", target[160], amz_date[17], authorization_line[1024] = "";
	struct kc_http_header headers[5];
	struct kmsd_http_request req = { 0 };
	struct kmsd_reply reply = { 0 };
	const uint8_t *body, *newline;
	char *authorization = NULL;
	struct kc_error err;
	size_t rest;
	int mode;

	if (size < 1)
		return 0;
	mode = data[0];
	body = data + 1;
	rest = size - 1;
	newline = memchr(body, '\n', rest);
	if (newline) {
		snprintf(operation, sizeof operation, "%.*s", (int)(newline - body), (const char *)body);
		rest -= (size_t)(newline - body) + 1;
		body = newline + 1;
	}
	if ((mode & 1) && (newline = memchr(body, '\n', rest))) {
		snprintf(authorization_line, sizeof authorization_line, "%.*s",
				(int)(newline - body), (const char *)body);
		rest -= (size_t)(newline - body) + 1;
		body = newline + 1;
	}
	snprintf(target, sizeof target, "TrentService.%s", operation);
	{
		struct tm tm;
		time_t now = time(NULL);

		gmtime_r(&now, &tm);
		strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", &tm);
	}
	headers[0] = (struct kc_http_header){ "Host", "127.0.0.1:4599" };
	headers[1] = (struct kc_http_header){ "Content-Type", "application/x-amz-json-1.1" };
	headers[2] = (struct kc_http_header){ "X-Amz-Target", target };
	headers[3] = (struct kc_http_header){ "X-Amz-Date", amz_date };
	req = (struct kmsd_http_request){ .received = time(NULL), .method = "POST", .path = "/",
		.query = "", .headers = headers, .header_count = 4, .body = body, .body_len = rest,
		.source_ip = "127.0.0.1" };
	snprintf(req.request_id, sizeof req.request_id, "00000000-0000-4000-8000-000000000000");
	if (mode & 1) {
		headers[4] = (struct kc_http_header){ "Authorization", authorization_line };
	} else {
		struct kc_sigv4_request signed_part = { "POST", "/", "", headers, 4, body, rest };
		struct kc_sigv4_sign_params p = { .access_key_id = FUZZ_ACCESS_KEY,
			.secret_access_key = FUZZ_SECRET, .region = "us-east-1", .service = "kms",
			.amz_date = amz_date };

		if (kc_sigv4_sign(&signed_part, &p, &authorization, &err) != KC_OK)
			abort();
		headers[4] = (struct kc_http_header){ "Authorization", authorization };
	}
	req.header_count = 5;
	kmsd_request_run(&service, &req, &reply);
	check_reply(&reply);
	kmsd_reply_body_free(reply.body, reply.body_len, reply.secure);
	free(authorization);
	trim_audit();
	return 0;
}
