/*
 * remote_http.c - one AWS KMS JSON 1.1 call over libcurl.
 *
 * A call takes an idle connection from the keyclient's pool (or makes
 * one), so each thread in a call has its own libcurl handle and the
 * handles' kept-alive connections outlive the call; nothing serialises
 * the FUSE daemon's threads but the moment of taking and giving back.
 *
 * Each attempt is signed afresh (X-Amz-Date moves on) with the caller's
 * principal's credentials, or goes unsigned when it has none. Network
 * errors, timeouts, 5xx and throttling answers are retried with
 * exponential backoff and full jitter (AWS's recommendation: a random
 * wait between 0 and min(max, base * 2^attempt)); any other answer is
 * final. libcurl itself re-sends once on a fresh connection when a kept
 * one turns out dead before anything came back, so a restarted service
 * costs no attempt.
 *
 * Secrets: the request body (Encrypt's plaintext) and the answer
 * (Decrypt's and GenerateDataKey's Plaintext) live in buffers from
 * kmsfs_secure_alloc, wiped after every call. The Plaintext field is
 * decoded from base64 straight into the caller's buffer and blanked
 * before jansson sees the answer, so no copy lands in jansson's heap.
 * What this cannot reach: libcurl's and OpenSSL's own receive buffers,
 * which hold the answer bytes until the connection's next use or close.
 */
#include "crypto.h"
#include "remote_internal.h"
#include "sigv4.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <sodium.h>

#define BUFFER_FIRST 4096
#define USER_AGENT "kmsfs-keyclient/0.1"
#define CONTENT_TYPE "application/x-amz-json-1.1"

struct kc_remote_conn {
	struct kc_remote_conn *next;
	CURL *curl;
	uint8_t *body;               /* the request body (secure) */
	size_t body_cap;
	uint8_t *answer;             /* the response body (secure) */
	size_t answer_len;
	size_t answer_cap;
	int answer_refused;          /* too long, or no secure memory for it */
	char curl_error[CURL_ERROR_SIZE];
};

/* ---- process set-up ----------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_ready = -1;

static void curl_setup(void)
{
	curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

int kc_remote_http_init(void)
{
	pthread_once(&curl_once, curl_setup);
	return curl_ready;
}

/* ---- secure buffers ----------------------------------------------------------------- */

/* Make *buf hold at least need bytes, keeping its first keep bytes. 0 or -1. */
static int grow_secure(uint8_t **buf, size_t *cap, size_t need, size_t keep)
{
	size_t new_cap = *cap ? *cap : BUFFER_FIRST;
	uint8_t *bigger;

	while (new_cap < need)
		new_cap *= 2;
	if (new_cap == *cap)
		return 0;
	bigger = kmsfs_secure_alloc(new_cap);
	if (!bigger)
		return -1;
	if (keep)
		memcpy(bigger, *buf, keep);
	kmsfs_secure_free(*buf);   /* wipes the old copy */
	*buf = bigger;
	*cap = new_cap;
	return 0;
}

static size_t on_answer_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct kc_remote_conn *conn = arg;
	size_t len = size * nmemb;

	if (conn->answer_len + len > KC_REMOTE_RESPONSE_MAX ||
	    grow_secure(&conn->answer, &conn->answer_cap, conn->answer_len + len,
			    conn->answer_len) != 0) {
		conn->answer_refused = 1;
		return 0;   /* CURLE_WRITE_ERROR */
	}
	memcpy(conn->answer + conn->answer_len, data, len);
	conn->answer_len += len;
	return len;
}

/* ---- the connection pool ------------------------------------------------------------ */

static void conn_free(struct kc_remote_conn *conn)
{
	if (!conn)
		return;
	if (conn->curl)
		curl_easy_cleanup(conn->curl);
	kmsfs_secure_free(conn->body);
	kmsfs_secure_free(conn->answer);
	free(conn);
}

