/*
 * kmsfs.c - the kmsfs command: dispatch to subcommands.
 *
 *   kmsfs init | mount | umount | key | audit | snapshot | rekey | fsck | volume ...
 *
 * mount(8) runs `kmsfs CIPHERDIR MOUNTPOINT -o OPTS` for type fuse.kmsfs
 * (through mount.fuse3), so a first argument that is not a subcommand
 * means mount.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "crypto.h"

static const char usage[] =
	"usage: kmsfs <command> [options]\n"
	"\n"
	"Encrypted FUSE filesystem with a data key per file (envelope encryption).\n"
	"\n"
	"commands:\n"
	"  init      create an encrypted volume in an empty directory\n"
	"  mount     mount a volume (also: mount -t fuse.kmsfs CIPHERDIR MOUNTPOINT)\n"
	"  umount    unmount (same as fusermount3 -u)\n"
	"  key       manage keys in the local key service\n"
	"  audit     verify an audit trail's signed digests, or show its records\n"
	"  snapshot  copy a volume to another, rewrapping or re-encrypting its data keys\n"
	"  rekey     move a volume to another KMS key in place\n"
	"  fsck      check a volume: config, headers, data keys, every block\n"
	"  volume    EBS-like disk images on a kmsfs mount, attached as loop devices\n"
	"\n"
	"Run `kmsfs <command> --help` for a command's options.\n";

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	if (!cmd || !strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		fputs(usage, cmd ? stdout : stderr);
		return cmd ? 0 : 2;
	}
	if (!strcmp(cmd, "--version")) {
		puts("kmsfs 0.1.0");
		return 0;
	}
	if (kmsfs_crypto_init() != 0)
		return cli_error("cannot initialise libsodium/OpenSSL");
	if (!strcmp(cmd, "init"))
		return cmd_init(argc - 1, argv + 1);
	if (!strcmp(cmd, "mount"))
		return cmd_mount(argc - 1, argv + 1);
	if (!strcmp(cmd, "umount") || !strcmp(cmd, "unmount"))
		return cmd_umount(argc - 1, argv + 1);
	if (!strcmp(cmd, "key"))
		return cmd_key(argc - 1, argv + 1);
	if (!strcmp(cmd, "audit"))
		return cmd_audit(argc - 1, argv + 1);
	if (!strcmp(cmd, "snapshot"))
		return cmd_snapshot(argc - 1, argv + 1);
	if (!strcmp(cmd, "rekey"))
		return cmd_rekey(argc - 1, argv + 1);
	if (!strcmp(cmd, "fsck"))
		return cmd_fsck(argc - 1, argv + 1);
	if (!strcmp(cmd, "volume"))
		return cmd_volume(argc - 1, argv + 1);
	if (cmd[0] != '-' && argc >= 3 && (strchr(cmd, '/') || strchr(argv[2], '/')))
		return cmd_mount(argc, argv);   /* mount.fuse3 style */
	cli_error("unknown command \"%s\"", cmd);
	fputs(usage, stderr);
	return 2;
}
