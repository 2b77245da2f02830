/*
 * cmd_mount.c - `kmsfs mount` and `kmsfs umount`.
 *
 * Everything that can fail for a reason the user must see (passphrase,
 * key store, config authentication, the mount itself) happens before the
 * command returns. Without -f the work runs in a child that detaches once
 * the mount is live; the parent waits for that and exits with the child's
 * verdict. Secrets are only ever created in the child, so they stay in
 * locked memory (mlock is not inherited across fork).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit_trail.h"
#include "cli.h"
#include "fs.h"

static const char usage[] =
	"usage: kmsfs mount [-f] [-o OPTS] [--keystore DIR] [--passfile FILE] [--extpass CMD]\n"
	"                   [--audit-log FILE|DIR/] [--key-cache-ttl SECONDS] CIPHERDIR MOUNTPOINT\n"
	"\n"
	"Mount the volume in CIPHERDIR at MOUNTPOINT; returns once mounted.\n"
	"  -f                   stay in the foreground\n"
	"  -o OPTS              FUSE options (allow_other, default_permissions, ro, ...) and\n"
	"                       keystore=DIR, passfile=FILE, audit_log=FILE|DIR/, key_cache_ttl=N,\n"
	"                       audit_digest_period=N, no_writeback_cache (as used by fstab /\n"
	"                       mount -t fuse.kmsfs)\n"
	"  --keystore DIR       local key store (default $XDG_DATA_HOME/kmsfs)\n"
	"  --passfile FILE      key store passphrase from FILE\n"
	"  --extpass CMD        key store passphrase from CMD's output\n"
	"  --audit-log FILE     CloudTrail-format audit log (default KEYSTORE/audit.log)\n"
	"  --audit-log DIR/     an audit trail instead: kmsfs-YYYYMMDD.jsonl files in DIR,\n"
	"                       sealed by signed digests (check with kmsfs audit verify DIR)\n"
	"  --audit-digest-period N  seconds per trail file and digest (default 86400)\n"
	"  --key-cache-ttl N    seconds an unwrapped data key is reused for the same user\n"
	"                       without asking the key service (default 60; 0 = always ask).\n"
	"                       This is how long disabling a key can take to deny opens.\n"
	"A volume made with kmsfs init --key-service URL uses that remote key service:\n"
	"  --profile NAME       AWS profile for the mounting user (default: environment\n"
	"                       keys, AWS_PROFILE, default)\n"
	"  --map-uid UID=PROFILE  the key service sees uid UID as that profile (repeatable);\n"
	"                       any other uid is unsigned: EACCES on reading or creating files\n"
	"  --principals FILE    an INI file with UID = PROFILE lines under [principals]\n"
	"  --ca-file FILE       trust this PEM CA bundle for the key service's TLS\n"
	"  --key-service-timeout MS  limit per key-service request (default 5000); after\n"
	"                       the retries an open fails with EIO\n"
	"  (-o profile=, map_uid=UID:PROFILE, principals=, ca_file=, key_service_timeout=)\n"
	"Unmount with: kmsfs umount MOUNTPOINT  (or fusermount3 -u MOUNTPOINT)\n";

#define MAX_FUSE_ARGS 64

struct mount_cli {
	struct cli_service svc;        /* key store or remote service, and the audit log */
	const char *principals_file;
	struct kmsfs_mount_opts opts;
	char fuse_opts[4096];          /* comma-joined options for FUSE */
	char *fuse_argv[MAX_FUSE_ARGS];
	int allow_other, default_permissions;
	char cipherdir[PATH_MAX], mountpoint[PATH_MAX];
};

/* Options mount(8) knows and FUSE does not; fstab lines carry them. */
static int is_mount8_only(const char *opt)
{
	static const char *const names[] = { "defaults", "auto", "noauto", "nofail", "_netdev",
					     "user", "users", "nouser", "owner", "group", NULL };

	for (int i = 0; names[i]; i++)
		if (!strcmp(opt, names[i]))
			return 1;
	return !strncmp(opt, "x-", 2) || !strncmp(opt, "comment=", 8);
}

static int add_fuse_opt(struct mount_cli *m, const char *opt)
{
	size_t used = strlen(m->fuse_opts);

	if (used + strlen(opt) + 2 > sizeof(m->fuse_opts))
		return cli_error("too many mount options");
	if (used)
		strcat(m->fuse_opts, ",");
	strcat(m->fuse_opts, opt);
	return 0;
}

