/*
 * api_keys.c - key lifecycle through the KMS API: CreateKey, DescribeKey,
 * ListKeys, EnableKey, DisableKey, UpdateKeyDescription, deletion with a
 * waiting period, rotation (automatic on a period and on demand), tags,
 * and the maintenance pass that carries out deletions and rotations
 * when they fall due.
 *
 * State rules are AWS's: a key pending deletion can only be described,
 * have its deletion cancelled (it comes back Disabled) or be deleted when
 * the window ends; a key pending import has no material to use.
 */
#include "api_internal.h"
#include "store_import.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DAY_SECONDS 86400
#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000
#define TAGS_MAX 50
#define ON_DEMAND_ROTATIONS_MAX 10

static const char *const key_usages[] = {
	"ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT", NULL,
};
static const char *const key_specs[] = {
	"SYMMETRIC_DEFAULT", "RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384",
	"ECC_NIST_P521", "ECC_SECG_P256K1", "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512",
	"SM2", NULL,
};
static const char *const origins[] = {
	"AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE", NULL,
};

static int64_t now_seconds(void)
{
	return (int64_t)time(NULL);
}

/* ---- tags -------------------------------------------------------------------------------- */

static enum kc_status check_tag(const char *tag_key, const char *tag_value, struct kc_error *err)
{
	size_t key_len = tag_key ? strlen(tag_key) : 0;

	if (key_len < 1 || key_len > 128)
		return kc_fail(err, KC_TAG, "TagKey must be 1 to 128 characters");
	if (!tag_value || strlen(tag_value) > 256)
		return kc_fail(err, KC_TAG, "TagValue must be 0 to 256 characters");
	if (strncmp(tag_key, "aws:", 4) == 0)
		return kc_fail(err, KC_TAG, "Tag keys beginning with aws: are reserved for AWS use");
	return KC_OK;
}

/* Validate the Tags field: a list of {TagKey, TagValue}; *tags borrowed or NULL. */
static enum kc_status read_tags(struct kc_api_req *req, json_t **tags, struct kc_error *err)
{
	json_t *value = json_object_get(req->params, "Tags"), *tag;
	enum kc_status rc;
	size_t i;

	*tags = NULL;
	if (!value || json_is_null(value))
		return KC_OK;
	if (!json_is_array(value))
		return kc_fail(err, KC_SERIALIZATION, "field Tags: expected a list of tags");
	if (json_array_size(value) > TAGS_MAX)
		return kc_fail(err, KC_TAG, "A key can have at most %d tags", TAGS_MAX);
	json_array_foreach(value, i, tag) {
		json_t *tag_key = json_object_get(tag, "TagKey");
		json_t *tag_value = json_object_get(tag, "TagValue");

		if (!json_is_object(tag) || !json_is_string(tag_key) || !json_is_string(tag_value))
			return kc_fail(err, KC_SERIALIZATION,
					"field Tags: each tag must be {\"TagKey\": string, \"TagValue\": string}");
		rc = check_tag(json_string_value(tag_key), json_string_value(tag_value), err);
		if (rc != KC_OK)
			return rc;
	}
	*tags = value;
	return KC_OK;
}

static enum kc_status store_tags(struct kc_api_req *req, const char *key_id, json_t *tags,
		struct kc_error *err)
{
	enum kc_status rc = KC_OK;
	size_t i, count = 0;
	json_t *tag;

	json_array_foreach(tags, i, tag) {
		rc = kc_store_set_tag(req->local->store, key_id,
				json_string_value(json_object_get(tag, "TagKey")),
				json_string_value(json_object_get(tag, "TagValue")), err);
		if (rc != KC_OK)
			return rc;
	}
	rc = kc_store_count_tags(req->local->store, key_id, &count, err);
	if (rc == KC_OK && count > TAGS_MAX)
		rc = kc_fail(err, KC_LIMIT_EXCEEDED, "A key can have at most %d tags", TAGS_MAX);
	return rc;
}

/* ---- CreateKey ------------------------------------------------------------------------------ */

struct create_request {
	const char *description, *usage, *spec, *origin, *policy;
	json_t *tags;
	int multi_region;
	int bypass_lockout_check;
};

