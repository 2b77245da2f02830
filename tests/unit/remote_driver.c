/*
 * remote_driver.c - kc_remote_driver: the remote transport driven by a
 * script, for tests/kmsd/test_remote_backend.py.
 *
 * Reads one JSON command per line on stdin, runs it through a remote
 * keyclient and prints one JSON line with the outcome, so a test can stop
 * and restart the key service between two commands while the keyclient
 * (and its kept-alive connections) lives on. Every answer has "status"
 * ("OK" or the AWS error type), "message" and "elapsed_ms".
 *
 *   {"op":"open", "endpoint":..., "region":..., "ca_file":..., "connect_timeout_ms":...,
 *    "request_timeout_ms":..., "retries":..., "backoff_base_ms":..., "backoff_max_ms":...,
 *    "audit":"path"}
 *   {"op":"principal", "principal":"alice", "access_key_id":..., "secret_access_key":...,
 *    "session_token":...}
 *   {"op":"gdk", "principal":..., "key":..., "context":{...}, "bytes":32}
 *        -> plaintext, blob (base64), arn
 *   {"op":"decrypt", "principal":..., "key":null, "blob":..., "context":{...}} -> plaintext, arn
 *   {"op":"encrypt", "principal":..., "key":..., "plaintext":..., "context":{...}} -> blob
 *   {"op":"re_encrypt", "principal":..., "blob":..., "context":{...}, "dst_key":...,
 *    "dst_context":{...}} -> blob, arn
 *   {"op":"create_key"|"describe"|"list"|"alias"|"create_alias"|"enable"|"rotate"|
 *    "set_principal", ...}
 *   {"op":"bench", "principal":..., "key":..., "threads":8, "calls":200, "verify":true,
 *    "refresh":true, "access_key_id":..., "secret_access_key":...}
 *        -> ok, failed, seconds, calls_per_s, first_error, refreshes (with refresh, the
 *           principal's credentials are replaced by these, again and again, meanwhile)
 *   {"op":"close"}   the keyclient freed (end of input does the same)
 * The plaintext is printed because this is a test of round trips; the
 * data keys are throwaway keys of a throwaway key service.
 */
#include "crypto.h"
#include "keyclient.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#define LINE_MAX_LEN (1 << 20)
#define DATA_KEY_CAP 4096

static struct keyclient *kc;
static struct kc_audit *audit;

/* ---- helpers -------------------------------------------------------------------------- */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char *str(json_t *cmd, const char *name)
{
	return json_string_value(json_object_get(cmd, name));
}

static long num(json_t *cmd, const char *name, long fallback)
{
	json_t *v = json_object_get(cmd, name);

	return json_is_integer(v) ? (long)json_integer_value(v) : fallback;
}

/* The context object of a command (borrowed strings: cmd must outlive ctx). */
static void context_of(json_t *cmd, const char *name, struct kc_context *ctx)
{
	const char *key;
	json_t *value;

	memset(ctx, 0, sizeof *ctx);
	json_object_foreach(json_object_get(cmd, name), key, value)
		kc_context_add(ctx, key, json_string_value(value));
}

static void caller_of(json_t *cmd, struct kc_caller *caller)
{
	memset(caller, 0, sizeof *caller);
	caller->principal = str(cmd, "principal");
	caller->uid = getuid();
	caller->pid = getpid();
}

static json_t *b64(const uint8_t *data, size_t len)
{
	size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *text = malloc(cap);
	json_t *out;

	sodium_bin2base64(text, cap, data, len, sodium_base64_VARIANT_ORIGINAL);
	out = json_string(text);
	free(text);
	return out;
}

/* Base64 field of cmd into a malloc'ed buffer (NULL, 0 when absent). */
static uint8_t *unb64(json_t *cmd, const char *name, size_t *len)
{
	const char *text = str(cmd, name);
	size_t text_len = text ? strlen(text) : 0;
	uint8_t *out = malloc(text_len + 1);

	*len = 0;
	if (text && sodium_base642bin(out, text_len + 1, text, text_len, NULL, len, NULL,
			sodium_base64_VARIANT_ORIGINAL) != 0)
		*len = 0;
	return out;
}

