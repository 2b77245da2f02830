/*
 * test_credentials.c - AWS credentials and settings (keyclient/credentials.h)
 * read as the AWS CLI reads them, from files written into a scratch HOME:
 *
 *   where     the environment's keys before the files, AWS_PROFILE and
 *             AWS_DEFAULT_PROFILE, a named profile reading only the files,
 *             AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE (with "~"),
 *             another user's home and explicit files (options);
 *   which     [name] in the credentials file, [profile name] and [default]
 *             in the config file, the credentials file's keys before the
 *             config file's (all three from one file), region and endpoint
 *             from the environment before either file;
 *   syntax    comments (# ; and inline " ;"), spaces around '=', ':',
 *             CRLF, a byte order mark, key names in any case, a 2000-
 *             character session token and 60-character profile names
 *             (longer than inih's buffers), continuation lines;
 *   errors    a missing profile or key (named, with the files looked at),
 *             malformed values, syntax errors with their line, unreadable
 *             or odd files - and the secret access key and session token
 *             in none of the messages.
 *
 * Each test starts from an environment without AWS_* variables and an
 * empty HOME of its own.
 */
#include "credentials.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Values no error message may contain. */
#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define SECRET2 "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
#define TOKEN_MARK "FwoGZXIvYXdzEXAMPLETOKEN"
#define LONG_TOKEN_LEN 2000

static int failures;
static char scratch[PATH_MAX];      /* this run's directory */
static char home[PATH_MAX];         /* this test's HOME */

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, __func__, #cond); \
		failures++; \
	} \
} while (0)

#define CHECK_STR(got, want) do { \
	const char *got_ = (got), *want_ = (want); \
	if (!got_ || !want_ ? got_ != want_ : strcmp(got_, want_) != 0) { \
		fprintf(stderr, "%s:%d: %s: %s is \"%.80s\", want \"%.80s\"\n", __FILE__, __LINE__, \
			__func__, #got, got_ ? got_ : "(null)", want_ ? want_ : "(null)"); \
		failures++; \
	} \
} while (0)

/* Every message checked here must leave the secrets out. */
static void check_no_secret(const struct kc_error *err, const char *func, int line)
{
	if (strstr(err->message, SECRET) || strstr(err->message, SECRET2) ||
	    strstr(err->message, TOKEN_MARK)) {
		fprintf(stderr, "%s:%d: %s: a secret in the message: %s\n", __FILE__, line, func,
			err->message);
		failures++;
	}
}

static void check_fail(enum kc_status got, const struct kc_error *err, enum kc_status want,
		const char *text1, const char *text2, const char *expr, const char *func, int line)
{
	check_no_secret(err, func, line);
	if (got == want && (!text1 || strstr(err->message, text1)) &&
	    (!text2 || strstr(err->message, text2)))
		return;
	fprintf(stderr, "%s:%d: %s: %s gave %s (%s), want %s saying \"%s\" and \"%s\"\n",
		__FILE__, line, func, expr, kc_status_type(got), err->message,
		kc_status_type(want), text1 ? text1 : "", text2 ? text2 : "");
	failures++;
}

/* expr must fail with want, saying each of the (up to two) texts; out left empty. */
#define CHECK_FAIL(expr, want, text1, text2) do { \
	struct kc_error err_ = { 0 }; \
	struct kc_aws_credentials creds_; \
	enum kc_status got_ = load_##expr; \
	check_fail(got_, &err_, (want), (text1), (text2), #expr, __func__, __LINE__); \
	CHECK(creds_.access_key_id == NULL && creds_.secret_access_key == NULL); \
	kc_aws_credentials_free(&creds_); \
} while (0)

/* Forms of the call CHECK_FAIL pastes "load_" onto. */
#define load_profile(name) kc_aws_credentials_load((name), &creds_, &err_)
#define load_opts(opts) kc_aws_credentials_load_opts((opts), &creds_, &err_)

/* ---- scratch files and the environment -------------------------------------------- */

static const char *const aws_env[] = {
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
	"AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_REGION",
	"AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS",
};

/* A fresh HOME (scratch/name, with .aws/) and no AWS_* variables. */
static void fresh_home(const char *name)
{
	char aws[PATH_MAX + 8];

	for (size_t i = 0; i < sizeof aws_env / sizeof aws_env[0]; i++)
		unsetenv(aws_env[i]);
	if (snprintf(home, sizeof home, "%s/%s", scratch, name) >= (int)sizeof home)
		exit(1);
	snprintf(aws, sizeof aws, "%s/.aws", home);
	if (mkdir(home, 0700) != 0 || mkdir(aws, 0700) != 0) {
		fprintf(stderr, "%s: %s\n", aws, strerror(errno));
		exit(1);
	}
	setenv("HOME", home, 1);
}