/* What every request of this keyclient shares: set once per handle. */
static int conn_configure(const struct kc_remote *remote, struct kc_remote_conn *conn)
{
	CURL *c = conn->curl;
	int bad = 0;

	bad |= curl_easy_setopt(c, CURLOPT_URL, remote->url) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;   /* threads: no SIGALRM */
	bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, remote->connect_timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, remote->request_timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
	if (remote->ca_file)
		bad |= curl_easy_setopt(c, CURLOPT_CAINFO, remote->ca_file) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_USERAGENT, USER_AGENT) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_POST, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_answer_data) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, conn) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, conn->curl_error) != CURLE_OK;
	return bad ? -1 : 0;
}

static struct kc_remote_conn *conn_new(const struct kc_remote *remote)
{
	struct kc_remote_conn *conn = calloc(1, sizeof *conn);

	if (!conn)
		return NULL;
	conn->curl = curl_easy_init();
	if (!conn->curl || conn_configure(remote, conn) != 0) {
		conn_free(conn);
		return NULL;
	}
	return conn;
}

static struct kc_remote_conn *conn_take(struct kc_remote *remote)
{
	struct kc_remote_conn *conn;

	pthread_mutex_lock(&remote->pool_lock);
	conn = remote->idle;
	if (conn)
		remote->idle = conn->next;
	pthread_mutex_unlock(&remote->pool_lock);
	return conn ? conn : conn_new(remote);
}

/* Wipe what the call left in the buffers and park the connection for the next call. */
static void conn_give_back(struct kc_remote *remote, struct kc_remote_conn *conn, size_t body_len)
{
	if (conn->body)
		sodium_memzero(conn->body, body_len);
	if (conn->answer)
		sodium_memzero(conn->answer, conn->answer_cap);
	conn->answer_len = 0;
	pthread_mutex_lock(&remote->pool_lock);
	conn->next = remote->idle;
	remote->idle = conn;
	pthread_mutex_unlock(&remote->pool_lock);
}

void kc_remote_pool_free(struct kc_remote *remote)
{
	struct kc_remote_conn *conn = remote->idle;

	while (conn) {
		struct kc_remote_conn *next = conn->next;

		conn_free(conn);
		conn = next;
	}
	remote->idle = NULL;
}

/* ---- the request ------------------------------------------------------------------- */

/* Write {"<name>":"<base64 secret>" at the start of body; returns the length written. */
static size_t put_secret_field(uint8_t *body, const struct kc_remote_call *call)
{
	size_t at = (size_t)sprintf((char *)body, "{\"%s\":\"", call->secret_in_name);
	size_t encoded = sodium_base64_ENCODED_LEN(call->secret_in_len, sodium_base64_VARIANT_ORIGINAL);

	sodium_bin2base64((char *)body + at, encoded, call->secret_in, call->secret_in_len,
			sodium_base64_VARIANT_ORIGINAL);
	at += strlen((char *)body + at);
	body[at++] = '"';
	return at;
}

/*
 * The body in the connection's secure buffer: the request object, with
 * the secret field (if any) written in front of its members by hand so
 * the secret never passes through jansson.
 */
static enum kc_status build_body(struct kc_remote_conn *conn, const struct kc_remote_call *call,
		size_t *body_len, struct kc_error *err)
{
	size_t json_len = json_dumpb(call->request, NULL, 0, JSON_COMPACT);
	size_t secret_len = 0, at = 0;

	*body_len = 0;
	if (json_len < 2)
		return kc_fail(err, KC_INTERNAL, "%s: request could not be serialised", call->operation);
	if (call->secret_in)
		secret_len = strlen(call->secret_in_name) + 8 +
			sodium_base64_ENCODED_LEN(call->secret_in_len, sodium_base64_VARIANT_ORIGINAL);
	if (grow_secure(&conn->body, &conn->body_cap, json_len + secret_len + 1, 0) != 0)
		return kc_fail(err, KC_INTERNAL, "%s: out of secure memory for the request",
				call->operation);
	if (call->secret_in)
		at = put_secret_field(conn->body, call);
	json_dumpb(call->request, (char *)conn->body + at, json_len, JSON_COMPACT);
	if (at == 0) {
		*body_len = json_len;
	} else if (json_len > 2) {   /* the object's '{' becomes the separator */
		conn->body[at] = ',';
		*body_len = at + json_len;
	} else {                     /* "{}": the secret field was all */
		conn->body[at] = '}';
		*body_len = at + 1;
	}
	return KC_OK;
}

