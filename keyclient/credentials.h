/*
 * credentials.h - AWS credentials, region and endpoint for the remote key
 * service, found where the AWS CLI and SDKs find them.
 *
 * Used by keyclient's remote backend (to sign its requests) and by the
 * kmsfs CLI (mount --map-uid 1000=alice names a profile per user).
 *
 * With no profile named, in this order:
 *   1. the environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, with
 *      AWS_SESSION_TOKEN if set (AWS_ACCESS_KEY_ID set without the secret
 *      is an error; the secret without the id is ignored, as botocore does);
 *   2. the profile AWS_PROFILE, else AWS_DEFAULT_PROFILE, else "default"
 *      (botocore reads AWS_DEFAULT_PROFILE first; the SDKs know only
 *      AWS_PROFILE, whose lead is followed here).
 * A named profile reads only the files: environment keys never override it.
 *
 * The files, both optional:
 *   credentials  AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials;
 *                sections are profile names: [default], [alice]
 *   config       AWS_CONFIG_FILE, else ~/.aws/config; sections are
 *                [default] and [profile alice] (others are ignored)
 * "~" is the home of the process's user (HOME, else the password
 * database). Keys read: aws_access_key_id, aws_secret_access_key,
 * aws_session_token, region, endpoint_url (names in any case, as
 * botocore's parser lower-cases them). The three credential keys come
 * together from one file: the credentials file's profile when it has
 * either key, else the config file's. Lines start comments with '#' or
 * ';' (and " ;" starts one inside a line), spaces around '=' are
 * ignored, CRLF is fine, lines may be of any length (STS session tokens
 * run to kilobytes). A key given twice in a profile, or a credential
 * key continued on an indented line, is an error. Files readable by
 * group or others are accepted, as the AWS CLI accepts them.
 *
 * Region: AWS_REGION, else AWS_DEFAULT_REGION, else the profile's region
 * (credentials file before config file). Endpoint: AWS_ENDPOINT_URL_KMS,
 * else AWS_ENDPOINT_URL, else the profile's endpoint_url. Neither is
 * required here: the remote backend decides what it needs.
 *
 * Errors (kc_error; the secret and the session token never appear):
 *   KC_NOT_FOUND   the profile is in neither file (the message names the
 *                  profile and both files, and which of them do not exist);
 *                  with no profile named and nothing in the environment,
 *                  the same for "default";
 *   KC_VALIDATION  the profile lacks aws_access_key_id or
 *                  aws_secret_access_key (named), a value is malformed, a
 *                  file is unreadable, too large or not an INI file
 *                  (file:line);
 *   KC_INTERNAL    out of memory.
 */
#ifndef KMSFS_KEYCLIENT_CREDENTIALS_H
#define KMSFS_KEYCLIENT_CREDENTIALS_H

#include <limits.h>

#include "keyclient.h"

#define KC_AWS_PROFILE_MAX 128      /* longest profile name + 1 */
/* "shared credentials file " PATH ", profile " PROFILE, never cut */
#define KC_AWS_SOURCE_MAX (PATH_MAX + KC_AWS_PROFILE_MAX + 64)

struct kc_aws_credentials {
	char *access_key_id;            /* malloc'ed */
	char *secret_access_key;        /* secure memory */
	char *session_token;            /* secure memory; NULL: long-term keys */
	char *region;                   /* malloc'ed; NULL: none configured */
	char *endpoint_url;             /* malloc'ed; NULL: the service's usual endpoint */
	/* The profile read for keys, region and endpoint (also with environment keys). */
	char profile[KC_AWS_PROFILE_MAX];
	/*
	 * Where the keys came from, for messages: "environment",
	 * "shared credentials file /home/alice/.aws/credentials, profile alice",
	 * "config file /home/alice/.aws/config, profile alice".
	 */
	char source[KC_AWS_SOURCE_MAX];
};

/*
 * Where to look; every field may be NULL. home and the two files let a
 * process read another user's AWS files (kmsfs runs as root for
 * allow_other and maps uid 1000 to a profile in that user's ~/.aws).
 */
struct kc_aws_credentials_options {
	/* NULL: the environment's keys, else AWS_PROFILE, AWS_DEFAULT_PROFILE, "default" */
	const char *profile;
	/*
	 * Whose ~/.aws: NULL is the process's user. When set, the defaults
	 * are <home>/.aws/credentials and <home>/.aws/config, and
	 * AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE (which describe the
	 * process's own user) are not read.
	 */
	const char *home;
	const char *credentials_file;   /* NULL: AWS_SHARED_CREDENTIALS_FILE or the default */
	const char *config_file;        /* NULL: AWS_CONFIG_FILE or the default */
};

/*
 * Load the credentials of profile (NULL: the environment's first, see
 * above) into out, which is overwritten; free it with
 * kc_aws_credentials_free. On failure out holds nothing to free (freeing
 * it anyway is fine).
 */
enum kc_status kc_aws_credentials_load(const char *profile, struct kc_aws_credentials *out,
		struct kc_error *err);
/* The same, with files or another user's home (opts NULL: as kc_aws_credentials_load(NULL)). */
enum kc_status kc_aws_credentials_load_opts(const struct kc_aws_credentials_options *opts,
		struct kc_aws_credentials *out, struct kc_error *err);
/* Wipes the secrets, frees every string and zeroes c. NULL is fine. */
void kc_aws_credentials_free(struct kc_aws_credentials *c);

#endif /* KMSFS_KEYCLIENT_CREDENTIALS_H */