/* Write home/rel (printf-style contents), mode 0600 unless changed later. */
static void write_file(const char *rel, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void write_file(const char *rel, const char *fmt, ...)
{
	char path[PATH_MAX * 2];
	va_list ap;
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", home, rel);
	f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		exit(1);
	}
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
	chmod(path, 0600);
}

static void home_path(const char *rel, char *out, size_t out_len)
{
	snprintf(out, out_len, "%s/%s", home, rel);
}

/* Load expecting success; the caller checks and frees c. */
static int load_ok(const struct kc_aws_credentials_options *opts, struct kc_aws_credentials *c,
		int line)
{
	struct kc_error err = { .status = KC_INTERNAL, .message = "stale" };
	enum kc_status rc = kc_aws_credentials_load_opts(opts, c, &err);

	if (rc != KC_OK) {
		fprintf(stderr, "%s:%d: load failed: %s: %s\n", __FILE__, line,
			kc_status_type(rc), err.message);
		failures++;
		return 0;
	}
	if (err.status != KC_OK || err.message[0]) {
		fprintf(stderr, "%s:%d: success left an error behind: %s\n", __FILE__, line,
			err.message);
		failures++;
	}
	return 1;
}
#define LOAD_OK(opts, c) load_ok((opts), (c), __LINE__)

static const struct kc_aws_credentials_options *profile_opts(const char *profile)
{
	static struct kc_aws_credentials_options opts;

	memset(&opts, 0, sizeof opts);
	opts.profile = profile;
	return &opts;
}

/* ---- where credentials come from ------------------------------------------------------------ */

static void test_default_profile(void)
{
	struct kc_aws_credentials c;
	char path[PATH_MAX * 2], source[PATH_MAX * 3];

	fresh_home("default");
	write_file(".aws/credentials", "[default]\naws_access_key_id = AKIADEFAULT\n"
		   "aws_secret_access_key = %s\n\n[alice]\naws_access_key_id = AKIAALICE\n"
		   "aws_secret_access_key = %s\n", SECRET, SECRET2);
	if (LOAD_OK(NULL, &c)) {
		CHECK_STR(c.access_key_id, "AKIADEFAULT");
		CHECK_STR(c.secret_access_key, SECRET);
		CHECK(c.session_token == NULL && c.region == NULL && c.endpoint_url == NULL);
		CHECK_STR(c.profile, "default");
		home_path(".aws/credentials", path, sizeof path);
		snprintf(source, sizeof source, "shared credentials file %s, profile default", path);
		CHECK_STR(c.source, source);
		kc_aws_credentials_free(&c);
		CHECK(c.access_key_id == NULL && c.secret_access_key == NULL);
	}
	/* the same through the short form */
	{
		struct kc_error err;
		CHECK(kc_aws_credentials_load("alice", &c, &err) == KC_OK);
		CHECK_STR(c.access_key_id, "AKIAALICE");
		CHECK_STR(c.secret_access_key, SECRET2);
		CHECK_STR(c.profile, "alice");
		kc_aws_credentials_free(&c);
	}
	kc_aws_credentials_free(NULL);
}

