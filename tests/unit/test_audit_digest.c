/*
 * test_audit_digest.c - the audit trail's digests and their verifier
 * (keyclient/audit_digest.c, audit_rotate.c, audit_verify.c): names,
 * file summaries, the signing key and public key, signatures; a trail
 * written over several one-second periods that verifies clean, and
 * copies of it tampered with one way each - an edited, deleted or
 * swapped line, a deleted or renamed log file, a record moved between
 * files, a deleted, truncated, renamed or forged digest - each reported
 * as what it is, and nothing else reported.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "audit_trail.h"
#include "crypto.h"

static int failures;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, __func__, #cond); \
		failures++; \
	} \
} while (0)

#define MAX_RESULTS 128
#define PATH_LEN 4096

static char scratch[] = "/tmp/test_audit_digest.XXXXXX";

/* ---- helpers ------------------------------------------------------------------------ */

static const char *path_in(char out[PATH_LEN], const char *dir, const char *name)
{
	if (snprintf(out, PATH_LEN, "%s/%s", dir, name) >= PATH_LEN)
		CHECK(!"path too long");
	return out;
}

static void write_text(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	CHECK(f != NULL);
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

/* The whole file, malloc'ed, NUL-terminated. */
static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = calloc(1, 1 << 20);
	size_t got = 0;

	if (f && text)
		got = fread(text, 1, (1 << 20) - 1, f);
	if (f)
		fclose(f);
	if (text)
		text[got] = '\0';
	return text;
}

