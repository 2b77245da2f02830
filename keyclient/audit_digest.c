/*
 * audit_digest.c - what an audit trail's writer and its verifier must
 * agree on byte for byte: file and digest names, the summary of a log
 * file (SHA-256, record count, event-time range), the digest signing key
 * and its published public key, the signed message, and reading a digest
 * back. The layout and the chain are described in audit_trail.h.
 *
 * The signing key is an Ed25519 seed (32 raw bytes) in a file of its own,
 * mode 0600 in a 0700 directory that is not the log directory: whoever
 * can read it can re-sign a rewritten history. In memory it only ever
 * lives in kmsfs_secure_alloc'ed pages, and it is never logged.
 */
#include "audit_trail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "crypto.h"

#define SEED_LEN crypto_sign_SEEDBYTES
#define DIGEST_MAX_BYTES (16u << 20)
#define PEM_MAX 4096
#define SIG_FILE_MAX 512

/* Ed25519 SubjectPublicKeyInfo (RFC 8410) up to the 32 key bytes. */
static const uint8_t spki_prefix[12] = { 0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
					 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00 };

struct kc_audit_key {
	uint8_t *secret;             /* crypto_sign_SECRETKEYBYTES, secure memory */
	uint8_t public_key[KC_AUDIT_PUBLIC_KEY_LEN];
};

/* ---- times and names -------------------------------------------------------------- */

