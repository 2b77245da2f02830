/*
 * sigv4_canon.c - the SigV4 canonical request: method, canonical path,
 * canonical query, canonical headers, signed header list, payload hash.
 *
 * Written snprintf-style into a caller's buffer so kmsd can build it on
 * the stack: nothing here allocates unless a request has more query
 * parameters or path segments than fit the small arrays on the stack.
 * The rules (and why) are in sigv4.h.
 */
#include "sigv4.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Arrays on the stack before falling back to the heap. */
#define LOCAL_QUERY_PARAMS 32
#define LOCAL_PATH_SEGMENTS 64

/* ---- bounded output -------------------------------------------------------- */

/* Counts every byte written but stores only what fits in cap. */
struct canon_out {
	char *buf;
	size_t cap;
	size_t len;
};

static void put(struct canon_out *o, const char *s, size_t n)
{
	if (o->len < o->cap) {
		size_t room = o->cap - o->len;

		memcpy(o->buf + o->len, s, n < room ? n : room);
	}
	o->len += n;
}

static void put_char(struct canon_out *o, char c)
{
	if (o->len < o->cap)
		o->buf[o->len] = c;
	o->len++;
}

static void put_str(struct canon_out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void terminate(struct canon_out *o)
{
	if (o->cap > 0)
		o->buf[o->len < o->cap ? o->len : o->cap - 1] = '\0';
}

/* ---- percent-encoding -------------------------------------------------------- */

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static const char hex_upper[] = "0123456789ABCDEF";

static void put_percent(struct canon_out *o, unsigned char c)
{
	char esc[3] = { '%', hex_upper[c >> 4], hex_upper[c & 15] };

	put(o, esc, sizeof(esc));
}

/* Every byte but the unreserved ones (and '/' if keep_slash) as %XX. */
static void put_encoded(struct canon_out *o, const char *s, size_t n, int keep_slash)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (is_unreserved(c) || (keep_slash && c == '/'))
			put_char(o, (char)c);
		else
			put_percent(o, c);
	}
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * A query name or value as its canonical bytes, one at a time: decoded
 * ("%41" is 'A'; a '%' not followed by two hex digits is itself) and
 * encoded again. Sorting compares these streams, so no copy is needed.
 */
struct recode {
	const char *p, *end;
	char pending[2];
	int pending_count;
};

static void recode_init(struct recode *r, const char *s, size_t n)
{
	r->p = s;
	r->end = s + n;
	r->pending_count = 0;
}

/* Next canonical byte, or -1 at the end. */
static int recode_next(struct recode *r)
{
	unsigned char c;

	if (r->pending_count > 0) {
		char next = r->pending[2 - r->pending_count];

		r->pending_count--;
		return (unsigned char)next;
	}
	if (r->p >= r->end)
		return -1;
	c = (unsigned char)*r->p;
	if (c == '%' && r->end - r->p >= 3 && hex_value(r->p[1]) >= 0 && hex_value(r->p[2]) >= 0) {
		c = (unsigned char)(hex_value(r->p[1]) << 4 | hex_value(r->p[2]));
		r->p += 3;
	} else {
		r->p++;
	}
	if (is_unreserved(c))
		return c;
	r->pending[0] = hex_upper[c >> 4];
	r->pending[1] = hex_upper[c & 15];
	r->pending_count = 2;
	return '%';
}

static int recode_compare(const char *a, size_t a_len, const char *b, size_t b_len)
{
	struct recode ra, rb;
	int ca, cb;

	recode_init(&ra, a, a_len);
	recode_init(&rb, b, b_len);
	do {
		ca = recode_next(&ra);
		cb = recode_next(&rb);
	} while (ca == cb && ca != -1);
	return ca - cb;
}

static void put_recoded(struct canon_out *o, const char *s, size_t n)
{
	struct recode r;
	int c;

	recode_init(&r, s, n);
	while ((c = recode_next(&r)) != -1)
		put_char(o, (char)c);
}

/* ---- path ------------------------------------------------------------------------ */

struct segment {
	const char *start;
	size_t len;
};

static int is_dot(const struct segment *s)
{
	return s->len == 1 && s->start[0] == '.';
}

static int is_dot_dot(const struct segment *s)
{
	return s->len == 2 && s->start[0] == '.' && s->start[1] == '.';
}

