/*
 * node.c - per-inode state shared by every open of the same backing file.
 *
 * Two opens of one file must agree on the data key and must not both
 * read-modify-write the same block at once, so that state hangs off the
 * backing inode (st_dev, st_ino), not off the file handle. A node outlives
 * its last close by key_cache_ttl seconds so that reopening a file that was
 * just used needs no key-service call (DESIGN section 8); after that, or
 * when more than MAX_IDLE nodes are idle, the plaintext data key is wiped.
 *
 * Idle nodes sit on a list in the order they went idle, so expiry pops
 * from the front and the cap evicts the longest idle first.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "fs_internal.h"

#define NODE_BUCKETS 16384
#define MAX_IDLE 8192

static struct kfs_node *buckets[NODE_BUCKETS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kfs_node *idle_head, *idle_tail;
static unsigned idle_count;

static unsigned bucket_of(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev;

	return (unsigned)(h >> 32) % NODE_BUCKETS;
}

static void idle_remove(struct kfs_node *node)
{
	if (node->idle_prev)
		node->idle_prev->idle_next = node->idle_next;
	else
		idle_head = node->idle_next;
	if (node->idle_next)
		node->idle_next->idle_prev = node->idle_prev;
	else
		idle_tail = node->idle_prev;
	node->idle_prev = node->idle_next = NULL;
	idle_count--;
}

static void idle_append(struct kfs_node *node)
{
	node->idle_prev = idle_tail;
	node->idle_next = NULL;
	if (idle_tail)
		idle_tail->idle_next = node;
	else
		idle_head = node;
	idle_tail = node;
	idle_count++;
}

static void unhash(struct kfs_node *node)
{
	struct kfs_node **link = &buckets[bucket_of(node->dev, node->ino)];

	for (; *link; link = &(*link)->next) {
		if (*link == node) {
			*link = node->next;
			return;
		}
	}
}

static void node_free(struct kfs_node *node)
{
	kmsfs_filekey_free(node->fk);   /* wipes the data key */
	pthread_rwlock_destroy(&node->io_lock);
	pthread_mutex_destroy(&node->key_lock);
	free(node);
}

/* Drop idle nodes past their cache time, or beyond the cap. Lock held. */
static void expire_locked(time_t now)
{
	while (idle_head && (idle_count > MAX_IDLE ||
			     now - idle_head->idle_since >= kfs->key_cache_ttl)) {
		struct kfs_node *node = idle_head;

		idle_remove(node);
		unhash(node);
		node_free(node);
	}
}

static struct kfs_node *node_new(dev_t dev, ino_t ino)
{
	struct kfs_node *node = calloc(1, sizeof(*node));

	if (!node)
		return NULL;
	node->dev = dev;
	node->ino = ino;
	pthread_rwlock_init(&node->io_lock, NULL);
	pthread_mutex_init(&node->key_lock, NULL);
	return node;
}

/* Find or make the node for a backing inode; takes a reference. */
struct kfs_node *kfs_node_get(dev_t dev, ino_t ino)
{
	unsigned b = bucket_of(dev, ino);
	struct kfs_node *node;

	pthread_mutex_lock(&table_lock);
	expire_locked(time(NULL));
	for (node = buckets[b]; node; node = node->next)
		if (node->dev == dev && node->ino == ino)
			break;
	if (!node) {
		node = node_new(dev, ino);
		if (node) {
			node->next = buckets[b];
			buckets[b] = node;
		}
	} else if (node->refs == 0) {
		idle_remove(node);
	}
	if (node)
		node->refs++;
	pthread_mutex_unlock(&table_lock);
	return node;
}

void kfs_node_put(struct kfs_node *node)
{
	pthread_mutex_lock(&table_lock);
	if (--node->refs == 0) {
		node->idle_since = time(NULL);
		idle_append(node);
		expire_locked(node->idle_since);
	}
	pthread_mutex_unlock(&table_lock);
}

void kfs_node_table_destroy(void)
{
	pthread_mutex_lock(&table_lock);
	for (unsigned b = 0; b < NODE_BUCKETS; b++) {
		while (buckets[b]) {
			struct kfs_node *node = buckets[b];

			buckets[b] = node->next;
			node_free(node);
		}
	}
	idle_head = idle_tail = NULL;
	idle_count = 0;
	pthread_mutex_unlock(&table_lock);
}