static enum kc_status read_create(struct kc_api_req *req, struct create_request *cr,
		struct kc_error *err)
{
	const char *legacy_spec = NULL;
	enum kc_status rc;

	memset(cr, 0, sizeof *cr);
	rc = kc_api_str(req, "Description", KC_API_OPTIONAL, 0, KC_API_DESCRIPTION_MAX,
			&cr->description, err);
	if (rc == KC_OK)
		rc = kc_api_enum(req, "KeyUsage", KC_API_OPTIONAL, key_usages, &cr->usage, err);
	if (rc == KC_OK)
		rc = kc_api_enum(req, "KeySpec", KC_API_OPTIONAL, key_specs, &cr->spec, err);
	if (rc == KC_OK)
		rc = kc_api_enum(req, "CustomerMasterKeySpec", KC_API_OPTIONAL, key_specs,
				&legacy_spec, err);
	if (rc == KC_OK)
		rc = kc_api_enum(req, "Origin", KC_API_OPTIONAL, origins, &cr->origin, err);
	if (rc == KC_OK)
		rc = kc_api_str(req, "Policy", KC_API_OPTIONAL, 1, 32768, &cr->policy, err);
	if (rc == KC_OK)
		rc = kc_api_bool(req, "MultiRegion", &cr->multi_region, NULL, err);
	if (rc == KC_OK)
		rc = kc_api_bool(req, "BypassPolicyLockoutSafetyCheck", &cr->bypass_lockout_check,
				NULL, err);
	if (rc == KC_OK)
		rc = read_tags(req, &cr->tags, err);
	if (rc != KC_OK)
		return rc;
	if (cr->spec && legacy_spec)
		return kc_fail(err, KC_VALIDATION, "You cannot specify KeySpec and CustomerMasterKeySpec "
				"in the same request. CustomerMasterKeySpec parameter is deprecated.");
	if (!cr->spec)
		cr->spec = legacy_spec ? legacy_spec : "SYMMETRIC_DEFAULT";
	if (!cr->origin)
		cr->origin = "AWS_KMS";
	return KC_OK;
}

/* Which spec, usage and origin combinations exist here, with AWS's error types. */
static enum kc_status check_create(struct create_request *cr, struct kc_error *err)
{
	int symmetric = strcmp(cr->spec, "SYMMETRIC_DEFAULT") == 0;
	int rsa = strncmp(cr->spec, "RSA_", 4) == 0;

	if (cr->multi_region)
		return kc_fail(err, KC_UNSUPPORTED_OPERATION, "Multi-Region keys are not supported by this key service");
	if (strcmp(cr->origin, "AWS_KMS") != 0 && strcmp(cr->origin, "EXTERNAL") != 0)
		return kc_fail(err, KC_UNSUPPORTED_OPERATION, "Origin %s is not supported by this key service", cr->origin);
	if (!symmetric && !kc_asym_spec_supported(cr->spec))
		return kc_fail(err, KC_UNSUPPORTED_OPERATION, "KeySpec %s is not supported by this key service", cr->spec);
	if (!cr->usage)
		cr->usage = symmetric || rsa ? "ENCRYPT_DECRYPT" : "SIGN_VERIFY";
	if ((symmetric && strcmp(cr->usage, "ENCRYPT_DECRYPT") != 0) ||
	    (rsa && strcmp(cr->usage, "ENCRYPT_DECRYPT") != 0 && strcmp(cr->usage, "SIGN_VERIFY") != 0) ||
	    (!symmetric && !rsa && strcmp(cr->usage, "SIGN_VERIFY") != 0))
		return kc_fail(err, KC_VALIDATION, "KeyUsage %s is not compatible with KeySpec %s",
				cr->usage, cr->spec);
	if (strcmp(cr->origin, "EXTERNAL") == 0 && !symmetric)
		return kc_fail(err, KC_UNSUPPORTED_OPERATION,
				"Importing key material is supported for SYMMETRIC_DEFAULT keys only here");
	return KC_OK;
}

