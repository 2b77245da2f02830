/*
 * pkcs11.c - a key store's root key kept by a PKCS#11 token (DESIGN §6:
 * the custom-key-store analogue; SoftHSM in tests).
 *
 * The store's root key is random. What the store keeps is that key
 * encrypted, in the token, by an AES-256 secret key object that was
 * generated in the token and can be neither read nor exported
 * (CKA_SENSITIVE, not CKA_EXTRACTABLE): a copy of keystore.db is useless
 * without the token and its PIN. The RFC 7512 URI names the token, the
 * key object and where the PIN is:
 *   pkcs11:token=kmsd;object=kmsd-root?pin-source=file:/etc/kmsd/pin
 * The module (the token's library) is dlopen'ed for the one operation
 * and unloaded after it: a store is unlocked once per open, so no
 * session, PIN or handle stays in the process.
 *
 * Error messages name the token and the object, never the URI itself:
 * it may hold the PIN.
 */
#include "crypto.h"
#include "local_internal.h"

#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <p11-kit/pkcs11.h>
#include <sodium.h>

#define KC_PIN_MAX 256
#define KC_P11_SCHEME "pkcs11:"

/* ---- the URI (RFC 7512) ---------------------------------------------------------------- */

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode text[0, len) into out (cap bytes with the NUL). -1: bad escape, NUL or too long. */
static int decode_value(const char *text, size_t len, char *out, size_t cap)
{
	size_t used = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)text[i];
		if (c == '%') {
			int hi = i + 2 < len ? hex_digit(text[i + 1]) : -1;
			int lo = i + 2 < len ? hex_digit(text[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return -1;
			c = hi * 16 + lo;
			i += 2;
		}
		if (c == 0 || used + 1 >= cap)
			return -1;
		out[used++] = (char)c;
	}
	out[used] = '\0';
	return 0;
}

/* The attributes kept as plain text, wherever they appear (path or query). */
struct uri_text_attr {
	const char *name;
	size_t offset;
	size_t cap;
};

#define TEXT_ATTR(attr_name, field) \
	{ attr_name, offsetof(struct kc_pkcs11_uri, field), sizeof ((struct kc_pkcs11_uri *)0)->field }

static const struct uri_text_attr text_attrs[] = {
	TEXT_ATTR("token", token),
	TEXT_ATTR("serial", serial),
	TEXT_ATTR("manufacturer", manufacturer),
	TEXT_ATTR("model", model),
	TEXT_ATTR("object", object),
	TEXT_ATTR("module-path", module_path),
	TEXT_ATTR("pin-source", pin_source),
};

static enum kc_status parse_pin_value(const char *value, size_t len, struct kc_pkcs11_uri *out,
		struct kc_error *err)
{
	if (out->pin)
		return kc_fail(err, KC_VALIDATION, "PKCS#11 URI: pin-value given twice");
	out->pin = kmsfs_secure_alloc(KC_PIN_MAX + 1);
	if (!out->pin)
		return kc_fail(err, KC_INTERNAL, "PKCS#11 URI: out of secure memory");
	if (decode_value(value, len, out->pin, KC_PIN_MAX + 1) != 0)
		return kc_fail(err, KC_VALIDATION, "PKCS#11 URI: pin-value malformed or longer than %d bytes",
				KC_PIN_MAX);
	return KC_OK;
}

/* type= may only say what the object is anyway. */
static enum kc_status check_type(const char *value, size_t len, struct kc_error *err)
{
	if (len == strlen("secret-key") && strncmp(value, "secret-key", len) == 0)
		return KC_OK;
	return kc_fail(err, KC_VALIDATION, "PKCS#11 URI: type=%.*s: the root key's wrapping key is a "
			"secret-key", (int)(len > 40 ? 40 : len), value);
}

