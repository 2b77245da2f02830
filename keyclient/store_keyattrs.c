/*
 * store_keyattrs.c - what schema 2 of the key store added to keys: key
 * specs and variable-length (asymmetric) key material, the deletion
 * schedule, rotation, key policies, public keys, tags, alias listing,
 * and deleting a key with every trace of it.
 *
 * Same rules as store.c: bound parameters only, statements cached by
 * their literal's address, the store lock around each use, and one
 * transaction for every change of more than one row.
 */
#include "local_internal.h"
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

static enum kc_status not_found(struct kc_store *store, const char *key_id, struct kc_error *err)
{
	return kc_fail(err, KC_NOT_FOUND, "key %s: not found in key store %s", key_id, store->path);
}

/* ---- creation and material ---------------------------------------------------------- */

static enum kc_status insert_key_row_v(struct kc_store *store, const char *key_id,
		const char *description, int64_t created, const struct kc_key_attrs *attrs,
		struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;

	rc = kc_store_prepare(store, "INSERT INTO keys (key_id, description, state, created, "
			"key_spec, key_usage, origin, policy, public_key) "
			"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, description ? description : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, kc_key_state_name(attrs->state), -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, created);
	sqlite3_bind_text(stmt, 5, attrs->key_spec ? attrs->key_spec : "SYMMETRIC_DEFAULT", -1,
			SQLITE_STATIC);
	sqlite3_bind_text(stmt, 6, attrs->key_usage ? attrs->key_usage : "ENCRYPT_DECRYPT", -1,
			SQLITE_STATIC);
	sqlite3_bind_text(stmt, 7, attrs->origin ? attrs->origin : "AWS_KMS", -1, SQLITE_STATIC);
	if (attrs->policy)
		sqlite3_bind_text(stmt, 8, attrs->policy, -1, SQLITE_STATIC);
	if (attrs->public_key)
		sqlite3_bind_blob(stmt, 9, attrs->public_key, (int)attrs->public_key_len, SQLITE_STATIC);
	rc = kc_store_step_done(store, stmt, "inserting a key", err);
out:
	kc_store_release(store, stmt);
	return rc;
}

/* Inside a transaction: seal and insert material version newest+1. */
static enum kc_status insert_material_v(struct kc_store *store, const char *key_id,
		const char *rotation_type, kc_material_sealer_v sealer, void *arg,
		uint32_t *version, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	uint8_t *sealed = NULL;
	size_t sealed_len = 0;
	enum kc_status rc;
	uint32_t next;

	rc = kc_store_prepare(store, "SELECT COALESCE(MAX(version), 0) FROM key_material "
			"WHERE key_id = ?1", &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
	if (sqlite3_step(stmt) != SQLITE_ROW) {
		rc = kc_store_db_fail(store, err, "reading material versions");
		goto out;
	}
	next = (uint32_t)sqlite3_column_int64(stmt, 0) + 1;
	kc_store_release(store, stmt);
	stmt = NULL;
	if (sealer(next, &sealed, &sealed_len, arg) != 0) {
		rc = kc_fail(err, KC_INTERNAL, "key %s: sealing new key material failed", key_id);
		goto out;
	}
	rc = kc_store_prepare(store, "INSERT INTO key_material (key_id, version, sealed, created, "
			"rotation_type) VALUES (?1, ?2, ?3, strftime('%s','now'), ?4)", &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, next);
	sqlite3_bind_blob(stmt, 3, sealed, (int)sealed_len, SQLITE_STATIC);
	if (rotation_type)
		sqlite3_bind_text(stmt, 4, rotation_type, -1, SQLITE_STATIC);
	rc = kc_store_step_done(store, stmt, "inserting key material", err);
	if (rc == KC_OK && version)
		*version = next;
out:
	kc_store_release(store, stmt);
	free(sealed);   /* sealed: ciphertext only */
	return rc;
}

enum kc_status kc_store_create_key_v(struct kc_store *store, const char *key_id,
		const char *description, int64_t created, const struct kc_key_attrs *attrs,
		kc_material_sealer_v sealer, void *arg, struct kc_error *err)
{
	enum kc_status rc;

	rc = kc_store_txn_begin(store, err);
	if (rc != KC_OK)
		return rc;
	rc = insert_key_row_v(store, key_id, description, created, attrs, err);
	if (rc == KC_OK && sealer)
		rc = insert_material_v(store, key_id, NULL, sealer, arg, NULL, err);
	return kc_store_txn_end(store, rc, err);
}

enum kc_status kc_store_add_material_v(struct kc_store *store, const char *key_id,
		const char *rotation_type, kc_material_sealer_v sealer, void *arg,
		uint32_t *version, struct kc_error *err)
{
	struct kc_store_key key;
	enum kc_status rc;

	rc = kc_store_txn_begin(store, err);
	if (rc != KC_OK)
		return rc;
	rc = kc_store_get_key(store, key_id, &key, err);
	if (rc == KC_OK)
		rc = insert_material_v(store, key_id, rotation_type, sealer, arg, version, err);
	return kc_store_txn_end(store, rc, err);
}

enum kc_status kc_store_get_material_v(struct kc_store *store, const char *key_id,
		uint32_t version, uint8_t **sealed, size_t *sealed_len, uint32_t *version_out,
		struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;
	const void *data;
	int step, len;

	*sealed = NULL;
	kc_store_lock(store);
	rc = kc_store_prepare(store, "SELECT version, sealed FROM key_material WHERE key_id = ?1 "
			"AND (?2 = 0 OR version = ?2) ORDER BY version DESC LIMIT 1", &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, version);
	step = sqlite3_step(stmt);
	if (step == SQLITE_DONE) {
		rc = kc_fail(err, KC_NOT_FOUND, "key %s: key material version %u not found", key_id, version);
		goto out;
	}
	if (step != SQLITE_ROW) {
		rc = kc_store_db_fail(store, err, "reading key material");
		goto out;
	}
	data = sqlite3_column_blob(stmt, 1);
	len = sqlite3_column_bytes(stmt, 1);
	*sealed = data && len > 0 ? malloc((size_t)len) : NULL;
	if (!*sealed) {
		rc = kc_fail(err, KC_INTERNAL, "key %s: key material unreadable", key_id);
		goto out;
	}
	memcpy(*sealed, data, (size_t)len);
	*sealed_len = (size_t)len;
	if (version_out)
		*version_out = (uint32_t)sqlite3_column_int64(stmt, 0);
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

enum kc_status kc_store_each_material(struct kc_store *store, const char *key_id,
		int (*fn)(uint32_t version, int64_t created, const char *rotation_type, void *arg),
		void *arg, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;
	int step;

	kc_store_lock(store);
	rc = kc_store_prepare(store, "SELECT version, created, rotation_type FROM key_material "
			"WHERE key_id = ?1 ORDER BY version", &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
	while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (fn((uint32_t)sqlite3_column_int64(stmt, 0), sqlite3_column_int64(stmt, 1),
				(const char *)sqlite3_column_text(stmt, 2), arg) != 0)
			break;
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		rc = kc_store_db_fail(store, err, "listing key material");
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

enum kc_status kc_store_delete_materials(struct kc_store *store, const char *key_id,
		struct kc_error *err)
{
	return kc_store_run_for_key(store, "DELETE FROM key_material WHERE key_id = ?1", key_id,
			"deleting key material", err);
}

/* ---- single columns ---------------------------------------------------------------- */

static const char *const int_col_sql[] = {
	[KC_COL_DELETION_DATE] = "UPDATE keys SET deletion_date = ?1 WHERE key_id = ?2",
	[KC_COL_PENDING_WINDOW] = "UPDATE keys SET pending_window_days = ?1 WHERE key_id = ?2",
	[KC_COL_ROTATION_DAYS] = "UPDATE keys SET rotation_days = ?1 WHERE key_id = ?2",
	[KC_COL_NEXT_ROTATION] = "UPDATE keys SET next_rotation = ?1 WHERE key_id = ?2",
	[KC_COL_VALID_TO] = "UPDATE keys SET valid_to = ?1 WHERE key_id = ?2",
};

enum kc_status kc_store_set_key_int(struct kc_store *store, const char *key_id,
		enum kc_key_int_col col, int64_t value, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;

	kc_store_lock(store);
	rc = kc_store_prepare(store, int_col_sql[col], &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_int64(stmt, 1, value);
	sqlite3_bind_text(stmt, 2, key_id, -1, SQLITE_STATIC);
	rc = kc_store_step_done(store, stmt, "updating a key", err);
	if (rc == KC_OK && sqlite3_changes(store->db) == 0)
		rc = not_found(store, key_id, err);
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

/* text NULL binds SQL NULL. */
static enum kc_status set_key_text(struct kc_store *store, const char *sql, const char *key_id,
		const char *text, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;

	kc_store_lock(store);
	rc = kc_store_prepare(store, sql, &stmt, err);
	if (rc != KC_OK)
		goto out;
	if (text)
		sqlite3_bind_text(stmt, 1, text, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, key_id, -1, SQLITE_STATIC);
	rc = kc_store_step_done(store, stmt, "updating a key", err);
	if (rc == KC_OK && sqlite3_changes(store->db) == 0)
		rc = not_found(store, key_id, err);
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

enum kc_status kc_store_set_description(struct kc_store *store, const char *key_id,
		const char *description, struct kc_error *err)
{
	return set_key_text(store, "UPDATE keys SET description = ?1 WHERE key_id = ?2", key_id,
			description ? description : "", err);
}

enum kc_status kc_store_set_policy(struct kc_store *store, const char *key_id,
		const char *policy, struct kc_error *err)
{
	return set_key_text(store, "UPDATE keys SET policy = ?1 WHERE key_id = ?2", key_id, policy, err);
}

/* Copies column 0 of the key's row for sql into *out (malloc'ed, NUL-terminated). */
static enum kc_status get_key_blob(struct kc_store *store, const char *sql, const char *key_id,
		uint8_t **out, size_t *out_len, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;
	const void *data;
	size_t len;
	int step;

	*out = NULL;
	*out_len = 0;
	kc_store_lock(store);
	rc = kc_store_prepare(store, sql, &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
	step = sqlite3_step(stmt);
	if (step == SQLITE_DONE) {
		rc = not_found(store, key_id, err);
		goto out;
	}
	if (step != SQLITE_ROW) {
		rc = kc_store_db_fail(store, err, "reading a key");
		goto out;
	}
	data = sqlite3_column_blob(stmt, 0);
	if (!data)
		goto out;   /* NULL column: *out stays NULL */
	len = (size_t)sqlite3_column_bytes(stmt, 0);
	*out = malloc(len + 1);
	if (!*out) {
		rc = kc_fail(err, KC_INTERNAL, "key %s: out of memory", key_id);
		goto out;
	}
	memcpy(*out, data, len);
	(*out)[len] = '\0';
	*out_len = len;
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

enum kc_status kc_store_get_policy(struct kc_store *store, const char *key_id,
		char **policy, struct kc_error *err)
{
	size_t len;

	return get_key_blob(store, "SELECT policy FROM keys WHERE key_id = ?1", key_id,
			(uint8_t **)policy, &len, err);
}

enum kc_status kc_store_get_public_key(struct kc_store *store, const char *key_id,
		uint8_t **der, size_t *der_len, struct kc_error *err)
{
	enum kc_status rc;

	rc = get_key_blob(store, "SELECT public_key FROM keys WHERE key_id = ?1", key_id,
			der, der_len, err);
	if (rc == KC_OK && !*der)
		rc = kc_fail(err, KC_NOT_FOUND, "key %s has no public key (not asymmetric)", key_id);
	return rc;
}

/* ---- deletion ------------------------------------------------------------------------- */

static const char *const delete_key_sql[] = {
	"DELETE FROM key_material WHERE key_id = ?1",
	"DELETE FROM aliases WHERE key_id = ?1",
	"DELETE FROM key_principals WHERE key_id = ?1",
	"DELETE FROM key_tags WHERE key_id = ?1",
	"DELETE FROM grants WHERE key_id = ?1",
	"DELETE FROM import_params WHERE key_id = ?1",
	"DELETE FROM keys WHERE key_id = ?1",
};

enum kc_status kc_store_delete_key(struct kc_store *store, const char *key_id,
		struct kc_error *err)
{
	enum kc_status rc;

	rc = kc_store_txn_begin(store, err);
	if (rc != KC_OK)
		return rc;
	for (size_t i = 0; rc == KC_OK && i < sizeof delete_key_sql / sizeof *delete_key_sql; i++)
		rc = kc_store_run_for_key(store, delete_key_sql[i], key_id, "deleting a key", err);
	return kc_store_txn_end(store, rc, err);
}

enum kc_status kc_store_key_ids_at(struct kc_store *store, const char *sql, int64_t now,
		const char *what, char (**ids)[KC_KEY_ID_LEN + 1], size_t *count, struct kc_error *err)
{
	char (*list)[KC_KEY_ID_LEN + 1] = NULL, (*grown)[KC_KEY_ID_LEN + 1];
	sqlite3_stmt *stmt = NULL;
	size_t capacity = 0;
	enum kc_status rc;
	int step;

	*ids = NULL;
	*count = 0;
	kc_store_lock(store);
	rc = kc_store_prepare(store, sql, &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_int64(stmt, 1, now);
	while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (*count == capacity) {
			capacity = capacity ? capacity * 2 : 8;
			grown = realloc(list, capacity * sizeof *list);
			if (!grown) {
				rc = kc_fail(err, KC_INTERNAL, "key store %s: out of memory", store->path);
				goto out;
			}
			list = grown;
		}
		kc_store_copy_text(stmt, 0, list[(*count)++], sizeof *list);
	}
	if (step != SQLITE_DONE) {
		rc = kc_store_db_fail(store, err, what);
		goto out;
	}
	*ids = list;
	list = NULL;
out:
	free(list);
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

enum kc_status kc_store_keys_due(struct kc_store *store, int64_t now, int rotation,
		char (**ids)[KC_KEY_ID_LEN + 1], size_t *count, struct kc_error *err)
{
	if (rotation)
		return kc_store_key_ids_at(store, "SELECT key_id FROM keys WHERE rotation_days > 0 "
				"AND next_rotation > 0 AND next_rotation <= ?1 AND state = 'Enabled'", now,
				"listing keys due for rotation", ids, count, err);
	return kc_store_key_ids_at(store, "SELECT key_id FROM keys WHERE state = 'PendingDeletion' "
			"AND deletion_date <= ?1", now, "listing keys due for deletion", ids, count, err);
}

int64_t kc_store_generation(struct kc_store *store)
{
	sqlite3_stmt *stmt = NULL;
	int64_t generation = -1;
	struct kc_error err;

	kc_store_lock(store);
	/* Held exclusively, only this connection can change the store. */
	if (store->exclusive) {
		generation = sqlite3_total_changes64(store->db);
		kc_store_unlock(store);
		return generation;
	}
	if (kc_store_prepare(store, "PRAGMA data_version", &stmt, &err) == KC_OK &&
	    sqlite3_step(stmt) == SQLITE_ROW)
		generation = sqlite3_column_int64(stmt, 0);
	kc_store_release(store, stmt);
	/* data_version ignores this connection's own commits: add them. */
	generation = generation * 1000003 + sqlite3_total_changes64(store->db);
	kc_store_unlock(store);
	return generation;
}

/* ---- tags ------------------------------------------------------------------------------ */

enum kc_status kc_store_set_tag(struct kc_store *store, const char *key_id,
		const char *tag_key, const char *tag_value, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;

	kc_store_lock(store);
	rc = kc_store_prepare(store, "INSERT INTO key_tags (key_id, tag_key, tag_value) "
			"VALUES (?1, ?2, ?3) ON CONFLICT(key_id, tag_key) DO UPDATE SET "
			"tag_value = excluded.tag_value", &stmt, err);
	if (rc == KC_OK) {
		sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(stmt, 2, tag_key, -1, SQLITE_STATIC);
		sqlite3_bind_text(stmt, 3, tag_value, -1, SQLITE_STATIC);
		rc = kc_store_step_done(store, stmt, "tagging a key", err);
	}
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

enum kc_status kc_store_delete_tag(struct kc_store *store, const char *key_id,
		const char *tag_key, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;

	kc_store_lock(store);
	rc = kc_store_prepare(store, "DELETE FROM key_tags WHERE key_id = ?1 AND tag_key = ?2",
			&stmt, err);
	if (rc == KC_OK) {
		sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(stmt, 2, tag_key, -1, SQLITE_STATIC);
		rc = kc_store_step_done(store, stmt, "untagging a key", err);
	}
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

enum kc_status kc_store_each_tag(struct kc_store *store, const char *key_id,
		int (*fn)(const char *tag_key, const char *tag_value, void *arg), void *arg,
		struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;
	int step;

	kc_store_lock(store);
	rc = kc_store_prepare(store, "SELECT tag_key, tag_value FROM key_tags WHERE key_id = ?1 "
			"ORDER BY tag_key", &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
	while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (fn((const char *)sqlite3_column_text(stmt, 0),
				(const char *)sqlite3_column_text(stmt, 1), arg) != 0)
			break;
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		rc = kc_store_db_fail(store, err, "listing tags");
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

enum kc_status kc_store_count_tags(struct kc_store *store, const char *key_id,
		size_t *count, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;

	*count = 0;
	kc_store_lock(store);
	rc = kc_store_prepare(store, "SELECT COUNT(*) FROM key_tags WHERE key_id = ?1", &stmt, err);
	if (rc == KC_OK) {
		sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
		if (sqlite3_step(stmt) == SQLITE_ROW)
			*count = (size_t)sqlite3_column_int64(stmt, 0);
		else
			rc = kc_store_db_fail(store, err, "counting tags");
	}
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

/* ---- aliases --------------------------------------------------------------------------- */

enum kc_status kc_store_each_alias(struct kc_store *store, const char *key_id,
		int (*fn)(const char *name, const char *key_id, int64_t created, int64_t updated,
			void *arg), void *arg, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;
	int step;

	kc_store_lock(store);
	rc = kc_store_prepare(store, "SELECT name, key_id, created, updated FROM aliases "
			"WHERE ?1 IS NULL OR key_id = ?1 ORDER BY name", &stmt, err);
	if (rc != KC_OK)
		goto out;
	if (key_id)
		sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
	while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (fn((const char *)sqlite3_column_text(stmt, 0),
				(const char *)sqlite3_column_text(stmt, 1),
				sqlite3_column_int64(stmt, 2), sqlite3_column_int64(stmt, 3), arg) != 0)
			break;
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		rc = kc_store_db_fail(store, err, "listing aliases");
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}
