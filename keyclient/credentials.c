/*
 * credentials.c - AWS credentials, region and endpoint from the
 * environment and the AWS CLI's files (credentials.h has the rules).
 *
 * The files go through inih, fed by a line reader of our own, because
 * Debian's libinih keeps lines in a 200-byte buffer and section names in
 * 50 bytes, and cuts what is longer without a word: an STS session token
 * (1-2 KB) would be split into a short value and a syntax error, and a
 * long profile name ("[profile PowerUserAccess-123456789012-eu-west-1]")
 * cut to one that may match another profile. So the reader
 *   - keeps track of sections itself, with their whole names, and
 *   - hands inih a line too long for it in a short form: a key line as
 *     "name=" LONG_VALUE (the value stays in the reader, and the handler
 *     takes it from there), a comment as an empty line, a section
 *     header as "[]";
 * everything else (comments, inline comments, spaces around '=',
 * continuation lines, syntax errors) is inih's.
 *
 * A file is read whole into secure memory; secrets are copied from it,
 * or from inih's line buffer (a stack array, wiped after parsing), into
 * secure memory and nowhere else. Error messages name files, lines and
 * keys, never the values of the credential keys.
 */
#include "credentials.h"

#include "crypto.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#include <sodium.h>

#define FILE_MAX_SIZE (1024 * 1024)
#define ACCESS_KEY_ID_MAX 128       /* IAM's limit */
#define REGION_MAX 63               /* a DNS label, as botocore checks it */
#define ENDPOINT_MAX 2048
#define LONG_NAME_MAX 40            /* longer key names are none of ours */
#define LONG_VALUE "\x01"           /* stands in for a value too long for inih */
#define OTHER_NAME "\x02"           /* stands in for a long key name, or a line that is not INI */
#define ERROR_TEXT_MAX 384

enum field { F_ACCESS_KEY_ID, F_SECRET_ACCESS_KEY, F_SESSION_TOKEN, F_REGION, F_ENDPOINT_URL,
	FIELD_COUNT };

static const struct field_spec {
	const char *key;            /* in the files */
	const char *env;            /* the environment variable read first, if any */
	int secret;                 /* secure memory; its value never printed */
} field_specs[FIELD_COUNT] = {
	[F_ACCESS_KEY_ID] = { "aws_access_key_id", "AWS_ACCESS_KEY_ID", 0 },
	[F_SECRET_ACCESS_KEY] = { "aws_secret_access_key", "AWS_SECRET_ACCESS_KEY", 1 },
	[F_SESSION_TOKEN] = { "aws_session_token", "AWS_SESSION_TOKEN", 1 },
	[F_REGION] = { "region", NULL, 0 },
	[F_ENDPOINT_URL] = { "endpoint_url", NULL, 0 },
};

/* Keys of credential sources kmsfs does not implement: named when a profile has no keys. */
static const char *const unsupported_keys[] = {
	"role_arn", "credential_process", "sso_session", "sso_start_url",
	"web_identity_token_file", "credential_source",
};

enum file_kind { FILE_CREDENTIALS, FILE_CONFIG, FILE_KIND_COUNT };

static const char *const file_kind_names[FILE_KIND_COUNT] = {
	[FILE_CREDENTIALS] = "shared credentials file",
	[FILE_CONFIG] = "config file",
};

/* What one file says about the profile. */
struct profile_file {
	char path[PATH_MAX];
	int exists;
	int found;                          /* the profile has a section here */
	char *values[FIELD_COUNT];          /* NULL: not given, or given empty */
	int value_line[FIELD_COUNT];        /* where given, to refuse a second time */
	const char *unsupported;            /* one of unsupported_keys, if seen */
};

/* Everything kc_aws_credentials_load_opts works out. */
struct lookup {
	char profile[KC_AWS_PROFILE_MAX];
	const char *profile_from;           /* "AWS_PROFILE", "AWS_DEFAULT_PROFILE", or NULL */
	struct profile_file files[FILE_KIND_COUNT];
};

