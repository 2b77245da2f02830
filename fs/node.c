/*
 * node.c - per-inode state shared by every open of the same backing file.
 *
 * Two opens of one file must agree on the data key and must not both
 * read-modify-write the same block at once, so that state hangs off the
 * backing inode (st_dev, st_ino), not off the file handle. A node outlives
 * its last close by key_cache_ttl seconds so that reopening a file that was
 * just used needs no key-service call (DESIGN section 8); after that the
 * plaintext data key is wiped.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "fs_internal.h"

#define NODE_BUCKETS 4096
#define SWEEP_EVERY 1024

static struct kfs_node *buckets[NODE_BUCKETS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long gets_since_sweep;

static unsigned bucket_of(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev;
	return (unsigned)(h >> 32) % NODE_BUCKETS;
}

static void node_free(struct kfs_node *node)
{
	kmsfs_filekey_free(node->fk);   /* wipes the data key */
	pthread_rwlock_destroy(&node->io_lock);
	pthread_mutex_destroy(&node->key_lock);
	free(node);
}

static int node_expired(const struct kfs_node *node, time_t now)
{
	return node->refs == 0 && now - node->idle_since >= kfs->key_cache_ttl;
}

/* Drop idle nodes whose cache time is over. Caller holds table_lock. */
static void sweep_bucket(unsigned b, time_t now)
{
	struct kfs_node **link = &buckets[b];

	while (*link) {
		struct kfs_node *node = *link;

		if (node_expired(node, now)) {
			*link = node->next;
			node_free(node);
		} else {
			link = &node->next;
		}
	}
}

static void sweep_all(time_t now)
{
	for (unsigned b = 0; b < NODE_BUCKETS; b++)
		sweep_bucket(b, now);
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
	time_t now = time(NULL);
	struct kfs_node *node;

	pthread_mutex_lock(&table_lock);
	if (++gets_since_sweep >= SWEEP_EVERY) {
		gets_since_sweep = 0;
		sweep_all(now);
	}
	for (node = buckets[b]; node; node = node->next)
		if (node->dev == dev && node->ino == ino)
			break;
	if (!node) {
		node = node_new(dev, ino);
		if (node) {
			node->next = buckets[b];
			buckets[b] = node;
		}
	}
	if (node)
		node->refs++;
	pthread_mutex_unlock(&table_lock);
	return node;
}

void kfs_node_put(struct kfs_node *node)
{
	unsigned b = bucket_of(node->dev, node->ino);

	pthread_mutex_lock(&table_lock);
	if (--node->refs == 0) {
		node->idle_since = time(NULL);
		if (kfs->key_cache_ttl <= 0)
			sweep_bucket(b, node->idle_since);
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
	pthread_mutex_unlock(&table_lock);
}
