/*
 * sigv4.c - AWS Signature Version 4: parsing the Authorization header,
 * the string to sign, the signing key and signature, signing a request
 * (the remote client) and verifying one (kmsd), plus the signing-key
 * cache that keeps verification to two SHA-256 and one HMAC.
 *
 * The canonical request itself is built in sigv4_canon.c. Messages are
 * AWS's own, so the AWS CLI and SDKs show their users what AWS would.
 */
#include "sigv4.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#define SECRET_MAX 256           /* longest secret access key we sign with */
#define CANONICAL_LOCAL 4096     /* canonical requests up to this stay on the stack */
#define LOCAL_HEADERS 32

/* ---- hashing --------------------------------------------------------------- */

/*
 * libsodium's SHA-256 and HMAC-SHA256: no algorithm fetch, no context
 * allocation and no parameter parsing per call (OpenSSL 3's EVP_MAC_init
 * looks its digest up by name each time), which matters at the tens of
 * thousands of verifications a second kmsd does.
 */
static void to_hex(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

int kc_sigv4_sha256_hex(const void *data, size_t len, char out[KC_SIGV4_HEX_LEN + 1])
{
	uint8_t digest[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(digest, len ? data : (const void *)"", len);
	to_hex(digest, sizeof(digest), out);
	return 0;
}

static int hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
		uint8_t out[KC_SIGV4_KEY_LEN])
{
	crypto_auth_hmacsha256_state state;

	if (crypto_auth_hmacsha256_init(&state, key, key_len) != 0 ||
	    crypto_auth_hmacsha256_update(&state, data, len) != 0 ||
	    crypto_auth_hmacsha256_final(&state, out) != 0) {
		sodium_memzero(&state, sizeof(state));
		return -1;
	}
	sodium_memzero(&state, sizeof(state));   /* holds key-derived pads */
	return 0;
}

/* ---- dates ------------------------------------------------------------------ */

/* A date as SigV4 uses it: the time and its "20150830T123600Z" form. */
struct request_date {
	time_t when;
	char amz_date[KC_SIGV4_AMZ_DATE_LEN + 1];
};

static void format_amz_date(time_t t, char out[KC_SIGV4_AMZ_DATE_LEN + 1])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(out, KC_SIGV4_AMZ_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm) !=
			KC_SIGV4_AMZ_DATE_LEN)
		snprintf(out, KC_SIGV4_AMZ_DATE_LEN + 1, "%s", "00000000T000000Z");
}

static int digits(const char *s, size_t n, int *value)
{
	*value = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*value = *value * 10 + (s[i] - '0');
	}
	return 0;
}

/* tm (UTC) -> time_t, refusing fields timegm would silently carry over (Feb 30). */
static int utc_time(struct tm *tm, time_t *out)
{
	struct tm check = *tm, back;
	time_t t = timegm(&check);

	if (t == (time_t)-1 || !gmtime_r(&t, &back) || back.tm_year != tm->tm_year ||
	    back.tm_mon != tm->tm_mon || back.tm_mday != tm->tm_mday ||
	    back.tm_hour != tm->tm_hour || back.tm_min != tm->tm_min || back.tm_sec != tm->tm_sec)
		return -1;
	*out = t;
	return 0;
}

/* "20150830T123600Z" (ISO 8601 basic format, UTC). 0 or -1. */
static int parse_amz_date(const char *s, time_t *out)
{
	struct tm tm = { 0 };
	int year, mon, day, hour, min, sec;

	if (strlen(s) != KC_SIGV4_AMZ_DATE_LEN || s[8] != 'T' || s[15] != 'Z' ||
	    digits(s, 4, &year) || digits(s + 4, 2, &mon) || digits(s + 6, 2, &day) ||
	    digits(s + 9, 2, &hour) || digits(s + 11, 2, &min) || digits(s + 13, 2, &sec))
		return -1;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	return utc_time(&tm, out);
}

/* "Sun, 30 Aug 2015 12:36:00 GMT" (RFC 7231 IMF-fixdate), locale-independent. 0 or -1. */
static int parse_http_date(const char *s, time_t *out)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	struct tm tm = { 0 };
	char weekday[5], month[4], zone[4], extra;
	const char *m;

	if (sscanf(s, "%4s %2d %3s %4d %2d:%2d:%2d %3s %c", weekday, &tm.tm_mday, month,
			&tm.tm_year, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, zone, &extra) != 8 ||
	    strlen(weekday) != 4 || weekday[3] != ',' || strcmp(zone, "GMT") ||
	    strlen(month) != 3 || !(m = strstr(months, month)) || (m - months) % 3)
		return -1;
	tm.tm_mon = (int)(m - months) / 3;
	tm.tm_year -= 1900;
	return utc_time(&tm, out);
}

/* ---- header lookup ------------------------------------------------------------- */