/* One file being parsed: the line reader's state and the handler's. */
struct ini_walk {
	const char *next;                   /* the rest of the file */
	int line;                           /* number of the line inih has now */
	int after_key;                      /* inih would take an indented line as a continuation */
	int continuation;                   /* the line now is one */
	const char *long_value;             /* the line now was too long: its value's raw text */
	size_t long_value_len;
	enum file_kind kind;
	const char *profile;
	int in_profile;                     /* the section now is the profile's */
	struct profile_file *pf;
	enum kc_status rc;                  /* the first problem, in err */
	struct kc_error *err;
};

/* ---- values --------------------------------------------------------------------------- */

static char *copy_value(const char *text, size_t len, int secret)
{
	char *copy = secret ? kmsfs_secure_alloc(len + 1) : malloc(len + 1);

	if (copy) {
		memcpy(copy, text, len);
		copy[len] = '\0';
	}
	return copy;
}

static void free_value(char *value, int secret)
{
	if (secret)
		kmsfs_secure_free(value);
	else
		free(value);
}

static int printable_token(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (text[i] <= ' ' || text[i] > '~')
			return 0;
	}
	return 1;
}

/* A region name as botocore accepts one: letters, digits and inner '-'. */
static int valid_region(const char *text, size_t len)
{
	if (len == 0 || len > REGION_MAX || text[0] == '-' || text[len - 1] == '-')
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (!isalnum((unsigned char)text[i]) && text[i] != '-')
			return 0;
	}
	return 1;
}

static int valid_endpoint(const char *text, size_t len)
{
	size_t scheme = 0;

	if (len > 7 && !strncasecmp(text, "http://", 7))
		scheme = 7;
	else if (len > 8 && !strncasecmp(text, "https://", 8))
		scheme = 8;
	return scheme && len <= ENDPOINT_MAX && text[scheme] != '/' && printable_token(text, len);
}

/*
 * KC_OK, or KC_VALIDATION naming where ("AWS_REGION", "file:3: region")
 * and, for region and endpoint only, the value.
 */
static enum kc_status check_value(enum field f, const char *text, size_t len, const char *where,
		struct kc_error *err)
{
	switch (f) {
	case F_ACCESS_KEY_ID:
		if (len > ACCESS_KEY_ID_MAX)
			return kc_fail(err, KC_VALIDATION, "%s: longer than %d characters",
					where, ACCESS_KEY_ID_MAX);
		/* fall through */
	case F_SECRET_ACCESS_KEY:
	case F_SESSION_TOKEN:
		if (!printable_token(text, len))
			return kc_fail(err, KC_VALIDATION, "%s: contains a space, a control character "
					"or a non-ASCII character", where);
		return KC_OK;
	case F_REGION:
		if (!valid_region(text, len))
			return kc_fail(err, KC_VALIDATION, "%s = %.*s: expected a region name like us-east-1",
					where, (int)(len > 64 ? 64 : len), text);
		return KC_OK;
	case F_ENDPOINT_URL:
		if (!valid_endpoint(text, len))
			return kc_fail(err, KC_VALIDATION, "%s = %.*s: expected an http:// or https:// URL",
					where, (int)(len > 64 ? 64 : len), text);
		return KC_OK;
	case FIELD_COUNT:
		break;
	}
	return kc_fail(err, KC_INTERNAL, "%s: unknown setting", where);
}

/* ---- the line reader ---------------------------------------------------------------------- */

static const char *skip_space(const char *text, const char *end)
{
	while (text < end && isspace((unsigned char)*text))
		text++;
	return text;
}

/*
 * Where in [text, end) the first of chars is, else an inline comment
 * (';' after whitespace), else end - inih's scan for '=', ':' and ']'.
 */
static const char *scan_to(const char *text, const char *end, const char *chars)
{
	int after_space = 0;

	for (; text < end; text++) {
		if ((chars && strchr(chars, *text)) || (after_space && *text == ';'))
			return text;
		after_space = isspace((unsigned char)*text);
	}
	return end;
}

/* scan_to found one of chars (none of which is ';'), not a comment or the end. */
static int scan_found(const char *at, const char *end)
{
	return at < end && *at != ';';
}