static void test_environment_first(void)
{
	struct kc_aws_credentials c;

	fresh_home("environment");
	write_file(".aws/credentials", "[default]\naws_access_key_id = AKIAFILE\n"
		   "aws_secret_access_key = %s\n[alice]\naws_access_key_id = AKIAALICE\n"
		   "aws_secret_access_key = %s\n", SECRET2, SECRET2);
	write_file(".aws/config", "[default]\nregion = eu-west-1\n");
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
	setenv("AWS_SESSION_TOKEN", TOKEN_MARK "abc", 1);
	if (LOAD_OK(NULL, &c)) {
		CHECK_STR(c.access_key_id, "AKIAENV");
		CHECK_STR(c.secret_access_key, SECRET);
		CHECK_STR(c.session_token, TOKEN_MARK "abc");
		CHECK_STR(c.source, "environment");
		/* the profile still gives the region, as it does to the AWS CLI */
		CHECK_STR(c.region, "eu-west-1");
		kc_aws_credentials_free(&c);
	}
	/* a named profile reads only the files */
	if (LOAD_OK(profile_opts("alice"), &c)) {
		CHECK_STR(c.access_key_id, "AKIAALICE");
		CHECK(c.session_token == NULL);
		kc_aws_credentials_free(&c);
	}
	/* environment keys without any file */
	fresh_home("environment-nofiles");
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
	if (LOAD_OK(NULL, &c)) {
		CHECK_STR(c.access_key_id, "AKIAENV");
		CHECK(c.session_token == NULL);
		CHECK_STR(c.profile, "default");
		kc_aws_credentials_free(&c);
	}
	/* ... but AWS_PROFILE naming a missing profile is an error, as to the AWS CLI */
	setenv("AWS_PROFILE", "ghost", 1);
	CHECK_FAIL(profile(NULL), KC_NOT_FOUND, "profile ghost (from AWS_PROFILE) not found", NULL);
	unsetenv("AWS_PROFILE");
	/* half the keys */
	unsetenv("AWS_SECRET_ACCESS_KEY");
	CHECK_FAIL(profile(NULL), KC_VALIDATION, "AWS_SECRET_ACCESS_KEY is not", NULL);
	/* the secret alone is not environment credentials (botocore ignores it too) */
	unsetenv("AWS_ACCESS_KEY_ID");
	setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
	CHECK_FAIL(profile(NULL), KC_NOT_FOUND, "AWS_ACCESS_KEY_ID is not set", NULL);
	/* an empty variable counts as unset */
	setenv("AWS_ACCESS_KEY_ID", "", 1);
	CHECK_FAIL(profile(NULL), KC_NOT_FOUND, "profile default", NULL);
	/* malformed environment values are named, not shown */
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", SECRET " x", 1);
	CHECK_FAIL(profile(NULL), KC_VALIDATION, "AWS_SECRET_ACCESS_KEY: contains a space", NULL);
	setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
	setenv("AWS_SESSION_TOKEN", TOKEN_MARK "\n", 1);
	CHECK_FAIL(profile(NULL), KC_VALIDATION, "AWS_SESSION_TOKEN: contains", NULL);
}

static void test_aws_profile(void)
{
	struct kc_aws_credentials c;

	fresh_home("aws-profile");
	write_file(".aws/credentials", "[default]\naws_access_key_id = AKIADEFAULT\n"
		   "aws_secret_access_key = %s\n[bob]\naws_access_key_id = AKIABOB\n"
		   "aws_secret_access_key = %s\n[carol]\naws_access_key_id = AKIACAROL\n"
		   "aws_secret_access_key = %s\n", SECRET, SECRET, SECRET);
	setenv("AWS_DEFAULT_PROFILE", "carol", 1);
	if (LOAD_OK(NULL, &c)) {
		CHECK_STR(c.access_key_id, "AKIACAROL");
		CHECK_STR(c.profile, "carol");
		kc_aws_credentials_free(&c);
	}
	setenv("AWS_PROFILE", "bob", 1);
	if (LOAD_OK(NULL, &c)) {
		CHECK_STR(c.access_key_id, "AKIABOB");
		CHECK_STR(c.profile, "bob");
		kc_aws_credentials_free(&c);
	}
	/* a profile named by the caller beats both */
	if (LOAD_OK(profile_opts("default"), &c)) {
		CHECK_STR(c.access_key_id, "AKIADEFAULT");
		kc_aws_credentials_free(&c);
	}
	setenv("AWS_PROFILE", "nobody", 1);
	CHECK_FAIL(profile(NULL), KC_NOT_FOUND, "profile nobody (from AWS_PROFILE)", "/.aws/credentials");
	unsetenv("AWS_PROFILE");
	setenv("AWS_DEFAULT_PROFILE", "nobody", 1);
	CHECK_FAIL(profile(NULL), KC_NOT_FOUND, "(from AWS_DEFAULT_PROFILE)", NULL);
}