/* Resolve "." and ".." and drop empty segments; *kept gets how many remain. */
static void resolve_segments(const char *path, struct segment *segs, size_t *kept)
{
	size_t n = 0;
	const char *p = path;

	while (*p) {
		struct segment s;

		while (*p == '/')
			p++;
		s.start = p;
		while (*p && *p != '/')
			p++;
		s.len = (size_t)(p - s.start);
		if (s.len == 0 || is_dot(&s))
			continue;
		if (is_dot_dot(&s)) {
			if (n > 0)
				n--;
			continue;
		}
		segs[n++] = s;
	}
	*kept = n;
}

static size_t count_slashes(const char *path)
{
	size_t n = 0;

	for (; *path; path++)
		n += *path == '/';
	return n;
}

/* "/a/./b/../c//" -> "/a/c/", each segment encoded. */
static enum kc_status put_normalized_path(struct canon_out *o, const char *path,
		struct kc_error *err)
{
	struct segment local[LOCAL_PATH_SEGMENTS];
	struct segment *segs = local;
	size_t max_segments = count_slashes(path) + 1, kept;

	if (max_segments > LOCAL_PATH_SEGMENTS) {
		segs = malloc(max_segments * sizeof(*segs));
		if (!segs)
			return kc_fail(err, KC_INTERNAL, "out of memory canonicalising the path");
	}
	resolve_segments(path, segs, &kept);
	for (size_t i = 0; i < kept; i++) {
		put_char(o, '/');
		put_encoded(o, segs[i].start, segs[i].len, 0);
	}
	/* A trailing slash names a different resource; keep it. */
	if (kept == 0 || path[strlen(path) - 1] == '/')
		put_char(o, '/');
	if (segs != local)
		free(segs);
	return KC_OK;
}

static enum kc_status put_path(struct canon_out *o, const char *path, unsigned flags,
		struct kc_error *err)
{
	if (!path || !*path) {
		put_char(o, '/');
		return KC_OK;
	}
	if (flags & KC_SIGV4_PATH_AS_IS) {
		put_str(o, path);
		return KC_OK;
	}
	if (flags & KC_SIGV4_NO_NORMALIZE) {
		put_encoded(o, path, strlen(path), 1);
		return KC_OK;
	}
	return put_normalized_path(o, path, err);
}

/* ---- query ------------------------------------------------------------------------ */

struct query_param {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

static int compare_params(const void *a, const void *b)
{
	const struct query_param *pa = a, *pb = b;
	int by_name = recode_compare(pa->name, pa->name_len, pb->name, pb->name_len);

	if (by_name)
		return by_name;
	return recode_compare(pa->value, pa->value_len, pb->value, pb->value_len);
}

/* Split "a=1&b&&c=3" into params; empty pieces are skipped. Returns the count. */
static size_t split_query(const char *query, struct query_param *params)
{
	size_t n = 0;
	const char *p = query;

	while (*p) {
		const char *start = p, *eq;
		size_t len;

		while (*p && *p != '&')
			p++;
		len = (size_t)(p - start);
		if (*p == '&')
			p++;
		if (len == 0)
			continue;
		eq = memchr(start, '=', len);
		params[n].name = start;
		params[n].name_len = eq ? (size_t)(eq - start) : len;
		params[n].value = eq ? eq + 1 : start + len;
		params[n].value_len = eq ? len - params[n].name_len - 1 : 0;
		n++;
	}
	return n;
}

static size_t count_ampersands(const char *query)
{
	size_t n = 0;

	for (; *query; query++)
		n += *query == '&';
	return n;
}

static enum kc_status put_query(struct canon_out *o, const char *query, struct kc_error *err)
{
	struct query_param local[LOCAL_QUERY_PARAMS];
	struct query_param *params = local;
	size_t max_params, count;

