/*
 * cmd_key.c - `kmsfs key`: manage keys in the local key service.
 *
 *   create [--description TEXT] [--alias alias/NAME]
 *   list | describe KEY | alias alias/NAME KEY | enable KEY | disable KEY
 *   rotate KEY | allow KEY PRINCIPAL | disallow KEY PRINCIPAL
 *
 * describe and create print AWS-CLI-shaped JSON (KeyMetadata) so scripts
 * written for `aws kms describe-key` read it the same way. Every call is
 * one record in the audit log, named as the AWS KMS operation it stands
 * for (CreateKey, DisableKey, CreateAlias, ...), allowed or denied.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"usage: kmsfs key <action> [--keystore DIR] [--passfile FILE] [--extpass CMD]\n"
	"                          [--audit-log FILE|DIR/] ...\n"
	"\n"
	"actions:\n"
	"  create [--description TEXT] [--alias alias/NAME]   create a KMS key\n"
	"  list                                              list keys\n"
	"  describe KEY                                      show a key (JSON)\n"
	"  alias alias/NAME KEY                              point an alias at a key\n"
	"  enable KEY | disable KEY                          allow / refuse its use\n"
	"  rotate KEY                                        new key material (old data still decrypts)\n"
	"  allow KEY PRINCIPAL | disallow KEY PRINCIPAL      list a principal (uid:N) on the key\n"
	"KEY is a key id, key ARN, alias/NAME or alias ARN. --audit-log DIR/ appends to a mount's\n"
	"audit trail (its next digest seals the records); the default is KEYSTORE/audit.log.\n";

static void print_key_json(const struct kc_key_info *info)
{
	json_t *aliases = json_array(), *principals = json_array(), *doc;
	char *text;

	for (size_t i = 0; i < info->alias_count; i++)
		json_array_append_new(aliases, json_string(info->aliases[i]));
	for (size_t i = 0; i < info->principal_count; i++)
		json_array_append_new(principals, json_string(info->principals[i]));
	doc = json_pack("{s:{s:s,s:s,s:s,s:s,s:b,s:I,s:s,s:s,s:I,s:o,s:o}}", "KeyMetadata",
			"KeyId", info->key_id, "Arn", info->arn, "Description", info->description,
			"KeyState", kc_key_state_name(info->state),
			"Enabled", info->state == KC_KEY_ENABLED,
			"CreationDate", (json_int_t)info->creation_date,
			"KeySpec", "SYMMETRIC_DEFAULT", "KeyUsage", "ENCRYPT_DECRYPT",
			"KeyMaterialVersions", (json_int_t)info->material_versions,
			"Aliases", aliases, "Principals", principals);
	text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
	if (text)
		puts(text);
	free(text);
	json_decref(doc);
}

static int print_key_line(const struct kc_key_info *info, void *arg)
{
	printf("%-36s  %-8s  %-24s  %s\n", info->key_id, kc_key_state_name(info->state),
	       info->alias_count ? info->aliases[0] : "-", info->description);
	return 0;
}

static struct kc_audit *admin_audit;

/* One record per key-management call, allowed or denied. */
static void audit_admin(const char *operation, const char *key, const struct kc_caller *caller,
			enum kc_status status, const struct kc_error *err)
{
	struct kc_audit_event ev = {
		.event_source = "kms.amazonaws.com",
		.event_name = operation,
		.caller = caller,
		.key_id = key,
		.block_index = -1,
		.err = status == KC_OK ? NULL : err,
	};

	if (admin_audit)
		kc_audit_record(admin_audit, &ev);
}

static int report(enum kc_status status, const struct kc_error *err, const char *what)
{
	if (status == KC_OK)
		return 0;
	return cli_error("%s: %s (%s)", what, err->message, err->type);
}

static int need(int have, int want)
{
	if (have != want) {
		fputs(usage, stderr);
		return 2;
	}
	return 0;
}