static void test_config_file(void)
{
	struct kc_aws_credentials c;
	char path[PATH_MAX * 2], source[PATH_MAX * 3];

	fresh_home("config");
	write_file(".aws/config",
		   "[default]\nregion = us-east-1\naws_access_key_id = AKIACFGDEFAULT\n"
		   "aws_secret_access_key = %s\n"
		   "[profile alice]\nregion = eu-central-1\naws_access_key_id = AKIACFGALICE\n"
		   "aws_secret_access_key = %s\naws_session_token = %sxyz\n"
		   "[bob]\naws_access_key_id = AKIANOTAPROFILE\naws_secret_access_key = %s\n"
		   "[profile   spaced  ]\naws_access_key_id = AKIASPACED\naws_secret_access_key = %s\n"
		   "[profile \"quoted\"]\naws_access_key_id = AKIAQUOTED\naws_secret_access_key = %s\n"
		   "[profilex]\naws_access_key_id = AKIANOTX\naws_secret_access_key = %s\n",
		   SECRET, SECRET, TOKEN_MARK, SECRET, SECRET, SECRET, SECRET);
	if (LOAD_OK(profile_opts("alice"), &c)) {
		CHECK_STR(c.access_key_id, "AKIACFGALICE");
		CHECK_STR(c.session_token, TOKEN_MARK "xyz");
		CHECK_STR(c.region, "eu-central-1");
		home_path(".aws/config", path, sizeof path);
		snprintf(source, sizeof source, "config file %s, profile alice", path);
		CHECK_STR(c.source, source);
		kc_aws_credentials_free(&c);
	}
	if (LOAD_OK(NULL, &c)) {
		CHECK_STR(c.access_key_id, "AKIACFGDEFAULT");
		CHECK_STR(c.region, "us-east-1");
		kc_aws_credentials_free(&c);
	}
	if (LOAD_OK(profile_opts("spaced"), &c)) {
		CHECK_STR(c.access_key_id, "AKIASPACED");
		kc_aws_credentials_free(&c);
	}
	if (LOAD_OK(profile_opts("quoted"), &c)) {
		CHECK_STR(c.access_key_id, "AKIAQUOTED");
		kc_aws_credentials_free(&c);
	}
	/* [bob] in the config file is not the profile bob, nor [profilex] the profile x */
	CHECK_FAIL(profile("bob"), KC_NOT_FOUND, "profile bob not found", "(no such file)");
	CHECK_FAIL(profile("x"), KC_NOT_FOUND, "profile x not found", NULL);
	/* [profile default] is the default profile too */
	fresh_home("config-profile-default");
	write_file(".aws/config", "[profile default]\naws_access_key_id = AKIAPD\n"
		   "aws_secret_access_key = %s\n", SECRET);
	if (LOAD_OK(NULL, &c)) {
		CHECK_STR(c.access_key_id, "AKIAPD");
		kc_aws_credentials_free(&c);
	}
}

static void test_credentials_before_config(void)
{
	struct kc_aws_credentials c;

	fresh_home("both-files");
	write_file(".aws/credentials", "[alice]\naws_access_key_id = AKIACREDS\n"
		   "aws_secret_access_key = %s\nregion = ap-south-1\n"
		   "[tokenless]\naws_access_key_id = AKIACREDS2\naws_secret_access_key = %s\n"
		   "[half]\naws_access_key_id = AKIAHALF\n"
		   "[regiononly]\nregion = sa-east-1\n", SECRET, SECRET);
	write_file(".aws/config", "[profile alice]\naws_access_key_id = AKIACONFIG\n"
		   "aws_secret_access_key = %s\nregion = eu-west-3\nendpoint_url = http://127.0.0.1:4599\n"
		   "[profile tokenless]\naws_session_token = %sconfig\n"
		   "[profile half]\naws_access_key_id = AKIACONFIG\naws_secret_access_key = %s\n"
		   "[profile regiononly]\nregion = eu-west-3\naws_access_key_id = AKIACONFIG\n"
		   "aws_secret_access_key = %s\n", SECRET2, TOKEN_MARK, SECRET2, SECRET2);
	if (LOAD_OK(profile_opts("alice"), &c)) {
		CHECK_STR(c.access_key_id, "AKIACREDS");
		CHECK_STR(c.secret_access_key, SECRET);
		CHECK_STR(c.region, "ap-south-1");                  /* credentials file first */
		CHECK_STR(c.endpoint_url, "http://127.0.0.1:4599"); /* only the config has one */
		CHECK(strncmp(c.source, "shared credentials file ", 24) == 0);
		kc_aws_credentials_free(&c);
	}
	/* the keys come with their own file's token, never another file's */
	if (LOAD_OK(profile_opts("tokenless"), &c)) {
		CHECK_STR(c.access_key_id, "AKIACREDS2");
		CHECK(c.session_token == NULL);
		kc_aws_credentials_free(&c);
	}
	/* half the keys in the credentials file is an error, not a fall back to the config's */
	CHECK_FAIL(profile("half"), KC_VALIDATION, "profile half: aws_secret_access_key is missing",
		   "/.aws/credentials");
	/* a profile in both files, keys only in the config */
	if (LOAD_OK(profile_opts("regiononly"), &c)) {
		CHECK_STR(c.access_key_id, "AKIACONFIG");
		CHECK_STR(c.secret_access_key, SECRET2);
		CHECK_STR(c.region, "sa-east-1");
		CHECK(strncmp(c.source, "config file ", 12) == 0);
		kc_aws_credentials_free(&c);
	}
}