KC_API_HANDLER(CreateKey)
{
	char key_id[KC_KEY_ID_LEN + 1];
	struct kc_asym_pair *pair = NULL;
	struct create_request cr;
	struct kc_key_attrs attrs;
	struct kc_seal_arg seal;
	struct kc_store_key key;
	int64_t created = now_seconds();
	enum kc_status rc;

	rc = read_create(req, &cr, err);
	if (rc == KC_OK)
		rc = check_create(&cr, err);
	if (rc == KC_OK && cr.policy)
		rc = kc_policy_check(cr.policy, err);
	if (rc == KC_OK)
		rc = kc_api_authorize_account(req, "kms:CreateKey", err);
	if (rc == KC_OK && strcmp(cr.spec, "SYMMETRIC_DEFAULT") != 0)
		rc = kc_asym_pair_make(cr.spec, &pair, err);
	if (rc != KC_OK)
		return rc;
	kc_uuid_v4(key_id);
	kc_api_key_arn(req, key_id, req->result->key_arn);
	/* As in AWS: a key whose policy would shut its creator out needs the bypass flag. */
	if (cr.policy && !cr.bypass_lockout_check) {
		memset(&key, 0, sizeof key);
		snprintf(key.key_id, sizeof key.key_id, "%s", key_id);
		rc = kc_api_policy_lockout_check(req, cr.policy, &key, err);
		if (rc != KC_OK)
			goto out;
	}
	attrs = (struct kc_key_attrs){
		.key_spec = cr.spec, .key_usage = cr.usage, .origin = cr.origin, .policy = cr.policy,
		.state = strcmp(cr.origin, "EXTERNAL") == 0 ? KC_KEY_PENDING_IMPORT : KC_KEY_ENABLED,
	};
	/* Key row, material and tags commit together: no half-made key survives a crash. */
	rc = kc_store_txn_begin(req->local->store, err);
	if (rc != KC_OK)
		goto out;
	if (pair) {
		rc = kc_asym_create_key(req, key_id, cr.description, created, &attrs, pair, err);
	} else {
		seal = (struct kc_seal_arg){ req->local, key_id, NULL, 0 };
		rc = kc_store_create_key_v(req->local->store, key_id, cr.description, created, &attrs,
				attrs.state == KC_KEY_PENDING_IMPORT ? NULL : kc_api_seal_new_material,
				&seal, err);
	}
	if (rc == KC_OK && cr.tags)
		rc = store_tags(req, key_id, cr.tags, err);
	rc = kc_store_txn_end(req->local->store, rc, err);
	if (rc == KC_OK)
		rc = kc_store_get_key(req->local->store, key_id, &key, err);
	if (rc == KC_OK)
		json_object_set_new(resp, "KeyMetadata", kc_api_key_metadata(req, &key));
out:
	kc_asym_pair_release(pair);
	return rc;
}

/* ---- DescribeKey, ListKeys, UpdateKeyDescription ------------------------------------------------ */

KC_API_HANDLER(DescribeKey)
{
	struct kc_store_key key;
	enum kc_status rc;

	rc = kc_api_key(req, "KeyId", "kms:DescribeKey", NULL, &key, err);
	if (rc == KC_OK)
		json_object_set_new(resp, "KeyMetadata", kc_api_key_metadata(req, &key));
	return rc;
}

KC_API_HANDLER(ListKeys)
{
	char (*ids)[KC_KEY_ID_LEN + 1] = NULL;
	size_t offset = 0, limit = 0, count = 0, i;
	char arn[KC_ARN_MAX];
	json_t *keys;
	enum kc_status rc;

	rc = kc_api_list_window(req, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, &offset, &limit, err);
	if (rc == KC_OK)
		rc = kc_api_authorize_account(req, "kms:ListKeys", err);
	if (rc == KC_OK)
		rc = kc_store_list_keys(req->local->store, &ids, &count, err);
	if (rc != KC_OK)
		return rc;
	keys = json_array();
	for (i = offset; i < count && i < offset + limit; i++) {
		kc_api_key_arn(req, ids[i], arn);
		json_array_append_new(keys, json_pack("{s:s, s:s}", "KeyId", ids[i], "KeyArn", arn));
	}
	json_object_set_new(resp, "Keys", keys);
	kc_api_put_page_end(resp, i, count);
	free(ids);
	return KC_OK;
}

