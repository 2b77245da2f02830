/*
 * audit_rotate.c - the writing side of an audit trail (audit_trail.h):
 * one log file per period, sealed and digested when the period ends.
 *
 * Appends: each record is one write(2) on an O_APPEND descriptor to the
 * file of the period the clock is in, read under the lock, so a record is
 * never written to a file after its period was sealed. A file is sealed
 * by making it read-only (0400) before it is hashed; a writer that finds
 * its file sealed (another process's shutdown digest) moves on to the
 * period's next file, PREFIX-STAMP.2.jsonl, and so on.
 *
 * Locks: DIR/.lock is held shared by an append and exclusive by sealing,
 * so appends from other processes (kmsfs mount and kmsfs key on one
 * directory) never land in a sealed file. kmsd is the only writer of its
 * directory: it holds DIR/.lock exclusive for its lifetime and appends
 * under the read side of an in-process rwlock, with no per-record lock.
 * DIR/digests/.lock serializes digest writers across processes; each
 * reads the newest digest from disk, so two mounts with the same key
 * extend one chain and never digest a file twice.
 *
 * Digests are written by the thread below at each period end, by
 * kc_audit_trail_open for files a crash left undigested, and by
 * kc_audit_trail_close for everything written so far.
 */
#include "audit_trail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <jansson.h>

#define SEQ_MAX 10000
#define WAKE_MAX_SECONDS 60          /* re-check the wall clock at least this often */
#define WAKE_LATE_NS 20000000L       /* digest 20 ms after the boundary, not before */
#define LOCK_WAIT_MS 5000            /* sealing holds DIR/.lock for a directory listing: */
                                     /* longer means another kind of writer holds it */

enum digest_kind { DIGEST_PERIOD_END, DIGEST_STARTUP, DIGEST_SHUTDOWN };

struct kc_audit_trail {
	pthread_rwlock_t lock;           /* appends: read side (single process); the rest: write */
	pthread_mutex_t digest_lock;     /* one digest at a time in this process */
	int dir_fd, digest_dir_fd;
	int lock_fd;                     /* DIR/.lock */
	int digest_lock_fd;              /* DIR/digests/.lock */
	char *dir;                       /* absolute, for messages */
	char prefix[64];
	unsigned period;
	int single_process;
	int fd;                          /* the file being appended to; -1: none yet */
	time_t file_period;              /* the period start fd belongs to */
	unsigned seq;
	char file_name[KC_AUDIT_NAME_MAX];
	int torn;                        /* the last write was short: start the next on a new line */
	time_t opened_at;
	struct kc_audit_key *key;        /* NULL: append only */
	char fingerprint[KC_AUDIT_FPR_HEX];
	pthread_t thread;
	int thread_running;
	pthread_mutex_t wake_lock;
	pthread_cond_t wake;             /* CLOCK_MONOTONIC */
	int stop;
};

/* The newest digest on disk, as the next one chains to it. */
struct chain_head {
	int exists;
	char name[KC_AUDIT_NAME_MAX];
	char sig[KC_AUDIT_SIG_HEX];
	time_t end;
	unsigned period;                         /* its logFilePeriodSeconds; 0 if absent */
	int has_high_water;
	struct kc_audit_log_name high_water;     /* the newest log file any digest names */
};

struct log_entry {
	char name[KC_AUDIT_NAME_MAX];
	struct kc_audit_log_name parsed;
};

struct log_list {
	struct log_entry *items;
	size_t count;
};

static time_t period_start(const struct kc_audit_trail *trail, time_t when)
{
	return when - when % (time_t)trail->period;
}

static void warn(const struct kc_audit_trail *trail, const char *what)
{
	fprintf(stderr, "%s: audit trail %s: %s\n", trail->prefix, trail->dir, what);
}

/* ---- log files ---------------------------------------------------------------------- */