static json_t *info_json(const struct kc_key_info *info)
{
	json_t *aliases = json_array();

	for (size_t i = 0; i < info->alias_count; i++)
		json_array_append_new(aliases, json_string(info->aliases[i]));
	return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:o}", "key_id", info->key_id,
			"arn", info->arn, "description", info->description,
			"state", kc_key_state_name(info->state), "creation_date",
			(json_int_t)info->creation_date, "material_versions",
			(json_int_t)info->material_versions, "aliases", aliases);
}

/* ---- commands ------------------------------------------------------------------------- */

static enum kc_status do_open(json_t *cmd, json_t *out, struct kc_error *err)
{
	struct kc_remote_options opts = {
		.endpoint = str(cmd, "endpoint"),
		.region = str(cmd, "region"),
		.ca_file = str(cmd, "ca_file"),
		.connect_timeout_ms = num(cmd, "connect_timeout_ms", 0),
		.request_timeout_ms = num(cmd, "request_timeout_ms", 0),
		.retries = (int)num(cmd, "retries", 0),
		.backoff_base_ms = num(cmd, "backoff_base_ms", 0),
		.backoff_max_ms = num(cmd, "backoff_max_ms", 0),
	};
	enum kc_status rc;

	keyclient_free(kc);
	kc = NULL;
	kc_audit_close(audit);
	audit = NULL;
	rc = kc_remote_open(&opts, &kc, err);
	if (rc == KC_OK && str(cmd, "audit")) {
		audit = kc_audit_open(str(cmd, "audit"));
		keyclient_set_audit(kc, audit);
	}
	return rc;
}

static enum kc_status do_principal(json_t *cmd, json_t *out, struct kc_error *err)
{
	struct kc_remote_credentials creds = {
		.access_key_id = str(cmd, "access_key_id"),
		.secret_access_key = str(cmd, "secret_access_key"),
		.session_token = str(cmd, "session_token"),
	};

	return kc_remote_add_principal(kc, str(cmd, "principal"), &creds, err);
}

static enum kc_status do_gdk(json_t *cmd, json_t *out, struct kc_error *err)
{
	size_t len = (size_t)num(cmd, "bytes", 32), blob_len = 0;
	uint8_t *plaintext = kmsfs_secure_alloc(len ? len : 1), *blob = NULL;
	char arn[KC_ARN_MAX];
	struct kc_caller caller;
	struct kc_context ctx;
	enum kc_status rc;

	caller_of(cmd, &caller);
	context_of(cmd, "context", &ctx);
	rc = keyclient_generate_data_key_file(kc, str(cmd, "key"), &ctx, &caller, str(cmd, "path"),
			plaintext, len, &blob, &blob_len, arn, err);
	if (rc == KC_OK) {
		json_object_set_new(out, "plaintext", b64(plaintext, len));
		json_object_set_new(out, "blob", b64(blob, blob_len));
		json_object_set_new(out, "arn", json_string(arn));
	}
	kmsfs_secure_free(plaintext);
	free(blob);
	return rc;
}

static enum kc_status do_decrypt(json_t *cmd, json_t *out, struct kc_error *err)
{
	size_t blob_len, plain_len = 0;
	uint8_t *blob = unb64(cmd, "blob", &blob_len);
	uint8_t *plaintext = kmsfs_secure_alloc(DATA_KEY_CAP);
	char arn[KC_ARN_MAX];
	struct kc_caller caller;
	struct kc_context ctx;
	enum kc_status rc;

