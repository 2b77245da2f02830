/*
 * config.c - kmsd's configuration file: parse (inih), validate, resolve.
 *
 * The file holds every user's secret access key, so kmsd refuses it when
 * group or others have any access to it, and reads it into locked memory
 * (never through stdio's buffers). Anything it does not know - a section,
 * a key, a key given twice, a value out of range - stops kmsd with the
 * file, the line and the reason: a typo must never be silently ignored
 * in a key service.
 *
 *   [kmsd]
 *   listen   = 127.0.0.1:4599        ; required. HOST:PORT with a numeric address;
 *                                    ; [::1]:4599 for IPv6; port 0 picks a free port
 *   region   = us-east-1             ; required. Named in every key ARN
 *   account  = 111122223333          ; required. 12 digits; ARNs and user ARNs
 *   data_dir = ./kmsd-data           ; required. The key store (SQLite); relative
 *                                    ; paths are relative to this file's directory
 *   root_key = passphrase-file:PATH  ; required. Or keyfile:PATH (>= 32 random bytes),
 *                                    ; or pkcs11:URI (RFC 7512, e.g.
 *                                    ; pkcs11:token=kmsd;object=root;pin-source=FILE)
 *   pkcs11_module = PATH             ; optional, with pkcs11: root keys only
 *   audit_dir = ./kmsd-audit         ; required. CloudTrail JSON Lines, one file a day
 *   digest_period = 86400            ; seconds per audit file and signed digest,
 *                                    ; 1-2678400 (default a day); the digest
 *                                    ; signing key is data_dir/audit-digest.key
 *   tls_cert = PATH                  ; optional, both or neither: serve HTTPS
 *   tls_key  = PATH                  ;   (PEM; the key file must be mode 0600)
 *   threads  = 2                     ; request threads (default: CPUs online), 1-256
 *   max_body = 65536                 ; largest request body in bytes, 1024-16777216
 *   connection_timeout = 60          ; seconds an idle connection stays open, 1-3600
 *   max_connections = 1024           ; concurrent connections, 1-65536
 *   create_store = yes               ; no: refuse to start when data_dir has no key
 *                                    ; store (a mistyped path must not start empty)
 *
 *   [user NAME]                      ; one section per IAM user; NAME: 1-64 of
 *                                    ; A-Z a-z 0-9 + = , . @ _ -
 *   access_key_id = AKIA...          ; required. 16-128 of A-Z 0-9, unique
 *   secret_access_key = ...          ; required. 16-128 printable characters
 *   allow = kms:Encrypt, kms:Describe*  ; optional identity policy: IAM-style
 *                                    ; action patterns ("*", "kms:*"), comma or
 *                                    ; space separated; may be repeated
 *
 * Comments start with ; or #. Lines are limited to 196 characters (inih).
 */
#include "kmsd.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#include <sodium.h>

#include "audit_trail.h"

#define CONFIG_MAX_SIZE (1024 * 1024)
#define INI_LINE_LIMIT 196          /* inih's 200-byte line buffer, less "\r\n\0" */
#define NAME_MAX_LEN 64
#define KEY_ID_MIN 16
#define KEY_ID_MAX 128
#define SECRET_MIN 16
#define SECRET_MAX 128
#define PARSE_ERR_MAX 512           /* a problem on one line; the file name is added later */

/* Parser state while inih walks the file. */
struct parse_state {
	struct kmsd_config *cfg;
	char last_section[256];      /* to notice where a new section starts */
	int seen_kmsd;
	struct kmsd_user *user;      /* the [user NAME] being read, or NULL */
	char err[PARSE_ERR_MAX];     /* first problem found; "" if none */
	/* [kmsd] keys given so far, to refuse one given twice */
	unsigned seen_keys;
};

