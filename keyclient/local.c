/*
 * local.c - the local engine: unlocking a key store and the pieces every
 * operation shares (key lookup, state check, key material).
 *
 * The root key comes from a passphrase, a key file or a PKCS#11 token
 * (rootkey.c says how) and stays in libsodium secure memory for the life
 * of the keyclient; it only ever unseals key material, which is itself
 * unsealed per operation into secure memory and freed (wiped) right
 * after. A fresh store gets a random store id and salt, records the
 * creating uid as its owner and seals a verifier under the root key,
 * which is what proves the root key right when the store is opened.
 * The operations themselves live in local_data.c and local_keys.c.
 */
#include "crypto.h"
#include "local_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

/* What the verifier seals: the root key is right if this comes back. */
static const uint8_t verifier_plain[KC_VERIFIER_PLAIN_LEN] = "kmsfs key store root key check";

static void local_destroy(struct keyclient *kc);

static const struct keyclient_ops local_ops = {
	.name = "local",
	.generate_data_key = kc_local_generate_data_key,
	.decrypt = kc_local_decrypt,
	.encrypt = kc_local_encrypt,
	.re_encrypt = kc_local_re_encrypt,
	.create_key = kc_local_create_key,
	.describe_key = kc_local_describe_key,
	.list_keys = kc_local_list_keys,
	.set_alias = kc_local_set_alias,
	.set_key_enabled = kc_local_set_key_enabled,
	.rotate_key = kc_local_rotate_key,
	.set_key_principal = kc_local_set_key_principal,
	.destroy = local_destroy,
};

void kc_local_principal(uid_t uid, char *out, size_t out_len)
{
	snprintf(out, out_len, "uid:%ju", (uintmax_t)uid);
}

/* ---- create / unlock ------------------------------------------------------------------ */

static void adopt_meta(struct kc_local *local, const struct kc_store_meta *meta)
{
	memcpy(local->store_id, meta->store_id, KC_STORE_ID_LEN);
	local->owner_uid = meta->owner_uid;
	kc_local_principal(meta->owner_uid, local->owner_principal, sizeof local->owner_principal);
}

static enum kc_status unlock_store(struct kc_local *local, const struct kc_local_options *opts,
		const struct kc_store_meta *meta, struct kc_error *err)
{
	uint8_t *check = NULL;
	enum kc_status rc;

	rc = kc_root_key_unlock(opts, meta, local->root_key, err);
	if (rc != KC_OK)
		goto out;
	check = kmsfs_secure_alloc(KC_VERIFIER_PLAIN_LEN);
	if (!check) {
		rc = kc_fail(err, KC_INTERNAL, "key store %s: out of secure memory", opts->dir);
		goto out;
	}
	if (kc_unseal(local->root_key, meta->store_id, KC_STORE_ID_LEN, meta->verifier,
			KC_VERIFIER_LEN, check) != 0 ||
	    sodium_memcmp(check, verifier_plain, KC_VERIFIER_PLAIN_LEN) != 0) {
		rc = kc_root_key_wrong(opts, meta, err);
		goto out;
	}
	adopt_meta(local, meta);
out:
	kmsfs_secure_free(check);
	return rc;
}

static enum kc_status init_store(struct kc_local *local, const struct kc_local_options *opts,
		struct kc_store_meta *meta, struct kc_error *err)
{
	enum kc_status rc;

	memset(meta, 0, sizeof *meta);
	randombytes_buf(meta->store_id, KC_STORE_ID_LEN);
	randombytes_buf(meta->salt, KC_SALT_LEN);
	meta->owner_uid = getuid();
	rc = kc_root_key_create(opts, meta, local->root_key, err);
	if (rc != KC_OK)
		return rc;
	kc_seal(local->root_key, meta->store_id, KC_STORE_ID_LEN, verifier_plain,
			KC_VERIFIER_PLAIN_LEN, meta->verifier);
	rc = kc_store_put_meta(local->store, meta, err);
	if (rc == KC_ALREADY_EXISTS) {   /* another process won the race: open theirs */
		rc = kc_store_get_meta(local->store, meta, err);
		if (rc == KC_OK)
			return unlock_store(local, opts, meta, err);
		return rc;
	}
	if (rc == KC_OK)
		adopt_meta(local, meta);
	return rc;
}

static enum kc_status open_or_create(struct kc_local *local, const struct kc_local_options *opts,
		struct kc_error *err)
{
	struct kc_store_meta meta;
	enum kc_status rc;

	rc = kc_store_open_ex(opts->dir, opts->create, opts->exclusive, &local->store, err);
	if (rc != KC_OK)
		return rc;
	rc = kc_store_get_meta(local->store, &meta, err);
	if (rc == KC_NOT_FOUND && opts->create)
		return init_store(local, opts, &meta, err);
	if (rc == KC_NOT_FOUND)
		return kc_fail(err, KC_NOT_FOUND, "key store %s: not initialised; create it with `kmsfs init`",
				opts->dir);
	if (rc != KC_OK)
		return rc;
	return unlock_store(local, opts, &meta, err);
}

static void free_local(struct kc_local *local)
{
	if (!local)
		return;
	kmsfs_secure_free(local->root_key);   /* wipes the root key */
	kc_store_close(local->store);
	free(local);
}

enum kc_status kc_local_open(const char *dir, const char *passphrase, int create,
		struct keyclient **out, struct kc_error *err)
{
	struct kc_local_options opts = {
		.dir = dir, .create = create, .passphrase = passphrase,
	};

	return kc_local_open_opts(&opts, out, err);
}