/* First value of header name (any case) and how many there are. */
static const char *header_value(const struct kc_sigv4_request *req, const char *name,
		size_t *count)
{
	const char *first = NULL;

	*count = 0;
	for (size_t i = 0; i < req->header_count; i++) {
		if (!req->headers[i].name || strcasecmp(req->headers[i].name, name))
			continue;
		if (!first)
			first = req->headers[i].value ? req->headers[i].value : "";
		(*count)++;
	}
	return first;
}

/* value without surrounding blanks, as *start and the returned length. */
static size_t trimmed(const char *value, const char **start)
{
	size_t len;

	while (*value == ' ' || *value == '\t')
		value++;
	len = strlen(value);
	while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
		len--;
	*start = value;
	return len;
}

/* Copy value into out without surrounding blanks. -1 if it does not fit. */
static int copy_trimmed(const char *value, char *out, size_t cap)
{
	const char *start;
	size_t len = trimmed(value, &start);

	if (len >= cap)
		return -1;
	memcpy(out, start, len);
	out[len] = '\0';
	return 0;
}

/* Is value, without surrounding blanks, exactly want? */
static int equals_trimmed(const char *value, const char *want)
{
	const char *start;
	size_t len = trimmed(value, &start);

	return len == strlen(want) && !memcmp(start, want, len);
}

/* Is name one of the ';'-separated names in list (any case)? */
static int list_has(const char *list, const char *name)
{
	size_t name_len = strlen(name);

	for (const char *p = list;;) {
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == name_len && !strncasecmp(p, name, len))
			return 1;
		if (!end)
			return 0;
		p = end + 1;
	}
}

/* ---- the Authorization header -------------------------------------------------- */

/* The three components, pointing into the header value. */
struct auth_components {
	const char *credential, *signed_headers, *signature;
	size_t credential_len, signed_headers_len, signature_len;
};

static enum kc_status copy_field(char *out, size_t cap, const char *src, size_t len,
		const char *what, struct kc_error *err)
{
	if (len >= cap)
		return kc_fail(err, KC_INCOMPLETE_SIGNATURE,
				"Authorization header's %s is too long (%zu bytes)", what, len);
	memcpy(out, src, len);
	out[len] = '\0';
	return KC_OK;
}

/* Record "key=value" (key and value point into the header) in c. */
static enum kc_status take_component(struct auth_components *c, const char *key, size_t key_len,
		const char *value, size_t value_len, struct kc_error *err)
{
	static const char *const names[] = { "Credential", "SignedHeaders", "Signature" };
	const char **slots[] = { &c->credential, &c->signed_headers, &c->signature };
	size_t *lens[] = { &c->credential_len, &c->signed_headers_len, &c->signature_len };

	for (size_t i = 0; i < 3; i++) {
		if (strlen(names[i]) != key_len || strncmp(names[i], key, key_len))
			continue;
		if (*slots[i])
			return kc_fail(err, KC_INCOMPLETE_SIGNATURE,
					"Authorization header has more than one '%s' parameter", names[i]);
		*slots[i] = value;
		*lens[i] = value_len;
		return KC_OK;
	}
	return KC_OK;   /* unknown components are ignored, as AWS does */
}

/* Split "Credential=..., SignedHeaders=..., Signature=..." at the commas. */
static enum kc_status split_components(const char *header, const char *p,
		struct auth_components *c, struct kc_error *err)
{
	while (*p) {
		const char *start, *end, *eq;
		enum kc_status status;

		while (*p == ' ' || *p == ',')
			p++;
		if (!*p)
			break;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		while (end > start && end[-1] == ' ')
			end--;
		eq = memchr(start, '=', (size_t)(end - start));
		if (!eq)
			return kc_fail(err, KC_INCOMPLETE_SIGNATURE,
					"'%.*s' not a valid key=value pair (missing equal-sign) in "
					"Authorization header: '%s'.", (int)(end - start), start, header);
		status = take_component(c, start, (size_t)(eq - start), eq + 1,
				(size_t)(end - eq - 1), err);
		if (status != KC_OK)
			return status;
	}
	return KC_OK;
}

static enum kc_status require_components(const char *header, const struct auth_components *c,
		struct kc_error *err)
{
	if (c->credential && c->signature && c->signed_headers)
		return KC_OK;
	return kc_fail(err, KC_INCOMPLETE_SIGNATURE, "%s%s%sAuthorization=%s",
			c->credential ? "" : "Authorization header requires 'Credential' parameter. ",
			c->signature ? "" : "Authorization header requires 'Signature' parameter. ",
			c->signed_headers ? "" :
				"Authorization header requires 'SignedHeaders' parameter. ",
			header);
}

/* "AKID/20150830/us-east-1/kms/aws4_request" into its five fields. */
static enum kc_status split_credential(const char *cred, size_t len, struct kc_sigv4_auth *out,
		struct kc_error *err)
{
	struct { char *field; size_t cap; const char *what; } parts[] = {
		{ out->access_key_id, sizeof(out->access_key_id), "access key id" },
		{ out->date, sizeof(out->date), "credential date" },
		{ out->region, sizeof(out->region), "credential region" },
		{ out->service, sizeof(out->service), "credential service" },
		{ out->terminator, sizeof(out->terminator), "credential terminator" },
	};
	const char *p = cred, *end = cred + len;
	size_t slashes = 0;