static void test_region_and_endpoint(void)
{
	struct kc_aws_credentials c;

	fresh_home("region");
	write_file(".aws/credentials", "[default]\naws_access_key_id = AKIA1\n"
		   "aws_secret_access_key = %s\n", SECRET);
	write_file(".aws/config", "[default]\nregion = eu-north-1\n"
		   "endpoint_url = https://kms.example.test\n");
	if (LOAD_OK(NULL, &c)) {
		CHECK_STR(c.region, "eu-north-1");
		CHECK_STR(c.endpoint_url, "https://kms.example.test");
		kc_aws_credentials_free(&c);
	}
	setenv("AWS_DEFAULT_REGION", "us-west-1", 1);
	setenv("AWS_ENDPOINT_URL", "http://localhost:4566", 1);
	if (LOAD_OK(NULL, &c)) {
		CHECK_STR(c.region, "us-west-1");
		CHECK_STR(c.endpoint_url, "http://localhost:4566");
		kc_aws_credentials_free(&c);
	}
	setenv("AWS_REGION", "us-west-2", 1);
	setenv("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:4599/", 1);
	if (LOAD_OK(profile_opts("default"), &c)) {
		CHECK_STR(c.region, "us-west-2");
		CHECK_STR(c.endpoint_url, "http://127.0.0.1:4599/");
		kc_aws_credentials_free(&c);
	}
	setenv("AWS_REGION", "us west", 1);
	CHECK_FAIL(profile(NULL), KC_VALIDATION, "AWS_REGION = us west: expected a region name", NULL);
	unsetenv("AWS_REGION");
	setenv("AWS_ENDPOINT_URL_KMS", "ftp://x", 1);
	CHECK_FAIL(profile(NULL), KC_VALIDATION, "AWS_ENDPOINT_URL_KMS = ftp://x: expected", NULL);
	unsetenv("AWS_ENDPOINT_URL_KMS");
	write_file(".aws/config", "[default]\nregion = eu-north-1 # not a comment in inih\n");
	CHECK_FAIL(profile(NULL), KC_VALIDATION, "config:2: region = eu-north-1 # not", NULL);
	write_file(".aws/config", "[default]\nendpoint_url = kms.example.test\n");
	CHECK_FAIL(profile(NULL), KC_VALIDATION, "config:2: endpoint_url = kms.example.test", NULL);
}

/* ---- file syntax ------------------------------------------------------------------------ */

static void test_syntax(void)
{
	struct kc_aws_credentials c;

	fresh_home("syntax");
	write_file(".aws/credentials",
		   "\xEF\xBB\xBF# a comment\r\n"
		   "; another\r\n"
		   "\r\n"
		   "[other]\r\n"
		   "aws_access_key_id=AKIAOTHER\r\n"
		   "[default] ; the default profile\r\n"
		   "   # indented comment\r\n"
		   "AWS_Access_Key_ID   =    AKIASYNTAX   \r\n"
		   "aws_secret_access_key\t=\t%s ; inline comment\r\n"
		   "aws_session_token: %sTOK\r\n"
		   "unrelated_key = value with spaces\r\n"
		   "s3 =\r\n"
		   "    max_concurrent_requests = 20\r\n"
		   "    region = not-this-one\r\n"
		   "region =\r\n", SECRET, TOKEN_MARK);
	if (LOAD_OK(NULL, &c)) {
		CHECK_STR(c.access_key_id, "AKIASYNTAX");
		CHECK_STR(c.secret_access_key, SECRET);
		CHECK_STR(c.session_token, TOKEN_MARK "TOK");
		CHECK(c.region == NULL);    /* "region =" sets nothing, nested s3 keys are not ours */
		kc_aws_credentials_free(&c);
	}
}