static int run_action(struct keyclient *kc, const char *action, int argc, char **argv,
		      const char *description, const char *alias)
{
	const struct keyclient_ops *ops = kc->ops;
	char principal[64];
	struct kc_caller caller;
	struct kc_key_info info;
	struct kc_error err = { 0 };
	enum kc_status st;
	int rc;

	cli_caller(&caller, principal, sizeof(principal));
	if (!strcmp(action, "create")) {
		if ((rc = need(argc, 0)))
			return rc;
		/* Refuse a taken alias before making a key that would be left orphaned. */
		if (alias && ops->describe_key(kc, alias, &caller, &info, &err) == KC_OK)
			return cli_error("%s: alias already exists (AlreadyExistsException)", alias);
		st = ops->create_key(kc, description ? description : "", &caller, &info, &err);
		audit_admin("CreateKey", st == KC_OK ? info.arn : NULL, &caller, st, &err);
		if (st == KC_OK && alias) {
			st = keyclient_create_alias(kc, alias, info.key_id, &caller, &err);
			audit_admin("CreateAlias", info.arn, &caller, st, &err);
			if (st == KC_OK)
				st = ops->describe_key(kc, info.key_id, &caller, &info, &err);
		}
		if (st == KC_OK)
			print_key_json(&info);
		return report(st, &err, "create key");
	}
	if (!strcmp(action, "list")) {
		if ((rc = need(argc, 0)))
			return rc;
		printf("%-36s  %-8s  %-24s  %s\n", "KEY ID", "STATE", "ALIAS", "DESCRIPTION");
		return report(ops->list_keys(kc, &caller, print_key_line, NULL, &err), &err,
			      "list keys");
	}
	if (!strcmp(action, "describe")) {
		if ((rc = need(argc, 1)))
			return rc;
		st = ops->describe_key(kc, argv[0], &caller, &info, &err);
		audit_admin("DescribeKey", argv[0], &caller, st, &err);
		if (st == KC_OK)
			print_key_json(&info);
		return report(st, &err, argv[0]);
	}
	if (!strcmp(action, "alias")) {
		if ((rc = need(argc, 2)))
			return rc;
		st = ops->set_alias(kc, argv[0], argv[1], &caller, &err);
		audit_admin("UpdateAlias", argv[1], &caller, st, &err);
		return report(st, &err, argv[0]);
	}
	if (!strcmp(action, "enable") || !strcmp(action, "disable")) {
		if ((rc = need(argc, 1)))
			return rc;
		st = ops->set_key_enabled(kc, argv[0], !strcmp(action, "enable"), &caller, &err);
		audit_admin(!strcmp(action, "enable") ? "EnableKey" : "DisableKey", argv[0], &caller,
			    st, &err);
		return report(st, &err, argv[0]);
	}
	if (!strcmp(action, "rotate")) {
		if ((rc = need(argc, 1)))
			return rc;
		st = ops->rotate_key(kc, argv[0], &caller, &err);
		audit_admin("RotateKeyOnDemand", argv[0], &caller, st, &err);
		return report(st, &err, argv[0]);
	}
	if (!strcmp(action, "allow") || !strcmp(action, "disallow")) {
		if ((rc = need(argc, 2)))
			return rc;
		/* Listing a principal on the key is a key-policy change. */
		st = ops->set_key_principal(kc, argv[0], argv[1], !strcmp(action, "allow"), &caller,
					    &err);
		audit_admin("PutKeyPolicy", argv[0], &caller, st, &err);
		return report(st, &err, argv[0]);
	}
	cli_error("unknown key action \"%s\"", action);
	fputs(usage, stderr);
	return 2;
}

int cmd_key(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "keystore", required_argument, NULL, 's' },
		{ "passfile", required_argument, NULL, 'p' },
		{ "extpass", required_argument, NULL, 'e' },
		{ "description", required_argument, NULL, 'd' },
		{ "alias", required_argument, NULL, 'a' },
		{ "audit-log", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct cli_keystore ks = { 0 };
	const char *description = NULL, *alias = NULL, *audit_log = NULL;
	char audit_path[PATH_MAX + 16];
	struct keyclient *kc = NULL;
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': ks.dir = optarg; break;
		case 'p': ks.passfile = optarg; break;
		case 'e': ks.extpass = optarg; break;
		case 'd': description = optarg; break;
		case 'a': alias = optarg; break;
		case 'l': audit_log = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind >= argc) {
		fputs(usage, stderr);
		return 2;
	}
	if (cli_open_keyclient(&ks, !strcmp(argv[optind], "create"), &kc) != 0)
		return 1;
	if (!audit_log) {
		cli_default_audit_path(&ks, audit_path, sizeof(audit_path));
		audit_log = audit_path;
	}
	admin_audit = kc_audit_open(audit_log);
	if (!admin_audit) {
		keyclient_free(kc);
		return cli_error("%s: cannot open audit log: %s", audit_log, strerror(errno));
	}
	ret = run_action(kc, argv[optind], argc - optind - 1, argv + optind + 1, description,
			 alias);
	keyclient_free(kc);
	kc_audit_close(admin_audit);
	admin_audit = NULL;
	return ret;
}