	for (size_t i = 0; i < len; i++)
		slashes += cred[i] == '/';
	if (slashes != 4)
		return kc_fail(err, KC_INCOMPLETE_SIGNATURE,
				"Credential must have exactly 5 slash-delimited elements, "
				"e.g. keyid/date/region/service/term, got '%.*s'", (int)len, cred);
	for (size_t i = 0; i < 5; i++) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		size_t part_len = slash ? (size_t)(slash - p) : (size_t)(end - p);
		enum kc_status status = copy_field(parts[i].field, parts[i].cap, p, part_len,
				parts[i].what, err);

		if (status != KC_OK)
			return status;
		p += part_len + 1;
	}
	return KC_OK;
}

enum kc_status kc_sigv4_parse_authorization(const char *value, struct kc_sigv4_auth *out,
		struct kc_error *err)
{
	struct auth_components c = { 0 };
	const char *p = value, *alg_end;
	enum kc_status status;

	memset(out, 0, sizeof(*out));
	while (*p == ' ')
		p++;
	alg_end = p + strcspn(p, " ");
	if ((size_t)(alg_end - p) != strlen(KC_SIGV4_ALGORITHM) ||
	    strncmp(p, KC_SIGV4_ALGORITHM, (size_t)(alg_end - p)))
		return kc_fail(err, KC_INCOMPLETE_SIGNATURE, "Unsupported AWS 'algorithm': '%.*s'",
				(int)(alg_end - p), p);
	status = split_components(value, alg_end, &c, err);
	if (status == KC_OK)
		status = require_components(value, &c, err);
	if (status == KC_OK)
		status = split_credential(c.credential, c.credential_len, out, err);
	if (status == KC_OK)
		status = copy_field(out->signed_headers, sizeof(out->signed_headers),
				c.signed_headers, c.signed_headers_len, "SignedHeaders", err);
	if (status == KC_OK)
		status = copy_field(out->signature, sizeof(out->signature),
				c.signature, c.signature_len, "Signature", err);
	return status;
}

/* ---- string to sign, signing key, signature ---------------------------------- */

enum kc_status kc_sigv4_string_to_sign(const char *amz_date, const char *region,
		const char *service, const char *canonical_request, size_t canonical_len,
		char out[KC_SIGV4_STRING_TO_SIGN_MAX], struct kc_error *err)
{
	char hash[KC_SIGV4_HEX_LEN + 1];
	time_t ignored;
	int len;

	if (parse_amz_date(amz_date, &ignored))
		return kc_fail(err, KC_VALIDATION, "X-Amz-Date '%s' is not YYYYMMDD'T'HHMMSS'Z'",
				amz_date);
	if (strlen(region) >= KC_SIGV4_FIELD_MAX || strlen(service) >= KC_SIGV4_FIELD_MAX)
		return kc_fail(err, KC_VALIDATION, "region or service name too long");
	if (kc_sigv4_sha256_hex(canonical_request, canonical_len, hash))
		return kc_fail(err, KC_INTERNAL, "SHA-256 of the canonical request failed");
	len = snprintf(out, KC_SIGV4_STRING_TO_SIGN_MAX, "%s\n%s\n%.8s/%s/%s/%s\n%s",
			KC_SIGV4_ALGORITHM, amz_date, amz_date, region, service,
			KC_SIGV4_TERMINATOR, hash);
	if (len < 0 || len >= KC_SIGV4_STRING_TO_SIGN_MAX)
		return kc_fail(err, KC_INTERNAL, "string to sign does not fit");
	return KC_OK;
}

enum kc_status kc_sigv4_signing_key(const char *secret, const char *date8,
		const char *region, const char *service, uint8_t out[KC_SIGV4_KEY_LEN],
		struct kc_error *err)
{
	char k_secret[4 + SECRET_MAX];
	uint8_t k[KC_SIGV4_KEY_LEN];
	size_t secret_len = strlen(secret);
	int failed;

	if (secret_len > SECRET_MAX)
		return kc_fail(err, KC_VALIDATION, "secret access key longer than %d bytes",
				SECRET_MAX);
	memcpy(k_secret, "AWS4", 4);
	memcpy(k_secret + 4, secret, secret_len);
	failed = hmac_sha256(k_secret, 4 + secret_len, date8, strlen(date8), k) ||
		 hmac_sha256(k, sizeof(k), region, strlen(region), k) ||
		 hmac_sha256(k, sizeof(k), service, strlen(service), k) ||
		 hmac_sha256(k, sizeof(k), KC_SIGV4_TERMINATOR, strlen(KC_SIGV4_TERMINATOR), out);
	sodium_memzero(k_secret, sizeof(k_secret));
	sodium_memzero(k, sizeof(k));
	if (failed)
		return kc_fail(err, KC_INTERNAL, "HMAC-SHA256 failed deriving the signing key");
	return KC_OK;
}

