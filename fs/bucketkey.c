/*
 * bucketkey.c - bucket key mode (DESIGN section 2, as S3 Bucket Keys):
 * file data keys wrapped locally under a bucket key each principal gets
 * from the key service once per key_cache_ttl.
 *
 * In a volume with bucket_key = true a new file's data key is 32 random
 * bytes sealed with XChaCha20-Poly1305 under the caller's bucket key, a
 * data key from GenerateDataKey with the context {"kmsfs:volume": <volume
 * id>} asked as that caller. user.kmsfs.dek is then version 2 (dekfmt.c),
 * whose seal binds the volume id and the file id: a wrapped key copied
 * onto another file, or into another volume, fails to unseal (EIO and an audit record) as a
 * version-1 key fails to unwrap. Opening needs the bucket key back: a
 * Decrypt of the CiphertextBlob as the caller, with the volume context.
 *
 * Who may read is still the key service's decision, per principal: a
 * principal only ever uses a bucket key it got through its own
 * GenerateDataKey or Decrypt; one principal's cached key never serves
 * another. A key that came from Decrypt is never used to wrap new files,
 * or a principal allowed kms:Decrypt alone could create them.
 *
 * The cache holds (principal, SHA-256 of the CiphertextBlob) -> the
 * plaintext bucket key, in secure memory, for key_cache_ttl seconds from
 * when the key service was asked (0: no caching, every file asks). So the
 * key service sees one call per principal per period instead of one per
 * file, and the revocation latency - disabling the key, or taking a
 * principal's permission away, until new opens and creates are denied -
 * is key_cache_ttl, as without bucket keys; but it now covers every file
 * of the volume, not only files opened recently. A file opened through a
 * cached bucket key is authorized as of that key-service answer (its
 * grant counts from then, filekey.c), so the bound does not stack.
 * Concurrent misses on one entry wait for a single key-service call.
 * At most BUCKET_CACHE_MAX entries, oldest out first; a key is wiped when
 * the next data-key operation finds it expired, on eviction and at unmount.
 *
 * Audit: the key-service calls are recorded by keyclient (eventSource
 * kms.amazonaws.com, volume context, the path of the file that caused
 * them). Every data key wrapped or unwrapped here is also recorded on its
 * own, eventSource "kmsfs", GenerateDataKey or Decrypt with the file's
 * context, path and caller and additionalEventData.bucketKey = true: the
 * log still names every file decrypt, whether the key service was asked.
 */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "fs_internal.h"

#define BUCKET_CACHE_MAX 1024
#define BUCKET_KEY_LEN KFS_BUCKET_KEY_LEN
#define BLOB_HASH_LEN crypto_hash_sha256_BYTES

/* A bucket key: a cache entry, a fetch under way, or one caller's copy. */
struct bucket_entry {
	char *principal;                 /* NULL: unsigned */
	int for_create;                  /* from GenerateDataKey: may wrap new files */
	int has_hash;                    /* blob_hash known (not for a create in flight) */
	uint8_t blob_hash[BLOB_HASH_LEN];
	uint8_t *blob;                   /* the CiphertextBlob; kept by create entries only */
	size_t blob_len;
	char key_arn[KC_ARN_MAX];
	uint8_t *key;                    /* the plaintext bucket key, secure memory */
	time_t obtained_at;              /* when the key service was asked */
	struct bucket_entry *prev, *next;
};

struct bucket_list {
	struct bucket_entry *head, *tail;
	unsigned count;
};

/* What a caller needs: its principal's create key, or the key of one blob. */
struct bucket_query {
	const char *principal;
	int for_create;
	const uint8_t *blob_hash;        /* opens */
};

