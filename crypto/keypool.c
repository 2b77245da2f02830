/*
 * keypool.c - many small secrets in few locked pages.
 *
 * A mounted volume holds one data key per recently used file; tens of
 * thousands of them during an untar. One sodium_malloc per key would cost
 * a handful of system calls and several memory mappings each, and the
 * kernel's mapping limit (vm.max_map_count) runs out long before memory
 * does. So keys of up to KEYPOOL_SLOT bytes come from chunks that are
 * themselves sodium_malloc'ed (locked, guard pages, no core dump), carved
 * into slots; a slot is wiped when it is returned.
 */
#include "crypto.h"
#include "crypto_internal.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include <sodium.h>

#define CHUNK_SLOTS 4096                 /* 256 KiB of locked memory per chunk */

struct free_slot {
	struct free_slot *next;
};

struct chunk {
	uint8_t *base;                   /* CHUNK_SLOTS * KEYPOOL_SLOT bytes, sodium_malloc */
	struct chunk *next;
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct chunk *chunks;
static struct free_slot *free_slots;

static int chunk_add_locked(void)
{
	struct chunk *c = malloc(sizeof(*c));

	if (!c)
		return -1;
	c->base = sodium_malloc((size_t)CHUNK_SLOTS * KEYPOOL_SLOT);
	if (!c->base) {
		free(c);
		return -1;
	}
	for (size_t i = CHUNK_SLOTS; i-- > 0;) {
		struct free_slot *slot = (struct free_slot *)(void *)(c->base + i * KEYPOOL_SLOT);

		slot->next = free_slots;
		free_slots = slot;
	}
	c->next = chunks;
	chunks = c;
	return 0;
}

void *kmsfs_keypool_alloc(void)
{
	struct free_slot *slot = NULL;

	pthread_mutex_lock(&pool_lock);
	if (free_slots || chunk_add_locked() == 0) {
		slot = free_slots;
		free_slots = slot->next;
	}
	pthread_mutex_unlock(&pool_lock);
	if (slot)
		sodium_memzero(slot, KEYPOOL_SLOT);
	return slot;
}

static int in_pool_locked(const uint8_t *p)
{
	for (const struct chunk *c = chunks; c; c = c->next)
		if (p >= c->base && p < c->base + (size_t)CHUNK_SLOTS * KEYPOOL_SLOT)
			return 1;
	return 0;
}

/* Wipe and return a slot; 0 if ptr is not from the pool. */
int kmsfs_keypool_free(void *ptr)
{
	struct free_slot *slot = ptr;
	int ours;

	pthread_mutex_lock(&pool_lock);
	ours = in_pool_locked(ptr);
	if (ours) {
		sodium_memzero(slot, KEYPOOL_SLOT);
		slot->next = free_slots;
		free_slots = slot;
	}
	pthread_mutex_unlock(&pool_lock);
	return ours;
}
