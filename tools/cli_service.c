/*
 * cli_service.c - reaching a cipher directory's key service: for kmsfs
 * mount, and without a mount for kmsfs snapshot, rekey and fsck.
 *
 * The rules are kmsfs mount's: the volume's kmsfs.conf names the service
 * ("local": the key store, unlocked with its passphrase; a URL: a remote
 * service reached with this user's AWS credentials), and every data-key
 * call is recorded in the audit log (default KEYSTORE/audit.log; for a
 * remote service the default data directory stands in for the store).
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audit_trail.h"
#include "cli.h"

static int open_remote(struct cli_service *s, const char *key_service, const char *key)
{
	s->remote.endpoint = key_service;
	s->remote.key = key;
	if (cli_open_remote(&s->remote, &s->kc, s->principal, sizeof(s->principal)) != 0)
		return 1;
	s->caller = (struct kc_caller){ .principal = s->principal, .uid = getuid(),
					.pid = getpid() };
	/*
	 * No key store: the audit log and a trail's digest key go in the default
	 * data directory (the key is kept apart from the logs it signs).
	 */
	if (s->ks.dir)
		snprintf(s->ks.resolved, sizeof(s->ks.resolved), "%s", s->ks.dir);
	else if (kc_default_keystore(s->ks.resolved, sizeof(s->ks.resolved)) != 0)
		return cli_error("cannot find a directory for the audit log: set --audit-log, "
				 "XDG_DATA_HOME or HOME");
	return cli_make_private_dir(s->ks.resolved);
}

static int open_audit(struct cli_service *s)
{
	char audit_path[PATH_MAX + 16], audit_key[PATH_MAX + 32], audit_err[KC_AUDIT_ERR_MAX];
	struct kc_audit_options opts = { .path = audit_path, .key_path = audit_key,
					 .digest_period = s->audit_digest_period };

	if (s->audit_log)
		snprintf(audit_path, sizeof(audit_path), "%s", s->audit_log);
	else
		cli_default_audit_path(&s->ks, audit_path, sizeof(audit_path));
	snprintf(audit_key, sizeof(audit_key), "%s/audit-digest.key", s->ks.resolved);
	s->audit = kc_audit_open_opts(&opts, audit_err);
	if (!s->audit)
		return cli_error("%s: cannot open audit log: %s", audit_path, audit_err);
	keyclient_set_audit(s->kc, s->audit);
	return 0;
}

int cli_service_open(struct cli_service *s, const char *key_service, const char *key)
{
	if (cli_is_remote(key_service)) {
		if (open_remote(s, key_service, key) != 0)
			return 1;
	} else {
		if (cli_open_keyclient(&s->ks, 0, &s->kc) != 0)
			return 1;
		cli_caller(&s->caller, s->principal, sizeof(s->principal));
	}
	return open_audit(s);
}

void cli_service_close(struct cli_service *s)
{
	keyclient_free(s->kc);
	s->kc = NULL;
	kc_audit_close(s->audit);
	s->audit = NULL;
}

int cli_service_open_volume(struct cli_service *s, const char *cipherdir,
		struct kmsfs_volume *vol)
{
	struct kmsfs_volume peek;
	char errbuf[512];

	if (kmsfs_volume_peek(cipherdir, &peek, errbuf, sizeof(errbuf)) != 0)
		return cli_error("%s", errbuf);
	if (cli_service_open(s, peek.key_service, peek.key_id) != 0)
		return 1;
	if (kmsfs_volume_load(cipherdir, s->kc, &s->caller, vol, errbuf, sizeof(errbuf), NULL) != 0)
		return cli_error("%s", errbuf);
	return 0;
}
