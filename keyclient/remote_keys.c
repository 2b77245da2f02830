/*
 * remote_keys.c - the remote transport's key management, for the CLI
 * (`kmsfs key ...` against kmsd or AWS KMS): CreateKey, DescribeKey,
 * ListKeys, aliases (CreateAlias/UpdateAlias/DeleteAlias),
 * Enable/DisableKey and RotateKeyOnDemand.
 *
 * A kc_key_info takes more than one call: DescribeKey for the metadata,
 * ListAliases for the key's aliases and ListKeyRotations for its number
 * of material versions. The last is best effort (AWS refuses it for
 * asymmetric and AWS-managed keys, and a caller may lack
 * kms:ListKeyRotations): material_versions is 0 when the service did not
 * say. set_key_principal is not offered: a remote key's access is its
 * key policy and grants, managed with the service's own tools.
 */
#include "remote_internal.h"

#include <stdio.h>
#include <string.h>

/* ---- paging ------------------------------------------------------------------------- */

/* Called once per element of a listed page; non-zero stops the listing. */
typedef int (*kc_remote_item_fn)(json_t *item, void *arg);

/* Walk one page's list; 1 when fn asked to stop. */
static int each_item(json_t *list, kc_remote_item_fn fn, void *arg)
{
	size_t i;
	json_t *item;

	json_array_foreach(list, i, item)
		if (fn(item, arg))
			return 1;
	return 0;
}

/* The marker of the next page, or NULL at the end; a marker that does not move is an error. */
static enum kc_status next_marker(const struct kc_remote_call *call, const char **marker,
		struct kc_error *err)
{
	const char *previous = json_string_value(json_object_get(call->request, "Marker"));
	const char *next = json_string_value(json_object_get(call->response, "NextMarker"));

	*marker = NULL;
	if (!json_is_true(json_object_get(call->response, "Truncated")))
		return KC_OK;
	if (!next || (previous && strcmp(previous, next) == 0))
		return kc_fail(err, KC_INTERNAL, "%s answer: truncated without a new NextMarker",
				call->operation);
	*marker = next;
	return KC_OK;
}

/*
 * operation with request (borrowed; its Marker is set page by page),
 * fn once per element of each page's list_field, until the last page or
 * until fn returns non-zero.
 */
static enum kc_status each_listed(struct kc_remote *remote, const char *operation,
		json_t *request, const char *list_field, const struct kc_caller *caller,
		kc_remote_item_fn fn, void *arg, struct kc_error *err)
{
	struct kc_remote_call call = { .operation = operation, .caller = caller, .request = request };
	const char *marker = NULL;
	enum kc_status rc;
	int stop = 0;

	do {
		rc = kc_remote_call(remote, &call, err);
		if (rc != KC_OK)
			break;
		stop = each_item(json_object_get(call.response, list_field), fn, arg);
		rc = next_marker(&call, &marker, err);
		if (rc == KC_OK && marker)
			json_object_set_new(request, "Marker", json_string(marker));
		json_decref(call.response);
		call.response = NULL;
	} while (rc == KC_OK && marker && !stop);
	return rc;
}

/* ---- key info ---------------------------------------------------------------------------- */

/* AWS's key states beyond kmsfs's four (Creating, Unavailable, Updating, ...) read as Disabled. */
static enum kc_key_state key_state(const char *name)
{
	if (name && strcmp(name, "Enabled") == 0)
		return KC_KEY_ENABLED;
	if (name && strcmp(name, "PendingDeletion") == 0)
		return KC_KEY_PENDING_DELETION;
	if (name && strcmp(name, "PendingImport") == 0)
		return KC_KEY_PENDING_IMPORT;
	return KC_KEY_DISABLED;
}

static enum kc_status info_from_metadata(const struct kc_remote_call *call,
		struct kc_key_info *info, struct kc_error *err)
{
	json_t *meta = json_object_get(call->response, "KeyMetadata");
	const char *description = json_string_value(json_object_get(meta, "Description"));
	enum kc_status rc;

