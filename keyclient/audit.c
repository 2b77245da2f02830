/*
 * audit.c - the audit log: CloudTrail-format records, JSON Lines.
 *
 * One record per key-service call (and per FS integrity event), built
 * with jansson in CloudTrail's shape: eventVersion, eventTime,
 * eventSource, eventName, awsRegion, sourceIPAddress, userAgent,
 * userIdentity, requestParameters (keyId, encryptionContext),
 * additionalEventData (pid, process, path, block, bucketKey), resources,
 * requestID, eventID, readOnly, eventType, errorCode/errorMessage.
 *
 * Each record is one write(2) on an O_APPEND descriptor (file mode 0600),
 * so records from several threads or processes never interleave. Records
 * never contain key material or file content: only names, ids and the
 * encryption context, which is not secret (as in AWS).
 *
 * Where records go: a path that is a directory (or ends in '/') is an
 * audit trail (audit_trail.h): kmsfs-YYYYMMDD.jsonl files rotated per
 * period, sealed by signed digests when opened with a signing key (the
 * mount) or only appended to without one (kmsfs key). Any other path is
 * one plain file, appended to for ever with no digests, as before trails.
 */
#include "local_internal.h"
#include "audit_trail.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

struct kc_audit {
	int fd;                      /* the plain file; -1 for a trail */
	struct kc_audit_trail *trail;
	pthread_mutex_t lock;
};