/* One name=value of the path or the query. */
static enum kc_status parse_attr(const char *attr, size_t len, struct kc_pkcs11_uri *out,
		struct kc_error *err)
{
	const char *eq = memchr(attr, '=', len);
	size_t name_len = eq ? (size_t)(eq - attr) : len;
	const char *value = eq ? eq + 1 : attr + len;
	size_t value_len = len - name_len - (eq ? 1 : 0);

	if (!eq)   /* not echoed: it could be a PIN that lost its "pin-value=" */
		return kc_fail(err, KC_VALIDATION, "PKCS#11 URI: an attribute is not name=value");
	if (name_len == strlen("pin-value") && strncmp(attr, "pin-value", name_len) == 0)
		return parse_pin_value(value, value_len, out, err);
	if (name_len == strlen("type") && strncmp(attr, "type", name_len) == 0)
		return check_type(value, value_len, err);
	for (size_t i = 0; i < sizeof text_attrs / sizeof text_attrs[0]; i++) {
		char *field = (char *)out + text_attrs[i].offset;
		if (strlen(text_attrs[i].name) != name_len || strncmp(attr, text_attrs[i].name, name_len) != 0)
			continue;
		if (*field)
			return kc_fail(err, KC_VALIDATION, "PKCS#11 URI: %s given twice", text_attrs[i].name);
		if (decode_value(value, value_len, field, text_attrs[i].cap) != 0 || !*field)
			return kc_fail(err, KC_VALIDATION, "PKCS#11 URI: %s: empty, malformed or longer than "
					"%zu bytes", text_attrs[i].name, text_attrs[i].cap - 1);
		return KC_OK;
	}
	return kc_fail(err, KC_VALIDATION, "PKCS#11 URI: attribute %.*s not supported (token, serial, "
			"manufacturer, model, object, type, pin-value, pin-source, module-path)",
			(int)(name_len > 40 ? 40 : name_len), attr);
}

/* "file:/path", "file:///path" or "/path": a file whose first line is the PIN. */
static enum kc_status resolve_pin_source(struct kc_pkcs11_uri *out, struct kc_error *err)
{
	const char *path = out->pin_source;

	if (!*path)
		return KC_OK;
	if (strncmp(path, "file://", 7) == 0)
		path += 7;
	else if (strncmp(path, "file:", 5) == 0)
		path += 5;
	if (*path != '/')
		return kc_fail(err, KC_VALIDATION, "PKCS#11 URI: pin-source must be file:/absolute/path");
	memmove(out->pin_source, path, strlen(path) + 1);
	if (out->pin)
		return kc_fail(err, KC_VALIDATION, "PKCS#11 URI: give pin-value or pin-source, not both");
	return KC_OK;
}

/* Attributes separated by sep in text[0, len). */
static enum kc_status parse_attrs(const char *text, size_t len, char sep,
		struct kc_pkcs11_uri *out, struct kc_error *err)
{
	enum kc_status rc = KC_OK;

	while (rc == KC_OK && len > 0) {
		const char *end = memchr(text, sep, len);
		size_t attr_len = end ? (size_t)(end - text) : len;
		if (attr_len > 0)
			rc = parse_attr(text, attr_len, out, err);
		text += attr_len + (end ? 1 : 0);
		len -= attr_len + (end ? 1 : 0);
	}
	return rc;
}

enum kc_status kc_pkcs11_uri_parse(const char *uri, struct kc_pkcs11_uri *out, struct kc_error *err)
{
	const char *path, *query;
	enum kc_status rc;

	memset(out, 0, sizeof *out);
	if (strncasecmp(uri, KC_P11_SCHEME, strlen(KC_P11_SCHEME)) != 0) {
		rc = kc_fail(err, KC_VALIDATION, "PKCS#11 URI: does not start with pkcs11:");
		goto out;
	}
	path = uri + strlen(KC_P11_SCHEME);
	/* Query attributes (pin-*, module-*) are accepted in the path too, as some configs put them. */
	query = strchr(path, '?');
	rc = parse_attrs(path, query ? (size_t)(query - path) : strlen(path), ';', out, err);
	if (rc == KC_OK && query)
		rc = parse_attrs(query + 1, strlen(query + 1), '&', out, err);
	if (rc == KC_OK)
		rc = resolve_pin_source(out, err);
	if (rc == KC_OK && !*out->object)
		rc = kc_fail(err, KC_VALIDATION, "PKCS#11 URI: object= (the AES key's label) missing");
	if (rc == KC_OK && *out->module_path && out->module_path[0] != '/')
		rc = kc_fail(err, KC_VALIDATION, "PKCS#11 URI: module-path must be an absolute path");
out:
	if (rc != KC_OK)
		kc_pkcs11_uri_free(out);
	return rc;
}

