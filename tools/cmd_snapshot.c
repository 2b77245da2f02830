/*
 * cmd_snapshot.c - `kmsfs snapshot copy`: copy a volume to another,
 * rewrapping or re-encrypting every file's data key.
 *
 * Like an EBS snapshot copy: the destination is a volume of its own (new
 * volume id, authenticated kmsfs.conf), under another key or another key
 * service if asked. This file parses the options, opens the source's key
 * service, and runs the phases in order (see snapshot.h):
 * destination, walk, copy, verify, finish, summary.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapshot.h"

static const char usage[] =
	"usage: kmsfs snapshot copy [options] SRC_CIPHERDIR DST_CIPHERDIR\n"
	"\n"
	"Copy the volume in SRC_CIPHERDIR (offline, or the backing directory of a quiescent\n"
	"mount) to a new volume in DST_CIPHERDIR, keeping modes, owners, times, xattrs, hard\n"
	"links, symlinks and holes. DST_CIPHERDIR must be new or empty, or hold an unfinished\n"
	"copy of the same source, which is then finished (run the same command again after\n"
	"an interruption).\n"
	"  --key KEY            destination KMS key (default: the source volume's key)\n"
	"  --key-service URL|local  destination key service (default: the source's); with\n"
	"                       another service, data keys pass through this process (below)\n"
	"  --reencrypt          fresh data keys and file ids, every block re-encrypted (for a\n"
	"                       data key that may be exposed); default: ciphertext copied as\n"
	"                       it is, each data key rewrapped by the key service (ReEncrypt)\n"
	"  --bucket-key, --no-bucket-key  destination's bucket key mode (default: the source's)\n"
	"  --verify             re-read every copied file and compare its plaintext hash with\n"
	"                       the source's (decrypts both here)\n"
	"  --jobs N             files copied at once (default: online CPUs)\n"
	"  --path REL           copy only REL (and what is below it) and the directories\n"
	"                       leading to it; repeatable\n"
	"  --progress, --no-progress  progress line on stderr (default: when it is a terminal)\n"
	"Source key service (as kmsfs mount; also the destination's when it is the same):\n"
	"  --keystore DIR --passfile FILE --extpass CMD      local key store\n"
	"  --profile NAME --region REGION --ca-file FILE     remote key service\n"
	"  --audit-log FILE|DIR/  audit log for every data-key call (default KEYSTORE/audit.log)\n"
	"Destination on another remote key service:\n"
	"  --dst-profile NAME --dst-region REGION --dst-ca-file FILE\n"
	"  --dst-audit-log FILE|DIR/  (default: --audit-log's)\n"
	"\n"
	"Same key service: each data key is rewrapped by ReEncrypt and never reaches this\n"
	"process. Another key service (like an EBS snapshot copied to another region): each\n"
	"data key is unwrapped from the source and wrapped by the destination here, in locked\n"
	"memory, and the summary counts it.\n";

enum {
	OPT_KEYSTORE = 256, OPT_PASSFILE, OPT_EXTPASS, OPT_AUDIT, OPT_KEY, OPT_SERVICE,
	OPT_PROFILE, OPT_REGION, OPT_CA, OPT_DST_PROFILE, OPT_DST_REGION, OPT_DST_CA,
	OPT_DST_AUDIT, OPT_REENCRYPT, OPT_VERIFY, OPT_JOBS, OPT_PATH, OPT_PROGRESS,
	OPT_NO_PROGRESS, OPT_BUCKET, OPT_NO_BUCKET,
};

static const struct option longopts[] = {
	{ "keystore", required_argument, NULL, OPT_KEYSTORE },
	{ "passfile", required_argument, NULL, OPT_PASSFILE },
	{ "extpass", required_argument, NULL, OPT_EXTPASS },
	{ "audit-log", required_argument, NULL, OPT_AUDIT },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "key-service", required_argument, NULL, OPT_SERVICE },
	{ "profile", required_argument, NULL, OPT_PROFILE },
	{ "region", required_argument, NULL, OPT_REGION },
	{ "ca-file", required_argument, NULL, OPT_CA },
	{ "dst-profile", required_argument, NULL, OPT_DST_PROFILE },
	{ "dst-region", required_argument, NULL, OPT_DST_REGION },
	{ "dst-ca-file", required_argument, NULL, OPT_DST_CA },
	{ "dst-audit-log", required_argument, NULL, OPT_DST_AUDIT },
	{ "reencrypt", no_argument, NULL, OPT_REENCRYPT },
	{ "verify", no_argument, NULL, OPT_VERIFY },
	{ "jobs", required_argument, NULL, OPT_JOBS },
	{ "path", required_argument, NULL, OPT_PATH },
	{ "progress", no_argument, NULL, OPT_PROGRESS },
	{ "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
	{ "bucket-key", no_argument, NULL, OPT_BUCKET },
	{ "no-bucket-key", no_argument, NULL, OPT_NO_BUCKET },
	{ "help", no_argument, NULL, 'h' },
	{ 0 }
};

static int parse_jobs(const char *text, unsigned *jobs)
{
	char *end;
	long n = strtol(text, &end, 10);

	if (!*text || *end || n < 1 || n > 256)
		return cli_error("snapshot: --jobs \"%s\": expected a number from 1 to 256", text);
	*jobs = (unsigned)n;
	return 0;
}

/* --path REL: volume-relative, no "..", no leading or trailing '/'. */
static int add_path(struct snap *s, char *rel)
{
	size_t len;

	while (*rel == '/')
		rel++;
	len = strlen(rel);
	while (len && rel[len - 1] == '/')
		rel[--len] = '\0';
	if (!len || !strcmp(rel, "..") || !strncmp(rel, "../", 3) || strstr(rel, "/../") ||
	    (len >= 3 && !strcmp(rel + len - 3, "/..")))
		return cli_error("snapshot: --path \"%s\": expected a path inside the volume", rel);
	if (s->path_count == SNAP_MAX_PATHS)
		return cli_error("snapshot: at most %d --path options", SNAP_MAX_PATHS);
	s->paths[s->path_count++] = rel;
	return 0;
}

