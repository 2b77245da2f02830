/*
 * cmd_audit.c - `kmsfs audit`: check and read an audit trail.
 *
 *   verify LOGDIR [--public-key FILE] [--anchor SIGNATURE] [--quiet]
 *   show LOGDIR|FILE [--principal P] [--file PATH] [--event NAME]
 *                    [--since TIME] [--until TIME] [--errors]
 *
 * verify walks the signed digest chain (keyclient/audit_verify.c) and
 * prints one line per digest and log file: "NAME: STATUS - detail". Its
 * exit status is 0 only when every digest and every digested file is
 * valid; 1 on any finding; 2 when it cannot run. The public key should be
 * one the auditor recorded, not the copy beside the logs: whoever can
 * rewrite the logs can replace that copy too.
 *
 * show prints matching records one per line, for people who would rather
 * not write jq: time, principal, event, key, file, error. It reads kmsfs
 * and kmsd trails alike, and the plain audit.log file.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "audit_trail.h"
#include "cli.h"

static const char usage[] =
	"usage: kmsfs audit verify LOGDIR [--public-key FILE] [--anchor SIGNATURE] [--quiet]\n"
	"       kmsfs audit show LOGDIR|FILE [--principal P] [--file PATH] [--event NAME]\n"
	"                        [--since TIME] [--until TIME] [--errors]\n"
	"\n"
	"verify  check the trail's signed digest chain and every log file against it; one\n"
	"        line per file: valid, modified, missing, out of order, invalid signature,\n"
	"        not in any digest, or not yet digested (written after the newest digest).\n"
	"        Exit 0 only if everything is valid.\n"
	"  --public-key FILE   the key you recorded (PEM or hex); default LOGDIR/" KC_AUDIT_PUBLIC_KEY_FILE "\n"
	"  --anchor SIGNATURE  a digest signature recorded earlier: the chain must still hold it\n"
	"  --quiet             print findings only\n"
	"show    print matching records, one line each: time principal event key file error\n"
	"  --principal P       user ARN, name, principal id or access key id (uid:N for kmsfs)\n"
	"  --file PATH         path inside the volume\n"
	"  --event NAME        eventName (Decrypt, GenerateDataKey, CreateKey, ...)\n"
	"  --since/--until T   YYYY-MM-DD[THH:MM[:SS]][Z] (UTC) or N[smhd] ago; until is exclusive\n"
	"  --errors            only records with an errorCode\n";

/* ---- verify -------------------------------------------------------------------------- */

struct verify_print {
	int quiet;
};

static void print_finding(void *arg, const char *file, enum kc_audit_status status,
		const char *detail)
{
	const struct verify_print *print = arg;

	if (print->quiet && !kc_audit_status_is_finding(status))
		return;
	printf("%s: %s%s%s\n", file, kc_audit_status_name(status), *detail ? " - " : "", detail);
}

static int run_verify(const char *dir, const char *public_key, const char *anchor, int quiet)
{
	struct kc_audit_verify_options opts = { .dir = dir, .public_key_path = public_key,
						.anchor = anchor };
	struct verify_print print = { .quiet = quiet };
	struct kc_audit_verify_counts counts;
	char err[KC_AUDIT_ERR_MAX];

	if (kc_audit_verify(&opts, print_finding, &print, &counts, err) != 0) {
		cli_error("audit verify: %s", err);
		return 2;
	}
	printf("public key fingerprint %s (%s)\n", counts.fingerprint,
	       public_key ? public_key : "the copy in the log directory: compare it with yours");
	printf("%u digest%s and %u log file%s (%llu records) valid, %u not yet digested, "
	       "%u finding%s\n", counts.digests_valid, counts.digests_valid == 1 ? "" : "s",
	       counts.files_valid, counts.files_valid == 1 ? "" : "s",
	       (unsigned long long)counts.records, counts.not_yet_digested, counts.findings,
	       counts.findings == 1 ? "" : "s");
	return counts.findings ? 1 : 0;
}