static int names_equal(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && !memcmp(name, want, len);
}

/*
 * Does section name the profile? The credentials file names profiles
 * plainly; the config file as "profile NAME" (NAME may be in double
 * quotes), and "default" also as itself.
 */
static int section_is_profile(const struct ini_walk *walk, const char *name, const char *end)
{
	const char *rest;

	if (walk->kind == FILE_CREDENTIALS || names_equal(name, (size_t)(end - name), "default"))
		return names_equal(name, (size_t)(end - name), walk->profile);
	if (end - name < 8 || memcmp(name, "profile", 7) != 0 || !isspace((unsigned char)name[7]))
		return 0;
	rest = skip_space(name + 7, end);
	while (end > rest && isspace((unsigned char)end[-1]))
		end--;
	if (end - rest >= 2 && *rest == '"' && end[-1] == '"') {
		rest++;
		end--;
	}
	return names_equal(rest, (size_t)(end - rest), walk->profile);
}

/*
 * Note what the line [start, end) is, as inih will see it, and return
 * the form to hand inih should it not fit its buffer.
 */
enum line_kind { LINE_BLANK, LINE_CONTINUATION, LINE_SECTION, LINE_KEY, LINE_OTHER };

static enum line_kind classify_line(struct ini_walk *walk, const char *start, const char *end,
		const char **delimiter)
{
	const char *text = skip_space(start, end);
	const char *close;

	if (text == end || *text == ';' || *text == '#')
		return LINE_BLANK;
	if (text > start && walk->after_key)
		return LINE_CONTINUATION;
	if (*text == '[') {
		close = scan_to(text + 1, end, "]");
		if (!scan_found(close, end))
			return LINE_OTHER;
		walk->in_profile = section_is_profile(walk, text + 1, close);
		walk->after_key = 0;
		if (walk->in_profile)
			walk->pf->found = 1;
		return LINE_SECTION;
	}
	*delimiter = scan_to(text, end, "=:");
	if (!scan_found(*delimiter, end))
		return LINE_OTHER;
	walk->after_key = 1;
	return LINE_KEY;
}

/* The short form of a line too long for inih's buffer (cap bytes, at least 64). */
static void shorten_line(struct ini_walk *walk, enum line_kind kind, const char *start,
		const char *end, const char *delimiter, char *buf, size_t cap)
{
	const char *name = skip_space(start, end);
	const char *name_end = delimiter;

	switch (kind) {
	case LINE_BLANK:
		buf[0] = '\0';
		return;
	case LINE_CONTINUATION:
		snprintf(buf, cap, " %s", OTHER_NAME);
		return;
	case LINE_SECTION:
		snprintf(buf, cap, "[]");
		return;
	case LINE_KEY:
		while (name_end > name && isspace((unsigned char)name_end[-1]))
			name_end--;
		if (name_end - name > LONG_NAME_MAX)
			snprintf(buf, cap, "%s=%s", OTHER_NAME, LONG_VALUE);
		else
			snprintf(buf, cap, "%.*s=%s", (int)(name_end - name), name, LONG_VALUE);
		walk->long_value = delimiter + 1;
		walk->long_value_len = (size_t)(end - delimiter - 1);
		return;
	case LINE_OTHER:
		break;
	}
	snprintf(buf, cap, "%s", OTHER_NAME);    /* no '=': inih's syntax error, on this line */
}

/* inih's ini_reader: the next line, without its newline (or CR LF). */
static char *read_line(char *buf, int cap, void *arg)
{
	struct ini_walk *walk = arg;
	const char *start = walk->next, *end, *delimiter = NULL;
	enum line_kind kind;

	if (!*start)
		return NULL;
	end = start + strcspn(start, "\n");
	walk->next = *end ? end + 1 : end;
	if (++walk->line == 1 && !strncmp(start, "\xEF\xBB\xBF", 3))
		start += 3;    /* a UTF-8 byte order mark */
	if (end > start && end[-1] == '\r')
		end--;
	walk->long_value = NULL;
	kind = classify_line(walk, start, end, &delimiter);
	walk->continuation = kind == LINE_CONTINUATION;
	/* inih wants room for "\r\n\0" after the longest line */
	if ((size_t)(end - start) + 3 <= (size_t)cap) {
		memcpy(buf, start, (size_t)(end - start));
		buf[end - start] = '\0';
	} else {
		shorten_line(walk, kind, start, end, delimiter, buf, (size_t)cap);
	}
	return buf;
}

