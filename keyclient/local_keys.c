/*
 * local_keys.c - the local engine's key management: CreateKey,
 * DescribeKey, ListKeys, aliases, Enable/DisableKey, rotation and the
 * principals listed on a key. The CLI (`kmsfs key ...`) drives these.
 *
 * New key material comes from the OS CSPRNG straight into secure memory,
 * is sealed under the root key with AAD = key id ‖ version, and is wiped
 * right after; the database only ever sees sealed material.
 */
#include "crypto.h"
#include "local_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

/* ---- new key material ------------------------------------------------------------ */

struct material_sealing {
	const uint8_t *root_key;
	uint8_t key_uuid[KC_UUID_LEN];
};

/* kc_material_sealer: random material for (key, version), sealed. */
static int seal_new_material(uint32_t version, uint8_t sealed[KC_SEALED_KEY_LEN], void *arg)
{
	const struct material_sealing *sealing = arg;
	uint8_t aad[KC_MATERIAL_AAD_LEN];
	uint8_t *material = kmsfs_secure_alloc(KC_KEY_LEN);

	if (!material)
		return -1;
	randombytes_buf(material, KC_KEY_LEN);
	kc_material_aad(sealing->key_uuid, version, aad);
	kc_seal(sealing->root_key, aad, sizeof aad, material, KC_KEY_LEN, sealed);
	kmsfs_secure_free(material);
	return 0;
}

/* ---- key info ----------------------------------------------------------------------- */

static enum kc_status fill_info(struct kc_local *local, const struct kc_store_key *key,
		struct kc_key_info *info, struct kc_error *err)
{
	enum kc_status rc;

	memset(info, 0, sizeof *info);
	snprintf(info->key_id, sizeof info->key_id, "%s", key->key_id);
	kc_local_key_arn(local, key->key_id, info->arn);
	snprintf(info->description, sizeof info->description, "%.255s", key->description);
	info->state = key->state;
	info->creation_date = key->created;
	info->material_versions = key->material_versions;
	rc = kc_store_key_aliases(local->store, key->key_id, info->aliases, 8, &info->alias_count, err);
	if (rc == KC_OK)
		rc = kc_store_key_principals(local->store, key->key_id, info->principals, 8,
				&info->principal_count, err);
	return rc;
}

/* Find key_ref and check the caller may perform action on it. */
static enum kc_status find_authorized(struct kc_local *local, const char *key_ref,
		const char *action, const struct kc_caller *caller, struct kc_store_key *key,
		struct kc_error *err)
{
	enum kc_status rc = kc_local_find_key(local, key_ref, key, err);

	if (rc != KC_OK)
		return rc;
	return kc_authorize(local, key->key_id, action, caller, err);
}

/* ---- operations ----------------------------------------------------------------------- */

enum kc_status kc_local_create_key(struct keyclient *kc, const char *description,
		const struct kc_caller *caller, struct kc_key_info *out, struct kc_error *err)
{
	struct kc_local *local = kc_local_of(kc);
	struct material_sealing sealing = { .root_key = local->root_key };
	struct kc_store_key key;
	enum kc_status rc;

	if (!description)
		description = "";
	rc = kc_authorize(local, NULL, "kms:CreateKey", caller, err);
	if (rc != KC_OK)
		return rc;
	if (strlen(description) > KC_DESCRIPTION_MAX)
		return kc_fail(err, KC_VALIDATION, "CreateKey: description longer than %d characters",
				KC_DESCRIPTION_MAX);
	memset(&key, 0, sizeof key);
	kc_uuid_v4(key.key_id);
	kc_uuid_parse(key.key_id, sealing.key_uuid);
	rc = kc_store_create_key(local->store, key.key_id, description, (int64_t)time(NULL),
			seal_new_material, &sealing, err);
	if (rc != KC_OK || !out)
		return rc;
	rc = kc_store_get_key(local->store, key.key_id, &key, err);
	if (rc != KC_OK)
		return rc;
	return fill_info(local, &key, out, err);
}

enum kc_status kc_local_describe_key(struct keyclient *kc, const char *key_id,
		const struct kc_caller *caller, struct kc_key_info *out, struct kc_error *err)
{
	struct kc_local *local = kc_local_of(kc);
	struct kc_store_key key;
	enum kc_status rc;

	if (!out)
		return kc_fail(err, KC_VALIDATION, "DescribeKey: no output");
	rc = find_authorized(local, key_id, "kms:DescribeKey", caller, &key, err);
	if (rc != KC_OK)
		return rc;
	return fill_info(local, &key, out, err);
}