KC_API_HANDLER(UpdateKeyDescription)
{
	const char *description = NULL;
	struct kc_store_key key;
	enum kc_status rc;

	(void)resp;
	rc = kc_api_str(req, "Description", KC_API_REQUIRED, 0, KC_API_DESCRIPTION_MAX,
			&description, err);
	if (rc == KC_OK)
		rc = kc_api_key(req, "KeyId", "kms:UpdateKeyDescription", NULL, &key, err);
	if (rc == KC_OK && key.state == KC_KEY_PENDING_DELETION)
		rc = kc_api_require_enabled(req, &key, err);
	if (rc == KC_OK)
		rc = kc_store_set_description(req->local->store, key.key_id, description, err);
	return rc;
}

/* ---- EnableKey, DisableKey ------------------------------------------------------------------------ */

static enum kc_status set_enabled(struct kc_api_req *req, int enabled, struct kc_error *err)
{
	struct kc_store_key key;
	enum kc_status rc;

	rc = kc_api_key(req, "KeyId", enabled ? "kms:EnableKey" : "kms:DisableKey", NULL, &key, err);
	if (rc != KC_OK)
		return rc;
	if (key.state == KC_KEY_PENDING_DELETION || key.state == KC_KEY_PENDING_IMPORT)
		return kc_fail(err, KC_INVALID_STATE, "%s is %s", req->result->key_arn,
				kc_key_state_name(key.state));
	return kc_store_set_state(req->local->store, key.key_id,
			enabled ? KC_KEY_ENABLED : KC_KEY_DISABLED, err);
}

KC_API_HANDLER(EnableKey)
{
	(void)resp;
	return set_enabled(req, 1, err);
}

KC_API_HANDLER(DisableKey)
{
	(void)resp;
	return set_enabled(req, 0, err);
}

/* ---- deletion ----------------------------------------------------------------------------------- */

KC_API_HANDLER(ScheduleKeyDeletion)
{
	struct kc_store *store = req->local->store;
	struct kc_store_key key;
	int64_t days = 30, deletion_date;
	enum kc_status rc;

	rc = kc_api_int(req, "PendingWindowInDays", KC_API_OPTIONAL, 7, 30, &days, NULL, err);
	if (rc == KC_OK)
		rc = kc_api_key(req, "KeyId", "kms:ScheduleKeyDeletion", NULL, &key, err);
	if (rc == KC_OK && key.state == KC_KEY_PENDING_DELETION)
		rc = kc_fail(err, KC_INVALID_STATE, "%s is pending deletion.", req->result->key_arn);
	if (rc != KC_OK)
		return rc;
	deletion_date = now_seconds() + days * DAY_SECONDS;
	rc = kc_store_txn_begin(store, err);
	if (rc != KC_OK)
		return rc;
	rc = kc_store_set_state(store, key.key_id, KC_KEY_PENDING_DELETION, err);
	if (rc == KC_OK)
		rc = kc_store_set_key_int(store, key.key_id, KC_COL_DELETION_DATE, deletion_date, err);
	if (rc == KC_OK)
		rc = kc_store_set_key_int(store, key.key_id, KC_COL_PENDING_WINDOW, days, err);
	rc = kc_store_txn_end(store, rc, err);
	if (rc != KC_OK)
		return rc;
	kc_api_put_str(resp, "KeyId", req->result->key_arn);
	kc_api_put_time(resp, "DeletionDate", deletion_date);
	kc_api_put_str(resp, "KeyState", "PendingDeletion");
	kc_api_put_int(resp, "PendingWindowInDays", days);
	return KC_OK;
}

KC_API_HANDLER(CancelKeyDeletion)
{
	struct kc_store *store = req->local->store;
	struct kc_store_key key;
	enum kc_status rc;

	rc = kc_api_key(req, "KeyId", "kms:CancelKeyDeletion", NULL, &key, err);
	if (rc == KC_OK && key.state != KC_KEY_PENDING_DELETION)
		rc = kc_fail(err, KC_INVALID_STATE, "%s is not pending deletion.", req->result->key_arn);
	if (rc != KC_OK)
		return rc;
	rc = kc_store_txn_begin(store, err);
	if (rc != KC_OK)
		return rc;
	/* As in AWS, a key saved from deletion comes back disabled (or still awaiting import). */
	rc = kc_store_set_state(store, key.key_id, key.material_versions ? KC_KEY_DISABLED :
			KC_KEY_PENDING_IMPORT, err);
	if (rc == KC_OK)
		rc = kc_store_set_key_int(store, key.key_id, KC_COL_DELETION_DATE, 0, err);
	if (rc == KC_OK)
		rc = kc_store_set_key_int(store, key.key_id, KC_COL_PENDING_WINDOW, 0, err);
	rc = kc_store_txn_end(store, rc, err);
	if (rc == KC_OK)
		kc_api_put_str(resp, "KeyId", req->result->key_arn);
	return rc;
}

