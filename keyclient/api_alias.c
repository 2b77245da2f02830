/*
 * api_alias.c - aliases through the KMS API: CreateAlias, UpdateAlias,
 * DeleteAlias, ListAliases.
 *
 * An alias names one key; a key may have many. Creating an alias that
 * exists is AlreadyExistsException (checked inside the write transaction,
 * so two concurrent creators cannot both win); re-pointing one is
 * UpdateAlias, whose new key must be of the same kind as the old, as in AWS.
 */
#include "api_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIAS_LIST_DEFAULT 100
#define ALIAS_LIST_MAX 1000

/* The AliasName field, checked as AWS checks it. */
static enum kc_status alias_name(struct kc_api_req *req, const char **name, struct kc_error *err)
{
	enum kc_status rc = kc_api_str(req, "AliasName", KC_API_REQUIRED, 1, KC_ALIAS_MAX, name, err);

	if (rc != KC_OK)
		return rc;
	return kc_alias_name_check(*name, err);
}

/* TargetKeyId must name a key, not another alias. */
static enum kc_status target_key(struct kc_api_req *req, const char *action,
		struct kc_store_key *key, struct kc_error *err)
{
	const char *ref = NULL;
	enum kc_status rc;

	rc = kc_api_str(req, "TargetKeyId", KC_API_REQUIRED, 1, 2048, &ref, err);
	if (rc != KC_OK)
		return rc;
	if (strncmp(ref, "alias/", 6) == 0 || strstr(ref, ":alias/"))
		return kc_api_invalid(err, "TargetKeyId", "Member must be a key id or key ARN, not an alias");
	rc = kc_api_key_ref(req, ref, action, NULL, key, err);
	if (rc == KC_OK && key->state == KC_KEY_PENDING_DELETION)
		rc = kc_fail(err, KC_INVALID_STATE, "%s is pending deletion.", req->result->key_arn);
	return rc;
}

/*
 * The alias must exist (must_exist=1: its key id in key_id, else
 * NotFoundException) or must not (AlreadyExistsException), in AWS's words.
 */
static enum kc_status alias_lookup(struct kc_api_req *req, const char *name, int must_exist,
		char key_id[KC_KEY_ID_LEN + 1], struct kc_error *err)
{
	enum kc_status rc = kc_store_get_alias(req->local->store, name, key_id, err);
	char alias_arn[KC_ARN_MAX];

	if (rc != KC_OK && rc != KC_NOT_FOUND)
		return rc;
	kc_local_alias_arn(req->local, name, alias_arn);
	if (must_exist && rc == KC_NOT_FOUND)
		return kc_fail(err, KC_NOT_FOUND, "Alias %s is not found.", alias_arn);
	if (!must_exist && rc == KC_OK)
		return kc_fail(err, KC_ALREADY_EXISTS, "An alias with the name %s already exists",
				alias_arn);
	return KC_OK;
}

/* AliasName and TargetKeyId, checked and authorized for action. */
static enum kc_status alias_and_target(struct kc_api_req *req, const char *action,
		const char **name, struct kc_store_key *key, struct kc_error *err)
{
	enum kc_status rc = alias_name(req, name, err);

	if (rc == KC_OK)
		rc = target_key(req, action, key, err);
	return rc;
}

KC_API_HANDLER(CreateAlias)
{
	char existing[KC_KEY_ID_LEN + 1];
	const char *name = NULL;
	struct kc_store_key key;
	enum kc_status rc;

	(void)resp;
	rc = alias_and_target(req, "kms:CreateAlias", &name, &key, err);
	if (rc == KC_OK)
		rc = kc_store_txn_begin(req->local->store, err);
	if (rc != KC_OK)
		return rc;
	rc = alias_lookup(req, name, 0, existing, err);
	if (rc == KC_OK)
		rc = kc_store_set_alias(req->local->store, name, key.key_id, err);
	return kc_store_txn_end(req->local->store, rc, err);
}

