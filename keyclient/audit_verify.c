/*
 * audit_verify.c - checking an audit trail (audit_trail.h) the way an
 * auditor would: every digest's signature and its link to the previous
 * one, then every log file against what the digests say of it.
 *
 * Digests are taken newest first, in name order (their names are their
 * end times). Each must be signed by the public key over its own name,
 * and name the previous digest and its signature: a digest that only
 * verifies under another name was renamed ("out of order"), a name the
 * chain points to that is not there is "missing". Log files are then
 * hashed again: a different hash is "modified", or "out of order" when
 * the file holds what a digest recorded for another file (renamed) or a
 * record from outside its digested event times (moved between files).
 * A file no valid digest names is "not yet digested" when it is newer
 * than every digested file - the writer has not sealed it yet - and a
 * finding ("not in any digest") when it is older.
 *
 * What this cannot see: a trail cut short at the end (the newest digests
 * deleted together with their files), or one rewritten and re-signed by
 * someone holding the signing key. The --anchor option (a signature
 * recorded elsewhere) closes the first, for everything up to that digest.
 */
#include "audit_trail.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#define DETAIL_MAX 512

struct digest_node {
	struct kc_audit_digest_file file;
	int readable;
	int signed_as_named;         /* the signature checks under its own name */
	int authentic;               /* ... under its own name or the one its contents give */
	enum kc_audit_status status;
	char detail[DETAIL_MAX];
	char missing_prev[KC_AUDIT_NAME_MAX];    /* the previous digest it names, not there */
};

/* One log file: on disk, named by a digest, or both. */
struct file_node {
	char name[KC_AUDIT_NAME_MAX];
	struct kc_audit_log_name parsed;
	int on_disk;
	json_t *listed;              /* its logFiles entry in an authentic digest; borrowed */
	const char *listed_by;       /* that digest's name */
	const char *listed_twice;    /* another digest naming it too */
};

struct verify_ctx {
	const struct kc_audit_verify_options *opts;
	int dir_fd, digest_dir_fd;
	uint8_t public_key[KC_AUDIT_PUBLIC_KEY_LEN];
	kc_audit_report_fn report;
	void *arg;
	struct kc_audit_verify_counts *counts;
	char **log_names;            /* every log file in dir */
	size_t log_count;
	char **digest_names;         /* every digest in dir/digests, ascending */
	size_t digest_count;
	int anchor_found;
};

struct prefix_run {
	const char *prefix;
	struct digest_node *digests; /* ascending by name */
	size_t digest_count;
	struct file_node *files;
	size_t file_count;
};

static void report(struct verify_ctx *ctx, const char *file, enum kc_audit_status status,
		const char *detail)
{
	if (kc_audit_status_is_finding(status))
		ctx->counts->findings++;
	else if (status == KC_AUDIT_NOT_YET_DIGESTED)
		ctx->counts->not_yet_digested++;
	ctx->report(ctx->arg, file, status, detail ? detail : "");
}

const char *kc_audit_status_name(enum kc_audit_status status)
{
	switch (status) {
	case KC_AUDIT_VALID: return "valid";
	case KC_AUDIT_NOT_YET_DIGESTED: return "not yet digested";
	case KC_AUDIT_MODIFIED: return "modified";
	case KC_AUDIT_MISSING: return "missing";
	case KC_AUDIT_OUT_OF_ORDER: return "out of order";
	case KC_AUDIT_INVALID_SIGNATURE: return "invalid signature";
	case KC_AUDIT_NOT_IN_DIGEST: return "not in any digest";
	default: return "chain problem";
	}
}

int kc_audit_status_is_finding(enum kc_audit_status status)
{
	return status != KC_AUDIT_VALID && status != KC_AUDIT_NOT_YET_DIGESTED;
}

/* ---- listing ------------------------------------------------------------------------ */

static int is_log_name(const char *name, void *unused)
{
	(void)unused;
	struct kc_audit_log_name parsed;

	return kc_audit_log_name_parse(name, &parsed) == 0;
}

static int is_digest_name(const char *name, void *unused)
{
	(void)unused;
	char prefix[64];
	time_t end;

	return kc_audit_digest_name_parse(name, prefix, &end) == 0;
}

/* ---- digests: signatures ---------------------------------------------------------------- */