static void amz_date_now(char out[KC_SIGV4_AMZ_DATE_LEN + 1])
{
	time_t now = time(NULL);
	struct tm utc;

	gmtime_r(&now, &utc);
	strftime(out, KC_SIGV4_AMZ_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &utc);
}

/* Append "name: value"; the line is wiped (it may be the session token) once libcurl has it. */
static int add_header(struct curl_slist **list, const char *name, const char *value)
{
	size_t len = strlen(name) + strlen(value) + 3;
	char *line = malloc(len);
	struct curl_slist *longer = NULL;

	if (line) {
		snprintf(line, len, "%s: %s", name, value);
		longer = curl_slist_append(*list, line);
		sodium_memzero(line, len);
		free(line);
	}
	if (!longer)
		return -1;
	*list = longer;
	return 0;
}

/* Headers as a list for libcurl, and - last - "Expect:" and "Accept:" to drop curl's own. */
static int header_list(const struct kc_http_header *headers, size_t count,
		const char *authorization, struct curl_slist **out)
{
	struct curl_slist *list = NULL;
	int bad = 0;

	for (size_t i = 0; i < count && !bad; i++)
		bad = add_header(&list, headers[i].name, headers[i].value);
	if (!bad && authorization)
		bad = add_header(&list, "Authorization", authorization);
	if (!bad)
		bad = !(list = curl_slist_append(list, "Expect:"));
	if (!bad)
		bad = !(list = curl_slist_append(list, "Accept:"));
	if (bad) {
		curl_slist_free_all(list);
		return -1;
	}
	*out = list;
	return 0;
}

/*
 * The signed (or, for a principal without credentials, unsigned) header
 * list for one attempt. The credentials are held only while signing.
 */
static enum kc_status build_headers(struct kc_remote *remote, const struct kc_remote_call *call,
		const uint8_t *body, size_t body_len, struct curl_slist **out, struct kc_error *err)
{
	char target[128], amz_date[KC_SIGV4_AMZ_DATE_LEN + 1];
	struct kc_http_header headers[5] = {
		{ "Host", remote->host },
		{ "Content-Type", CONTENT_TYPE },
		{ "X-Amz-Target", target },
		{ "X-Amz-Date", amz_date },
	};
	struct kc_sigv4_request req = {
		.method = "POST", .path = remote->path, .headers = headers, .header_count = 4,
		.body = body, .body_len = body_len,
	};
	const struct kc_remote_credentials *creds;
	char *authorization = NULL;
	enum kc_status rc = KC_OK;

	snprintf(target, sizeof target, "TrentService.%s", call->operation);
	amz_date_now(amz_date);
	creds = kc_remote_credentials_hold(remote, call->caller ? call->caller->principal : NULL);
	if (creds && creds->session_token)
		headers[req.header_count++] = (struct kc_http_header){ "X-Amz-Security-Token",
				creds->session_token };
	if (creds) {
		struct kc_sigv4_sign_params sign = {
			.access_key_id = creds->access_key_id,
			.secret_access_key = creds->secret_access_key,
			.session_token = creds->session_token,
			.region = remote->region, .service = "kms", .amz_date = amz_date,
		};

		rc = kc_sigv4_sign(&req, &sign, &authorization, err);
	}
	if (rc == KC_OK && header_list(headers, req.header_count, authorization, out) != 0)
		rc = kc_fail(err, KC_INTERNAL, "%s: out of memory for the request headers", call->operation);
	kc_remote_credentials_release(remote);
	free(authorization);
	return rc;
}