static void test_long_lines(void)
{
	struct kc_aws_credentials c;
	char token[LONG_TOKEN_LEN + 1];
	char long_profile[61];
	char comment[400];

	for (int i = 0; i < LONG_TOKEN_LEN; i++)
		token[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i % 64];
	memcpy(token, TOKEN_MARK, strlen(TOKEN_MARK));
	token[LONG_TOKEN_LEN] = '\0';
	memset(long_profile, 'p', 60);
	memcpy(long_profile, "PowerUserAccess-123456789012-", 29);
	long_profile[60] = '\0';
	memset(comment, 'c', sizeof comment - 1);
	comment[0] = '#';
	comment[sizeof comment - 1] = '\0';

	fresh_home("long");
	write_file(".aws/credentials",
		   "%s\n"
		   "[default]\n"
		   "aws_access_key_id = AKIALONG\n"
		   "aws_secret_access_key = %s\n"
		   "aws_session_token =   %s   ; the STS token\r\n"
		   "some_long_unknown_key_name_that_is_longer_than_forty_characters = %s\n"
		   "[%s]\n"
		   "aws_access_key_id = AKIALONGPROFILE\n"
		   "aws_secret_access_key = %s\n"
		   "aws_session_token = %s\n",
		   comment, SECRET, token, token, long_profile, SECRET, token);
	if (LOAD_OK(NULL, &c)) {
		CHECK(c.session_token && strlen(c.session_token) == LONG_TOKEN_LEN);
		CHECK_STR(c.session_token, token);
		CHECK_STR(c.access_key_id, "AKIALONG");
		kc_aws_credentials_free(&c);
	}
	if (LOAD_OK(profile_opts(long_profile), &c)) {
		CHECK_STR(c.access_key_id, "AKIALONGPROFILE");
		CHECK_STR(c.session_token, token);
		kc_aws_credentials_free(&c);
	}
	/*
	 * inih cuts section names at 49 characters: a profile named by the
	 * first 49 of long_profile's must not find long_profile's section.
	 */
	long_profile[49] = '\0';
	CHECK_FAIL(profile(long_profile), KC_NOT_FOUND, "not found", NULL);

	/* the same long profile name in the config file */
	memset(long_profile, 'q', 60);
	memcpy(long_profile, "AdministratorAccess-123456789012-", 33);
	write_file(".aws/config", "[profile %s]\naws_access_key_id = AKIACONFIGLONG\n"
		   "aws_secret_access_key = %s\naws_session_token=%s\nregion=eu-west-2\n",
		   long_profile, SECRET, token);
	if (LOAD_OK(profile_opts(long_profile), &c)) {
		CHECK_STR(c.access_key_id, "AKIACONFIGLONG");
		CHECK_STR(c.session_token, token);
		CHECK_STR(c.region, "eu-west-2");
		kc_aws_credentials_free(&c);
	}

	/* a long token broken by a space is refused without being shown */
	token[1000] = ' ';
	write_file(".aws/credentials", "[default]\naws_access_key_id = AKIALONG\n"
		   "aws_secret_access_key = %s\naws_session_token = %s\n", SECRET, token);
	CHECK_FAIL(profile(NULL), KC_VALIDATION, "credentials:4: aws_session_token: contains a space", NULL);
	/* a long line that is not INI */
	write_file(".aws/credentials", "[default]\naws_access_key_id = AKIALONG\n%s\n", token);
	CHECK_FAIL(profile(NULL), KC_VALIDATION, "credentials:3: syntax error", NULL);
}

static void test_syntax_errors(void)
{
	fresh_home("syntax-errors");
	write_file(".aws/credentials", "[default]\naws_access_key_id = AKIA1\n"
		   "aws_secret_access_key = %s\nthis line has no equals sign\n", SECRET);
	CHECK_FAIL(profile(NULL), KC_VALIDATION, "credentials:4: syntax error", NULL);
	/* even in another profile: the AWS CLI refuses the whole file too */
	write_file(".aws/credentials", "[default]\naws_access_key_id = AKIA1\n"
		   "aws_secret_access_key = %s\n[other]\n[unclosed\n", SECRET);
	CHECK_FAIL(profile(NULL), KC_VALIDATION, "credentials:5: syntax error", NULL);
	write_file(".aws/credentials", "[default]\naws_access_key_id = AKIA1\n"
		   "aws_secret_access_key = %s\naws_secret_access_key = %s\n", SECRET, SECRET2);
	CHECK_FAIL(profile(NULL), KC_VALIDATION,
		   "credentials:4: aws_secret_access_key given twice in profile default (first on line 3)", NULL);
	/* the same key in [default] and [profile default] of the config file */
	write_file(".aws/credentials", "%s", "");
	write_file(".aws/config", "[default]\nregion = us-east-1\n[profile default]\nregion = us-east-2\n");
	CHECK_FAIL(profile(NULL), KC_VALIDATION, "config:4: region given twice", NULL);
	/* a secret continued on the next line */
	write_file(".aws/config", "%s", "");
	write_file(".aws/credentials", "[default]\naws_access_key_id = AKIA1\n"
		   "aws_secret_access_key =\n  %s\n", SECRET);
	CHECK_FAIL(profile(NULL), KC_VALIDATION,
		   "credentials:4: aws_secret_access_key continues on an indented line", NULL);
	/* an access key id with a control character or too long */
	write_file(".aws/credentials", "[default]\naws_access_key_id = AKIA\x7f\n"
		   "aws_secret_access_key = %s\n", SECRET);
	CHECK_FAIL(profile(NULL), KC_VALIDATION, "credentials:2: aws_access_key_id: contains", NULL);
	/* a NUL byte */
	{
		char path[PATH_MAX * 2];
		FILE *f;
		home_path(".aws/credentials", path, sizeof path);
		f = fopen(path, "w");
		fwrite("[default]\naws_access_key_id = A\0B\n", 1, 34, f);
		fclose(f);
		CHECK_FAIL(profile(NULL), KC_VALIDATION, "contains a NUL byte", NULL);
	}
}

