/*
 * request.c - one AWS KMS JSON 1.1 request, from the complete HTTP request
 * to the reply and its audit record.
 *
 *   route      POST / without a query, body within max_body
 *   sigv4      Authorization verified against the configured users
 *   protocol   Content-Type application/x-amz-json-1.1,
 *              X-Amz-Target TrentService.<Operation>
 *   body       a JSON object (empty counts as {})
 *   engine     kc_api_call as the signing user
 *   audit      one CloudTrail record, whatever happened; if it cannot be
 *              written the client gets KMSInternalException instead of the
 *              answer: no key is used without a trace
 *
 * Errors are AWS's: {"__type": "...", "message": "..."} with the HTTP
 * status AWS uses, and X-Amzn-ErrorType. A reply that carries plaintext
 * (Decrypt, GenerateDataKey...) is serialized into locked memory.
 */
#include "crypto.h"
#include "kmsd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "kms_api.h"

#define TARGET_PREFIX "TrentService."
#define CONTENT_TYPE "application/x-amz-json-1.1"
#define OPERATION_MAX 64

/* What one request has found out so far: feeds the reply, the audit and the log. */
struct outcome {
	const struct kmsd_user *user;
	char claimed_key_id[KC_SIGV4_FIELD_MAX];
	char operation[OPERATION_MAX + 1];   /* from X-Amz-Target, "" if none */
	int called;                          /* kc_api_call ran: result is filled */
	struct kc_api_result result;
	struct kc_error err;                 /* KC_OK, or why the request failed */
	unsigned http_status;                /* non-zero: overrides kc_status_http */
};

static enum kc_status refuse(struct outcome *out, unsigned http_status, enum kc_status status,
		const char *message)
{
	out->http_status = http_status;
	return kc_fail(&out->err, status, "%s", message);
}

/* ---- the checks, in order -------------------------------------------------------------- */

static enum kc_status check_route(const struct kmsd *kmsd, const struct kmsd_http_request *req,
		struct outcome *out)
{
	if (strcmp(req->method, "POST") != 0 || strcmp(req->path, "/") != 0 || req->query[0])
		return refuse(out, 404, KC_UNKNOWN_OPERATION,
			      "kmsd answers the AWS KMS JSON 1.1 protocol: POST / only");
	if (req->body_too_large) {
		kc_fail(&out->err, KC_VALIDATION, "request body is larger than max_body "
			"(%zu bytes)", kmsd->config->max_body);
		out->http_status = 413;
		return KC_VALIDATION;
	}
	return KC_OK;
}

/* out->operation from "TrentService.<Op>"; an odd target is kept as it came, for the audit. */
static void read_target(const struct kmsd_http_request *req, struct outcome *out)
{
	const char *target = kmsd_header(req, "X-Amz-Target");

	if (!target)
		return;
	if (!strncmp(target, TARGET_PREFIX, strlen(TARGET_PREFIX)))
		target += strlen(TARGET_PREFIX);
	snprintf(out->operation, sizeof out->operation, "%s", target);
}

static int valid_operation(const char *name)
{
	size_t len = strlen(name);

	return len > 0 && len <= OPERATION_MAX &&
	       strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == len;
}

/* "application/x-amz-json-1.1", optionally with parameters ("; charset=utf-8"). */
static int json_content_type(const char *value)
{
	size_t len = strlen(CONTENT_TYPE);

	if (!value || strncasecmp(value, CONTENT_TYPE, len) != 0)
		return 0;
	return value[len] == '\0' || value[len] == ';' || value[len] == ' ';
}

static enum kc_status check_protocol(const struct kmsd_http_request *req, struct outcome *out)
{
	const char *target = kmsd_header(req, "X-Amz-Target");

	if (!json_content_type(kmsd_header(req, "Content-Type")))
		return refuse(out, 404, KC_UNKNOWN_OPERATION,
			      "Content-Type must be " CONTENT_TYPE);
	if (!target)
		return refuse(out, 400, KC_UNKNOWN_OPERATION, "missing X-Amz-Target header");
	if (strncmp(target, TARGET_PREFIX, strlen(TARGET_PREFIX)) != 0 ||
	    !valid_operation(out->operation))
		return refuse(out, 400, KC_UNKNOWN_OPERATION,
			      "X-Amz-Target must be TrentService.<Operation>");
	return KC_OK;
}