enum kc_status kc_sigv4_signature(const uint8_t key[KC_SIGV4_KEY_LEN],
		const char *string_to_sign, size_t len, char out[KC_SIGV4_HEX_LEN + 1],
		struct kc_error *err)
{
	uint8_t mac[KC_SIGV4_KEY_LEN];

	if (hmac_sha256(key, KC_SIGV4_KEY_LEN, string_to_sign, len, mac))
		return kc_fail(err, KC_INTERNAL, "HMAC-SHA256 of the string to sign failed");
	to_hex(mac, sizeof(mac), out);
	return KC_OK;
}

/*
 * The canonical request, hashed into the string to sign and HMAC'ed:
 * the shared tail of signing and verifying. The canonical request lives
 * on the stack unless it is longer than CANONICAL_LOCAL.
 */
static enum kc_status compute_signature(const struct kc_sigv4_request *req,
		const char *signed_headers, const char *payload_hash, unsigned flags,
		const char *amz_date, const char *region, const char *service,
		const uint8_t key[KC_SIGV4_KEY_LEN], char out[KC_SIGV4_HEX_LEN + 1],
		struct kc_error *err)
{
	char local[CANONICAL_LOCAL];
	char *canonical = local;
	char string_to_sign[KC_SIGV4_STRING_TO_SIGN_MAX];
	size_t len;
	enum kc_status status;

	status = kc_sigv4_canonical_request_into(req, signed_headers, payload_hash, flags,
			local, sizeof(local), &len, err);
	if (status == KC_OK && len >= sizeof(local)) {
		canonical = malloc(len + 1);
		if (!canonical)
			return kc_fail(err, KC_INTERNAL, "out of memory building the canonical request");
		status = kc_sigv4_canonical_request_into(req, signed_headers, payload_hash, flags,
				canonical, len + 1, &len, err);
	}
	if (status == KC_OK)
		status = kc_sigv4_string_to_sign(amz_date, region, service, canonical, len,
				string_to_sign, err);
	if (status == KC_OK)
		status = kc_sigv4_signature(key, string_to_sign, strlen(string_to_sign), out, err);
	if (canonical != local)
		free(canonical);
	return status;
}

/* S3 signs its path as it is on the wire; every other service canonicalises it. */
static unsigned effective_flags(unsigned flags, const char *service)
{
	return strcmp(service, "s3") ? flags : flags | KC_SIGV4_PATH_AS_IS;
}

/* ---- signing ------------------------------------------------------------------ */

/* RFC 7230 token characters: what a header name may be made of. */
static int is_token(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("!#$%&'*+-.^_`|~", c)))
			return 0;
	}
	return 1;
}

/* Headers that proxies and HTTP stacks add or rewrite: signing them breaks requests. */
static int is_unsigned_header(const char *name)
{
	static const char *const unsigned_names[] = {
		"authorization", "user-agent", "expect", "x-amzn-trace-id",
		"connection", "transfer-encoding",
	};

	for (size_t i = 0; i < sizeof(unsigned_names) / sizeof(unsigned_names[0]); i++)
		if (!strcasecmp(name, unsigned_names[i]))
			return 1;
	return 0;
}

static int compare_names(const void *a, const void *b)
{
	return strcasecmp(*(const char *const *)a, *(const char *const *)b);
}

/* names sorted (case-insensitively) -> "a;b;c" lower-cased, duplicates once. */
static enum kc_status join_names(const char **names, size_t count,
		char out[KC_SIGV4_SIGNED_HEADERS_MAX], struct kc_error *err)
{
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; i < count; i++) {
		size_t name_len = strlen(names[i]);

		if (i > 0 && !strcasecmp(names[i], names[i - 1]))
			continue;
		if (len + name_len + 2 > KC_SIGV4_SIGNED_HEADERS_MAX)
			return kc_fail(err, KC_VALIDATION, "too many headers to sign");
		if (len > 0)
			out[len++] = ';';
		for (size_t j = 0; j < name_len; j++)
			out[len++] = (char)(names[i][j] >= 'A' && names[i][j] <= 'Z' ?
					names[i][j] - 'A' + 'a' : names[i][j]);
		out[len] = '\0';
	}
	return KC_OK;
}

enum kc_status kc_sigv4_signed_headers(const struct kc_sigv4_request *req,
		char out[KC_SIGV4_SIGNED_HEADERS_MAX], struct kc_error *err)
{
	const char *local[LOCAL_HEADERS];
	const char **names = local;
	size_t count = 0;
	enum kc_status status = KC_OK;

	out[0] = '\0';
	if (req->header_count > LOCAL_HEADERS) {
		names = malloc(req->header_count * sizeof(*names));
		if (!names)
			return kc_fail(err, KC_INTERNAL, "out of memory listing the signed headers");
	}
	for (size_t i = 0; i < req->header_count && status == KC_OK; i++) {
		const char *name = req->headers[i].name;

		if (!name || !is_token(name))
			status = kc_fail(err, KC_VALIDATION, "header name '%s' is not an HTTP token",
					name ? name : "(null)");
		else if (!is_unsigned_header(name))
			names[count++] = name;
	}
	if (status == KC_OK) {
		qsort(names, count, sizeof(*names), compare_names);
		status = join_names(names, count, out, err);
	}
	if (names != local)
		free(names);
	return status;
}