/* A directory, or meant to be one (a trailing '/'): a trail. */
static int is_trail_path(const char *path)
{
	struct stat st;
	size_t len = strlen(path);

	if (len && path[len - 1] == '/')
		return 1;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static struct kc_audit *open_trail(const struct kc_audit_options *opts, char err[KC_AUDIT_ERR_MAX])
{
	struct kc_audit_trail_options trail_opts = {
		.dir = opts->path, .prefix = "kmsfs", .key_path = opts->key_path,
		.period = opts->digest_period,
	};
	struct kc_audit *audit = calloc(1, sizeof *audit);

	if (!audit) {
		snprintf(err, KC_AUDIT_ERR_MAX, "out of memory");
		return NULL;
	}
	audit->fd = -1;
	pthread_mutex_init(&audit->lock, NULL);
	audit->trail = kc_audit_trail_open(&trail_opts, err);
	if (!audit->trail) {
		kc_audit_close(audit);
		return NULL;
	}
	return audit;
}

static struct kc_audit *open_file(const char *path, char err[KC_AUDIT_ERR_MAX])
{
	struct kc_audit *audit = calloc(1, sizeof *audit);
	int saved_errno;

	if (!audit) {
		snprintf(err, KC_AUDIT_ERR_MAX, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&audit->lock, NULL);
	audit->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (audit->fd < 0) {
		saved_errno = errno;     /* kc_audit_open's callers report it */
		snprintf(err, KC_AUDIT_ERR_MAX, "%s", strerror(saved_errno));
		kc_audit_close(audit);
		errno = saved_errno;
		return NULL;
	}
	return audit;
}

struct kc_audit *kc_audit_open_opts(const struct kc_audit_options *opts,
		char err[KC_AUDIT_ERR_MAX])
{
	if (!opts->path || !*opts->path) {
		snprintf(err, KC_AUDIT_ERR_MAX, "no audit log path");
		return NULL;
	}
	if (is_trail_path(opts->path))
		return open_trail(opts, err);
	return open_file(opts->path, err);
}

struct kc_audit *kc_audit_open(const char *path)
{
	struct kc_audit_options opts = { .path = path };
	char err[KC_AUDIT_ERR_MAX];
	struct kc_audit *audit;
	int saved_errno;

	if (!path) {
		errno = EINVAL;
		return NULL;
	}
	audit = kc_audit_open_opts(&opts, err);
	if (!audit && is_trail_path(path)) {
		/* The caller reports strerror(errno); the trail's own reason is better. */
		saved_errno = errno ? errno : EIO;
		fprintf(stderr, "kmsfs: audit trail %s: %s\n", path, err);
		errno = saved_errno;
	}
	return audit;
}

void kc_audit_close(struct kc_audit *audit)
{
	if (!audit)
		return;
	kc_audit_trail_close(audit->trail);
	if (audit->fd >= 0)
		close(audit->fd);
	pthread_mutex_destroy(&audit->lock);
	free(audit);
}

/* ---- values ------------------------------------------------------------------------------ */

/* malloc'ed copy of text with every non-ASCII byte replaced by '?'. */
static char *ascii_copy(const char *text)
{
	char *copy = strdup(text);

	for (char *p = copy; p && *p; p++) {
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	}
	return copy;
}

/* A JSON string even for text that is not UTF-8 (paths, process names). */
static json_t *safe_string(const char *text)
{
	json_t *value = json_string(text);
	char *copy;

	if (value)
		return value;
	copy = ascii_copy(text);
	value = copy ? json_string(copy) : NULL;
	free(copy);
	return value;
}

/* Object member whose name may not be UTF-8 (an encryption-context key). */
static void set_member(json_t *obj, const char *name, json_t *value)
{
	json_t *probe = json_string(name);
	char *copy = NULL;

	if (!probe)
		name = copy = ascii_copy(name);
	json_decref(probe);
	if (name)
		json_object_set_new(obj, name, value);
	else
		json_decref(value);
	free(copy);
}

static void set_string(json_t *obj, const char *name, const char *text)
{
	if (text)
		json_object_set_new(obj, name, safe_string(text));
}

static void utc_now(char out[32])
{
	struct tm tm;
	time_t now = time(NULL);

	gmtime_r(&now, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* /proc/<pid>/comm, best effort; "" when unknown. */
static void process_name(pid_t pid, char out[64])
{
	char path[64];
	ssize_t got;
	int fd;

	out[0] = '\0';
	if (pid <= 0)
		return;
	snprintf(path, sizeof path, "/proc/%ld/comm", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	got = read(fd, out, 63);
	close(fd);
	if (got <= 0)
		got = 0;
	out[got] = '\0';
	out[strcspn(out, "\n")] = '\0';
}

/* Resource ARN for a key reference when the backend did not name one. */
static void resource_arn(const char *key_id, char out[KC_ARN_MAX])
{
	if (strncmp(key_id, "arn:", 4) == 0)
		snprintf(out, KC_ARN_MAX, "%s", key_id);
	else if (strncmp(key_id, KC_ALIAS_PREFIX, strlen(KC_ALIAS_PREFIX)) == 0)
		snprintf(out, KC_ARN_MAX, "%s%s", KC_LOCAL_ARN_PREFIX, key_id);
	else
		kc_key_arn(key_id, out);
}

static int is_read_only(const char *event_name)
{
	return strcmp(event_name, "Decrypt") == 0 || strncmp(event_name, "Describe", 8) == 0 ||
		strncmp(event_name, "List", 4) == 0 || strncmp(event_name, "Get", 3) == 0;
}

/* ---- record sections ------------------------------------------------------------------------ */

static json_t *user_identity(const struct kc_caller *caller)
{
	json_t *identity = json_object();

	json_object_set_new(identity, "type", json_string("LocalUser"));
	if (!caller)
		return identity;
	set_string(identity, "principalId", caller->principal);
	set_string(identity, "arn", caller->principal);
	json_object_set_new(identity, "uid", json_integer((json_int_t)caller->uid));
	return identity;
}

static json_t *request_parameters(const struct kc_audit_event *ev)
{
	json_t *params = json_object();
	json_t *context;

	set_string(params, "keyId", ev->key_id);
	if (ev->ctx) {
		context = json_object();
		for (size_t i = 0; i < ev->ctx->count && i < KC_MAX_CONTEXT_PAIRS; i++) {
			const struct kc_pair *pair = &ev->ctx->pairs[i];
			if (pair->key && pair->value)
				set_member(context, pair->key, safe_string(pair->value));
		}
		json_object_set_new(params, "encryptionContext", context);
	}
	return params;
}

static json_t *additional_data(const struct kc_audit_event *ev)
{
	json_t *data = json_object();
	char comm[64];

	if (ev->caller && ev->caller->pid > 0) {
		json_object_set_new(data, "pid", json_integer(ev->caller->pid));
		process_name(ev->caller->pid, comm);
		if (comm[0])
			set_string(data, "processName", comm);
	}
	set_string(data, "path", ev->path);
	if (ev->block_index >= 0)
		json_object_set_new(data, "blockIndex", json_integer((json_int_t)ev->block_index));
	if (ev->bucket_key)
		json_object_set_new(data, "bucketKey", json_true());
	return data;
}

static json_t *resources(const struct kc_audit_event *ev)
{
	json_t *list = json_array();
	json_t *resource = json_object();
	char arn[KC_ARN_MAX];

	if (ev->key_arn)
		snprintf(arn, sizeof arn, "%s", ev->key_arn);
	else
		resource_arn(ev->key_id, arn);
	json_object_set_new(resource, "type", json_string("AWS::KMS::Key"));
	set_string(resource, "ARN", arn);
	json_array_append_new(list, resource);
	return list;
}

static json_t *build_record(const struct kc_audit_event *ev)
{
	const char *source = ev->event_source ? ev->event_source : "kms.amazonaws.com";
	const char *name = ev->event_name ? ev->event_name : "Unknown";
	json_t *record = json_object();
	char now[32], request_id[KC_KEY_ID_LEN + 1], event_id[KC_KEY_ID_LEN + 1];

	utc_now(now);
	kc_uuid_v4(request_id);
	kc_uuid_v4(event_id);
	json_object_set_new(record, "eventVersion", json_string("1.08"));
	json_object_set_new(record, "userIdentity", user_identity(ev->caller));
	json_object_set_new(record, "eventTime", json_string(now));
	set_string(record, "eventSource", source);
	set_string(record, "eventName", name);
	json_object_set_new(record, "awsRegion", json_string("local"));
	json_object_set_new(record, "sourceIPAddress", json_string("localhost"));
	json_object_set_new(record, "userAgent", json_string("kmsfs/0.1"));
	if (ev->err && ev->err->status != KC_OK) {
		json_object_set_new(record, "errorCode", json_string(kc_status_type(ev->err->status)));
		set_string(record, "errorMessage", ev->err->message);
	}
	json_object_set_new(record, "requestParameters", request_parameters(ev));
	json_object_set_new(record, "responseElements", json_null());
	json_object_set_new(record, "additionalEventData", additional_data(ev));
	json_object_set_new(record, "requestID", json_string(request_id));
	json_object_set_new(record, "eventID", json_string(event_id));
	json_object_set_new(record, "readOnly", json_boolean(is_read_only(name)));
	if (ev->key_id || ev->key_arn)
		json_object_set_new(record, "resources", resources(ev));
	json_object_set_new(record, "eventType",
			json_string(strcmp(source, "kmsfs") == 0 ? "AwsServiceEvent" : "AwsApiCall"));
	json_object_set_new(record, "recipientAccountId", json_string("000000000000"));
	return record;
}

/* ---- writing ------------------------------------------------------------------------------- */

static void write_line(struct kc_audit *audit, const char *line, size_t len)
{
	char err[KC_AUDIT_ERR_MAX];
	ssize_t done;

	if (audit->trail) {
		if (kc_audit_trail_append(audit->trail, line, len, err) != 0)
			fprintf(stderr, "kmsfs: audit log write failed: %s\n", err);
		return;
	}
	pthread_mutex_lock(&audit->lock);
	do {
		done = write(audit->fd, line, len);
	} while (done < 0 && errno == EINTR);
	pthread_mutex_unlock(&audit->lock);
	if (done < 0 || (size_t)done != len)
		fprintf(stderr, "kmsfs: audit log write failed: %s\n", done < 0 ? strerror(errno) : "short write");
}

void kc_audit_record(struct kc_audit *audit, const struct kc_audit_event *ev)
{
	json_t *record = NULL;
	char *text = NULL, *line = NULL;
	size_t len;

	if (!audit || !ev)
		goto out;
	record = build_record(ev);
	text = record ? json_dumps(record, JSON_COMPACT) : NULL;
	if (!text) {
		fprintf(stderr, "kmsfs: audit log: cannot build record for %s\n",
				ev->event_name ? ev->event_name : "event");
		goto out;
	}
	len = strlen(text);
	line = malloc(len + 2);
	if (!line)
		goto out;
	memcpy(line, text, len);
	line[len] = '\n';
	line[len + 1] = '\0';
	write_line(audit, line, len + 1);
out:
	free(line);
	free(text);
	json_decref(record);
}