/*
 * The body as a JSON object. jansson's own error text quotes the input,
 * which may be plaintext, so only the position goes into the message.
 */
static enum kc_status parse_body(const struct kmsd_http_request *req, json_t **body,
		struct outcome *out)
{
	json_error_t error;

	if (req->body_len == 0) {
		*body = json_object();
		return *body ? KC_OK : kc_fail(&out->err, KC_INTERNAL, "out of memory");
	}
	*body = json_loadb((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES,
			   &error);
	if (!*body)
		return kc_fail(&out->err, KC_SERIALIZATION, "request body is not valid JSON "
			       "(line %d, column %d)", error.line, error.column);
	if (!json_is_object(*body)) {
		json_decref(*body);
		*body = NULL;
		return kc_fail(&out->err, KC_SERIALIZATION,
			       "request body must be a JSON object");
	}
	return KC_OK;
}

static enum kc_status call_engine(struct kmsd *kmsd, const struct kmsd_http_request *req,
		json_t *body, struct outcome *out)
{
	const struct kmsd_user *user = out->user;
	struct kc_caller caller = {
		.principal = user->arn, .access_key_id = user->access_key_id,
		.source_ip = req->source_ip, .user_agent = kmsd_header(req, "User-Agent"),
		.identity_allow = (const char *const *)user->allow,
	};

	out->called = 1;
	return kc_api_call(kmsd->kc, out->operation, body, &caller, &out->result, &out->err);
}

/* Every check, then the engine. out->err says how far it got. */
static void process(struct kmsd *kmsd, const struct kmsd_http_request *req,
		struct outcome *out)
{
	json_t *body = NULL;

	read_target(req, out);
	if (check_route(kmsd, req, out) != KC_OK)
		return;
	if (kmsd_authenticate(kmsd, req, &out->user, out->claimed_key_id,
			      sizeof out->claimed_key_id, &out->err) != KC_OK)
		return;
	if (check_protocol(req, out) != KC_OK || parse_body(req, &body, out) != KC_OK)
		return;
	call_engine(kmsd, req, body, out);
	json_decref(body);
}

/* ---- the reply ------------------------------------------------------------------------- */

void kmsd_reply_body_free(char *body, size_t len, int secure)
{
	if (!body)
		return;
	if (secure) {
		sodium_memzero(body, len);
		kmsfs_secure_free(body);
	} else {
		free(body);
	}
}

/* Does a response carry plaintext (Plaintext, PrivateKeyPlaintext)? */
static int holds_plaintext(json_t *response)
{
	const char *name;
	json_t *value;

	json_object_foreach(response, name, value)
		if (strstr(name, "Plaintext"))
			return 1;
	return 0;
}

/* JSON text of value, in locked memory when secure. NULL when out of memory. */
static char *dump_json(json_t *value, int secure, size_t *len)
{
	size_t size = kmsd_json_out_size(value);
	char *text;

	text = secure ? kmsfs_secure_alloc(size + 1) : malloc(size + 1);
	if (!text)
		return NULL;
	kmsd_json_out(value, text);
	text[size] = '\0';
	*len = size;
	return text;
}

static void error_reply(const struct kc_error *err, unsigned http_status,
		struct kmsd_reply *reply)
{
	const char *type = err->type[0] ? err->type : kc_status_type(KC_INTERNAL);
	json_t *body = json_pack("{s:s,s:o}", "__type", type,
				 "message", kmsd_json_text(err->message, sizeof err->message));