/* A header the caller already set must agree with what gets signed. */
static enum kc_status check_preset(const struct kc_sigv4_request *req, const char *name,
		const char *want, struct kc_error *err)
{
	size_t count;
	const char *have = header_value(req, name, &count);

	if (!have)
		return KC_OK;
	if (count > 1 || !equals_trimmed(have, want))
		return kc_fail(err, KC_VALIDATION, "the request's %s header is not the one signed",
				name);
	return KC_OK;
}

/*
 * req's headers plus X-Amz-Date and X-Amz-Security-Token where req lacks
 * them, in *headers (local when it fits, else malloc'ed).
 */
static enum kc_status add_signing_headers(const struct kc_sigv4_request *req,
		const struct kc_sigv4_sign_params *p, struct kc_sigv4_request *signed_req,
		struct kc_http_header *local, size_t local_count, struct kc_http_header **headers,
		struct kc_error *err)
{
	size_t count = req->header_count, ignored;

	*headers = local;
	if (count + 2 > local_count) {
		*headers = malloc((count + 2) * sizeof(**headers));
		if (!*headers)
			return kc_fail(err, KC_INTERNAL, "out of memory adding the signing headers");
	}
	if (count)
		memcpy(*headers, req->headers, count * sizeof(**headers));
	if (!header_value(req, "x-amz-date", &ignored))
		(*headers)[count++] = (struct kc_http_header){ "X-Amz-Date", p->amz_date };
	if (p->session_token && !header_value(req, "x-amz-security-token", &ignored))
		(*headers)[count++] = (struct kc_http_header){ "X-Amz-Security-Token",
				p->session_token };
	*signed_req = *req;
	signed_req->headers = *headers;
	signed_req->header_count = count;
	return KC_OK;
}

static enum kc_status check_sign_params(const struct kc_sigv4_request *req,
		const struct kc_sigv4_sign_params *p, const char *payload_hash,
		struct kc_error *err)
{
	size_t count;
	time_t ignored;
	enum kc_status status;

	if (!p->access_key_id || !p->secret_access_key || !p->region || !p->service ||
	    !p->amz_date || !req->method)
		return kc_fail(err, KC_VALIDATION, "signing needs a method, credentials, "
				"region, service and date");
	if (parse_amz_date(p->amz_date, &ignored))
		return kc_fail(err, KC_VALIDATION, "X-Amz-Date '%s' is not YYYYMMDD'T'HHMMSS'Z'",
				p->amz_date);
	if (!header_value(req, "host", &count))
		return kc_fail(err, KC_VALIDATION, "the request to sign has no Host header");
	status = check_preset(req, "x-amz-date", p->amz_date, err);
	if (status == KC_OK && p->session_token)
		status = check_preset(req, "x-amz-security-token", p->session_token, err);
	if (status == KC_OK)
		status = check_preset(req, "x-amz-content-sha256", payload_hash, err);
	return status;
}

/* "AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request, SignedHeaders=..., Signature=..." */
static enum kc_status format_authorization(const struct kc_sigv4_sign_params *p,
		const char *signed_headers, const char *signature, char **out, struct kc_error *err)
{
	if (asprintf(out, "%s Credential=%s/%.8s/%s/%s/%s, SignedHeaders=%s, Signature=%s",
			KC_SIGV4_ALGORITHM, p->access_key_id, p->amz_date, p->region, p->service,
			KC_SIGV4_TERMINATOR, signed_headers, signature) < 0) {
		*out = NULL;
		return kc_fail(err, KC_INTERNAL, "out of memory formatting the Authorization header");
	}
	return KC_OK;
}

enum kc_status kc_sigv4_sign(const struct kc_sigv4_request *req,
		const struct kc_sigv4_sign_params *p, char **authorization_out,
		struct kc_error *err)
{
	struct kc_http_header local[LOCAL_HEADERS];
	struct kc_http_header *headers = local;
	struct kc_sigv4_request signed_req;
	char signed_headers[KC_SIGV4_SIGNED_HEADERS_MAX];
	char payload_hash[KC_SIGV4_HEX_LEN + 1], signature[KC_SIGV4_HEX_LEN + 1];
	char date8[9];
	uint8_t key[KC_SIGV4_KEY_LEN];
	enum kc_status status;