static void check_signature(struct verify_ctx *ctx, struct digest_node *node, const char *prefix)
{
	struct kc_audit_digest_file *file = &node->file;
	char claimed[KC_AUDIT_NAME_MAX], fingerprint[KC_AUDIT_FPR_HEX];

	node->status = KC_AUDIT_INVALID_SIGNATURE;
	if (!node->readable) {
		snprintf(node->detail, sizeof node->detail, "cannot be read");
		return;
	}
	if (!file->sig[0]) {
		snprintf(node->detail, sizeof node->detail, "no signature in %s.sig", file->name);
		return;
	}
	if (kc_audit_digest_check(ctx->public_key, file->name, file->bytes, file->len,
				  file->prev_sig, file->sig) == 0) {
		node->signed_as_named = node->authentic = 1;
		node->status = KC_AUDIT_VALID;
		return;
	}
	if (file->end >= 0) {
		kc_audit_digest_name_format(prefix, file->end, claimed);
		if (strcmp(claimed, file->name) != 0 &&
		    kc_audit_digest_check(ctx->public_key, claimed, file->bytes, file->len,
					  file->prev_sig, file->sig) == 0) {
			node->authentic = 1;
			node->status = KC_AUDIT_OUT_OF_ORDER;
			snprintf(node->detail, sizeof node->detail, "renamed: it was signed as %s",
				 claimed);
			return;
		}
	}
	kc_audit_key_fingerprint(ctx->public_key, fingerprint);
	if (!file->json)
		snprintf(node->detail, sizeof node->detail, "not a digest any more (truncated or "
			 "overwritten?)");
	else if (file->fingerprint[0] && strcmp(file->fingerprint, fingerprint) != 0)
		snprintf(node->detail, sizeof node->detail, "claims key %.16s..., the public key "
			 "is %.16s...", file->fingerprint, fingerprint);
	else
		snprintf(node->detail, sizeof node->detail, "the signature does not match its "
			 "contents (edited or forged)");
}

/* ---- digests: the chain ----------------------------------------------------------------- */

static ssize_t find_digest(const struct prefix_run *run, const char *name)
{
	for (size_t i = 0; i < run->digest_count; i++)
		if (!strcmp(run->digests[i].file.name, name))
			return (ssize_t)i;
	return -1;
}

