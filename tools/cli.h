/*
 * cli.h - shared pieces of the kmsfs command line: option structs for the
 * key store, opening the key service, error reporting, subcommands.
 */
#ifndef KMSFS_CLI_H
#define KMSFS_CLI_H

#include <limits.h>

#include "keyclient.h"

struct cli_keystore {
	const char *dir;             /* --keystore; NULL: the default */
	const char *passfile;        /* --passfile */
	const char *extpass;         /* --extpass */
	char resolved[PATH_MAX];     /* the directory actually used */
};

/* Print "kmsfs: ..." to stderr. Always returns 1 (the exit status). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Open the local key service; create=1 makes the key store if missing. */
int cli_open_keyclient(struct cli_keystore *ks, int create, struct keyclient **out);

/* The caller as the key service sees the user running this command. */
void cli_caller(struct kc_caller *caller, char *principal, size_t len);

/* Default audit log: KEYSTORE/audit.log. */
void cli_default_audit_path(const struct cli_keystore *ks, char *out, size_t len);

int cmd_init(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_audit(int argc, char **argv);

#endif /* KMSFS_CLI_H */
