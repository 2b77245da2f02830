/*
 * test_sigv4.c - AWS Signature Version 4 (keyclient/sigv4.h) against the
 * AWS SigV4 test suite, read in place, in both directions:
 *
 *   sign    request.txt + context.json must give header-canonical-
 *           request.txt, header-string-to-sign.txt, header-signature.txt
 *           byte for byte, and kc_sigv4_sign the Authorization header of
 *           header-signed-request.txt;
 *   verify  header-signed-request.txt must verify with the case's
 *           credentials at the case's time, and stop verifying - with the
 *           exact status - once its signature, body, a signed header, the
 *           clock, the access key, the Authorization header or the
 *           region is wrong.
 *
 * Then what the suite does not cover: a request signed by botocore (the
 * AWS CLI's signer), malformed Authorization headers, the Date header,
 * x-amz-content-sha256, the key cache, and verification throughput.
 *
 * Usage: test_sigv4 DIR (the suite: one directory per case). A missing
 * directory, or one with fewer than MIN_CASES cases, is a failure.
 */
#include "sigv4.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#define MIN_CASES 30
#define MAX_HEADERS 32

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static int failures;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, __func__, #cond); \
		failures++; \
	} \
} while (0)

/* expr must return want, and (when want_text is not NULL) say want_text. */
#define CHECK_FAIL(expr, want, want_text, err) do { \
	enum kc_status got_ = (expr); \
	if (got_ != (want) || ((want_text) && !strstr((err).message, (want_text) ? (want_text) : ""))) { \
		fprintf(stderr, "%s:%d: %s: %s gave %s (%s), want %s%s%s\n", __FILE__, __LINE__, \
			__func__, #expr, kc_status_type(got_), (err).message, kc_status_type(want), \
			(want_text) ? " saying " : "", (want_text) ? (want_text) : ""); \
		failures++; \
	} \
} while (0)

#define CHECK_OK(expr, err) do { \
	enum kc_status got_ = (expr); \
	if (got_ != KC_OK) { \
		fprintf(stderr, "%s:%d: %s: %s gave %s: %s\n", __FILE__, __LINE__, __func__, \
			#expr, kc_status_type(got_), (err).message); \
		failures++; \
	} \
} while (0)

/* ---- files ------------------------------------------------------------------ */

/* dir/name/file, NUL-terminated and malloc'ed; NULL (reported) if unreadable. */
static char *read_case_file(const char *dir, const char *name, const char *file, size_t *len)
{
	char path[4096];
	FILE *f;
	char *data = NULL;
	long size;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, name, file);
	f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (data = malloc((size_t)size + 1)) && fread(data, 1, (size_t)size, f) == (size_t)size) {
		data[size] = '\0';
		if (len)
			*len = (size_t)size;
	} else {
		fprintf(stderr, "%s: cannot read\n", path);
		free(data);
		data = NULL;
	}
	fclose(f);
	return data;
}

static int case_has(const char *dir, const char *name, const char *file)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, name, file);
	f = fopen(path, "rb");
	if (f)
		fclose(f);
	return f != NULL;
}

/* ---- an HTTP request as the suite writes it ------------------------------------ */

/*
 * Parsed in place: every field points into text. A header value continued
 * on following lines (obs-fold) keeps its line breaks; canonicalisation
 * folds them like any whitespace.
 */
struct http_message {
	char *text;
	struct kc_http_header headers[MAX_HEADERS];
	struct kc_sigv4_request req;
};

/* "GET /a b?x=1 HTTP/1.1": the target may hold spaces, so the version is the last word. */
static int parse_request_line(char *line, struct kc_sigv4_request *req)
{
	char *first = strchr(line, ' '), *last = strrchr(line, ' '), *q;

	if (!first || first == last)
		return -1;
	*first = '\0';
	*last = '\0';
	req->method = line;
	req->path = first + 1;
	q = strchr(first + 1, '?');
	if (q) {
		*q = '\0';
		req->query = q + 1;
	} else {
		req->query = "";
	}
	return 0;
}

/* One "Name:value" header plus continuation lines, starting at *p. */
static int parse_header(char **p, struct http_message *m)
{
	char *line = *p, *colon, *end;

	end = strchr(line, '\n');
	while (end && (end[1] == ' ' || end[1] == '\t'))
		end = strchr(end + 1, '\n');
	*p = end ? end + 1 : line + strlen(line);
	if (end)
		*end = '\0';
	colon = strchr(line, ':');
	if (!colon || m->req.header_count == MAX_HEADERS)
		return -1;
	*colon = '\0';
	m->headers[m->req.header_count].name = line;
	m->headers[m->req.header_count].value = colon + 1;
	m->req.header_count++;
	return 0;
}

static int parse_message(char *text, size_t len, struct http_message *m)
{
	char *p = text, *eol;

	memset(m, 0, sizeof(*m));
	m->text = text;
	m->req.headers = m->headers;
	eol = strchr(p, '\n');
	if (eol)
		*eol = '\0';
	if (parse_request_line(p, &m->req))
		return -1;
	p = eol ? eol + 1 : p + strlen(p);
	while (*p && *p != '\n')
		if (parse_header(&p, m))
			return -1;
	if (*p == '\n')
		p++;
	m->req.body = (const uint8_t *)p;
	m->req.body_len = len - (size_t)(p - text);
	return 0;
}