/* What a miss asks the key service. */
struct bucket_fetch {
	const struct kc_caller *caller;
	const char *path;                /* the file that needed it, for the audit record */
	const char *key_arn;             /* opens: the key the xattr names */
	const uint8_t *blob;             /* opens: the bucket key's CiphertextBlob */
	size_t blob_len;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fetch_done = PTHREAD_COND_INITIALIZER;
static struct bucket_list ready;     /* usable keys, oldest first */
static struct bucket_list pending;   /* key-service calls under way */

/* ---- entries and lists --------------------------------------------------------------- */

static void entry_free(struct bucket_entry *e)
{
	if (!e)
		return;
	kmsfs_secure_free(e->key);       /* wipes the bucket key */
	free(e->blob);
	free(e->principal);
	free(e);
}

static struct bucket_entry *entry_new(const struct bucket_query *q)
{
	struct bucket_entry *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->key = kmsfs_secure_alloc(BUCKET_KEY_LEN);
	e->principal = q->principal ? strdup(q->principal) : NULL;
	if (!e->key || (q->principal && !e->principal)) {
		entry_free(e);
		return NULL;
	}
	e->for_create = q->for_create;
	e->has_hash = q->blob_hash != NULL;
	if (q->blob_hash)
		memcpy(e->blob_hash, q->blob_hash, BLOB_HASH_LEN);
	return e;
}

/* Copy src's key into dst (same principal); the blob only if dst wraps with it. */
static int entry_copy_key(struct bucket_entry *dst, const struct bucket_entry *src)
{
	memcpy(dst->key, src->key, BUCKET_KEY_LEN);
	memcpy(dst->blob_hash, src->blob_hash, BLOB_HASH_LEN);
	dst->has_hash = src->has_hash;
	memcpy(dst->key_arn, src->key_arn, KC_ARN_MAX);
	dst->obtained_at = src->obtained_at;
	if (!dst->for_create || !src->blob)
		return 0;
	dst->blob = malloc(src->blob_len);
	if (!dst->blob)
		return -ENOMEM;
	memcpy(dst->blob, src->blob, src->blob_len);
	dst->blob_len = src->blob_len;
	return 0;
}

static void list_append(struct bucket_list *list, struct bucket_entry *e)
{
	e->prev = list->tail;
	e->next = NULL;
	if (list->tail)
		list->tail->next = e;
	else
		list->head = e;
	list->tail = e;
	list->count++;
}

static void list_remove(struct bucket_list *list, struct bucket_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		list->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		list->tail = e->prev;
	e->prev = e->next = NULL;
	list->count--;
}

static int same_principal(const char *a, const char *b)
{
	return a && b ? strcmp(a, b) == 0 : a == b;
}

static int entry_matches(const struct bucket_entry *e, const struct bucket_query *q)
{
	if (!same_principal(e->principal, q->principal))
		return 0;
	if (q->for_create)
		return e->for_create;
	return e->has_hash && memcmp(e->blob_hash, q->blob_hash, BLOB_HASH_LEN) == 0;
}

/* A clock stepped back makes an entry stale, never fresher. */
static int entry_fresh(const struct bucket_entry *e, time_t now)
{
	return now >= e->obtained_at && now - e->obtained_at < kfs->key_cache_ttl;
}

/* Drop keys past their time, and the oldest beyond the cap. Lock held. */
static void expire_locked(time_t now)
{
	while (ready.head && (ready.count > BUCKET_CACHE_MAX || !entry_fresh(ready.head, now))) {
		struct bucket_entry *e = ready.head;

		list_remove(&ready, e);
		entry_free(e);
	}
}

/* ---- the cache ------------------------------------------------------------------------ */

/*
 * Lock held. A fresh entry for q, newest first; or NULL once claim is
 * registered as the fetch for q - after waiting out another thread's fetch
 * for the same thing, which may have failed (then this caller asks itself,
 * and gets its own answer and audit record).
 */
static struct bucket_entry *find_or_claim(const struct bucket_query *q, struct bucket_entry *claim)
{
	struct bucket_entry *e;

	for (;;) {
		time_t now = time(NULL);

		expire_locked(now);
		for (e = ready.tail; e; e = e->prev)
			if (entry_matches(e, q) && entry_fresh(e, now))
				return e;
		for (e = pending.head; e && !entry_matches(e, q); e = e->next)
			;
		if (!e) {
			list_append(&pending, claim);
			return NULL;
		}
		pthread_cond_wait(&fetch_done, &cache_lock);
	}
}

/* The key-service call for a miss, as the caller; fills e. 0 or -errno. */
static int fetch(struct bucket_entry *e, const struct bucket_fetch *f)
{
	struct kc_context ctx;
	struct kc_error err = { 0 };
	size_t key_len = BUCKET_KEY_LEN;
	enum kc_status status;

	kfs_dek_context(&ctx, kfs->vol.id, NULL);
	e->obtained_at = time(NULL);
	if (e->for_create)
		status = keyclient_generate_data_key_file(kfs->kc, kfs->vol.key_id, &ctx, f->caller,
				f->path, e->key, BUCKET_KEY_LEN, &e->blob, &e->blob_len, e->key_arn,
				&err);
	else
		status = keyclient_decrypt_file(kfs->kc, f->key_arn, f->blob, f->blob_len, &ctx,
				f->caller, f->path, e->key, BUCKET_KEY_LEN, &key_len, e->key_arn,
				&err);
	if (status != KC_OK) {
		syslog(LOG_NOTICE, "%s: bucket key %s refused: %s (%s)", f->path,
		       e->for_create ? "generation" : "unwrap", err.message, err.type);
		return kmsfs_errno_for_status(status);
	}
	if (key_len != BUCKET_KEY_LEN)
		return -EIO;
	if (!e->key_arn[0])
		snprintf(e->key_arn, sizeof(e->key_arn), "%s", f->key_arn ? f->key_arn :
			 kfs->vol.key_id);
	if (e->for_create) {
		crypto_hash_sha256(e->blob_hash, e->blob, e->blob_len);
		e->has_hash = 1;
	}
	return 0;
}

/* Lock held. A successful fetch becomes a cache entry (a copy: the caller keeps its own). */
static void remember_locked(const struct bucket_entry *fetched, const struct bucket_query *q)
{
	struct bucket_entry *e = entry_new(q);

	if (!e)
		return;
	if (entry_copy_key(e, fetched) < 0) {
		entry_free(e);
		return;
	}
	list_append(&ready, e);
	expire_locked(time(NULL));
}

/*
 * The bucket key for q, as a private copy in *out (free with entry_free):
 * from the cache, or from the key service - once for every thread that
 * asks for the same thing at the same time. key_cache_ttl 0: always the
 * key service, no cache. 0 or -errno.
 */
static int bucket_get(const struct bucket_query *q, const struct bucket_fetch *f,
		      struct bucket_entry **out)
{
	struct bucket_entry *mine = entry_new(q), *cached;
	int ret;