/* ---- rotation ----------------------------------------------------------------------------------- */

/* Only symmetric keys whose material this service made can rotate. */
static enum kc_status check_rotatable(struct kc_api_req *req, const struct kc_store_key *key,
		struct kc_error *err)
{
	if (!kc_api_is_symmetric(key) || strcmp(key->origin, "AWS_KMS") != 0)
		return kc_fail(err, KC_UNSUPPORTED_OPERATION, "%s cannot be rotated: only symmetric keys "
				"with key material made by the key service rotate", req->result->key_arn);
	return kc_api_require_enabled(req, key, err);
}

KC_API_HANDLER(EnableKeyRotation)
{
	struct kc_store *store = req->local->store;
	int64_t days = KC_ROTATION_DEFAULT_DAYS;
	struct kc_store_key key;
	enum kc_status rc;

	(void)resp;
	rc = kc_api_int(req, "RotationPeriodInDays", KC_API_OPTIONAL, KC_ROTATION_MIN_DAYS,
			KC_ROTATION_MAX_DAYS, &days, NULL, err);
	if (rc == KC_OK)
		rc = kc_api_key(req, "KeyId", "kms:EnableKeyRotation", NULL, &key, err);
	if (rc == KC_OK)
		rc = check_rotatable(req, &key, err);
	if (rc != KC_OK)
		return rc;
	rc = kc_store_txn_begin(store, err);
	if (rc != KC_OK)
		return rc;
	rc = kc_store_set_key_int(store, key.key_id, KC_COL_ROTATION_DAYS, days, err);
	if (rc == KC_OK)
		rc = kc_store_set_key_int(store, key.key_id, KC_COL_NEXT_ROTATION,
				now_seconds() + days * DAY_SECONDS, err);
	return kc_store_txn_end(store, rc, err);
}

KC_API_HANDLER(DisableKeyRotation)
{
	struct kc_store *store = req->local->store;
	struct kc_store_key key;
	enum kc_status rc;

	(void)resp;
	rc = kc_api_key(req, "KeyId", "kms:DisableKeyRotation", NULL, &key, err);
	if (rc == KC_OK)
		rc = check_rotatable(req, &key, err);
	if (rc != KC_OK)
		return rc;
	rc = kc_store_txn_begin(store, err);
	if (rc != KC_OK)
		return rc;
	rc = kc_store_set_key_int(store, key.key_id, KC_COL_ROTATION_DAYS, 0, err);
	if (rc == KC_OK)
		rc = kc_store_set_key_int(store, key.key_id, KC_COL_NEXT_ROTATION, 0, err);
	return kc_store_txn_end(store, rc, err);
}

KC_API_HANDLER(GetKeyRotationStatus)
{
	struct kc_store_key key;
	enum kc_status rc;

	rc = kc_api_key(req, "KeyId", "kms:GetKeyRotationStatus", NULL, &key, err);
	if (rc != KC_OK)
		return rc;
	json_object_set_new(resp, "KeyRotationEnabled", json_boolean(key.rotation_days > 0));
	kc_api_put_str(resp, "KeyId", req->result->key_arn);
	if (key.rotation_days > 0) {
		kc_api_put_int(resp, "RotationPeriodInDays", key.rotation_days);
		kc_api_put_time(resp, "NextRotationDate", key.next_rotation);
	}
	return KC_OK;
}

static int count_on_demand(uint32_t version, int64_t created, const char *rotation_type, void *arg)
{
	(void)version;
	(void)created;
	if (rotation_type && strcmp(rotation_type, "ON_DEMAND") == 0)
		(*(size_t *)arg)++;
	return 0;
}