	if (!query || !*query)
		return KC_OK;
	max_params = count_ampersands(query) + 1;
	if (max_params > LOCAL_QUERY_PARAMS) {
		params = malloc(max_params * sizeof(*params));
		if (!params)
			return kc_fail(err, KC_INTERNAL, "out of memory canonicalising the query");
	}
	count = split_query(query, params);
	qsort(params, count, sizeof(*params), compare_params);
	for (size_t i = 0; i < count; i++) {
		if (i > 0)
			put_char(o, '&');
		put_recoded(o, params[i].name, params[i].name_len);
		put_char(o, '=');
		put_recoded(o, params[i].value, params[i].value_len);
	}
	if (params != local)
		free(params);
	return KC_OK;
}

/* ---- headers ------------------------------------------------------------------------ */

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* value without leading/trailing whitespace, inner runs as one space. */
static void put_trimmed(struct canon_out *o, const char *value)
{
	int wrote = 0, gap = 0;

	for (; *value; value++) {
		if (is_space(*value)) {
			gap = 1;
			continue;
		}
		if (gap && wrote)
			put_char(o, ' ');
		put_char(o, *value);
		gap = 0;
		wrote = 1;
	}
}

static void put_lower(struct canon_out *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		put_char(o, c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c);
	}
}

/* "name:v1,v2\n": every header of req called name, in request order. */
static void put_header_line(struct canon_out *o, const struct kc_sigv4_request *req,
		const char *name, size_t name_len)
{
	int first = 1;

	put_lower(o, name, name_len);
	put_char(o, ':');
	for (size_t i = 0; i < req->header_count; i++) {
		const struct kc_http_header *h = &req->headers[i];

		if (!h->name || strlen(h->name) != name_len || strncasecmp(h->name, name, name_len))
			continue;
		if (!first)
			put_char(o, ',');
		put_trimmed(o, h->value ? h->value : "");
		first = 0;
	}
	put_char(o, '\n');
}

static void put_headers(struct canon_out *o, const struct kc_sigv4_request *req,
		const char *signed_headers)
{
	const char *p = signed_headers;

	for (;;) {
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		put_header_line(o, req, p, len);
		if (!end)
			break;
		p = end + 1;
	}
}

/* ---- the canonical request ---------------------------------------------------------- */

enum kc_status kc_sigv4_canonical_request_into(const struct kc_sigv4_request *req,
		const char *signed_headers, const char *payload_hash, unsigned flags,
		char *buf, size_t cap, size_t *len, struct kc_error *err)
{
	struct canon_out o = { .buf = buf, .cap = cap, .len = 0 };
	char body_hash[KC_SIGV4_HEX_LEN + 1];
	enum kc_status status;

	if (!payload_hash) {
		if (kc_sigv4_sha256_hex(req->body, req->body_len, body_hash))
			return kc_fail(err, KC_INTERNAL, "SHA-256 of the payload failed");
		payload_hash = body_hash;
	}
	put_str(&o, req->method ? req->method : "");
	put_char(&o, '\n');
	status = put_path(&o, req->path, flags, err);
	if (status != KC_OK)
		return status;
	put_char(&o, '\n');
	status = put_query(&o, req->query, err);
	if (status != KC_OK)
		return status;
	put_char(&o, '\n');
	put_headers(&o, req, signed_headers);
	put_char(&o, '\n');
	put_str(&o, signed_headers);
	put_char(&o, '\n');
	put_str(&o, payload_hash);
	terminate(&o);
	*len = o.len;
	return KC_OK;
}

enum kc_status kc_sigv4_canonical_request(const struct kc_sigv4_request *req,
		const char *signed_headers, const char *payload_hash, unsigned flags,
		char **out, struct kc_error *err)
{
	char payload[KC_SIGV4_HEX_LEN + 1];
	size_t len;
	enum kc_status status;

	*out = NULL;
	/* Hash the body once, not once per pass. */
	if (!payload_hash) {
		if (kc_sigv4_sha256_hex(req->body, req->body_len, payload))
			return kc_fail(err, KC_INTERNAL, "SHA-256 of the payload failed");
		payload_hash = payload;
	}
	status = kc_sigv4_canonical_request_into(req, signed_headers, payload_hash, flags,
			NULL, 0, &len, err);
	if (status != KC_OK)
		return status;
	*out = malloc(len + 1);
	if (!*out)
		return kc_fail(err, KC_INTERNAL, "out of memory building the canonical request");
	status = kc_sigv4_canonical_request_into(req, signed_headers, payload_hash, flags,
			*out, len + 1, &len, err);
	if (status != KC_OK) {
		free(*out);
		*out = NULL;
	}
	return status;
}
