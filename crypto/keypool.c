/*
 * keypool.c - secrets in a few locked chunks instead of one mapping each.
 *
 * A mounted volume holds one data key per recently used file (tens of
 * thousands during an untar), and kmsd handles every request's plaintext
 * (a request body, a data key, its base64 text) in secure memory,
 * thousands of times a second. One sodium_malloc per secret costs mmap,
 * mprotect, mlock, munlock and munmap - a TLB shootdown across cores each
 * time - and the kernel's mapping limit (vm.max_map_count) runs out long
 * before memory does. So secrets of up to KEYPOOL_MAX bytes come from
 * chunks that are themselves sodium_malloc'ed (locked, guard pages, no
 * core dump), carved into slots of a few size classes. A slot is wiped
 * (the bytes it was asked for) when it is returned, and handed out zeroed.
 */
#include "crypto.h"
#include "crypto_internal.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include <sodium.h>

#define CHUNK_BYTES (256 * 1024)

struct free_slot {
	struct free_slot *next;
};

struct size_class {
	size_t slot;                    /* bytes per slot */
	size_t per_chunk;               /* slots per chunk */
	struct free_slot *free_slots;
};

struct chunk {
	uint8_t *base;                  /* per_chunk * slot bytes, sodium_malloc */
	struct size_class *cls;
	size_t *used;                   /* bytes asked for, per slot: what free wipes */
	struct chunk *next;
};

static struct size_class classes[] = {
	{ KEYPOOL_SLOT, CHUNK_BYTES / KEYPOOL_SLOT, NULL },
	{ 512, CHUNK_BYTES / 512, NULL },
	{ 4096, CHUNK_BYTES / 4096, NULL },
	{ 16384, CHUNK_BYTES / 16384, NULL },
	{ KEYPOOL_MAX, 4, NULL },
};
#define CLASS_COUNT (sizeof classes / sizeof *classes)

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct chunk *chunks;

static struct size_class *class_for(size_t len)
{
	for (size_t i = 0; i < CLASS_COUNT; i++)
		if (len <= classes[i].slot)
			return &classes[i];
	return NULL;
}

static int chunk_add_locked(struct size_class *cls)
{
	struct chunk *c = calloc(1, sizeof(*c));

	if (!c)
		return -1;
	c->used = calloc(cls->per_chunk, sizeof(*c->used));
	c->base = sodium_malloc(cls->per_chunk * cls->slot);
	if (!c->base || !c->used) {
		if (c->base)
			sodium_free(c->base);
		free(c->used);
		free(c);
		return -1;
	}
	sodium_memzero(c->base, cls->per_chunk * cls->slot);   /* sodium_malloc fills with 0xdb */
	c->cls = cls;
	for (size_t i = cls->per_chunk; i-- > 0;) {
		struct free_slot *slot = (struct free_slot *)(void *)(c->base + i * cls->slot);

		slot->next = cls->free_slots;
		cls->free_slots = slot;
	}
	c->next = chunks;
	chunks = c;
	return 0;
}

static struct chunk *chunk_of_locked(const uint8_t *p)
{
	for (struct chunk *c = chunks; c; c = c->next)
		if (p >= c->base && p < c->base + c->cls->per_chunk * c->cls->slot)
			return c;
	return NULL;
}

void *kmsfs_keypool_alloc(size_t len)
{
	struct size_class *cls = class_for(len);
	struct free_slot *slot = NULL;
	struct chunk *c;

	if (!cls)
		return NULL;
	pthread_mutex_lock(&pool_lock);
	if (cls->free_slots || chunk_add_locked(cls) == 0) {
		slot = cls->free_slots;
		cls->free_slots = slot->next;
		c = chunk_of_locked((uint8_t *)slot);
		c->used[((uint8_t *)slot - c->base) / cls->slot] = len;
		slot->next = NULL;      /* free slots are zero but for this link */
	}
	pthread_mutex_unlock(&pool_lock);
	return slot;
}

/* Wipe and return a slot; 0 if ptr is not from the pool. */
int kmsfs_keypool_free(void *ptr)
{
	struct free_slot *slot = ptr;
	struct chunk *c;
	size_t index;

	pthread_mutex_lock(&pool_lock);
	c = chunk_of_locked(ptr);
	if (c) {
		index = ((uint8_t *)ptr - c->base) / c->cls->slot;
		sodium_memzero(ptr, c->used[index] > sizeof(*slot) ? c->used[index] : sizeof(*slot));
		c->used[index] = 0;
		slot->next = c->cls->free_slots;
		c->cls->free_slots = slot;
	}
	pthread_mutex_unlock(&pool_lock);
	return c != NULL;
}