static const char *message_header(const struct http_message *m, const char *name)
{
	for (size_t i = 0; i < m->req.header_count; i++)
		if (!strcasecmp(m->headers[i].name, name))
			return m->headers[i].value;
	return NULL;
}

/* ---- a case's context.json -------------------------------------------------------- */

struct suite_context {
	char access_key_id[128];
	char secret[128];
	char token[1024];            /* "" for none */
	char region[64];
	char service[64];
	char amz_date[KC_SIGV4_AMZ_DATE_LEN + 1];
	time_t now;
	int normalize, sign_body, omit_session_token;
};

static void copy_json_string(json_t *obj, const char *key, char *out, size_t cap)
{
	const char *s = json_string_value(json_object_get(obj, key));

	snprintf(out, cap, "%s", s ? s : "");
}

/* "2015-08-30T12:36:00Z" -> now and "20150830T123600Z". */
static int parse_timestamp(const char *s, struct suite_context *c)
{
	struct tm tm = { 0 };
	char tail;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			&tm.tm_hour, &tm.tm_min, &tm.tm_sec, &tail) != 7 || tail != 'Z')
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	c->now = timegm(&tm);
	strftime(c->amz_date, sizeof(c->amz_date), "%Y%m%dT%H%M%SZ", &tm);
	return 0;
}

static int load_context(const char *dir, const char *name, struct suite_context *c)
{
	char *text = read_case_file(dir, name, "context.json", NULL);
	json_t *root, *creds;
	json_error_t jerr;
	int rc = -1;

	memset(c, 0, sizeof(*c));
	if (!text)
		return -1;
	root = json_loads(text, 0, &jerr);
	free(text);
	creds = json_object_get(root, "credentials");
	if (root && creds) {
		copy_json_string(creds, "access_key_id", c->access_key_id, sizeof(c->access_key_id));
		copy_json_string(creds, "secret_access_key", c->secret, sizeof(c->secret));
		copy_json_string(creds, "token", c->token, sizeof(c->token));
		copy_json_string(root, "region", c->region, sizeof(c->region));
		copy_json_string(root, "service", c->service, sizeof(c->service));
		/* "normalize" defaults to true in the suite; the flags to false. */
		c->normalize = !json_is_false(json_object_get(root, "normalize"));
		c->sign_body = json_is_true(json_object_get(root, "sign_body"));
		c->omit_session_token = json_is_true(json_object_get(root, "omit_session_token"));
		rc = parse_timestamp(json_string_value(json_object_get(root, "timestamp")) ?
				json_string_value(json_object_get(root, "timestamp")) : "", c);
	}
	if (rc)
		fprintf(stderr, "%s/%s/context.json: malformed\n", dir, name);
	json_decref(root);
	return rc;
}

static unsigned context_flags(const struct suite_context *c)
{
	return c->normalize ? 0 : KC_SIGV4_NO_NORMALIZE;
}

/* ---- the sign direction ------------------------------------------------------------ */

/* The file's text without the one trailing newline some editors add. */
static int same_text(const char *got, const char *want)
{
	size_t want_len = strlen(want);

	if (want_len > 0 && want[want_len - 1] == '\n' && strlen(got) == want_len - 1)
		want_len--;
	return strlen(got) == want_len && !memcmp(got, want, want_len);
}

static void check_step(const char *name, const char *step, const char *got, const char *want)
{
	if (want && same_text(got, want))
		return;
	fprintf(stderr, "%s: %s differs\n--- got ---\n%s\n--- want ---\n%s\n", name, step, got,
		want ? want : "(file missing)");
	failures++;
}

/*
 * Canonical request, string to sign and signature of request.txt with the
 * headers the signer adds (X-Amz-Date, the token unless the case adds it
 * after signing, X-Amz-Content-Sha256 when the case signs the body).
 */
static void check_sign_steps(const char *dir, const char *name, const struct suite_context *c,
		struct http_message *m)
{
	char signed_headers[KC_SIGV4_SIGNED_HEADERS_MAX], sts[KC_SIGV4_STRING_TO_SIGN_MAX];
	char signature[KC_SIGV4_HEX_LEN + 1], body_hash[KC_SIGV4_HEX_LEN + 1], *canonical = NULL;
	char *want_creq = read_case_file(dir, name, "header-canonical-request.txt", NULL);
	char *want_sts = read_case_file(dir, name, "header-string-to-sign.txt", NULL);
	char *want_sig = read_case_file(dir, name, "header-signature.txt", NULL);
	char date8[9];
	uint8_t key[KC_SIGV4_KEY_LEN];
	struct kc_sigv4_request req = m->req;
	struct kc_http_header headers[MAX_HEADERS + 3];
	struct kc_error err = { 0 };

	memcpy(headers, m->headers, m->req.header_count * sizeof(headers[0]));
	req.headers = headers;
	headers[req.header_count++] = (struct kc_http_header){ "X-Amz-Date", c->amz_date };
	if (*c->token && !c->omit_session_token)
		headers[req.header_count++] = (struct kc_http_header){ "X-Amz-Security-Token", c->token };
	kc_sigv4_sha256_hex(req.body, req.body_len, body_hash);
	if (c->sign_body)
		headers[req.header_count++] = (struct kc_http_header){ "X-Amz-Content-Sha256", body_hash };

