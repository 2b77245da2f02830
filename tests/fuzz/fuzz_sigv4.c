/*
 * fuzz_sigv4.c - libFuzzer target for keyclient/sigv4.c: the
 * Authorization parser, the canonical request and kc_sigv4_verify on
 * hostile input, and one property that must hold for every request:
 * whatever kc_sigv4_sign accepts, kc_sigv4_verify accepts.
 *
 * Input, split at '\n':
 *   line 1    the Authorization header value
 *   line 2    "METHOD /path?query" (the request line, without the version)
 *   lines 3.. "Name:value" headers, up to MAX_HEADERS, until an empty line
 *   the rest  the body
 * The seeds in corpus/fuzz_sigv4/ are signed requests in this form.
 */
#include "sigv4.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HEADERS 16
#define FUZZ_AKID "AKIDEXAMPLE"
#define FUZZ_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define FUZZ_DATE "20150830T123600Z"
#define FUZZ_NOW 1440938160   /* 2015-08-30T12:36:00Z */

struct fuzz_request {
	char *text;                  /* the input, NUL-terminated; everything points into it */
	const char *authorization;
	struct kc_http_header headers[MAX_HEADERS + 2];
	struct kc_sigv4_request req;
};

/* The next line of *p (NUL-terminated in place), or NULL at the end. */
static char *next_line(char **p, char *end)
{
	char *line = *p, *nl;

	if (line >= end)
		return NULL;
	nl = memchr(line, '\n', (size_t)(end - line));
	if (nl) {
		*nl = '\0';
		*p = nl + 1;
	} else {
		*p = end;
	}
	return line;
}

static void split_request_line(char *line, struct kc_sigv4_request *req)
{
	char *space = strchr(line, ' '), *q;

	req->method = line;
	req->path = "/";
	req->query = "";
	if (!space)
		return;
	*space = '\0';
	req->path = space + 1;
	q = strchr(space + 1, '?');
	if (q) {
		*q = '\0';
		req->query = q + 1;
	}
}

static int parse_input(const uint8_t *data, size_t size, struct fuzz_request *r)
{
	char *p, *end, *line;

	memset(r, 0, sizeof(*r));
	r->text = malloc(size + 1);
	if (!r->text)
		return -1;
	memcpy(r->text, data, size);
	r->text[size] = '\0';
	p = r->text;
	end = r->text + size;
	r->authorization = next_line(&p, end);
	line = next_line(&p, end);
	if (!r->authorization || !line)
		return -1;
	split_request_line(line, &r->req);
	r->req.headers = r->headers;
	while ((line = next_line(&p, end)) && *line && r->req.header_count < MAX_HEADERS) {
		char *colon = strchr(line, ':');

		if (!colon)
			continue;
		*colon = '\0';
		r->headers[r->req.header_count++] = (struct kc_http_header){ line, colon + 1 };
	}
	r->req.body = (const uint8_t *)p;
	r->req.body_len = (size_t)(end - p);
	return 0;
}

static const char *lookup(const char *access_key_id, void *arg)
{
	return strcmp(access_key_id, FUZZ_AKID) ? NULL : FUZZ_SECRET;
}

static struct kc_sigv4_verify_params params(struct kc_sigv4_key_cache *cache)
{
	return (struct kc_sigv4_verify_params){
		.region = "us-east-1", .service = "service", .now = FUZZ_NOW,
		.lookup = lookup, .cache = cache,
	};
}

/* A truncated canonical request must be the prefix of the whole one. */
static void check_canonical(const struct kc_sigv4_request *req, const char *signed_headers)
{
	char small[24];
	char *whole = NULL;
	size_t small_len = 0, whole_len;
	struct kc_error err;

	if (kc_sigv4_canonical_request(req, signed_headers, NULL, 0, &whole, &err) != KC_OK)
		return;
	if (kc_sigv4_canonical_request_into(req, signed_headers, NULL, 0, small, sizeof(small),
			&small_len, &err) != KC_OK)
		abort();
	whole_len = strlen(whole);
	if (small_len != whole_len ||
	    strncmp(small, whole, small_len < sizeof(small) ? small_len : sizeof(small) - 1))
		abort();
	free(whole);
}

/* The request as it would reach kmsd after signing: Authorization replaced. */
static size_t with_authorization(const struct fuzz_request *r, const char *authorization,
		struct kc_http_header *out)
{
	size_t n = 0;
	int has_date = 0;

	for (size_t i = 0; i < r->req.header_count; i++) {
		if (!strcasecmp(r->headers[i].name, "authorization"))
			continue;
		has_date |= !strcasecmp(r->headers[i].name, "x-amz-date");
		out[n++] = r->headers[i];
	}
	/* kc_sigv4_sign signs X-Amz-Date; the caller sends it. */
	if (!has_date)
		out[n++] = (struct kc_http_header){ "X-Amz-Date", FUZZ_DATE };
	out[n++] = (struct kc_http_header){ "Authorization", authorization };
	return n;
}

/* Whatever sign accepts, verify must accept. */
static void check_round_trip(const struct fuzz_request *r, struct kc_sigv4_key_cache *cache)
{
	struct kc_sigv4_sign_params sp = {
		.access_key_id = FUZZ_AKID, .secret_access_key = FUZZ_SECRET,
		.region = "us-east-1", .service = "service", .amz_date = FUZZ_DATE,
	};
	struct kc_sigv4_verify_params vp = params(cache);
	struct kc_http_header headers[MAX_HEADERS + 2];
	struct kc_sigv4_request signed_req = r->req;
	char *authorization = NULL;
	struct kc_error err;

	if (kc_sigv4_sign(&r->req, &sp, &authorization, &err) != KC_OK)
		return;
	signed_req.headers = headers;
	signed_req.header_count = with_authorization(r, authorization, headers);
	if (kc_sigv4_verify(&signed_req, &vp, NULL, &err) != KC_OK)
		abort();
	free(authorization);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kc_sigv4_key_cache *cache;
	struct fuzz_request r;
	struct kc_sigv4_auth auth;
	struct kc_sigv4_verify_params vp;
	struct kc_http_header headers[MAX_HEADERS + 1];
	struct kc_sigv4_request req;
	struct kc_error err;

	if (!cache)
		cache = kc_sigv4_key_cache_new();
	if (parse_input(data, size, &r) == 0) {
		if (kc_sigv4_parse_authorization(r.authorization, &auth, &err) == KC_OK)
			check_canonical(&r.req, auth.signed_headers);
		req = r.req;
		memcpy(headers, r.headers, r.req.header_count * sizeof(headers[0]));
		headers[req.header_count++] = (struct kc_http_header){ "Authorization",
				r.authorization };
		req.headers = headers;
		vp = params(cache);
		kc_sigv4_verify(&req, &vp, NULL, &err);
		check_round_trip(&r, cache);
	}
	free(r.text);
	return 0;
}
