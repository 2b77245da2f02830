/*
 * cmd_init.c - `kmsfs init`: create a volume.
 *
 * Creates the key store on first use, a KMS key unless --key names one,
 * and CIPHERDIR/kmsfs.conf (authenticated by a key only the key service
 * can unwrap). With --key-service URL the volume's keys live in a remote
 * key service (kmsd, or AWS KMS itself), reached with the user's AWS
 * credentials; --key then names a key that already exists there.
 * --bucket-key turns on bucket key mode (fs/bucketkey.c): file data keys
 * are wrapped locally under a bucket key each principal gets from the key
 * service once per key_cache_ttl, instead of one key-service call per file.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "crypto.h"
#include "fs.h"

static const char usage[] =
	"usage: kmsfs init [--key KEY] [--cipher aes-256-gcm|xchacha20-poly1305] [--bucket-key]\n"
	"                  [--keystore DIR] [--passfile FILE] [--extpass CMD] CIPHERDIR\n"
	"       kmsfs init --key-service URL --key KEY [--profile NAME] [--region REGION]\n"
	"                  [--ca-file FILE] [--cipher ...] [--bucket-key] CIPHERDIR\n"
	"\n"
	"Create an encrypted volume in CIPHERDIR (created if missing; must be empty).\n"
	"  --key KEY         KMS key (id, ARN or alias/NAME); default: create a new key\n"
	"  --key-service URL keys from a remote key service (kmsd, or AWS KMS:\n"
	"                    https://kms.REGION.amazonaws.com) instead of the local one;\n"
	"                    credentials as the AWS CLI finds them (environment,\n"
	"                    AWS_PROFILE, ~/.aws/credentials)\n"
	"  --profile NAME    AWS profile to use (default: environment keys, AWS_PROFILE,\n"
	"                    default)\n"
	"  --region REGION   region (default: the key ARN's, AWS_REGION, the profile's)\n"
	"  --ca-file FILE    trust this PEM CA bundle for the key service's TLS\n"
	"  --cipher NAME     aes-256-gcm (default) or xchacha20-poly1305\n"
	"  --bucket-key      bucket key mode (as S3 Bucket Keys): each user gets a volume\n"
	"                    key from the key service once per key cache period and file\n"
	"                    keys are wrapped under it locally - one key-service call per\n"
	"                    user and period instead of one per file; every file key is\n"
	"                    still in the audit log\n"
	"  --keystore DIR    local key store (default $XDG_DATA_HOME/kmsfs); created if missing\n"
	"  --passfile FILE   read the key store passphrase from FILE\n"
	"  --extpass CMD     run CMD and read the passphrase from its output\n"
	"  (else KMSFS_PASSPHRASE, else a prompt on the terminal)\n";

static int make_key(struct keyclient *kc, const char *cipherdir, char *key_arn, size_t len)
{
	char principal[64], description[256];
	struct kc_caller caller;
	struct kc_key_info info;
	struct kc_error err = { 0 };

	cli_caller(&caller, principal, sizeof(principal));
	snprintf(description, sizeof(description), "kmsfs volume %.200s", cipherdir);
	if (kc->ops->create_key(kc, description, &caller, &info, &err) != KC_OK)
		return cli_error("cannot create a key: %s (%s)", err.message, err.type);
	snprintf(key_arn, len, "%s", info.arn);
	return 0;
}

/* A volume whose keys live in a remote key service; the key must exist there. */
static int init_remote(struct cli_remote *remote, const char *key, enum kmsfs_cipher cipher,
		unsigned flags, const char *cipherdir)
{
	char principal[KMSFS_PRINCIPAL_NAME_MAX], errbuf[512];
	struct keyclient *kc = NULL;
	struct kc_caller caller = { .uid = getuid(), .pid = getpid() };
	struct kmsfs_volume vol;
	int ret = 1;

	if (!key)
		return cli_error("--key-service %s needs --key KEY: a key that exists in that "
				 "service (create one with aws kms create-key)", remote->endpoint);
	remote->key = key;
	if (cli_open_remote(remote, &kc, principal, sizeof(principal)) != 0)
		return 1;
	caller.principal = principal;
	if (kmsfs_volume_create(cipherdir, key, cipher, flags, kc, &caller, &vol, errbuf,
				sizeof(errbuf)) != 0) {
		cli_error("%s", errbuf);
		goto out;
	}
	printf("kmsfs: created volume %s in %s\n  cipher %s, key %s%s\n  key service %s "
	       "(profile %s)\nMount it with: kmsfs mount %s MOUNTPOINT\n",
	       vol.id, cipherdir, kmsfs_cipher_name(vol.cipher), vol.key_id,
	       vol.bucket_key ? ", bucket keys" : "", vol.key_service, principal, cipherdir);
	ret = 0;
out:
	keyclient_free(kc);
	return ret;
}

