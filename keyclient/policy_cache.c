/*
 * policy_cache.c - key policies compiled once, not per request: kmsd
 * checks a key policy on every call, and parsing its JSON each time would
 * cost more than the cryptography the call does.
 *
 * Each open store connection has its own cache: one entry per key,
 * direct-mapped on a hash of the key id, remembering kc_store_generation()
 * from just before its text was read. A request that finds the store's
 * generation moved on (any change, by any process) re-reads the text, one
 * indexed row, and compiles again only if the text itself changed. Keys
 * without a policy of their own share the default key policy, which
 * depends only on the account and is compiled once per connection.
 *
 * Entries are counted references: a decision holds its policy while it
 * evaluates, so a policy replaced meanwhile is freed after, not under it.
 *
 * Why caches hang off the SQLite connection and not the store pointer: a
 * store closed and another one opened at the same address must never see
 * the first one's policies. The cache registers a do-nothing SQL function
 * on the connection; SQLite calls that function's destructor when the
 * connection closes, and the destructor drops the connection's cache.
 */
#include "store_grants.h"
#include "store_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_SLOTS 64
#define CLOSE_HOOK_NAME "kmsfs_policy_cache"

struct kc_policy_entry {
	char key_id[KC_KEY_ID_LEN + 1];   /* "" for the default policy */
	int64_t generation;               /* the store's generation when text was read */
	char *text;
	struct kc_policy *policy;
	int refs;                         /* the cache's own, plus one per decision holding it */
};

struct connection_cache {
	sqlite3 *db;
	struct kc_policy_entry *slots[CACHE_SLOTS];
	struct kc_policy_entry *default_policy;
	struct connection_cache *next;
};

/* Guards every cache, entry and reference count; never held while calling the store. */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct connection_cache *caches;

/* ---- entries ------------------------------------------------------------------------ */

static void unref_locked(struct kc_policy_entry *entry)
{
	if (!entry || --entry->refs > 0)
		return;
	kc_policy_free(entry->policy);
	free(entry->text);
	free(entry);
}

static struct kc_policy_entry *take_locked(struct kc_policy_entry *entry)
{
	entry->refs++;
	return entry;
}

/* A new entry (one reference, the cache's) owning text; text is freed on failure. */
static enum kc_status entry_new(const char *key_id, char *text, int64_t generation,
		struct kc_policy_entry **out, struct kc_error *err)
{
	struct kc_policy_entry *entry = calloc(1, sizeof *entry);
	enum kc_status rc;

	*out = NULL;
	if (!entry) {
		free(text);
		return kc_fail(err, KC_INTERNAL, "out of memory");
	}
	snprintf(entry->key_id, sizeof entry->key_id, "%s", key_id);
	entry->generation = generation;
	entry->text = text;
	entry->refs = 1;
	rc = kc_policy_parse(text, &entry->policy, err);
	if (rc != KC_OK) {
		unref_locked(entry);   /* never shared yet: no lock needed */
		/* stored text was validated when it was put: this is a damaged store */
		return kc_fail(err, KC_INTERNAL, "key %s: the stored key policy does not parse",
				key_id);
	}
	*out = entry;
	return KC_OK;
}

const struct kc_policy *kc_policy_entry_policy(const struct kc_policy_entry *entry)
{
	return entry->policy;
}

void kc_policy_entry_release(struct kc_policy_entry *entry)
{
	pthread_mutex_lock(&cache_lock);
	unref_locked(entry);
	pthread_mutex_unlock(&cache_lock);
}

/* ---- one cache per connection ---------------------------------------------------------- */

/* SQLite's destructor for the close hook's data: the connection is closing. */
static void forget_connection(void *arg)
{
	struct connection_cache *cache = arg, **link;

	pthread_mutex_lock(&cache_lock);
	for (link = &caches; *link; link = &(*link)->next) {
		if (*link == cache) {
			*link = cache->next;
			break;
		}
	}
	for (size_t i = 0; i < CACHE_SLOTS; i++)
		unref_locked(cache->slots[i]);
	unref_locked(cache->default_policy);
	pthread_mutex_unlock(&cache_lock);
	free(cache);
}

/* The close hook's SQL function itself: never meant to be called, harmless if it is. */
static void close_hook_sql(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	(void)argv;
	sqlite3_result_null(ctx);
}

static struct connection_cache *find_locked(sqlite3 *db)
{
	struct connection_cache *cache;

	for (cache = caches; cache; cache = cache->next)
		if (cache->db == db)
			return cache;
	return NULL;
}

/* The store connection's cache, made and hooked to the connection's close on first use. */
static enum kc_status connection_cache(struct kc_store *store, struct connection_cache **out,
		struct kc_error *err)
{
	struct connection_cache *cache;
	enum kc_status rc = KC_OK;