	caller_of(cmd, &caller);
	context_of(cmd, "context", &ctx);
	rc = keyclient_decrypt(kc, str(cmd, "key"), blob, blob_len, &ctx, &caller, plaintext,
			DATA_KEY_CAP, &plain_len, arn, err);
	if (rc == KC_OK) {
		json_object_set_new(out, "plaintext", b64(plaintext, plain_len));
		json_object_set_new(out, "arn", json_string(arn));
	}
	kmsfs_secure_free(plaintext);
	free(blob);
	return rc;
}

static enum kc_status do_encrypt(json_t *cmd, json_t *out, struct kc_error *err)
{
	size_t plain_len, blob_len = 0;
	uint8_t *plaintext = unb64(cmd, "plaintext", &plain_len), *blob = NULL;
	struct kc_caller caller;
	struct kc_context ctx;
	enum kc_status rc;

	caller_of(cmd, &caller);
	context_of(cmd, "context", &ctx);
	rc = keyclient_encrypt(kc, str(cmd, "key"), plaintext, plain_len, &ctx, &caller, &blob,
			&blob_len, err);
	if (rc == KC_OK)
		json_object_set_new(out, "blob", b64(blob, blob_len));
	free(plaintext);
	free(blob);
	return rc;
}

static enum kc_status do_re_encrypt(json_t *cmd, json_t *out, struct kc_error *err)
{
	size_t blob_len, new_len = 0;
	uint8_t *blob = unb64(cmd, "blob", &blob_len), *new_blob = NULL;
	char arn[KC_ARN_MAX];
	struct kc_caller caller;
	struct kc_context src, dst;
	enum kc_status rc;

	caller_of(cmd, &caller);
	context_of(cmd, "context", &src);
	context_of(cmd, "dst_context", &dst);
	rc = keyclient_re_encrypt(kc, blob, blob_len, &src, str(cmd, "dst_key"), &dst, &caller,
			&new_blob, &new_len, arn, err);
	if (rc == KC_OK) {
		json_object_set_new(out, "blob", b64(new_blob, new_len));
		json_object_set_new(out, "arn", json_string(arn));
	}
	free(blob);
	free(new_blob);
	return rc;
}

static enum kc_status do_create_key(json_t *cmd, json_t *out, struct kc_error *err)
{
	struct kc_caller caller;
	struct kc_key_info info;
	enum kc_status rc;

	caller_of(cmd, &caller);
	rc = kc->ops->create_key(kc, str(cmd, "description"), &caller, &info, err);
	if (rc == KC_OK)
		json_object_set_new(out, "key", info_json(&info));
	return rc;
}

static enum kc_status do_describe(json_t *cmd, json_t *out, struct kc_error *err)
{
	struct kc_caller caller;
	struct kc_key_info info;
	enum kc_status rc;

	caller_of(cmd, &caller);
	rc = kc->ops->describe_key(kc, str(cmd, "key"), &caller, &info, err);
	if (rc == KC_OK)
		json_object_set_new(out, "key", info_json(&info));
	return rc;
}

static int add_listed(const struct kc_key_info *info, void *arg)
{
	json_array_append_new(arg, info_json(info));
	return 0;
}

static enum kc_status do_list(json_t *cmd, json_t *out, struct kc_error *err)
{
	json_t *keys = json_array();
	struct kc_caller caller;

	caller_of(cmd, &caller);
	json_object_set_new(out, "keys", keys);
	return kc->ops->list_keys(kc, &caller, add_listed, keys, err);
}

static enum kc_status do_alias(json_t *cmd, json_t *out, struct kc_error *err)
{
	struct kc_caller caller;

	caller_of(cmd, &caller);
	if (strcmp(str(cmd, "op"), "create_alias") == 0)
		return keyclient_create_alias(kc, str(cmd, "alias"), str(cmd, "target"), &caller, err);
	return kc->ops->set_alias(kc, str(cmd, "alias"), str(cmd, "target"), &caller, err);
}

static enum kc_status do_key_change(json_t *cmd, json_t *out, struct kc_error *err)
{
	const char *op = str(cmd, "op");
	struct kc_caller caller;