/* Remember the first problem; inih gets 0 (error) back. */
static int parse_fail(struct parse_state *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int parse_fail(struct parse_state *st, const char *fmt, ...)
{
	va_list ap;

	if (st->err[0])
		return 0;
	va_start(ap, fmt);
	vsnprintf(st->err, sizeof st->err, fmt, ap);
	va_end(ap);
	return 0;
}

static char *secure_strdup(const char *text)
{
	size_t len = strlen(text);
	char *copy = sodium_malloc(len + 1);

	if (copy)
		memcpy(copy, text, len + 1);
	return copy;
}

static void secure_free(char *text)
{
	if (text) {
		sodium_memzero(text, strlen(text));
		sodium_free(text);
	}
}

/* ---- values ----------------------------------------------------------------------------- */

static int parse_uint(const char *text, unsigned long min, unsigned long max,
		unsigned long *out)
{
	char *end;
	unsigned long value;

	if (!isdigit((unsigned char)text[0]))
		return -1;
	errno = 0;
	value = strtoul(text, &end, 10);
	if (errno || *end || value < min || value > max)
		return -1;
	*out = value;
	return 0;
}

static int parse_bool(const char *text, int *out)
{
	if (!strcasecmp(text, "yes") || !strcasecmp(text, "true") || !strcmp(text, "1"))
		*out = 1;
	else if (!strcasecmp(text, "no") || !strcasecmp(text, "false") || !strcmp(text, "0"))
		*out = 0;
	else
		return -1;
	return 0;
}

/* value as an absolute path: relative ones start at the configuration's directory. */
static char *resolve_path(const struct kmsd_config *cfg, const char *value)
{
	char *path;

	if (value[0] == '/')
		return strdup(value);
	if (asprintf(&path, "%s/%s", cfg->dir, value[0] == '.' && value[1] == '/' ?
		     value + 2 : value) < 0)
		return NULL;
	return path;
}

/* Split "HOST:PORT" / "[V6HOST]:PORT"; NULL when neither shape. */
static const char *split_listen(const char *value, char *host, size_t host_cap)
{
	const char *colon, *start = value;
	size_t host_len;

	if (value[0] == '[') {
		colon = strstr(value, "]:");
		start = value + 1;
		if (!colon)
			return NULL;
		host_len = (size_t)(colon - start);
		colon++;
	} else {
		colon = strrchr(value, ':');
		if (!colon || strchr(value, ':') != colon)
			return NULL;
		host_len = (size_t)(colon - start);
	}
	if (host_len == 0 || host_len >= host_cap)
		return NULL;
	memcpy(host, start, host_len);
	host[host_len] = '\0';
	return colon + 1;
}

/*
 * Numeric addresses only: a key service must not depend on DNS to decide
 * where it listens.
 */
static int parse_listen(struct kmsd_config *cfg, const char *value, char *why, size_t why_len)
{
	char host[INET6_ADDRSTRLEN + 1];
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	unsigned long port_number;
	const char *port = split_listen(value, host, sizeof host);
	int rc;

	if (!port) {
		snprintf(why, why_len, "expected ADDRESS:PORT, or [IPV6-ADDRESS]:PORT");
		return -1;
	}
	if (parse_uint(port, 0, 65535, &port_number) != 0) {
		snprintf(why, why_len, "port must be a number from 0 to 65535");
		return -1;
	}
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		snprintf(why, why_len, "\"%s\" is not a numeric IP address (%s)", host,
			 gai_strerror(rc));
		return -1;
	}
	memcpy(&cfg->listen_addr, res->ai_addr, res->ai_addrlen);
	cfg->listen_addr_len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int valid_region(const char *text)
{
	size_t len = strlen(text);

	if (len == 0 || len > 32)
		return 0;
	return strspn(text, "abcdefghijklmnopqrstuvwxyz0123456789-") == len;
}

static int valid_account(const char *text)
{
	return strlen(text) == 12 && strspn(text, "0123456789") == 12;
}

static int valid_user_name(const char *text)
{
	size_t len = strlen(text);

	if (len == 0 || len > NAME_MAX_LEN)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)text[i]) && !strchr("+=,.@_-", text[i]))
			return 0;
	return 1;
}

static int valid_access_key_id(const char *text)
{
	size_t len = strlen(text);

	return len >= KEY_ID_MIN && len <= KEY_ID_MAX &&
	       strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == len;
}