int cmd_init(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "cipher", required_argument, NULL, 'c' },
		{ "keystore", required_argument, NULL, 's' },
		{ "passfile", required_argument, NULL, 'p' },
		{ "extpass", required_argument, NULL, 'e' },
		{ "key-service", required_argument, NULL, 'S' },
		{ "profile", required_argument, NULL, 'P' },
		{ "region", required_argument, NULL, 'r' },
		{ "ca-file", required_argument, NULL, 'C' },
		{ "bucket-key", no_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct cli_keystore ks = { 0 };
	struct cli_remote remote = { 0 };
	enum kmsfs_cipher cipher = KMSFS_CIPHER_AES_256_GCM;
	const char *key = NULL;
	unsigned flags = 0;
	char cipherdir[PATH_MAX], key_arn[KC_ARN_MAX], audit_path[PATH_MAX + 16];
	char principal[64], errbuf[512];
	struct keyclient *kc = NULL;
	struct kc_audit *audit = NULL;
	struct kc_caller caller;
	struct kmsfs_volume vol;
	int opt, ret = 1;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'k': key = optarg; break;
		case 'c':
			cipher = kmsfs_cipher_from_name(optarg);
			if (cipher == KMSFS_CIPHER_NONE)
				return cli_error("unknown cipher \"%s\" (use aes-256-gcm or "
						 "xchacha20-poly1305)", optarg);
			break;
		case 's': ks.dir = optarg; break;
		case 'p': ks.passfile = optarg; break;
		case 'e': ks.extpass = optarg; break;
		case 'S': remote.endpoint = optarg; break;
		case 'P': remote.profile = optarg; break;
		case 'r': remote.region = optarg; break;
		case 'C': remote.ca_file = optarg; break;
		case 'B': flags |= KMSFS_VOLUME_BUCKET_KEY; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return 2;
	}
	if (mkdir(argv[optind], 0700) < 0 && errno != EEXIST)
		return cli_error("%s: cannot create: %s", argv[optind], strerror(errno));
	if (!realpath(argv[optind], cipherdir))
		return cli_error("%s: %s", argv[optind], strerror(errno));
	if (kmsfs_probe_user_xattr(cipherdir) < 0)
		return cli_error("%s: filesystem does not support user extended attributes "
				 "(kmsfs keeps each file's wrapped data key in one)", cipherdir);
	if (cli_is_remote(remote.endpoint))
		return init_remote(&remote, key, cipher, flags, cipherdir);
	if (cli_open_keyclient(&ks, 1, &kc) != 0)
		return 1;
	cli_default_audit_path(&ks, audit_path, sizeof(audit_path));
	audit = kc_audit_open(audit_path);
	keyclient_set_audit(kc, audit);
	if (!key) {
		if (make_key(kc, cipherdir, key_arn, sizeof(key_arn)) != 0)
			goto out;
		key = key_arn;
	}
	cli_caller(&caller, principal, sizeof(principal));
	if (kmsfs_volume_create(cipherdir, key, cipher, flags, kc, &caller, &vol, errbuf,
				sizeof(errbuf)) != 0) {
		cli_error("%s", errbuf);
		goto out;
	}
	printf("kmsfs: created volume %s in %s\n  cipher %s, key %s%s\n  key store %s\n"
	       "Mount it with: kmsfs mount %s MOUNTPOINT\n",
	       vol.id, cipherdir, kmsfs_cipher_name(vol.cipher), vol.key_id,
	       vol.bucket_key ? ", bucket keys" : "", ks.resolved, cipherdir);
	ret = 0;
out:
	keyclient_free(kc);
	kc_audit_close(audit);
	return ret;
}