void kc_audit_time_format(time_t when, char out[KC_AUDIT_TIME_LEN])
{
	struct tm tm;

	gmtime_r(&when, &tm);
	strftime(out, KC_AUDIT_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Digits from text into *out; the number of them taken (exactly count or 0). */
static int take_digits(const char *text, int count, int *out)
{
	int value = 0;

	for (int i = 0; i < count; i++) {
		if (text[i] < '0' || text[i] > '9')
			return 0;
		value = value * 10 + (text[i] - '0');
	}
	*out = value;
	return count;
}

/* tm fields to UTC seconds; -1 if a field is out of range. */
static time_t utc_seconds(int year, int mon, int day, int hour, int min, int sec)
{
	struct tm tm = { .tm_year = year - 1900, .tm_mon = mon - 1, .tm_mday = day,
			 .tm_hour = hour, .tm_min = min, .tm_sec = sec };

	if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 ||
	    sec > 60)
		return -1;
	return timegm(&tm);
}

time_t kc_audit_time_parse(const char *text)
{
	int y, mo, d, h, mi, s;

	if (!text || strlen(text) != KC_AUDIT_TIME_LEN - 1 || text[4] != '-' || text[7] != '-' ||
	    text[10] != 'T' || text[13] != ':' || text[16] != ':' || text[19] != 'Z')
		return -1;
	if (!take_digits(text, 4, &y) || !take_digits(text + 5, 2, &mo) ||
	    !take_digits(text + 8, 2, &d) || !take_digits(text + 11, 2, &h) ||
	    !take_digits(text + 14, 2, &mi) || !take_digits(text + 17, 2, &s))
		return -1;
	return utc_seconds(y, mo, d, h, mi, s);
}

/* "YYYYMMDD" or "YYYYMMDDTHHMMSSZ" at text: its time and length, or 0. */
static size_t parse_stamp(const char *text, time_t *when)
{
	int y, mo, d, h = 0, mi = 0, s = 0;
	size_t len = 8;

	if (!take_digits(text, 4, &y) || !take_digits(text + 4, 2, &mo) ||
	    !take_digits(text + 6, 2, &d))
		return 0;
	if (text[8] == 'T') {
		if (!take_digits(text + 9, 2, &h) || !take_digits(text + 11, 2, &mi) ||
		    !take_digits(text + 13, 2, &s) || text[15] != 'Z')
			return 0;
		len = 16;
	}
	*when = utc_seconds(y, mo, d, h, mi, s);
	return *when < 0 ? 0 : len;
}

/* The prefix: letters, digits and '_' up to the first '-'. Its length, or 0. */
static size_t parse_prefix(const char *name, char prefix[64])
{
	size_t len = 0;

	while (name[len] && name[len] != '-' && len < 63) {
		char c = name[len];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return 0;
		len++;
	}
	if (len == 0 || name[len] != '-')
		return 0;
	memcpy(prefix, name, len);
	prefix[len] = '\0';
	return len;
}

int kc_audit_log_name_parse(const char *name, struct kc_audit_log_name *out)
{
	size_t at = parse_prefix(name, out->prefix), len;
	char *end;
	unsigned long seq = 1;

	if (!at)
		return -1;
	at++;
	len = parse_stamp(name + at, &out->start);
	if (!len)
		return -1;
	at += len;
	if (name[at] == '.' && name[at + 1] >= '2' && name[at + 1] <= '9') {
		seq = strtoul(name + at + 1, &end, 10);
		if (seq > 1000000)
			return -1;
		at = (size_t)(end - name);
	}
	if (strcmp(name + at, ".jsonl") != 0)
		return -1;
	out->seq = (unsigned)seq;
	return 0;
}

void kc_audit_log_name_format(const char *prefix, time_t start, unsigned period, unsigned seq,
		char out[KC_AUDIT_NAME_MAX])
{
	struct tm tm;
	char stamp[24], part[16] = "";
	int daily = period % KC_AUDIT_DAY == 0 && start % KC_AUDIT_DAY == 0;

	gmtime_r(&start, &tm);
	strftime(stamp, sizeof stamp, daily ? "%Y%m%d" : "%Y%m%dT%H%M%SZ", &tm);
	if (seq > 1)
		snprintf(part, sizeof part, ".%u", seq);
	snprintf(out, KC_AUDIT_NAME_MAX, "%s-%s%s.jsonl", prefix, stamp, part);
}

int kc_audit_log_name_cmp(const struct kc_audit_log_name *a, const struct kc_audit_log_name *b)
{
	if (a->start != b->start)
		return a->start < b->start ? -1 : 1;
	if (a->seq != b->seq)
		return a->seq < b->seq ? -1 : 1;
	return 0;
}

void kc_audit_digest_name_format(const char *prefix, time_t end, char out[KC_AUDIT_NAME_MAX])
{
	struct tm tm;
	char stamp[24];

	gmtime_r(&end, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
	snprintf(out, KC_AUDIT_NAME_MAX, "%s-digest-%s.json", prefix, stamp);
}

int kc_audit_digest_name_parse(const char *name, char prefix[64], time_t *end)
{
	size_t at = parse_prefix(name, prefix);

	*end = -1;
	if (!at || strncmp(name + at, "-digest-", 8) != 0)
		return -1;
	at += 8;
	if (parse_stamp(name + at, end) != 16 || strcmp(name + at + 16, ".json") != 0) {
		*end = -1;
		return -1;
	}
	return 0;
}

/* ---- log file summaries --------------------------------------------------------------- */

/* The record's eventTime as the writers put it: "eventTime":"YYYY-MM-DDTHH:MM:SSZ". */
static void event_time(const char *line, size_t len, char out[KC_AUDIT_TIME_LEN])
{
	static const char key[] = "\"eventTime\":\"";
	const char *at = memmem(line, len, key, sizeof key - 1);
	size_t left;

	out[0] = '\0';
	if (!at)
		return;
	at += sizeof key - 1;
	left = len - (size_t)(at - line);
	if (left < KC_AUDIT_TIME_LEN || at[KC_AUDIT_TIME_LEN - 1] != '"')
		return;
	memcpy(out, at, KC_AUDIT_TIME_LEN - 1);
	out[KC_AUDIT_TIME_LEN - 1] = '\0';
	if (kc_audit_time_parse(out) < 0)
		out[0] = '\0';
}

static void widen_range(struct kc_audit_file_summary *out, const char *when)
{
	if (!when[0])
		return;
	if (!out->oldest[0] || strcmp(when, out->oldest) < 0)
		memcpy(out->oldest, when, KC_AUDIT_TIME_LEN);
	if (!out->newest[0] || strcmp(when, out->newest) > 0)
		memcpy(out->newest, when, KC_AUDIT_TIME_LEN);
}

int kc_audit_file_summarize(int dir_fd, const char *name, struct kc_audit_file_summary *out)
{
	crypto_hash_sha256_state state;
	uint8_t hash[crypto_hash_sha256_BYTES];
	char *line = NULL, when[KC_AUDIT_TIME_LEN];
	size_t cap = 0;
	ssize_t len;
	FILE *file = NULL;
	int fd, rc = -1;

	memset(out, 0, sizeof *out);
	fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	file = fdopen(fd, "r");
	if (!file) {
		close(fd);
		return -1;
	}
	crypto_hash_sha256_init(&state);
	while ((len = getline(&line, &cap, file)) > 0) {
		crypto_hash_sha256_update(&state, (const uint8_t *)line, (size_t)len);
		if (len > 1 || line[0] != '\n')
			out->records++;
		event_time(line, (size_t)len, when);
		widen_range(out, when);
	}
	if (ferror(file))
		goto out;
	crypto_hash_sha256_final(&state, hash);
	sodium_bin2hex(out->hash, sizeof out->hash, hash, sizeof hash);
	rc = 0;
out:
	free(line);
	fclose(file);
	return rc;
}

/* ---- the signing key ----------------------------------------------------------------- */

static struct kc_audit_key *key_from_seed(const uint8_t *seed)
{
	struct kc_audit_key *key = calloc(1, sizeof *key);

	if (!key)
		return NULL;
	key->secret = kmsfs_secure_alloc(crypto_sign_SECRETKEYBYTES);
	if (!key->secret) {
		free(key);
		return NULL;
	}
	crypto_sign_seed_keypair(key->public_key, key->secret, seed);
	return key;
}

/* mkdir the key's directory (0700) when it is missing: one level only. */
static int make_key_dir(const char *key_path, char err[KC_AUDIT_ERR_MAX])
{
	char copy[PATH_MAX];
	const char *dir;

	snprintf(copy, sizeof copy, "%s", key_path);
	dir = dirname(copy);
	if (mkdir(dir, 0700) == 0 || errno == EEXIST)
		return 0;
	snprintf(err, KC_AUDIT_ERR_MAX, "digest signing key %s: cannot create %s: %s", key_path,
		 dir, strerror(errno));
	return -1;
}

/*
 * A new seed in a new file: written under a temporary name and linked
 * into place, so a concurrent writer never reads half a key, and two
 * writers starting together end up with the same one (the loser loads it).
 */
static int create_key_file(const char *key_path, char err[KC_AUDIT_ERR_MAX])
{
	char tmp[PATH_MAX + 32];
	uint8_t *seed = kmsfs_secure_alloc(SEED_LEN);
	int fd = -1, rc = -1;

	if (!seed) {
		snprintf(err, KC_AUDIT_ERR_MAX, "digest signing key: out of locked memory");
		return -1;
	}
	if (make_key_dir(key_path, err) != 0)
		goto out;
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", key_path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	kmsfs_random(seed, SEED_LEN);
	if (fd < 0 || write(fd, seed, SEED_LEN) != (ssize_t)SEED_LEN || fsync(fd) != 0) {
		snprintf(err, KC_AUDIT_ERR_MAX, "digest signing key %s (writing it): %s", key_path,
			 strerror(errno));
		goto out;
	}
	if (link(tmp, key_path) != 0 && errno != EEXIST) {
		snprintf(err, KC_AUDIT_ERR_MAX, "digest signing key %s: %s", key_path,
			 strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	kmsfs_secure_free(seed);
	return rc;
}

/* Read the seed from an open key file after checking what it is. */
static struct kc_audit_key *read_key_file(int fd, const char *key_path,
		char err[KC_AUDIT_ERR_MAX])
{
	struct kc_audit_key *key = NULL;
	uint8_t *seed = NULL;
	struct stat st;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != SEED_LEN) {
		snprintf(err, KC_AUDIT_ERR_MAX, "digest signing key %s: not a %u-byte key file",
			 key_path, (unsigned)SEED_LEN);
		goto out;
	}
	if (st.st_mode & 077) {
		snprintf(err, KC_AUDIT_ERR_MAX, "digest signing key %s: mode %03o lets others read "
			 "it (chmod 600 it, and make a new key if others did)", key_path,
			 (unsigned)(st.st_mode & 0777));
		goto out;
	}
	seed = kmsfs_secure_alloc(SEED_LEN);
	if (!seed || read(fd, seed, SEED_LEN) != (ssize_t)SEED_LEN) {
		snprintf(err, KC_AUDIT_ERR_MAX, "digest signing key %s: cannot read it", key_path);
		goto out;
	}
	key = key_from_seed(seed);
	if (!key)
		snprintf(err, KC_AUDIT_ERR_MAX, "digest signing key: out of locked memory");
out:
	kmsfs_secure_free(seed);
	return key;
}

struct kc_audit_key *kc_audit_key_load(const char *key_path, char err[KC_AUDIT_ERR_MAX])
{
	struct kc_audit_key *key;
	int fd = open(key_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT) {
		if (create_key_file(key_path, err) != 0)
			return NULL;
		fd = open(key_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0) {
		snprintf(err, KC_AUDIT_ERR_MAX, "digest signing key %s: %s", key_path,
			 strerror(errno));
		return NULL;
	}
	key = read_key_file(fd, key_path, err);
	close(fd);
	return key;
}

void kc_audit_key_free(struct kc_audit_key *key)
{
	if (!key)
		return;
	kmsfs_secure_free(key->secret);
	free(key);
}

const uint8_t *kc_audit_key_public(const struct kc_audit_key *key)
{
	return key->public_key;
}

void kc_audit_key_fingerprint(const uint8_t pk[KC_AUDIT_PUBLIC_KEY_LEN], char out[KC_AUDIT_FPR_HEX])
{
	uint8_t hash[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(hash, pk, KC_AUDIT_PUBLIC_KEY_LEN);
	sodium_bin2hex(out, KC_AUDIT_FPR_HEX, hash, sizeof hash);
}

/* ---- the public key ------------------------------------------------------------------ */

#define PEM_TEXT_MAX 192

static void public_key_pem(const uint8_t pk[KC_AUDIT_PUBLIC_KEY_LEN], char out[PEM_TEXT_MAX])
{
	uint8_t der[sizeof spki_prefix + KC_AUDIT_PUBLIC_KEY_LEN];
	char b64[80];

	memcpy(der, spki_prefix, sizeof spki_prefix);
	memcpy(der + sizeof spki_prefix, pk, KC_AUDIT_PUBLIC_KEY_LEN);
	sodium_bin2base64(b64, sizeof b64, der, sizeof der, sodium_base64_VARIANT_ORIGINAL);
	snprintf(out, PEM_TEXT_MAX, "-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n", b64);
}

/* Up to max - 1 bytes of dir_fd/name, NUL-terminated; length or -1. */
static ssize_t read_small(int dir_fd, const char *name, char *buf, size_t max)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t got, total = 0;

	if (fd < 0)
		return -1;
	while ((size_t)total < max - 1 &&
	       (got = read(fd, buf + total, max - 1 - (size_t)total)) > 0)
		total += got;
	close(fd);
	buf[total] = '\0';
	return total;
}

int kc_audit_public_key_publish(int dir_fd, const uint8_t pk[KC_AUDIT_PUBLIC_KEY_LEN],
		char err[KC_AUDIT_ERR_MAX])
{
	char pem[PEM_TEXT_MAX], current[PEM_MAX], tmp[64];
	size_t len;
	int fd;

	public_key_pem(pk, pem);
	if (read_small(dir_fd, KC_AUDIT_PUBLIC_KEY_FILE, current, sizeof current) >= 0 &&
	    strcmp(current, pem) == 0)
		return 0;
	snprintf(tmp, sizeof tmp, ".%s.tmp.%ld", KC_AUDIT_PUBLIC_KEY_FILE, (long)getpid());
	fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	len = strlen(pem);
	if (fd < 0 || write(fd, pem, len) != (ssize_t)len || fchmod(fd, 0644) != 0 ||
	    close(fd) != 0 || renameat(dir_fd, tmp, dir_fd, KC_AUDIT_PUBLIC_KEY_FILE) != 0) {
		snprintf(err, KC_AUDIT_ERR_MAX, "%s: %s", KC_AUDIT_PUBLIC_KEY_FILE, strerror(errno));
		unlinkat(dir_fd, tmp, 0);
		return -1;
	}
	return 0;
}

/* The base64 between PEM armour lines, decoded: an Ed25519 SubjectPublicKeyInfo. */
static int pem_public_key(const char *text, uint8_t pk[KC_AUDIT_PUBLIC_KEY_LEN])
{
	static const char begin[] = "-----BEGIN PUBLIC KEY-----", end[] = "-----END PUBLIC KEY-----";
	const char *from = strstr(text, begin), *to;
	uint8_t der[128];
	size_t der_len = 0;

	if (!from)
		return -1;
	from += sizeof begin - 1;
	to = strstr(from, end);
	if (!to || sodium_base642bin(der, sizeof der, from, (size_t)(to - from), " \t\r\n",
				     &der_len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
		return -1;
	if (der_len != sizeof spki_prefix + KC_AUDIT_PUBLIC_KEY_LEN ||
	    memcmp(der, spki_prefix, sizeof spki_prefix) != 0)
		return -1;
	memcpy(pk, der + sizeof spki_prefix, KC_AUDIT_PUBLIC_KEY_LEN);
	return 0;
}

int kc_audit_public_key_read(const char *path, uint8_t pk[KC_AUDIT_PUBLIC_KEY_LEN],
		char err[KC_AUDIT_ERR_MAX])
{
	char text[PEM_MAX];
	size_t bin_len = 0;

	if (read_small(AT_FDCWD, path, text, sizeof text) < 0) {
		snprintf(err, KC_AUDIT_ERR_MAX, "public key %s: %s", path, strerror(errno));
		return -1;
	}
	if (pem_public_key(text, pk) == 0)
		return 0;
	if (sodium_hex2bin(pk, KC_AUDIT_PUBLIC_KEY_LEN, text, strlen(text), " \t\r\n", &bin_len,
			   NULL) == 0 && bin_len == KC_AUDIT_PUBLIC_KEY_LEN)
		return 0;
	snprintf(err, KC_AUDIT_ERR_MAX, "public key %s: neither an Ed25519 PEM public key nor "
		 "64 hex digits", path);
	return -1;
}

/* ---- signatures ---------------------------------------------------------------------- */

/* The message a digest's signature covers (see audit_trail.h); malloc'ed. */
static char *signed_message(const char *name, const char *bytes, size_t len, const char *prev_sig,
		size_t *msg_len)
{
	uint8_t hash[crypto_hash_sha256_BYTES];
	char hash_hex[KC_AUDIT_HASH_HEX], *msg;
	size_t size;

	crypto_hash_sha256(hash, (const uint8_t *)bytes, len);
	sodium_bin2hex(hash_hex, sizeof hash_hex, hash, sizeof hash);
	size = strlen(KC_AUDIT_SIGNED_PREFIX) + strlen(name) + strlen(hash_hex) +
	       strlen(prev_sig) + 4;
	msg = malloc(size);
	if (!msg)
		return NULL;
	*msg_len = (size_t)snprintf(msg, size, "%s%s\n%s\n%s\n", KC_AUDIT_SIGNED_PREFIX, name,
				    hash_hex, prev_sig);
	return msg;
}

int kc_audit_digest_sign(const struct kc_audit_key *key, const char *name, const char *bytes,
		size_t len, const char *prev_sig, char sig[KC_AUDIT_SIG_HEX])
{
	uint8_t raw[crypto_sign_BYTES];
	size_t msg_len = 0;
	char *msg = signed_message(name, bytes, len, prev_sig, &msg_len);

	if (!msg)
		return -1;
	crypto_sign_detached(raw, NULL, (const uint8_t *)msg, msg_len, key->secret);
	sodium_bin2hex(sig, KC_AUDIT_SIG_HEX, raw, sizeof raw);
	free(msg);
	return 0;
}

int kc_audit_digest_check(const uint8_t pk[KC_AUDIT_PUBLIC_KEY_LEN], const char *name,
		const char *bytes, size_t len, const char *prev_sig, const char *sig)
{
	uint8_t raw[crypto_sign_BYTES];
	size_t raw_len = 0, msg_len = 0;
	char *msg;
	int rc = -1;

	if (strlen(sig) != 2 * crypto_sign_BYTES ||
	    sodium_hex2bin(raw, sizeof raw, sig, strlen(sig), NULL, &raw_len, NULL) != 0 ||
	    raw_len != sizeof raw)
		return -1;
	msg = signed_message(name, bytes, len, prev_sig, &msg_len);
	if (msg && crypto_sign_verify_detached(raw, (const uint8_t *)msg, msg_len, pk) == 0)
		rc = 0;
	free(msg);
	return rc;
}

/* ---- reading a digest back ------------------------------------------------------------ */

/* The whole file, NUL-terminated, malloc'ed; NULL if unreadable or too large. */
static char *read_all(int dir_fd, const char *name, size_t *len)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	char *bytes = NULL;
	ssize_t got;
	size_t total = 0;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > DIGEST_MAX_BYTES)
		goto out;
	bytes = malloc((size_t)st.st_size + 1);
	if (!bytes)
		goto out;
	while (total < (size_t)st.st_size &&
	       (got = read(fd, bytes + total, (size_t)st.st_size - total)) > 0)
		total += (size_t)got;
	bytes[total] = '\0';
	*len = total;
out:
	close(fd);
	return bytes;
}

/* NAME.sig: 128 hex digits and a newline; "" when it is anything else. */
static void read_sig(int digest_dir_fd, const char *name, char sig[KC_AUDIT_SIG_HEX])
{
	char sig_name[KC_AUDIT_NAME_MAX + 8], text[SIG_FILE_MAX];
	ssize_t len;

	sig[0] = '\0';
	snprintf(sig_name, sizeof sig_name, "%s.sig", name);
	len = read_small(digest_dir_fd, sig_name, text, sizeof text);
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		text[--len] = '\0';
	if (len != KC_AUDIT_SIG_HEX - 1 || strspn(text, "0123456789abcdef") != (size_t)len)
		return;
	memcpy(sig, text, KC_AUDIT_SIG_HEX);
}

static const char *string_field(json_t *obj, const char *name)
{
	return json_string_value(json_object_get(obj, name));
}

static void parse_digest_fields(struct kc_audit_digest_file *out)
{
	json_t *json = json_loadb(out->bytes, out->len, 0, NULL);

	if (!json_is_object(json)) {
		json_decref(json);
		return;
	}
	out->json = json;
	out->prev_name = string_field(json, "previousDigestFileName");
	out->prev_sig = string_field(json, "previousDigestSignature");
	if (!out->prev_sig)
		out->prev_sig = "";
	out->start = kc_audit_time_parse(string_field(json, "digestStartTime"));
	out->end = kc_audit_time_parse(string_field(json, "digestEndTime"));
	out->fingerprint = string_field(json, "digestPublicKeyFingerprint");
	if (!out->fingerprint)
		out->fingerprint = "";
}

int kc_audit_digest_read(int digest_dir_fd, const char *name, struct kc_audit_digest_file *out)
{
	memset(out, 0, sizeof *out);
	snprintf(out->name, sizeof out->name, "%s", name);
	out->start = out->end = -1;
	out->prev_sig = out->fingerprint = "";
	out->bytes = read_all(digest_dir_fd, name, &out->len);
	if (!out->bytes)
		return -1;
	read_sig(digest_dir_fd, name, out->sig);
	parse_digest_fields(out);
	return 0;
}

void kc_audit_digest_release(struct kc_audit_digest_file *digest)
{
	json_decref(digest->json);
	free(digest->bytes);
	memset(digest, 0, sizeof *digest);
}

/* ---- directory listings ------------------------------------------------------------- */

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int name_cmp_desc(const void *a, const void *b)
{
	return name_cmp(b, a);
}

int kc_audit_list_names(int dir_fd, int (*keep)(const char *name, void *arg), void *arg,
		int newest_first, char ***out, size_t *count)
{
	int fd = dup(dir_fd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *ent;
	char **grown;

	*out = NULL;
	*count = 0;
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	rewinddir(dir);              /* a dup shares the offset of the last listing */
	while ((ent = readdir(dir)) != NULL) {
		if (!keep(ent->d_name, arg))
			continue;
		grown = realloc(*out, (*count + 1) * sizeof *grown);
		if (!grown)
			break;
		*out = grown;
		(*out)[*count] = strdup(ent->d_name);
		if ((*out)[*count])
			(*count)++;
	}
	closedir(dir);
	if (*out)
		qsort(*out, *count, sizeof **out, newest_first ? name_cmp_desc : name_cmp);
	return 0;
}

void kc_audit_free_names(char **names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}