static int all_digits(const char *s, size_t len)
{
	if (strlen(s) != len)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

static int region_ok(const char *region)
{
	size_t len = strlen(region);

	if (len == 0 || len > KC_REGION_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!((region[i] >= 'a' && region[i] <= 'z') || (region[i] >= '0' && region[i] <= '9') ||
		      region[i] == '-'))
			return 0;
	return 1;
}

/* Region, account and the ARN prefix they make; an account turns on policy evaluation. */
static enum kc_status set_identity(struct kc_local *local, const struct kc_local_options *opts,
		struct kc_error *err)
{
	const char *region = opts->region ? opts->region : "local";
	const char *account = opts->account ? opts->account : "000000000000";

	if (!region_ok(region))
		return kc_fail(err, KC_VALIDATION, "region %.40s: not a region name (a-z, 0-9, -)", region);
	if (!all_digits(account, KC_ACCOUNT_LEN))
		return kc_fail(err, KC_VALIDATION, "account %.40s: not a 12-digit account id", account);
	snprintf(local->region, sizeof local->region, "%s", region);
	snprintf(local->account, sizeof local->account, "%s", account);
	snprintf(local->arn_prefix, sizeof local->arn_prefix, "arn:aws:kms:%s:%s:", region, account);
	local->account_mode = opts->account != NULL;
	return KC_OK;
}

enum kc_status kc_local_open_opts(const struct kc_local_options *opts,
		struct keyclient **out, struct kc_error *err)
{
	const char *dir = opts ? opts->dir : NULL;
	struct kc_local *local = NULL;
	struct keyclient *kc = NULL;
	enum kc_root_source source;
	enum kc_status rc = KC_OK;

	if (out)
		*out = NULL;
	if (!dir || !*dir || !out) {
		rc = kc_fail(err, KC_VALIDATION, "key store: directory missing");
		goto out;
	}
	rc = kc_root_source_pick(opts, &source, err);   /* refuse a bad config before any work */
	if (rc != KC_OK)
		goto out;
	if (sodium_init() < 0) {
		rc = kc_fail(err, KC_INTERNAL, "key store %s: libsodium initialisation failed", dir);
		goto out;
	}
	local = calloc(1, sizeof *local);
	kc = calloc(1, sizeof *kc);
	if (local)
		local->root_key = kmsfs_secure_alloc(KC_KEY_LEN);
	if (!local || !kc || !local->root_key) {
		rc = kc_fail(err, KC_INTERNAL, "key store %s: out of memory", dir);
		goto out;
	}
	rc = set_identity(local, opts, err);
	if (rc != KC_OK)
		goto out;
	rc = open_or_create(local, opts, err);
	if (rc != KC_OK)
		goto out;
	kc->ops = &local_ops;
	kc->impl = local;
	*out = kc;
	kc = NULL;
	local = NULL;
out:
	free_local(local);
	free(kc);
	return rc;
}

static void local_destroy(struct keyclient *kc)
{
	free_local(kc_local_of(kc));
	kc->impl = NULL;
}

/* ---- shared by the operations --------------------------------------------------------- */

enum kc_status kc_local_find_key(struct kc_local *local, const char *key_ref,
		struct kc_store_key *key, struct kc_error *err)
{
	char name[KC_ALIAS_MAX + 1];
	char key_id[KC_KEY_ID_LEN + 1];
	enum kc_ref_kind kind;
	enum kc_status rc;

	rc = kc_keyref_parse(key_ref, local->arn_prefix, &kind, name, err);
	if (rc != KC_OK)
		return rc;
	if (kind == KC_REF_ALIAS) {
		rc = kc_store_get_alias(local->store, name, key_id, err);
		if (rc != KC_OK)
			return rc;
	} else {
		memcpy(key_id, name, sizeof key_id);   /* a normalised UUID: 36 chars + NUL */
	}
	return kc_store_get_key(local->store, key_id, key, err);
}

enum kc_status kc_local_require_enabled(const struct kc_store_key *key, struct kc_error *err)
{
	if (key->state == KC_KEY_ENABLED)
		return KC_OK;
	if (key->state == KC_KEY_DISABLED)
		return kc_fail(err, KC_DISABLED, "%s is disabled.", key->key_id);
	return kc_fail(err, KC_INVALID_STATE, "%s is %s", key->key_id,
			kc_key_state_name(key->state));
}

enum kc_status kc_local_material(struct kc_local *local, const char *key_id,
		uint32_t version, uint8_t material[KC_KEY_LEN], uint32_t *version_out,
		struct kc_error *err)
{
	uint8_t sealed[KC_SEALED_KEY_LEN];
	uint8_t aad[KC_MATERIAL_AAD_LEN];
	uint8_t key_uuid[KC_UUID_LEN];
	uint32_t found_version = 0;
	enum kc_status rc;

	if (kc_uuid_parse(key_id, key_uuid) != 0)
		return kc_fail(err, KC_INTERNAL, "key %s: malformed key id in key store", key_id);
	rc = kc_store_get_material(local->store, key_id, version, sealed, &found_version, err);
	if (rc != KC_OK)
		return rc;
	kc_material_aad(key_uuid, found_version, aad);
	if (kc_unseal(local->root_key, aad, sizeof aad, sealed, sizeof sealed, material) != 0)
		return kc_fail(err, KC_INTERNAL, "key %s%s: key material version %u failed authentication "
				"(key store %s altered or corrupted)", local->arn_prefix, key_id, found_version,
				kc_store_path(local->store));
	if (version_out)
		*version_out = found_version;
	return KC_OK;
}