static void run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void run(const char *fmt, ...)
{
	char cmd[3 * PATH_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	CHECK(system(cmd) == 0);
}

/* Wait for the wall clock's next second (and a little more). */
static void next_second(void)
{
	time_t now = time(NULL);

	while (time(NULL) == now)
		usleep(10000);
	usleep(150000);
}

/* Sorted names in dir that are log files (want_logs) or digests. */
static size_t list(const char *dir, int want_logs, char names[][KC_AUDIT_NAME_MAX], size_t max)
{
	DIR *d = opendir(dir);
	struct dirent *ent;
	struct kc_audit_log_name parsed;
	char prefix[64];
	time_t end;
	size_t count = 0;

	if (!d)
		return 0;
	while ((ent = readdir(d)) && count < max) {
		int is_log = kc_audit_log_name_parse(ent->d_name, &parsed) == 0;
		int is_digest = kc_audit_digest_name_parse(ent->d_name, prefix, &end) == 0;
		if ((want_logs && is_log) || (!want_logs && is_digest))
			snprintf(names[count++], KC_AUDIT_NAME_MAX, "%s", ent->d_name);
	}
	closedir(d);
	qsort(names, count, KC_AUDIT_NAME_MAX, (int (*)(const void *, const void *))strcmp);
	return count;
}

/* ---- verify results ------------------------------------------------------------------ */

struct results {
	size_t count;
	struct { char file[KC_AUDIT_NAME_MAX + 16]; enum kc_audit_status status; } items[MAX_RESULTS];
	struct kc_audit_verify_counts counts;
	int rc;
};

static void collect(void *arg, const char *file, enum kc_audit_status status, const char *detail)
{
	struct results *res = arg;

	if (getenv("TEST_AUDIT_VERBOSE"))
		fprintf(stderr, "  %s: %s - %s\n", file, kc_audit_status_name(status), detail);
	if (res->count < MAX_RESULTS) {
		snprintf(res->items[res->count].file, sizeof res->items[0].file, "%s", file);
		res->items[res->count++].status = status;
	}
}

static void verify(const char *dir, const char *public_key, const char *anchor, struct results *res)
{
	struct kc_audit_verify_options opts = { .dir = dir, .public_key_path = public_key,
						.anchor = anchor };
	char err[KC_AUDIT_ERR_MAX];

	memset(res, 0, sizeof *res);
	res->rc = kc_audit_verify(&opts, collect, res, &res->counts, err);
	if (res->rc != 0)
		fprintf(stderr, "verify %s: %s\n", dir, err);
}

/* The status reported for file (a log name or "digests/NAME"); -1 if not reported. */
static int status_of(const struct results *res, const char *file)
{
	for (size_t i = 0; i < res->count; i++)
		if (!strcmp(res->items[i].file, file))
			return (int)res->items[i].status;
	return -1;
}

static int digest_status(const struct results *res, const char *name)
{
	char file[KC_AUDIT_NAME_MAX + 16];

	snprintf(file, sizeof file, "%s/%s", KC_AUDIT_DIGEST_DIR, name);
	return status_of(res, file);
}

/* ---- names, times, summaries ------------------------------------------------------------ */

static void test_names(void)
{
	struct kc_audit_log_name parsed;
	char name[KC_AUDIT_NAME_MAX], prefix[64];
	time_t day = 1714521600, end;            /* 2024-05-01T00:00:00Z */

	kc_audit_log_name_format("kmsd", day, KC_AUDIT_DAY, 1, name);
	CHECK(!strcmp(name, "kmsd-20240501.jsonl"));
	CHECK(kc_audit_log_name_parse(name, &parsed) == 0 && parsed.start == day && parsed.seq == 1 &&
	      !strcmp(parsed.prefix, "kmsd"));
	kc_audit_log_name_format("kmsfs", day + 62, 2, 3, name);
	CHECK(!strcmp(name, "kmsfs-20240501T000102Z.3.jsonl"));
	CHECK(kc_audit_log_name_parse(name, &parsed) == 0 && parsed.start == day + 62 &&
	      parsed.seq == 3);
	CHECK(kc_audit_log_name_parse("kmsd-2024050.jsonl", &parsed) != 0);
	CHECK(kc_audit_log_name_parse("kmsd-20240501.json", &parsed) != 0);
	CHECK(kc_audit_log_name_parse("kmsd-20240501.1.jsonl", &parsed) != 0);
	CHECK(kc_audit_log_name_parse("kmsd-digest-20240501T000000Z.json", &parsed) != 0);
	CHECK(kc_audit_log_name_parse("-20240501.jsonl", &parsed) != 0);
	kc_audit_digest_name_format("kmsd", day + 86400, name);
	CHECK(!strcmp(name, "kmsd-digest-20240502T000000Z.json"));
	CHECK(kc_audit_digest_name_parse(name, prefix, &end) == 0 && end == day + 86400 &&
	      !strcmp(prefix, "kmsd"));
	CHECK(kc_audit_digest_name_parse("kmsd-digest-20240502.json", prefix, &end) != 0);
	CHECK(kc_audit_digest_name_parse("kmsd-20240502T000000Z.json", prefix, &end) != 0);
}

static void test_times(void)
{
	char text[KC_AUDIT_TIME_LEN];

	kc_audit_time_format(1714521600 + 3661, text);
	CHECK(!strcmp(text, "2024-05-01T01:01:01Z"));
	CHECK(kc_audit_time_parse(text) == 1714521600 + 3661);
	CHECK(kc_audit_time_parse("2024-05-01T01:01:01") < 0);
	CHECK(kc_audit_time_parse("2024-13-01T01:01:01Z") < 0);
	CHECK(kc_audit_time_parse(NULL) < 0);
}

static void test_summary(void)
{
	static const char text[] =
		"{\"eventVersion\":\"1.08\",\"eventTime\":\"2024-05-01T10:00:00Z\",\"n\":1}\n"
		"\n"
		"{\"eventTime\":\"2024-05-01T09:00:00Z\",\"x\":{\"eventTime\":\"1999\"}}\n"
		"{\"eventTime\":\"2024-05-01T11:30:00Z\"}\n"
		"torn line without a time";
	struct kc_audit_file_summary sum;
	uint8_t hash[crypto_hash_sha256_BYTES];
	char hex[KC_AUDIT_HASH_HEX], path[PATH_LEN];
	int dir_fd = open(scratch, O_RDONLY | O_DIRECTORY);

	write_text(path_in(path, scratch, "summary.jsonl"), text, 0600);
	crypto_hash_sha256(hash, (const uint8_t *)text, strlen(text));
	sodium_bin2hex(hex, sizeof hex, hash, sizeof hash);
	CHECK(kc_audit_file_summarize(dir_fd, "summary.jsonl", &sum) == 0);
	CHECK(!strcmp(sum.hash, hex));
	CHECK(sum.records == 4);                 /* the empty line is not a record */
	CHECK(!strcmp(sum.oldest, "2024-05-01T09:00:00Z"));
	CHECK(!strcmp(sum.newest, "2024-05-01T11:30:00Z"));
	CHECK(kc_audit_file_summarize(dir_fd, "no-such-file.jsonl", &sum) != 0);
	close(dir_fd);
}

/* ---- keys and signatures ---------------------------------------------------------------- */

static void test_keys(void)
{
	char key_path[PATH_LEN], pem_path[PATH_LEN], hex_path[PATH_LEN], err[KC_AUDIT_ERR_MAX];
	char fpr1[KC_AUDIT_FPR_HEX], fpr2[KC_AUDIT_FPR_HEX], hex[80];
	uint8_t pk[KC_AUDIT_PUBLIC_KEY_LEN];
	struct kc_audit_key *key, *again;
	struct stat st;
	int dir_fd = open(scratch, O_RDONLY | O_DIRECTORY);

	path_in(key_path, scratch, "keys/signing.key");
	key = kc_audit_key_load(key_path, err);
	CHECK(key != NULL);
	if (!key)
		return;
	CHECK(stat(key_path, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 32);
	again = kc_audit_key_load(key_path, err);
	CHECK(again && !memcmp(kc_audit_key_public(key), kc_audit_key_public(again), 32));
	kc_audit_key_free(again);

	/* published as PEM, read back as PEM or hex */
	CHECK(kc_audit_public_key_publish(dir_fd, kc_audit_key_public(key), err) == 0);
	CHECK(kc_audit_public_key_read(path_in(pem_path, scratch, KC_AUDIT_PUBLIC_KEY_FILE), pk,
				       err) == 0 && !memcmp(pk, kc_audit_key_public(key), 32));
	sodium_bin2hex(hex, sizeof hex, kc_audit_key_public(key), 32);
	strcat(hex, "\n");
	write_text(path_in(hex_path, scratch, "key.hex"), hex, 0644);
	memset(pk, 0, sizeof pk);
	CHECK(kc_audit_public_key_read(hex_path, pk, err) == 0 &&
	      !memcmp(pk, kc_audit_key_public(key), 32));
	write_text(hex_path, "not a key\n", 0644);
	CHECK(kc_audit_public_key_read(hex_path, pk, err) != 0);
	kc_audit_key_fingerprint(kc_audit_key_public(key), fpr1);
	kc_audit_key_fingerprint(pk, fpr2);
	CHECK(strlen(fpr1) == 64);

	/* a signature covers the name, the bytes and the previous signature */
	{
		char sig[KC_AUDIT_SIG_HEX], prev[KC_AUDIT_SIG_HEX];
		const uint8_t *pub = kc_audit_key_public(key);
		CHECK(kc_audit_digest_sign(key, "a.json", "{}", 2, "", prev) == 0);
		CHECK(kc_audit_digest_sign(key, "b.json", "{\"x\":1}", 7, prev, sig) == 0);
		CHECK(kc_audit_digest_check(pub, "b.json", "{\"x\":1}", 7, prev, sig) == 0);
		CHECK(kc_audit_digest_check(pub, "c.json", "{\"x\":1}", 7, prev, sig) != 0);
		CHECK(kc_audit_digest_check(pub, "b.json", "{\"x\":2}", 7, prev, sig) != 0);
		CHECK(kc_audit_digest_check(pub, "b.json", "{\"x\":1}", 7, "", sig) != 0);
		CHECK(kc_audit_digest_check(pub, "b.json", "{\"x\":1}", 7, prev, "00") != 0);
	}

	/* a key others can read is refused */
	chmod(key_path, 0640);
	again = kc_audit_key_load(key_path, err);
	CHECK(again == NULL && strstr(err, "mode 640"));
	kc_audit_key_free(again);
	kc_audit_key_free(key);
	close(dir_fd);
}

/* ---- a trail ------------------------------------------------------------------------------ */

static struct kc_audit_trail *open_trail(const char *dir, const char *key_path)
{
	struct kc_audit_trail_options opts = { .dir = dir, .prefix = "kmsd", .key_path = key_path,
					       .period = 1 };
	char err[KC_AUDIT_ERR_MAX];
	struct kc_audit_trail *trail = kc_audit_trail_open(&opts, err);

	if (!trail)
		fprintf(stderr, "open trail %s: %s\n", dir, err);
	CHECK(trail != NULL);
	return trail;
}

static void append(struct kc_audit_trail *trail, const char *event, int n)
{
	char line[256], now[KC_AUDIT_TIME_LEN], err[KC_AUDIT_ERR_MAX];

	kc_audit_time_format(time(NULL), now);
	snprintf(line, sizeof line, "{\"eventVersion\":\"1.08\",\"eventTime\":\"%s\","
		 "\"eventName\":\"%s\",\"n\":%d}\n", now, event, n);
	CHECK(kc_audit_trail_append(trail, line, strlen(line), err) == 0);
}

/*
 * The pristine trail: records in three one-second periods (1, 2 and 2
 * records), each period's file sealed and digested at its end, the last
 * at close.
 */
static void write_trail(const char *dir, const char *key_path)
{
	struct kc_audit_trail *trail = open_trail(dir, key_path);

	if (!trail)
		return;
	next_second();
	append(trail, "Decrypt", 1);
	next_second();
	append(trail, "Encrypt", 2);
	append(trail, "Decrypt", 3);
	next_second();
	append(trail, "GenerateDataKey", 4);
	append(trail, "Decrypt", 5);
	kc_audit_trail_close(trail);
}

struct trail_files {
	char logs[8][KC_AUDIT_NAME_MAX];
	size_t log_count;
	char digests[16][KC_AUDIT_NAME_MAX];
	size_t digest_count;
	char digests_with_files[8][KC_AUDIT_NAME_MAX];   /* in order */
	size_t with_files;
};

static void read_layout(const char *dir, struct trail_files *tf)
{
	char digest_dir[PATH_LEN], path[PATH_LEN];

	tf->log_count = list(dir, 1, tf->logs, 8);
	tf->digest_count = list(path_in(digest_dir, dir, KC_AUDIT_DIGEST_DIR), 0, tf->digests, 16);
	tf->with_files = 0;
	for (size_t i = 0; i < tf->digest_count; i++) {
		char *text = read_text(path_in(path, digest_dir, tf->digests[i]));
		if (text && strstr(text, "\"fileName\"") && tf->with_files < 8)
			snprintf(tf->digests_with_files[tf->with_files++], KC_AUDIT_NAME_MAX, "%s",
				 tf->digests[i]);
		free(text);
	}
}

/* A fresh copy of the pristine trail to tamper with. */
static void copy_trail(const char *from, const char *name, char out[PATH_LEN])
{
	path_in(out, scratch, name);
	run("cp -a %s %s", from, out);
}

/* Only file's status is a finding, and it is want. */
static void expect_only(const struct results *res, const char *file, enum kc_audit_status want)
{
	CHECK(res->rc == 0);
	CHECK(status_of(res, file) == (int)want);
	CHECK(res->counts.findings == 1);
	if (status_of(res, file) != (int)want || res->counts.findings != 1)
		fprintf(stderr, "  (for %s: got %d, want %d; %u findings)\n", file,
			status_of(res, file), (int)want, res->counts.findings);
}

static void test_pristine(const char *dir, const struct trail_files *tf)
{
	struct results res;
	struct stat st;
	char path[PATH_LEN];

	CHECK(tf->log_count == 3);
	CHECK(tf->with_files == 3);
	CHECK(tf->digest_count >= 3);
	verify(dir, NULL, NULL, &res);
	CHECK(res.rc == 0 && res.counts.findings == 0);
	CHECK(res.counts.files_valid == 3 && res.counts.records == 5);
	CHECK(res.counts.digests_valid == tf->digest_count);
	for (size_t i = 0; i < tf->log_count; i++) {
		CHECK(status_of(&res, tf->logs[i]) == KC_AUDIT_VALID);
		/* sealed: never written again */
		CHECK(stat(path_in(path, dir, tf->logs[i]), &st) == 0 && (st.st_mode & 0777) == 0400);
	}
}

/* Replace the first occurrence of from by to (same length) in dir/name. */
static void edit_file(const char *dir, const char *name, const char *from, const char *to)
{
	char path[PATH_LEN], *text, *at;

	path_in(path, dir, name);
	text = read_text(path);
	at = text ? strstr(text, from) : NULL;
	CHECK(at != NULL);
	if (at) {
		memcpy(at, to, strlen(to));
		write_text(path, text, 0400);
	}
	free(text);
}

/* Lines of dir/name rewritten: op 'd' drops line index a, 's' swaps a and b, 'k' keeps. */
static void rewrite_lines(const char *dir, const char *name, char op, int a, int b,
		const char *extra_line)
{
	char path[PATH_LEN], *text, *lines[16], *save = NULL, out[1 << 14] = "";
	int count = 0;

	path_in(path, dir, name);
	text = read_text(path);
	for (char *l = strtok_r(text, "\n", &save); l && count < 16; l = strtok_r(NULL, "\n", &save))
		lines[count++] = l;
	if (op == 's' && a < count && b < count) {
		char *t = lines[a];
		lines[a] = lines[b];
		lines[b] = t;
	}
	for (int i = 0; i < count; i++) {
		if (op == 'd' && i == a)
			continue;
		strcat(out, lines[i]);
		strcat(out, "\n");
	}
	if (extra_line) {
		strcat(out, extra_line);
		strcat(out, "\n");
	}
	write_text(path, out, 0400);
	free(text);
}

/* The last line of dir/name, malloc'ed without its newline. */
static char *last_line(const char *dir, const char *name)
{
	char path[PATH_LEN], *text = read_text(path_in(path, dir, name)), *end, *start, *copy;

	end = text + strlen(text) - 1;           /* the final '\n' */
	start = end;
	while (start > text && start[-1] != '\n')
		start--;
	copy = strndup(start, (size_t)(end - start));
	free(text);
	return copy;
}

static void test_log_tampering(const char *pristine, const struct trail_files *tf)
{
	char dir[PATH_LEN], a[PATH_LEN], b[PATH_LEN], *moved;
	struct results res;

	copy_trail(pristine, "edited", dir);
	edit_file(dir, tf->logs[1], "Encrypt", "Encrypx");
	verify(dir, NULL, NULL, &res);
	expect_only(&res, tf->logs[1], KC_AUDIT_MODIFIED);

	copy_trail(pristine, "line-deleted", dir);
	rewrite_lines(dir, tf->logs[2], 'd', 0, 0, NULL);
	verify(dir, NULL, NULL, &res);
	expect_only(&res, tf->logs[2], KC_AUDIT_MODIFIED);

	copy_trail(pristine, "lines-swapped", dir);
	rewrite_lines(dir, tf->logs[1], 's', 0, 1, NULL);
	verify(dir, NULL, NULL, &res);
	expect_only(&res, tf->logs[1], KC_AUDIT_MODIFIED);

	copy_trail(pristine, "file-deleted", dir);
	CHECK(unlink(path_in(a, dir, tf->logs[0])) == 0);
	verify(dir, NULL, NULL, &res);
	expect_only(&res, tf->logs[0], KC_AUDIT_MISSING);

	copy_trail(pristine, "files-renamed", dir);
	path_in(a, dir, tf->logs[0]);
	path_in(b, dir, tf->logs[1]);
	run("mv %s %s.tmp", a, a);
	run("mv %s %s", b, a);
	run("mv %s.tmp %s", a, b);
	verify(dir, NULL, NULL, &res);
	CHECK(status_of(&res, tf->logs[0]) == KC_AUDIT_OUT_OF_ORDER);
	CHECK(status_of(&res, tf->logs[1]) == KC_AUDIT_OUT_OF_ORDER);
	CHECK(res.counts.findings == 2);

	/* the last record of the second file appended to the third */
	copy_trail(pristine, "record-moved", dir);
	moved = last_line(dir, tf->logs[1]);
	rewrite_lines(dir, tf->logs[1], 'd', 1, 0, NULL);
	rewrite_lines(dir, tf->logs[2], 'k', 0, 0, moved);
	free(moved);
	verify(dir, NULL, NULL, &res);
	CHECK(status_of(&res, tf->logs[2]) == KC_AUDIT_OUT_OF_ORDER);
	CHECK(status_of(&res, tf->logs[1]) == KC_AUDIT_MODIFIED);
	CHECK(res.counts.findings == 2);

	/* a file slipped in among the digested ones; one written after the last digest */
	copy_trail(pristine, "extra-files", dir);
	write_text(path_in(a, dir, "kmsd-20000101T000000Z.jsonl"), "{}\n", 0600);
	write_text(path_in(b, dir, "kmsd-29990101T000000Z.jsonl"), "{}\n", 0600);
	verify(dir, NULL, NULL, &res);
	expect_only(&res, "kmsd-20000101T000000Z.jsonl", KC_AUDIT_NOT_IN_DIGEST);
	CHECK(status_of(&res, "kmsd-29990101T000000Z.jsonl") == KC_AUDIT_NOT_YET_DIGESTED);
	CHECK(res.counts.not_yet_digested == 1);
}

static void test_digest_tampering(const char *pristine, const struct trail_files *tf)
{
	char dir[PATH_LEN], a[PATH_LEN], b[PATH_LEN], digest_dir[PATH_LEN];
	const char *middle = tf->digests_with_files[1], *first = tf->digests_with_files[0];
	struct results res;

	copy_trail(pristine, "digest-deleted", dir);
	path_in(digest_dir, dir, KC_AUDIT_DIGEST_DIR);
	run("rm %s %s.sig", path_in(a, digest_dir, middle), path_in(b, digest_dir, middle));
	verify(dir, NULL, NULL, &res);
	CHECK(digest_status(&res, middle) == KC_AUDIT_MISSING);
	CHECK(status_of(&res, tf->logs[1]) == KC_AUDIT_NOT_IN_DIGEST);   /* it was its digest */
	CHECK(res.counts.findings == 2);

	copy_trail(pristine, "digest-truncated", dir);
	path_in(digest_dir, dir, KC_AUDIT_DIGEST_DIR);
	CHECK(truncate(path_in(a, digest_dir, middle), 100) == 0);
	verify(dir, NULL, NULL, &res);
	CHECK(digest_status(&res, middle) == KC_AUDIT_INVALID_SIGNATURE);
	CHECK(status_of(&res, tf->logs[1]) == KC_AUDIT_NOT_IN_DIGEST);
	CHECK(res.counts.findings == 2);

	/* two digests swap names (with their signatures) */
	copy_trail(pristine, "digests-renamed", dir);
	path_in(digest_dir, dir, KC_AUDIT_DIGEST_DIR);
	path_in(a, digest_dir, first);
	path_in(b, digest_dir, middle);
	run("mv %s %s.tmp", a, a);
	run("mv %s %s", b, a);
	run("mv %s.tmp %s", a, b);
	run("mv %s.sig %s.sig.tmp", a, a);
	run("mv %s.sig %s.sig", b, a);
	run("mv %s.sig.tmp %s.sig", a, b);
	verify(dir, NULL, NULL, &res);
	CHECK(digest_status(&res, first) == KC_AUDIT_OUT_OF_ORDER);
	CHECK(digest_status(&res, middle) == KC_AUDIT_OUT_OF_ORDER);
	CHECK(res.counts.findings >= 2);
	CHECK(status_of(&res, tf->logs[0]) == KC_AUDIT_VALID);   /* renamed digests still vouch */
}

/* A digest rewritten to cover an edited file and signed with a key of the forger's own. */
static void test_forgery(const char *pristine, const struct trail_files *tf)
{
	char dir[PATH_LEN], path[PATH_LEN], digest_dir[PATH_LEN], err[KC_AUDIT_ERR_MAX];
	char real_key[PATH_LEN], forger_key[PATH_LEN], *text, *at, sig[KC_AUDIT_SIG_HEX + 1];
	const char *victim = tf->digests_with_files[1];
	struct kc_audit_file_summary sum;
	struct kc_audit_digest_file old;
	struct kc_audit_key *forger;
	struct results res;
	int dir_fd, digest_fd;

	copy_trail(pristine, "forged", dir);
	path_in(digest_dir, dir, KC_AUDIT_DIGEST_DIR);
	path_in(real_key, scratch, "real-public-key.pem");
	run("cp %s/" KC_AUDIT_PUBLIC_KEY_FILE " %s", dir, real_key);
	edit_file(dir, tf->logs[1], "Encrypt", "Encrypx");
	dir_fd = open(dir, O_RDONLY | O_DIRECTORY);
	digest_fd = open(digest_dir, O_RDONLY | O_DIRECTORY);
	CHECK(kc_audit_file_summarize(dir_fd, tf->logs[1], &sum) == 0);
	CHECK(kc_audit_digest_read(digest_fd, victim, &old) == 0);
	text = strdup(old.bytes);
	at = strstr(text, "\"hashValue\": \"");
	CHECK(at != NULL);
	if (at)
		memcpy(at + 14, sum.hash, 64);
	write_text(path_in(path, digest_dir, victim), text, 0644);
	forger = kc_audit_key_load(path_in(forger_key, scratch, "forger/key"), err);
	CHECK(forger && kc_audit_digest_sign(forger, victim, text, strlen(text), old.prev_sig,
					     sig) == 0);
	strcat(sig, "\n");
	write_text(path_in(path, digest_dir, victim), text, 0644);
	path_in(path, digest_dir, victim);
	strcat(path, ".sig");
	write_text(path, sig, 0644);

	/* with the real key: the forged digest's signature is invalid */
	verify(dir, NULL, NULL, &res);
	CHECK(digest_status(&res, victim) == KC_AUDIT_INVALID_SIGNATURE);
	CHECK(res.counts.findings >= 1);
	/* the forger replaces the published key too: now the true digests are the odd ones
	 * out, and the key the auditor recorded still catches the forgery */
	CHECK(forger && kc_audit_public_key_publish(dir_fd, kc_audit_key_public(forger), err) == 0);
	verify(dir, NULL, NULL, &res);
	CHECK(digest_status(&res, victim) == KC_AUDIT_VALID);
	CHECK(digest_status(&res, tf->digests_with_files[0]) == KC_AUDIT_INVALID_SIGNATURE);
	verify(dir, real_key, NULL, &res);
	CHECK(digest_status(&res, victim) == KC_AUDIT_INVALID_SIGNATURE);
	CHECK(res.counts.findings >= 1);
	kc_audit_key_free(forger);
	kc_audit_digest_release(&old);
	free(text);
	close(dir_fd);
	close(digest_fd);
}

/* The newest digest deleted with its file: only an anchor recorded elsewhere tells. */
static void test_anchor(const char *pristine, const struct trail_files *tf)
{
	char dir[PATH_LEN], path[PATH_LEN], digest_dir[PATH_LEN], anchor[KC_AUDIT_SIG_HEX];
	const char *newest = tf->digests[tf->digest_count - 1];
	struct kc_audit_digest_file digest;
	struct results res;
	int digest_fd;

	copy_trail(pristine, "cut-short", dir);
	path_in(digest_dir, dir, KC_AUDIT_DIGEST_DIR);
	digest_fd = open(digest_dir, O_RDONLY | O_DIRECTORY);
	CHECK(kc_audit_digest_read(digest_fd, newest, &digest) == 0);
	snprintf(anchor, sizeof anchor, "%s", digest.sig);
	kc_audit_digest_release(&digest);
	close(digest_fd);
	verify(dir, NULL, anchor, &res);
	CHECK(res.rc == 0 && res.counts.findings == 0);

	for (size_t i = 0; i < tf->digest_count; i++)
		if (strcmp(tf->digests[i], tf->digests_with_files[2]) >= 0) {
			run("rm %s/%s", digest_dir, tf->digests[i]);
			run("rm %s/%s.sig", digest_dir, tf->digests[i]);
		}
	run("rm %s", path_in(path, dir, tf->logs[2]));
	verify(dir, NULL, NULL, &res);
	CHECK(res.rc == 0 && res.counts.findings == 0);          /* the limitation */
	verify(dir, NULL, anchor, &res);
	CHECK(status_of(&res, KC_AUDIT_DIGEST_DIR) == KC_AUDIT_CHAIN_PROBLEM);
	CHECK(res.counts.findings == 1);
}

/*
 * A second open of the trail in the same period after a clean close goes
 * on in PREFIX-STAMP.2.jsonl (the first is sealed); an append-only opener
 * (no key, like kmsfs key) writes into the digester's current file, and
 * the digester's close digests it.
 */
static void test_reopen_and_appenders(const char *key_path)
{
	char dir[PATH_LEN], logs[8][KC_AUDIT_NAME_MAX];
	struct kc_audit_trail_options opts = { .prefix = "kmsd", .period = KC_AUDIT_PERIOD_MAX };
	struct kc_audit_trail *digester, *appender;
	char err[KC_AUDIT_ERR_MAX];
	struct results res;
	size_t count;

	path_in(dir, scratch, "reopen");
	opts.dir = dir;
	opts.key_path = key_path;
	digester = kc_audit_trail_open(&opts, err);
	CHECK(digester != NULL);
	if (!digester)
		return;
	append(digester, "Decrypt", 1);
	kc_audit_trail_close(digester);

	digester = kc_audit_trail_open(&opts, err);
	opts.key_path = NULL;
	appender = kc_audit_trail_open(&opts, err);
	CHECK(digester && appender);
	if (!digester || !appender)
		return;
	append(digester, "Decrypt", 2);
	append(appender, "CreateKey", 3);
	count = list(dir, 1, logs, 8);
	/* "kmsd-STAMP.2.jsonl" sorts before "kmsd-STAMP.jsonl" */
	CHECK(count == 2 && strstr(logs[0], ".2.jsonl") && !strstr(logs[1], ".2.jsonl"));
	kc_audit_trail_close(appender);
	kc_audit_trail_close(digester);
	verify(dir, NULL, NULL, &res);
	CHECK(res.rc == 0 && res.counts.findings == 0 && res.counts.files_valid == 2 &&
	      res.counts.records == 3);
}

/* A mount pointed at a kmsd's directory fails at open (within seconds), never hangs. */
static void test_single_writer_excludes_others(void)
{
	char dir[PATH_LEN], err[KC_AUDIT_ERR_MAX];
	struct kc_audit_trail_options kmsd = { .prefix = "kmsd", .period = 60, .single_process = 1 };
	struct kc_audit_trail_options mount = { .prefix = "kmsfs", .period = 60 };
	struct kc_audit_trail *held, *other;
	time_t started;

	kmsd.dir = mount.dir = path_in(dir, scratch, "held");
	held = kc_audit_trail_open(&kmsd, err);
	CHECK(held != NULL);
	started = time(NULL);
	other = kc_audit_trail_open(&mount, err);
	CHECK(other == NULL && strstr(err, "held by another process"));
	CHECK(time(NULL) - started <= 10);
	other = kc_audit_trail_open(&kmsd, err);
	CHECK(other == NULL && strstr(err, "in use by another process"));
	kc_audit_trail_close(held);
	other = kc_audit_trail_open(&mount, err);
	CHECK(other != NULL);
	kc_audit_trail_close(other);
}

int main(void)
{
	char pristine[PATH_LEN], key_path[PATH_LEN];
	struct trail_files tf;

	if (kmsfs_crypto_init() != 0 || !mkdtemp(scratch)) {
		fprintf(stderr, "test_audit_digest: cannot initialise\n");
		return 1;
	}
	test_names();
	test_times();
	test_summary();
	test_keys();

	path_in(key_path, scratch, "keystore/audit-digest.key");
	write_trail(path_in(pristine, scratch, "pristine"), key_path);
	read_layout(pristine, &tf);
	test_pristine(pristine, &tf);
	if (tf.log_count == 3 && tf.with_files == 3) {
		test_log_tampering(pristine, &tf);
		test_digest_tampering(pristine, &tf);
		test_forgery(pristine, &tf);
		test_anchor(pristine, &tf);
	}
	test_reopen_and_appenders(key_path);
	test_single_writer_excludes_others();

	if (!getenv("TEST_AUDIT_KEEP"))
		run("rm -rf %s", scratch);
	if (failures) {
		fprintf(stderr, "test_audit_digest: %d check(s) failed\n", failures);
		return 1;
	}
	printf("test_audit_digest: all checks passed\n");
	return 0;
}
