/*
 * store_internal.h - the key store's SQLite primitives, for the files
 * that keep their own tables in keystore.db (grants, import parameters).
 *
 * Rules for every user: take the store lock (kc_store_lock, recursive)
 * around statement use; statements come from kc_store_prepare with a
 * string literal (the cache is keyed by its address) and go back with
 * kc_store_release; a change of several rows is one transaction
 * (kc_store_txn_begin / kc_store_txn_end), which may nest.
 */
#ifndef KMSFS_KEYCLIENT_STORE_INTERNAL_H
#define KMSFS_KEYCLIENT_STORE_INTERNAL_H

#include <limits.h>
#include <pthread.h>

#include <sqlite3.h>

#include "local_internal.h"

#define KC_STORE_STMT_CACHE 160
#define KC_STORE_CACHE_SLOTS 32

/*
 * Statements are prepared once and reused: every file create and open
 * reads the key's row, and re-parsing the SQL each time showed up in
 * profiles. The cache is keyed by the SQL text's address (each call site
 * passes its own literal) and used only under the store lock.
 */
struct kc_cached_stmt {
	const char *sql;
	sqlite3_stmt *stmt;
};

struct kc_store {
	sqlite3 *db;
	pthread_mutex_t lock;          /* recursive: a transaction holds it across calls */
	int txn_depth;                 /* nesting of kc_store_txn_begin */
	int txn_failed;                /* some level of the transaction failed */
	/*
	 * A store held exclusively (kmsd) changes only through this
	 * connection, so rows read once stay true until this connection's
	 * change counter (sqlite3_total_changes64) moves: key rows and sealed
	 * key material are served from these caches until then. A store
	 * shared with other processes (kmsfs and its CLI) caches nothing.
	 */
	int exclusive;
	struct kc_key_cache_entry {
		int64_t changes;               /* -1: empty */
		struct kc_store_key key;
	} key_cache[KC_STORE_CACHE_SLOTS];
	struct kc_material_cache_entry {
		int64_t changes;               /* -1: empty */
		char key_id[KC_KEY_ID_LEN + 1];
		uint32_t requested, version;   /* requested 0 = the newest */
		uint8_t sealed[KC_SEALED_KEY_LEN];
	} material_cache[KC_STORE_CACHE_SLOTS];
	char path[PATH_MAX];
	struct kc_cached_stmt cache[KC_STORE_STMT_CACHE];
	size_t cached;
};

void kc_store_lock(struct kc_store *store);
void kc_store_unlock(struct kc_store *store);
enum kc_status kc_store_prepare(struct kc_store *store, const char *sql, sqlite3_stmt **stmt,
		struct kc_error *err);
void kc_store_release(struct kc_store *store, sqlite3_stmt *stmt);
enum kc_status kc_store_step_done(struct kc_store *store, sqlite3_stmt *stmt, const char *what,
		struct kc_error *err);
enum kc_status kc_store_exec(struct kc_store *store, const char *sql, const char *what,
		struct kc_error *err);
enum kc_status kc_store_db_fail(struct kc_store *store, struct kc_error *err, const char *what);
/*
 * The key ids sql selects (column 0) with ?1 bound to now: the keys some
 * maintenance step is due for. *ids malloc'ed; what names the step in errors.
 */
enum kc_status kc_store_key_ids_at(struct kc_store *store, const char *sql, int64_t now,
		const char *what, char (**ids)[KC_KEY_ID_LEN + 1], size_t *count, struct kc_error *err);
/* Run sql, whose one parameter ?1 is key_id, to completion (no result rows). */
enum kc_status kc_store_run_for_key(struct kc_store *store, const char *sql, const char *key_id,
		const char *what, struct kc_error *err);

/*
 * Copy column col of the current row (TEXT) into out, "" when NULL.
 */
void kc_store_copy_text(sqlite3_stmt *stmt, int col, char *out, size_t out_len);

#endif /* KMSFS_KEYCLIENT_STORE_INTERNAL_H */