void kc_pkcs11_uri_free(struct kc_pkcs11_uri *uri)
{
	kmsfs_secure_free(uri->pin);
	uri->pin = NULL;
}

/* ---- the module and the token --------------------------------------------------------------- */

/* One operation's hold on the token; token_close undoes whatever was done. */
struct token {
	void *module;                 /* dlopen handle */
	CK_FUNCTION_LIST_PTR fn;
	int finalize;                 /* this code initialised the module */
	CK_SESSION_HANDLE session;
	int session_open;
	int logged_in;
	const char *dir;              /* the key store, for messages */
	char name[80];                /* "PKCS#11 token kmsd", for messages */
};

static const char *ckr_name(CK_RV rv)
{
	switch (rv) {
	case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
	case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
	case CKR_PIN_EXPIRED: return "CKR_PIN_EXPIRED";
	case CKR_PIN_LEN_RANGE: return "CKR_PIN_LEN_RANGE";
	case CKR_USER_PIN_NOT_INITIALIZED: return "CKR_USER_PIN_NOT_INITIALIZED";
	case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
	case CKR_TOKEN_WRITE_PROTECTED: return "CKR_TOKEN_WRITE_PROTECTED";
	case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
	case CKR_MECHANISM_PARAM_INVALID: return "CKR_MECHANISM_PARAM_INVALID";
	case CKR_ENCRYPTED_DATA_INVALID: return "CKR_ENCRYPTED_DATA_INVALID";
	case CKR_KEY_FUNCTION_NOT_PERMITTED: return "CKR_KEY_FUNCTION_NOT_PERMITTED";
	case CKR_DEVICE_MEMORY: return "CKR_DEVICE_MEMORY";
	case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
	case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
	case CKR_ARGUMENTS_BAD: return "CKR_ARGUMENTS_BAD";
	}
	return "a PKCS#11 error";
}

static enum kc_status token_fail(const struct token *t, CK_RV rv, const char *what,
		struct kc_error *err)
{
	return kc_fail(err, KC_INTERNAL, "key store %s: %s: %s failed: %s (0x%lx)", t->dir, t->name,
			what, ckr_name(rv), (unsigned long)rv);
}

static enum kc_status module_path_of(const struct kc_local_options *opts,
		const struct kc_pkcs11_uri *uri, const char **path, struct kc_error *err)
{
	*path = KC_PKCS11_DEFAULT_MODULE;
	if (*uri->module_path && opts->pkcs11_module && strcmp(uri->module_path, opts->pkcs11_module) != 0)
		return kc_fail(err, KC_VALIDATION, "key store %s: the PKCS#11 URI's module-path and the "
				"configured module differ (%s, %s); give one", opts->dir, uri->module_path,
				opts->pkcs11_module);
	if (*uri->module_path)
		*path = uri->module_path;
	else if (opts->pkcs11_module && *opts->pkcs11_module)
		*path = opts->pkcs11_module;
	return KC_OK;
}

static enum kc_status token_load(struct token *t, const char *module_path, struct kc_error *err)
{
	CK_C_INITIALIZE_ARGS init_args = { .flags = CKF_OS_LOCKING_OK };
	CK_C_GetFunctionList get_list;
	CK_RV rv;