	memset(info, 0, sizeof *info);
	rc = kc_remote_get_string(call, meta, "KeyId", info->key_id, sizeof info->key_id, err);
	if (rc == KC_OK)
		rc = kc_remote_get_string(call, meta, "Arn", info->arn, sizeof info->arn, err);
	if (rc != KC_OK)
		return rc;
	snprintf(info->description, sizeof info->description, "%.255s", description ? description : "");
	info->state = key_state(json_string_value(json_object_get(meta, "KeyState")));
	info->creation_date = (int64_t)json_number_value(json_object_get(meta, "CreationDate"));
	return KC_OK;
}

static int add_alias(json_t *item, void *arg)
{
	struct kc_key_info *info = arg;
	const char *name = json_string_value(json_object_get(item, "AliasName"));

	if (name && info->alias_count < sizeof info->aliases / sizeof info->aliases[0])
		snprintf(info->aliases[info->alias_count++], sizeof info->aliases[0], "%.255s", name);
	return 0;
}

static int count_rotation(json_t *item, void *arg)
{
	uint32_t *rotations = arg;

	(*rotations)++;
	return 0;
}

/* The key's aliases (required) and material versions (best effort) into info. */
static enum kc_status add_key_details(struct kc_remote *remote, const struct kc_caller *caller,
		struct kc_key_info *info, struct kc_error *err)
{
	json_t *aliases = json_pack("{s:s}", "KeyId", info->key_id);
	json_t *rotations = json_pack("{s:s}", "KeyId", info->key_id);
	struct kc_error ignored;
	uint32_t rotation_count = 0;
	enum kc_status rc;

	rc = each_listed(remote, "ListAliases", aliases, "Aliases", caller, add_alias, info, err);
	if (rc == KC_OK && each_listed(remote, "ListKeyRotations", rotations, "Rotations", caller,
			count_rotation, &rotation_count, &ignored) == KC_OK)
		info->material_versions = rotation_count + 1;
	json_decref(aliases);
	json_decref(rotations);
	return rc;
}

/* ---- operations ----------------------------------------------------------------------- */

/* One call that answers with KeyMetadata, read into out. */
static enum kc_status metadata_call(struct kc_remote *remote, const char *operation,
		json_t *request, const struct kc_caller *caller, struct kc_key_info *out,
		struct kc_error *err)
{
	struct kc_remote_call call = { .operation = operation, .caller = caller, .request = request };
	enum kc_status rc;

	rc = kc_remote_call(remote, &call, err);
	if (rc == KC_OK)
		rc = info_from_metadata(&call, out, err);
	json_decref(call.response);
	json_decref(request);
	return rc;
}

enum kc_status kc_remote_create_key(struct keyclient *kc, const char *description,
		const struct kc_caller *caller, struct kc_key_info *out, struct kc_error *err)
{
	json_t *request = json_pack("{s:s}", "Description", description ? description : "");
	enum kc_status rc;

	rc = metadata_call(kc_remote_of(kc), "CreateKey", request, caller, out, err);
	if (rc == KC_OK)
		out->material_versions = 1;
	return rc;
}

enum kc_status kc_remote_describe_key(struct keyclient *kc, const char *key_id,
		const struct kc_caller *caller, struct kc_key_info *out, struct kc_error *err)
{
	enum kc_status rc;

	if (!key_id)
		return kc_fail(err, KC_VALIDATION, "DescribeKey: key id missing");
	rc = metadata_call(kc_remote_of(kc), "DescribeKey", json_pack("{s:s}", "KeyId", key_id),
			caller, out, err);
	if (rc == KC_OK)
		rc = add_key_details(kc_remote_of(kc), caller, out, err);
	return rc;
}

struct key_listing {
	struct keyclient *kc;
	const struct kc_caller *caller;
	int (*fn)(const struct kc_key_info *info, void *arg);
	void *arg;
	enum kc_status rc;
	struct kc_error *err;
};

