/*
 * store.c - the local engine's key store: SQLite database keystore.db.
 *
 * Tables: meta (one row: store id, owner uid, where the root key comes
 * from, Argon2id parameters and salt, the token-wrapped root key of a
 * PKCS#11 store, a verifier sealed under the root key), keys, key_material (each
 * version sealed under the root key, AAD = key id ‖ version), aliases and
 * key_principals. WAL journal with synchronous=FULL: a committed key is on
 * disk before its first blob leaves the engine.
 *
 * Every statement is prepared with bound parameters. One connection per
 * open store, serialized by a mutex (FUSE calls in from many threads);
 * nothing is cached, so a key disabled by another process (the CLI) is
 * seen on the next operation.
 */
#include "local_internal.h"
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#define KC_STORE_BUSY_TIMEOUT_MS 10000
#define KC_STORE_EXCLUSIVE_WAIT_MS 1000


static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS meta ("
	" id INTEGER PRIMARY KEY CHECK (id = 1),"
	" store_id BLOB NOT NULL, owner_uid INTEGER NOT NULL,"
	" salt BLOB NOT NULL, opslimit INTEGER NOT NULL, memlimit INTEGER NOT NULL,"
	" verifier BLOB NOT NULL, created INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS keys ("
	" key_id TEXT PRIMARY KEY, description TEXT NOT NULL,"
	" state TEXT NOT NULL, created INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS key_material ("
	" key_id TEXT NOT NULL REFERENCES keys(key_id), version INTEGER NOT NULL,"
	" sealed BLOB NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (key_id, version));"
	"CREATE TABLE IF NOT EXISTS aliases ("
	" name TEXT PRIMARY KEY, key_id TEXT NOT NULL REFERENCES keys(key_id));"
	"CREATE TABLE IF NOT EXISTS key_principals ("
	" key_id TEXT NOT NULL REFERENCES keys(key_id), principal TEXT NOT NULL,"
	" PRIMARY KEY (key_id, principal));";

/*
 * Schema version 2 (kmsd, the full KMS API): key specs and usage, origin,
 * deletion schedule, rotation, key policies, tags, grants and import
 * parameters. Version-1 stores (kmsfs volumes made before) are upgraded
 * in place by adding columns with defaults that mean what version 1 did.
 */
#define KC_SCHEMA_VERSION 2

static const char *const schema_v2_columns[] = {
	"ALTER TABLE keys ADD COLUMN key_spec TEXT NOT NULL DEFAULT 'SYMMETRIC_DEFAULT'",
	"ALTER TABLE keys ADD COLUMN key_usage TEXT NOT NULL DEFAULT 'ENCRYPT_DECRYPT'",
	"ALTER TABLE keys ADD COLUMN origin TEXT NOT NULL DEFAULT 'AWS_KMS'",
	"ALTER TABLE keys ADD COLUMN deletion_date INTEGER NOT NULL DEFAULT 0",
	"ALTER TABLE keys ADD COLUMN pending_window_days INTEGER NOT NULL DEFAULT 0",
	"ALTER TABLE keys ADD COLUMN rotation_days INTEGER NOT NULL DEFAULT 0",
	"ALTER TABLE keys ADD COLUMN next_rotation INTEGER NOT NULL DEFAULT 0",
	"ALTER TABLE keys ADD COLUMN valid_to INTEGER NOT NULL DEFAULT 0",
	"ALTER TABLE keys ADD COLUMN policy TEXT",
	"ALTER TABLE keys ADD COLUMN public_key BLOB",
	"ALTER TABLE key_material ADD COLUMN rotation_type TEXT",
	"ALTER TABLE aliases ADD COLUMN created INTEGER NOT NULL DEFAULT 0",
	"ALTER TABLE aliases ADD COLUMN updated INTEGER NOT NULL DEFAULT 0",
	/* where the root key comes from; version-1 stores were all made with a passphrase */
	"ALTER TABLE meta ADD COLUMN root_source TEXT NOT NULL DEFAULT 'passphrase'",
	"ALTER TABLE meta ADD COLUMN wrapped_root BLOB",   /* pkcs11: the root key, token-wrapped */
	NULL,
};

static const char schema_v2_tables[] =
	"CREATE TABLE IF NOT EXISTS key_tags ("
	" key_id TEXT NOT NULL REFERENCES keys(key_id), tag_key TEXT NOT NULL,"
	" tag_value TEXT NOT NULL, PRIMARY KEY (key_id, tag_key));"
	"CREATE TABLE IF NOT EXISTS grants ("
	" grant_id TEXT PRIMARY KEY, key_id TEXT NOT NULL REFERENCES keys(key_id),"
	" name TEXT, grantee TEXT NOT NULL, retiring TEXT, issuing TEXT NOT NULL,"
	" operations TEXT NOT NULL, constraints TEXT, token TEXT NOT NULL,"
	" created INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS grants_by_key ON grants (key_id, grantee);"
	"CREATE TABLE IF NOT EXISTS import_params ("
	" key_id TEXT PRIMARY KEY REFERENCES keys(key_id), token BLOB NOT NULL,"
	" wrapping_sealed BLOB NOT NULL, wrapping_spec TEXT NOT NULL,"
	" wrapping_algorithm TEXT NOT NULL, expires INTEGER NOT NULL);";

/* ---- helpers ------------------------------------------------------------------ */

enum kc_status kc_store_db_fail(struct kc_store *store, struct kc_error *err, const char *what)
{
	int code = sqlite3_errcode(store->db);
	enum kc_status status = (code == SQLITE_BUSY || code == SQLITE_LOCKED) ?
		KC_DEPENDENCY_TIMEOUT : KC_INTERNAL;

	return kc_fail(err, status, "key store %s: %s failed: %s", store->path, what,
			sqlite3_errmsg(store->db));
}

enum kc_status kc_store_prepare(struct kc_store *store, const char *sql, sqlite3_stmt **stmt,
		struct kc_error *err)
{
	for (size_t i = 0; i < store->cached; i++) {
		if (store->cache[i].sql == sql) {
			*stmt = store->cache[i].stmt;
			return KC_OK;
		}
	}
	if (sqlite3_prepare_v3(store->db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt,
			       NULL) != SQLITE_OK) {
		*stmt = NULL;
		return kc_store_db_fail(store, err, "prepare");
	}
	if (store->cached < KC_STORE_STMT_CACHE)
		store->cache[store->cached++] = (struct kc_cached_stmt){ sql, *stmt };
	return KC_OK;
}

/* Done with a statement: reset it for its next use (or finalize if uncached). */
void kc_store_release(struct kc_store *store, sqlite3_stmt *stmt)
{
	if (!stmt)
		return;
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	for (size_t i = 0; i < store->cached; i++)
		if (store->cache[i].stmt == stmt)
			return;
	sqlite3_finalize(stmt);
}

/* Run a statement with no result rows to completion. */
enum kc_status kc_store_step_done(struct kc_store *store, sqlite3_stmt *stmt, const char *what,
		struct kc_error *err)
{
	if (sqlite3_step(stmt) != SQLITE_DONE)
		return kc_store_db_fail(store, err, what);
	return KC_OK;
}

enum kc_status kc_store_exec(struct kc_store *store, const char *sql, const char *what,
		struct kc_error *err)
{
	if (sqlite3_exec(store->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return kc_store_db_fail(store, err, what);
	return KC_OK;
}

void kc_store_lock(struct kc_store *store)
{
	pthread_mutex_lock(&store->lock);
}

void kc_store_unlock(struct kc_store *store)
{
	pthread_mutex_unlock(&store->lock);
}

static const char *state_text(enum kc_key_state state)
{
	return kc_key_state_name(state);
}

static enum kc_key_state state_from_text(const char *text)
{
	if (text && strcmp(text, "Enabled") == 0)
		return KC_KEY_ENABLED;
	if (text && strcmp(text, "PendingDeletion") == 0)
		return KC_KEY_PENDING_DELETION;
	if (text && strcmp(text, "PendingImport") == 0)
		return KC_KEY_PENDING_IMPORT;
	return KC_KEY_DISABLED;   /* unknown states never allow use */
}

static void copy_text(char *out, size_t out_len, const unsigned char *text)
{
	snprintf(out, out_len, "%s", text ? (const char *)text : "");
}

void kc_store_copy_text(sqlite3_stmt *stmt, int col, char *out, size_t out_len)
{
	copy_text(out, out_len, sqlite3_column_text(stmt, col));
}

/* Runs a one-parameter (key id) statement with no result rows. */
enum kc_status kc_store_run_for_key(struct kc_store *store, const char *sql, const char *key_id,
		const char *what, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;

	kc_store_lock(store);
	rc = kc_store_prepare(store, sql, &stmt, err);
	if (rc == KC_OK) {
		sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
		rc = kc_store_step_done(store, stmt, what, err);
	}
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

/* ---- transactions --------------------------------------------------------------- */

/*
 * BEGIN IMMEDIATE takes the write lock up front, so two processes never
 * deadlock upgrading read locks. Nested begins only count; the outermost
 * end commits, or rolls back when any level failed.
 */
enum kc_status kc_store_txn_begin(struct kc_store *store, struct kc_error *err)
{
	enum kc_status rc = KC_OK;

	kc_store_lock(store);
	if (store->txn_depth == 0)
		rc = kc_store_exec(store, "BEGIN IMMEDIATE", "starting a transaction", err);
	if (rc != KC_OK) {
		kc_store_unlock(store);
		return rc;
	}
	store->txn_depth++;
	store->txn_failed = store->txn_depth == 1 ? 0 : store->txn_failed;
	return KC_OK;
}

enum kc_status kc_store_txn_end(struct kc_store *store, enum kc_status rc, struct kc_error *err)
{
	if (rc != KC_OK)
		store->txn_failed = 1;
	if (--store->txn_depth == 0) {
		if (!store->txn_failed) {
			rc = kc_store_exec(store, "COMMIT", "committing", err);
		} else {
			sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
			/* An inner level failed and the outer went on: nothing was kept. */
			if (rc == KC_OK)
				rc = kc_fail(err, KC_INTERNAL, "key store %s: transaction rolled back "
						"(a step inside it failed)", store->path);
		}
	}
	kc_store_unlock(store);
	return rc;
}

/* Copies a BLOB column of exactly len bytes. -1 if the size differs. */
static int copy_blob_column(sqlite3_stmt *stmt, int col, uint8_t *out, size_t len)
{
	const void *data = sqlite3_column_blob(stmt, col);

	if (!data || (size_t)sqlite3_column_bytes(stmt, col) != len)
		return -1;
	memcpy(out, data, len);
	return 0;
}

/* ---- open / close ----------------------------------------------------------------- */

/* mkdir -p with 0700 for every directory it creates. */
static enum kc_status make_dirs(const char *dir, struct kc_error *err)
{
	char path[PATH_MAX];
	struct stat st;

	if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
		return kc_fail(err, KC_VALIDATION, "key store %.100s...: path too long", dir);
	for (char *slash = strchr(path + 1, '/'); ; slash = strchr(slash + 1, '/')) {
		if (slash)
			*slash = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return kc_fail(err, KC_VALIDATION, "key store %s: cannot create directory %s: %s",
					dir, path, strerror(errno));
		if (!slash)
			break;
		*slash = '/';
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return kc_fail(err, KC_VALIDATION, "key store %s: not a directory", dir);
	return KC_OK;
}

static int init_recursive_mutex(pthread_mutex_t *lock)
{
	pthread_mutexattr_t attr;
	int rc;

	if (pthread_mutexattr_init(&attr) != 0)
		return -1;
	rc = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	if (rc == 0)
		rc = pthread_mutex_init(lock, &attr);
	pthread_mutexattr_destroy(&attr);
	return rc;
}

/* Create keystore.db 0600 before SQLite does (it would use 0644 & ~umask). */
static enum kc_status precreate_db(const char *path, struct kc_error *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return kc_fail(err, KC_VALIDATION, "key store %s: cannot create: %s", path, strerror(errno));
	close(fd);
	return KC_OK;
}

static int user_version(struct kc_store *store)
{
	sqlite3_stmt *stmt = NULL;
	int version = -1;

	if (sqlite3_prepare_v2(store->db, "PRAGMA user_version", -1, &stmt, NULL) == SQLITE_OK &&
	    sqlite3_step(stmt) == SQLITE_ROW)
		version = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	return version;
}

/* Bring a version-1 store to version 2 in one transaction (idempotent). */
static enum kc_status upgrade_schema(struct kc_store *store, struct kc_error *err)
{
	enum kc_status rc;

	if (user_version(store) >= KC_SCHEMA_VERSION)
		return KC_OK;
	rc = kc_store_exec(store, "BEGIN IMMEDIATE", "starting the schema upgrade", err);
	if (rc != KC_OK)
		return rc;
	if (user_version(store) < KC_SCHEMA_VERSION) {   /* another process may have won */
		for (size_t i = 0; rc == KC_OK && schema_v2_columns[i]; i++)
			rc = kc_store_exec(store, schema_v2_columns[i], "upgrading the schema", err);
		if (rc == KC_OK)
			rc = kc_store_exec(store, schema_v2_tables, "creating the version 2 tables", err);
		if (rc == KC_OK)
			rc = kc_store_exec(store, "PRAGMA user_version = 2", "recording the schema version", err);
	}
	if (rc == KC_OK)
		return kc_store_exec(store, "COMMIT", "committing the schema upgrade", err);
	sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static enum kc_status configure(struct kc_store *store, int exclusive, struct kc_error *err)
{
	enum kc_status rc = KC_OK;

	/*
	 * An exclusive opener waits only briefly: a store another key service
	 * holds stays held for as long as that service runs.
	 */
	sqlite3_busy_timeout(store->db, exclusive ? KC_STORE_EXCLUSIVE_WAIT_MS : KC_STORE_BUSY_TIMEOUT_MS);
	/*
	 * A key service owns its store: holding the lock for good keeps a
	 * second kmsd off the same data directory, and spares every read
	 * transaction its fcntl lock calls (WAL with no shared-memory index).
	 * Set before the first access, as SQLite requires.
	 */
	if (exclusive)
		rc = kc_store_exec(store, "PRAGMA locking_mode=EXCLUSIVE", "taking the store exclusively", err);
	if (rc != KC_OK)
		return rc;
	rc = kc_store_exec(store, "PRAGMA journal_mode=WAL", "enabling WAL", err);
	if (rc == KC_OK)
		rc = kc_store_exec(store, "PRAGMA synchronous=FULL", "setting synchronous=FULL", err);
	if (rc == KC_OK)
		rc = kc_store_exec(store, "PRAGMA foreign_keys=ON", "enabling foreign keys", err);
	if (rc == KC_OK)
		rc = kc_store_exec(store, schema_sql, "creating the schema", err);
	if (rc == KC_OK)
		rc = upgrade_schema(store, err);
	return rc;
}

enum kc_status kc_store_open(const char *dir, int create, struct kc_store **out,
		struct kc_error *err)
{
	return kc_store_open_ex(dir, create, 0, out, err);
}

enum kc_status kc_store_open_ex(const char *dir, int create, int exclusive,
		struct kc_store **out, struct kc_error *err)
{
	struct kc_store *store = NULL;
	enum kc_status rc = KC_OK;
	int mutex_ready = 0;

	*out = NULL;
	store = calloc(1, sizeof *store);
	if (!store) {
		rc = kc_fail(err, KC_INTERNAL, "key store %s: out of memory", dir);
		goto out;
	}
	if (snprintf(store->path, sizeof store->path, "%s/%s", dir, KC_STORE_DB_NAME) >= (int)sizeof store->path) {
		rc = kc_fail(err, KC_VALIDATION, "key store %.100s...: path too long", dir);
		goto out;
	}
	if (create) {
		rc = make_dirs(dir, err);
		if (rc == KC_OK)
			rc = precreate_db(store->path, err);
		if (rc != KC_OK)
			goto out;
	} else if (access(store->path, F_OK) != 0) {
		rc = kc_fail(err, KC_NOT_FOUND, "key store %s: not found (%s: %s); create one with `kmsfs init`",
				dir, store->path, strerror(errno));
		goto out;
	}
	if (init_recursive_mutex(&store->lock) != 0) {
		rc = kc_fail(err, KC_INTERNAL, "key store %s: cannot create mutex", dir);
		goto out;
	}
	mutex_ready = 1;
	if (sqlite3_open_v2(store->path, &store->db,
			SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK) {
		rc = kc_fail(err, KC_INTERNAL, "key store %s: cannot open database: %s", store->path,
				store->db ? sqlite3_errmsg(store->db) : "out of memory");
		goto out;
	}
	store->exclusive = exclusive;
	for (size_t i = 0; i < KC_STORE_CACHE_SLOTS; i++)
		store->key_cache[i].changes = store->material_cache[i].changes = -1;
	rc = configure(store, exclusive, err);
	if (rc == KC_DEPENDENCY_TIMEOUT && exclusive)
		rc = kc_fail(err, KC_DEPENDENCY_TIMEOUT, "key store %s is locked: another process "
				"(another kmsd?) holds it", store->path);
	if (rc != KC_OK)
		goto out;
	*out = store;
	store = NULL;
out:
	if (store) {
		sqlite3_close(store->db);
		if (mutex_ready)
			pthread_mutex_destroy(&store->lock);
		free(store);
	}
	return rc;
}

void kc_store_close(struct kc_store *store)
{
	if (!store)
		return;
	for (size_t i = 0; i < store->cached; i++)
		sqlite3_finalize(store->cache[i].stmt);
	sqlite3_close(store->db);
	pthread_mutex_destroy(&store->lock);
	free(store);
}

const char *kc_store_path(const struct kc_store *store)
{
	return store->path;
}

/* ---- meta ------------------------------------------------------------------------- */

/* Argon2id limits only mean something for passphrase stores (the others keep 0). */
static int meta_limits_ok(const struct kc_store_meta *meta, sqlite3_int64 opslimit,
		sqlite3_int64 memlimit)
{
	if (meta->root_source != KC_ROOT_PASSPHRASE)
		return 1;
	return opslimit > 0 && memlimit > 0;
}

static enum kc_status read_meta_row(struct kc_store *store, sqlite3_stmt *stmt,
		struct kc_store_meta *meta, struct kc_error *err)
{
	const char *source = (const char *)sqlite3_column_text(stmt, 6);

	memset(meta, 0, sizeof *meta);
	if (!source || kc_root_source_parse(source, &meta->root_source) != 0)
		return kc_fail(err, KC_INTERNAL, "key store %s: metadata names an unknown root key source "
				"%.32s (made by a newer kmsfs?)", store->path, source ? source : "(null)");
	if (copy_blob_column(stmt, 0, meta->store_id, KC_STORE_ID_LEN) != 0 ||
	    copy_blob_column(stmt, 2, meta->salt, KC_SALT_LEN) != 0 ||
	    copy_blob_column(stmt, 5, meta->verifier, KC_VERIFIER_LEN) != 0 ||
	    !meta_limits_ok(meta, sqlite3_column_int64(stmt, 3), sqlite3_column_int64(stmt, 4)) ||
	    (meta->root_source == KC_ROOT_PKCS11 &&
	     copy_blob_column(stmt, 7, meta->wrapped_root, KC_WRAPPED_ROOT_LEN) != 0))
		return kc_fail(err, KC_INTERNAL, "key store %s: metadata malformed (store id, salt, "
				"Argon2id parameters, verifier or wrapped root key)", store->path);
	meta->owner_uid = (uid_t)sqlite3_column_int64(stmt, 1);
	meta->opslimit = (uint64_t)sqlite3_column_int64(stmt, 3);
	meta->memlimit = (uint64_t)sqlite3_column_int64(stmt, 4);
	return KC_OK;
}

enum kc_status kc_store_get_meta(struct kc_store *store, struct kc_store_meta *meta,
		struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;
	int step;

	kc_store_lock(store);
	rc = kc_store_prepare(store, "SELECT store_id, owner_uid, salt, opslimit, memlimit, verifier, "
			"root_source, wrapped_root FROM meta WHERE id = 1", &stmt, err);
	if (rc != KC_OK)
		goto out;
	step = sqlite3_step(stmt);
	if (step == SQLITE_DONE)
		rc = kc_fail(err, KC_NOT_FOUND, "key store %s: not initialised", store->path);
	else if (step == SQLITE_ROW)
		rc = read_meta_row(store, stmt, meta, err);
	else
		rc = kc_store_db_fail(store, err, "reading metadata");
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

enum kc_status kc_store_put_meta(struct kc_store *store, const struct kc_store_meta *meta,
		struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;
	int step;

	kc_store_lock(store);
	rc = kc_store_prepare(store, "INSERT INTO meta (id, store_id, owner_uid, salt, opslimit, memlimit, "
			"verifier, root_source, wrapped_root, created) "
			"VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, strftime('%s','now'))", &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_blob(stmt, 1, meta->store_id, KC_STORE_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, (sqlite3_int64)meta->owner_uid);
	sqlite3_bind_blob(stmt, 3, meta->salt, KC_SALT_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, (sqlite3_int64)meta->opslimit);
	sqlite3_bind_int64(stmt, 5, (sqlite3_int64)meta->memlimit);
	sqlite3_bind_blob(stmt, 6, meta->verifier, KC_VERIFIER_LEN, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 7, kc_root_source_name(meta->root_source), -1, SQLITE_STATIC);
	if (meta->root_source == KC_ROOT_PKCS11)
		sqlite3_bind_blob(stmt, 8, meta->wrapped_root, KC_WRAPPED_ROOT_LEN, SQLITE_STATIC);
	else
		sqlite3_bind_null(stmt, 8);
	step = sqlite3_step(stmt);
	if (step == SQLITE_CONSTRAINT)
		rc = kc_fail(err, KC_ALREADY_EXISTS, "key store %s: already initialised", store->path);
	else if (step != SQLITE_DONE)
		rc = kc_store_db_fail(store, err, "writing metadata");
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

/* ---- keys ------------------------------------------------------------------------- */

static void read_key_v2_columns(sqlite3_stmt *stmt, struct kc_store_key *key)
{
	kc_store_copy_text(stmt, 4, key->key_spec, sizeof key->key_spec);
	kc_store_copy_text(stmt, 5, key->key_usage, sizeof key->key_usage);
	kc_store_copy_text(stmt, 6, key->origin, sizeof key->origin);
	key->deletion_date = sqlite3_column_int64(stmt, 7);
	key->pending_window_days = sqlite3_column_int(stmt, 8);
	key->rotation_days = sqlite3_column_int(stmt, 9);
	key->next_rotation = sqlite3_column_int64(stmt, 10);
	key->valid_to = sqlite3_column_int64(stmt, 11);
	key->has_policy = sqlite3_column_int(stmt, 12);
}

static enum kc_status get_key_locked(struct kc_store *store, const char *key_id,
		struct kc_store_key *key, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;
	int step;

	rc = kc_store_prepare(store, "SELECT description, state, created, "
			"(SELECT COUNT(*) FROM key_material m WHERE m.key_id = k.key_id), "
			"key_spec, key_usage, origin, deletion_date, pending_window_days, "
			"rotation_days, next_rotation, valid_to, policy IS NOT NULL "
			"FROM keys k WHERE k.key_id = ?1", &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
	step = sqlite3_step(stmt);
	if (step == SQLITE_DONE) {
		rc = kc_fail(err, KC_NOT_FOUND, "key %s%s: not found in key store %s",
				KC_KEY_ARN_PREFIX, key_id, store->path);
		goto out;
	}
	if (step != SQLITE_ROW) {
		rc = kc_store_db_fail(store, err, "reading a key");
		goto out;
	}
	if (key->key_id != key_id)   /* callers may pass key->key_id itself */
		snprintf(key->key_id, sizeof key->key_id, "%.*s", KC_KEY_ID_LEN, key_id);
	copy_text(key->description, sizeof key->description, sqlite3_column_text(stmt, 0));
	key->state = state_from_text((const char *)sqlite3_column_text(stmt, 1));
	key->created = sqlite3_column_int64(stmt, 2);
	key->material_versions = (uint32_t)sqlite3_column_int64(stmt, 3);
	read_key_v2_columns(stmt, key);
out:
	kc_store_release(store, stmt);
	return rc;
}

/* Slot of a key id (a UUID: its first hex digits spread well enough). */
static size_t cache_index(const char *key_id)
{
	size_t hash = 5381;

	for (size_t i = 0; i < 8 && key_id[i]; i++)
		hash = hash * 33 + (unsigned char)key_id[i];
	return hash % KC_STORE_CACHE_SLOTS;
}

static enum kc_status get_key_cached(struct kc_store *store, const char *key_id,
		struct kc_store_key *key, struct kc_error *err)
{
	struct kc_key_cache_entry *slot = &store->key_cache[cache_index(key_id)];
	int64_t changes = sqlite3_total_changes64(store->db);
	enum kc_status rc;

	if (store->exclusive && slot->changes == changes && strcmp(slot->key.key_id, key_id) == 0) {
		if (key != &slot->key)
			*key = slot->key;
		return KC_OK;
	}
	rc = get_key_locked(store, key_id, key, err);
	if (rc == KC_OK && store->exclusive) {
		slot->key = *key;
		slot->changes = changes;
	}
	return rc;
}

enum kc_status kc_store_get_key(struct kc_store *store, const char *key_id,
		struct kc_store_key *key, struct kc_error *err)
{
	enum kc_status rc;

	kc_store_lock(store);
	rc = get_key_cached(store, key_id, key, err);
	kc_store_unlock(store);
	return rc;
}

static enum kc_status insert_key_row(struct kc_store *store, const char *key_id,
		const char *description, int64_t created, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;

	rc = kc_store_prepare(store, "INSERT INTO keys (key_id, description, state, created) "
			"VALUES (?1, ?2, ?3, ?4)", &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, description, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, state_text(KC_KEY_ENABLED), -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, created);
	rc = kc_store_step_done(store, stmt, "inserting a key", err);
out:
	kc_store_release(store, stmt);
	return rc;
}

/* Inside a transaction: seal and insert material version newest+1. */
static enum kc_status insert_next_material(struct kc_store *store, const char *key_id,
		kc_material_sealer sealer, void *arg, uint32_t *version, struct kc_error *err)
{
	uint8_t sealed[KC_SEALED_KEY_LEN];
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;
	uint32_t next;

	rc = kc_store_prepare(store, "SELECT COALESCE(MAX(version), 0) FROM key_material WHERE key_id = ?1", &stmt, err);
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
	if (sealer(next, sealed, arg) != 0) {
		rc = kc_fail(err, KC_INTERNAL, "key %s: sealing new key material failed", key_id);
		goto out;
	}
	rc = kc_store_prepare(store, "INSERT INTO key_material (key_id, version, sealed, created) "
			"VALUES (?1, ?2, ?3, strftime('%s','now'))", &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, next);
	sqlite3_bind_blob(stmt, 3, sealed, sizeof sealed, SQLITE_STATIC);
	rc = kc_store_step_done(store, stmt, "inserting key material", err);
	if (rc == KC_OK && version)
		*version = next;
out:
	kc_store_release(store, stmt);
	return rc;
}

enum kc_status kc_store_create_key(struct kc_store *store, const char *key_id,
		const char *description, int64_t created,
		kc_material_sealer sealer, void *arg, struct kc_error *err)
{
	enum kc_status rc;

	rc = kc_store_txn_begin(store, err);
	if (rc != KC_OK)
		return rc;
	rc = insert_key_row(store, key_id, description, created, err);
	if (rc == KC_OK)
		rc = insert_next_material(store, key_id, sealer, arg, NULL, err);
	return kc_store_txn_end(store, rc, err);
}

enum kc_status kc_store_add_material(struct kc_store *store, const char *key_id,
		kc_material_sealer sealer, void *arg, uint32_t *version, struct kc_error *err)
{
	struct kc_store_key key;
	enum kc_status rc;

	rc = kc_store_txn_begin(store, err);
	if (rc != KC_OK)
		return rc;
	rc = get_key_locked(store, key_id, &key, err);
	if (rc == KC_OK)
		rc = insert_next_material(store, key_id, sealer, arg, version, err);
	return kc_store_txn_end(store, rc, err);
}

static struct kc_material_cache_entry *material_slot(struct kc_store *store,
		const char *key_id, uint32_t version)
{
	return &store->material_cache[(cache_index(key_id) + version) % KC_STORE_CACHE_SLOTS];
}

static int material_cached(struct kc_store *store, const char *key_id, uint32_t version,
		uint8_t sealed[KC_SEALED_KEY_LEN], uint32_t *version_out)
{
	struct kc_material_cache_entry *slot = material_slot(store, key_id, version);

	if (!store->exclusive || slot->changes != sqlite3_total_changes64(store->db) ||
	    slot->requested != version || strcmp(slot->key_id, key_id) != 0)
		return 0;
	memcpy(sealed, slot->sealed, KC_SEALED_KEY_LEN);
	if (version_out)
		*version_out = slot->version;
	return 1;
}

static void material_remember(struct kc_store *store, const char *key_id, uint32_t version,
		const uint8_t sealed[KC_SEALED_KEY_LEN], uint32_t found)
{
	struct kc_material_cache_entry *slot = material_slot(store, key_id, version);

	if (!store->exclusive)
		return;
	slot->changes = sqlite3_total_changes64(store->db);
	snprintf(slot->key_id, sizeof slot->key_id, "%s", key_id);
	slot->requested = version;
	slot->version = found;
	memcpy(slot->sealed, sealed, KC_SEALED_KEY_LEN);   /* sealed: ciphertext, not a secret */
}

enum kc_status kc_store_get_material(struct kc_store *store, const char *key_id,
		uint32_t version, uint8_t sealed[KC_SEALED_KEY_LEN], uint32_t *version_out,
		struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	uint32_t found = 0;
	enum kc_status rc;
	int step;

	kc_store_lock(store);
	if (material_cached(store, key_id, version, sealed, version_out)) {
		kc_store_unlock(store);
		return KC_OK;
	}
	rc = kc_store_prepare(store, "SELECT version, sealed FROM key_material WHERE key_id = ?1 "
			"AND (?2 = 0 OR version = ?2) ORDER BY version DESC LIMIT 1", &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, version);
	step = sqlite3_step(stmt);
	if (step == SQLITE_DONE)
		rc = kc_fail(err, KC_NOT_FOUND, "key %s: key material version %u not found in key store %s",
				key_id, version, store->path);
	else if (step != SQLITE_ROW)
		rc = kc_store_db_fail(store, err, "reading key material");
	else if (copy_blob_column(stmt, 1, sealed, KC_SEALED_KEY_LEN) != 0)
		rc = kc_fail(err, KC_INTERNAL, "key %s: sealed key material malformed in key store %s",
				key_id, store->path);
	if (rc == KC_OK) {
		found = (uint32_t)sqlite3_column_int64(stmt, 0);
		material_remember(store, key_id, version, sealed, found);
		if (version_out)
			*version_out = found;
	}
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

enum kc_status kc_store_set_state(struct kc_store *store, const char *key_id,
		enum kc_key_state state, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;

	kc_store_lock(store);
	rc = kc_store_prepare(store, "UPDATE keys SET state = ?1 WHERE key_id = ?2", &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, state_text(state), -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, key_id, -1, SQLITE_STATIC);
	rc = kc_store_step_done(store, stmt, "updating key state", err);
	if (rc == KC_OK && sqlite3_changes(store->db) == 0)
		rc = kc_fail(err, KC_NOT_FOUND, "key %s%s: not found in key store %s",
				KC_KEY_ARN_PREFIX, key_id, store->path);
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

/*
 * Runs sql (one text parameter ?1 = param, may be NULL for none) and copies
 * column 0 of up to max rows into out, stride bytes apart.
 */
static enum kc_status collect_text(struct kc_store *store, const char *sql, const char *param,
		char *out, size_t stride, size_t max, size_t *count, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;
	int step;

	*count = 0;
	rc = kc_store_prepare(store, sql, &stmt, err);
	if (rc != KC_OK)
		goto out;
	if (param)
		sqlite3_bind_text(stmt, 1, param, -1, SQLITE_STATIC);
	while ((step = sqlite3_step(stmt)) == SQLITE_ROW && *count < max) {
		copy_text(out + *count * stride, stride, sqlite3_column_text(stmt, 0));
		(*count)++;
	}
	if (step == SQLITE_ROW)   /* more rows than room: the first max are enough */
		step = SQLITE_DONE;
	if (step != SQLITE_DONE)
		rc = kc_store_db_fail(store, err, "listing");
out:
	kc_store_release(store, stmt);
	return rc;
}

static enum kc_status count_rows(struct kc_store *store, size_t *count, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;

	rc = kc_store_prepare(store, "SELECT COUNT(*) FROM keys", &stmt, err);
	if (rc != KC_OK)
		goto out;
	if (sqlite3_step(stmt) != SQLITE_ROW) {
		rc = kc_store_db_fail(store, err, "counting keys");
		goto out;
	}
	*count = (size_t)sqlite3_column_int64(stmt, 0);
out:
	kc_store_release(store, stmt);
	return rc;
}

enum kc_status kc_store_list_keys(struct kc_store *store,
		char (**ids)[KC_KEY_ID_LEN + 1], size_t *count, struct kc_error *err)
{
	char (*list)[KC_KEY_ID_LEN + 1] = NULL;
	size_t capacity = 0;
	enum kc_status rc;

	*ids = NULL;
	*count = 0;
	kc_store_lock(store);
	rc = kc_store_exec(store, "BEGIN", "starting a transaction", err);
	if (rc != KC_OK)
		goto out;
	rc = count_rows(store, &capacity, err);
	if (rc == KC_OK) {
		list = calloc(capacity ? capacity : 1, sizeof *list);
		if (!list)
			rc = kc_fail(err, KC_INTERNAL, "key store %s: out of memory listing keys", store->path);
	}
	if (rc == KC_OK)
		rc = collect_text(store, "SELECT key_id FROM keys ORDER BY created, key_id", NULL,
				list[0], sizeof *list, capacity, count, err);
	sqlite3_exec(store->db, "COMMIT", NULL, NULL, NULL);
	if (rc != KC_OK)
		goto out;
	*ids = list;
	list = NULL;
out:
	free(list);
	kc_store_unlock(store);
	return rc;
}

/* ---- aliases ---------------------------------------------------------------------- */

enum kc_status kc_store_get_alias(struct kc_store *store, const char *alias_name,
		char key_id[KC_KEY_ID_LEN + 1], struct kc_error *err)
{
	size_t found = 0;
	enum kc_status rc;

	kc_store_lock(store);
	rc = collect_text(store, "SELECT key_id FROM aliases WHERE name = ?1", alias_name,
			key_id, KC_KEY_ID_LEN + 1, 1, &found, err);
	if (rc == KC_OK && found == 0)
		rc = kc_fail(err, KC_NOT_FOUND, "alias %s: not found in key store %s", alias_name, store->path);
	kc_store_unlock(store);
	return rc;
}

enum kc_status kc_store_set_alias(struct kc_store *store, const char *alias_name,
		const char *key_id, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;

	kc_store_lock(store);
	if (key_id)
		rc = kc_store_prepare(store, "INSERT INTO aliases (name, key_id, created, updated) "
				"VALUES (?1, ?2, strftime('%s','now'), strftime('%s','now')) "
				"ON CONFLICT(name) DO UPDATE SET key_id = excluded.key_id, "
				"updated = excluded.updated", &stmt, err);
	else
		rc = kc_store_prepare(store, "DELETE FROM aliases WHERE name = ?1", &stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, alias_name, -1, SQLITE_STATIC);
	if (key_id)
		sqlite3_bind_text(stmt, 2, key_id, -1, SQLITE_STATIC);
	rc = kc_store_step_done(store, stmt, key_id ? "setting an alias" : "deleting an alias", err);
	if (rc == KC_OK && !key_id && sqlite3_changes(store->db) == 0)
		rc = kc_fail(err, KC_NOT_FOUND, "alias %s: not found in key store %s", alias_name, store->path);
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

enum kc_status kc_store_key_aliases(struct kc_store *store, const char *key_id,
		char (*names)[256], size_t max, size_t *count, struct kc_error *err)
{
	enum kc_status rc;

	kc_store_lock(store);
	rc = collect_text(store, "SELECT name FROM aliases WHERE key_id = ?1 ORDER BY name", key_id,
			names[0], sizeof *names, max, count, err);
	kc_store_unlock(store);
	return rc;
}

/* ---- principals listed on a key ----------------------------------------------------- */

enum kc_status kc_store_set_principal(struct kc_store *store, const char *key_id,
		const char *principal, int allow, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;

	kc_store_lock(store);
	if (allow)
		rc = kc_store_prepare(store, "INSERT OR IGNORE INTO key_principals (key_id, principal) "
				"VALUES (?1, ?2)", &stmt, err);
	else
		rc = kc_store_prepare(store, "DELETE FROM key_principals WHERE key_id = ?1 AND principal = ?2",
				&stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, principal, -1, SQLITE_STATIC);
	rc = kc_store_step_done(store, stmt, "updating key principals", err);
	if (rc == KC_OK && !allow && sqlite3_changes(store->db) == 0)
		rc = kc_fail(err, KC_NOT_FOUND, "principal %s: not listed on key %s%s",
				principal, KC_KEY_ARN_PREFIX, key_id);
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

enum kc_status kc_store_has_principal(struct kc_store *store, const char *key_id,
		const char *principal, int *listed, struct kc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	enum kc_status rc;
	int step;

	*listed = 0;
	kc_store_lock(store);
	rc = kc_store_prepare(store, "SELECT 1 FROM key_principals WHERE key_id = ?1 AND principal = ?2",
			&stmt, err);
	if (rc != KC_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, principal, -1, SQLITE_STATIC);
	step = sqlite3_step(stmt);
	if (step == SQLITE_ROW)
		*listed = 1;
	else if (step != SQLITE_DONE)
		rc = kc_store_db_fail(store, err, "reading key principals");
out:
	kc_store_release(store, stmt);
	kc_store_unlock(store);
	return rc;
}

enum kc_status kc_store_key_principals(struct kc_store *store, const char *key_id,
		char (*principals)[128], size_t max, size_t *count, struct kc_error *err)
{
	enum kc_status rc;

	kc_store_lock(store);
	rc = collect_text(store, "SELECT principal FROM key_principals WHERE key_id = ?1 "
			"ORDER BY principal", key_id, principals[0], sizeof *principals, max, count, err);
	kc_store_unlock(store);
	return rc;
}