	t->module = dlopen(module_path, RTLD_NOW | RTLD_LOCAL);
	if (!t->module)
		return kc_fail(err, KC_VALIDATION, "key store %s: cannot load PKCS#11 module %s: %s",
				t->dir, module_path, dlerror());
	get_list = (CK_C_GetFunctionList)dlsym(t->module, "C_GetFunctionList");
	if (!get_list || get_list(&t->fn) != CKR_OK || !t->fn)
		return kc_fail(err, KC_VALIDATION, "key store %s: %s is not a PKCS#11 module "
				"(no C_GetFunctionList)", t->dir, module_path);
	rv = t->fn->C_Initialize(&init_args);
	if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED)
		return KC_OK;   /* someone else in this process uses it: leave it initialised */
	if (rv != CKR_OK)
		return token_fail(t, rv, "C_Initialize", err);
	t->finalize = 1;
	return KC_OK;
}

/* A blank-padded token info field equals want (which is "" for "anything"). */
static int field_matches(const unsigned char *field, size_t field_len, const char *want)
{
	size_t want_len = strlen(want);

	if (!*want)
		return 1;
	if (want_len > field_len || memcmp(field, want, want_len) != 0)
		return 0;
	for (size_t i = want_len; i < field_len; i++)
		if (field[i] != ' ')
			return 0;
	return 1;
}

static int token_matches(const CK_TOKEN_INFO *info, const struct kc_pkcs11_uri *uri)
{
	return (info->flags & CKF_TOKEN_INITIALIZED) &&
		field_matches(info->label, sizeof info->label, uri->token) &&
		field_matches(info->serialNumber, sizeof info->serialNumber, uri->serial) &&
		field_matches(info->manufacturerID, sizeof info->manufacturerID, uri->manufacturer) &&
		field_matches(info->model, sizeof info->model, uri->model);
}

/* The one slot whose token the URI names; its token info in *info. */
static enum kc_status find_slot(struct token *t, const struct kc_pkcs11_uri *uri, CK_SLOT_ID *slot,
		CK_TOKEN_INFO *info, struct kc_error *err)
{
	CK_SLOT_ID *slots = NULL;
	CK_ULONG count = 0;
	size_t matches = 0;
	enum kc_status rc = KC_OK;
	CK_RV rv;

	rv = t->fn->C_GetSlotList(CK_TRUE, NULL, &count);
	if (rv == CKR_OK && count > 0) {
		slots = calloc(count, sizeof *slots);
		rv = slots ? t->fn->C_GetSlotList(CK_TRUE, slots, &count) : CKR_HOST_MEMORY;
	}
	if (rv != CKR_OK) {
		rc = token_fail(t, rv, "C_GetSlotList", err);
		goto out;
	}
	for (CK_ULONG i = 0; i < count; i++) {
		CK_TOKEN_INFO candidate;
		if (t->fn->C_GetTokenInfo(slots[i], &candidate) != CKR_OK || !token_matches(&candidate, uri))
			continue;
		if (matches++ == 0) {
			*slot = slots[i];
			*info = candidate;
		}
	}
	if (matches == 0)
		rc = kc_fail(err, KC_NOT_FOUND, "key store %s: %s: no such initialised token in the module",
				t->dir, t->name);
	else if (matches > 1)
		rc = kc_fail(err, KC_VALIDATION, "key store %s: %zu tokens match the PKCS#11 URI; name one "
				"with token= (and serial=)", t->dir, matches);
out:
	free(slots);
	return rc;
}

/* The PIN from the URI or its pin-source file, in secure memory; NULL and KC_OK for none. */
static enum kc_status get_pin(struct token *t, const struct kc_pkcs11_uri *uri, char **pin,
		struct kc_error *err)
{
	struct kc_passphrase_source src = { .passfile = uri->pin_source };
	struct kc_error read_err = { 0 };