	caller_of(cmd, &caller);
	if (strcmp(op, "enable") == 0)
		return kc->ops->set_key_enabled(kc, str(cmd, "key"),
				json_is_true(json_object_get(cmd, "enabled")), &caller, err);
	if (strcmp(op, "rotate") == 0)
		return kc->ops->rotate_key(kc, str(cmd, "key"), &caller, err);
	return kc->ops->set_key_principal(kc, str(cmd, "key"), str(cmd, "principal_name"),
			(int)num(cmd, "allow", 1), &caller, err);
}

static enum kc_status do_close(json_t *cmd, json_t *out, struct kc_error *err)
{
	keyclient_free(kc);
	kc = NULL;
	kc_audit_close(audit);
	audit = NULL;
	return KC_OK;
}

/* ---- bench: threads making data keys at once -------------------------------------------- */

struct bench {
	json_t *cmd;
	long calls;
	int verify;
	pthread_mutex_t lock;
	long ok, failed;
	struct kc_error first_error;
	int done;               /* the workers have finished (under lock) */
	long refreshes;         /* credential replacements made meanwhile */
};

/* One data key, and with verify its decryption compared; KC_OK or the failure. */
static enum kc_status bench_one(struct bench *b, const struct kc_caller *caller,
		const struct kc_context *ctx, uint8_t *plain, uint8_t *again, struct kc_error *err)
{
	uint8_t *blob = NULL;
	size_t blob_len = 0, again_len = 0;
	enum kc_status rc;

	rc = keyclient_generate_data_key(kc, str(b->cmd, "key"), ctx, caller, plain, 32, &blob,
			&blob_len, NULL, err);
	if (rc == KC_OK && b->verify)
		rc = keyclient_decrypt(kc, NULL, blob, blob_len, ctx, caller, again, 64, &again_len,
				NULL, err);
	if (rc == KC_OK && b->verify && (again_len != 32 || memcmp(plain, again, 32) != 0))
		rc = kc_fail(err, KC_INTERNAL, "bench: a data key did not decrypt to itself");
	free(blob);
	return rc;
}

static void *bench_thread(void *arg)
{
	struct bench *b = arg;
	uint8_t *plain = kmsfs_secure_alloc(32), *again = kmsfs_secure_alloc(64);
	struct kc_caller caller;
	struct kc_context ctx;

	caller_of(b->cmd, &caller);
	context_of(b->cmd, "context", &ctx);
	for (long i = 0; i < b->calls; i++) {
		struct kc_error err = { 0 };
		enum kc_status rc = bench_one(b, &caller, &ctx, plain, again, &err);

		pthread_mutex_lock(&b->lock);
		if (rc == KC_OK) {
			b->ok++;
		} else if (b->failed++ == 0) {
			b->first_error = err;
		}
		pthread_mutex_unlock(&b->lock);
	}
	kmsfs_secure_free(plain);
	kmsfs_secure_free(again);
	return NULL;
}

/* With "refresh": the bench's principal's credentials replaced again and again meanwhile. */
static void *refresh_thread(void *arg)
{
	struct bench *b = arg;
	struct kc_remote_credentials creds = {
		.access_key_id = str(b->cmd, "access_key_id"),
		.secret_access_key = str(b->cmd, "secret_access_key"),
	};
	struct kc_error err;
	int done = 0;

	while (!done) {
		if (kc_remote_add_principal(kc, str(b->cmd, "principal"), &creds, &err) != KC_OK)
			break;
		pthread_mutex_lock(&b->lock);
		b->refreshes++;
		done = b->done;
		pthread_mutex_unlock(&b->lock);
		usleep(1000);
	}
	return NULL;
}

static enum kc_status do_bench(json_t *cmd, json_t *out, struct kc_error *err)
{
	struct bench b = { .cmd = cmd, .calls = num(cmd, "calls", 100),
		.verify = json_is_true(json_object_get(cmd, "verify")) };
	int refresh = json_is_true(json_object_get(cmd, "refresh"));
	long threads = num(cmd, "threads", 1);
	pthread_t tid[64], refresher;
	double start = now_ms(), seconds;

