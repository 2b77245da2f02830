/*
 * keyref.c - the ways a caller may name a key, as in AWS KMS.
 *
 * A key is named by its key id (UUID), its key ARN
 * "arn:aws:kms:local:000000000000:key/<uuid>", an alias "alias/name" or
 * an alias ARN "arn:aws:kms:local:000000000000:alias/name". This file only
 * classifies and normalises the text; looking an alias up in the key
 * store is the engine's job.
 */
#include "local_internal.h"

#include <stdio.h>
#include <string.h>

void kc_key_arn(const char *key_id, char out[KC_ARN_MAX])
{
	snprintf(out, KC_ARN_MAX, "%s%s", KC_KEY_ARN_PREFIX, key_id);
}

static int starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int alias_char_ok(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '/' || c == '_' || c == '-';
}

enum kc_status kc_alias_name_check(const char *alias_name, struct kc_error *err)
{
	size_t len;

	if (!alias_name)
		return kc_fail(err, KC_INVALID_ALIAS, "alias name missing");
	len = strlen(alias_name);
	if (!starts_with(alias_name, KC_ALIAS_PREFIX) || len == strlen(KC_ALIAS_PREFIX))
		return kc_fail(err, KC_INVALID_ALIAS, "alias %.64s: must be \"alias/\" followed by a name", alias_name);
	if (starts_with(alias_name, KC_ALIAS_RESERVED_PREFIX))
		return kc_fail(err, KC_INVALID_ALIAS, "alias %.64s: names beginning with alias/aws/ are reserved", alias_name);
	if (len > KC_ALIAS_MAX)
		return kc_fail(err, KC_INVALID_ALIAS, "alias %.64s...: longer than %d characters", alias_name, KC_ALIAS_MAX);
	for (size_t i = 0; i < len; i++) {
		if (!alias_char_ok(alias_name[i]))
			return kc_fail(err, KC_INVALID_ALIAS,
					"alias %.64s: character %zu is not one of A-Z a-z 0-9 / _ -", alias_name, i + 1);
	}
	return KC_OK;
}

/* ref without any ARN prefix: "alias/x" or a UUID. */
static enum kc_status parse_plain(const char *ref, const char *shown, enum kc_ref_kind *kind,
		char name[KC_ALIAS_MAX + 1], struct kc_error *err)
{
	uint8_t raw[KC_UUID_LEN];

	if (starts_with(ref, KC_ALIAS_PREFIX)) {
		if (strlen(ref) > KC_ALIAS_MAX)
			return kc_fail(err, KC_NOT_FOUND, "alias %.64s...: not found (name too long)", ref);
		*kind = KC_REF_ALIAS;
		snprintf(name, KC_ALIAS_MAX + 1, "%s", ref);
		return KC_OK;
	}
	if (kc_uuid_parse(ref, raw) == 0) {
		*kind = KC_REF_KEY_ID;
		kc_uuid_format(raw, name);
		return KC_OK;
	}
	return kc_fail(err, KC_NOT_FOUND,
			"key %.100s: not found (not a key id, key ARN, alias name or alias ARN of this key service)",
			shown);
}

void kc_local_key_arn(const struct kc_local *local, const char *key_id, char out[KC_ARN_MAX])
{
	snprintf(out, KC_ARN_MAX, "%skey/%s", local->arn_prefix, key_id);
}

void kc_local_alias_arn(const struct kc_local *local, const char *alias_name, char out[KC_ARN_MAX])
{
	snprintf(out, KC_ARN_MAX, "%s%s", local->arn_prefix, alias_name);
}

enum kc_status kc_keyref_parse(const char *ref, const char *arn_prefix, enum kc_ref_kind *kind,
		char name[KC_ALIAS_MAX + 1], struct kc_error *err)
{
	const char *rest;

	if (!ref || !*ref)
		return kc_fail(err, KC_VALIDATION, "key id missing");
	if (starts_with(ref, arn_prefix)) {
		rest = ref + strlen(arn_prefix);
		if (starts_with(rest, "key/")) {
			rest += strlen("key/");
			if (starts_with(rest, KC_ALIAS_PREFIX))   /* "key/alias/x" is not an alias ARN */
				return kc_fail(err, KC_NOT_FOUND, "key %.100s: not found (malformed key ARN)", ref);
			return parse_plain(rest, ref, kind, name, err);
		}
		if (starts_with(rest, KC_ALIAS_PREFIX))
			return parse_plain(rest, ref, kind, name, err);
		return kc_fail(err, KC_NOT_FOUND, "key %.100s: not found (ARN is neither key/ nor alias/)", ref);
	}
	if (starts_with(ref, "arn:"))
		return kc_fail(err, KC_NOT_FOUND,
				"key %.100s: not found (ARN of another region, account or service; this one is %s)",
				ref, arn_prefix);
	return parse_plain(ref, ref, kind, name, err);
}