static int valid_secret(const char *text)
{
	size_t len = strlen(text);

	if (len < SECRET_MIN || len > SECRET_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (text[i] <= ' ' || text[i] > '~')
			return 0;
	return 1;
}

/* "*", "kms:*", "kms:Describe*", "kms:Encrypt": IAM action patterns. */
static int valid_action_pattern(const char *text)
{
	const char *action = text;

	if (!strcmp(text, "*"))
		return 1;
	if (strncasecmp(text, "kms:", 4) != 0)
		return 0;
	action += 4;
	if (!*action || strlen(action) > 128)
		return 0;
	return strspn(action, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz*?") ==
	       strlen(action);
}

/* ---- [kmsd] -------------------------------------------------------------------------- */

enum kmsd_key_bit {
	K_LISTEN = 1 << 0, K_REGION = 1 << 1, K_ACCOUNT = 1 << 2, K_DATA_DIR = 1 << 3,
	K_ROOT_KEY = 1 << 4, K_AUDIT_DIR = 1 << 5, K_TLS_CERT = 1 << 6, K_TLS_KEY = 1 << 7,
	K_THREADS = 1 << 8, K_MAX_BODY = 1 << 9, K_TIMEOUT = 1 << 10, K_MAX_CONN = 1 << 11,
	K_PKCS11_MODULE = 1 << 12, K_CREATE = 1 << 13, K_DIGEST_PERIOD = 1 << 14,
};

static int set_root_key(struct parse_state *st, const char *value)
{
	struct kmsd_config *cfg = st->cfg;
	const char *path = NULL;

	if (!strncmp(value, "passphrase-file:", 16)) {
		cfg->root_kind = KMSD_ROOT_PASSPHRASE_FILE;
		path = value + 16;
	} else if (!strncmp(value, "keyfile:", 8)) {
		cfg->root_kind = KMSD_ROOT_KEYFILE;
		path = value + 8;
	} else if (!strncmp(value, "pkcs11:", 7)) {
		cfg->root_kind = KMSD_ROOT_PKCS11;
		cfg->pkcs11_uri = secure_strdup(value);
		return cfg->pkcs11_uri ? 1 : parse_fail(st, "out of locked memory");
	} else {
		return parse_fail(st, "root_key must be passphrase-file:PATH, keyfile:PATH "
				  "or pkcs11:URI");
	}
	if (!*path)
		return parse_fail(st, "root_key: missing the file name after \"%.*s\"",
				  (int)(path - value), value);
	cfg->root_path = resolve_path(cfg, path);
	return cfg->root_path ? 1 : parse_fail(st, "out of memory");
}

static int set_number(struct parse_state *st, const char *name, const char *value,
		unsigned long min, unsigned long max, unsigned long *out)
{
	if (parse_uint(value, min, max, out) != 0)
		return parse_fail(st, "%s = %s: must be a whole number from %lu to %lu", name,
				  value, min, max);
	return 1;
}

static int set_path(struct parse_state *st, char **slot, const char *value)
{
	*slot = resolve_path(st->cfg, value);
	return *slot ? 1 : parse_fail(st, "out of memory");
}

static int set_text(struct parse_state *st, char **slot, const char *value)
{
	*slot = strdup(value);
	return *slot ? 1 : parse_fail(st, "out of memory");
}

static int kmsd_key_bit(const char *name)
{
	static const struct { const char *name; int bit; } keys[] = {
		{ "listen", K_LISTEN }, { "region", K_REGION }, { "account", K_ACCOUNT },
		{ "data_dir", K_DATA_DIR }, { "root_key", K_ROOT_KEY },
		{ "audit_dir", K_AUDIT_DIR }, { "tls_cert", K_TLS_CERT },
		{ "tls_key", K_TLS_KEY }, { "threads", K_THREADS }, { "max_body", K_MAX_BODY },
		{ "connection_timeout", K_TIMEOUT }, { "max_connections", K_MAX_CONN },
		{ "pkcs11_module", K_PKCS11_MODULE }, { "create_store", K_CREATE },
		{ "digest_period", K_DIGEST_PERIOD },
	};

	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (!strcmp(keys[i].name, name))
			return keys[i].bit;
	return 0;
}

/* The numeric [kmsd] settings, each with its range. */
static int kmsd_number_key(struct parse_state *st, int bit, const char *name, const char *value)
{
	struct kmsd_config *cfg = st->cfg;
	unsigned long number;

	switch (bit) {
	case K_THREADS:
		if (!set_number(st, name, value, 1, 256, &number))
			return 0;
		cfg->threads = (unsigned)number;
		return 1;
	case K_MAX_BODY:
		if (!set_number(st, name, value, 1024, 16u << 20, &number))
			return 0;
		cfg->max_body = number;
		return 1;
	case K_TIMEOUT:
		if (!set_number(st, name, value, 1, 3600, &number))
			return 0;
		cfg->connection_timeout = (unsigned)number;
		return 1;
	case K_DIGEST_PERIOD:
		if (!set_number(st, name, value, 1, KC_AUDIT_PERIOD_MAX, &number))
			return 0;
		cfg->digest_period = (unsigned)number;
		return 1;
	default:   /* K_MAX_CONN */
		if (!set_number(st, name, value, 1, 65536, &number))
			return 0;
		cfg->max_connections = (unsigned)number;
		return 1;
	}
}

static int kmsd_key(struct parse_state *st, const char *name, const char *value)
{
	struct kmsd_config *cfg = st->cfg;
	char why[160];
	int bit = kmsd_key_bit(name);

	if (!bit)
		return parse_fail(st, "unknown key \"%s\" in [kmsd]", name);
	if (st->seen_keys & (unsigned)bit)
		return parse_fail(st, "%s given twice in [kmsd]", name);
	st->seen_keys |= (unsigned)bit;
	if (!*value)
		return parse_fail(st, "%s has an empty value", name);
	switch (bit) {
	case K_LISTEN:
		if (parse_listen(cfg, value, why, sizeof why) != 0)
			return parse_fail(st, "listen = %s: %s", value, why);
		return set_text(st, &cfg->listen, value);
	case K_REGION:
		if (!valid_region(value))
			return parse_fail(st, "region = %s: expected a region name like us-east-1",
					  value);
		return set_text(st, &cfg->region, value);
	case K_ACCOUNT:
		if (!valid_account(value))
			return parse_fail(st, "account = %s: expected 12 digits", value);
		return set_text(st, &cfg->account, value);
	case K_DATA_DIR: return set_path(st, &cfg->data_dir, value);
	case K_AUDIT_DIR: return set_path(st, &cfg->audit_dir, value);
	case K_TLS_CERT: return set_path(st, &cfg->tls_cert, value);
	case K_TLS_KEY: return set_path(st, &cfg->tls_key, value);
	case K_PKCS11_MODULE: return set_path(st, &cfg->pkcs11_module, value);
	case K_ROOT_KEY: return set_root_key(st, value);
	case K_CREATE:
		if (parse_bool(value, &cfg->create_store) != 0)
			return parse_fail(st, "create_store = %s: expected yes or no", value);
		return 1;
	default:
		return kmsd_number_key(st, bit, name, value);
	}
}

/* ---- [user NAME] ----------------------------------------------------------------------- */

/* Append the patterns in value (comma or space separated) to user->allow. */
static int add_allow(struct parse_state *st, struct kmsd_user *user, const char *value)
{
	char *copy = strdup(value), *save = NULL, *pattern, **grown;
	int ok = 0;

	if (!copy)
		return parse_fail(st, "out of memory");
	for (pattern = strtok_r(copy, ", \t", &save); pattern;
	     pattern = strtok_r(NULL, ", \t", &save)) {
		if (!valid_action_pattern(pattern)) {
			parse_fail(st, "user %s: allow: \"%s\" is not an action pattern like "
				   "kms:* or kms:Describe*", user->name, pattern);
			goto out;
		}
		grown = realloc(user->allow, (user->allow_count + 2) * sizeof *grown);
		if (!grown) {
			parse_fail(st, "out of memory");
			goto out;
		}
		user->allow = grown;
		user->allow[user->allow_count] = strdup(pattern);
		if (!user->allow[user->allow_count]) {
			parse_fail(st, "out of memory");
			goto out;
		}
		user->allow[++user->allow_count] = NULL;
	}
	ok = 1;
out:
	free(copy);
	return ok;
}

static int user_key(struct parse_state *st, const char *name, const char *value)
{
	struct kmsd_user *user = st->user;

	if (!strcmp(name, "allow"))
		return add_allow(st, user, value);
	if (!strcmp(name, "access_key_id")) {
		if (user->access_key_id)
			return parse_fail(st, "user %s: access_key_id given twice", user->name);
		if (!valid_access_key_id(value))
			return parse_fail(st, "user %s: access_key_id must be %d-%d characters of "
					  "A-Z and 0-9", user->name, KEY_ID_MIN, KEY_ID_MAX);
		return set_text(st, &user->access_key_id, value);
	}
	if (!strcmp(name, "secret_access_key")) {
		if (user->secret)
			return parse_fail(st, "user %s: secret_access_key given twice", user->name);
		/* The message never repeats the value: it is a secret. */
		if (!valid_secret(value))
			return parse_fail(st, "user %s: secret_access_key must be %d-%d printable "
					  "characters without spaces", user->name, SECRET_MIN,
					  SECRET_MAX);
		user->secret = secure_strdup(value);
		return user->secret ? 1 : parse_fail(st, "out of locked memory");
	}
	return parse_fail(st, "unknown key \"%s\" in [user %s]", name, user->name);
}

static struct kmsd_user *find_user_by_name(const struct kmsd_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->user_count; i++)
		if (!strcmp(cfg->users[i].name, name))
			return &cfg->users[i];
	return NULL;
}

static int begin_user(struct parse_state *st, const char *name)
{
	struct kmsd_config *cfg = st->cfg;
	struct kmsd_user *grown;

	if (!valid_user_name(name))
		return parse_fail(st, "[user %s]: a user name is 1-%d characters of A-Z a-z 0-9 "
				  "and +=,.@_-", name, NAME_MAX_LEN);
	if (find_user_by_name(cfg, name))
		return parse_fail(st, "[user %s] appears twice", name);
	grown = realloc(cfg->users, (cfg->user_count + 1) * sizeof *grown);
	if (!grown)
		return parse_fail(st, "out of memory");
	cfg->users = grown;
	st->user = &cfg->users[cfg->user_count++];
	memset(st->user, 0, sizeof *st->user);
	st->user->name = strdup(name);
	return st->user->name ? 1 : parse_fail(st, "out of memory");
}

/* inih calls this per key; a change of section name starts a new section. */
static int begin_section(struct parse_state *st, const char *section)
{
	snprintf(st->last_section, sizeof st->last_section, "%s", section);
	st->user = NULL;
	if (!strcmp(section, "kmsd")) {
		if (st->seen_kmsd)
			return parse_fail(st, "[kmsd] appears twice");
		st->seen_kmsd = 1;
		return 1;
	}
	if (!strncmp(section, "user ", 5)) {
		section += 5;
		while (*section == ' ')
			section++;
		return begin_user(st, section);
	}
	if (!*section)
		return parse_fail(st, "settings before the first [section]");
	return parse_fail(st, "unknown section [%s] (expected [kmsd] or [user NAME])", section);
}

static int on_ini_value(void *arg, const char *section, const char *name, const char *value)
{
	struct parse_state *st = arg;

	if (st->err[0])
		return 0;     /* report the first problem only */
	if (!section || !name || !value)
		return parse_fail(st, "malformed line");   /* inih never does this; say so if it does */
	if (strcmp(section, st->last_section) != 0 && !begin_section(st, section))
		return 0;
	if (!strcmp(section, "kmsd"))
		return kmsd_key(st, name, value);
	return user_key(st, name, value);
}

/* ---- the whole file ------------------------------------------------------------------ */

/* inih silently splits lines longer than its buffer; refuse them instead. */
static int check_line_lengths(const char *text, const char *path, char err[KMSD_ERR_MAX])
{
	int line = 1;

	for (const char *start = text; *start; line++) {
		size_t len = strcspn(start, "\n");

		if (len > INI_LINE_LIMIT) {
			snprintf(err, KMSD_ERR_MAX, "%s:%d: line longer than %d characters",
				 path, line, INI_LINE_LIMIT);
			return -1;
		}
		start += len;
		if (*start == '\n')
			start++;
	}
	return 0;
}

/*
 * inih copies each line into a buffer on its stack: clear the stack it
 * used so the secret lines do not linger there.
 */
static __attribute__((noinline)) void wipe_parser_stack(void)
{
	char stack[4096];

	sodium_memzero(stack, sizeof stack);
	__asm__ __volatile__("" : : "r"(stack) : "memory");
}

static int parse_text(struct kmsd_config *cfg, const char *text, char err[KMSD_ERR_MAX])
{
	struct parse_state *st = calloc(1, sizeof *st);
	int line, rc = -1;

	if (!st) {
		snprintf(err, KMSD_ERR_MAX, "%s: out of memory", cfg->path);
		return -1;
	}
	st->cfg = cfg;
	/* "" matches nothing inih passes first, so the first key starts a section */
	strcpy(st->last_section, "\x01");
	line = ini_parse_string(text, on_ini_value, st);
	wipe_parser_stack();
	if (line > 0 && st->err[0])
		snprintf(err, KMSD_ERR_MAX, "%s:%d: %s", cfg->path, line, st->err);
	else if (line > 0)
		snprintf(err, KMSD_ERR_MAX, "%s:%d: syntax error (expected [section] or "
			 "name = value)", cfg->path, line);
	else if (line < 0)
		snprintf(err, KMSD_ERR_MAX, "%s: the INI parser failed (%d)", cfg->path, line);
	else
		rc = 0;
	free(st);
	return rc;
}

/* Read path (checked like any secret file) and parse it. */
static int read_and_parse(struct kmsd_config *cfg, char err[KMSD_ERR_MAX])
{
	size_t len = 0;
	char *text = kmsd_read_secret_file(cfg->path, "configuration file", CONFIG_MAX_SIZE,
					   &len, err);
	int rc = -1;

	if (!text)
		return -1;
	if (memchr(text, '\0', len)) {
		snprintf(err, KMSD_ERR_MAX, "%s: contains a NUL byte: not a text file", cfg->path);
		goto out;
	}
	if (check_line_lengths(text, cfg->path, err) != 0)
		goto out;
	rc = parse_text(cfg, text, err);
out:
	sodium_memzero(text, len);
	sodium_free(text);
	return rc;
}

static int fail(char err[KMSD_ERR_MAX], const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(char err[KMSD_ERR_MAX], const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, KMSD_ERR_MAX, fmt, ap);
	va_end(ap);
	return -1;
}

static int check_required(const struct kmsd_config *cfg, char err[KMSD_ERR_MAX])
{
	static const struct { size_t offset; const char *name; } required[] = {
		{ offsetof(struct kmsd_config, listen), "listen" },
		{ offsetof(struct kmsd_config, region), "region" },
		{ offsetof(struct kmsd_config, account), "account" },
		{ offsetof(struct kmsd_config, data_dir), "data_dir" },
		{ offsetof(struct kmsd_config, audit_dir), "audit_dir" },
	};

	for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
		if (!*(char *const *)((const char *)cfg + required[i].offset))
			return fail(err, "%s: [kmsd] needs %s", cfg->path, required[i].name);
	if (cfg->root_kind == KMSD_ROOT_NONE)
		return fail(err, "%s: [kmsd] needs root_key", cfg->path);
	if (!cfg->tls_cert != !cfg->tls_key)
		return fail(err, "%s: tls_cert and tls_key go together (one is missing)",
			    cfg->path);
	if (cfg->pkcs11_module && cfg->root_kind != KMSD_ROOT_PKCS11)
		return fail(err, "%s: pkcs11_module is only for root_key = pkcs11:URI", cfg->path);
	return 0;
}

/* IAM-like unique id for CloudTrail's principalId: "AIDA" + 17 base32 characters. */
static char *derive_principal_id(const char *account, const char *name)
{
	static const char base32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	uint8_t digest[17];
	char *id = malloc(4 + sizeof digest + 1);
	crypto_generichash_state state;

	if (!id)
		return NULL;
	crypto_generichash_init(&state, NULL, 0, sizeof digest);
	crypto_generichash_update(&state, (const uint8_t *)account, strlen(account));
	crypto_generichash_update(&state, (const uint8_t *)"/", 1);
	crypto_generichash_update(&state, (const uint8_t *)name, strlen(name));
	crypto_generichash_final(&state, digest, sizeof digest);
	memcpy(id, "AIDA", 4);
	for (size_t i = 0; i < sizeof digest; i++)
		id[4 + i] = base32[digest[i] & 31];
	id[4 + sizeof digest] = '\0';
	return id;
}

static int finish_users(struct kmsd_config *cfg, char err[KMSD_ERR_MAX])
{
	if (cfg->user_count == 0)
		return fail(err, "%s: no [user NAME] sections: nobody could sign a request",
			    cfg->path);
	for (size_t i = 0; i < cfg->user_count; i++) {
		struct kmsd_user *user = &cfg->users[i];

		if (!user->access_key_id || !user->secret)
			return fail(err, "%s: [user %s] needs access_key_id and secret_access_key",
				    cfg->path, user->name);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(cfg->users[j].access_key_id, user->access_key_id))
				return fail(err, "%s: users %s and %s have the same access_key_id",
					    cfg->path, cfg->users[j].name, user->name);
		if (asprintf(&user->arn, "arn:aws:iam::%s:user/%s", cfg->account, user->name) < 0) {
			user->arn = NULL;
			return fail(err, "%s: out of memory", cfg->path);
		}
		user->principal_id = derive_principal_id(cfg->account, user->name);
		if (!user->principal_id)
			return fail(err, "%s: out of memory", cfg->path);
	}
	return 0;
}