enum kc_status kc_local_list_keys(struct keyclient *kc, const struct kc_caller *caller,
		int (*fn)(const struct kc_key_info *info, void *arg), void *arg,
		struct kc_error *err)
{
	struct kc_local *local = kc_local_of(kc);
	char (*ids)[KC_KEY_ID_LEN + 1] = NULL;
	struct kc_key_info info;
	struct kc_store_key key;
	size_t count = 0;
	enum kc_status rc;

	rc = kc_authorize(local, NULL, "kms:ListKeys", caller, err);
	if (rc == KC_OK && !fn)
		rc = kc_fail(err, KC_VALIDATION, "ListKeys: no callback");
	if (rc == KC_OK)
		rc = kc_store_list_keys(local->store, &ids, &count, err);
	for (size_t i = 0; rc == KC_OK && i < count; i++) {
		rc = kc_store_get_key(local->store, ids[i], &key, err);
		if (rc == KC_NOT_FOUND) {   /* removed since the listing: skip it */
			rc = KC_OK;
			continue;
		}
		if (rc == KC_OK)
			rc = fill_info(local, &key, &info, err);
		if (rc == KC_OK && fn(&info, arg) != 0)
			break;
	}
	free(ids);
	return rc;
}

enum kc_status kc_local_set_alias(struct keyclient *kc, const char *alias_name,
		const char *target_key_id, const struct kc_caller *caller, struct kc_error *err)
{
	struct kc_local *local = kc_local_of(kc);
	struct kc_store_key key;
	enum kc_status rc;

	rc = kc_alias_name_check(alias_name, err);
	if (rc != KC_OK)
		return rc;
	if (!target_key_id) {
		/* Deleting: authorize on the key the alias points at now. */
		rc = find_authorized(local, alias_name, "kms:DeleteAlias", caller, &key, err);
		if (rc == KC_OK)
			rc = kc_store_set_alias(local->store, alias_name, NULL, err);
		return rc;
	}
	rc = find_authorized(local, target_key_id, "kms:CreateAlias", caller, &key, err);
	if (rc == KC_OK)
		rc = kc_store_set_alias(local->store, alias_name, key.key_id, err);
	return rc;
}

enum kc_status kc_local_set_key_enabled(struct keyclient *kc, const char *key_id,
		int enabled, const struct kc_caller *caller, struct kc_error *err)
{
	struct kc_local *local = kc_local_of(kc);
	struct kc_store_key key;
	enum kc_status rc;

	rc = find_authorized(local, key_id, enabled ? "kms:EnableKey" : "kms:DisableKey",
			caller, &key, err);
	if (rc != KC_OK)
		return rc;
	if (key.state == KC_KEY_PENDING_DELETION)
		return kc_fail(err, KC_INVALID_STATE, "key %s is pending deletion; cancel the deletion first",
				key.key_id);
	return kc_store_set_state(local->store, key.key_id,
			enabled ? KC_KEY_ENABLED : KC_KEY_DISABLED, err);
}

enum kc_status kc_local_rotate_key(struct keyclient *kc, const char *key_id,
		const struct kc_caller *caller, struct kc_error *err)
{
	struct kc_local *local = kc_local_of(kc);
	struct material_sealing sealing = { .root_key = local->root_key };
	struct kc_store_key key;
	enum kc_status rc;

	rc = find_authorized(local, key_id, "kms:RotateKeyOnDemand", caller, &key, err);
	if (rc == KC_OK)
		rc = kc_local_require_enabled(&key, err);
	if (rc != KC_OK)
		return rc;
	kc_uuid_parse(key.key_id, sealing.key_uuid);
	return kc_store_add_material(local->store, key.key_id, seal_new_material, &sealing, NULL, err);
}

static enum kc_status check_principal_name(const char *principal, struct kc_error *err)
{
	size_t len = principal ? strlen(principal) : 0;

	if (len == 0 || len > KC_PRINCIPAL_MAX)
		return kc_fail(err, KC_VALIDATION, "principal \"%.64s\": must be 1..%d characters",
				principal ? principal : "", KC_PRINCIPAL_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)principal[i];
		if (c <= ' ' || c == 0x7f)
			return kc_fail(err, KC_VALIDATION, "principal \"%.64s\": contains a space or control character",
					principal);
	}
	return KC_OK;
}

enum kc_status kc_local_set_key_principal(struct keyclient *kc, const char *key_id,
		const char *principal, int allow, const struct kc_caller *caller,
		struct kc_error *err)
{
	struct kc_local *local = kc_local_of(kc);
	struct kc_store_key key;
	enum kc_status rc;

	rc = check_principal_name(principal, err);
	if (rc == KC_OK)
		rc = find_authorized(local, key_id, "kms:PutKeyPolicy", caller, &key, err);
	if (rc == KC_OK)
		rc = kc_store_set_principal(local->store, key.key_id, principal, allow, err);
	return rc;
}