	if (threads < 1 || threads > 64)
		return kc_fail(err, KC_VALIDATION, "bench: 1..64 threads");
	pthread_mutex_init(&b.lock, NULL);
	if (refresh)
		pthread_create(&refresher, NULL, refresh_thread, &b);
	for (long t = 0; t < threads; t++)
		pthread_create(&tid[t], NULL, bench_thread, &b);
	for (long t = 0; t < threads; t++)
		pthread_join(tid[t], NULL);
	seconds = (now_ms() - start) / 1e3;
	pthread_mutex_lock(&b.lock);
	b.done = 1;
	pthread_mutex_unlock(&b.lock);
	if (refresh)
		pthread_join(refresher, NULL);
	pthread_mutex_destroy(&b.lock);
	json_object_set_new(out, "refreshes", json_integer(b.refreshes));
	json_object_set_new(out, "ok", json_integer(b.ok));
	json_object_set_new(out, "failed", json_integer(b.failed));
	json_object_set_new(out, "seconds", json_real(seconds));
	json_object_set_new(out, "calls_per_s", json_real((double)b.ok / seconds));
	json_object_set_new(out, "first_error", json_pack("{s:s, s:s}", "type", b.first_error.type,
			"message", b.first_error.message));
	return KC_OK;
}

/* ---- the loop --------------------------------------------------------------------------- */

struct command {
	const char *op;
	enum kc_status (*run)(json_t *cmd, json_t *out, struct kc_error *err);
	int needs_open;
};

static const struct command commands[] = {
	{ "open", do_open, 0 }, { "principal", do_principal, 1 }, { "gdk", do_gdk, 1 },
	{ "decrypt", do_decrypt, 1 }, { "encrypt", do_encrypt, 1 },
	{ "re_encrypt", do_re_encrypt, 1 }, { "create_key", do_create_key, 1 },
	{ "describe", do_describe, 1 }, { "list", do_list, 1 }, { "alias", do_alias, 1 },
	{ "create_alias", do_alias, 1 }, { "enable", do_key_change, 1 },
	{ "rotate", do_key_change, 1 }, { "set_principal", do_key_change, 1 },
	{ "bench", do_bench, 1 }, { "close", do_close, 0 },
};

static enum kc_status run_command(json_t *cmd, json_t *out, struct kc_error *err)
{
	const char *op = str(cmd, "op");

	for (size_t i = 0; op && i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(op, commands[i].op) != 0)
			continue;
		if (commands[i].needs_open && !kc)
			return kc_fail(err, KC_VALIDATION, "%s: no keyclient open", op);
		return commands[i].run(cmd, out, err);
	}
	return kc_fail(err, KC_VALIDATION, "unknown op %s", op ? op : "(none)");
}

static void answer(json_t *cmd)
{
	struct kc_error err = { 0 };
	json_t *out = json_object();
	double start = now_ms();
	enum kc_status rc;

	rc = cmd ? run_command(cmd, out, &err) : kc_fail(&err, KC_VALIDATION, "not a JSON command");
	json_object_set_new(out, "status", json_string(rc == KC_OK ? "OK" : err.type));
	json_object_set_new(out, "message", json_string(err.message));
	json_object_set_new(out, "elapsed_ms", json_real(now_ms() - start));
	json_dumpf(out, stdout, JSON_COMPACT);
	fputc('\n', stdout);
	fflush(stdout);
	json_decref(out);
}

int main(void)
{
	char *line = malloc(LINE_MAX_LEN);

	if (kmsfs_crypto_init() != 0 || !line)
		return 1;
	while (fgets(line, LINE_MAX_LEN, stdin)) {
		json_t *cmd = json_loads(line, 0, NULL);

		answer(cmd);
		json_decref(cmd);
	}
	keyclient_free(kc);
	kc_audit_close(audit);
	free(line);
	return 0;
}
