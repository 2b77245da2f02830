/*
 * cmd_fsck.c - `kmsfs fsck CIPHERDIR [--repair] [--quick]`: check a volume
 * without mounting it.
 *
 * Order: the config (strict parse, authentication through the key service,
 * mode), the leftovers kmsfs may leave at the root, then every regular file
 * in two parallel passes - one reading each header's file id and a hash of
 * each user.kmsfs.dek (cheap), one checking everything (fsck_file.c) - so a
 * data key that does not open can be traced to the file its header or xattr
 * was copied from. Findings are lines on stdout and audit records; the
 * summary follows. Exit status as fsck(8): 0 clean, 1 problems corrected,
 * 4 problems left, 8 operational error (the key store or key service could
 * not be used), 16 usage; ORed together.
 *
 * When the key service refuses the volume's key (disabled, no permission)
 * nothing can be decrypted: the config and data keys are reported as not
 * checked (4) and only the structure of the files (headers, sizes, xattrs
 * present) is checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsck.h"

static const char usage[] =
	"usage: kmsfs fsck [--repair] [--quick] [--jobs N] [-v] [--progress|--no-progress]\n"
	"                  [--keystore DIR] [--passfile FILE] [--extpass CMD]\n"
	"                  [--audit-log FILE|DIR/] [--profile NAME] [--region REGION]\n"
	"                  [--ca-file FILE] CIPHERDIR\n"
	"\n"
	"Check a volume without mounting it: kmsfs.conf (parse, authentication, mode), every\n"
	"file's header and size, its user.kmsfs.dek (present, well formed, opening for this\n"
	"file), every block's authentication, and what interrupted kmsfs commands leave behind.\n"
	"One line per problem (PATH: problem) and one audit record each, then a summary.\n"
	"  --repair             do what is safe: delete leftover temp and probe files, staging\n"
	"                       files of an interrupted snapshot copy or rekey whose state file\n"
	"                       is gone, user.kmsfs.* xattrs that are not the data key; make\n"
	"                       kmsfs.conf not group/world-writable. Never touches file data.\n"
	"  --quick              check %d blocks per file (the first, the last and %d spread\n"
	"                       between) instead of all\n"
	"  -j, --jobs N         files checked at once (default: online CPUs)\n"
	"  -v, --verbose        list every file checked\n"
	"  --progress           progress line on stderr (default when stderr is a terminal)\n"
	"  --no-progress\n"
	"  --keystore DIR, --passfile FILE, --extpass CMD   the local key store, as kmsfs mount\n"
	"  --audit-log FILE|DIR/  where findings and data-key calls are recorded\n"
	"                       (default KEYSTORE/audit.log)\n"
	"  --profile NAME, --region REGION, --ca-file FILE  a remote key service, as kmsfs mount\n"
	"Exit status (fsck(8), ORed): 0 no problems, 1 problems corrected, 4 problems left,\n"
	"8 operational error (key store or key service unusable), 16 usage error.\n";

static void print_usage(FILE *out)
{
	fprintf(out, usage, FSCK_QUICK_BLOCKS, FSCK_QUICK_BLOCKS - 2);
}

static int parse_jobs(const char *value, unsigned *jobs)
{
	char *end;
	long n = strtol(value, &end, 10);

	if (!*value || *end || n < 1 || n > 1024) {
		cli_error("fsck: --jobs \"%s\": expected a number from 1 to 1024", value);
		return -1;
	}
	*jobs = (unsigned)n;
	return 0;
}

/* 0, 1 for --help (done), -1 for a usage error (printed). */
static int parse_args(struct fsck *f, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "repair", no_argument, NULL, 'r' },
		{ "quick", no_argument, NULL, 'q' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "progress", no_argument, NULL, 'g' },
		{ "no-progress", no_argument, NULL, 'G' },
		{ "keystore", required_argument, NULL, 's' },
		{ "passfile", required_argument, NULL, 'p' },
		{ "extpass", required_argument, NULL, 'e' },
		{ "audit-log", required_argument, NULL, 'a' },
		{ "profile", required_argument, NULL, 'P' },
		{ "region", required_argument, NULL, 'R' },
		{ "ca-file", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int opt;

	f->opts.jobs = cpus > 0 ? (unsigned)cpus : 1;
	f->opts.progress = isatty(STDERR_FILENO);
	while ((opt = getopt_long(argc, argv, "j:vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'r': f->opts.repair = 1; break;
		case 'q': f->opts.quick = 1; break;
		case 'j': if (parse_jobs(optarg, &f->opts.jobs) < 0) return -1; break;
		case 'v': f->opts.verbose = 1; break;
		case 'g': f->opts.progress = 1; break;
		case 'G': f->opts.progress = 0; break;
		case 's': f->svc.ks.dir = optarg; break;
		case 'p': f->svc.ks.passfile = optarg; break;
		case 'e': f->svc.ks.extpass = optarg; break;
		case 'a': f->svc.audit_log = optarg; break;
		case 'P': f->svc.remote.profile = optarg; break;
		case 'R': f->svc.remote.region = optarg; break;
		case 'C': f->svc.remote.ca_file = optarg; break;
		case 'h': print_usage(stdout); return 1;
		default: print_usage(stderr); return -1;
		}
	}
	if (optind != argc - 1) {
		print_usage(stderr);
		return -1;
	}
	f->cipherdir = argv[optind];
	return 0;
}

/* ---- the config ---------------------------------------------------------------------------- */

/* The message without the "CIPHERDIR/kmsfs.conf: " it starts with (the finding names the path). */
static const char *without_path(const char *msg)
{
	const char *p = strstr(msg, KMSFS_CONF_NAME ": ");

	return p ? p + strlen(KMSFS_CONF_NAME ": ") : msg;
}

static void config_finding(struct fsck *f, const char *event, enum kc_status status,
			   int repaired, const char *text)
{
	struct fsck_finding fd = { .path = KMSFS_CONF_NAME, .event = event, .block = -1,
				   .status = status, .repaired = repaired };

	fsck_report(f, &fd, "%s", text);
}

/* Whoever can write kmsfs.conf can only break the mount (it is authenticated): still a finding. */
static void check_config_mode(struct fsck *f)
{
	struct stat st;
	char text[200];
	int fd;

	if (fstatat(f->rootfd, KMSFS_CONF_NAME, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !(st.st_mode & (S_IWGRP | S_IWOTH)))
		return;
	snprintf(text, sizeof(text), "group- or world-writable (mode %04o)",
		 (unsigned)(st.st_mode & 07777));
	if (!f->opts.repair || !S_ISREG(st.st_mode)) {
		config_finding(f, "ConfigPermissions", KC_VALIDATION, 0, text);
		return;
	}
	fd = openat(f->rootfd, KMSFS_CONF_NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && fchmod(fd, st.st_mode & 07755) == 0) {
		snprintf(text + strlen(text), sizeof(text) - strlen(text),
			 " (now %04o)", (unsigned)(st.st_mode & 07755));
		config_finding(f, "ConfigPermissions", KC_VALIDATION, 1, text);
	} else {
		snprintf(text + strlen(text), sizeof(text) - strlen(text),
			 " (cannot change: %s)", strerror(errno));
		config_finding(f, "ConfigPermissions", KC_VALIDATION, 0, text);
	}
	if (fd >= 0)
		close(fd);
}

/*
 * kmsfs_volume_load failed with error: a config that does not authenticate
 * is a finding (the files are still checked with the values it claims); a
 * key service that refuses leaves nothing to decrypt with; anything else
 * (the service unreachable) stops the check. 0 to go on, -1 to go on
 * without keys, else an exit status.
 */
static int config_not_loaded(struct fsck *f, int error, const char *errbuf,
			     const struct kc_error *kc_err)
{
	struct fsck_finding fd = { .path = KMSFS_CONF_NAME, .block = -1,
				   .status = kc_err->status };

	if (error == -EBADMSG || error == -EINVAL) {
		fd.event = "ConfigAuthenticationFailure";
		fd.status = KC_INVALID_CIPHERTEXT;
		fsck_report(f, &fd, "%s (files are checked with the values it claims)",
			    without_path(errbuf));
		return 0;
	}
	if (error == -EACCES) {
		fd.event = "ConfigNotChecked";
		fsck_report(f, &fd, "cannot check: the key service refused the volume's key: %s; "
			    "no data key or block can be checked (only headers and sizes)",
			    without_path(errbuf));
		return -1;
	}
	cli_error("fsck: %s", errbuf);
	return FSCK_EXIT_OPERATIONAL;
}

/*
 * Parse, open the key service, authenticate. 0: go on (f->kr NULL when no
 * data key can be opened, f->have_vol 0 when not even the files' format
 * is known); else the exit status to stop with.
 */
static int check_config(struct fsck *f)
{
	struct kc_error kc_err = { 0 };
	char errbuf[600];
	struct stat st;
	int ret;

	if (fstatat(f->rootfd, KMSFS_CONF_NAME, &st, 0) < 0 && errno == ENOENT) {
		/* A snapshot copy writes the state file before the config: the walk reports it. */
		if (fstatat(f->rootfd, FSCK_SNAPSHOT_STATE, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return 0;
		cli_error("fsck: %s: no %s: not a kmsfs volume (create one with kmsfs init)",
			  f->cipherdir, KMSFS_CONF_NAME);
		return FSCK_EXIT_OPERATIONAL;
	}
	if (kmsfs_volume_peek(f->cipherdir, &f->vol, errbuf, sizeof(errbuf)) != 0) {
		/* No key service named, so no audit log either: this one is on stdout only. */
		struct fsck_finding fd = { .path = KMSFS_CONF_NAME, .event = "ConfigMalformed",
					   .block = -1, .status = KC_VALIDATION };

		fsck_report(f, &fd, "%s (files not checked: their cipher and key are in it)",
			    without_path(errbuf));
		return 0;
	}
	f->have_vol = 1;
	if (cli_service_open(&f->svc, f->vol.key_service, f->vol.key_id) != 0)
		return FSCK_EXIT_OPERATIONAL;
	check_config_mode(f);
	ret = kmsfs_volume_load(f->cipherdir, f->svc.kc, &f->svc.caller, &f->vol, errbuf,
				sizeof(errbuf), &kc_err);
	if (ret != 0) {
		ret = config_not_loaded(f, ret, errbuf, &kc_err);
		if (ret != 0)
			return ret < 0 ? 0 : ret;   /* < 0: refused, so no keyring */
	}
	f->kr = kmsfs_keyring_new(&f->vol, f->svc.kc, &f->svc.caller);
	if (!f->kr) {
		cli_error("fsck: out of memory");
		return FSCK_EXIT_OPERATIONAL;
	}
	return 0;
}

/* ---- a live mount -------------------------------------------------------------------------- */

/* A file being written through a mount reads as damaged here: say so up front. */
static void warn_if_mounted(const char *cipherdir)
{
	char real[PATH_MAX], mnt[PATH_MAX];

	if (realpath(cipherdir, real) && cli_kmsfs_mounted_at(real, mnt, sizeof(mnt)))
		fprintf(stderr, "kmsfs: fsck: warning: %s is mounted at %s: files written "
			"meanwhile may show as damaged; unmount it for a reliable check\n",
			cipherdir, mnt);
}

/* ---- the run ------------------------------------------------------------------------------- */

static void print_summary(const struct fsck *f)
{
	char bytes[32];

	fsck_human_bytes(f->plain_bytes, bytes, sizeof(bytes));
	printf("kmsfs fsck: %s: %llu file%s, %s, %llu block%s checked%s%s; ", f->cipherdir,
	       (unsigned long long)f->files_done, f->files_done == 1 ? "" : "s", bytes,
	       (unsigned long long)f->blocks_done, f->blocks_done == 1 ? "" : "s",
	       f->opts.quick ? " (--quick: a sample per file)" : "",
	       !f->kr && f->have_vol ? " (headers and sizes only)" : "");
	if (f->findings == 0)
		printf("no problems found\n");
	else
		printf("%llu problem%s found, %llu repaired\n", (unsigned long long)f->findings,
		       f->findings == 1 ? "" : "s", (unsigned long long)f->repaired);
}

static void check_files(struct fsck *f)
{
	if (f->kr) {
		fsck_run_pool(f, fsck_file_identify, 0);
		if (fsck_index_files(f) < 0) {
			cli_error("fsck: out of memory");
			f->status |= FSCK_EXIT_OPERATIONAL;
			return;
		}
	}
	fsck_run_pool(f, fsck_check_file, 1);
	if (f->kr && !f->abort)
		fsck_check_duplicates(f);
	if (f->abort) {
		cli_error("fsck: stopped: the key service is unavailable; %llu of %zu files "
			  "checked", (unsigned long long)f->files_done, f->file_count);
		f->status |= FSCK_EXIT_OPERATIONAL;
	}
}

static int run(struct fsck *f)
{
	int ret;

	f->rootfd = open(f->cipherdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->rootfd < 0) {
		cli_error("fsck: %s: %s", f->cipherdir, strerror(errno));
		return FSCK_EXIT_OPERATIONAL;
	}
	warn_if_mounted(f->cipherdir);
	ret = check_config(f);
	if (ret != 0)
		return ret | f->status;
	ret = fsck_walk(f);
	if (ret < 0) {
		cli_error("fsck: %s: cannot read: %s", f->cipherdir, strerror(-ret));
		return f->status | FSCK_EXIT_OPERATIONAL;
	}
	if (f->have_vol)
		check_files(f);
	print_summary(f);
	return f->status;
}

int cmd_fsck(int argc, char **argv)
{
	struct fsck *f = calloc(1, sizeof(*f));
	int ret;

	if (!f)
		return cli_error("fsck: out of memory") ? FSCK_EXIT_OPERATIONAL : 0;
	f->rootfd = -1;
	pthread_mutex_init(&f->out_lock, NULL);
	ret = parse_args(f, argc, argv);
	if (ret == 0)
		ret = run(f);
	else
		ret = ret > 0 ? 0 : FSCK_EXIT_USAGE;
	fflush(stdout);
	kmsfs_keyring_free(f->kr);
	cli_service_close(&f->svc);
	fsck_files_free(f);
	if (f->rootfd >= 0)
		close(f->rootfd);
	pthread_mutex_destroy(&f->out_lock);
	free(f);
	return ret;
}