	*authorization_out = NULL;
	if (kc_sigv4_sha256_hex(req->body, req->body_len, payload_hash))
		return kc_fail(err, KC_INTERNAL, "SHA-256 of the payload failed");
	status = check_sign_params(req, p, payload_hash, err);
	if (status != KC_OK)
		return status;
	status = add_signing_headers(req, p, &signed_req, local, LOCAL_HEADERS, &headers, err);
	if (status != KC_OK)
		return status;
	status = kc_sigv4_signed_headers(&signed_req, signed_headers, err);
	if (status != KC_OK)
		goto out;
	snprintf(date8, sizeof(date8), "%.8s", p->amz_date);
	status = kc_sigv4_signing_key(p->secret_access_key, date8, p->region, p->service, key, err);
	if (status != KC_OK)
		goto out;
	status = compute_signature(&signed_req, signed_headers, payload_hash,
			effective_flags(p->flags, p->service), p->amz_date, p->region, p->service,
			key, signature, err);
	if (status == KC_OK)
		status = format_authorization(p, signed_headers, signature, authorization_out, err);
out:
	sodium_memzero(key, sizeof(key));
	if (headers != local)
		free(headers);
	return status;
}

/* ---- the signing-key cache ------------------------------------------------------ */

#define CACHE_SLOTS 8
#define CACHE_SECRET_MAX 128   /* longer secrets are derived every time */

/* The secret half of a slot, in sodium_malloc'ed (locked, guarded) memory. */
struct cache_secret {
	uint8_t key[KC_SIGV4_KEY_LEN];
	size_t secret_len;
	char secret[CACHE_SECRET_MAX];
};

struct cache_slot {
	uint64_t last_used;            /* 0: empty */
	char access_key_id[KC_SIGV4_FIELD_MAX];
	char date[9];
	char region[KC_SIGV4_FIELD_MAX];
	char service[KC_SIGV4_FIELD_MAX];
};

struct kc_sigv4_key_cache {
	pthread_mutex_t lock;
	uint64_t clock;                /* bumped on every use, for LRU eviction */
	struct cache_slot slots[CACHE_SLOTS];
	struct cache_secret *secrets;  /* CACHE_SLOTS of them */
};

/* What a signing key is derived from. */
struct key_scope {
	const char *access_key_id, *date, *region, *service, *secret;
};

struct kc_sigv4_key_cache *kc_sigv4_key_cache_new(void)
{
	struct kc_sigv4_key_cache *cache;

	if (sodium_init() < 0)
		return NULL;
	cache = calloc(1, sizeof(*cache));
	if (!cache)
		return NULL;
	cache->secrets = sodium_malloc(CACHE_SLOTS * sizeof(*cache->secrets));
	if (!cache->secrets || pthread_mutex_init(&cache->lock, NULL)) {
		sodium_free(cache->secrets);
		free(cache);
		return NULL;
	}
	sodium_memzero(cache->secrets, CACHE_SLOTS * sizeof(*cache->secrets));
	return cache;
}

void kc_sigv4_key_cache_free(struct kc_sigv4_key_cache *cache)
{
	if (!cache)
		return;
	pthread_mutex_destroy(&cache->lock);
	sodium_free(cache->secrets);   /* wipes */
	free(cache);
}

static int slot_matches(const struct kc_sigv4_key_cache *cache, size_t i,
		const struct key_scope *s)
{
	const struct cache_slot *slot = &cache->slots[i];
	const struct cache_secret *secret = &cache->secrets[i];
	size_t secret_len = strlen(s->secret);

	return slot->last_used && !strcmp(slot->access_key_id, s->access_key_id) &&
	       !strcmp(slot->date, s->date) && !strcmp(slot->region, s->region) &&
	       !strcmp(slot->service, s->service) && secret->secret_len == secret_len &&
	       !sodium_memcmp(secret->secret, s->secret, secret_len);
}

/* 1 and the key in out when cached, else 0. */
static int cache_get(struct kc_sigv4_key_cache *cache, const struct key_scope *s,
		uint8_t out[KC_SIGV4_KEY_LEN])
{
	int found = 0;

	pthread_mutex_lock(&cache->lock);
	for (size_t i = 0; i < CACHE_SLOTS && !found; i++) {
		if (!slot_matches(cache, i, s))
			continue;
		memcpy(out, cache->secrets[i].key, KC_SIGV4_KEY_LEN);
		cache->slots[i].last_used = ++cache->clock;
		found = 1;
	}
	pthread_mutex_unlock(&cache->lock);
	return found;
}

/* The least recently used slot (an empty one first). */
static size_t cache_victim(const struct kc_sigv4_key_cache *cache)
{
	size_t victim = 0;

	for (size_t i = 1; i < CACHE_SLOTS; i++)
		if (cache->slots[i].last_used < cache->slots[victim].last_used)
			victim = i;
	return victim;
}