	*pin = NULL;
	if (uri->pin) {
		*pin = kmsfs_secure_alloc(KC_PIN_MAX + 1);
		if (!*pin)
			return kc_fail(err, KC_INTERNAL, "key store %s: out of secure memory", t->dir);
		memcpy(*pin, uri->pin, strlen(uri->pin) + 1);
		return KC_OK;
	}
	if (!*uri->pin_source)
		return KC_OK;
	*pin = kc_passphrase_get(&src, &read_err);   /* the first line, read into secure memory */
	if (!*pin)
		return kc_fail(err, KC_VALIDATION, "key store %s: %s: PIN: %s", t->dir, t->name,
				read_err.message);
	return KC_OK;
}

static enum kc_status login_result(struct token *t, CK_RV rv, struct kc_error *err)
{
	if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
		t->logged_in = rv == CKR_OK;
		return KC_OK;
	}
	if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LEN_RANGE)
		return kc_fail(err, KC_WRONG_PASSPHRASE, "key store %s: %s: wrong PIN (%s)", t->dir,
				t->name, ckr_name(rv));
	if (rv == CKR_PIN_LOCKED || rv == CKR_PIN_EXPIRED)
		return kc_fail(err, KC_WRONG_PASSPHRASE, "key store %s: %s: PIN %s (%s); its security "
				"officer must reset it", t->dir, t->name, rv == CKR_PIN_LOCKED ? "locked" : "expired",
				ckr_name(rv));
	return token_fail(t, rv, "C_Login", err);
}

static enum kc_status token_login(struct token *t, const struct kc_pkcs11_uri *uri,
		const CK_TOKEN_INFO *info, struct kc_error *err)
{
	char *pin = NULL;
	enum kc_status rc;

	rc = get_pin(t, uri, &pin, err);
	if (rc != KC_OK)
		goto out;
	if (!pin && !(info->flags & CKF_PROTECTED_AUTHENTICATION_PATH)) {
		if (info->flags & CKF_LOGIN_REQUIRED)
			rc = kc_fail(err, KC_VALIDATION, "key store %s: %s needs a PIN: add pin-value= or "
					"pin-source=file:PATH to the PKCS#11 URI", t->dir, t->name);
		goto out;
	}
	/* A NULL PIN on a protected authentication path: the reader's own PIN pad asks. */
	rc = login_result(t, t->fn->C_Login(t->session, CKU_USER, (CK_UTF8CHAR_PTR)pin,
			pin ? strlen(pin) : 0), err);
out:
	kmsfs_secure_free(pin);   /* wipes the PIN */
	return rc;
}

/* Load the module, find the token, open a read-write session and log in. */
static enum kc_status token_open(struct token *t, const struct kc_local_options *opts,
		const struct kc_pkcs11_uri *uri, struct kc_error *err)
{
	const char *module_path = NULL;
	CK_TOKEN_INFO info = { 0 };
	CK_SLOT_ID slot = 0;
	enum kc_status rc;
	CK_RV rv;

	t->dir = opts->dir;
	snprintf(t->name, sizeof t->name, "PKCS#11 token %s", *uri->token ? uri->token : "(any)");
	rc = module_path_of(opts, uri, &module_path, err);
	if (rc == KC_OK)
		rc = token_load(t, module_path, err);
	if (rc == KC_OK)
		rc = find_slot(t, uri, &slot, &info, err);
	if (rc != KC_OK)
		return rc;
	rv = t->fn->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &t->session);
	if (rv != CKR_OK)
		return token_fail(t, rv, "C_OpenSession", err);
	t->session_open = 1;
	return token_login(t, uri, &info, err);
}

static void token_close(struct token *t)
{
	if (t->logged_in)
		t->fn->C_Logout(t->session);
	if (t->session_open)
		t->fn->C_CloseSession(t->session);
	if (t->finalize)
		t->fn->C_Finalize(NULL);
	if (t->module)
		dlclose(t->module);
	memset(t, 0, sizeof *t);
}

/* ---- the wrapping key ---------------------------------------------------------------------------- */

/*
 * The AES secret key labelled label. KC_NOT_FOUND when there is none;
 * more than one is refused (which would it be?).
 */
