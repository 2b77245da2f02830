/*
 * audit_trail.c - kmsd's audit trail: one CloudTrail-format record per
 * request, allowed or not, in JSON Lines files sealed by signed digests.
 *
 * Layout (keyclient/audit_trail.h has the whole story):
 *   AUDIT_DIR/kmsd-YYYYMMDD.jsonl   mode 0600 (0400 once digested), directory 0700;
 *                                   kmsd-YYYYMMDDTHHMMSSZ.jsonl when
 *                                   digest_period is not whole days
 *   AUDIT_DIR/digests/              kmsd-digest-*.json and their .sig files
 *   AUDIT_DIR/digest-public-key.pem what `kmsfs audit verify` checks them with
 *   DATA_DIR/audit-digest.key       the signing key, beside the key store:
 *                                   not in the directory the logs are shipped from
 * A file is named by the period its records were *written* in (not by
 * their eventTime), so files only ever grow in name order: once the
 * period has passed a file is sealed, digested and never appended to
 * again. Each record is one line, written with one write(2) on an
 * O_APPEND descriptor, so records never interleave or split.
 *
 * Records never hold plaintext: requestParameters/responseElements are
 * the engine's audit_request/audit_response, which leave out every
 * secret and blob, and nothing here reads the request body.
 */
#include "kmsd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_trail.h"

#define USER_AGENT_MAX 512
#define EVENT_NAME_MAX 128
#define MESSAGE_MAX 512

/*
 * The files, their rotation and digests are the shared trail writer's
 * (keyclient/audit_rotate.c): kmsd is the only process writing its
 * directory, so request threads append side by side under a read lock,
 * with no lock file per record.
 */
struct kmsd_audit_trail {
	struct kc_audit_trail *files;
	char *region;
	char *account;
};

/* The signing key lives in data_dir, beside the key store (opened before the trail). */
static int key_path(const struct kmsd_config *cfg, char out[PATH_MAX], char err[KMSD_ERR_MAX])
{
	if (snprintf(out, PATH_MAX, "%s/audit-digest.key", cfg->data_dir) >= PATH_MAX) {
		snprintf(err, KMSD_ERR_MAX, "data_dir %s: path too long", cfg->data_dir);
		return -1;
	}
	return 0;
}

struct kmsd_audit_trail *kmsd_audit_open(const struct kmsd_config *cfg, char err[KMSD_ERR_MAX])
{
	struct kmsd_audit_trail *trail = calloc(1, sizeof *trail);
	struct kc_audit_trail_options opts = {
		.dir = cfg->audit_dir, .prefix = "kmsd", .period = cfg->digest_period,
		.single_process = 1,
	};
	char signing_key[PATH_MAX], why[KC_AUDIT_ERR_MAX];

	if (!trail) {
		snprintf(err, KMSD_ERR_MAX, "audit trail: out of memory");
		return NULL;
	}
	trail->region = strdup(cfg->region);
	trail->account = strdup(cfg->account);
	if (!trail->region || !trail->account) {
		snprintf(err, KMSD_ERR_MAX, "audit trail: out of memory");
		goto fail;
	}
	if (key_path(cfg, signing_key, err) != 0)
		goto fail;
	opts.key_path = signing_key;
	/* Open now: an unwritable audit_dir or signing key stops kmsd at start. */
	trail->files = kc_audit_trail_open(&opts, why);
	if (!trail->files) {
		snprintf(err, KMSD_ERR_MAX, "audit_dir %s: %s", cfg->audit_dir, why);
		goto fail;
	}
	return trail;
fail:
	kmsd_audit_close(trail);
	return NULL;
}

void kmsd_audit_close(struct kmsd_audit_trail *trail)
{
	if (!trail)
		return;
	kc_audit_trail_close(trail->files);
	free(trail->region);
	free(trail->account);
	free(trail);
}

/* ---- records ------------------------------------------------------------------------------ */

