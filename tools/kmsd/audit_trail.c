/*
 * audit_trail.c - kmsd's audit trail: one CloudTrail-format record per
 * request, allowed or not, in daily JSON Lines files.
 *
 * Layout (what a later tamper-evident digest chain builds on):
 *   AUDIT_DIR/kmsd-YYYYMMDD.jsonl   mode 0600, directory 0700
 * A file is named by the UTC day its records were *written* (not by their
 * eventTime), so files only ever grow in name order: once the day has
 * passed a file is never appended to again and can be digested and
 * signed as it is. Each record is one line, written with one write(2) on
 * an O_APPEND descriptor, so records never interleave or split.
 *
 * Records never hold plaintext: requestParameters/responseElements are
 * the engine's audit_request/audit_response, which leave out every
 * secret and blob, and nothing here reads the request body.
 */
#include "kmsd.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define USER_AGENT_MAX 512
#define EVENT_NAME_MAX 128
#define MESSAGE_MAX 512

/*
 * Request threads append under the read side of the lock: O_APPEND
 * writes of whole lines to a regular file do not interleave, so they
 * need not queue behind each other (they did, and the futex sleeps cost
 * more than the writes). Only switching to the next day's file takes the
 * write side.
 */
struct kmsd_audit_trail {
	pthread_rwlock_t lock;
	char *dir;
	int fd;                      /* the file for day; -1 before the first record */
	char day[16];                /* "YYYYMMDD" */
	int torn;                    /* the last write was short: start the next on a new line (atomic) */
	char *region;
	char *account;
};

/* ---- files ------------------------------------------------------------------------------ */

static void utc_day(time_t when, char out[16])
{
	struct tm tm;

	gmtime_r(&when, &tm);
	strftime(out, 16, "%Y%m%d", &tm);
}

/* Make sure trail->fd is the file for today. Called with the lock held. */
static int open_day(struct kmsd_audit_trail *trail, time_t now, char err[KMSD_ERR_MAX])
{
	char day[16], path[PATH_MAX];
	int fd;

	utc_day(now, day);
	if (trail->fd >= 0 && !strcmp(day, trail->day))
		return 0;
	snprintf(path, sizeof path, "%s/kmsd-%s.jsonl", trail->dir, day);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		snprintf(err, KMSD_ERR_MAX, "audit file %s: %s", path, strerror(errno));
		return -1;
	}
	if (trail->fd >= 0)
		close(trail->fd);
	trail->fd = fd;
	snprintf(trail->day, sizeof trail->day, "%s", day);
	return 0;
}

static int make_dir(const char *dir, char err[KMSD_ERR_MAX])
{
	struct stat st;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, KMSD_ERR_MAX, "audit_dir %s: cannot create it: %s", dir,
			 strerror(errno));
		return -1;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, KMSD_ERR_MAX, "audit_dir %s: not a directory", dir);
		return -1;
	}
	return 0;
}

struct kmsd_audit_trail *kmsd_audit_open(const char *dir, const char *region,
		const char *account, char err[KMSD_ERR_MAX])
{
	struct kmsd_audit_trail *trail = calloc(1, sizeof *trail);

	if (!trail) {
		snprintf(err, KMSD_ERR_MAX, "audit trail: out of memory");
		return NULL;
	}
	trail->fd = -1;
	pthread_rwlock_init(&trail->lock, NULL);
	trail->dir = strdup(dir);
	trail->region = strdup(region);
	trail->account = strdup(account);
	if (!trail->dir || !trail->region || !trail->account) {
		snprintf(err, KMSD_ERR_MAX, "audit trail: out of memory");
		goto fail;
	}
	/* Open today's file now: an unwritable audit_dir stops kmsd at start. */
	if (make_dir(dir, err) != 0 || open_day(trail, time(NULL), err) != 0)
		goto fail;
	return trail;
fail:
	kmsd_audit_close(trail);
	return NULL;
}

void kmsd_audit_close(struct kmsd_audit_trail *trail)
{
	if (!trail)
		return;
	if (trail->fd >= 0)
		close(trail->fd);
	pthread_rwlock_destroy(&trail->lock);
	free(trail->dir);
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
 * record as one line, "\n"-terminated, with a "\n" in front (written
 * only when the previous write was torn). Serialized outside the trail's
 * lock, so request threads only queue for the write itself.
 */
static char *record_line(json_t *record, size_t *len)
{
	size_t size = kmsd_json_out_size(record);
	char *line = malloc(size + 2);

	if (!line)
		return NULL;
	line[0] = '\n';
	kmsd_json_out(record, line + 1);
	line[size + 1] = '\n';
	*len = size + 2;
	return line;
}

/* One write(2) for the whole line; called with the lock held (either side). */
static int append_line(struct kmsd_audit_trail *trail, const char *line, size_t len,
		char err[KMSD_ERR_MAX])
{
	ssize_t written;

	do
		written = write(trail->fd, line, len);
	while (written < 0 && errno == EINTR);
	if (written == (ssize_t)len) {
		__atomic_store_n(&trail->torn, 0, __ATOMIC_RELAXED);
		return 0;
	}
	__atomic_store_n(&trail->torn, written > 0, __ATOMIC_RELAXED);
	snprintf(err, KMSD_ERR_MAX, "audit file %s/kmsd-%s.jsonl: %s", trail->dir, trail->day,
		 written < 0 ? strerror(errno) : "short write (disk full?)");
	return -1;
}

/* Is the open file today's? Called with the lock held. */
static int is_today(struct kmsd_audit_trail *trail, time_t now)
{
	char day[16];

	utc_day(now, day);
	return trail->fd >= 0 && strcmp(day, trail->day) == 0;
}

/* line starts with "\n", written only to end a torn previous line. */
static int append_today(struct kmsd_audit_trail *trail, const char *line, size_t len,
		char err[KMSD_ERR_MAX])
{
	time_t now = time(NULL);
	int rc = -1, torn;

	pthread_rwlock_rdlock(&trail->lock);
	while (!is_today(trail, now)) {
		pthread_rwlock_unlock(&trail->lock);
		pthread_rwlock_wrlock(&trail->lock);
		rc = open_day(trail, now, err);
		pthread_rwlock_unlock(&trail->lock);
		if (rc != 0)
			return -1;
		pthread_rwlock_rdlock(&trail->lock);
	}
	torn = __atomic_load_n(&trail->torn, __ATOMIC_RELAXED);
	rc = append_line(trail, torn ? line : line + 1, torn ? len : len - 1, err);
	pthread_rwlock_unlock(&trail->lock);
	return rc;
}

int kmsd_audit_write(struct kmsd_audit_trail *trail, const struct kmsd_audit_event *ev,
		char err[KMSD_ERR_MAX])
{
	json_t *record = build_record(trail, ev);
	char *line = NULL;
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
	rc = append_today(trail, line, len, err);
out:
	free(line);
	json_decref(record);
	return rc;
}
