/*
 * context.c - the encryption context as bytes.
 *
 * An encryption context is bound to a blob as additional authenticated
 * data, so its byte form must be unambiguous and independent of the order
 * the caller added the pairs in. This is the AWS Encryption SDK's form:
 * u16 pair count, then every pair sorted by key (bytewise), each key and
 * value u16-length-prefixed, big-endian. Plain concatenation would let
 * {"a":"bc"} and {"ab":"c"} collide; the length prefixes prevent that.
 */
#include "local_internal.h"

#include <stdlib.h>
#include <string.h>

int kc_context_add(struct kc_context *ctx, const char *key, const char *value)
{
	if (!ctx || !key || !value || ctx->count >= KC_MAX_CONTEXT_PAIRS)
		return -1;
	ctx->pairs[ctx->count].key = key;
	ctx->pairs[ctx->count].value = value;
	ctx->count++;
	return 0;
}

/* Insertion sort of pair indices by key; at most KC_MAX_CONTEXT_PAIRS. */
static void sort_pairs(const struct kc_context *ctx, size_t order[KC_MAX_CONTEXT_PAIRS])
{
	for (size_t i = 0; i < ctx->count; i++) {
		size_t j = i;
		order[i] = i;
		while (j > 0 && strcmp(ctx->pairs[order[j - 1]].key, ctx->pairs[order[j]].key) > 0) {
			size_t tmp = order[j - 1];
			order[j - 1] = order[j];
			order[j] = tmp;
			j--;
		}
	}
}

/* Checks every pair and returns the serialized length in *total. */
static enum kc_status check_pairs(const struct kc_context *ctx,
		const size_t order[KC_MAX_CONTEXT_PAIRS], size_t *total, struct kc_error *err)
{
	*total = 2;
	for (size_t i = 0; i < ctx->count; i++) {
		const struct kc_pair *pair = &ctx->pairs[order[i]];
		if (pair->key[0] == '\0')
			return kc_fail(err, KC_VALIDATION, "encryption context: empty key");
		if (strlen(pair->key) > UINT16_MAX || strlen(pair->value) > UINT16_MAX)
			return kc_fail(err, KC_VALIDATION, "encryption context: key or value of \"%.64s\" longer than 65535 bytes", pair->key);
		if (i > 0 && strcmp(ctx->pairs[order[i - 1]].key, pair->key) == 0)
			return kc_fail(err, KC_VALIDATION, "encryption context: duplicate key \"%.64s\"", pair->key);
		*total += 4 + strlen(pair->key) + strlen(pair->value);
	}
	return KC_OK;
}

static uint8_t *put_u16_string(uint8_t *p, const char *s)
{
	size_t len = strlen(s);
	p[0] = (uint8_t)(len >> 8);
	p[1] = (uint8_t)len;
	memcpy(p + 2, s, len);
	return p + 2 + len;
}

enum kc_status kc_context_serialize(const struct kc_context *ctx, uint8_t **out,
		size_t *out_len, struct kc_error *err)
{
	static const struct kc_context empty;
	size_t order[KC_MAX_CONTEXT_PAIRS];
	size_t total = 0;
	uint8_t *bytes = NULL, *p;
	enum kc_status rc;

	*out = NULL;
	*out_len = 0;
	if (!ctx)
		ctx = &empty;
	if (ctx->count > KC_MAX_CONTEXT_PAIRS) {
		rc = kc_fail(err, KC_VALIDATION, "encryption context: %zu pairs, at most %d allowed",
				ctx->count, KC_MAX_CONTEXT_PAIRS);
		goto out;
	}
	for (size_t i = 0; i < ctx->count; i++) {
		if (!ctx->pairs[i].key || !ctx->pairs[i].value) {
			rc = kc_fail(err, KC_VALIDATION, "encryption context: pair %zu has a NULL key or value", i);
			goto out;
		}
	}
	sort_pairs(ctx, order);
	rc = check_pairs(ctx, order, &total, err);
	if (rc != KC_OK)
		goto out;
	bytes = malloc(total);
	if (!bytes) {
		rc = kc_fail(err, KC_INTERNAL, "encryption context: out of memory");
		goto out;
	}
	bytes[0] = (uint8_t)(ctx->count >> 8);
	bytes[1] = (uint8_t)ctx->count;
	p = bytes + 2;
	for (size_t i = 0; i < ctx->count; i++) {
		p = put_u16_string(p, ctx->pairs[order[i]].key);
		p = put_u16_string(p, ctx->pairs[order[i]].value);
	}
	*out = bytes;
	*out_len = total;
	bytes = NULL;
out:
	free(bytes);
	return rc;
}