static enum kc_status find_key(struct token *t, const char *label, CK_OBJECT_HANDLE *key,
		struct kc_error *err)
{
	CK_OBJECT_CLASS key_class = CKO_SECRET_KEY;
	CK_KEY_TYPE key_type = CKK_AES;
	CK_ATTRIBUTE match[] = {
		{ CKA_CLASS, &key_class, sizeof key_class },
		{ CKA_KEY_TYPE, &key_type, sizeof key_type },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_OBJECT_HANDLE found[2];
	CK_ULONG count = 0;
	CK_RV rv;

	rv = t->fn->C_FindObjectsInit(t->session, match, sizeof match / sizeof match[0]);
	if (rv != CKR_OK)
		return token_fail(t, rv, "C_FindObjectsInit", err);
	rv = t->fn->C_FindObjects(t->session, found, 2, &count);
	t->fn->C_FindObjectsFinal(t->session);
	if (rv != CKR_OK)
		return token_fail(t, rv, "C_FindObjects", err);
	if (count == 0)
		return kc_fail(err, KC_NOT_FOUND, "key store %s: %s has no AES key labelled %s", t->dir,
				t->name, label);
	if (count > 1)
		return kc_fail(err, KC_VALIDATION, "key store %s: %s has several AES keys labelled %s; "
				"which wraps the root key is ambiguous", t->dir, t->name, label);
	*key = found[0];
	return KC_OK;
}

/* Unlocking: a token without the key is the wrong token, as a wrong passphrase is. */
static enum kc_status find_unwrapping_key(struct token *t, const char *label, CK_OBJECT_HANDLE *key,
		struct kc_error *err)
{
	enum kc_status rc = find_key(t, label, key, err);

	if (rc == KC_NOT_FOUND)
		return kc_fail(err, KC_WRONG_PASSPHRASE, "key store %s: %s has no AES key labelled %s, "
				"which wraps the store's root key", t->dir, t->name, label);
	return rc;
}

/* A key whose value can be read in the clear (not sensitive) would make the token pointless. */
static enum kc_status check_key_sensitive(struct token *t, CK_OBJECT_HANDLE key, const char *label,
		struct kc_error *err)
{
	CK_BBOOL sensitive = CK_FALSE;
	CK_ATTRIBUTE attr = { CKA_SENSITIVE, &sensitive, sizeof sensitive };
	CK_RV rv;

	rv = t->fn->C_GetAttributeValue(t->session, key, &attr, 1);
	if (rv != CKR_OK)
		return token_fail(t, rv, "C_GetAttributeValue(CKA_SENSITIVE)", err);
	if (!sensitive)
		return kc_fail(err, KC_VALIDATION, "key store %s: %s: AES key %s is not CKA_SENSITIVE "
				"(its value can be read out); use a sensitive key", t->dir, t->name, label);
	return KC_OK;
}

/* AES-256 generated in the token, which never lets its value out. */
static enum kc_status generate_key(struct token *t, const char *label, CK_OBJECT_HANDLE *key,
		struct kc_error *err)
{
	CK_MECHANISM mech = { CKM_AES_KEY_GEN, NULL, 0 };
	CK_OBJECT_CLASS key_class = CKO_SECRET_KEY;
	CK_KEY_TYPE key_type = CKK_AES;
	CK_ULONG key_len = 32;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE attrs[] = {
		{ CKA_CLASS, &key_class, sizeof key_class },
		{ CKA_KEY_TYPE, &key_type, sizeof key_type },
		{ CKA_VALUE_LEN, &key_len, sizeof key_len },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_TOKEN, &yes, sizeof yes },
		{ CKA_PRIVATE, &yes, sizeof yes },
		{ CKA_SENSITIVE, &yes, sizeof yes },
		{ CKA_EXTRACTABLE, &no, sizeof no },
		{ CKA_ENCRYPT, &yes, sizeof yes },
		{ CKA_DECRYPT, &yes, sizeof yes },
		{ CKA_WRAP, &no, sizeof no },
		{ CKA_UNWRAP, &no, sizeof no },
	};
	CK_RV rv;

