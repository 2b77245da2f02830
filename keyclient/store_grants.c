/*
 * store_grants.c - the grants table of keystore.db (created with schema
 * version 2 in store.c): insert, delete, and the walks CreateGrant,
 * ListGrants, ListRetirableGrants, RetireGrant and the authorization
 * path need.
 *
 * Same rules as store.c: bound parameters only, statements cached by
 * their literal's address, the store lock around each use. Rows come
 * back through a callback with strings borrowed from SQLite, so a walk
 * copies nothing it does not keep.
 */
#include "store_grants.h"
#include "store_internal.h"

#include <string.h>

#define GRANT_COLUMNS \
	"grant_id, key_id, name, grantee, retiring, issuing, operations, constraints, token, created"

static const char *column_text(sqlite3_stmt *stmt, int col)
{
	return (const char *)sqlite3_column_text(stmt, col);
}

/* The current row of a SELECT GRANT_COLUMNS statement. */
static void read_row(sqlite3_stmt *stmt, struct kc_grant *grant)
{
	*grant = (struct kc_grant){
		.grant_id = column_text(stmt, 0), .key_id = column_text(stmt, 1),
		.name = column_text(stmt, 2), .grantee = column_text(stmt, 3),
		.retiring = column_text(stmt, 4), .issuing = column_text(stmt, 5),
		.operations = column_text(stmt, 6), .constraints = column_text(stmt, 7),
		.token = column_text(stmt, 8), .created = sqlite3_column_int64(stmt, 9),
	};
}

/* NULL binds SQL NULL (the optional columns). */
static void bind_optional(sqlite3_stmt *stmt, int index, const char *text)
{
	if (text)
		sqlite3_bind_text(stmt, index, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(stmt, index);
}

enum kc_status kc_store_grant_insert(struct kc_store *store, const struct kc_grant *grant,
		struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;

	kc_store_lock(store);
	rc = kc_store_prepare(store, "INSERT INTO grants (" GRANT_COLUMNS ") "
			"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)", &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, grant->grant_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, grant->key_id, -1, SQLITE_STATIC);
	bind_optional(stmt, 3, grant->name);
	sqlite3_bind_text(stmt, 4, grant->grantee, -1, SQLITE_STATIC);
	bind_optional(stmt, 5, grant->retiring);
	sqlite3_bind_text(stmt, 6, grant->issuing, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 7, grant->operations, -1, SQLITE_STATIC);
	bind_optional(stmt, 8, grant->constraints);
	sqlite3_bind_text(stmt, 9, grant->token, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 10, grant->created);
	rc = kc_store_step_done(store, stmt, "inserting a grant", err);
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

enum kc_status kc_store_grant_delete(struct kc_store *store, const char *key_id,
		const char *grant_id, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;

	kc_store_lock(store);
	rc = kc_store_prepare(store, "DELETE FROM grants WHERE grant_id = ?1 AND key_id = ?2",
			&stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, grant_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, key_id, -1, SQLITE_STATIC);
	rc = kc_store_step_done(store, stmt, "deleting a grant", err);
	if (rc == KC_OK && sqlite3_changes(store->db) == 0)
		rc = kc_fail(err, KC_NOT_FOUND, "Grant %s not found for key %s", grant_id, key_id);
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

/*
 * Run stmt (parameters bound, store locked) and hand each row to fn.
 * *rows counts the rows seen. what names the walk in database errors.
 */
static enum kc_status walk_rows(struct kc_store *store, sqlite3_stmt *stmt, kc_grant_fn fn,
		void *arg, size_t *rows, const char *what, struct kc_error *err)
{
	struct kc_grant grant;
	int step;

	*rows = 0;
	while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
		(*rows)++;
		read_row(stmt, &grant);
		if (fn(&grant, arg) != 0)
			return KC_OK;
	}
	if (step != SQLITE_DONE)
		return kc_store_db_fail(store, err, what);
	return KC_OK;
}

enum kc_status kc_store_grant_get(struct kc_store *store, const char *grant_id,
		kc_grant_fn fn, void *arg, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;
	size_t rows = 0;

	kc_store_lock(store);
	rc = kc_store_prepare(store, "SELECT " GRANT_COLUMNS " FROM grants WHERE grant_id = ?1",
			&stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, grant_id, -1, SQLITE_STATIC);
	rc = walk_rows(store, stmt, fn, arg, &rows, "reading a grant", err);
	if (rc == KC_OK && rows == 0)
		rc = kc_fail(err, KC_NOT_FOUND, "Grant %s not found", grant_id);
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

enum kc_status kc_store_each_grant(struct kc_store *store, const char *key_id,
		const char *grantee, kc_grant_fn fn, void *arg, struct kc_error *err)
{
	/* two statements, so the grantee case is a plain equality the index answers */
	static const char by_key[] = "SELECT " GRANT_COLUMNS " FROM grants WHERE key_id = ?1 "
		"ORDER BY rowid";
	static const char by_grantee[] = "SELECT " GRANT_COLUMNS " FROM grants "
		"WHERE key_id = ?1 AND grantee = ?2 ORDER BY rowid";
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;
	size_t rows;

	kc_store_lock(store);
	rc = kc_store_prepare(store, grantee ? by_grantee : by_key, &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
	if (grantee)
		sqlite3_bind_text(stmt, 2, grantee, -1, SQLITE_STATIC);
	rc = walk_rows(store, stmt, fn, arg, &rows, "listing grants", err);
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

enum kc_status kc_store_each_retirable(struct kc_store *store, const char *retiring,
		kc_grant_fn fn, void *arg, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;
	size_t rows;

	kc_store_lock(store);
	rc = kc_store_prepare(store, "SELECT " GRANT_COLUMNS " FROM grants WHERE retiring = ?1 "
			"ORDER BY rowid", &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, retiring, -1, SQLITE_STATIC);
	rc = walk_rows(store, stmt, fn, arg, &rows, "listing retirable grants", err);
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}