/* Open the period's first file that is not sealed. Called with the lock held (write side). */
static int open_period_file(struct kc_audit_trail *trail, time_t start, char err[KC_AUDIT_ERR_MAX])
{
	unsigned seq = trail->file_period == start && trail->seq ? trail->seq : 1;
	char name[KC_AUDIT_NAME_MAX];
	struct stat st;
	int fd;

	if (trail->fd >= 0)
		close(trail->fd);
	trail->fd = -1;
	for (; seq <= SEQ_MAX; seq++) {
		kc_audit_log_name_format(trail->prefix, start, trail->period, seq, name);
		fd = openat(trail->dir_fd, name, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
			    0600);
		if (fd < 0 && errno == EACCES)
			continue;            /* sealed (0400), and we are not root */
		if (fd < 0 || fstat(fd, &st) != 0) {
			snprintf(err, KC_AUDIT_ERR_MAX, "audit file %s/%s: %s", trail->dir, name,
				 strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		if (st.st_mode & S_IWUSR)
			break;
		close(fd);                   /* sealed: root may open it, but must not write */
	}
	if (seq > SEQ_MAX) {
		snprintf(err, KC_AUDIT_ERR_MAX, "audit trail %s: every file of the period is sealed",
			 trail->dir);
		return -1;
	}
	trail->fd = fd;
	trail->file_period = start;
	trail->seq = seq;
	snprintf(trail->file_name, sizeof trail->file_name, "%s", name);
	return 0;
}

/* Must the current file be (re)opened before writing at now? */
static int needs_open(struct kc_audit_trail *trail, time_t now)
{
	struct stat st;

	if (trail->fd < 0 || trail->file_period != period_start(trail, now))
		return 1;
	/* Another process may have sealed it (its shutdown digest). */
	return !trail->single_process && (fstat(trail->fd, &st) != 0 || !(st.st_mode & S_IWUSR));
}

/* One write(2) of the line, after a "\n" when the previous write was torn. */
static int write_record(struct kc_audit_trail *trail, const char *line, size_t len,
		char err[KC_AUDIT_ERR_MAX])
{
	int torn = __atomic_load_n(&trail->torn, __ATOMIC_RELAXED);
	struct iovec iov[2] = { { (void *)"\n", 1 }, { (void *)line, len } };
	size_t want = len + (torn ? 1 : 0);
	ssize_t written;

	do
		written = writev(trail->fd, torn ? iov : iov + 1, torn ? 2 : 1);
	while (written < 0 && errno == EINTR);
	if (written == (ssize_t)want) {
		__atomic_store_n(&trail->torn, 0, __ATOMIC_RELAXED);
		return 0;
	}
	__atomic_store_n(&trail->torn, written > 0, __ATOMIC_RELAXED);
	snprintf(err, KC_AUDIT_ERR_MAX, "audit file %s/%s: %s", trail->dir, trail->file_name,
		 written < 0 ? strerror(errno) : "short write (disk full?)");
	return -1;
}

/* kmsd: appends share the read side; only opening the next file takes the write side. */
static int append_single(struct kc_audit_trail *trail, const char *line, size_t len,
		char err[KC_AUDIT_ERR_MAX])
{
	int rc;

	pthread_rwlock_rdlock(&trail->lock);
	while (needs_open(trail, time(NULL))) {
		pthread_rwlock_unlock(&trail->lock);
		pthread_rwlock_wrlock(&trail->lock);
		rc = 0;
		if (needs_open(trail, time(NULL)))
			rc = open_period_file(trail, period_start(trail, time(NULL)), err);
		pthread_rwlock_unlock(&trail->lock);
		if (rc != 0)
			return -1;
		pthread_rwlock_rdlock(&trail->lock);
	}
	rc = write_record(trail, line, len, err);
	pthread_rwlock_unlock(&trail->lock);
	return rc;
}

/*
 * flock(op) on DIR/.lock, waiting at most LOCK_WAIT_MS: a kmsd holds the
 * lock of its own directory for good, and a mount pointed at it must fail
 * rather than hang.
 */
static int lock_dir(struct kc_audit_trail *trail, int op, char err[KC_AUDIT_ERR_MAX])
{
	long waited_ms = 0, pause_ms = 1;

	while (flock(trail->lock_fd, op | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			break;
		if (waited_ms >= LOCK_WAIT_MS) {
			snprintf(err, KC_AUDIT_ERR_MAX, "audit directory %s is held by another "
				 "process (a kmsd?)", trail->dir);
			return -1;
		}
		usleep((useconds_t)pause_ms * 1000);
		waited_ms += pause_ms;
		pause_ms = pause_ms < 50 ? pause_ms * 2 : 50;
	}
	return 0;
}

/* Several processes: one append at a time here, DIR/.lock shared against sealing. */
static int append_shared(struct kc_audit_trail *trail, const char *line, size_t len,
		char err[KC_AUDIT_ERR_MAX])
{
	time_t now;
	int rc = -1;

	pthread_rwlock_wrlock(&trail->lock);
	if (lock_dir(trail, LOCK_SH, err) != 0) {
		pthread_rwlock_unlock(&trail->lock);
		return -1;
	}
	now = time(NULL);
	if (needs_open(trail, now) && open_period_file(trail, period_start(trail, now), err) != 0)
		goto out;
	rc = write_record(trail, line, len, err);
out:
	flock(trail->lock_fd, LOCK_UN);
	pthread_rwlock_unlock(&trail->lock);
	return rc;
}

int kc_audit_trail_append(struct kc_audit_trail *trail, const char *line, size_t len,
		char err[KC_AUDIT_ERR_MAX])
{
	if (trail->single_process)
		return append_single(trail, line, len, err);
	return append_shared(trail, line, len, err);
}

/* ---- the chain head ------------------------------------------------------------------ */

/* A digest of this trail's prefix? */
static int is_own_digest(const char *name, void *arg)
{
	const char *own_prefix = arg;
	char prefix[64];
	time_t end;

	return kc_audit_digest_name_parse(name, prefix, &end) == 0 && strcmp(prefix, own_prefix) == 0;
}

/* The newest log file a digest names; 0 if it names none. */
static int digest_high_water(const struct kc_audit_digest_file *digest,
		struct kc_audit_log_name *out)
{
	json_t *files = json_object_get(digest->json, "logFiles"), *file;
	struct kc_audit_log_name parsed;
	size_t i;
	int found = 0;

	json_array_foreach(files, i, file) {
		const char *name = json_string_value(json_object_get(file, "fileName"));
		if (!name || kc_audit_log_name_parse(name, &parsed) != 0)
			continue;
		if (!found || kc_audit_log_name_cmp(&parsed, out) > 0)
			*out = parsed;
		found = 1;
	}
	return found;
}

/* The period the digest's writer rotated files at; 0 if it does not say. */
static unsigned digest_period(const struct kc_audit_digest_file *digest)
{
	json_int_t period = json_integer_value(json_object_get(digest->json,
								"logFilePeriodSeconds"));

	return period > 0 && period <= KC_AUDIT_PERIOD_MAX ? (unsigned)period : 0;
}

/* Read the newest digest (what to chain to) and the newest file digested so far. */
static void read_chain_head(struct kc_audit_trail *trail, struct chain_head *head)
{
	struct kc_audit_digest_file digest;
	size_t count = 0;
	char **names = NULL, prefix[64];

	memset(head, 0, sizeof *head);
	/* Newest first; an unreadable directory is a trail with no digests yet. */
	kc_audit_list_names(trail->digest_dir_fd, is_own_digest, trail->prefix, 1, &names, &count);
	for (size_t i = 0; i < count && !head->has_high_water; i++) {
		if (kc_audit_digest_read(trail->digest_dir_fd, names[i], &digest) != 0)
			continue;
		if (!head->exists) {
			head->exists = 1;
			snprintf(head->name, sizeof head->name, "%s", digest.name);
			snprintf(head->sig, sizeof head->sig, "%s", digest.sig);
			head->end = digest.end;
			if (head->end < 0)
				kc_audit_digest_name_parse(digest.name, prefix, &head->end);
			head->period = digest_period(&digest);
		}
		head->has_high_water = digest_high_water(&digest, &head->high_water);
		kc_audit_digest_release(&digest);
	}
	kc_audit_free_names(names, count);
}

/* ---- sealing -------------------------------------------------------------------------- */

static int entry_cmp(const void *a, const void *b)
{
	return kc_audit_log_name_cmp(&((const struct log_entry *)a)->parsed,
				     &((const struct log_entry *)b)->parsed);
}

/* The files a digest ending at end takes: this prefix's, newer than the head's, started before end. */
static int wanted(const struct kc_audit_trail *trail, const struct chain_head *head,
		const struct kc_audit_log_name *parsed, time_t end)
{
	if (strcmp(parsed->prefix, trail->prefix) != 0 || parsed->start >= end)
		return 0;
	return !head->has_high_water || kc_audit_log_name_cmp(parsed, &head->high_water) > 0;
}

static int list_undigested(struct kc_audit_trail *trail, const struct chain_head *head,
		time_t end, struct log_list *list)
{
	int fd = dup(trail->dir_fd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct log_entry entry, *grown;
	struct dirent *ent;

	memset(list, 0, sizeof *list);
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	rewinddir(dir);              /* a dup shares the offset of the last listing */
	while ((ent = readdir(dir)) != NULL) {
		if (kc_audit_log_name_parse(ent->d_name, &entry.parsed) != 0 ||
		    !wanted(trail, head, &entry.parsed, end))
			continue;
		grown = realloc(list->items, (list->count + 1) * sizeof *grown);
		if (!grown)
			break;
		list->items = grown;
		snprintf(entry.name, sizeof entry.name, "%s", ent->d_name);
		list->items[list->count++] = entry;
	}
	closedir(dir);
	if (list->count)
		qsort(list->items, list->count, sizeof *list->items, entry_cmp);
	return 0;
}

/* Read-only from now on; the writer that has it open moves to a new file. */
static void seal_file(struct kc_audit_trail *trail, const char *name)
{
	int fd = openat(trail->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0 || fchmod(fd, 0400) != 0)
		warn(trail, "cannot make a digested file read-only");
	if (fd >= 0)
		close(fd);
	if (trail->fd >= 0 && strcmp(name, trail->file_name) == 0) {
		close(trail->fd);
		trail->fd = -1;
	}
}

/*
 * Choose and seal the files for a digest ending at end, with every append
 * of this process (rwlock) and of others (DIR/.lock) kept out meanwhile.
 */
static int seal_for_digest(struct kc_audit_trail *trail, const struct chain_head *head,
		time_t end, struct log_list *list)
{
	char err[KC_AUDIT_ERR_MAX];
	int rc = -1;

	pthread_rwlock_wrlock(&trail->lock);
	if (!trail->single_process && lock_dir(trail, LOCK_EX, err) != 0) {
		warn(trail, err);
		goto out;
	}
	rc = list_undigested(trail, head, end, list);
	for (size_t i = 0; rc == 0 && i < list->count; i++)
		seal_file(trail, list->items[i].name);
	if (!trail->single_process)
		flock(trail->lock_fd, LOCK_UN);
out:
	pthread_rwlock_unlock(&trail->lock);
	return rc;
}

/* ---- digests -------------------------------------------------------------------------- */

static json_t *time_or_null(const char *when)
{
	return when[0] ? json_string(when) : json_null();
}

static json_t *text_or_null(const char *text)
{
	return text && text[0] ? json_string(text) : json_null();
}

/* One logFiles entry; widens the digest's own event-time range. */
static json_t *file_entry(struct kc_audit_trail *trail, const char *name,
		struct kc_audit_file_summary *range)
{
	struct kc_audit_file_summary sum;

	if (kc_audit_file_summarize(trail->dir_fd, name, &sum) != 0)
		return NULL;
	if (sum.oldest[0] && (!range->oldest[0] || strcmp(sum.oldest, range->oldest) < 0))
		memcpy(range->oldest, sum.oldest, sizeof range->oldest);
	if (sum.newest[0] && strcmp(sum.newest, range->newest) > 0)
		memcpy(range->newest, sum.newest, sizeof range->newest);
	return json_pack("{s:s,s:s,s:s,s:o,s:o,s:I}", "fileName", name, "hashValue", sum.hash,
			 "hashAlgorithm", "SHA-256", "newestEventTime", time_or_null(sum.newest),
			 "oldestEventTime", time_or_null(sum.oldest),
			 "recordCount", (json_int_t)sum.records);
}

static json_t *digest_json(struct kc_audit_trail *trail, const struct chain_head *head,
		const struct log_list *list, time_t start, time_t end, const char *name)
{
	struct kc_audit_file_summary range = { 0 };
	json_t *files = json_array(), *entry, *doc;
	char start_text[KC_AUDIT_TIME_LEN], end_text[KC_AUDIT_TIME_LEN];

	for (size_t i = 0; files && i < list->count; i++) {
		entry = file_entry(trail, list->items[i].name, &range);
		if (!entry || json_array_append_new(files, entry) != 0) {
			json_decref(files);
			return NULL;
		}
	}
	kc_audit_time_format(start, start_text);
	kc_audit_time_format(end, end_text);
	doc = json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:o}",
			"digestFormat", "kmsfs-audit-digest-1", "logFilePrefix", trail->prefix,
			"logFilePeriodSeconds", (json_int_t)trail->period, "digestFileName", name,
			"digestStartTime", start_text, "digestEndTime", end_text,
			"digestPublicKeyFingerprint", trail->fingerprint,
			"digestSignatureAlgorithm", "Ed25519",
			"newestEventTime", time_or_null(range.newest),
			"oldestEventTime", time_or_null(range.oldest),
			"previousDigestFileName", text_or_null(head->exists ? head->name : NULL),
			"previousDigestSignature", text_or_null(head->exists ? head->sig : NULL),
			"logFiles", files);
	return doc;
}

/* Write digests/name atomically (temporary file, fsync, rename). */
static int write_file_atomic(struct kc_audit_trail *trail, const char *name, const char *bytes,
		size_t len)
{
	char tmp[KC_AUDIT_NAME_MAX + 32];
	int fd, rc = -1;

	snprintf(tmp, sizeof tmp, ".%s.tmp.%ld", name, (long)getpid());
	fd = openat(trail->digest_dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		    0644);
	if (fd < 0)
		return -1;
	if (write(fd, bytes, len) == (ssize_t)len && fsync(fd) == 0 &&
	    renameat(trail->digest_dir_fd, tmp, trail->digest_dir_fd, name) == 0)
		rc = 0;
	close(fd);
	if (rc != 0)
		unlinkat(trail->digest_dir_fd, tmp, 0);
	return rc;
}

/* Sign the digest and write it: NAME.sig first, so a digest is never there unsigned. */
static int publish_digest(struct kc_audit_trail *trail, const struct chain_head *head,
		const char *name, const char *text)
{
	char sig[KC_AUDIT_SIG_HEX + 1], sig_name[KC_AUDIT_NAME_MAX + 8];
	size_t len = strlen(text);

	if (kc_audit_digest_sign(trail->key, name, text, len, head->exists ? head->sig : "",
				 sig) != 0)
		return -1;
	strcat(sig, "\n");
	snprintf(sig_name, sizeof sig_name, "%s.sig", name);
	if (write_file_atomic(trail, sig_name, sig, strlen(sig)) != 0 ||
	    write_file_atomic(trail, name, text, len) != 0)
		return -1;
	fsync(trail->digest_dir_fd);
	return 0;
}

/*
 * When a digest of this kind may end, given the newest one: -1 to skip.
 * Digest names have one-second resolution, so a shutdown digest in the
 * second of the previous one waits for the next second.
 */
static time_t digest_end(struct kc_audit_trail *trail, const struct chain_head *head,
		enum digest_kind kind, time_t end)
{
	if (!head->exists || end > head->end)
		return end;
	if (kind == DIGEST_SHUTDOWN && head->end - end <= 1) {
		while (time(NULL) <= head->end)
			usleep(50000);
		return head->end + 1;
	}
	if (kind != DIGEST_STARTUP && head->end > end)
		warn(trail, "the clock is behind the newest digest's end: no digest until it catches up");
	return -1;
}

/* Seal what the digest ending at end covers, then hash, sign and write it. */
static int write_digest_locked(struct kc_audit_trail *trail, enum digest_kind kind, time_t end)
{
	struct chain_head head;
	struct log_list list = { 0 };
	char name[KC_AUDIT_NAME_MAX], *text = NULL;
	json_t *doc = NULL;
	time_t start;
	int rc = -1;

	read_chain_head(trail, &head);
	end = digest_end(trail, &head, kind, end);
	if (end < 0)
		return 0;
	if (seal_for_digest(trail, &head, end, &list) != 0)
		goto out;
	/* At start-up: a digest for files a crash left, or to begin a new trail. */
	if (kind == DIGEST_STARTUP && list.count == 0 && head.exists) {
		rc = 0;
		goto out;
	}
	start = head.exists ? head.end : (kind == DIGEST_STARTUP ? end : trail->opened_at);
	if (!head.exists && list.count && list.items[0].parsed.start < start)
		start = list.items[0].parsed.start;
	kc_audit_digest_name_format(trail->prefix, end, name);
	doc = digest_json(trail, &head, &list, start < end ? start : end, end, name);
	text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
	if (text && publish_digest(trail, &head, name, text) == 0)
		rc = 0;
out:
	if (rc != 0)
		warn(trail, "cannot write a digest");
	free(text);
	json_decref(doc);
	free(list.items);
	return rc;
}

static int write_digest(struct kc_audit_trail *trail, enum digest_kind kind, time_t end)
{
	int rc;

	pthread_mutex_lock(&trail->digest_lock);
	while (flock(trail->digest_lock_fd, LOCK_EX) != 0 && errno == EINTR)
		;
	rc = write_digest_locked(trail, kind, end);
	flock(trail->digest_lock_fd, LOCK_UN);
	pthread_mutex_unlock(&trail->digest_lock);
	return rc;
}

/* ---- the period thread ---------------------------------------------------------------- */

/* Sleep (monotonic clock, woken by close) until the wall clock passes until. 0 when stopping. */
static int sleep_until(struct kc_audit_trail *trail, time_t until)
{
	struct timespec now, deadline;
	time_t left;
	int stop;

	pthread_mutex_lock(&trail->wake_lock);
	while (!trail->stop) {
		clock_gettime(CLOCK_REALTIME, &now);
		if (now.tv_sec >= until)
			break;
		left = until - now.tv_sec;
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += (left > WAKE_MAX_SECONDS ? WAKE_MAX_SECONDS : left) - 1;
		deadline.tv_nsec += 1000000000L - now.tv_nsec + WAKE_LATE_NS;
		deadline.tv_sec += deadline.tv_nsec / 1000000000L;
		deadline.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&trail->wake, &trail->wake_lock, &deadline);
	}
	stop = trail->stop;
	pthread_mutex_unlock(&trail->wake_lock);
	return !stop;
}

static void *period_thread(void *arg)
{
	struct kc_audit_trail *trail = arg;
	time_t boundary;

	for (;;) {
		boundary = period_start(trail, time(NULL)) + (time_t)trail->period;
		if (!sleep_until(trail, boundary))
			break;
		write_digest(trail, DIGEST_PERIOD_END, period_start(trail, time(NULL)));
	}
	return NULL;
}

static int start_thread(struct kc_audit_trail *trail, char err[KC_AUDIT_ERR_MAX])
{
	pthread_condattr_t attr;
	int rc;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&trail->wake, &attr);
	pthread_condattr_destroy(&attr);
	rc = pthread_create(&trail->thread, NULL, period_thread, trail);
	if (rc != 0) {
		snprintf(err, KC_AUDIT_ERR_MAX, "audit trail: cannot start its digest thread: %s",
			 strerror(rc));
		return -1;
	}
	trail->thread_running = 1;
	return 0;
}