static int parse_ttl(const char *value, int *ttl)
{
	char *end;
	long n = strtol(value, &end, 10);

	if (!*value || *end || n < 0 || n > 86400)
		return cli_error("key cache ttl \"%s\": expected seconds from 0 to 86400", value);
	*ttl = (int)n;
	return 0;
}

static int parse_digest_period(const char *value, unsigned *period)
{
	char *end;
	long n = strtol(value, &end, 10);

	if (!*value || *end || n < 1 || n > (long)KC_AUDIT_PERIOD_MAX)
		return cli_error("audit digest period \"%s\": expected seconds from 1 to %u", value,
				 KC_AUDIT_PERIOD_MAX);
	*period = (unsigned)n;
	return 0;
}

static int parse_timeout(const char *value, long *ms)
{
	char *end;
	long n = strtol(value, &end, 10);

	if (!*value || *end || n < 100 || n > 600000)
		return cli_error("key service timeout \"%s\": expected milliseconds from 100 to "
				 "600000", value);
	*ms = n;
	return 0;
}

/* Split one -o argument: ours are consumed, FUSE's are passed on. */
static int parse_o(struct mount_cli *m, char *list)
{
	char *save = NULL;

	for (char *opt = strtok_r(list, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		if (!strncmp(opt, "keystore=", 9))
			m->svc.ks.dir = opt + 9;
		else if (!strncmp(opt, "passfile=", 9))
			m->svc.ks.passfile = opt + 9;
		else if (!strncmp(opt, "extpass=", 8))
			m->svc.ks.extpass = opt + 8;
		else if (!strncmp(opt, "audit_log=", 10))
			m->svc.audit_log = opt + 10;
		else if (!strncmp(opt, "profile=", 8))
			m->svc.remote.profile = opt + 8;
		else if (!strncmp(opt, "ca_file=", 8))
			m->svc.remote.ca_file = opt + 8;
		else if (!strncmp(opt, "principals=", 11))
			m->principals_file = opt + 11;
		else if (!strncmp(opt, "map_uid=", 8)) {
			/* ',' separates -o options and '=' names them: UID:PROFILE here. */
			char *colon = strchr(opt + 8, ':');

			if (colon)
				*colon = '=';
			if (cli_parse_map_uid(&m->svc.remote, opt + 8))
				return 1;
		} else if (!strncmp(opt, "key_service_timeout=", 20)) {
			if (parse_timeout(opt + 20, &m->svc.remote.timeout_ms))
				return 1;
		}
		else if (!strncmp(opt, "audit_digest_period=", 20)) {
			if (parse_digest_period(opt + 20, &m->svc.audit_digest_period))
				return 1;
		} else if (!strncmp(opt, "key_cache_ttl=", 14)) {
			if (parse_ttl(opt + 14, &m->opts.key_cache_ttl))
				return 1;
		} else if (!strcmp(opt, "writeback_cache"))
			m->opts.writeback_cache = 1;
		else if (!strcmp(opt, "no_writeback_cache"))
			m->opts.writeback_cache = 0;
		else if (is_mount8_only(opt))
			continue;
		else {
			m->allow_other |= !strcmp(opt, "allow_other");
			m->default_permissions |= !strcmp(opt, "default_permissions");
			if (add_fuse_opt(m, opt))
				return 1;
		}
	}
	return 0;
}

static int parse_args(struct mount_cli *m, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "keystore", required_argument, NULL, 's' },
		{ "passfile", required_argument, NULL, 'p' },
		{ "extpass", required_argument, NULL, 'e' },
		{ "audit-log", required_argument, NULL, 'a' },
		{ "key-cache-ttl", required_argument, NULL, 't' },
		{ "audit-digest-period", required_argument, NULL, 'D' },
		{ "profile", required_argument, NULL, 'P' },
		{ "map-uid", required_argument, NULL, 'M' },
		{ "principals", required_argument, NULL, 'R' },
		{ "ca-file", required_argument, NULL, 'C' },
		{ "key-service-timeout", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int opt;

	m->opts.key_cache_ttl = 60;
	/*
	 * The kernel's writeback cache: writes land in the page cache and reach
	 * kmsfs in large batches. Measured with tools/bench: random 4 KiB writes
	 * about 4x, untar about 1.4x. Errors from writing back (ENOSPC, EIO)
	 * then surface at fsync/close, as with NFS.
	 */
	m->opts.writeback_cache = 1;
	while ((opt = getopt_long(argc, argv, "fo:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f': m->opts.foreground = 1; break;
		case 'o': if (parse_o(m, optarg)) return 1; break;
		case 's': m->svc.ks.dir = optarg; break;
		case 'p': m->svc.ks.passfile = optarg; break;
		case 'e': m->svc.ks.extpass = optarg; break;
		case 'a': m->svc.audit_log = optarg; break;
		case 't': if (parse_ttl(optarg, &m->opts.key_cache_ttl)) return 1; break;
		case 'D': if (parse_digest_period(optarg, &m->svc.audit_digest_period)) return 1; break;
		case 'P': m->svc.remote.profile = optarg; break;
		case 'M': if (cli_parse_map_uid(&m->svc.remote, optarg)) return 1; break;
		case 'R': m->principals_file = optarg; break;
		case 'C': m->svc.remote.ca_file = optarg; break;
		case 'T': if (parse_timeout(optarg, &m->svc.remote.timeout_ms)) return 1; break;
		case 'h': fputs(usage, stdout); exit(0);
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind != argc - 2) {
		fputs(usage, stderr);
		return 2;
	}
	if (!realpath(argv[optind], m->cipherdir))
		return cli_error("%s: %s", argv[optind], strerror(errno));
	if (!realpath(argv[optind + 1], m->mountpoint))
		return cli_error("%s: %s", argv[optind + 1], strerror(errno));
	/* Several users through one root daemon: let the kernel check modes. */
	if (m->allow_other && !m->default_permissions && geteuid() == 0 &&
	    add_fuse_opt(m, "default_permissions"))
		return 1;
	m->opts.cipherdir = m->cipherdir;
	m->opts.mountpoint = m->mountpoint;
	if (m->fuse_opts[0]) {
		m->fuse_argv[0] = "-o";
		m->fuse_argv[1] = m->fuse_opts;
		m->opts.fuse_argc = 2;
	}
	m->opts.fuse_argv = m->fuse_argv;
	return 0;
}

/* Unlock, authenticate, mount, serve. Runs in the child unless -f. */
static int run_mount(struct mount_cli *m, int notify_fd)
{
	struct kmsfs_volume vol;
	int ret = 1;

	if (m->principals_file && cli_read_principals(&m->svc.remote, m->principals_file) != 0)
		goto out;
	if (cli_service_open_volume(&m->svc, m->cipherdir, &vol) != 0)
		goto out;
	/* A remote service knows the mapped uids by their profiles; any other uid is unsigned. */
	if (cli_is_remote(vol.key_service)) {
		m->opts.principals = m->svc.remote.map;
		m->opts.principal_count = m->svc.remote.map_count;
	}
	ret = kmsfs_fs_mount(&m->opts, &vol, m->svc.kc, m->svc.audit, notify_fd);
out:
	cli_service_close(&m->svc);
	return ret;
}

/* Parent side of the daemon: exit when the child says mounted, or failed. */
static int wait_for_child(pid_t child, int notify_rd)
{
	char status;
	ssize_t got;
	int wstatus;

	do {
		got = read(notify_rd, &status, 1);
	} while (got < 0 && errno == EINTR);
	close(notify_rd);
	if (got == 1)
		return 0;
	if (waitpid(child, &wstatus, 0) < 0)
		return 1;
	return WIFEXITED(wstatus) && WEXITSTATUS(wstatus) ? WEXITSTATUS(wstatus) : 1;
}

int cmd_mount(int argc, char **argv)
{
	struct mount_cli *m = calloc(1, sizeof(*m));
	int pipefd[2], ret;
	pid_t child;

	if (!m)
		return cli_error("out of memory");
	ret = parse_args(m, argc, argv);
	if (ret != 0 || m->opts.foreground) {
		if (ret == 0)
			ret = run_mount(m, -1);
		free(m);
		return ret;
	}
	if (pipe(pipefd) < 0)
		return cli_error("pipe: %s", strerror(errno));
	fflush(NULL);
	child = fork();
	if (child < 0)
		return cli_error("fork: %s", strerror(errno));
	if (child > 0) {
		close(pipefd[1]);
		free(m);
		return wait_for_child(child, pipefd[0]);
	}
	close(pipefd[0]);
	ret = run_mount(m, pipefd[1]);
	free(m);
	_exit(ret);
}

int cmd_umount(int argc, char **argv)
{
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		puts("usage: kmsfs umount MOUNTPOINT\n\nUnmount a kmsfs volume "
		     "(runs fusermount3 -u MOUNTPOINT).");
		return 0;
	}
	if (argc != 2) {
		fputs("usage: kmsfs umount MOUNTPOINT\n", stderr);
		return 2;
	}
	execlp("fusermount3", "fusermount3", "-u", argv[1], (char *)NULL);
	return cli_error("cannot run fusermount3: %s", strerror(errno));
}
