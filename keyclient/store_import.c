/*
 * store_import.c - import parameters, material fingerprints and the
 * expiry of imported key material in the key store (store_import.h).
 *
 * Same rules as store.c: bound parameters only, statements cached by
 * their literal's address, the store lock around each use, and one
 * transaction for every change of more than one row. A spent row keeps
 * only its fingerprint: token and sealed wrapping key become empty
 * blobs (the columns are NOT NULL), which read back as "no parameters".
 */
#include "store_import.h"
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- the fingerprint column ----------------------------------------------------------------- */

static enum kc_status has_fingerprint_column(struct kc_store *store, int *present,
		struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;

	*present = 0;
	kc_store_lock(store);
	rc = kc_store_prepare(store, "SELECT COUNT(*) FROM pragma_table_info('import_params') "
			"WHERE name = 'fingerprint'", &stmt, err);
	if (rc == KC_OK) {
		if (sqlite3_step(stmt) == SQLITE_ROW)
			*present = sqlite3_column_int(stmt, 0) > 0;
		else
			rc = kc_store_db_fail(store, err, "reading the import_params columns");
	}
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

enum kc_status kc_store_import_init(struct kc_store *store, struct kc_error *err)
{
	enum kc_status rc;
	int present = 0;

	rc = has_fingerprint_column(store, &present, err);
	if (rc != KC_OK || present)
		return rc;
	/* Checked again under the write lock: another process may have just added it. */
	rc = kc_store_txn_begin(store, err);
	if (rc != KC_OK)
		return rc;
	rc = has_fingerprint_column(store, &present, err);
	if (rc == KC_OK && !present)
		rc = kc_store_exec(store, "ALTER TABLE import_params ADD COLUMN fingerprint BLOB",
				"adding the import fingerprint column", err);
	return kc_store_txn_end(store, rc, err);
}

/* ---- parameters ------------------------------------------------------------------------------ */

enum kc_status kc_store_put_import_params(struct kc_store *store, const char *key_id,
		const struct kc_import_params *params, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;

	kc_store_lock(store);
	rc = kc_store_prepare(store, "INSERT INTO import_params (key_id, token, wrapping_sealed, "
			"wrapping_spec, wrapping_algorithm, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
			"ON CONFLICT(key_id) DO UPDATE SET token = excluded.token, "
			"wrapping_sealed = excluded.wrapping_sealed, wrapping_spec = excluded.wrapping_spec, "
			"wrapping_algorithm = excluded.wrapping_algorithm, expires = excluded.expires",
			&stmt, err);
	if (rc == KC_OK) {
		sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
		sqlite3_bind_blob(stmt, 2, params->token, (int)params->token_len, SQLITE_STATIC);
		sqlite3_bind_blob(stmt, 3, params->wrapping_sealed, (int)params->wrapping_sealed_len,
				SQLITE_STATIC);
		sqlite3_bind_text(stmt, 4, params->wrapping_spec, -1, SQLITE_STATIC);
		sqlite3_bind_text(stmt, 5, params->wrapping_algorithm, -1, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 6, params->expires);
		rc = kc_store_step_done(store, stmt, "storing import parameters", err);
	}
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

/* A copy of BLOB column col (NULL and 0 when empty). -1 when out of memory. */
static int copy_blob(sqlite3_stmt *stmt, int col, uint8_t **out, size_t *out_len)
{
	const void *data = sqlite3_column_blob(stmt, col);
	size_t len = (size_t)sqlite3_column_bytes(stmt, col);

	*out = NULL;
	*out_len = 0;
	if (!data || len == 0)
		return 0;
	*out = malloc(len);
	if (!*out)
		return -1;
	memcpy(*out, data, len);
	*out_len = len;
	return 0;
}

void kc_import_params_free(struct kc_import_params *params)
{
	free(params->token);
	free(params->wrapping_sealed);   /* ciphertext only */
	memset(params, 0, sizeof *params);
}

enum kc_status kc_store_get_import_params(struct kc_store *store, const char *key_id,
		struct kc_import_params *params, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;
	int step;

	memset(params, 0, sizeof *params);
	kc_store_lock(store);
	rc = kc_store_prepare(store, "SELECT token, wrapping_sealed, wrapping_spec, "
			"wrapping_algorithm, expires FROM import_params WHERE key_id = ?1", &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
	step = sqlite3_step(stmt);
	if (step != SQLITE_ROW && step != SQLITE_DONE) {
		rc = kc_store_db_fail(store, err, "reading import parameters");
		goto out;
	}
	if (step == SQLITE_ROW && (copy_blob(stmt, 0, &params->token, &params->token_len) != 0 ||
			copy_blob(stmt, 1, &params->wrapping_sealed, &params->wrapping_sealed_len) != 0)) {
		rc = kc_fail(err, KC_INTERNAL, "key %s: out of memory reading import parameters", key_id);
		goto out;
	}
	if (step == SQLITE_DONE || !params->token || !params->wrapping_sealed) {
		rc = kc_fail(err, KC_NOT_FOUND, "key %s: no import parameters outstanding", key_id);
		goto out;
	}
	kc_store_copy_text(stmt, 2, params->wrapping_spec, sizeof params->wrapping_spec);
	kc_store_copy_text(stmt, 3, params->wrapping_algorithm, sizeof params->wrapping_algorithm);
	params->expires = sqlite3_column_int64(stmt, 4);
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	if (rc != KC_OK)
		kc_import_params_free(params);
	return rc;
}

enum kc_status kc_store_spend_import_params(struct kc_store *store, const char *key_id,
		struct kc_error *err)
{
	enum kc_status rc = kc_store_import_init(store, err);

	if (rc != KC_OK)
		return rc;
	rc = kc_store_txn_begin(store, err);
	if (rc != KC_OK)
		return rc;
	rc = kc_store_run_for_key(store, "UPDATE import_params SET token = X'', wrapping_sealed = X'', "
			"wrapping_spec = '', wrapping_algorithm = '', expires = 0 WHERE key_id = ?1",
			key_id, "spending import parameters", err);
	/* A row with nothing left to keep goes altogether. */
	if (rc == KC_OK)
		rc = kc_store_run_for_key(store, "DELETE FROM import_params WHERE key_id = ?1 AND "
				"fingerprint IS NULL", key_id, "spending import parameters", err);
	return kc_store_txn_end(store, rc, err);
}

/* ---- fingerprints ----------------------------------------------------------------------------- */

enum kc_status kc_store_get_import_fingerprint(struct kc_store *store, const char *key_id,
		uint8_t fingerprint[KC_IMPORT_FINGERPRINT_LEN], int *present, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	const void *data;
	enum kc_status rc;
	int step;

	*present = 0;
	rc = kc_store_import_init(store, err);
	if (rc != KC_OK)
		return rc;
	kc_store_lock(store);
	rc = kc_store_prepare(store, "SELECT fingerprint FROM import_params WHERE key_id = ?1",
			&stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
	step = sqlite3_step(stmt);
	if (step != SQLITE_ROW && step != SQLITE_DONE) {
		rc = kc_store_db_fail(store, err, "reading an import fingerprint");
		goto out;
	}
	data = step == SQLITE_ROW ? sqlite3_column_blob(stmt, 0) : NULL;
	if (data && sqlite3_column_bytes(stmt, 0) == KC_IMPORT_FINGERPRINT_LEN) {
		memcpy(fingerprint, data, KC_IMPORT_FINGERPRINT_LEN);
		*present = 1;
	} else if (data) {
		rc = kc_fail(err, KC_INTERNAL, "key %s: import fingerprint of the wrong size in key "
				"store %s", key_id, store->path);
	}
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

enum kc_status kc_store_set_import_fingerprint(struct kc_store *store, const char *key_id,
		const uint8_t fingerprint[KC_IMPORT_FINGERPRINT_LEN], struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;

	rc = kc_store_import_init(store, err);
	if (rc != KC_OK)
		return rc;
	kc_store_lock(store);
	rc = kc_store_prepare(store, "INSERT INTO import_params (key_id, token, wrapping_sealed, "
			"wrapping_spec, wrapping_algorithm, expires, fingerprint) "
			"VALUES (?1, X'', X'', '', '', 0, ?2) "
			"ON CONFLICT(key_id) DO UPDATE SET fingerprint = excluded.fingerprint", &stmt, err);
	if (rc == KC_OK) {
		sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
		sqlite3_bind_blob(stmt, 2, fingerprint, KC_IMPORT_FINGERPRINT_LEN, SQLITE_STATIC);
		rc = kc_store_step_done(store, stmt, "storing an import fingerprint", err);
	}
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

/* ---- expiry ------------------------------------------------------------------------------------ */

/* Imported keys whose material is still there and whose ValidTo has come. */
static enum kc_status list_expired(struct kc_store *store, int64_t now,
		char (**ids)[KC_KEY_ID_LEN + 1], size_t *count, struct kc_error *err)
{
	return kc_store_key_ids_at(store, "SELECT key_id FROM keys WHERE origin = 'EXTERNAL' "
			"AND valid_to > 0 AND valid_to <= ?1 AND EXISTS (SELECT 1 FROM key_material "
			"WHERE key_material.key_id = keys.key_id)", now,
			"listing expired imported key material", ids, count, err);
}

/* One key: re-checked inside the transaction, in case it was re-imported meanwhile. */
static enum kc_status expire_one(struct kc_store *store, const char *key_id, int64_t now,
		struct kc_error *err)
{
	struct kc_store_key key;
	enum kc_status rc;

	rc = kc_store_txn_begin(store, err);
	if (rc != KC_OK)
		return rc;
	rc = kc_store_get_key(store, key_id, &key, err);
	if (rc != KC_OK || key.valid_to == 0 || key.valid_to > now || key.material_versions == 0)
		return kc_store_txn_end(store, rc == KC_NOT_FOUND ? KC_OK : rc, err);
	rc = kc_store_delete_materials(store, key_id, err);
	if (rc == KC_OK && key.state != KC_KEY_PENDING_DELETION)
		rc = kc_store_set_state(store, key_id, KC_KEY_PENDING_IMPORT, err);
	return kc_store_txn_end(store, rc, err);
}

enum kc_status kc_import_expire_due(struct kc_local *local, int64_t now, struct kc_error *err)
{
	char (*ids)[KC_KEY_ID_LEN + 1] = NULL;
	size_t count = 0;
	enum kc_status rc;

	rc = list_expired(local->store, now, &ids, &count, err);
	for (size_t i = 0; rc == KC_OK && i < count; i++)
		rc = expire_one(local->store, ids[i], now, err);
	free(ids);
	return rc;
}