/* ---- the answer ---------------------------------------------------------------------- */

/* Index just past the JSON string that starts at s[i] ('"'), or 0 when it never ends. */
static size_t skip_string(const uint8_t *s, size_t len, size_t i)
{
	for (i++; i < len; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
	}
	return 0;
}

static size_t skip_space(const uint8_t *s, size_t len, size_t i)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/*
 * Where the top-level "Plaintext" member's string value lies: [*start,
 * *end) between its quotes. Only a scan: jansson checks the whole
 * answer afterwards. 0, or -1 when there is no such member.
 */
static int find_plaintext(const uint8_t *s, size_t len, size_t *start, size_t *end)
{
	static const char key[] = "\"Plaintext\"";
	int depth = 0;
	size_t i = 0, after, colon;

	while (i < len) {
		if (s[i] != '"') {
			depth += (s[i] == '{' || s[i] == '[') - (s[i] == '}' || s[i] == ']');
			i++;
			continue;
		}
		after = skip_string(s, len, i);
		if (!after)
			return -1;
		colon = skip_space(s, len, after);
		if (depth == 1 && after - i == sizeof key - 1 && !memcmp(s + i, key, sizeof key - 1) &&
		    colon < len && s[colon] == ':') {
			i = skip_space(s, len, colon + 1);
			after = i < len && s[i] == '"' ? skip_string(s, len, i) : 0;
			if (!after)
				return -1;
			*start = i + 1;
			*end = after - 1;
			return 0;
		}
		i = after;
	}
	return -1;
}

/* Undo JSON's optional "\/" escape in place; -1 on any other escape (not base64). */
static int unescape_base64(uint8_t *s, size_t *len)
{
	size_t in = 0, out = 0;

	while (in < *len) {
		if (s[in] == '\\') {
			if (in + 1 >= *len || s[in + 1] != '/')
				return -1;
			in++;
		}
		s[out++] = s[in++];
	}
	*len = out;
	return 0;
}