static void set_defaults(struct kmsd_config *cfg)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	cfg->threads = cpus > 0 ? (unsigned)(cpus > 256 ? 256 : cpus) : 1;
	cfg->max_body = 65536;
	cfg->connection_timeout = 60;
	cfg->max_connections = 1024;
	cfg->create_store = 1;
	cfg->digest_period = KC_AUDIT_DAY;
}

/* cfg->path = the absolute path, cfg->dir = its directory. */
static int locate(struct kmsd_config *cfg, const char *path, char err[KMSD_ERR_MAX])
{
	char copy[PATH_MAX];

	if (!realpath(path, cfg->path))
		return fail(err, "configuration file %s: %s", path, strerror(errno));
	snprintf(copy, sizeof copy, "%s", cfg->path);
	snprintf(cfg->dir, sizeof cfg->dir, "%s", dirname(copy));
	return 0;
}

int kmsd_config_load(const char *path, struct kmsd_config *cfg, char err[KMSD_ERR_MAX])
{
	memset(cfg, 0, sizeof *cfg);
	set_defaults(cfg);
	if (locate(cfg, path, err) != 0)
		goto fail;
	if (read_and_parse(cfg, err) != 0 || check_required(cfg, err) != 0 ||
	    finish_users(cfg, err) != 0)
		goto fail;
	return 0;
fail:
	kmsd_config_free(cfg);
	return -1;
}