static json_t *user_identity(const struct kmsd_audit_trail *trail,
		const struct kmsd_audit_event *ev)
{
	const struct kmsd_user *user = ev->user;
	json_t *identity;

	if (user)
		return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "type", "IAMUser",
				 "principalId", user->principal_id, "arn", user->arn,
				 "accountId", trail->account, "accessKeyId", user->access_key_id,
				 "userName", user->name);
	/* Not authenticated: only what the request claimed, marked as unknown. */
	identity = json_pack("{s:s}", "type", "Unknown");
	if (identity && ev->claimed_key_id && *ev->claimed_key_id)
		json_object_set_new(identity, "accessKeyId",
				    kmsd_json_text(ev->claimed_key_id, 128));
	return identity;
}

static json_t *resources(const struct kmsd_audit_trail *trail, const char *key_arn)
{
	if (!key_arn || !*key_arn)
		return NULL;
	return json_pack("[{s:s,s:s,s:s}]", "accountId", trail->account,
			 "type", "AWS::KMS::Key", "ARN", key_arn);
}

/* A borrowed value or JSON null. */
static json_t *or_null(json_t *value)
{
	return value ? json_incref(value) : json_null();
}

static json_t *build_record(const struct kmsd_audit_trail *trail,
		const struct kmsd_audit_event *ev)
{
	char when[32];
	json_t *record, *resource_list;

	kmsd_iso8601(ev->event_time, when);
	record = json_pack("{s:s,s:o,s:s,s:s,s:o,s:s,s:o,s:o}",
			   "eventVersion", "1.08",
			   "userIdentity", user_identity(trail, ev),
			   "eventTime", when,
			   "eventSource", "kms.amazonaws.com",
			   "eventName", kmsd_json_text(ev->event_name ? ev->event_name : "",
						       EVENT_NAME_MAX),
			   "awsRegion", trail->region,
			   "sourceIPAddress", kmsd_json_text(ev->source_ip, 64),
			   "userAgent", kmsd_json_text(ev->user_agent ? ev->user_agent : "",
						       USER_AGENT_MAX));
	if (!record)
		return NULL;
	if (ev->error_code) {
		json_object_set_new(record, "errorCode", json_string(ev->error_code));
		json_object_set_new(record, "errorMessage",
				    kmsd_json_text(ev->error_message ? ev->error_message : "",
						   MESSAGE_MAX));
	}
	json_object_set_new(record, "requestParameters", or_null(ev->request_parameters));
	json_object_set_new(record, "responseElements", or_null(ev->response_elements));
	json_object_set_new(record, "requestID", json_string(ev->request_id));
	json_object_set_new(record, "eventID", json_string(ev->event_id));
	json_object_set_new(record, "readOnly", json_boolean(ev->read_only));
	resource_list = resources(trail, ev->key_arn);
	if (resource_list)
		json_object_set_new(record, "resources", resource_list);
	json_object_set_new(record, "eventType", json_string("AwsApiCall"));
	json_object_set_new(record, "managementEvent", json_true());
	json_object_set_new(record, "recipientAccountId", json_string(trail->account));
	json_object_set_new(record, "eventCategory", json_string("Management"));
	return record;
}

/*
 * record as one "\n"-terminated line. Serialized outside any lock, so
 * request threads only queue for the write itself.
 */
static char *record_line(json_t *record, size_t *len)
{
	size_t size = kmsd_json_out_size(record);
	char *line = malloc(size + 1);

	if (!line)
		return NULL;
	kmsd_json_out(record, line);
	line[size] = '\n';
	*len = size + 1;
	return line;
}

int kmsd_audit_write(struct kmsd_audit_trail *trail, const struct kmsd_audit_event *ev,
		char err[KMSD_ERR_MAX])
{
	json_t *record = build_record(trail, ev);
	char *line = NULL, why[KC_AUDIT_ERR_MAX];
	size_t len = 0;
	int rc = -1;

	if (!record) {
		snprintf(err, KMSD_ERR_MAX, "audit record for request %s: out of memory",
			 ev->request_id);
		return -1;
	}
	line = record_line(record, &len);
	if (!line) {
		snprintf(err, KMSD_ERR_MAX, "audit record for request %s: out of memory",
			 ev->request_id);
		goto out;
	}
	rc = kc_audit_trail_append(trail->files, line, len, why);
	if (rc != 0)
		snprintf(err, KMSD_ERR_MAX, "%s", why);
out:
	free(line);
	json_decref(record);
	return rc;
}