/* Decode the answer's Plaintext into the caller's buffer, then blank it in the answer. */
static enum kc_status take_plaintext(const struct kc_remote *remote, struct kc_remote_conn *conn,
		const struct kc_remote_call *call, struct kc_error *err)
{
	size_t start, end, b64_len, bin_len = 0;
	const char *b64_end = NULL;
	enum kc_status rc = KC_OK;

	*call->plaintext_len = 0;
	if (find_plaintext(conn->answer, conn->answer_len, &start, &end) != 0)
		return kc_fail(err, KC_INTERNAL, "key service %s: %s answer has no Plaintext",
				remote->endpoint, call->operation);
	b64_len = end - start;
	if (unescape_base64(conn->answer + start, &b64_len) != 0 ||
	    sodium_base642bin(call->plaintext_out, call->plaintext_cap,
			    (const char *)conn->answer + start, b64_len, NULL, &bin_len, &b64_end,
			    sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    b64_end != (const char *)conn->answer + start + b64_len) {
		sodium_memzero(call->plaintext_out, call->plaintext_cap);
		rc = kc_fail(err, KC_INTERNAL, "key service %s: %s answer's Plaintext is not base64 "
				"of at most %zu bytes", remote->endpoint, call->operation, call->plaintext_cap);
	} else {
		*call->plaintext_len = bin_len;
	}
	memset(conn->answer + start, 'A', end - start);   /* still a JSON string, now harmless */
	return rc;
}

static int blank_answer(const struct kc_remote_conn *conn)
{
	return skip_space(conn->answer, conn->answer_len, 0) == conn->answer_len;
}

/* A 200 answer: the plaintext taken out, the rest parsed into call->response. */
static enum kc_status read_answer(const struct kc_remote *remote, struct kc_remote_conn *conn,
		struct kc_remote_call *call, struct kc_error *err)
{
	json_error_t parse_error;
	enum kc_status rc;

	if (call->plaintext_out) {
		rc = take_plaintext(remote, conn, call, err);
		if (rc != KC_OK)
			return rc;
	}
	if (blank_answer(conn)) {   /* EnableKey and friends may answer with no body at all */
		call->response = json_object();
		return call->response ? KC_OK : kc_fail(err, KC_INTERNAL, "out of memory");
	}
	call->response = json_loadb((const char *)conn->answer, conn->answer_len, 0, &parse_error);
	if (json_is_object(call->response))
		return KC_OK;
	json_decref(call->response);
	call->response = NULL;
	/* parse_error.text may quote the answer: only its position goes in the message */
	return kc_fail(err, KC_INTERNAL, "key service %s: %s answer is not a JSON object "
			"(at byte %d of %zu)", remote->endpoint, call->operation, parse_error.position,
			conn->answer_len);
}

/* AWS's throttling error codes (the SDKs' standard retry list) and the transient ones. */
static int retryable_type(const char *type)
{
	static const char *const retryable[] = {
		"ThrottlingException", "Throttling", "ThrottledException", "RequestThrottledException",
		"TooManyRequestsException", "ProvisionedThroughputExceededException",
		"TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
		"LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
		"EC2ThrottledException", "RequestTimeout", "RequestTimeoutException",
	};

	for (size_t i = 0; i < sizeof retryable / sizeof retryable[0]; i++)
		if (strcmp(type, retryable[i]) == 0)
			return 1;
	return 0;
}

/* "com.amazonaws.kms#NotFoundException:http://..." -> "NotFoundException". */
static void error_type(json_t *doc, char out[64])
{
	const char *type = json_string_value(json_object_get(doc, "__type"));
	const char *hash;
	size_t len;

	if (!type)
		type = json_string_value(json_object_get(doc, "code"));
	out[0] = '\0';
	if (!type)
		return;
	hash = strrchr(type, '#');
	if (hash)
		type = hash + 1;
	len = strcspn(type, ":");
	snprintf(out, 64, "%.*s", (int)(len < 63 ? len : 63), type);
}

/* A non-200 answer: the AWS error it carries; *retry for 5xx and throttling. */
static enum kc_status answered_error(const struct kc_remote *remote,
		const struct kc_remote_conn *conn, const struct kc_remote_call *call, long http,
		int *retry, struct kc_error *err)
{
	json_t *doc = json_loadb((const char *)conn->answer, conn->answer_len, 0, NULL);
	const char *message = json_string_value(json_object_get(doc, "message"));
	char type[64];
	enum kc_status rc;

	error_type(doc, type);
	if (!message)
		message = json_string_value(json_object_get(doc, "Message"));
	*retry = http >= 500 || (type[0] && retryable_type(type));
	if (!type[0]) {
		rc = kc_fail(err, http >= 500 ? KC_DEPENDENCY_TIMEOUT : KC_INTERNAL,
				"key service %s: %s answered HTTP %ld without an AWS error", remote->endpoint,
				call->operation, http);
	} else {
		rc = kc_fail(err, kc_status_from_type(type), "%s", message ? message : "");
		if (err)   /* keep the service's own type name, known to kc_status or not */
			snprintf(err->type, sizeof err->type, "%s", type);
	}
	json_decref(doc);
	return rc;
}

/* ---- one attempt and the retries ------------------------------------------------------- */

static int retryable_curl(CURLcode code)
{
	switch (code) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_AGAIN:
		return 1;
	default:   /* TLS verification, a bad CA file, a bad URL: the same next time */
		return 0;
	}
}

/* No answer. The message names the endpoint, never the request. */
static enum kc_status transport_failure(const struct kc_remote *remote,
		const struct kc_remote_conn *conn, CURLcode code, int *retry, struct kc_error *err)
{
	const char *why = conn->curl_error[0] ? conn->curl_error : curl_easy_strerror(code);

	*retry = retryable_curl(code);
	if (conn->answer_refused)
		return kc_fail(err, KC_INTERNAL, "key service %s: answer longer than %u bytes or out "
				"of secure memory", remote->endpoint, KC_REMOTE_RESPONSE_MAX);
	return kc_fail(err, KC_DEPENDENCY_TIMEOUT, "key service %s unreachable: %s", remote->endpoint,
			why);
}

