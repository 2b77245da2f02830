/*
 * cmd_rekey.c - `kmsfs rekey CIPHERDIR --key NEW_KEY [--reencrypt]`: move a
 * volume to another KMS key in place, without mounting it.
 *
 * Order of work, so that a crash anywhere leaves a volume that mounts and
 * a re-run that finishes: refuse a mounted volume; authenticate kmsfs.conf
 * under the old key and check the new key exists and is enabled (nothing
 * is changed before this); lock and read the state file; move every file
 * (rekey_file.c: one atomic step each, workers in parallel); only when all
 * succeeded, sync the filesystem and rewrite kmsfs.conf under the new key
 * (atomic), then remove the state file and staging directory. Until then
 * kmsfs.conf names the old key, and each file's data key names its own
 * key, so the volume mounts with both keys enabled at every moment.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rekey.h"

static const char usage[] =
	"usage: kmsfs rekey CIPHERDIR --key NEW_KEY [--reencrypt] [--jobs N] [--[no-]progress]\n"
	"                   [--keystore DIR] [--passfile FILE] [--extpass CMD]\n"
	"                   [--profile NAME] [--region REGION] [--ca-file FILE]\n"
	"                   [--audit-log FILE|DIR/]\n"
	"\n"
	"Move an unmounted volume to another KMS key in place. By default each file's data key\n"
	"is rewrapped under NEW_KEY through ReEncrypt (contents untouched; no plaintext data key\n"
	"in this process). Then kmsfs.conf is rewritten under NEW_KEY. Each file is one atomic\n"
	"step: after a crash or failure, run the same command again to finish.\n"
	"  --key NEW_KEY        key id, key ARN, alias/NAME or alias ARN (required)\n"
	"  --reencrypt          also replace every data key and file id: each file is decrypted\n"
	"                       and sealed again under a fresh data key (when an old one may be\n"
	"                       exposed), then renamed over the original\n"
	"  --jobs N             files worked on in parallel (default: online CPUs)\n"
	"  --progress           files, bytes, rate and ETA on stderr (default on a terminal)\n"
	"  --no-progress        no progress line\n"
	"  --keystore DIR       local key store (default $XDG_DATA_HOME/kmsfs)\n"
	"  --passfile FILE      key store passphrase from FILE\n"
	"  --extpass CMD        key store passphrase from CMD's output\n"
	"  --profile NAME       AWS profile, for a volume on a remote key service\n"
	"  --region REGION      the remote key service's region\n"
	"  --ca-file FILE       trust this PEM CA bundle for the key service's TLS\n"
	"  --audit-log FILE|DIR/  audit log or trail (default KEYSTORE/audit.log)\n"
	"The volume must not be mounted. Exit status 0 when every file moved, 1 otherwise.\n";

struct rekey_cli {
	struct cli_service svc;
	const char *key;
	int reencrypt;
	long jobs;
	int progress;                /* -1: on a terminal */
	char cipherdir[PATH_MAX];
};

static int parse_jobs(const char *text, long *jobs)
{
	char *end;
	long n = strtol(text, &end, 10);

	if (!*text || *end || n < 1 || n > 256)
		return cli_error("rekey: --jobs \"%s\": expected a number from 1 to 256", text);
	*jobs = n;
	return 0;
}

static int parse_args(struct rekey_cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "reencrypt", no_argument, NULL, 'r' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "progress", no_argument, NULL, 'g' },
		{ "no-progress", no_argument, NULL, 'G' },
		{ "keystore", required_argument, NULL, 's' },
		{ "passfile", required_argument, NULL, 'p' },
		{ "extpass", required_argument, NULL, 'e' },
		{ "profile", required_argument, NULL, 'P' },
		{ "region", required_argument, NULL, 'R' },
		{ "ca-file", required_argument, NULL, 'C' },
		{ "audit-log", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int opt;

	c->progress = -1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'k': c->key = optarg; break;
		case 'r': c->reencrypt = 1; break;
		case 'j': if (parse_jobs(optarg, &c->jobs)) return 1; break;
		case 'g': c->progress = 1; break;
		case 'G': c->progress = 0; break;
		case 's': c->svc.ks.dir = optarg; break;
		case 'p': c->svc.ks.passfile = optarg; break;
		case 'e': c->svc.ks.extpass = optarg; break;
		case 'P': c->svc.remote.profile = optarg; break;
		case 'R': c->svc.remote.region = optarg; break;
		case 'C': c->svc.remote.ca_file = optarg; break;
		case 'a': c->svc.audit_log = optarg; break;
		case 'h': fputs(usage, stdout); exit(0);
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind != argc - 1 || !c->key) {
		if (!c->key && optind == argc - 1)
			cli_error("rekey: --key NEW_KEY is required");
		fputs(usage, stderr);
		return 2;
	}
	if (!realpath(argv[optind], c->cipherdir))
		return cli_error("rekey: %s: %s", argv[optind], strerror(errno));
	if (!c->jobs)
		c->jobs = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
	if (c->progress < 0)
		c->progress = isatty(STDERR_FILENO);
	return 0;
}

