/*
 * cli_common.c - what every kmsfs subcommand shares: error output and
 * opening the key service with a passphrase from the usual sources.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "crypto.h"

int cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("kmsfs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

void cli_caller(struct kc_caller *caller, char *principal, size_t len)
{
	kc_local_principal(getuid(), principal, len);
	caller->principal = principal;
	caller->uid = getuid();
	caller->pid = getpid();
}

int cli_make_private_dir(const char *dir)
{
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return cli_error("%.100s...: path too long", dir);
	for (char *slash = strchr(path + 1, '/'); ; slash = strchr(slash + 1, '/')) {
		if (slash)
			*slash = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return cli_error("%s: cannot create: %s", path, strerror(errno));
		if (!slash)
			break;
		*slash = '/';
	}
	return 0;
}

void cli_default_audit_path(const struct cli_keystore *ks, char *out, size_t len)
{
	snprintf(out, len, "%s/audit.log", ks->resolved);
}

int cli_open_keyclient(struct cli_keystore *ks, int create, struct keyclient **out)
{
	struct kc_passphrase_source src = { .passfile = ks->passfile, .extpass = ks->extpass };
	struct kc_error err = { 0 };
	char absolute[PATH_MAX];
	char *passphrase;
	int exists;
	enum kc_status status;

	if (ks->dir)
		snprintf(ks->resolved, sizeof(ks->resolved), "%s", ks->dir);
	else if (kc_default_keystore(ks->resolved, sizeof(ks->resolved)) != 0)
		return cli_error("cannot find a key store directory: set --keystore, "
				 "XDG_DATA_HOME or HOME");
	exists = kc_keystore_exists(ks->resolved);
	if (!exists && !create)
		return cli_error("%s: no key store here (create one with kmsfs init, "
				 "or point --keystore at yours)", ks->resolved);
	src.confirm = !exists;
	passphrase = kc_passphrase_get(&src, &err);
	if (!passphrase)
		return cli_error("%s: %s", ks->resolved, err.message);
	status = kc_local_open(ks->resolved, passphrase, create, out, &err);
	kmsfs_secure_free(passphrase);
	if (status != KC_OK)
		return cli_error("%s (%s)", err.message, err.type);
	/* Messages and default paths (audit.log) name the store absolutely. */
	if (realpath(ks->resolved, absolute))
		snprintf(ks->resolved, sizeof(ks->resolved), "%s", absolute);
	return 0;
}