/* ---- the handler --------------------------------------------------------------------------- */

static int walk_fail(struct ini_walk *walk, enum kc_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int walk_fail(struct ini_walk *walk, enum kc_status status, const char *fmt, ...)
{
	char text[ERROR_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	walk->rc = kc_fail(walk->err, status, "%s:%d: %s", walk->pf->path, walk->line, text);
	return 0;
}

static int field_of(const char *name)
{
	for (int f = 0; f < FIELD_COUNT; f++) {
		if (!strcasecmp(name, field_specs[f].key))
			return f;
	}
	return -1;
}

static void note_unsupported(struct profile_file *pf, const char *name)
{
	for (size_t i = 0; i < sizeof unsupported_keys / sizeof unsupported_keys[0]; i++) {
		if (!pf->unsupported && !strcasecmp(name, unsupported_keys[i]))
			pf->unsupported = unsupported_keys[i];
	}
}

/* A long line's value as inih would have it: up to an inline comment, trimmed. */
static void trim_long_value(const struct ini_walk *walk, const char **value, size_t *len)
{
	const char *start = walk->long_value;
	const char *end = scan_to(start, start + walk->long_value_len, NULL);

	start = skip_space(start, end);
	while (end > start && isspace((unsigned char)end[-1]))
		end--;
	*value = start;
	*len = (size_t)(end - start);
}

static int store_value(struct ini_walk *walk, enum field f, const char *value, size_t len)
{
	const struct field_spec *spec = &field_specs[f];
	char where[PATH_MAX + 64];

	snprintf(where, sizeof where, "%s:%d: %s", walk->pf->path, walk->line, spec->key);
	walk->pf->value_line[f] = walk->line;
	if (len == 0)
		return 1;      /* "key =" sets nothing */
	walk->rc = check_value(f, value, len, where, walk->err);
	if (walk->rc != KC_OK)
		return 0;
	walk->pf->values[f] = copy_value(value, len, spec->secret);
	if (!walk->pf->values[f])
		return walk_fail(walk, KC_INTERNAL, "out of memory");
	return 1;
}

/* inih's handler. section is unused: inih cuts it at 49 characters (the reader keeps it whole). */
static int on_ini_value(void *arg, const char *section, const char *name, const char *value)
{
	struct ini_walk *walk = arg;
	int f;
	size_t len = strlen(value);

	(void)section;
	if (walk->rc != KC_OK || !walk->in_profile)
		return walk->rc == KC_OK;
	f = field_of(name);
	if (f < 0) {
		note_unsupported(walk->pf, name);
		return 1;
	}
	if (walk->continuation)
		return walk_fail(walk, KC_VALIDATION, "%s continues on an indented line "
				"(its value must be on one line)", field_specs[f].key);
	if (walk->pf->value_line[f])
		return walk_fail(walk, KC_VALIDATION, "%s given twice in profile %s (first on line %d)",
				field_specs[f].key, walk->profile, walk->pf->value_line[f]);
	if (walk->long_value && !strcmp(value, LONG_VALUE))
		trim_long_value(walk, &value, &len);
	return store_value(walk, (enum field)f, value, len);
}

/* ---- one file ---------------------------------------------------------------------------------- */

/* Read what fd holds (a regular file of size bytes) into secure memory, NUL-terminated. */
static enum kc_status read_all(int fd, const char *path, size_t size, char **text,
		struct kc_error *err)
{
	char *buf = kmsfs_secure_alloc(size + 1);
	size_t len = 0;
	enum kc_status rc = KC_OK;

	if (!buf)
		return kc_fail(err, KC_INTERNAL, "%s: out of secure memory", path);
	while (len < size) {
		ssize_t got = read(fd, buf + len, size - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = kc_fail(err, KC_VALIDATION, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len))
		rc = kc_fail(err, KC_VALIDATION, "%s: contains a NUL byte: not a text file", path);
out:
	if (rc != KC_OK)
		kmsfs_secure_free(buf);
	else
		*text = buf;
	return rc;
}

/* The whole file in secure memory; *text NULL (and KC_OK) when there is no such file. */
static enum kc_status read_file(const char *path, char **text, struct kc_error *err)
{
	/* O_NONBLOCK: a FIFO in the file's place must not hang us before fstat sees it */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	enum kc_status rc;

	*text = NULL;
	if (fd < 0 && (errno == ENOENT || errno == ENOTDIR))
		return KC_OK;
	if (fd < 0)
		return kc_fail(err, KC_VALIDATION, "cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0)
		rc = kc_fail(err, KC_VALIDATION, "cannot stat %s: %s", path, strerror(errno));
	else if (S_ISCHR(st.st_mode) && strcmp(path, "/dev/null") == 0)
		rc = KC_OK;   /* AWS_CONFIG_FILE=/dev/null: "no file", as the AWS CLI reads it */
	else if (!S_ISREG(st.st_mode))
		rc = kc_fail(err, KC_VALIDATION, "%s: not a regular file", path);
	else if (st.st_size > FILE_MAX_SIZE)
		rc = kc_fail(err, KC_VALIDATION, "%s: larger than %d bytes", path, FILE_MAX_SIZE);
	else
		rc = read_all(fd, path, (size_t)st.st_size, text, err);
	close(fd);
	return rc;
}

/*
 * inih copies each line into a buffer on its stack: clear the stack it
 * used so lines with secrets do not linger there.
 */
static __attribute__((noinline)) void wipe_parser_stack(void)
{
	char stack[4096];

	sodium_memzero(stack, sizeof stack);
	__asm__ __volatile__("" : : "r"(stack) : "memory");
}

/* What profile in the file pf->path says into pf. */
static enum kc_status parse_profile_file(struct profile_file *pf, enum file_kind kind,
		const char *profile, struct kc_error *err)
{
	struct ini_walk walk = { .kind = kind, .profile = profile, .pf = pf, .err = err };
	char *text = NULL;
	enum kc_status rc;
	int bad_line;

	rc = read_file(pf->path, &text, err);
	if (rc != KC_OK || !text)
		goto out;
	pf->exists = 1;
	walk.next = text;
	bad_line = ini_parse_stream(read_line, &walk, on_ini_value, &walk);
	wipe_parser_stack();
	if (walk.rc != KC_OK)
		rc = walk.rc;
	else if (bad_line > 0)
		rc = kc_fail(err, KC_VALIDATION, "%s:%d: syntax error (expected [section], "
				"name = value or a comment)", pf->path, bad_line);
	else if (bad_line < 0)
		rc = kc_fail(err, KC_INTERNAL, "%s: the INI parser failed (%d)", pf->path, bad_line);
out:
	kmsfs_secure_free(text);
	return rc;
}

/* ---- where to look ------------------------------------------------------------------------------ */

/* The process user's home: $HOME, else the password database. 0 or -1. */
static int process_home(char home[PATH_MAX])
{
	const char *env = getenv("HOME");
	long suggested = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t buf_len = suggested > 0 ? (size_t)suggested : 16384;
	char *buf = NULL;
	struct passwd pw, *found = NULL;
	int rc = -1;

	if (env && *env == '/') {
		rc = snprintf(home, PATH_MAX, "%s", env) < PATH_MAX ? 0 : -1;
		goto out;
	}
	buf = malloc(buf_len);
	if (!buf || getpwuid_r(getuid(), &pw, buf, buf_len, &found) != 0 || !found)
		goto out;
	if (found->pw_dir && *found->pw_dir == '/')
		rc = snprintf(home, PATH_MAX, "%s", found->pw_dir) < PATH_MAX ? 0 : -1;
out:
	free(buf);
	return rc;
}

/* out = path with a leading "~" or "~/" meaning home ("" when unknown). */
static enum kc_status expand_path(const char *path, const char *home, char out[PATH_MAX],
		struct kc_error *err)
{
	int written;

	if (path[0] == '~' && (path[1] == '\0' || path[1] == '/')) {
		if (!*home)
			return kc_fail(err, KC_VALIDATION, "%s: no home directory for ~ (HOME is not "
					"set and uid %u has no password entry)", path, (unsigned)getuid());
		written = snprintf(out, PATH_MAX, "%s%s", home, path + 1);
	} else {
		written = snprintf(out, PATH_MAX, "%s", path);
	}
	if (written < 0 || written >= PATH_MAX)
		return kc_fail(err, KC_VALIDATION, "%s: path too long", path);
	return KC_OK;
}

static const char *env_value(const char *name)
{
	const char *value = getenv(name);

	return value && *value ? value : NULL;
}

/* The two files' paths: the options', else (for the process's own user) the environment's, else ~/.aws. */
static enum kc_status choose_files(const struct kc_aws_credentials_options *opts,
		struct lookup *lk, struct kc_error *err)
{
	static const char *const env_names[FILE_KIND_COUNT] = { "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE" };
	static const char *const defaults[FILE_KIND_COUNT] = { "~/.aws/credentials", "~/.aws/config" };
	const char *given[FILE_KIND_COUNT] = { opts->credentials_file, opts->config_file };
	char home[PATH_MAX] = "";
	enum kc_status rc = KC_OK;

	if (opts->home && snprintf(home, sizeof home, "%s", opts->home) >= (int)sizeof home)
		return kc_fail(err, KC_VALIDATION, "home directory %s: path too long", opts->home);
	if (!opts->home && process_home(home) != 0)
		home[0] = '\0';
	for (int kind = 0; kind < FILE_KIND_COUNT && rc == KC_OK; kind++) {
		const char *path = given[kind];
		if (!path && !opts->home)
			path = env_value(env_names[kind]);
		rc = expand_path(path ? path : defaults[kind], home, lk->files[kind].path, err);
	}
	return rc;
}

/* The profile: the options', else AWS_PROFILE, AWS_DEFAULT_PROFILE, "default". */
static enum kc_status choose_profile(const struct kc_aws_credentials_options *opts,
		struct lookup *lk, struct kc_error *err)
{
	const char *profile = opts->profile;

	if (!profile && (profile = env_value("AWS_PROFILE")) != NULL)
		lk->profile_from = "AWS_PROFILE";
	else if (!profile && (profile = env_value("AWS_DEFAULT_PROFILE")) != NULL)
		lk->profile_from = "AWS_DEFAULT_PROFILE";
	else if (!profile)
		profile = "default";
	if (!*profile)
		return kc_fail(err, KC_VALIDATION, "the profile name is empty");
	if (snprintf(lk->profile, sizeof lk->profile, "%s", profile) >= (int)sizeof lk->profile)
		return kc_fail(err, KC_VALIDATION, "profile name longer than %d characters",
				KC_AWS_PROFILE_MAX - 1);
	return KC_OK;
}

/*
 * "A or B", each marked when it does not exist. Each path is cut at PATH_MAX
 * bytes, so both always fit in out (2 * PATH_MAX + 64, gcc checks at -O2).
 */
static void describe_files(const struct lookup *lk, char *out, size_t out_len)
{
	const struct profile_file *creds = &lk->files[FILE_CREDENTIALS];
	const struct profile_file *config = &lk->files[FILE_CONFIG];

	snprintf(out, out_len, "%.*s%s or %.*s%s", PATH_MAX - 1, creds->path,
			creds->exists ? "" : " (no such file)", PATH_MAX - 1, config->path,
			config->exists ? "" : " (no such file)");
}

/* ---- putting it together ------------------------------------------------------------------------ */

static void free_profile_file(struct profile_file *pf)
{
	for (int f = 0; f < FIELD_COUNT; f++)
		free_value(pf->values[f], field_specs[f].secret);
	memset(pf->values, 0, sizeof pf->values);
}

static int has_keys(const struct profile_file *pf)
{
	return pf->values[F_ACCESS_KEY_ID] || pf->values[F_SECRET_ACCESS_KEY];
}

/* Neither file gives the profile keys: say what is there instead. */
static enum kc_status no_keys_error(const struct lookup *lk, struct kc_error *err)
{
	const char *unsupported = lk->files[FILE_CREDENTIALS].unsupported;
	char files[2 * PATH_MAX + 64];

	if (!unsupported)
		unsupported = lk->files[FILE_CONFIG].unsupported;
	describe_files(lk, files, sizeof files);
	if (unsupported)
		return kc_fail(err, KC_VALIDATION, "profile %s has no aws_access_key_id and "
				"aws_secret_access_key in %s: it uses %s, which kmsfs does not support",
				lk->profile, files, unsupported);
	return kc_fail(err, KC_VALIDATION, "profile %s has no aws_access_key_id and "
			"aws_secret_access_key in %s", lk->profile, files);
}

/* The three credential keys, together from the first file with either key. */
static enum kc_status keys_from_files(struct lookup *lk, struct kc_aws_credentials *out,
		struct kc_error *err)
{
	enum file_kind kind = has_keys(&lk->files[FILE_CREDENTIALS]) ? FILE_CREDENTIALS : FILE_CONFIG;
	struct profile_file *pf = &lk->files[kind];

	if (!has_keys(pf))
		return no_keys_error(lk, err);
	for (int f = F_ACCESS_KEY_ID; f <= F_SECRET_ACCESS_KEY; f++) {
		if (!pf->values[f])
			return kc_fail(err, KC_VALIDATION, "%s, profile %s: %s is missing",
					pf->path, lk->profile, field_specs[f].key);
	}
	out->access_key_id = pf->values[F_ACCESS_KEY_ID];
	out->secret_access_key = pf->values[F_SECRET_ACCESS_KEY];
	out->session_token = pf->values[F_SESSION_TOKEN];
	memset(pf->values, 0, (F_SESSION_TOKEN + 1) * sizeof pf->values[0]);
	snprintf(out->source, sizeof out->source, "%s %s, profile %s", file_kind_names[kind],
			pf->path, lk->profile);
	return KC_OK;
}

/* One value from the environment variable name, checked, into *out. */
static enum kc_status take_env(enum field f, const char *name, char **out, struct kc_error *err)
{
	const char *value = env_value(name);
	enum kc_status rc;

	if (!value)
		return KC_OK;
	rc = check_value(f, value, strlen(value), name, err);
	if (rc != KC_OK)
		return rc;
	*out = copy_value(value, strlen(value), field_specs[f].secret);
	return *out ? KC_OK : kc_fail(err, KC_INTERNAL, "%s: out of memory", name);
}

static enum kc_status keys_from_env(struct kc_aws_credentials *out, struct kc_error *err)
{
	enum kc_status rc = KC_OK;

	if (!env_value("AWS_SECRET_ACCESS_KEY"))
		return kc_fail(err, KC_VALIDATION, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
	for (int f = F_ACCESS_KEY_ID; f <= F_SESSION_TOKEN && rc == KC_OK; f++) {
		char **slot = f == F_ACCESS_KEY_ID ? &out->access_key_id :
			f == F_SECRET_ACCESS_KEY ? &out->secret_access_key : &out->session_token;
		rc = take_env((enum field)f, field_specs[f].env, slot, err);
	}
	snprintf(out->source, sizeof out->source, "environment");
	return rc;
}

/* The first environment variable set, else the credentials file's value, else the config file's. */
static enum kc_status setting(struct lookup *lk, enum field f, const char *const env_names[2],
		char **out, struct kc_error *err)
{
	enum kc_status rc = KC_OK;

	for (int i = 0; i < 2 && !*out && rc == KC_OK; i++)
		rc = take_env(f, env_names[i], out, err);
	for (int kind = 0; kind < FILE_KIND_COUNT && !*out && rc == KC_OK; kind++) {
		*out = lk->files[kind].values[f];
		lk->files[kind].values[f] = NULL;
	}
	return rc;
}

static enum kc_status settings(struct lookup *lk, struct kc_aws_credentials *out,
		struct kc_error *err)
{
	static const char *const region_env[2] = { "AWS_REGION", "AWS_DEFAULT_REGION" };
	static const char *const endpoint_env[2] = { "AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL" };
	enum kc_status rc = setting(lk, F_REGION, region_env, &out->region, err);

	if (rc == KC_OK)
		rc = setting(lk, F_ENDPOINT_URL, endpoint_env, &out->endpoint_url, err);
	return rc;
}

/*
 * The profile in neither file: an error unless the environment has the
 * keys and the profile is just the implicit "default" (AWS_PROFILE
 * naming a missing profile is an error to the AWS CLI, keys or not).
 */
static enum kc_status check_found(const struct lookup *lk, int env_keys, struct kc_error *err)
{
	char files[2 * PATH_MAX + 64];

	if (lk->files[FILE_CREDENTIALS].found || lk->files[FILE_CONFIG].found)
		return KC_OK;
	if (env_keys && !lk->profile_from)
		return KC_OK;
	describe_files(lk, files, sizeof files);
	if (lk->profile_from)
		return kc_fail(err, KC_NOT_FOUND, "profile %s (from %s) not found in %s",
				lk->profile, lk->profile_from, files);
	if (!strcmp(lk->profile, "default"))
		return kc_fail(err, KC_NOT_FOUND, "no AWS credentials: AWS_ACCESS_KEY_ID is not set "
				"and profile default is not in %s", files);
	return kc_fail(err, KC_NOT_FOUND, "profile %s not found in %s", lk->profile, files);
}

enum kc_status kc_aws_credentials_load_opts(const struct kc_aws_credentials_options *opts,
		struct kc_aws_credentials *out, struct kc_error *err)
{
	static const struct kc_aws_credentials_options defaults;
	struct lookup *lk = calloc(1, sizeof *lk);
	int env_keys;
	enum kc_status rc;

	memset(out, 0, sizeof *out);
	if (!opts)
		opts = &defaults;
	env_keys = !opts->profile && env_value("AWS_ACCESS_KEY_ID");
	if (!lk) {
		rc = kc_fail(err, KC_INTERNAL, "AWS credentials: out of memory");
		goto out;
	}
	if (sodium_init() < 0) {
		rc = kc_fail(err, KC_INTERNAL, "AWS credentials: libsodium initialisation failed");
		goto out;
	}
	rc = choose_profile(opts, lk, err);
	if (rc == KC_OK)
		rc = choose_files(opts, lk, err);
	for (int kind = 0; kind < FILE_KIND_COUNT && rc == KC_OK; kind++)
		rc = parse_profile_file(&lk->files[kind], (enum file_kind)kind, lk->profile, err);
	if (rc == KC_OK)
		rc = check_found(lk, env_keys, err);
	if (rc == KC_OK)
		rc = env_keys ? keys_from_env(out, err) : keys_from_files(lk, out, err);
	if (rc == KC_OK)
		rc = settings(lk, out, err);
	if (rc == KC_OK)
		snprintf(out->profile, sizeof out->profile, "%s", lk->profile);
out:
	for (int kind = 0; lk && kind < FILE_KIND_COUNT; kind++)
		free_profile_file(&lk->files[kind]);
	free(lk);
	if (rc != KC_OK)
		kc_aws_credentials_free(out);
	else if (err)
		memset(err, 0, sizeof *err);
	return rc;
}

enum kc_status kc_aws_credentials_load(const char *profile, struct kc_aws_credentials *out,
		struct kc_error *err)
{
	struct kc_aws_credentials_options opts = { .profile = profile };

	return kc_aws_credentials_load_opts(&opts, out, err);
}

void kc_aws_credentials_free(struct kc_aws_credentials *c)
{
	if (!c)
		return;
	free(c->access_key_id);
	kmsfs_secure_free(c->secret_access_key);
	kmsfs_secure_free(c->session_token);
	free(c->region);
	free(c->endpoint_url);
	memset(c, 0, sizeof *c);
}