KC_API_HANDLER(RotateKeyOnDemand)
{
	struct kc_seal_arg seal;
	struct kc_store_key key;
	size_t on_demand = 0;
	enum kc_status rc;

	rc = kc_api_key(req, "KeyId", "kms:RotateKeyOnDemand", NULL, &key, err);
	if (rc == KC_OK)
		rc = check_rotatable(req, &key, err);
	if (rc == KC_OK)
		rc = kc_store_each_material(req->local->store, key.key_id, count_on_demand, &on_demand, err);
	if (rc == KC_OK && on_demand >= ON_DEMAND_ROTATIONS_MAX)
		rc = kc_fail(err, KC_LIMIT_EXCEEDED, "%s has reached the limit of %d on-demand rotations",
				req->result->key_arn, ON_DEMAND_ROTATIONS_MAX);
	if (rc != KC_OK)
		return rc;
	seal = (struct kc_seal_arg){ req->local, key.key_id, NULL, 0 };
	rc = kc_store_add_material_v(req->local->store, key.key_id, "ON_DEMAND",
			kc_api_seal_new_material, &seal, NULL, err);
	if (rc == KC_OK)
		kc_api_put_str(resp, "KeyId", req->result->key_arn);
	return rc;
}

struct rotation_list {
	json_t *rotations;
	const char *key_arn;
	size_t seen, offset, limit;
};

static int add_rotation(uint32_t version, int64_t created, const char *rotation_type, void *arg)
{
	struct rotation_list *list = arg;
	json_t *entry;

	(void)version;
	if (!rotation_type)   /* the key's original material is no rotation */
		return 0;
	if (list->seen++ < list->offset || json_array_size(list->rotations) >= list->limit)
		return 0;
	entry = json_pack("{s:s, s:f, s:s}", "KeyId", list->key_arn, "RotationDate",
			(double)created, "RotationType", rotation_type);
	json_array_append_new(list->rotations, entry);
	return 0;
}

KC_API_HANDLER(ListKeyRotations)
{
	struct rotation_list list = { 0 };
	struct kc_store_key key;
	enum kc_status rc;

	rc = kc_api_list_window(req, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, &list.offset, &list.limit, err);
	if (rc == KC_OK)
		rc = kc_api_key(req, "KeyId", "kms:ListKeyRotations", NULL, &key, err);
	if (rc == KC_OK && (!kc_api_is_symmetric(&key) || strcmp(key.origin, "AWS_KMS") != 0))
		rc = kc_fail(err, KC_UNSUPPORTED_OPERATION, "%s has no rotations to list",
				req->result->key_arn);
	if (rc != KC_OK)
		return rc;
	list.rotations = json_array();
	list.key_arn = req->result->key_arn;
	rc = kc_store_each_material(req->local->store, key.key_id, add_rotation, &list, err);
	json_object_set_new(resp, "Rotations", list.rotations);
	kc_api_put_page_end(resp, list.offset + json_array_size(list.rotations), list.seen);
	return rc;
}

/* ---- tags ----------------------------------------------------------------------------------------- */

KC_API_HANDLER(TagResource)
{
	struct kc_store_key key;
	json_t *tags = NULL;
	enum kc_status rc;

	(void)resp;
	rc = read_tags(req, &tags, err);
	if (rc == KC_OK && !tags)
		rc = kc_api_invalid(err, "Tags", "Member must not be null");
	if (rc == KC_OK)
		rc = kc_api_key(req, "KeyId", "kms:TagResource", NULL, &key, err);
	if (rc == KC_OK && key.state == KC_KEY_PENDING_DELETION)
		rc = kc_api_require_enabled(req, &key, err);
	if (rc != KC_OK)
		return rc;
	rc = kc_store_txn_begin(req->local->store, err);
	if (rc == KC_OK)
		rc = kc_store_txn_end(req->local->store, store_tags(req, key.key_id, tags, err), err);
	return rc;
}