	reply->http_status = http_status ? http_status : (unsigned)kc_status_http(err->status);
	snprintf(reply->error_type, sizeof reply->error_type, "%s", type);
	reply->secure = 0;
	reply->body = body ? dump_json(body, 0, &reply->body_len) : NULL;
	json_decref(body);
	if (!reply->body) {   /* last resort, still AWS-shaped */
		reply->body = strdup("{\"__type\":\"KMSInternalException\"}");
		reply->body_len = reply->body ? strlen(reply->body) : 0;
	}
}

static void success_reply(struct outcome *out, struct kmsd_reply *reply)
{
	json_t *response = out->result.response;
	json_t *empty = NULL;

	if (!response)
		response = empty = json_object();
	reply->secure = holds_plaintext(response);
	reply->body = dump_json(response, reply->secure, &reply->body_len);
	json_decref(empty);
	reply->http_status = 200;
	reply->error_type[0] = '\0';
	if (!reply->body) {
		kc_fail(&out->err, KC_INTERNAL, "out of memory writing the response");
		error_reply(&out->err, 0, reply);
	}
}

/* ---- audit and log -------------------------------------------------------------------- */

/* CloudTrail's readOnly for requests the engine never saw. */
static int guess_read_only(const char *operation)
{
	static const char *const prefixes[] = {
		"Describe", "List", "Get", "Encrypt", "Decrypt", "ReEncrypt", "Generate",
		"Sign", "Verify",
	};

	for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
		if (!strncmp(operation, prefixes[i], strlen(prefixes[i])))
			return 1;
	return 0;
}

static int write_audit(struct kmsd *kmsd, const struct kmsd_http_request *req,
		const struct outcome *out, char err[KMSD_ERR_MAX])
{
	char event_id[KMSD_UUID_LEN + 1];
	int failed = out->err.status != KC_OK;
	struct kmsd_audit_event ev = {
		.request_id = req->request_id, .event_id = event_id,
		.event_time = req->received, .event_name = out->operation, .user = out->user,
		.claimed_key_id = out->claimed_key_id, .source_ip = req->source_ip,
		.user_agent = kmsd_header(req, "User-Agent"),
		.request_parameters = out->called ? out->result.audit_request : NULL,
		.response_elements = out->called && !failed ? out->result.audit_response : NULL,
		.error_code = failed ? out->err.type : NULL,
		.error_message = failed ? out->err.message : NULL,
		.read_only = out->called ? out->result.read_only : guess_read_only(out->operation),
		.key_arn = out->called ? out->result.key_arn : NULL,
	};

	kmsd_uuid_v4(event_id);
	return kmsd_audit_write(kmsd->audit, &ev, err);
}

static double elapsed_ms(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) * 1e3 +
	       (double)(now.tv_nsec - since->tv_nsec) / 1e6;
}

static void log_request(const struct kmsd *kmsd, const struct kmsd_http_request *req,
		const struct outcome *out, const struct kmsd_reply *reply)
{
	int server_fault = reply->http_status >= 500;

	if (!kmsd->verbose && !server_fault)
		return;
	if (server_fault)
		fprintf(stderr, "kmsd: request %s from %s (%s %s): %u %s: %s\n", req->request_id,
			req->source_ip, out->user ? out->user->name : "-",
			out->operation[0] ? out->operation : "-", reply->http_status,
			reply->error_type, out->err.message);
	else
		fprintf(stderr, "kmsd: %s %s %s %s %u%s%s %.1fms\n", req->request_id,
			req->source_ip, out->user ? out->user->name : "-",
			out->operation[0] ? out->operation : "-", reply->http_status,
			reply->error_type[0] ? " " : "", reply->error_type, elapsed_ms(&req->started));
}

void kmsd_request_run(struct kmsd *kmsd, const struct kmsd_http_request *req,
		struct kmsd_reply *reply)
{
	struct outcome out = { 0 };
	char audit_err[KMSD_ERR_MAX];

	process(kmsd, req, &out);
	if (out.err.status == KC_OK)
		success_reply(&out, reply);
	else
		error_reply(&out.err, out.http_status, reply);
	if (write_audit(kmsd, req, &out, audit_err) != 0) {
		fprintf(stderr, "kmsd: request %s: cannot write its audit record: %s\n",
			req->request_id, audit_err);
		/* No answer without a record: drop the result (it may hold plaintext). */
		kmsd_reply_body_free(reply->body, reply->body_len, reply->secure);
		kc_fail(&out.err, KC_INTERNAL, "the audit trail cannot be written");
		error_reply(&out.err, 0, reply);
	}
	log_request(kmsd, req, &out, reply);
	if (out.called)
		kc_api_result_free(&out.result);
}