	CHECK_OK(kc_sigv4_signed_headers(&req, signed_headers, &err), err);
	CHECK_OK(kc_sigv4_canonical_request(&req, signed_headers, NULL, context_flags(c),
			&canonical, &err), err);
	check_step(name, "canonical request", canonical ? canonical : "", want_creq);
	CHECK_OK(kc_sigv4_string_to_sign(c->amz_date, c->region, c->service, canonical ? canonical : "",
			canonical ? strlen(canonical) : 0, sts, &err), err);
	check_step(name, "string to sign", sts, want_sts);
	snprintf(date8, sizeof(date8), "%.8s", c->amz_date);
	CHECK_OK(kc_sigv4_signing_key(c->secret, date8, c->region, c->service, key, &err), err);
	CHECK_OK(kc_sigv4_signature(key, sts, strlen(sts), signature, &err), err);
	check_step(name, "signature", signature, want_sig);
	free(canonical);
	free(want_creq);
	free(want_sts);
	free(want_sig);
}

/* kc_sigv4_sign on request.txt must produce header-signed-request.txt's Authorization. */
static void check_sign_authorization(const char *dir, const char *name,
		const struct suite_context *c, struct http_message *m)
{
	size_t signed_len;
	char *signed_text = read_case_file(dir, name, "header-signed-request.txt", &signed_len);
	char body_hash[KC_SIGV4_HEX_LEN + 1], *authorization = NULL;
	struct http_message signed_msg;
	struct kc_sigv4_request req = m->req;
	struct kc_http_header headers[MAX_HEADERS + 1];
	struct kc_sigv4_sign_params p = {
		.access_key_id = c->access_key_id, .secret_access_key = c->secret,
		.session_token = *c->token && !c->omit_session_token ? c->token : NULL,
		.region = c->region, .service = c->service, .amz_date = c->amz_date,
		.flags = context_flags(c),
	};
	struct kc_error err = { 0 };

	memcpy(headers, m->headers, m->req.header_count * sizeof(headers[0]));
	req.headers = headers;
	kc_sigv4_sha256_hex(req.body, req.body_len, body_hash);
	if (c->sign_body)
		headers[req.header_count++] = (struct kc_http_header){ "X-Amz-Content-Sha256", body_hash };
	CHECK_OK(kc_sigv4_sign(&req, &p, &authorization, &err), err);
	if (signed_text && !parse_message(signed_text, signed_len, &signed_msg))
		check_step(name, "Authorization from kc_sigv4_sign", authorization ? authorization : "",
				message_header(&signed_msg, "Authorization"));
	else
		check_step(name, "Authorization from kc_sigv4_sign", "", NULL);
	free(authorization);
	free(signed_text);
}

/* ---- the verify direction ------------------------------------------------------------ */

struct credential {
	const char *access_key_id, *secret;
};

static const char *lookup_one(const char *access_key_id, void *arg)
{
	const struct credential *cred = arg;

	return strcmp(access_key_id, cred->access_key_id) ? NULL : cred->secret;
}

static const char *lookup_none(const char *access_key_id, void *arg)
{
	return NULL;
}

static struct kc_sigv4_verify_params verify_params(const struct suite_context *c,
		struct credential *cred, struct kc_sigv4_key_cache *cache)
{
	cred->access_key_id = c->access_key_id;
	cred->secret = c->secret;
	return (struct kc_sigv4_verify_params){
		.region = c->region, .service = c->service, .now = c->now,
		.max_skew = KC_SIGV4_MAX_SKEW, .flags = context_flags(c),
		.lookup = lookup_one, .arg = cred, .cache = cache,
	};
}

/* m's request with header i's value replaced (or removed when value is NULL). */
static struct kc_sigv4_request with_header(const struct http_message *m, const char *name,
		const char *value, struct kc_http_header headers[MAX_HEADERS])
{
	struct kc_sigv4_request req = m->req;

	req.headers = headers;
	req.header_count = 0;
	for (size_t i = 0; i < m->req.header_count; i++) {
		if (strcasecmp(m->headers[i].name, name)) {
			headers[req.header_count++] = m->headers[i];
		} else if (value) {
			headers[req.header_count] = m->headers[i];
			headers[req.header_count++].value = value;
		}
	}
	return req;
}

/* Each way a request can go wrong, with the status AWS answers. */
static void check_verify_failures(const struct suite_context *c, const struct http_message *m,
		struct kc_sigv4_key_cache *cache)
{
	struct credential cred;
	struct kc_sigv4_verify_params p = verify_params(c, &cred, cache);
	struct kc_http_header headers[MAX_HEADERS];
	struct kc_sigv4_request req;
	char *auth = strdup(message_header(m, "Authorization")), *body = NULL;
	struct kc_error err = { 0 };