/* ---- what else is using the volume ------------------------------------------------------ */

static int snapshot_unfinished(const char *cipherdir)
{
	char path[PATH_MAX + sizeof(REKEY_SNAPSHOT_STATE) + 1];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", cipherdir, REKEY_SNAPSHOT_STATE);
	return lstat(path, &sb) == 0;
}

/* ---- the new key ----------------------------------------------------------------------- */

/* DescribeKey: the key's ARN, if it exists and may wrap keys now. Audited like kmsfs key. */
static int resolve_key(struct cli_service *svc, const char *key, char arn[KC_ARN_MAX])
{
	struct kc_error err = { 0 };
	struct kc_key_info info;
	enum kc_status status;
	struct kc_audit_event ev = { .event_source = "kms.amazonaws.com",
				     .event_name = "DescribeKey", .caller = &svc->caller,
				     .key_id = key, .block_index = -1 };

	memset(&info, 0, sizeof(info));
	status = svc->kc->ops->describe_key(svc->kc, key, &svc->caller, &info, &err);
	ev.err = status == KC_OK ? NULL : &err;
	ev.key_arn = status == KC_OK ? info.arn : NULL;
	if (svc->audit)
		kc_audit_record(svc->audit, &ev);
	if (status != KC_OK)
		return cli_error("rekey: %s: %s (%s); the volume is unchanged", key, err.message,
				 err.type);
	if (info.state != KC_KEY_ENABLED)
		return cli_error("rekey: %s: key %s is %s; enable it or choose another; the volume "
				 "is unchanged (%s)", key, info.arn, kc_key_state_name(info.state),
				 kc_status_type(info.state == KC_KEY_DISABLED ? KC_DISABLED :
						KC_INVALID_STATE));
	snprintf(arn, KC_ARN_MAX, "%s", info.arn);
	return 0;
}

/* ---- output ------------------------------------------------------------------------------ */

void rekey_report(struct rekey *rk, const char *path, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&rk->out_lock);
	if (rk->progress_shown)
		fputs("\r\033[K", stderr);
	rk->progress_shown = 0;
	fprintf(stderr, "kmsfs: rekey: %s: ", path);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&rk->out_lock);
}

static void human_bytes(uint64_t n, char *out, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double value = (double)n;
	int unit = 0;

	while (value >= 1024 && unit < 4) {
		value /= 1024;
		unit++;
	}
	snprintf(out, len, unit ? "%.1f %s" : "%.0f %s", value, units[unit]);
}

static double seconds_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* One line, redrawn in place: files, bytes, rate, ETA. */
static void show_progress(struct rekey *rk, size_t workers, const struct timespec *start)
{
	uint64_t bytes = __atomic_load_n(&rk->bytes_done, __ATOMIC_RELAXED);
	uint64_t files = __atomic_load_n(&rk->finished, __ATOMIC_RELAXED);
	double elapsed = seconds_since(start), rate;
	char done_text[32], total_text[32], rate_text[32], eta[32] = "-";

	for (size_t i = 0; i < workers; i++)
		bytes += __atomic_load_n(&rk->worker_bytes[i], __ATOMIC_RELAXED);
	if (bytes > rk->tree.total_bytes)
		bytes = rk->tree.total_bytes;
	rate = elapsed > 0 ? (double)bytes / elapsed : 0;
	if (rate > 0) {
		unsigned long left = (unsigned long)((double)(rk->tree.total_bytes - bytes) / rate);

		snprintf(eta, sizeof(eta), "%lu:%02lu", left / 60, left % 60);
	}
	human_bytes(bytes, done_text, sizeof(done_text));
	human_bytes(rk->tree.total_bytes, total_text, sizeof(total_text));
	human_bytes((uint64_t)rate, rate_text, sizeof(rate_text));
	pthread_mutex_lock(&rk->out_lock);
	fprintf(stderr, "\r\033[Krekey: %llu/%zu files, %s/%s, %s/s, ETA %s",
		(unsigned long long)files, rk->tree.count, done_text, total_text, rate_text, eta);
	fflush(stderr);
	rk->progress_shown = 1;
	pthread_mutex_unlock(&rk->out_lock);
}

