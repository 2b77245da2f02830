/*
 * uuid.c - UUIDs for key ids, request ids and event ids.
 *
 * Key ids are random (version 4) UUIDs like AWS KMS's; inside a blob a
 * key id travels as its 16 binary bytes, everywhere else as lower-case
 * text "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".
 */
#include "local_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

static int is_dash_position(size_t i)
{
	return i == 8 || i == 13 || i == 18 || i == 23;
}

void kc_uuid_format(const uint8_t in[KC_UUID_LEN], char out[KC_KEY_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t byte = 0;

	for (size_t i = 0; i < KC_KEY_ID_LEN; i++) {
		if (is_dash_position(i)) {
			out[i] = '-';
			continue;
		}
		out[i] = hex[(in[byte / 2] >> (byte % 2 ? 0 : 4)) & 0xf];
		byte++;
	}
	out[KC_KEY_ID_LEN] = '\0';
}

void kc_uuid_v4(char out[KC_KEY_ID_LEN + 1])
{
	uint8_t raw[KC_UUID_LEN];

	randombytes_buf(raw, sizeof raw);
	raw[6] = (uint8_t)((raw[6] & 0x0f) | 0x40);   /* version 4 */
	raw[8] = (uint8_t)((raw[8] & 0x3f) | 0x80);   /* RFC 4122 variant */
	kc_uuid_format(raw, out);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int kc_uuid_parse(const char *text, uint8_t out[KC_UUID_LEN])
{
	size_t nibble = 0;

	if (!text || strlen(text) != KC_KEY_ID_LEN)
		return -1;
	memset(out, 0, KC_UUID_LEN);
	for (size_t i = 0; i < KC_KEY_ID_LEN; i++) {
		int value;
		if (is_dash_position(i)) {
			if (text[i] != '-')
				return -1;
			continue;
		}
		value = hex_value(text[i]);
		if (value < 0)
			return -1;
		out[nibble / 2] |= (uint8_t)(nibble % 2 ? value : value << 4);
		nibble++;
	}
	return 0;
}