static int parse_option(struct snap *s, int opt, char *arg)
{
	switch (opt) {
	case OPT_KEYSTORE: s->src_svc.ks.dir = arg; break;
	case OPT_PASSFILE: s->src_svc.ks.passfile = arg; break;
	case OPT_EXTPASS: s->src_svc.ks.extpass = arg; break;
	case OPT_AUDIT: s->src_svc.audit_log = arg; break;
	case OPT_KEY: s->key = arg; break;
	case OPT_SERVICE: s->key_service = arg; break;
	case OPT_PROFILE: s->src_svc.remote.profile = arg; break;
	case OPT_REGION: s->src_svc.remote.region = arg; break;
	case OPT_CA: s->src_svc.remote.ca_file = arg; break;
	case OPT_DST_PROFILE: s->dst_svc.remote.profile = arg; break;
	case OPT_DST_REGION: s->dst_svc.remote.region = arg; break;
	case OPT_DST_CA: s->dst_svc.remote.ca_file = arg; break;
	case OPT_DST_AUDIT: s->dst_audit_log = arg; break;
	case OPT_REENCRYPT: s->reencrypt = 1; break;
	case OPT_VERIFY: s->verify = 1; break;
	case OPT_JOBS: return parse_jobs(arg, &s->jobs);
	case OPT_PATH: return add_path(s, arg);
	case OPT_PROGRESS: s->progress = 1; break;
	case OPT_NO_PROGRESS: s->progress = 0; break;
	case OPT_BUCKET: s->bucket_key = 1; break;
	case OPT_NO_BUCKET: s->bucket_key = 0; break;
	default: return 2;
	}
	return 0;
}

/* 0 to go on, 1 on an error (printed), 2 for a usage error, -1 after --help. */
static int parse_args(struct snap *s, int argc, char **argv)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int opt, ret;

	s->progress = isatty(STDERR_FILENO);
	s->bucket_key = -1;
	s->jobs = cpus > 0 ? (unsigned)(cpus > 256 ? 256 : cpus) : 1;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (opt == 'h') {
			fputs(usage, stdout);
			return -1;
		}
		ret = parse_option(s, opt, optarg);
		if (ret)
			goto bad;
	}
	if (optind != argc - 2) {
		ret = 2;
		goto bad;
	}
	if (!realpath(argv[optind], s->src))
		return cli_error("snapshot: %s: %s", argv[optind], strerror(errno));
	snprintf(s->dst, sizeof(s->dst), "%s", argv[optind + 1]);
	return 0;
bad:
	if (ret == 2)
		fputs(usage, stderr);
	return ret;
}