/* ---- missing things --------------------------------------------------------------------- */

static void test_missing(void)
{
	char path[PATH_MAX * 2];

	fresh_home("missing");
	CHECK_FAIL(profile(NULL), KC_NOT_FOUND, "no AWS credentials: AWS_ACCESS_KEY_ID is not set "
		   "and profile default is not in ", "/.aws/config (no such file)");
	home_path(".aws/credentials", path, sizeof path);
	CHECK_FAIL(profile("alice"), KC_NOT_FOUND, "profile alice not found in ", path);
	write_file(".aws/credentials", "[default]\naws_access_key_id = AKIA1\n");
	CHECK_FAIL(profile(NULL), KC_VALIDATION, "profile default: aws_secret_access_key is missing", path);
	write_file(".aws/credentials", "[default]\naws_secret_access_key = %s\n", SECRET);
	CHECK_FAIL(profile(NULL), KC_VALIDATION, "profile default: aws_access_key_id is missing", NULL);
	write_file(".aws/credentials", "[default]\nregion = us-east-1\n");
	CHECK_FAIL(profile(NULL), KC_VALIDATION, "profile default has no aws_access_key_id and "
		   "aws_secret_access_key in ", path);
	write_file(".aws/config", "[profile alice]\nrole_arn = arn:aws:iam::123456789012:role/r\n"
		   "source_profile = default\n");
	CHECK_FAIL(profile("alice"), KC_VALIDATION, "profile alice has no aws_access_key_id",
		   "it uses role_arn, which kmsfs does not support");
	/* an empty value is no value */
	write_file(".aws/credentials", "[default]\naws_access_key_id =\naws_secret_access_key = %s\n",
		   SECRET);
	CHECK_FAIL(profile(NULL), KC_VALIDATION, "aws_access_key_id is missing", NULL);
	CHECK_FAIL(profile(""), KC_VALIDATION, "the profile name is empty", NULL);
}

static void test_odd_files(void)
{
	struct kc_aws_credentials c;
	char path[PATH_MAX * 2];

	fresh_home("odd-files");
	/* a directory where the file should be */
	home_path(".aws/credentials", path, sizeof path);
	mkdir(path, 0700);
	CHECK_FAIL(profile(NULL), KC_VALIDATION, "not a regular file", path);
	rmdir(path);
	/* a FIFO: refused, not waited on */
	if (mkfifo(path, 0600) == 0) {
		CHECK_FAIL(profile(NULL), KC_VALIDATION, "not a regular file", NULL);
		unlink(path);
	}
	/* unreadable (root reads anything: nothing to see then) */
	write_file(".aws/credentials", "[default]\naws_access_key_id = AKIA1\n"
		   "aws_secret_access_key = %s\n", SECRET);
	if (geteuid() != 0) {
		chmod(path, 0000);
		CHECK_FAIL(profile(NULL), KC_VALIDATION, "cannot open", "Permission denied");
	}
	/* readable by everyone: accepted, as the AWS CLI accepts it */
	chmod(path, 0644);
	if (LOAD_OK(NULL, &c)) {
		CHECK_STR(c.secret_access_key, SECRET);
		kc_aws_credentials_free(&c);
	}
	/* larger than 1 MiB */
	{
		FILE *f = fopen(path, "w");
		for (int i = 0; i < 1100 * 1024 / 64 && f; i++)
			fputs("# padding padding padding padding padding padding padding pad\n", f);
		if (f)
			fclose(f);
		CHECK_FAIL(profile(NULL), KC_VALIDATION, "larger than", NULL);
	}
	/* ~/.aws is a file: as if there were no files */
	fresh_home("aws-is-a-file");
	home_path(".aws", path, sizeof path);
	rmdir(path);
	write_file(".aws", "not a directory\n");
	CHECK_FAIL(profile(NULL), KC_NOT_FOUND, "no AWS credentials", "(no such file)");
}

/* ---- other files and other users --------------------------------------------------------- */