	/* one byte of the signature */
	auth[strlen(auth) - 1] = auth[strlen(auth) - 1] == '0' ? '1' : '0';
	req = with_header(m, "Authorization", auth, headers);
	CHECK_FAIL(kc_sigv4_verify(&req, &p, NULL, &err), KC_INVALID_SIGNATURE,
			"does not match the signature you provided", err);
	/* the body */
	body = malloc(m->req.body_len + 1);
	memcpy(body, m->req.body, m->req.body_len);
	body[m->req.body_len] = 'x';
	req = m->req;
	req.body = (const uint8_t *)body;
	req.body_len++;
	CHECK_FAIL(kc_sigv4_verify(&req, &p, NULL, &err), KC_INVALID_SIGNATURE, NULL, err);
	/* a signed header */
	req = with_header(m, "Host", "evil.example.com", headers);
	CHECK_FAIL(kc_sigv4_verify(&req, &p, NULL, &err), KC_INVALID_SIGNATURE,
			"does not match the signature you provided", err);
	/* the clock, both ways */
	p.now = c->now + KC_SIGV4_MAX_SKEW + 1;
	CHECK_FAIL(kc_sigv4_verify(&m->req, &p, NULL, &err), KC_INVALID_SIGNATURE,
			"Signature expired: 20150830T123600Z is now earlier than", err);
	p.now = c->now - KC_SIGV4_MAX_SKEW - 1;
	CHECK_FAIL(kc_sigv4_verify(&m->req, &p, NULL, &err), KC_INVALID_SIGNATURE,
			"Signature not yet current: 20150830T123600Z is still later than", err);
	p.now = c->now;
	/* the access key */
	p.lookup = lookup_none;
	CHECK_FAIL(kc_sigv4_verify(&m->req, &p, NULL, &err), KC_UNRECOGNIZED_CLIENT,
			"The security token included in the request is invalid.", err);
	p.lookup = lookup_one;
	/* no Authorization header */
	req = with_header(m, "Authorization", NULL, headers);
	CHECK_FAIL(kc_sigv4_verify(&req, &p, NULL, &err), KC_MISSING_AUTH,
			"Missing Authentication Token", err);
	/* the region */
	p.region = "us-west-2";
	CHECK_FAIL(kc_sigv4_verify(&m->req, &p, NULL, &err), KC_INVALID_SIGNATURE,
			"Credential should be scoped to a valid region, not 'us-east-1'", err);
	free(body);
	free(auth);
}

static void check_verify(const char *dir, const char *name, const struct suite_context *c,
		struct kc_sigv4_key_cache *cache)
{
	size_t len;
	char *text = read_case_file(dir, name, "header-signed-request.txt", &len);
	struct http_message m;
	struct credential cred;
	struct kc_sigv4_verify_params p = verify_params(c, &cred, cache);
	struct kc_sigv4_identity who = { 0 };
	struct kc_http_header headers[MAX_HEADERS + 1];
	struct kc_sigv4_request req;
	struct kc_error err = { 0 };

	if (!text || parse_message(text, len, &m) || !message_header(&m, "Authorization")) {
		fprintf(stderr, "%s: header-signed-request.txt missing or malformed\n", name);
		failures++;
		free(text);
		return;
	}
	CHECK_OK(kc_sigv4_verify(&m.req, &p, &who, &err), err);
	CHECK(!strcmp(who.access_key_id, c->access_key_id));
	CHECK(who.signed_at == c->now);
	/* again without the cache, and with a header nobody signed added */
	p.cache = NULL;
	CHECK_OK(kc_sigv4_verify(&m.req, &p, NULL, &err), err);
	memcpy(headers, m.headers, m.req.header_count * sizeof(headers[0]));
	req = m.req;
	req.headers = headers;
	headers[req.header_count++] = (struct kc_http_header){ "User-Agent", "aws-cli/2" };
	CHECK_OK(kc_sigv4_verify(&req, &p, NULL, &err), err);
	check_verify_failures(c, &m, cache);
	free(text);
}

/* ---- the suite ---------------------------------------------------------------------- */

struct suite_counts {
	unsigned cases, sign_passed, verify_passed;
};

static void run_case(const char *dir, const char *name, struct kc_sigv4_key_cache *cache,
		struct suite_counts *counts)
{
	struct suite_context c;
	struct http_message m;
	size_t len;
	char *text;
	int before;