static void mark(struct digest_node *node, enum kc_audit_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void mark(struct digest_node *node, enum kc_audit_status status, const char *fmt, ...)
{
	va_list ap;

	if (node->status != KC_AUDIT_VALID)
		return;              /* the first thing found about a digest is what it is */
	node->status = status;
	va_start(ap, fmt);
	vsnprintf(node->detail, sizeof node->detail, fmt, ap);
	va_end(ap);
}

/* later names earlier as its previous digest: do signature and times agree? */
static void check_link(struct digest_node *later, struct digest_node *earlier)
{
	char at[KC_AUDIT_TIME_LEN], ends[KC_AUDIT_TIME_LEN];

	if (!earlier->authentic)
		return;              /* already reported */
	if (strcmp(later->file.prev_sig, earlier->file.sig) != 0) {
		mark(earlier, KC_AUDIT_OUT_OF_ORDER, "not the digest %s chained to (its "
		     "signature differs)", later->file.name);
		return;
	}
	if (later->file.start != earlier->file.end) {
		kc_audit_time_format(later->file.start, at);
		kc_audit_time_format(earlier->file.end, ends);
		mark(later, KC_AUDIT_OUT_OF_ORDER, "starts at %s, but the previous digest ends "
		     "at %s", at, ends);
	}
}

/* Walk from later (index i) to the digest it names; mark what lies between. */
static void follow_link(struct prefix_run *run, size_t i)
{
	struct digest_node *later = &run->digests[i];
	const char *prev = later->file.prev_name;
	ssize_t j;

	if (!prev) {
		for (size_t k = 0; k < i; k++)
			mark(&run->digests[k], KC_AUDIT_OUT_OF_ORDER, "older than %s, which starts "
			     "the chain", later->file.name);
		return;
	}
	j = find_digest(run, prev);
	if (j < 0) {
		snprintf(later->missing_prev, sizeof later->missing_prev, "%s", prev);
		return;
	}
	if ((size_t)j >= i) {
		mark(later, KC_AUDIT_OUT_OF_ORDER, "names a later digest, %s, as its previous",
		     prev);
		return;
	}
	for (size_t k = (size_t)j + 1; k < i; k++)
		mark(&run->digests[k], KC_AUDIT_OUT_OF_ORDER, "not in the chain: %s names %s as "
		     "its previous digest", later->file.name, prev);
	check_link(later, &run->digests[j]);
}

static void walk_chain(struct prefix_run *run)
{
	for (size_t i = run->digest_count; i-- > 0;) {
		if (run->digests[i].signed_as_named)
			follow_link(run, i);
	}
}

static void report_digests(struct verify_ctx *ctx, struct prefix_run *run)
{
	char shown[KC_AUDIT_NAME_MAX + 16], detail[DETAIL_MAX];

	for (size_t i = run->digest_count; i-- > 0;) {
		struct digest_node *node = &run->digests[i];
		snprintf(shown, sizeof shown, "%s/%s", KC_AUDIT_DIGEST_DIR, node->file.name);
		report(ctx, shown, node->status, node->detail);
		if (node->status == KC_AUDIT_VALID)
			ctx->counts->digests_valid++;
		if (node->authentic && ctx->opts->anchor && !strcmp(node->file.sig, ctx->opts->anchor))
			ctx->anchor_found = 1;
		if (!node->missing_prev[0])
			continue;
		snprintf(shown, sizeof shown, "%s/%s", KC_AUDIT_DIGEST_DIR, node->missing_prev);
		snprintf(detail, sizeof detail, "named as the previous digest by %s", node->file.name);
		report(ctx, shown, KC_AUDIT_MISSING, detail);
	}
}

/* ---- log files ------------------------------------------------------------------------ */

static struct file_node *find_file(struct prefix_run *run, const char *name)
{
	for (size_t i = 0; i < run->file_count; i++)
		if (!strcmp(run->files[i].name, name))
			return &run->files[i];
	return NULL;
}

static struct file_node *add_file(struct prefix_run *run, const char *name)
{
	struct file_node *found = find_file(run, name), *grown;
	struct kc_audit_log_name parsed;

	if (found)
		return found;
	if (kc_audit_log_name_parse(name, &parsed) != 0 || strcmp(parsed.prefix, run->prefix) != 0)
		return NULL;
	grown = realloc(run->files, (run->file_count + 1) * sizeof *grown);
	if (!grown)
		return NULL;
	run->files = grown;
	found = &run->files[run->file_count++];
	memset(found, 0, sizeof *found);
	snprintf(found->name, sizeof found->name, "%s", name);
	found->parsed = parsed;
	return found;
}

/* Every file an authentic digest names, and every file of this prefix on disk. */
static void gather_files(struct verify_ctx *ctx, struct prefix_run *run)
{
	for (size_t i = 0; i < run->digest_count; i++) {
		struct digest_node *node = &run->digests[i];
		json_t *entry;
		size_t k;
		if (!node->authentic)
			continue;
		json_array_foreach(json_object_get(node->file.json, "logFiles"), k, entry) {
			const char *name = json_string_value(json_object_get(entry, "fileName"));
			struct file_node *file = name ? add_file(run, name) : NULL;
			if (!file)
				continue;
			if (file->listed)
				file->listed_twice = node->file.name;
			else {
				file->listed = entry;
				file->listed_by = node->file.name;
			}
		}
	}
	for (size_t i = 0; i < ctx->log_count; i++) {
		struct file_node *file = add_file(run, ctx->log_names[i]);
		if (file)
			file->on_disk = 1;
	}
}

static const char *listed_text(const struct file_node *file, const char *field)
{
	const char *text = json_string_value(json_object_get(file->listed, field));

	return text ? text : "";
}

/* Another listed file whose digested hash is hash, or NULL. */
static const struct file_node *same_hash(const struct prefix_run *run,
		const struct file_node *self, const char *hash)
{
	for (size_t i = 0; i < run->file_count; i++) {
		const struct file_node *other = &run->files[i];
		if (other != self && other->listed && !strcmp(listed_text(other, "hashValue"), hash))
			return other;
	}
	return NULL;
}

/* A listed file whose bytes differ: renamed, a record moved in, or modified. */
static enum kc_audit_status classify_change(const struct prefix_run *run,
		const struct file_node *file, const struct kc_audit_file_summary *now,
		char detail[DETAIL_MAX])
{
	const char *oldest = listed_text(file, "oldestEventTime");
	const char *newest = listed_text(file, "newestEventTime");
	const struct file_node *other = now->records ? same_hash(run, file, now->hash) : NULL;
	json_int_t digested = json_integer_value(json_object_get(file->listed, "recordCount"));

	if (other) {
		snprintf(detail, DETAIL_MAX, "holds the records %s digested as %s (renamed?)",
			 other->listed_by, other->name);
		return KC_AUDIT_OUT_OF_ORDER;
	}
	if ((now->oldest[0] && (!oldest[0] || strcmp(now->oldest, oldest) < 0)) ||
	    (now->newest[0] && (!newest[0] || strcmp(now->newest, newest) > 0))) {
		snprintf(detail, DETAIL_MAX, "holds a record from %s..%s, outside its digested "
			 "event times %s..%s (moved from another file?)", now->oldest, now->newest,
			 oldest[0] ? oldest : "-", newest[0] ? newest : "-");
		return KC_AUDIT_OUT_OF_ORDER;
	}
	snprintf(detail, DETAIL_MAX, "SHA-256 differs from %s's; %llu records, %lld digested",
		 file->listed_by, (unsigned long long)now->records, (long long)digested);
	return KC_AUDIT_MODIFIED;
}

static enum kc_audit_status check_listed(struct verify_ctx *ctx, const struct prefix_run *run,
		const struct file_node *file, char detail[DETAIL_MAX])
{
	struct kc_audit_file_summary now;

	if (file->listed_twice) {
		snprintf(detail, DETAIL_MAX, "named by both %s and %s", file->listed_by,
			 file->listed_twice);
		return KC_AUDIT_OUT_OF_ORDER;
	}
	if (!file->on_disk) {
		snprintf(detail, DETAIL_MAX, "named by %s", file->listed_by);
		return KC_AUDIT_MISSING;
	}
	if (kc_audit_file_summarize(ctx->dir_fd, file->name, &now) != 0) {
		snprintf(detail, DETAIL_MAX, "cannot be read: %s", strerror(errno));
		return KC_AUDIT_MODIFIED;
	}
	if (strcmp(now.hash, listed_text(file, "hashValue")) != 0)
		return classify_change(run, file, &now, detail);
	ctx->counts->files_valid++;
	ctx->counts->records += now.records;
	snprintf(detail, DETAIL_MAX, "%llu records, in %s", (unsigned long long)now.records,
		 file->listed_by);
	return KC_AUDIT_VALID;
}

static int file_cmp(const void *a, const void *b)
{
	return kc_audit_log_name_cmp(&((const struct file_node *)a)->parsed,
				     &((const struct file_node *)b)->parsed);
}

static void report_files(struct verify_ctx *ctx, struct prefix_run *run)
{
	char detail[DETAIL_MAX];
	const struct kc_audit_log_name *high_water = NULL;
	enum kc_audit_status status;

	if (run->file_count)
		qsort(run->files, run->file_count, sizeof *run->files, file_cmp);
	for (size_t i = 0; i < run->file_count; i++)
		if (run->files[i].listed)
			high_water = &run->files[i].parsed;
	for (size_t i = 0; i < run->file_count; i++) {
		struct file_node *file = &run->files[i];
		if (file->listed) {
			status = check_listed(ctx, run, file, detail);
		} else if (high_water && kc_audit_log_name_cmp(&file->parsed, high_water) < 0) {
			status = KC_AUDIT_NOT_IN_DIGEST;
			snprintf(detail, sizeof detail, "older than digested files, yet no valid "
				 "digest names it");
		} else {
			status = KC_AUDIT_NOT_YET_DIGESTED;
			snprintf(detail, sizeof detail, "written after the newest digest");
		}
		report(ctx, file->name, status, detail);
	}
}

/* ---- one prefix, the whole directory ---------------------------------------------------- */

static void load_digests(struct verify_ctx *ctx, struct prefix_run *run)
{
	char prefix[64];
	time_t end;

	run->digests = calloc(ctx->digest_count ? ctx->digest_count : 1, sizeof *run->digests);
	if (!run->digests)
		return;
	for (size_t i = 0; i < ctx->digest_count; i++) {
		struct digest_node *node = &run->digests[run->digest_count];
		if (kc_audit_digest_name_parse(ctx->digest_names[i], prefix, &end) != 0 ||
		    strcmp(prefix, run->prefix) != 0)
			continue;
		node->readable = kc_audit_digest_read(ctx->digest_dir_fd, ctx->digest_names[i],
						      &node->file) == 0;
		check_signature(ctx, node, run->prefix);
		run->digest_count++;
	}
}

static void verify_prefix(struct verify_ctx *ctx, const char *prefix)
{
	struct prefix_run run = { .prefix = prefix };

	load_digests(ctx, &run);
	walk_chain(&run);
	report_digests(ctx, &run);
	gather_files(ctx, &run);
	report_files(ctx, &run);
	for (size_t i = 0; i < run.digest_count; i++)
		kc_audit_digest_release(&run.digests[i].file);
	free(run.digests);
	free(run.files);
}

/* Is prefix among those already verified (the names before index)? */
static int seen_prefix(char **names, size_t index, const char *prefix,
		int (*prefix_of)(const char *, char[64]))
{
	char other[64];

	for (size_t i = 0; i < index; i++)
		if (prefix_of(names[i], other) == 0 && !strcmp(other, prefix))
			return 1;
	return 0;
}

static int digest_prefix(const char *name, char prefix[64])
{
	time_t end;

	return kc_audit_digest_name_parse(name, prefix, &end);
}

static int log_prefix(const char *name, char prefix[64])
{
	struct kc_audit_log_name parsed;

	if (kc_audit_log_name_parse(name, &parsed) != 0)
		return -1;
	memcpy(prefix, parsed.prefix, 64);
	return 0;
}

/* Every prefix with digests, then those with only log files. */
static void verify_all(struct verify_ctx *ctx)
{
	char prefix[64];

	for (size_t i = 0; i < ctx->digest_count; i++)
		if (digest_prefix(ctx->digest_names[i], prefix) == 0 &&
		    !seen_prefix(ctx->digest_names, i, prefix, digest_prefix))
			verify_prefix(ctx, prefix);
	for (size_t i = 0; i < ctx->log_count; i++)
		if (log_prefix(ctx->log_names[i], prefix) == 0 &&
		    !seen_prefix(ctx->log_names, i, prefix, log_prefix) &&
		    !seen_prefix(ctx->digest_names, ctx->digest_count, prefix, digest_prefix))
			verify_prefix(ctx, prefix);
}

static int open_dirs(struct verify_ctx *ctx, char err[KC_AUDIT_ERR_MAX])
{
	const char *dir = ctx->opts->dir;
	char key_path[4096];

	ctx->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ctx->dir_fd < 0) {
		snprintf(err, KC_AUDIT_ERR_MAX, "%s: %s", dir, strerror(errno));
		return -1;
	}
	ctx->digest_dir_fd = openat(ctx->dir_fd, KC_AUDIT_DIGEST_DIR,
				    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ctx->opts->public_key_path)
		snprintf(key_path, sizeof key_path, "%s", ctx->opts->public_key_path);
	else
		snprintf(key_path, sizeof key_path, "%s/%s", dir, KC_AUDIT_PUBLIC_KEY_FILE);
	if (kc_audit_public_key_read(key_path, ctx->public_key, err) != 0)
		return -1;
	kc_audit_key_fingerprint(ctx->public_key, ctx->counts->fingerprint);
	if (kc_audit_list_names(ctx->dir_fd, is_log_name, NULL, 0, &ctx->log_names, &ctx->log_count) != 0) {
		snprintf(err, KC_AUDIT_ERR_MAX, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (ctx->digest_dir_fd >= 0)
		kc_audit_list_names(ctx->digest_dir_fd, is_digest_name, NULL, 0, &ctx->digest_names,
			   &ctx->digest_count);
	return 0;
}

/* Findings about the trail as a whole: no digests at all, an anchor not found. */
static void check_whole(struct verify_ctx *ctx)
{
	char detail[DETAIL_MAX];

	if (ctx->digest_count == 0)
		report(ctx, KC_AUDIT_DIGEST_DIR, KC_AUDIT_CHAIN_PROBLEM,
		       "no digests: nothing here can be verified");
	if (ctx->opts->anchor && !ctx->anchor_found) {
		snprintf(detail, sizeof detail, "no authentic digest has the anchor signature "
			 "%.16s...: digests were deleted, or the chain was re-signed",
			 ctx->opts->anchor);
		report(ctx, KC_AUDIT_DIGEST_DIR, KC_AUDIT_CHAIN_PROBLEM, detail);
	}
}

int kc_audit_verify(const struct kc_audit_verify_options *opts, kc_audit_report_fn report_fn,
		void *arg, struct kc_audit_verify_counts *counts, char err[KC_AUDIT_ERR_MAX])
{
	struct verify_ctx ctx = { .opts = opts, .report = report_fn, .arg = arg,
				  .counts = counts, .dir_fd = -1, .digest_dir_fd = -1 };
	int rc = -1;

	memset(counts, 0, sizeof *counts);
	if (open_dirs(&ctx, err) != 0)
		goto out;
	verify_all(&ctx);
	check_whole(&ctx);
	rc = 0;
out:
	kc_audit_free_names(ctx.log_names, ctx.log_count);
	kc_audit_free_names(ctx.digest_names, ctx.digest_count);
	if (ctx.digest_dir_fd >= 0)
		close(ctx.digest_dir_fd);
	if (ctx.dir_fd >= 0)
		close(ctx.dir_fd);
	return rc;
}