int kmsd_config_check_files(const struct kmsd_config *cfg, char err[KMSD_ERR_MAX])
{
	struct stat st;

	if (cfg->root_kind == KMSD_ROOT_PASSPHRASE_FILE &&
	    kmsd_check_secret_file(cfg->root_path, "passphrase file", err) != 0)
		return -1;
	if (cfg->root_kind == KMSD_ROOT_KEYFILE &&
	    kmsd_check_secret_file(cfg->root_path, "key file", err) != 0)
		return -1;
	if (cfg->tls_key && kmsd_check_secret_file(cfg->tls_key, "TLS private key", err) != 0)
		return -1;
	if (cfg->tls_cert && access(cfg->tls_cert, R_OK) != 0)
		return fail(err, "TLS certificate %s: %s", cfg->tls_cert, strerror(errno));
	if (stat(cfg->data_dir, &st) == 0 && !S_ISDIR(st.st_mode))
		return fail(err, "data_dir %s: not a directory", cfg->data_dir);
	if (stat(cfg->audit_dir, &st) == 0 && !S_ISDIR(st.st_mode))
		return fail(err, "audit_dir %s: not a directory", cfg->audit_dir);
	return 0;
}

const struct kmsd_user *kmsd_config_find_user(const struct kmsd_config *cfg,
		const char *access_key_id)
{
	for (size_t i = 0; i < cfg->user_count; i++)
		if (!strcmp(cfg->users[i].access_key_id, access_key_id))
			return &cfg->users[i];
	return NULL;
}

static void free_user(struct kmsd_user *user)
{
	free(user->name);
	free(user->arn);
	free(user->principal_id);
	free(user->access_key_id);
	secure_free(user->secret);
	for (size_t i = 0; i < user->allow_count; i++)
		free(user->allow[i]);
	free(user->allow);
}

void kmsd_config_free(struct kmsd_config *cfg)
{
	for (size_t i = 0; i < cfg->user_count; i++)
		free_user(&cfg->users[i]);
	free(cfg->users);
	free(cfg->listen);
	free(cfg->region);
	free(cfg->account);
	free(cfg->data_dir);
	free(cfg->audit_dir);
	free(cfg->root_path);
	secure_free(cfg->pkcs11_uri);
	free(cfg->pkcs11_module);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	memset(cfg, 0, sizeof *cfg);
}