	counts->cases++;
	if (load_context(dir, name, &c) ||
	    !(text = read_case_file(dir, name, "request.txt", &len))) {
		failures++;
		return;
	}
	if (parse_message(text, len, &m)) {
		fprintf(stderr, "%s: request.txt malformed\n", name);
		failures++;
		free(text);
		return;
	}
	before = failures;
	check_sign_steps(dir, name, &c, &m);
	check_sign_authorization(dir, name, &c, &m);
	counts->sign_passed += failures == before;
	before = failures;
	check_verify(dir, name, &c, cache);
	counts->verify_passed += failures == before;
	if (failures == before)
		printf("  ok  %s\n", name);
	else
		printf("  FAIL %s\n", name);
	free(text);
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The case directories (those with a request.txt), sorted. */
static size_t list_cases(const char *dir, char ***names)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	*names = NULL;
	if (!d) {
		fprintf(stderr, "cannot open the SigV4 test suite at %s: %s\n", dir, strerror(errno));
		return 0;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || !case_has(dir, e->d_name, "request.txt"))
			continue;
		*names = realloc(*names, (n + 1) * sizeof(**names));
		(*names)[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(*names, n, sizeof(**names), compare_names);
	return n;
}

static void test_suite(const char *dir)
{
	struct kc_sigv4_key_cache *cache = kc_sigv4_key_cache_new();
	struct suite_counts counts = { 0 };
	char **names;
	size_t n = list_cases(dir, &names);

	CHECK(cache != NULL);
	for (size_t i = 0; i < n; i++) {
		run_case(dir, names[i], cache, &counts);
		free(names[i]);
	}
	free(names);
	kc_sigv4_key_cache_free(cache);
	printf("sigv4 suite %s: %u cases, sign passed %u, verify passed %u\n", dir, counts.cases,
	       counts.sign_passed, counts.verify_passed);
	if (counts.cases < MIN_CASES) {
		fprintf(stderr, "only %u cases found in %s (want at least %d): is the suite there?\n",
			counts.cases, dir, MIN_CASES);
		failures++;
	}
}

/* ---- beyond the suite: what the AWS CLI sends ---------------------------------------- */

/*
 * An AWS CLI Encrypt call as botocore 1.43's SigV4Auth signs it (temporary
 * credentials; User-Agent unsigned), generated once with fixed
 * credentials and clock. On the wire it also carries Content-Length,
 * which botocore adds after signing. kmsfs must produce the same
 * signature and accept the request.
 */
#define CLI_AKID "AKIAKMSFSTEST0000001"
#define CLI_SECRET "kmsfs/Test+Secret/Key0123456789abcdefghij"
#define CLI_TOKEN "FQoGZXIvYXdzEXAMPLETOKEN//////////wEaDA=="
#define CLI_DATE "20240517T093015Z"
#define CLI_BODY "{\"KeyId\": \"alias/kmsfs\", \"Plaintext\": \"aGVsbG8=\"}"
#define CLI_AUTHORIZATION "AWS4-HMAC-SHA256 Credential=AKIAKMSFSTEST0000001/20240517/" \
	"eu-west-1/kms/aws4_request, SignedHeaders=content-type;host;x-amz-date;" \
	"x-amz-security-token;x-amz-target, " \
	"Signature=32f81fee81f3d148de72a3f248c573e673c6b5dcc300d681e19582b6b4cf6623"
#define CLI_DATE_HEADER 5   /* index of X-Amz-Date in cli_request's headers */

struct cli_request {
	struct kc_http_header headers[8];
	struct kc_sigv4_request req;
};

/*
 * The request as botocore signs it (authorization NULL) or as kmsd
 * receives it (with Content-Length and the Authorization header).
 */
static void cli_request(struct cli_request *r, const char *authorization)
{
	static const struct kc_http_header base[] = {
		{ "Host", "kms.eu-west-1.amazonaws.com" },
		{ "X-Amz-Target", "TrentService.Encrypt" },
		{ "Content-Type", "application/x-amz-json-1.1" },
		{ "User-Agent", "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.debian.12 "
				"prompt/off command/kms.encrypt" },
		{ "X-Amz-Security-Token", CLI_TOKEN },
		{ "X-Amz-Date", CLI_DATE },
	};
	size_t n = sizeof(base) / sizeof(base[0]);

	memcpy(r->headers, base, sizeof(base));
	if (authorization) {
		r->headers[n++] = (struct kc_http_header){ "Content-Length", "49" };
		r->headers[n++] = (struct kc_http_header){ "Authorization", authorization };
	}
	r->req = (struct kc_sigv4_request){
		.method = "POST", .path = "/", .query = "", .headers = r->headers,
		.header_count = n, .body = (const uint8_t *)CLI_BODY, .body_len = strlen(CLI_BODY),
	};
}

static const char *lookup_cli(const char *access_key_id, void *arg)
{
	return strcmp(access_key_id, CLI_AKID) ? NULL : CLI_SECRET;
}

static struct kc_sigv4_verify_params cli_params(struct kc_sigv4_key_cache *cache)
{
	struct tm tm = { .tm_year = 124, .tm_mon = 4, .tm_mday = 17, .tm_hour = 9,
			 .tm_min = 30, .tm_sec = 15 };