/* The source volume, authenticated as this user, and no unfinished copy in it. */
static int open_source(struct snap *s)
{
	if (cli_service_open_volume(&s->src_svc, s->src, &s->src_vol) != 0)
		return 1;
	s->src_fd = open(s->src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->src_fd < 0)
		return cli_error("snapshot: %s: %s", s->src, strerror(errno));
	if (faccessat(s->src_fd, SNAP_STATE_NAME, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return cli_error("snapshot: %s: is an unfinished snapshot copy itself: finish it "
				 "(run its kmsfs snapshot copy again) before copying it", s->src);
	return 0;
}

static int open_keyrings(struct snap *s)
{
	s->src_kr = kmsfs_keyring_new(&s->src_vol, s->src_svc.kc, &s->src_svc.caller);
	s->dst_kr = kmsfs_keyring_new(&s->dst_vol, s->dst_kc, s->dst_caller);
	if (!s->src_kr || !s->dst_kr)
		return cli_error("snapshot: out of memory");
	return 0;
}

static void print_summary(struct snap *s)
{
	const struct snap_stats *st = &s->stats;
	char bytes[32];

	snap_format_bytes(st->bytes_done, bytes, sizeof(bytes));
	printf("kmsfs: snapshot: %s -> %s (volume %s, key %s): %llu files (%s) copied",
	       s->src, s->dst, s->dst_vol.id, s->dst_vol.key_id,
	       (unsigned long long)st->files_done, bytes);
	if (st->files_present)
		printf(", %llu already there", (unsigned long long)st->files_present);
	printf(", %llu hard links, %llu symlinks, %llu special files, %llu directories in %.1f s\n",
	       (unsigned long long)st->links, (unsigned long long)st->symlinks,
	       (unsigned long long)st->specials, (unsigned long long)st->dirs,
	       snap_now() - s->started);
	if (s->reencrypt)
		printf("kmsfs: snapshot: data keys: %llu new ones, contents re-encrypted; each "
		       "source data key was unwrapped in this process (locked memory)\n",
		       (unsigned long long)st->keys_fresh);
	else
		printf("kmsfs: snapshot: data keys: %llu rewrapped by the key service (ReEncrypt: "
		       "no plaintext data key in this process), %llu through this process "
		       "(unwrapped and wrapped again: the plaintext data key was in its locked "
		       "memory)\n", (unsigned long long)st->rewrap_service,
		       (unsigned long long)st->rewrap_client);
	if (s->verify)
		printf("kmsfs: snapshot: verified %llu files: plaintext identical\n",
		       (unsigned long long)st->verified);
}

/* Once everything is copied (and verified): drop the staging dir and state file. */
static int finish(struct snap *s)
{
	if (s->stats.failures) {
		cli_error("snapshot: %llu failed; %s is incomplete: run the same command again to "
			  "finish it", (unsigned long long)s->stats.failures, s->dst);
		return 1;
	}
	/*
	 * The root's attributes before the state file goes (a crash after it would
	 * leave a finished copy with a 0700 root), and again after, since removing
	 * the staging directory and state file changes the root's mtime.
	 */
	if (snap_root_attrs(s) || snap_dest_finish(s) || snap_root_attrs(s))
		return 1;
	return 0;
}

static int copy_volume(struct snap *s)
{
	if (open_source(s) || snap_dest_open(s) || open_keyrings(s))
		return 1;
	if (s->resumed)
		snap_note(s, "resuming the unfinished copy in %s", s->dst);
	if (snap_walk(s) || snap_copy(s))
		return 1;
	if (s->verify && !s->stats.failures && snap_verify(s))
		return 1;
	print_summary(s);
	return finish(s);
}

static int snapshot_copy(int argc, char **argv)
{
	const char *paths[SNAP_MAX_PATHS];
	struct snap s = { .paths = NULL, .src_fd = -1, .dst_fd = -1, .staging_fd = -1 };
	uint8_t tag[6];
	int ret;

	s.paths = paths;
	ret = parse_args(&s, argc, argv);
	if (ret)
		return ret < 0 ? 0 : ret;
	if (!s.path_count)
		s.paths = NULL;
	kmsfs_random(tag, sizeof(tag));
	snprintf(s.staging_tag, sizeof(s.staging_tag), "%02x%02x%02x%02x%02x%02x", tag[0], tag[1],
		 tag[2], tag[3], tag[4], tag[5]);
	pthread_mutex_init(&s.out_lock, NULL);
	s.started = snap_now();
	ret = copy_volume(&s);
	snap_entries_free(&s);
	kmsfs_keyring_free(s.src_kr);
	kmsfs_keyring_free(s.dst_kr);
	snap_dest_close(&s);
	if (s.src_fd >= 0)
		close(s.src_fd);
	cli_service_close(&s.src_svc);
	pthread_mutex_destroy(&s.out_lock);
	return ret;
}

int cmd_snapshot(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "copy"))
		return snapshot_copy(argc - 1, argv + 1);
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage, stdout);
		return 0;
	}
	fputs(usage, stderr);
	return 2;
}