static int cmd_verify(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "public-key", required_argument, NULL, 'k' },
		{ "anchor", required_argument, NULL, 'a' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *public_key = NULL, *anchor = NULL;
	int opt, quiet = 0;

	while ((opt = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'k': public_key = optarg; break;
		case 'a': anchor = optarg; break;
		case 'q': quiet = 1; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return 2;
	}
	return run_verify(argv[optind], public_key, anchor, quiet);
}

/* ---- show: filters ------------------------------------------------------------------- */

struct show_filter {
	const char *principal, *file, *event;
	time_t since, until;         /* -1: none */
	int errors_only;
};

/* "3d", "90m": that long before now; -1 if not that form. */
static time_t relative_time(const char *text)
{
	char *end;
	long n = strtol(text, &end, 10);
	long unit = 0;

	if (end == text || n < 0 || end[0] == '\0' || end[1] != '\0')
		return -1;
	switch (*end) {
	case 's': unit = 1; break;
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	default: return -1;
	}
	return time(NULL) - (time_t)(n * unit);
}

/* YYYY-MM-DD[THH:MM[:SS]][Z] as UTC; -1 if malformed. */
static time_t absolute_time(const char *text)
{
	char full[KC_AUDIT_TIME_LEN + 8];
	size_t len = strlen(text);

	if (len && text[len - 1] == 'Z')
		len--;
	if (len == 10)
		snprintf(full, sizeof full, "%.10sT00:00:00Z", text);
	else if (len == 16)
		snprintf(full, sizeof full, "%.16s:00Z", text);
	else if (len == 19)
		snprintf(full, sizeof full, "%.19sZ", text);
	else
		return -1;
	return kc_audit_time_parse(full);
}

static int parse_time(const char *text, time_t *out)
{
	*out = relative_time(text);
	if (*out < 0)
		*out = absolute_time(text);
	if (*out < 0)
		return cli_error("time \"%s\": expected YYYY-MM-DD[THH:MM[:SS]][Z] or N[smhd]", text);
	return 0;
}

static const char *text_at(json_t *record, const char *a, const char *b)
{
	json_t *value = json_object_get(record, a);

	if (b)
		value = json_object_get(value, b);
	return json_string_value(value);
}

static int same(const char *value, const char *want)
{
	return value && !strcmp(value, want);
}

static int principal_matches(json_t *record, const char *want)
{
	static const char *const fields[] = { "arn", "principalId", "userName", "accessKeyId" };

	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
		if (same(text_at(record, "userIdentity", fields[i]), want))
			return 1;
	return 0;
}

static int record_matches(json_t *record, const struct show_filter *filter)
{
	time_t when = kc_audit_time_parse(text_at(record, "eventTime", NULL));

	if (filter->principal && !principal_matches(record, filter->principal))
		return 0;
	if (filter->file && !same(text_at(record, "additionalEventData", "path"), filter->file))
		return 0;
	if (filter->event && !same(text_at(record, "eventName", NULL), filter->event))
		return 0;
	if (filter->errors_only && !text_at(record, "errorCode", NULL))
		return 0;
	if (filter->since >= 0 && when < filter->since)
		return 0;
	return filter->until < 0 || (when >= 0 && when < filter->until);
}

/* ---- show: printing ------------------------------------------------------------------ */

static const char *or_dash(const char *text)
{
	return text && *text ? text : "-";
}

static const char *record_principal(json_t *record)
{
	const char *arn = text_at(record, "userIdentity", "arn");

	return arn ? arn : text_at(record, "userIdentity", "accessKeyId");
}

static const char *record_key(json_t *record)
{
	const char *key = text_at(record, "requestParameters", "keyId");
	json_t *resources = json_object_get(record, "resources");

	if (key)
		return key;
	return json_string_value(json_object_get(json_array_get(resources, 0), "ARN"));
}

static void print_record(json_t *record)
{
	printf("%s  %s  %s  key=%s  file=%s  error=%s\n",
	       or_dash(text_at(record, "eventTime", NULL)), or_dash(record_principal(record)),
	       or_dash(text_at(record, "eventName", NULL)), or_dash(record_key(record)),
	       or_dash(text_at(record, "additionalEventData", "path")),
	       or_dash(text_at(record, "errorCode", NULL)));
}

/* Every matching record of one file; lines that are not JSON records are counted. */
static void show_file(const char *path, const struct show_filter *filter, unsigned *bad_lines)
{
	FILE *file = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	json_t *record;

	if (!file) {
		cli_error("%s: %s", path, strerror(errno));
		(*bad_lines)++;
		return;
	}
	while (getline(&line, &cap, file) > 0) {
		if (line[0] == '\n')
			continue;
		record = json_loads(line, 0, NULL);
		if (!json_is_object(record))
			(*bad_lines)++;
		else if (record_matches(record, filter))
			print_record(record);
		json_decref(record);
	}
	free(line);
	fclose(file);
}

struct log_file {
	char name[KC_AUDIT_NAME_MAX];
	struct kc_audit_log_name parsed;
};

static int log_file_cmp(const void *a, const void *b)
{
	const struct log_file *x = a, *y = b;
	int by_prefix = strcmp(x->parsed.prefix, y->parsed.prefix);

	return by_prefix ? by_prefix : kc_audit_log_name_cmp(&x->parsed, &y->parsed);
}

/* A trail's log files in the order they were written. */
static int show_dir(const char *dir_path, const struct show_filter *filter, unsigned *bad_lines)
{
	DIR *dir = opendir(dir_path);
	struct log_file *files = NULL, *grown;
	size_t count = 0;
	struct dirent *ent;
	char path[PATH_MAX + KC_AUDIT_NAME_MAX];

	if (!dir)
		return cli_error("%s: %s", dir_path, strerror(errno));
	while ((ent = readdir(dir)) != NULL) {
		struct log_file file;
		if (kc_audit_log_name_parse(ent->d_name, &file.parsed) != 0)
			continue;
		grown = realloc(files, (count + 1) * sizeof *files);
		if (!grown)
			break;
		files = grown;
		snprintf(file.name, sizeof file.name, "%s", ent->d_name);
		files[count++] = file;
	}
	closedir(dir);
	if (files)
		qsort(files, count, sizeof *files, log_file_cmp);
	for (size_t i = 0; i < count; i++) {
		snprintf(path, sizeof path, "%s/%s", dir_path, files[i].name);
		show_file(path, filter, bad_lines);
	}
	free(files);
	return 0;
}

static int run_show(const char *path, const struct show_filter *filter)
{
	struct stat st;
	unsigned bad_lines = 0;
	int rc = 0;

	if (stat(path, &st) != 0)
		return cli_error("%s: %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		rc = show_dir(path, filter, &bad_lines);
	else
		show_file(path, filter, &bad_lines);
	if (bad_lines)
		cli_error("%u line%s that %s not a JSON record skipped", bad_lines,
			  bad_lines == 1 ? "" : "s", bad_lines == 1 ? "is" : "are");
	return rc;
}

static int cmd_show(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "principal", required_argument, NULL, 'p' },
		{ "file", required_argument, NULL, 'f' },
		{ "event", required_argument, NULL, 'e' },
		{ "since", required_argument, NULL, 's' },
		{ "until", required_argument, NULL, 'u' },
		{ "errors", no_argument, NULL, 'E' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct show_filter filter = { .since = -1, .until = -1 };
	int opt;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'p': filter.principal = optarg; break;
		case 'f': filter.file = optarg; break;
		case 'e': filter.event = optarg; break;
		case 's': if (parse_time(optarg, &filter.since)) return 2; break;
		case 'u': if (parse_time(optarg, &filter.until)) return 2; break;
		case 'E': filter.errors_only = 1; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return 2;
	}
	return run_show(argv[optind], &filter);
}

int cmd_audit(int argc, char **argv)
{
	const char *action = argc > 1 ? argv[1] : NULL;

	if (!action || !strcmp(action, "--help") || !strcmp(action, "-h")) {
		fputs(usage, action ? stdout : stderr);
		return action ? 0 : 2;
	}
	if (!strcmp(action, "verify"))
		return cmd_verify(argc - 1, argv + 1);
	if (!strcmp(action, "show"))
		return cmd_show(argc - 1, argv + 1);
	cli_error("unknown audit action \"%s\"", action);
	fputs(usage, stderr);
	return 2;
}