	if (!mine)
		return -ENOMEM;
	if (kfs->key_cache_ttl <= 0) {
		ret = fetch(mine, f);
		goto out;
	}
	pthread_mutex_lock(&cache_lock);
	cached = find_or_claim(q, mine);
	if (cached) {
		ret = entry_copy_key(mine, cached);
		pthread_mutex_unlock(&cache_lock);
		goto out;
	}
	pthread_mutex_unlock(&cache_lock);
	ret = fetch(mine, f);
	pthread_mutex_lock(&cache_lock);
	list_remove(&pending, mine);
	if (ret == 0)
		remember_locked(mine, q);
	pthread_cond_broadcast(&fetch_done);
	pthread_mutex_unlock(&cache_lock);
out:
	if (ret < 0) {
		entry_free(mine);
		mine = NULL;
	}
	*out = mine;
	return ret;
}

void kfs_bucket_cache_destroy(void)
{
	pthread_mutex_lock(&cache_lock);
	while (ready.head) {
		struct bucket_entry *e = ready.head;

		list_remove(&ready, e);
		entry_free(e);
	}
	pthread_mutex_unlock(&cache_lock);
}

/* The file's own record: its context and path, served by a bucket key. */
static void audit_file(const char *event_name, const struct kmsfs_header *hdr, const char *path,
		       const struct kc_caller *caller, const char *key_arn,
		       const struct kc_error *err)
{
	kfs_dek_audit_bucket(kfs->audit, event_name, kfs->vol.id, hdr, path, caller, key_arn,
			     err);
}

/* ---- wrapping and unwrapping ------------------------------------------------------------ */

int kfs_bucket_wrap(const struct kmsfs_header *hdr, const char *path,
		    const struct kc_caller *caller, uint8_t *dek, struct kfs_wrapped_dek *out)
{
	struct bucket_query q = { .principal = caller->principal, .for_create = 1 };
	struct bucket_fetch f = { .caller = caller, .path = path };
	struct bucket_entry *bk = NULL;
	int ret;

	ret = bucket_get(&q, &f, &bk);
	if (ret < 0)
		return ret;
	kmsfs_random(dek, KMSFS_DEK_LEN);
	ret = kfs_dek_bucket_seal(bk->key, bk->key_arn, bk->blob, bk->blob_len, kfs->vol.id, hdr,
				  dek, out->value, &out->len);
	if (ret < 0)
		goto out;
	out->authorized_at = bk->obtained_at;
	audit_file("GenerateDataKey", hdr, path, caller, bk->key_arn, NULL);
out:
	entry_free(bk);
	return ret;
}

/* A sealed data key that does not open: damaged, or made for another file or volume. */
static int unseal_failed(const struct kmsfs_header *hdr, const char *path,
			 const struct kc_caller *caller, const char *key_arn)
{
	struct kc_error err;

	kc_fail(&err, KC_INVALID_CIPHERTEXT, "the data key in user.kmsfs.dek does not open under "
		"its bucket key for this file (damaged, or copied from another file or volume)");
	syslog(LOG_WARNING, "%s: %s", path, err.message);
	audit_file("Decrypt", hdr, path, caller, key_arn, &err);
	return -EIO;
}

int kfs_bucket_unwrap(const struct kmsfs_header *hdr, const char *path,
		      const struct kc_caller *caller, struct kfs_wrapped_dek *wrapped,
		      uint8_t *dek)
{
	struct kfs_dek_fields w;
	uint8_t blob_hash[BLOB_HASH_LEN];
	struct bucket_query q = { .principal = caller->principal, .blob_hash = blob_hash };
	struct bucket_fetch f = { .caller = caller, .path = path };
	struct bucket_entry *bk = NULL;
	int ret;

	if (kfs_dek_decode_v2(wrapped->value, wrapped->len, &w) < 0) {
		kfs_audit_integrity(path, "MalformedDataKey", -1,
				    "user.kmsfs.dek xattr (bucket key version) is malformed");
		return -EIO;
	}
	crypto_hash_sha256(blob_hash, w.blob, w.blob_len);
	f.key_arn = w.key_arn;
	f.blob = w.blob;
	f.blob_len = w.blob_len;
	ret = bucket_get(&q, &f, &bk);
	if (ret < 0)
		return ret;
	if (kfs_dek_bucket_open(bk->key, kfs->vol.id, hdr, &w, dek) < 0) {
		ret = unseal_failed(hdr, path, caller, bk->key_arn);
		goto out;
	}
	wrapped->authorized_at = bk->obtained_at;
	audit_file("Decrypt", hdr, path, caller, bk->key_arn, NULL);
out:
	entry_free(bk);
	return ret;
}