static enum kc_status send_once(struct kc_remote *remote, struct kc_remote_conn *conn,
		const struct kc_remote_call *call, size_t body_len, int *retry, struct kc_error *err)
{
	struct curl_slist *headers = NULL;
	long http = 0;
	CURLcode code;
	enum kc_status rc;

	*retry = 0;
	conn->answer_len = 0;
	conn->answer_refused = 0;
	conn->curl_error[0] = '\0';
	rc = build_headers(remote, call, conn->body, body_len, &headers, err);
	if (rc != KC_OK)
		goto out;
	curl_easy_setopt(conn->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(conn->curl, CURLOPT_POSTFIELDS, (const char *)conn->body);
	curl_easy_setopt(conn->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	code = curl_easy_perform(conn->curl);
	if (code != CURLE_OK) {
		rc = transport_failure(remote, conn, code, retry, err);
		goto out;
	}
	curl_easy_getinfo(conn->curl, CURLINFO_RESPONSE_CODE, &http);
	if (http != 200)
		rc = answered_error(remote, conn, call, http, retry, err);
out:
	curl_easy_setopt(conn->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(headers);
	return rc;
}

/* Full jitter: a random wait in [0, min(max, base * 2^attempt)] milliseconds. */
static void backoff(const struct kc_remote *remote, int attempt)
{
	long ceiling = remote->backoff_base_ms;
	struct timespec wait;
	long ms;

	for (int i = 0; i < attempt && ceiling < remote->backoff_max_ms; i++)
		ceiling *= 2;
	if (ceiling > remote->backoff_max_ms)
		ceiling = remote->backoff_max_ms;
	ms = ceiling > 0 ? (long)randombytes_uniform((uint32_t)ceiling + 1) : 0;
	wait.tv_sec = ms / 1000;
	wait.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&wait, &wait) != 0 && errno == EINTR)
		;
}

static double seconds_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* Attempts until one is final or they run out; the last attempt's error stands. */
static enum kc_status send_with_retries(struct kc_remote *remote, struct kc_remote_conn *conn,
		const struct kc_remote_call *call, size_t body_len, struct kc_error *err)
{
	struct timespec start;
	enum kc_status rc;
	int attempt = 0, retry = 0;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		rc = send_once(remote, conn, call, body_len, &retry, err);
		if (!retry || attempt >= remote->retries)
			break;
		backoff(remote, attempt++);
	}
	if (rc == KC_DEPENDENCY_TIMEOUT && retry && err) {
		size_t used = strlen(err->message);

		snprintf(err->message + used, sizeof err->message - used, " (%d attempts in %.1f s)",
				attempt + 1, seconds_since(&start));
	}
	return rc;
}

enum kc_status kc_remote_call(struct kc_remote *remote, struct kc_remote_call *call,
		struct kc_error *err)
{
	struct kc_error call_err = { 0 };
	struct kc_remote_conn *conn;
	size_t body_len = 0;
	enum kc_status rc;

	call->response = NULL;
	conn = conn_take(remote);
	if (!conn)
		return kc_fail(err, KC_INTERNAL, "key service %s: no HTTP handle (out of memory)",
				remote->endpoint);
	rc = build_body(conn, call, &body_len, &call_err);
	if (rc != KC_OK)
		goto out;
	rc = send_with_retries(remote, conn, call, body_len, &call_err);
	if (rc == KC_OK)
		rc = read_answer(remote, conn, call, &call_err);
out:
	conn_give_back(remote, conn, body_len);
	if (rc != KC_OK && err)
		*err = call_err;   /* an attempt that failed before a later success leaves nothing */
	return rc;
}