/* ---- workers ---------------------------------------------------------------------------- */

struct worker {
	struct rekey *rk;
	size_t index;
	pthread_t thread;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct rekey *rk = w->rk;
	size_t job;

	while ((job = __atomic_fetch_add(&rk->next_job, 1, __ATOMIC_RELAXED)) < rk->tree.count) {
		struct rekey_file *f = &rk->tree.files[job];
		enum rekey_outcome outcome = rekey_file(rk, f, &rk->worker_bytes[w->index]);
		uint64_t *counter = outcome == REKEY_DONE ? &rk->done :
				    outcome == REKEY_SKIPPED ? &rk->skipped : &rk->failed;

		__atomic_store_n(&rk->worker_bytes[w->index], 0, __ATOMIC_RELAXED);
		__atomic_add_fetch(&rk->bytes_done, f->plain_size, __ATOMIC_RELAXED);
		__atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&rk->finished, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static int run_workers(struct rekey *rk, size_t count, int progress)
{
	struct worker *workers = calloc(count, sizeof(*workers));
	struct timespec start, tick = { 0, 100 * 1000 * 1000 };
	size_t started = 0;
	double shown = 0;

	rk->worker_bytes = calloc(count, sizeof(*rk->worker_bytes));
	if (!workers || !rk->worker_bytes) {
		free(workers);
		return cli_error("rekey: out of memory");
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (; started < count; started++) {
		workers[started] = (struct worker){ .rk = rk, .index = started };
		if (pthread_create(&workers[started].thread, NULL, worker_main, &workers[started]))
			break;
	}
	if (!started)
		worker_main(&(struct worker){ .rk = rk, .index = 0 });
	while (__atomic_load_n(&rk->finished, __ATOMIC_ACQUIRE) < rk->tree.count) {
		nanosleep(&tick, NULL);
		if (progress && seconds_since(&start) - shown >= 0.5) {
			shown = seconds_since(&start);
			show_progress(rk, count, &start);
		}
	}
	for (size_t i = 0; i < started; i++)
		pthread_join(workers[i].thread, NULL);
	if (progress) {
		show_progress(rk, count, &start);
		fputc('\n', stderr);
	}
	free(workers);
	return 0;
}

/* ---- the run ------------------------------------------------------------------------------- */

/* Every file moved: make it durable, then the config, then clean up. */
static int finish(struct rekey *rk, struct cli_service *svc)
{
	struct kmsfs_volume rekeyed;
	char errbuf[512];

	if (syncfs(rk->root_fd) < 0)
		return cli_error("rekey: %s: syncfs: %s", rk->cipherdir, strerror(errno));
	if (strcmp(rk->vol.key_id, rk->new_vol.key_id) &&
	    kmsfs_volume_rekey(rk->cipherdir, &rk->vol, rk->new_vol.key_id, svc->kc, &svc->caller,
			       &rekeyed, errbuf, sizeof(errbuf)) != 0)
		return cli_error("rekey: %s", errbuf);
	if (rekey_staging_remove(rk->root_fd, rk->stage_fd, rk->cipherdir) != 0) {
		rk->stage_fd = -1;
		return 1;
	}
	rk->stage_fd = -1;
	if (rekey_state_finish(&rk->state, rk->root_fd, rk->cipherdir) != 0)
		return 1;
	rekey_tree_restore_dir_times(&rk->tree, rk->root_fd);
	return 0;
}

static void print_summary(const struct rekey *rk, const struct timespec *start, int ok)
{
	printf("rekey %s: %llu files %s, %llu skipped, %llu failed, %.1f s%s%s\n", rk->cipherdir,
	       (unsigned long long)rk->done, rk->reencrypt ? "re-encrypted" : "rewrapped",
	       (unsigned long long)rk->skipped, (unsigned long long)rk->failed,
	       seconds_since(start), ok ? "; kmsfs.conf now names " : "",
	       ok ? rk->new_vol.key_id : "");
	fflush(stdout);
	if (rk->plaintext_keys)
		fprintf(stderr, "kmsfs: rekey: %llu data keys had to be unwrapped in this process "
			"to be wrapped again (no ReEncrypt path for them)\n",
			(unsigned long long)rk->plaintext_keys);
	if (rk->failed)
		fprintf(stderr, "kmsfs: rekey: %s: %llu files failed; kmsfs.conf still names %s. "
			"Fix them and run the same command again to finish.\n", rk->cipherdir,
			(unsigned long long)rk->failed, rk->vol.key_id);
}

/* The volume root's times before this run touched it (state file, staging directory). */
static void keep_root_times(struct rekey *rk, const struct stat *root)
{
	for (size_t i = 0; i < rk->tree.dir_count; i++) {
		if (!rk->tree.dirs[i].path[0]) {
			rk->tree.dirs[i].times[0] = root->st_atim;
			rk->tree.dirs[i].times[1] = root->st_mtim;
		}
	}
}

/* Workers, then the config and the cleanup when every file made it. */
static int rekey_volume(struct rekey *rk, struct rekey_cli *c, const struct stat *root,
			const struct timespec *start)
{
	size_t workers = (size_t)c->jobs;
	int ret;

	if (rekey_walk(rk->root_fd, rk->cipherdir, rk->vol.cipher,
		       rk->state.resumed ? &rk->state : NULL, &rk->tree) != 0)
		return 1;
	if (!rk->state.resumed)
		keep_root_times(rk, root);
	if (workers > rk->tree.count)
		workers = rk->tree.count ? rk->tree.count : 1;
	rk->old_kr = kmsfs_keyring_new(&rk->vol, c->svc.kc, &c->svc.caller);
	rk->new_kr = kmsfs_keyring_new(&rk->new_vol, c->svc.kc, &c->svc.caller);
	if (!rk->old_kr || !rk->new_kr)
		return cli_error("rekey: out of memory");
	if (run_workers(rk, workers, c->progress) != 0)
		return 1;
	ret = rk->failed ? 1 : finish(rk, &c->svc);
	print_summary(rk, start, ret == 0);
	return ret;
}

static int run(struct rekey *rk, struct rekey_cli *c)
{
	char mountpoint[PATH_MAX], new_arn[KC_ARN_MAX];
	struct timespec start;
	struct stat root;
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &start);
	if (cli_kmsfs_mounted_at(c->cipherdir, mountpoint, sizeof(mountpoint)))
		return cli_error("rekey: %s: mounted at %s; unmount it first (kmsfs umount %s)",
				 c->cipherdir, mountpoint, mountpoint);
	if (snapshot_unfinished(c->cipherdir))
		return cli_error("rekey: %s: an interrupted kmsfs snapshot copy into this volume "
				 "(%s); finish it first", c->cipherdir, REKEY_SNAPSHOT_STATE);
	if (cli_service_open_volume(&c->svc, c->cipherdir, &rk->vol) != 0)
		return 1;
	if (resolve_key(&c->svc, c->key, new_arn) != 0)
		return 1;
	rk->new_vol = rk->vol;
	snprintf(rk->new_vol.key_id, sizeof(rk->new_vol.key_id), "%s", new_arn);
	rk->root_fd = open(c->cipherdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rk->root_fd < 0 || fstat(rk->root_fd, &root) < 0)
		return cli_error("rekey: %s: %s", c->cipherdir, strerror(errno));
	if (rekey_state_open(&rk->state, rk->root_fd, c->cipherdir, new_arn, c->reencrypt) != 0)
		return 1;
	/* Also in rewrap mode: it may hold what a superseded --reencrypt left. */
	rk->stage_fd = rekey_staging_open(rk->root_fd, c->cipherdir);
	if (rk->stage_fd < 0) {
		rekey_state_close(&rk->state);
		return 1;
	}
	ret = rekey_volume(rk, c, &root, &start);
	/* Still holding the lock: the next run's staging directory is not ours to touch. */
	if (rk->stage_fd >= 0)
		rekey_staging_remove(rk->root_fd, rk->stage_fd, rk->cipherdir);
	rk->stage_fd = -1;
	if (rk->state.fd >= 0)
		rekey_state_close(&rk->state);
	return ret;
}

int cmd_rekey(int argc, char **argv)
{
	struct rekey_cli *c = calloc(1, sizeof(*c));
	struct rekey *rk = calloc(1, sizeof(*rk));
	int ret;

	if (!c || !rk) {
		free(c);
		free(rk);
		return cli_error("out of memory");
	}
	ret = parse_args(c, argc, argv);
	if (ret == 0) {
		rk->cipherdir = c->cipherdir;
		rk->reencrypt = c->reencrypt;
		rk->root_fd = rk->stage_fd = rk->state.fd = -1;
		pthread_mutex_init(&rk->out_lock, NULL);
		ret = run(rk, c);
		kmsfs_keyring_free(rk->old_kr);
		kmsfs_keyring_free(rk->new_kr);
		rekey_tree_free(&rk->tree);
		free(rk->worker_bytes);
		if (rk->root_fd >= 0)
			close(rk->root_fd);
		pthread_mutex_destroy(&rk->out_lock);
	}
	cli_service_close(&c->svc);
	free(rk);
	free(c);
	return ret;
}