	kc_store_lock(store);   /* one registration per connection, even from many threads */
	pthread_mutex_lock(&cache_lock);
	cache = find_locked(store->db);
	pthread_mutex_unlock(&cache_lock);
	if (cache)
		goto out;
	cache = calloc(1, sizeof *cache);
	if (!cache) {
		rc = kc_fail(err, KC_INTERNAL, "out of memory");
		goto out;
	}
	cache->db = store->db;
	/* on failure SQLite runs the destructor itself: cache is freed by then */
	if (sqlite3_create_function_v2(store->db, CLOSE_HOOK_NAME, 0, SQLITE_UTF8, cache,
			close_hook_sql, NULL, NULL, forget_connection) != SQLITE_OK) {
		cache = NULL;
		rc = kc_store_db_fail(store, err, "registering the policy cache");
		goto out;
	}
	pthread_mutex_lock(&cache_lock);
	cache->next = caches;
	caches = cache;
	pthread_mutex_unlock(&cache_lock);
out:
	kc_store_unlock(store);
	*out = cache;
	return rc;
}

/* ---- lookups ------------------------------------------------------------------------------ */

static size_t slot_of(const char *key_id)
{
	uint32_t hash = 2166136261u;   /* FNV-1a */

	for (const char *p = key_id; *p; p++)
		hash = (hash ^ (uint8_t)*p) * 16777619u;
	return hash % CACHE_SLOTS;
}

static enum kc_status get_default(struct kc_local *local, struct connection_cache *cache,
		struct kc_policy_entry **out, struct kc_error *err)
{
	char buf[KC_POLICY_DEFAULT_MAX];
	struct kc_policy_entry *fresh;
	const char *text;
	char *copy;
	enum kc_status rc;

	pthread_mutex_lock(&cache_lock);
	*out = cache->default_policy ? take_locked(cache->default_policy) : NULL;
	pthread_mutex_unlock(&cache_lock);
	if (*out)
		return KC_OK;
	text = kc_policy_default(local->account, buf, sizeof buf);
	copy = text ? strdup(text) : NULL;
	if (!copy)
		return kc_fail(err, KC_INTERNAL, "no default key policy for account %s", local->account);
	rc = entry_new("", copy, 0, &fresh, err);
	if (rc != KC_OK)
		return rc;
	pthread_mutex_lock(&cache_lock);
	if (!cache->default_policy)
		cache->default_policy = take_locked(fresh);
	*out = take_locked(cache->default_policy);
	unref_locked(fresh);   /* ours, or the one another thread installed first */
	pthread_mutex_unlock(&cache_lock);
	return KC_OK;
}

/* The cached entry for key_id when it is still valid for generation (or for text), else NULL. */
static struct kc_policy_entry *lookup(struct kc_policy_entry **slot, const char *key_id,
		int64_t generation, const char *text)
{
	struct kc_policy_entry *entry, *found = NULL;

	pthread_mutex_lock(&cache_lock);
	entry = *slot;
	if (entry && strcmp(entry->key_id, key_id) == 0) {
		if (entry->generation == generation) {
			found = take_locked(entry);
		} else if (text && strcmp(entry->text, text) == 0) {
			entry->generation = generation;   /* the store changed, this policy did not */
			found = take_locked(entry);
		}
	}
	pthread_mutex_unlock(&cache_lock);
	return found;
}

static enum kc_status get_own(struct kc_local *local, struct connection_cache *cache,
		const char *key_id, struct kc_policy_entry **out, struct kc_error *err)
{
	struct kc_policy_entry **slot = &cache->slots[slot_of(key_id)], *fresh;
	int64_t generation;
	enum kc_status rc;
	char *text = NULL;

	/* the generation first: text read after it can only be newer than what it says */
	generation = kc_store_generation(local->store);
	*out = lookup(slot, key_id, generation, NULL);
	if (*out)
		return KC_OK;
	rc = kc_store_get_policy(local->store, key_id, &text, err);
	if (rc != KC_OK)
		return rc;
	if (!text)   /* its policy was removed since the key row was read */
		return get_default(local, cache, out, err);
	*out = lookup(slot, key_id, generation, text);
	if (*out) {
		free(text);
		return KC_OK;
	}
	rc = entry_new(key_id, text, generation, &fresh, err);
	if (rc != KC_OK)
		return rc;
	pthread_mutex_lock(&cache_lock);
	unref_locked(*slot);
	*slot = fresh;
	*out = take_locked(fresh);
	pthread_mutex_unlock(&cache_lock);
	return KC_OK;
}

enum kc_status kc_policy_cache_get(struct kc_local *local, const struct kc_store_key *key,
		struct kc_policy_entry **entry, struct kc_error *err)
{
	struct connection_cache *cache;
	enum kc_status rc;

	*entry = NULL;
	rc = connection_cache(local->store, &cache, err);
	if (rc != KC_OK)
		return rc;
	if (!key->has_policy)
		return get_default(local, cache, entry, err);
	return get_own(local, cache, key->key_id, entry, err);
}
