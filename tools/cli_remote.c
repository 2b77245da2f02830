/*
 * cli_remote.c - opening a remote key service (kmsd, or AWS KMS itself)
 * for `kmsfs init --key-service URL` and for mounting such a volume.
 *
 * Credentials come as AWS users expect them (keyclient/credentials.h):
 * the user running kmsfs is the environment's keys, else AWS_PROFILE,
 * else the default profile; `--map-uid UID=PROFILE` (or a [principals]
 * section) names other uids' profiles from the same credentials files.
 * A profile's name is the principal the key service signs for; a uid
 * with no profile has no principal, and its requests go unsigned.
 *
 * The region is --region, else the key ARN's, else the profile's or the
 * environment's (AWS_REGION).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "cli.h"
#include "credentials.h"

/* "arn:aws:kms:REGION:ACCOUNT:key/ID" -> REGION; 0 or -1. */
static int region_of_arn(const char *arn, char *out, size_t len)
{
	const char *start, *end;

	if (!arn || strncmp(arn, "arn:", 4) != 0)
		return -1;
	start = strchr(arn + 4, ':');                  /* after the partition */
	start = start ? strchr(start + 1, ':') : NULL;  /* after the service */
	end = start ? strchr(start + 1, ':') : NULL;
	if (!end || end == start + 1 || (size_t)(end - start - 1) >= len)
		return -1;
	snprintf(out, len, "%.*s", (int)(end - start - 1), start + 1);
	return 0;
}

static int add_principal(struct keyclient *kc, const struct kc_aws_credentials *creds)
{
	struct kc_remote_credentials remote = {
		.access_key_id = creds->access_key_id,
		.secret_access_key = creds->secret_access_key,
		.session_token = creds->session_token,
	};
	struct kc_error err = { 0 };

	if (kc_remote_add_principal(kc, creds->profile, &remote, &err) != KC_OK)
		return cli_error("profile %s (%s): %s", creds->profile, creds->source, err.message);
	return 0;
}

/* The mounting user's credentials, then each mapped uid's profile. */
static int load_principals(struct cli_remote *r, struct keyclient *kc,
		struct kc_aws_credentials *own)
{
	struct kc_aws_credentials mapped = { 0 };
	struct kc_error err = { 0 };

	if (add_principal(kc, own) != 0)
		return 1;
	r->map[0].uid = getuid();
	snprintf(r->map[0].principal, sizeof r->map[0].principal, "%s", own->profile);
	for (size_t i = 0; i < r->uid_count; i++) {
		if (kc_aws_credentials_load(r->uids[i].profile, &mapped, &err) != KC_OK)
			return cli_error("--map-uid %u=%s: %s", (unsigned)r->uids[i].uid,
					 r->uids[i].profile, err.message);
		if (add_principal(kc, &mapped) != 0) {
			kc_aws_credentials_free(&mapped);
			return 1;
		}
		r->map[i + 1].uid = r->uids[i].uid;
		snprintf(r->map[i + 1].principal, sizeof r->map[i + 1].principal, "%s",
			 mapped.profile);
		kc_aws_credentials_free(&mapped);
	}
	r->map_count = r->uid_count + 1;
	return 0;
}

static int pick_region(const struct cli_remote *r, const struct kc_aws_credentials *own,
		char *out, size_t len)
{
	if (r->region) {
		snprintf(out, len, "%s", r->region);
		return 0;
	}
	if (region_of_arn(r->key, out, len) == 0)
		return 0;
	if (own->region) {
		snprintf(out, len, "%s", own->region);
		return 0;
	}
	return cli_error("no region for key service %s: give --region, a key ARN, or set "
			 "AWS_REGION or the profile's region", r->endpoint);
}

int cli_open_remote(struct cli_remote *r, struct keyclient **out, char *own_principal,
		size_t len)
{
	struct kc_aws_credentials own = { 0 };
	struct kc_remote_options opts = { 0 };
	struct kc_error err = { 0 };
	char region[64];
	int ret = 1;

	*out = NULL;
	if (kc_aws_credentials_load(r->profile, &own, &err) != KC_OK) {
		cli_error("credentials for key service %s: %s", r->endpoint, err.message);
		goto out;
	}
	if (pick_region(r, &own, region, sizeof region) != 0)
		goto out;
	opts = (struct kc_remote_options){ .endpoint = r->endpoint, .region = region,
		.ca_file = r->ca_file, .request_timeout_ms = r->timeout_ms };
	if (kc_remote_open(&opts, out, &err) != KC_OK) {
		cli_error("key service %s: %s", r->endpoint, err.message);
		goto out;
	}
	if (load_principals(r, *out, &own) != 0)
		goto out;
	snprintf(own_principal, len, "%s", own.profile);
	ret = 0;
out:
	kc_aws_credentials_free(&own);
	if (ret != 0) {
		keyclient_free(*out);
		*out = NULL;
	}
	return ret;
}

int cli_is_remote(const char *key_service)
{
	return key_service && strcmp(key_service, "local") != 0;
}

int cli_parse_map_uid(struct cli_remote *r, const char *text)
{
	const char *eq = strchr(text, '=');
	char *end = NULL;
	unsigned long uid;

	errno = 0;
	uid = eq ? strtoul(text, &end, 10) : 0;
	if (!eq || end != eq || errno || eq == text || !eq[1] || uid > (uid_t)-2)
		return cli_error("--map-uid %s: expected UID=PROFILE (e.g. 1000=alice)", text);
	if (r->uid_count == CLI_MAX_UID_MAPS)
		return cli_error("--map-uid %s: at most %d uids can be mapped", text,
				 CLI_MAX_UID_MAPS);
	r->uids[r->uid_count].uid = (uid_t)uid;
	snprintf(r->uids[r->uid_count].profile, sizeof r->uids[r->uid_count].profile, "%s",
		 eq + 1);
	r->uid_count++;
	return 0;
}

/* inih callback for a principals file: only [principals] UID = PROFILE. */
static int on_principal(void *arg, const char *section, const char *name, const char *value)
{
	struct cli_remote *r = arg;
	char entry[256];

	if (strcmp(section, "principals") != 0)
		return 0;
	snprintf(entry, sizeof entry, "%s=%s", name, value);
	return cli_parse_map_uid(r, entry) == 0;
}

int cli_read_principals(struct cli_remote *r, const char *path)
{
	int rc = ini_parse(path, on_principal, r);

	if (rc == -1)
		return cli_error("principals file %s: cannot read: %s", path, strerror(errno));
	if (rc != 0)
		return cli_error("principals file %s: line %d: expected UID = PROFILE in "
				 "[principals]", path, rc);
	return 0;
}