/* One listed key: described, then handed to the caller's fn. */
static int list_one_key(json_t *item, void *arg)
{
	struct key_listing *listing = arg;
	const char *arn = json_string_value(json_object_get(item, "KeyArn"));
	const char *key_id = json_string_value(json_object_get(item, "KeyId"));
	struct kc_key_info info;

	listing->rc = kc_remote_describe_key(listing->kc, arn ? arn : key_id, listing->caller,
			&info, listing->err);
	/*
	 * A key whose policy lets the caller list but not describe it is left
	 * out: one such key must not make the whole listing fail.
	 */
	if (listing->rc == KC_ACCESS_DENIED) {
		listing->rc = KC_OK;
		if (listing->err)
			memset(listing->err, 0, sizeof *listing->err);
		return 0;
	}
	if (listing->rc != KC_OK)
		return 1;
	return listing->fn(&info, listing->arg);
}

enum kc_status kc_remote_list_keys(struct keyclient *kc, const struct kc_caller *caller,
		int (*fn)(const struct kc_key_info *info, void *arg), void *arg,
		struct kc_error *err)
{
	struct key_listing listing = {
		.kc = kc, .caller = caller, .fn = fn, .arg = arg, .rc = KC_OK, .err = err,
	};
	json_t *request = json_object();
	enum kc_status rc;

	if (!fn)
		return kc_fail(err, KC_VALIDATION, "ListKeys: no callback");
	rc = each_listed(kc_remote_of(kc), "ListKeys", request, "Keys", caller, list_one_key,
			&listing, err);
	json_decref(request);
	return rc != KC_OK ? rc : listing.rc;
}

/* One call whose answer carries nothing the caller needs. */
static enum kc_status plain_call(struct kc_remote *remote, const char *operation,
		json_t *request, const struct kc_caller *caller, struct kc_error *err)
{
	struct kc_remote_call call = { .operation = operation, .caller = caller, .request = request };
	enum kc_status rc;

	rc = kc_remote_call(remote, &call, err);
	json_decref(call.response);
	json_decref(request);
	return rc;
}

/* CreateAlias, or UpdateAlias when it exists already (set_alias re-points). */
enum kc_status kc_remote_set_alias(struct keyclient *kc, const char *alias_name,
		const char *target_key_id, const struct kc_caller *caller, struct kc_error *err)
{
	struct kc_remote *remote = kc_remote_of(kc);
	enum kc_status rc;

	if (!alias_name)
		return kc_fail(err, KC_VALIDATION, "alias name missing");
	if (!target_key_id)
		return plain_call(remote, "DeleteAlias", json_pack("{s:s}", "AliasName", alias_name),
				caller, err);
	rc = plain_call(remote, "CreateAlias", json_pack("{s:s, s:s}", "AliasName", alias_name,
			"TargetKeyId", target_key_id), caller, err);
	if (rc == KC_ALREADY_EXISTS)
		rc = plain_call(remote, "UpdateAlias", json_pack("{s:s, s:s}", "AliasName", alias_name,
				"TargetKeyId", target_key_id), caller, err);
	return rc;
}

enum kc_status kc_remote_set_key_enabled(struct keyclient *kc, const char *key_id, int enabled,
		const struct kc_caller *caller, struct kc_error *err)
{
	if (!key_id)
		return kc_fail(err, KC_VALIDATION, "key id missing");
	return plain_call(kc_remote_of(kc), enabled ? "EnableKey" : "DisableKey",
			json_pack("{s:s}", "KeyId", key_id), caller, err);
}

enum kc_status kc_remote_rotate_key(struct keyclient *kc, const char *key_id,
		const struct kc_caller *caller, struct kc_error *err)
{
	if (!key_id)
		return kc_fail(err, KC_VALIDATION, "key id missing");
	return plain_call(kc_remote_of(kc), "RotateKeyOnDemand", json_pack("{s:s}", "KeyId", key_id),
			caller, err);
}

enum kc_status kc_remote_set_key_principal(struct keyclient *kc, const char *key_id,
		const char *principal, int allow, const struct kc_caller *caller,
		struct kc_error *err)
{
	return kc_fail(err, KC_UNSUPPORTED_OPERATION, "a remote key's principals are its key policy "
			"and grants: change them with the key service's own tools (aws kms put-key-policy, "
			"create-grant, revoke-grant)");
}
