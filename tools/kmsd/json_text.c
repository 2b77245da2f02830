/*
 * json_text.c - compact JSON text of a jansson value, for the two texts
 * kmsd writes on every request: the response body and the audit record.
 *
 * Why not json_dumpb: jansson 2.14 guards every dump against reference
 * loops by formatting each container's address with snprintf into a
 * hashtable, and hands the output to a callback a few bytes at a time;
 * run twice per text (once to size the buffer), that was a quarter of
 * kmsd's CPU per request. The values kmsd dumps are trees it built
 * itself, so this writer walks them once to size and once to write,
 * with nothing allocated in between. Strings in jansson are valid UTF-8
 * already; only '"', '\\' and control characters need escaping.
 * Parsing stays with jansson.
 */
#include "kmsd.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Appends to out when out is not NULL; always counts. */
struct json_out {
	char *out;
	size_t len;
};

static void put(struct json_out *w, const char *text, size_t len)
{
	if (w->out)
		memcpy(w->out + w->len, text, len);
	w->len += len;
}

/* Characters JSON needs escaped: '"', '\\' and the control characters. */
static int needs_escape(unsigned char c)
{
	return c < 0x20 || c == '"' || c == '\\';
}

static void put_escape(struct json_out *w, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	char escape[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

	if (c == '"' || c == '\\') {
		escape[1] = (char)c;
		put(w, escape, 2);
	} else if (c == '\n') {
		put(w, "\\n", 2);
	} else {
		put(w, escape, 6);
	}
}

static void put_string(struct json_out *w, const char *s, size_t len)
{
	size_t run = 0;

	put(w, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (!needs_escape((unsigned char)s[i]))
			continue;
		put(w, s + run, i - run);
		put_escape(w, (unsigned char)s[i]);
		run = i + 1;
	}
	put(w, s + run, len - run);
	put(w, "\"", 1);
}

static void put_number(struct json_out *w, json_t *value)
{
	char text[40];
	int len;

	if (json_is_integer(value))
		len = snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
	else
		len = snprintf(text, sizeof text, "%.17g", json_real_value(value));
	/* A real that prints as an integer stays a real for readers that care. */
	if (json_is_real(value) && !strpbrk(text, ".eEni"))
		len += snprintf(text + len, sizeof text - (size_t)len, ".0");
	put(w, text, (size_t)len);
}

static void put_value(struct json_out *w, json_t *value)
{
	const char *key;
	json_t *child;
	size_t i, n = 0;

	switch (json_typeof(value)) {
	case JSON_OBJECT:
		put(w, "{", 1);
		json_object_foreach(value, key, child) {
			if (n++)
				put(w, ",", 1);
			put_string(w, key, strlen(key));
			put(w, ":", 1);
			put_value(w, child);
		}
		put(w, "}", 1);
		break;
	case JSON_ARRAY:
		put(w, "[", 1);
		json_array_foreach(value, i, child) {
			if (i)
				put(w, ",", 1);
			put_value(w, child);
		}
		put(w, "]", 1);
		break;
	case JSON_STRING:
		put_string(w, json_string_value(value), json_string_length(value));
		break;
	case JSON_INTEGER:
	case JSON_REAL:
		put_number(w, value);
		break;
	case JSON_TRUE:
		put(w, "true", 4);
		break;
	case JSON_FALSE:
		put(w, "false", 5);
		break;
	case JSON_NULL:
		put(w, "null", 4);
		break;
	}
}

size_t kmsd_json_out_size(json_t *value)
{
	struct json_out w = { NULL, 0 };

	put_value(&w, value);
	return w.len;
}

size_t kmsd_json_out(json_t *value, char *out)
{
	struct json_out w = { out, 0 };

	put_value(&w, value);
	return w.len;
}