static void stop_thread(struct kc_audit_trail *trail)
{
	if (!trail->thread_running)
		return;
	pthread_mutex_lock(&trail->wake_lock);
	trail->stop = 1;
	pthread_cond_signal(&trail->wake);
	pthread_mutex_unlock(&trail->wake_lock);
	pthread_join(trail->thread, NULL);
	trail->thread_running = 0;
}

/* ---- opening and closing -------------------------------------------------------------- */

static int open_subdir(int parent_fd, const char *name, const char *shown,
		char err[KC_AUDIT_ERR_MAX])
{
	int fd;

	if (mkdirat(parent_fd, name, 0700) != 0 && errno != EEXIST) {
		snprintf(err, KC_AUDIT_ERR_MAX, "%s: cannot create it: %s", shown, strerror(errno));
		return -1;
	}
	fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		snprintf(err, KC_AUDIT_ERR_MAX, "%s: %s", shown, strerror(errno));
	return fd;
}

static int open_lock(int dir_fd, const char *name, const char *dir, char err[KC_AUDIT_ERR_MAX])
{
	int fd = openat(dir_fd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		snprintf(err, KC_AUDIT_ERR_MAX, "%.240s/%.200s: %s", dir, name, strerror(errno));
	return fd;
}

static int check_options(const struct kc_audit_trail_options *opts, char err[KC_AUDIT_ERR_MAX])
{
	struct kc_audit_log_name probe;
	char name[KC_AUDIT_NAME_MAX];

	if (!opts->dir || !opts->prefix || strlen(opts->prefix) >= 48) {
		snprintf(err, KC_AUDIT_ERR_MAX, "audit trail: no directory or prefix");
		return -1;
	}
	kc_audit_log_name_format(opts->prefix, 0, KC_AUDIT_DAY, 1, name);
	if (kc_audit_log_name_parse(name, &probe) != 0) {
		snprintf(err, KC_AUDIT_ERR_MAX, "audit trail: bad file prefix \"%s\"", opts->prefix);
		return -1;
	}
	if (opts->period > KC_AUDIT_PERIOD_MAX) {
		snprintf(err, KC_AUDIT_ERR_MAX, "audit trail: digest period %u s is over %u s",
			 opts->period, KC_AUDIT_PERIOD_MAX);
		return -1;
	}
	return 0;
}

/* Directories, lock files; kmsd's directory is locked for its lifetime. */
static int open_files(struct kc_audit_trail *trail, const struct kc_audit_trail_options *opts,
		char err[KC_AUDIT_ERR_MAX])
{
	char shown[PATH_MAX + 16];

	trail->dir_fd = open_subdir(AT_FDCWD, opts->dir, opts->dir, err);
	if (trail->dir_fd < 0)
		return -1;
	trail->dir = realpath(opts->dir, NULL);
	if (!trail->dir)
		trail->dir = strdup(opts->dir);
	if (!trail->dir) {
		snprintf(err, KC_AUDIT_ERR_MAX, "audit trail: out of memory");
		return -1;
	}
	snprintf(shown, sizeof shown, "%s/%s", trail->dir, KC_AUDIT_DIGEST_DIR);
	trail->digest_dir_fd = open_subdir(trail->dir_fd, KC_AUDIT_DIGEST_DIR, shown, err);
	if (trail->digest_dir_fd < 0)
		return -1;
	trail->lock_fd = open_lock(trail->dir_fd, ".lock", trail->dir, err);
	trail->digest_lock_fd = open_lock(trail->digest_dir_fd, ".lock", shown, err);
	if (trail->lock_fd < 0 || trail->digest_lock_fd < 0)
		return -1;
	if (opts->single_process && flock(trail->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		snprintf(err, KC_AUDIT_ERR_MAX, "audit directory %s is in use by another process",
			 trail->dir);
		return -1;
	}
	/* Shared: refuse at open a directory a single writer holds, not at the first record. */
	if (!opts->single_process) {
		if (lock_dir(trail, LOCK_SH, err) != 0)
			return -1;
		flock(trail->lock_fd, LOCK_UN);
	}
	return 0;
}

/*
 * An append-only opener with no period of its own rotates at the one the
 * trail's digests were written for, so its files are the digester's.
 */
static void adopt_trail_period(struct kc_audit_trail *trail)
{
	struct chain_head head;

	read_chain_head(trail, &head);
	if (head.period)
		trail->period = head.period;
}

/* Key, public key, files a crash left undigested, the period thread. */
static int start_digests(struct kc_audit_trail *trail, const char *key_path,
		char err[KC_AUDIT_ERR_MAX])
{
	trail->key = kc_audit_key_load(key_path, err);
	if (!trail->key)
		return -1;
	kc_audit_key_fingerprint(kc_audit_key_public(trail->key), trail->fingerprint);
	if (kc_audit_public_key_publish(trail->dir_fd, kc_audit_key_public(trail->key), err) != 0)
		return -1;
	write_digest(trail, DIGEST_STARTUP, period_start(trail, time(NULL)));
	return start_thread(trail, err);
}

struct kc_audit_trail *kc_audit_trail_open(const struct kc_audit_trail_options *opts,
		char err[KC_AUDIT_ERR_MAX])
{
	struct kc_audit_trail *trail;

	if (check_options(opts, err) != 0)
		return NULL;
	trail = calloc(1, sizeof *trail);
	if (!trail) {
		snprintf(err, KC_AUDIT_ERR_MAX, "audit trail: out of memory");
		return NULL;
	}
	trail->fd = trail->dir_fd = trail->digest_dir_fd = -1;
	trail->lock_fd = trail->digest_lock_fd = -1;
	pthread_rwlock_init(&trail->lock, NULL);
	pthread_mutex_init(&trail->digest_lock, NULL);
	pthread_mutex_init(&trail->wake_lock, NULL);
	snprintf(trail->prefix, sizeof trail->prefix, "%s", opts->prefix);
	trail->period = opts->period ? opts->period : KC_AUDIT_DAY;
	trail->single_process = opts->single_process;
	trail->opened_at = time(NULL);
	if (open_files(trail, opts, err) != 0)
		goto fail;
	if (!opts->key_path && !opts->period)
		adopt_trail_period(trail);
	if (opts->key_path && start_digests(trail, opts->key_path, err) != 0)
		goto fail;
	return trail;
fail:
	kc_audit_trail_close(trail);
	return NULL;
}

void kc_audit_trail_close(struct kc_audit_trail *trail)
{
	if (!trail)
		return;
	if (trail->thread_running) {
		stop_thread(trail);
		pthread_cond_destroy(&trail->wake);
		write_digest(trail, DIGEST_SHUTDOWN, time(NULL));
	}
	if (trail->fd >= 0)
		close(trail->fd);
	if (trail->lock_fd >= 0)
		close(trail->lock_fd);
	if (trail->digest_lock_fd >= 0)
		close(trail->digest_lock_fd);
	if (trail->digest_dir_fd >= 0)
		close(trail->digest_dir_fd);
	if (trail->dir_fd >= 0)
		close(trail->dir_fd);
	kc_audit_key_free(trail->key);
	free(trail->dir);
	pthread_mutex_destroy(&trail->wake_lock);
	pthread_mutex_destroy(&trail->digest_lock);
	pthread_rwlock_destroy(&trail->lock);
	free(trail);
}