	rv = t->fn->C_GenerateKey(t->session, &mech, attrs, sizeof attrs / sizeof attrs[0], key);
	if (rv != CKR_OK)
		return token_fail(t, rv, "C_GenerateKey (AES-256)", err);
	return KC_OK;
}

/* AES-256-GCM parameters: the IV, AAD = format byte ‖ store id, 128-bit tag. */
static void gcm_params(CK_GCM_PARAMS *params, const uint8_t iv[KC_WRAP_IV_LEN],
		uint8_t aad[1 + KC_STORE_ID_LEN], const uint8_t store_id[KC_STORE_ID_LEN])
{
	aad[0] = KC_WRAP_FORMAT;
	memcpy(aad + 1, store_id, KC_STORE_ID_LEN);
	memset(params, 0, sizeof *params);
	params->pIv = (CK_BYTE_PTR)iv;
	params->ulIvLen = KC_WRAP_IV_LEN;
	params->ulIvBits = KC_WRAP_IV_LEN * 8;
	params->pAAD = aad;
	params->ulAADLen = 1 + KC_STORE_ID_LEN;
	params->ulTagBits = KC_TAG_LEN * 8;
}

static enum kc_status encrypt_root(struct token *t, CK_OBJECT_HANDLE key,
		const uint8_t store_id[KC_STORE_ID_LEN], const uint8_t root_key[KC_KEY_LEN],
		uint8_t wrapped[KC_WRAPPED_ROOT_LEN], struct kc_error *err)
{
	uint8_t aad[1 + KC_STORE_ID_LEN];
	CK_GCM_PARAMS params;
	CK_MECHANISM mech = { CKM_AES_GCM, &params, sizeof params };
	CK_ULONG out_len = KC_KEY_LEN + KC_TAG_LEN;
	CK_RV rv;

	wrapped[0] = KC_WRAP_FORMAT;
	randombytes_buf(wrapped + 1, KC_WRAP_IV_LEN);
	gcm_params(&params, wrapped + 1, aad, store_id);
	rv = t->fn->C_EncryptInit(t->session, &mech, key);
	if (rv != CKR_OK)
		return token_fail(t, rv, "C_EncryptInit (AES-GCM)", err);
	rv = t->fn->C_Encrypt(t->session, (CK_BYTE_PTR)root_key, KC_KEY_LEN,
			wrapped + 1 + KC_WRAP_IV_LEN, &out_len);
	if (rv != CKR_OK)
		return token_fail(t, rv, "C_Encrypt (AES-GCM)", err);
	if (out_len != KC_KEY_LEN + KC_TAG_LEN)
		return kc_fail(err, KC_INTERNAL, "key store %s: %s: AES-GCM gave %lu bytes, not %d",
				t->dir, t->name, (unsigned long)out_len, KC_KEY_LEN + KC_TAG_LEN);
	return KC_OK;
}