static void cache_put(struct kc_sigv4_key_cache *cache, const struct key_scope *s,
		const uint8_t key[KC_SIGV4_KEY_LEN])
{
	size_t secret_len = strlen(s->secret), i;
	struct cache_slot *slot;

	if (secret_len > CACHE_SECRET_MAX || strlen(s->access_key_id) >= KC_SIGV4_FIELD_MAX ||
	    strlen(s->date) >= sizeof(slot->date) || strlen(s->region) >= KC_SIGV4_FIELD_MAX ||
	    strlen(s->service) >= KC_SIGV4_FIELD_MAX)
		return;
	pthread_mutex_lock(&cache->lock);
	i = cache_victim(cache);
	slot = &cache->slots[i];
	strcpy(slot->access_key_id, s->access_key_id);
	strcpy(slot->date, s->date);
	strcpy(slot->region, s->region);
	strcpy(slot->service, s->service);
	memcpy(cache->secrets[i].key, key, KC_SIGV4_KEY_LEN);
	memcpy(cache->secrets[i].secret, s->secret, secret_len);
	cache->secrets[i].secret_len = secret_len;
	slot->last_used = ++cache->clock;
	pthread_mutex_unlock(&cache->lock);
}

static enum kc_status signing_key_cached(struct kc_sigv4_key_cache *cache,
		const struct key_scope *s, uint8_t out[KC_SIGV4_KEY_LEN], struct kc_error *err)
{
	enum kc_status status;

	if (cache && cache_get(cache, s, out))
		return KC_OK;
	status = kc_sigv4_signing_key(s->secret, s->date, s->region, s->service, out, err);
	if (status == KC_OK && cache)
		cache_put(cache, s, out);
	return status;
}

/* ---- verifying ------------------------------------------------------------------ */

static enum kc_status find_authorization(const struct kc_sigv4_request *req,
		const char **value, struct kc_error *err)
{
	size_t count;

	*value = header_value(req, "authorization", &count);
	if (!*value)
		return kc_fail(err, KC_MISSING_AUTH, "Missing Authentication Token");
	if (count > 1)
		return kc_fail(err, KC_INCOMPLETE_SIGNATURE,
				"Request has more than one Authorization header");
	return KC_OK;
}

/* X-Amz-Date, else Date: when the request says it was signed. */
static enum kc_status find_request_date(const struct kc_sigv4_request *req,
		const char *authorization, struct request_date *out, struct kc_error *err)
{
	char value[64];
	size_t count;
	const char *amz = header_value(req, "x-amz-date", &count);
	const char *http = amz ? NULL : header_value(req, "date", &count);

	if (!amz && !http)
		return kc_fail(err, KC_INCOMPLETE_SIGNATURE, "Authorization header requires "
				"existence of either a 'X-Amz-Date' or a 'Date' header. "
				"Authorization=%s", authorization);
	if (amz && (copy_trimmed(amz, value, sizeof(value)) || parse_amz_date(value, &out->when)))
		return kc_fail(err, KC_INCOMPLETE_SIGNATURE, "Date must be in ISO-8601 'basic "
				"format'. Got '%.64s'. See http://en.wikipedia.org/wiki/ISO_8601", amz);
	if (!amz && (copy_trimmed(http, value, sizeof(value)) || parse_http_date(value, &out->when)))
		return kc_fail(err, KC_INCOMPLETE_SIGNATURE, "Date header must be an RFC 7231 "
				"date ('Sun, 30 Aug 2015 12:36:00 GMT'). Got '%.64s'", http);
	format_amz_date(out->when, out->amz_date);
	return KC_OK;
}

static enum kc_status check_scope(const struct kc_sigv4_auth *auth,
		const struct request_date *date, const struct kc_sigv4_verify_params *p,
		struct kc_error *err)
{
	if (strncmp(auth->date, date->amz_date, 8) || strlen(auth->date) != 8)
		return kc_fail(err, KC_INVALID_SIGNATURE, "Date in Credential scope does not match "
				"YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%.8s', "
				"from '%s'.", auth->date, date->amz_date, date->amz_date);
	if (strcmp(auth->region, p->region))
		return kc_fail(err, KC_INVALID_SIGNATURE,
				"Credential should be scoped to a valid region, not '%s'.", auth->region);
	if (strcmp(auth->service, p->service))
		return kc_fail(err, KC_INVALID_SIGNATURE,
				"Credential should be scoped to correct service: '%s'.", p->service);
	if (strcmp(auth->terminator, KC_SIGV4_TERMINATOR))
		return kc_fail(err, KC_INVALID_SIGNATURE, "Credential should be scoped with a valid "
				"terminator: '%s', not '%s'.", KC_SIGV4_TERMINATOR, auth->terminator);
	if (!list_has(auth->signed_headers, "host"))
		return kc_fail(err, KC_INCOMPLETE_SIGNATURE,
				"'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
	return KC_OK;
}

static enum kc_status check_skew(const struct request_date *date,
		const struct kc_sigv4_verify_params *p, struct kc_error *err)
{
	time_t skew = p->max_skew > 0 ? p->max_skew : KC_SIGV4_MAX_SKEW;
	char now[KC_SIGV4_AMZ_DATE_LEN + 1], limit[KC_SIGV4_AMZ_DATE_LEN + 1];

	if (date->when >= p->now - skew && date->when <= p->now + skew)
		return KC_OK;
	format_amz_date(p->now, now);
	if (date->when < p->now - skew) {
		format_amz_date(p->now - skew, limit);
		return kc_fail(err, KC_INVALID_SIGNATURE, "Signature expired: %s is now earlier "
				"than %s (%s - %lld min.)", date->amz_date, limit, now,
				(long long)skew / 60);
	}
	format_amz_date(p->now + skew, limit);
	return kc_fail(err, KC_INVALID_SIGNATURE, "Signature not yet current: %s is still later "
			"than %s (%s + %lld min.)", date->amz_date, limit, now, (long long)skew / 60);
}

/* The body's hash; a signed X-Amz-Content-Sha256 must state the same. */
static enum kc_status payload_hash(const struct kc_sigv4_request *req,
		const struct kc_sigv4_auth *auth, char out[KC_SIGV4_HEX_LEN + 1],
		struct kc_error *err)
{
	size_t count;
	const char *header;