KC_API_HANDLER(UpdateAlias)
{
	char old_id[KC_KEY_ID_LEN + 1];
	struct kc_store_key key, old_key;
	const char *name = NULL;
	enum kc_status rc;

	(void)resp;
	rc = alias_and_target(req, "kms:UpdateAlias", &name, &key, err);
	if (rc == KC_OK)
		rc = kc_store_txn_begin(req->local->store, err);
	if (rc != KC_OK)
		return rc;
	rc = alias_lookup(req, name, 1, old_id, err);
	if (rc == KC_OK)
		rc = kc_store_get_key(req->local->store, old_id, &old_key, err);
	if (rc == KC_OK && (strcmp(old_key.key_usage, key.key_usage) != 0 ||
			kc_api_is_symmetric(&old_key) != kc_api_is_symmetric(&key)))
		rc = kc_fail(err, KC_VALIDATION, "The new target key must have the same key usage (%s) "
				"and type as the alias's current key", old_key.key_usage);
	if (rc == KC_OK)
		rc = kc_store_set_alias(req->local->store, name, key.key_id, err);
	return kc_store_txn_end(req->local->store, rc, err);
}

KC_API_HANDLER(DeleteAlias)
{
	char key_id[KC_KEY_ID_LEN + 1];
	struct kc_store_key key;
	const char *name = NULL;
	enum kc_status rc;

	(void)resp;
	rc = alias_name(req, &name, err);
	if (rc == KC_OK)
		rc = alias_lookup(req, name, 1, key_id, err);
	if (rc == KC_OK)
		rc = kc_api_key_ref(req, key_id, "kms:DeleteAlias", NULL, &key, err);
	if (rc == KC_OK)
		rc = kc_store_set_alias(req->local->store, name, NULL, err);
	return rc;
}

struct alias_list {
	struct kc_api_req *req;
	json_t *aliases;
	size_t seen, offset, limit;
};

static int add_alias(const char *name, const char *key_id, int64_t created, int64_t updated,
		void *arg)
{
	struct alias_list *list = arg;
	char alias_arn[KC_ARN_MAX];
	json_t *entry;

	if (list->seen++ < list->offset || json_array_size(list->aliases) >= list->limit)
		return 0;
	kc_local_alias_arn(list->req->local, name, alias_arn);
	entry = json_pack("{s:s, s:s, s:s}", "AliasName", name, "AliasArn", alias_arn,
			"TargetKeyId", key_id);
	if (created)
		kc_api_put_time(entry, "CreationDate", created);
	if (updated)
		kc_api_put_time(entry, "LastUpdatedDate", updated);
	json_array_append_new(list->aliases, entry);
	return 0;
}

KC_API_HANDLER(ListAliases)
{
	struct alias_list list = { .req = req };
	const char *key_ref = NULL;
	struct kc_store_key key;
	enum kc_status rc;

	rc = kc_api_list_window(req, ALIAS_LIST_DEFAULT, ALIAS_LIST_MAX, &list.offset, &list.limit, err);
	if (rc == KC_OK)
		rc = kc_api_str(req, "KeyId", KC_API_OPTIONAL, 1, 2048, &key_ref, err);
	if (rc == KC_OK)
		rc = kc_api_authorize_account(req, "kms:ListAliases", err);
	if (rc == KC_OK && key_ref)
		rc = kc_local_find_key(req->local, key_ref, &key, err) == KC_OK ? KC_OK :
			kc_fail(err, KC_NOT_FOUND, "Key '%.200s' does not exist", key_ref);
	if (rc != KC_OK)
		return rc;
	list.aliases = json_array();
	rc = kc_store_each_alias(req->local->store, key_ref ? key.key_id : NULL, add_alias, &list, err);
	json_object_set_new(resp, "Aliases", list.aliases);
	kc_api_put_page_end(resp, list.offset + json_array_size(list.aliases), list.seen);
	return rc;
}