static void test_file_variables(void)
{
	struct kc_aws_credentials c;
	char path[PATH_MAX * 2];

	fresh_home("file-variables");
	write_file("creds", "[default]\naws_access_key_id = AKIAVAR\naws_secret_access_key = %s\n",
		   SECRET);
	write_file("conf", "[default]\nregion = ca-central-1\n");
	write_file(".aws/credentials", "[default]\naws_access_key_id = AKIAHOME\n"
		   "aws_secret_access_key = %s\n", SECRET);
	setenv("AWS_SHARED_CREDENTIALS_FILE", "~/creds", 1);
	home_path("conf", path, sizeof path);
	setenv("AWS_CONFIG_FILE", path, 1);
	if (LOAD_OK(NULL, &c)) {
		CHECK_STR(c.access_key_id, "AKIAVAR");
		CHECK_STR(c.region, "ca-central-1");
		home_path("creds", path, sizeof path);
		CHECK(strstr(c.source, path) != NULL);
		kc_aws_credentials_free(&c);
	}
	/* a variable naming a missing file: no file, as for the AWS CLI */
	unsetenv("AWS_CONFIG_FILE");
	setenv("AWS_SHARED_CREDENTIALS_FILE", "~/nothing-here", 1);
	CHECK_FAIL(profile(NULL), KC_NOT_FOUND, "/nothing-here (no such file)", NULL);
	/* HOME unset: the password database's home */
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
	unsetenv("AWS_CONFIG_FILE");
	unsetenv("HOME");
	{
		struct passwd *pw = getpwuid(getuid());
		struct kc_error err;
		enum kc_status rc = kc_aws_credentials_load("a-profile-nobody-has", &c, &err);
		CHECK(rc != KC_OK);
		if (rc == KC_NOT_FOUND && pw && pw->pw_dir) {
			snprintf(path, sizeof path, "%s/.aws/credentials", pw->pw_dir);
			CHECK(strstr(err.message, path) != NULL);
		}
	}
	setenv("HOME", home, 1);
}

static void test_other_home(void)
{
	struct kc_aws_credentials_options opts = { 0 };
	struct kc_aws_credentials c;
	char alice_home[PATH_MAX], path[PATH_MAX * 2];

	/* the "user" whose files are read */
	fresh_home("alice-home");
	write_file(".aws/credentials", "[alice]\naws_access_key_id = AKIAALICEHOME\n"
		   "aws_secret_access_key = %s\n", SECRET);
	write_file(".aws/config", "[profile alice]\nregion = eu-south-1\n");
	write_file("elsewhere", "[alice]\naws_access_key_id = AKIAELSEWHERE\n"
		   "aws_secret_access_key = %s\n", SECRET2);
	snprintf(alice_home, sizeof alice_home, "%s", home);
	/* the process's own user: a different HOME, variables naming its own files */
	fresh_home("root-home");
	write_file(".aws/credentials", "[alice]\naws_access_key_id = AKIAROOT\n"
		   "aws_secret_access_key = %s\n", SECRET);
	home_path(".aws/credentials", path, sizeof path);
	setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);

	opts.profile = "alice";
	opts.home = alice_home;
	if (LOAD_OK(&opts, &c)) {
		CHECK_STR(c.access_key_id, "AKIAALICEHOME");
		CHECK_STR(c.region, "eu-south-1");
		CHECK(strstr(c.source, alice_home) != NULL);
		kc_aws_credentials_free(&c);
	}
	/* explicit files beat everything; "~" is the home given */
	opts.credentials_file = "~/elsewhere";
	if (LOAD_OK(&opts, &c)) {
		CHECK_STR(c.access_key_id, "AKIAELSEWHERE");
		CHECK_STR(c.secret_access_key, SECRET2);
		CHECK_STR(c.region, "eu-south-1");
		kc_aws_credentials_free(&c);
	}
	opts.home = NULL;
	snprintf(path, sizeof path, "%s/elsewhere", alice_home);
	opts.credentials_file = path;
	opts.config_file = "/nonexistent/config";
	if (LOAD_OK(&opts, &c)) {
		CHECK_STR(c.access_key_id, "AKIAELSEWHERE");
		CHECK(c.region == NULL);
		kc_aws_credentials_free(&c);
	}
	opts.profile = "bob";
	CHECK_FAIL(opts(&opts), KC_NOT_FOUND, "profile bob not found in ",
		   "/nonexistent/config (no such file)");
}

int main(void)
{
	char template[] = "/tmp/test_credentials.XXXXXX";
	char command[sizeof template + 16];

	if (!mkdtemp(template)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(scratch, sizeof scratch, "%s", template);
	test_default_profile();
	test_environment_first();
	test_aws_profile();
	test_config_file();
	test_credentials_before_config();
	test_region_and_endpoint();
	test_syntax();
	test_long_lines();
	test_syntax_errors();
	test_missing();
	test_odd_files();
	test_file_variables();
	test_other_home();
	snprintf(command, sizeof command, "rm -rf %s", template);
	if (system(command) != 0)
		fprintf(stderr, "test_credentials: could not remove %s\n", template);
	if (failures) {
		fprintf(stderr, "test_credentials: %d check(s) failed\n", failures);
		return 1;
	}
	printf("test_credentials: all checks passed\n");
	return 0;
}