	return (struct kc_sigv4_verify_params){
		.region = "eu-west-1", .service = "kms", .now = timegm(&tm) + 60,
		.lookup = lookup_cli, .cache = cache,
	};
}

static void test_aws_cli_request(void)
{
	struct cli_request r;
	struct kc_sigv4_verify_params p = cli_params(NULL);
	struct kc_sigv4_sign_params sp = {
		.access_key_id = CLI_AKID, .secret_access_key = CLI_SECRET,
		.session_token = CLI_TOKEN, .region = "eu-west-1", .service = "kms",
		.amz_date = CLI_DATE,
	};
	struct kc_sigv4_identity who;
	char *authorization = NULL;
	struct kc_error err = { 0 };

	cli_request(&r, NULL);
	CHECK_OK(kc_sigv4_sign(&r.req, &sp, &authorization, &err), err);
	CHECK(authorization && !strcmp(authorization, CLI_AUTHORIZATION));
	free(authorization);
	cli_request(&r, CLI_AUTHORIZATION);
	CHECK_OK(kc_sigv4_verify(&r.req, &p, &who, &err), err);
	CHECK(!strcmp(who.access_key_id, CLI_AKID));
	p.service = "sts";
	CHECK_FAIL(kc_sigv4_verify(&r.req, &p, NULL, &err), KC_INVALID_SIGNATURE,
			"Credential should be scoped to correct service: 'sts'.", err);
}

/* ---- malformed Authorization headers and dates ----------------------------------------- */

static void check_incomplete(const char *authorization, const char *want_text)
{
	struct cli_request r;
	struct kc_sigv4_verify_params p = cli_params(NULL);
	struct kc_error err = { 0 };

	cli_request(&r, authorization);
	CHECK_FAIL(kc_sigv4_verify(&r.req, &p, NULL, &err), KC_INCOMPLETE_SIGNATURE, want_text, err);
}

static void test_malformed_authorization(void)
{
	struct kc_sigv4_auth auth;
	struct kc_error err = { 0 };

	CHECK_OK(kc_sigv4_parse_authorization("AWS4-HMAC-SHA256 Signature=ab,Credential=K/20240517/"
			"r/s/aws4_request,SignedHeaders=host", &auth, &err), err);
	CHECK(!strcmp(auth.access_key_id, "K") && !strcmp(auth.date, "20240517") &&
	      !strcmp(auth.region, "r") && !strcmp(auth.service, "s") &&
	      !strcmp(auth.terminator, "aws4_request") && !strcmp(auth.signed_headers, "host") &&
	      !strcmp(auth.signature, "ab"));
	check_incomplete("AWS4-HMAC-SHA1 Credential=x", "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA1'");
	check_incomplete("Bearer abc", "Unsupported AWS 'algorithm': 'Bearer'");
	check_incomplete("", "Unsupported AWS 'algorithm': ''");
	check_incomplete("AWS4-HMAC-SHA256", "Authorization header requires 'Credential' parameter. "
			"Authorization header requires 'Signature' parameter. Authorization header "
			"requires 'SignedHeaders' parameter. Authorization=AWS4-HMAC-SHA256");
	check_incomplete("AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host",
			"Authorization header requires 'Signature' parameter. Authorization=");
	check_incomplete("AWS4-HMAC-SHA256 Credential=a/b/c, SignedHeaders=host, Signature=00",
			"Credential must have exactly 5 slash-delimited elements, "
			"e.g. keyid/date/region/service/term, got 'a/b/c'");
	check_incomplete("AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders, Signature=00",
			"'SignedHeaders' not a valid key=value pair (missing equal-sign)");
	check_incomplete("AWS4-HMAC-SHA256 Signature=1, Signature=2, Credential=a/b/c/d/e, "
			"SignedHeaders=host", "more than one 'Signature'");
	check_incomplete("AWS4-HMAC-SHA256 Credential=" CLI_AKID "/20240517/eu-west-1/kms/"
			"aws4_request, SignedHeaders=x-amz-date, Signature=00",
			"'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
}

static void test_scope_and_dates(void)
{
	static const char *const scoped[][2] = {
		{ CLI_AKID "/20240518/eu-west-1/kms/aws4_request", "Date in Credential scope does "
		  "not match YYYYMMDD from ISO-8601 version of date from HTTP: '20240518' != "
		  "'20240517', from '20240517T093015Z'." },
		{ CLI_AKID "/20240517/eu-west-1/kms/aws5_request", "Credential should be scoped "
		  "with a valid terminator: 'aws4_request', not 'aws5_request'." },
	};
	struct cli_request r;
	struct kc_sigv4_verify_params p = cli_params(NULL);
	char authorization[512];
	struct kc_error err = { 0 };

	for (size_t i = 0; i < sizeof(scoped) / sizeof(scoped[0]); i++) {
		snprintf(authorization, sizeof(authorization), "AWS4-HMAC-SHA256 Credential=%s, "
			 "SignedHeaders=host;x-amz-date, Signature=00", scoped[i][0]);
		cli_request(&r, authorization);
		CHECK_FAIL(kc_sigv4_verify(&r.req, &p, NULL, &err), KC_INVALID_SIGNATURE,
				scoped[i][1], err);
	}
	/* no date at all, then a malformed one */
	cli_request(&r, CLI_AUTHORIZATION);
	r.headers[CLI_DATE_HEADER].name = "X-Not-A-Date";
	CHECK_FAIL(kc_sigv4_verify(&r.req, &p, NULL, &err), KC_INCOMPLETE_SIGNATURE,
			"requires existence of either a 'X-Amz-Date' or a 'Date' header", err);
	r.headers[CLI_DATE_HEADER].name = "X-Amz-Date";
	r.headers[CLI_DATE_HEADER].value = "2024-05-17T09:30:15Z";
	CHECK_FAIL(kc_sigv4_verify(&r.req, &p, NULL, &err), KC_INCOMPLETE_SIGNATURE,
			"Date must be in ISO-8601 'basic format'", err);
	r.headers[CLI_DATE_HEADER].value = "20240230T093015Z";
	CHECK_FAIL(kc_sigv4_verify(&r.req, &p, NULL, &err), KC_INCOMPLETE_SIGNATURE,
			"Date must be in ISO-8601 'basic format'", err);
}

/* A request dated by an RFC 7231 Date header instead of X-Amz-Date still verifies. */
static void test_http_date(void)
{
	static const struct kc_http_header base[] = {
		{ "Host", "kms.eu-west-1.amazonaws.com" },
		{ "Date", "Fri, 17 May 2024 09:30:15 GMT" },
		{ "Content-Type", "application/x-amz-json-1.1" },
	};
	struct kc_http_header headers[4];
	struct kc_sigv4_request req = {
		.method = "POST", .path = "/", .headers = headers, .header_count = 3,
		.body = (const uint8_t *)"{}", .body_len = 2,
	};
	char signed_headers[KC_SIGV4_SIGNED_HEADERS_MAX], sts[KC_SIGV4_STRING_TO_SIGN_MAX];
	char signature[KC_SIGV4_HEX_LEN + 1], authorization[2400], *canonical = NULL;
	uint8_t key[KC_SIGV4_KEY_LEN];
	struct kc_sigv4_verify_params p = cli_params(NULL);
	struct kc_error err = { 0 };

	memcpy(headers, base, sizeof(base));
	CHECK_OK(kc_sigv4_signed_headers(&req, signed_headers, &err), err);
	CHECK(!strcmp(signed_headers, "content-type;date;host"));
	CHECK_OK(kc_sigv4_canonical_request(&req, signed_headers, NULL, 0, &canonical, &err), err);
	CHECK_OK(kc_sigv4_string_to_sign(CLI_DATE, "eu-west-1", "kms", canonical,
			strlen(canonical), sts, &err), err);
	CHECK_OK(kc_sigv4_signing_key(CLI_SECRET, "20240517", "eu-west-1", "kms", key, &err), err);
	CHECK_OK(kc_sigv4_signature(key, sts, strlen(sts), signature, &err), err);
	snprintf(authorization, sizeof(authorization), "AWS4-HMAC-SHA256 Credential=" CLI_AKID
		 "/20240517/eu-west-1/kms/aws4_request, SignedHeaders=%s, Signature=%s",
		 signed_headers, signature);
	headers[req.header_count++] = (struct kc_http_header){ "Authorization", authorization };
	CHECK_OK(kc_sigv4_verify(&req, &p, NULL, &err), err);
	headers[1].value = "Fri, 17 May 2024 09:30:16 GMT";
	CHECK_FAIL(kc_sigv4_verify(&req, &p, NULL, &err), KC_INVALID_SIGNATURE, NULL, err);
	headers[1].value = "Friday, 17-May-24 09:30:15 GMT";
	CHECK_FAIL(kc_sigv4_verify(&req, &p, NULL, &err), KC_INCOMPLETE_SIGNATURE, NULL, err);
	free(canonical);
}

/* ---- signing: the client side ------------------------------------------------------ */

/* A signed X-Amz-Content-Sha256 has to be the body's hash, and sign refuses to lie. */
static void test_content_sha256(void)
{
	struct kc_http_header headers[4] = {
		{ "Host", "kmsd.local:8443" },
		{ "X-Amz-Content-Sha256", "" },
	};
	struct kc_sigv4_request req = {
		.method = "POST", .path = "/", .headers = headers, .header_count = 2,
		.body = (const uint8_t *)"{}", .body_len = 2,
	};
	struct kc_sigv4_sign_params sp = {
		.access_key_id = CLI_AKID, .secret_access_key = CLI_SECRET,
		.region = "eu-west-1", .service = "kms", .amz_date = CLI_DATE,
	};
	struct kc_sigv4_verify_params p = cli_params(NULL);
	char hash[KC_SIGV4_HEX_LEN + 1], *authorization = NULL;
	struct kc_error err = { 0 };

	CHECK_FAIL(kc_sigv4_sign(&req, &sp, &authorization, &err), KC_VALIDATION,
			"x-amz-content-sha256", err);
	CHECK(authorization == NULL);
	kc_sigv4_sha256_hex("{}", 2, hash);
	headers[1].value = hash;
	CHECK_OK(kc_sigv4_sign(&req, &sp, &authorization, &err), err);
	headers[req.header_count++] = (struct kc_http_header){ "X-Amz-Date", CLI_DATE };
	headers[req.header_count++] = (struct kc_http_header){ "Authorization", authorization };
	CHECK_OK(kc_sigv4_verify(&req, &p, NULL, &err), err);
	headers[1].value = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	CHECK_FAIL(kc_sigv4_verify(&req, &p, NULL, &err), KC_INVALID_SIGNATURE,
			"The provided 'x-amz-content-sha256' header does not match", err);
	free(authorization);
}

static void test_sign_refuses(void)
{
	struct kc_http_header headers[3] = { { "Content-Type", "application/x-amz-json-1.1" } };
	struct kc_sigv4_request req = {
		.method = "POST", .path = "/", .headers = headers, .header_count = 1,
	};
	struct kc_sigv4_sign_params sp = {
		.access_key_id = CLI_AKID, .secret_access_key = CLI_SECRET,
		.region = "eu-west-1", .service = "kms", .amz_date = CLI_DATE,
	};
	char *authorization = NULL;
	struct kc_error err = { 0 };

	CHECK_FAIL(kc_sigv4_sign(&req, &sp, &authorization, &err), KC_VALIDATION, "Host", err);
	headers[req.header_count++] = (struct kc_http_header){ "Host", "kmsd" };
	headers[req.header_count++] = (struct kc_http_header){ "X-Amz-Date", "20240517T093016Z" };
	CHECK_FAIL(kc_sigv4_sign(&req, &sp, &authorization, &err), KC_VALIDATION, "x-amz-date", err);
	headers[2] = (struct kc_http_header){ "Bad Name", "x" };
	CHECK_FAIL(kc_sigv4_sign(&req, &sp, &authorization, &err), KC_VALIDATION, "not an HTTP token",
			err);
	sp.amz_date = "2024-05-17";
	req.header_count = 2;
	CHECK_FAIL(kc_sigv4_sign(&req, &sp, &authorization, &err), KC_VALIDATION, "YYYYMMDD", err);
	CHECK(authorization == NULL);
}

/* STS session tokens run to kilobytes; the caller may have set the header already. */
static void test_long_session_token(void)
{
	char token[2001];
	struct kc_http_header headers[4] = {
		{ "Host", "kmsd.local:8443" },
		{ "X-Amz-Security-Token", token },
		{ "X-Amz-Date", CLI_DATE },
	};
	struct kc_sigv4_request req = {
		.method = "POST", .path = "/", .headers = headers, .header_count = 3,
	};
	struct kc_sigv4_sign_params sp = {
		.access_key_id = CLI_AKID, .secret_access_key = CLI_SECRET, .session_token = token,
		.region = "eu-west-1", .service = "kms", .amz_date = CLI_DATE,
	};
	struct kc_sigv4_verify_params p = cli_params(NULL);
	char *authorization = NULL;
	struct kc_error err = { 0 };

	memset(token, 'T', sizeof(token) - 1);
	token[sizeof(token) - 1] = '\0';
	CHECK_OK(kc_sigv4_sign(&req, &sp, &authorization, &err), err);
	CHECK(authorization && strstr(authorization, "SignedHeaders=host;x-amz-date;"
			"x-amz-security-token, "));
	headers[req.header_count++] = (struct kc_http_header){ "Authorization", authorization };
	CHECK_OK(kc_sigv4_verify(&req, &p, NULL, &err), err);
	free(authorization);
}

/* ---- the key cache -------------------------------------------------------------------- */

static const char *lookup_rotated(const char *access_key_id, void *arg)
{
	return "a different secret";
}

/* A changed secret must not be served the old derived key. */
static void test_cache_secret_change(void)
{
	struct kc_sigv4_key_cache *cache = kc_sigv4_key_cache_new();
	struct kc_sigv4_verify_params p = cli_params(cache);
	struct cli_request r;
	struct kc_error err = { 0 };

	cli_request(&r, CLI_AUTHORIZATION);
	CHECK_OK(kc_sigv4_verify(&r.req, &p, NULL, &err), err);
	CHECK_OK(kc_sigv4_verify(&r.req, &p, NULL, &err), err);
	p.lookup = lookup_rotated;
	CHECK_FAIL(kc_sigv4_verify(&r.req, &p, NULL, &err), KC_INVALID_SIGNATURE, NULL, err);
	p.lookup = lookup_cli;
	CHECK_OK(kc_sigv4_verify(&r.req, &p, NULL, &err), err);
	kc_sigv4_key_cache_free(cache);
}

/* ---- throughput ------------------------------------------------------------------------ */

#define BENCH_THREADS 2
#define BENCH_SECONDS 0.5
#define BENCH_MIN_RATE 20000.0   /* verified requests per second, both threads together */

struct bench {
	struct kc_sigv4_key_cache *cache;
	unsigned long verified;
	int failed;
};

static double seconds_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void *bench_thread(void *arg)
{
	struct bench *b = arg;
	struct kc_sigv4_verify_params p = cli_params(b->cache);
	struct cli_request r;
	struct kc_error err;
	struct timespec start;

	cli_request(&r, CLI_AUTHORIZATION);
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (seconds_since(&start) < BENCH_SECONDS) {
		for (int i = 0; i < 100; i++)
			b->failed |= kc_sigv4_verify(&r.req, &p, NULL, &err) != KC_OK;
		b->verified += 100;
	}
	return NULL;
}

static void test_throughput(void)
{
	struct kc_sigv4_key_cache *cache = kc_sigv4_key_cache_new();
	struct bench benches[BENCH_THREADS];
	pthread_t threads[BENCH_THREADS];
	struct timespec start;
	unsigned long total = 0;
	double rate;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (int i = 0; i < BENCH_THREADS; i++) {
		benches[i] = (struct bench){ .cache = cache };
		CHECK(pthread_create(&threads[i], NULL, bench_thread, &benches[i]) == 0);
	}
	for (int i = 0; i < BENCH_THREADS; i++) {
		pthread_join(threads[i], NULL);
		CHECK(!benches[i].failed);
		total += benches[i].verified;
	}
	rate = (double)total / seconds_since(&start);
	printf("sigv4 verify: %.0f requests/s on %d threads (shared key cache)%s\n", rate,
	       BENCH_THREADS, SANITIZED ? " [sanitizer build: not checked]" : "");
	if (!SANITIZED && rate < BENCH_MIN_RATE) {
		fprintf(stderr, "verification too slow: %.0f/s, want at least %.0f/s\n", rate,
			BENCH_MIN_RATE);
		failures++;
	}
	kc_sigv4_key_cache_free(cache);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s SIGV4_SUITE_DIR\n", argv[0]);
		return 2;
	}
	test_suite(argv[1]);
	test_aws_cli_request();
	test_malformed_authorization();
	test_scope_and_dates();
	test_http_date();
	test_content_sha256();
	test_sign_refuses();
	test_long_session_token();
	test_cache_secret_change();
	test_throughput();
	if (failures) {
		fprintf(stderr, "test_sigv4: %d check(s) failed\n", failures);
		return 1;
	}
	printf("test_sigv4: all checks passed\n");
	return 0;
}