	if (kc_sigv4_sha256_hex(req->body, req->body_len, out))
		return kc_fail(err, KC_INTERNAL, "SHA-256 of the payload failed");
	if (!list_has(auth->signed_headers, "x-amz-content-sha256"))
		return KC_OK;
	header = header_value(req, "x-amz-content-sha256", &count);
	if (header && (count > 1 || !equals_trimmed(header, out)))
		return kc_fail(err, KC_INVALID_SIGNATURE,
				"The provided 'x-amz-content-sha256' header does not match what was "
				"computed.");
	return KC_OK;
}

static enum kc_status signing_key_for(const struct kc_sigv4_auth *auth,
		const struct kc_sigv4_verify_params *p, uint8_t key[KC_SIGV4_KEY_LEN],
		struct kc_error *err)
{
	const char *secret = p->lookup(auth->access_key_id, p->arg);
	struct key_scope scope = {
		auth->access_key_id, auth->date, auth->region, auth->service, secret,
	};
	enum kc_status status;

	if (!secret)
		return kc_fail(err, KC_UNRECOGNIZED_CLIENT,
				"The security token included in the request is invalid.");
	status = signing_key_cached(p->cache, &scope, key, err);
	if (p->release)
		p->release(secret, p->arg);
	return status;
}

static enum kc_status check_signature(const struct kc_sigv4_request *req,
		const struct kc_sigv4_verify_params *p, const struct kc_sigv4_auth *auth,
		const struct request_date *date, struct kc_error *err)
{
	char hash[KC_SIGV4_HEX_LEN + 1], expected[KC_SIGV4_HEX_LEN + 1];
	uint8_t key[KC_SIGV4_KEY_LEN];
	enum kc_status status;

	status = signing_key_for(auth, p, key, err);
	if (status != KC_OK)
		return status;
	status = payload_hash(req, auth, hash, err);
	if (status == KC_OK)
		status = compute_signature(req, auth->signed_headers, hash,
				effective_flags(p->flags, p->service), date->amz_date, auth->region,
				auth->service, key, expected, err);
	sodium_memzero(key, sizeof(key));
	if (status != KC_OK)
		return status;
	if (strlen(auth->signature) != KC_SIGV4_HEX_LEN ||
	    sodium_memcmp(auth->signature, expected, KC_SIGV4_HEX_LEN))
		return kc_fail(err, KC_INVALID_SIGNATURE, "The request signature we calculated "
				"does not match the signature you provided. Check your AWS Secret "
				"Access Key and signing method. Consult the service documentation "
				"for details.");
	return KC_OK;
}

enum kc_status kc_sigv4_verify(const struct kc_sigv4_request *req,
		const struct kc_sigv4_verify_params *p, struct kc_sigv4_identity *who,
		struct kc_error *err)
{
	struct kc_sigv4_auth auth;
	struct request_date date;
	const char *authorization;
	enum kc_status status;

	if (!p->region || !p->service || !p->lookup)
		return kc_fail(err, KC_INTERNAL, "SigV4 verification needs a region, a service "
				"and a key lookup");
	status = find_authorization(req, &authorization, err);
	if (status == KC_OK)
		status = kc_sigv4_parse_authorization(authorization, &auth, err);
	if (status == KC_OK)
		status = find_request_date(req, authorization, &date, err);
	if (status == KC_OK)
		status = check_scope(&auth, &date, p, err);
	if (status == KC_OK)
		status = check_skew(&date, p, err);
	if (status == KC_OK)
		status = check_signature(req, p, &auth, &date, err);
	if (status != KC_OK)
		return status;
	if (who) {
		snprintf(who->access_key_id, sizeof(who->access_key_id), "%s", auth.access_key_id);
		who->signed_at = date.when;
	}
	if (err)
		kc_fail(err, KC_OK, "%s", "");
	return KC_OK;
}