KC_API_HANDLER(UntagResource)
{
	const char **tag_keys = NULL;
	struct kc_store_key key;
	size_t count = 0;
	enum kc_status rc;

	(void)resp;
	rc = kc_api_strlist(req, "TagKeys", KC_API_REQUIRED, TAGS_MAX, NULL, &tag_keys, &count, err);
	if (rc == KC_OK)
		rc = kc_api_key(req, "KeyId", "kms:UntagResource", NULL, &key, err);
	if (rc == KC_OK && key.state == KC_KEY_PENDING_DELETION)
		rc = kc_api_require_enabled(req, &key, err);
	if (rc == KC_OK)
		rc = kc_store_txn_begin(req->local->store, err);
	if (rc == KC_OK) {
		for (size_t i = 0; rc == KC_OK && i < count; i++)
			rc = kc_store_delete_tag(req->local->store, key.key_id, tag_keys[i], err);
		rc = kc_store_txn_end(req->local->store, rc, err);
	}
	free(tag_keys);
	return rc;
}

struct tag_list {
	json_t *tags;
	size_t seen, offset, limit;
};

static int add_tag(const char *tag_key, const char *tag_value, void *arg)
{
	struct tag_list *list = arg;

	if (list->seen++ < list->offset || json_array_size(list->tags) >= list->limit)
		return 0;
	json_array_append_new(list->tags, json_pack("{s:s, s:s}", "TagKey", tag_key,
			"TagValue", tag_value));
	return 0;
}

KC_API_HANDLER(ListResourceTags)
{
	struct tag_list list = { 0 };
	struct kc_store_key key;
	enum kc_status rc;

	rc = kc_api_list_window(req, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, &list.offset, &list.limit, err);
	if (rc == KC_OK)
		rc = kc_api_key(req, "KeyId", "kms:ListResourceTags", NULL, &key, err);
	if (rc != KC_OK)
		return rc;
	list.tags = json_array();
	rc = kc_store_each_tag(req->local->store, key.key_id, add_tag, &list, err);
	json_object_set_new(resp, "Tags", list.tags);
	kc_api_put_page_end(resp, list.offset + json_array_size(list.tags), list.seen);
	return rc;
}

/* ---- maintenance ---------------------------------------------------------------------------------- */

static enum kc_status delete_due(struct kc_local *local, int64_t now, struct kc_error *err)
{
	char (*ids)[KC_KEY_ID_LEN + 1] = NULL;
	enum kc_status rc;
	size_t count = 0;

	rc = kc_store_keys_due(local->store, now, 0, &ids, &count, err);
	for (size_t i = 0; rc == KC_OK && i < count; i++)
		rc = kc_store_delete_key(local->store, ids[i], err);
	free(ids);
	return rc;
}

static enum kc_status rotate_one(struct kc_local *local, const char *key_id, int64_t now,
		struct kc_error *err)
{
	struct kc_seal_arg seal = { local, key_id, NULL, 0 };
	struct kc_store_key key;
	enum kc_status rc;

	rc = kc_store_txn_begin(local->store, err);
	if (rc != KC_OK)
		return rc;
	rc = kc_store_get_key(local->store, key_id, &key, err);
	if (rc == KC_OK)
		rc = kc_store_add_material_v(local->store, key_id, "AUTOMATIC",
				kc_api_seal_new_material, &seal, NULL, err);
	if (rc == KC_OK)
		rc = kc_store_set_key_int(local->store, key_id, KC_COL_NEXT_ROTATION,
				now + (int64_t)key.rotation_days * DAY_SECONDS, err);
	return kc_store_txn_end(local->store, rc, err);
}

static enum kc_status rotate_due(struct kc_local *local, int64_t now, struct kc_error *err)
{
	char (*ids)[KC_KEY_ID_LEN + 1] = NULL;
	enum kc_status rc;
	size_t count = 0;

	rc = kc_store_keys_due(local->store, now, 1, &ids, &count, err);
	for (size_t i = 0; rc == KC_OK && i < count; i++)
		rc = rotate_one(local, ids[i], now, err);
	free(ids);
	return rc;
}

enum kc_status kc_api_maintenance(struct keyclient *kc, int64_t now, struct kc_error *err)
{
	struct kc_local *local;
	enum kc_status rc;

	if (!kc || !kc->ops || strcmp(kc->ops->name, "local") != 0)
		return kc_fail(err, KC_INTERNAL, "maintenance needs the local engine");
	local = kc_local_of(kc);
	rc = delete_due(local, now, err);
	if (rc == KC_OK)
		rc = rotate_due(local, now, err);
	if (rc == KC_OK)
		rc = kc_import_expire_due(local, now, err);
	return rc;
}