/* Into plain (secure, KC_KEY_LEN + KC_TAG_LEN bytes: some modules want room for the tag). */
static enum kc_status decrypt_root(struct token *t, CK_OBJECT_HANDLE key, const char *label,
		const uint8_t store_id[KC_STORE_ID_LEN], const uint8_t wrapped[KC_WRAPPED_ROOT_LEN],
		uint8_t *plain, struct kc_error *err)
{
	uint8_t aad[1 + KC_STORE_ID_LEN];
	CK_GCM_PARAMS params;
	CK_MECHANISM mech = { CKM_AES_GCM, &params, sizeof params };
	CK_ULONG plain_len = KC_KEY_LEN + KC_TAG_LEN;
	CK_RV rv;

	if (wrapped[0] != KC_WRAP_FORMAT)
		return kc_fail(err, KC_INTERNAL, "key store %s: wrapped root key of unknown format %u",
				t->dir, wrapped[0]);
	gcm_params(&params, wrapped + 1, aad, store_id);
	rv = t->fn->C_DecryptInit(t->session, &mech, key);
	if (rv != CKR_OK)
		return token_fail(t, rv, "C_DecryptInit (AES-GCM)", err);
	rv = t->fn->C_Decrypt(t->session, (CK_BYTE_PTR)wrapped + 1 + KC_WRAP_IV_LEN,
			KC_KEY_LEN + KC_TAG_LEN, plain, &plain_len);
	/* A tag that does not verify: CKR_ENCRYPTED_DATA_INVALID, or SoftHSM's CKR_GENERAL_ERROR. */
	if (rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_LEN_RANGE ||
	    rv == CKR_GENERAL_ERROR)
		return kc_fail(err, KC_WRONG_PASSPHRASE, "key store %s: %s: AES key %s does not unwrap "
				"the store's root key (another token or key than the store was made with; %s)",
				t->dir, t->name, label, ckr_name(rv));
	if (rv != CKR_OK)
		return token_fail(t, rv, "C_Decrypt (AES-GCM)", err);
	if (plain_len != KC_KEY_LEN)
		return kc_fail(err, KC_INTERNAL, "key store %s: %s: unwrapped root key is %lu bytes",
				t->dir, t->name, (unsigned long)plain_len);
	return KC_OK;
}

/* ---- entry points ----------------------------------------------------------------------------------- */

enum kc_status kc_pkcs11_wrap_root(const struct kc_local_options *opts,
		const uint8_t store_id[KC_STORE_ID_LEN], const uint8_t root_key[KC_KEY_LEN],
		uint8_t wrapped[KC_WRAPPED_ROOT_LEN], struct kc_error *err)
{
	struct kc_pkcs11_uri uri;
	struct token t = { 0 };
	CK_OBJECT_HANDLE key = 0;
	enum kc_status rc;

	rc = kc_pkcs11_uri_parse(opts->pkcs11_uri, &uri, err);
	if (rc != KC_OK)
		return rc;
	rc = token_open(&t, opts, &uri, err);
	if (rc == KC_OK)
		rc = find_key(&t, uri.object, &key, err);
	if (rc == KC_NOT_FOUND)
		rc = generate_key(&t, uri.object, &key, err);
	else if (rc == KC_OK)
		rc = check_key_sensitive(&t, key, uri.object, err);
	if (rc == KC_OK)
		rc = encrypt_root(&t, key, store_id, root_key, wrapped, err);
	token_close(&t);
	kc_pkcs11_uri_free(&uri);
	return rc;
}

enum kc_status kc_pkcs11_unwrap_root(const struct kc_local_options *opts,
		const uint8_t store_id[KC_STORE_ID_LEN], const uint8_t wrapped[KC_WRAPPED_ROOT_LEN],
		uint8_t root_key[KC_KEY_LEN], struct kc_error *err)
{
	uint8_t *plain = kmsfs_secure_alloc(KC_KEY_LEN + KC_TAG_LEN);
	struct kc_pkcs11_uri uri;
	struct token t = { 0 };
	CK_OBJECT_HANDLE key = 0;
	enum kc_status rc;

	rc = kc_pkcs11_uri_parse(opts->pkcs11_uri, &uri, err);
	if (rc != KC_OK)
		goto out;
	if (!plain) {
		rc = kc_fail(err, KC_INTERNAL, "key store %s: out of secure memory", opts->dir);
		goto out;
	}
	rc = token_open(&t, opts, &uri, err);
	if (rc == KC_OK)
		rc = find_unwrapping_key(&t, uri.object, &key, err);
	if (rc == KC_OK)
		rc = decrypt_root(&t, key, uri.object, store_id, wrapped, plain, err);
	if (rc == KC_OK)
		memcpy(root_key, plain, KC_KEY_LEN);
	token_close(&t);
out:
	kc_pkcs11_uri_free(&uri);
	kmsfs_secure_free(plain);   /* wipes the root key's copy */
	return rc;
}
