/*
 * volume.c - CIPHERDIR/kmsfs.conf: the volume's identity and settings.
 *
 * The file sits next to the ciphertext, so an attacker who can write the
 * cipher directory can write it too. It is therefore parsed strictly
 * (inih; one [volume] section, every key known and given once, every
 * value checked) and authenticated: an HMAC-SHA256 over all fields, keyed
 * by a data key that only the key service can unwrap (mac_key, wrapped
 * under the volume's KMS key with context {"kmsfs:volume": id,
 * "kmsfs:purpose": "config-mac"}). Changing key_id, cipher or anything
 * else is caught at mount: the MAC no longer verifies, or the wrapped MAC
 * key no longer belongs to the named key. bucket_key is covered too, so
 * turning bucket key mode on or off is an edit the mount refuses.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs.h"

#define MAC_KEY_B64_MAX 2048
#define MAC_LEN crypto_auth_hmacsha256_BYTES

/* The parsed file, before and after authentication. */
struct conf_fields {
	struct kmsfs_volume vol;
	char mac_key_b64[MAC_KEY_B64_MAX];
	char mac_b64[128];
	unsigned seen;               /* bit per key, to catch repeats and omissions */
	char error[160];
};

enum {
	F_ID = 1 << 0, F_FORMAT = 1 << 1, F_CIPHER = 1 << 2, F_BLOCK = 1 << 3, F_KEY = 1 << 4,
	F_SERVICE = 1 << 5, F_BUCKET = 1 << 6, F_MAC_KEY = 1 << 7, F_MAC = 1 << 8,
	F_ALL = (1 << 9) - 1,
};

static int fail(char *errbuf, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int is_uuid(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

	if (strlen(s) != sizeof(shape) - 1)
		return 0;
	for (size_t i = 0; shape[i]; i++) {
		if (shape[i] == '-' ? s[i] != '-' : !strchr("0123456789abcdef", s[i]))
			return 0;
	}
	return 1;
}

static int is_printable(const char *s)
{
	for (; *s; s++)
		if (*s < 0x21 || *s > 0x7e)
			return 0;
	return 1;
}

static int copy_field(char *dst, size_t cap, const char *value)
{
	size_t len = strlen(value);

	if (len == 0 || len >= cap || !is_printable(value))
		return -1;
	memcpy(dst, value, len + 1);
	return 0;
}

/* Set one field; 0 if the value is invalid, 1 if accepted (inih's convention). */
static int set_field(struct conf_fields *c, const char *name, const char *value, unsigned *bit)
{
	struct kmsfs_volume *v = &c->vol;

	if (!strcmp(name, "id")) {
		*bit = F_ID;
		return is_uuid(value) && copy_field(v->id, sizeof(v->id), value) == 0;
	}
	if (!strcmp(name, "format")) {
		*bit = F_FORMAT;
		v->format = strcmp(value, "1") == 0 ? KMSFS_FORMAT_VERSION : 0;
		return v->format != 0;
	}
	if (!strcmp(name, "cipher")) {
		*bit = F_CIPHER;
		v->cipher = kmsfs_cipher_from_name(value);
		return v->cipher != KMSFS_CIPHER_NONE;
	}
	if (!strcmp(name, "block_size")) {
		*bit = F_BLOCK;
		v->block_size = KMSFS_BLOCK_SIZE;
		return strcmp(value, "4096") == 0;
	}
	if (!strcmp(name, "key_id")) {
		*bit = F_KEY;
		return copy_field(v->key_id, sizeof(v->key_id), value) == 0;
	}
	if (!strcmp(name, "key_service")) {
		*bit = F_SERVICE;
		return copy_field(v->key_service, sizeof(v->key_service), value) == 0;
	}
	if (!strcmp(name, "bucket_key")) {
		*bit = F_BUCKET;
		v->bucket_key = strcmp(value, "true") == 0;
		return v->bucket_key || strcmp(value, "false") == 0;
	}
	if (!strcmp(name, "mac_key")) {
		*bit = F_MAC_KEY;
		return copy_field(c->mac_key_b64, sizeof(c->mac_key_b64), value) == 0;
	}
	if (!strcmp(name, "mac")) {
		*bit = F_MAC;
		return copy_field(c->mac_b64, sizeof(c->mac_b64), value) == 0;
	}
	*bit = 0;
	return 0;
}

static int on_ini_entry(void *user, const char *section, const char *name, const char *value)
{
	struct conf_fields *c = user;
	unsigned bit = 0;

	if (strcmp(section, "volume") != 0) {
		snprintf(c->error, sizeof(c->error), "unknown section [%s]", section);
		return 0;
	}
	if (!set_field(c, name, value, &bit)) {
		snprintf(c->error, sizeof(c->error), bit ? "invalid value for %s" :
			 "unknown key %s", name);
		return 0;
	}
	if (c->seen & bit) {
		snprintf(c->error, sizeof(c->error), "%s given twice", name);
		return 0;
	}
	c->seen |= bit;
	return 1;
}

/* The exact bytes the MAC covers: every field but the MAC, in fixed order. */
static int mac_input(const struct conf_fields *c, char *out, size_t len)
{
	const struct kmsfs_volume *v = &c->vol;
	int n = snprintf(out, len,
			 "kmsfs.conf v1\nid=%s\nformat=%d\ncipher=%s\nblock_size=%u\n"
			 "key_id=%s\nkey_service=%s\nbucket_key=%s\nmac_key=%s\n",
			 v->id, v->format, kmsfs_cipher_name(v->cipher), v->block_size,
			 v->key_id, v->key_service, v->bucket_key ? "true" : "false",
			 c->mac_key_b64);

	return n < 0 || (size_t)n >= len ? -1 : n;
}

static void mac_context(struct kc_context *ctx, const char *volume_id)
{
	ctx->count = 0;
	kc_context_add(ctx, "kmsfs:volume", volume_id);
	kc_context_add(ctx, "kmsfs:purpose", "config-mac");
}

static int compute_mac(const struct conf_fields *c, const uint8_t *mac_key,
		       uint8_t mac[MAC_LEN])
{
	char input[MAC_KEY_B64_MAX + 1024];
	int n = mac_input(c, input, sizeof(input));

	if (n < 0)
		return -1;
	crypto_auth_hmacsha256(mac, (const uint8_t *)input, (size_t)n, mac_key);
	return 0;
}

int kmsfs_probe_user_xattr(const char *dir)
{
	char probe[PATH_MAX];
	int fd, ret = 0;

	snprintf(probe, sizeof(probe), "%s/.kmsfs-xattr-probe.XXXXXX", dir);
	fd = mkstemp(probe);
	if (fd < 0)
		return -errno;
	if (fsetxattr(fd, "user.kmsfs.probe", "1", 1, 0) < 0)
		ret = -errno;
	close(fd);
	unlink(probe);
	return ret;
}

static int dir_is_empty(const char *path)
{
	DIR *dp = opendir(path);
	struct dirent *de;
	int empty = 1;

	if (!dp)
		return -errno;
	while ((de = readdir(dp)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = 0;
	closedir(dp);
	return empty;
}

/* Write the config atomically: temp file, fsync, rename, fsync dir. */
static int write_conf(const char *cipherdir, const struct conf_fields *c, char *errbuf,
		      size_t errlen)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	const struct kmsfs_volume *v = &c->vol;
	FILE *fp;
	int fd, ok;

	snprintf(path, sizeof(path), "%s/%s", cipherdir, KMSFS_CONF_NAME);
	snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", cipherdir, KMSFS_CONF_NAME);
	fd = mkstemp(tmp);
	if (fd < 0 || !(fp = fdopen(fd, "w")))
		return fail(errbuf, errlen, "%s: cannot write: %s", path, strerror(errno));
	fprintf(fp, "# kmsfs volume configuration. Authenticated: any edit makes the mount fail.\n"
		    "[volume]\nid = %s\nformat = %d\ncipher = %s\nblock_size = %u\nkey_id = %s\n"
		    "key_service = %s\nbucket_key = %s\nmac_key = %s\nmac = %s\n",
		v->id, v->format, kmsfs_cipher_name(v->cipher), v->block_size, v->key_id,
		v->key_service, v->bucket_key ? "true" : "false", c->mac_key_b64, c->mac_b64);
	ok = fflush(fp) == 0 && fsync(fd) == 0;
	ok = (fclose(fp) == 0) && ok;
	if (!ok || rename(tmp, path) < 0) {
		int err = errno;

		unlink(tmp);
		return fail(errbuf, errlen, "%s: cannot write: %s", path, strerror(err));
	}
	fd = open(cipherdir, O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

static void new_uuid(char out[37])
{
	uint8_t b[16];

	kmsfs_random(b, sizeof(b));
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
		 b[12], b[13], b[14], b[15]);
}

/*
 * Key the config's MAC under key_id (a fresh MAC key from GenerateDataKey,
 * its blob stored in the file), record the key's ARN, and write the file.
 */
static int seal_conf(const char *cipherdir, struct conf_fields *c, const char *key_id,
		     struct keyclient *kc, const struct kc_caller *caller, char *errbuf,
		     size_t errlen)
{
	struct kc_context ctx;
	struct kc_error err = { 0 };
	uint8_t *mac_key = NULL, *blob = NULL, mac[MAC_LEN];
	size_t blob_len = 0;
	int ret = -1;

	mac_context(&ctx, c->vol.id);
	mac_key = kmsfs_secure_alloc(crypto_auth_hmacsha256_KEYBYTES);
	if (!mac_key)
		return fail(errbuf, errlen, "out of secure memory");
	c->vol.key_id[0] = '\0';
	if (keyclient_generate_data_key(kc, key_id, &ctx, caller, mac_key,
					crypto_auth_hmacsha256_KEYBYTES, &blob, &blob_len,
					c->vol.key_id, &err) != KC_OK) {
		fail(errbuf, errlen, "key %s: cannot generate the volume's config key: %s (%s)",
		     key_id, err.message, err.type);
		goto out;
	}
	if (!c->vol.key_id[0])
		snprintf(c->vol.key_id, sizeof(c->vol.key_id), "%s", key_id);
	if (sodium_base64_ENCODED_LEN(blob_len, sodium_base64_VARIANT_ORIGINAL) > MAC_KEY_B64_MAX) {
		fail(errbuf, errlen, "key %s: wrapped config key too large", key_id);
		goto out;
	}
	sodium_bin2base64(c->mac_key_b64, sizeof(c->mac_key_b64), blob, blob_len,
			  sodium_base64_VARIANT_ORIGINAL);
	if (compute_mac(c, mac_key, mac) < 0) {
		fail(errbuf, errlen, "%s: config too large", cipherdir);
		goto out;
	}
	sodium_bin2base64(c->mac_b64, sizeof(c->mac_b64), mac, sizeof(mac),
			  sodium_base64_VARIANT_ORIGINAL);
	ret = write_conf(cipherdir, c, errbuf, errlen);
out:
	kmsfs_secure_free(mac_key);
	free(blob);
	return ret;
}

int kmsfs_volume_create(const char *cipherdir, const char *key_id, enum kmsfs_cipher cipher,
			unsigned flags, struct keyclient *kc, const struct kc_caller *caller,
			struct kmsfs_volume *out, char *errbuf, size_t errlen)
{
	struct conf_fields c = { 0 };
	int empty = dir_is_empty(cipherdir);

	if (empty < 0)
		return fail(errbuf, errlen, "%s: %s", cipherdir, strerror(-empty));
	if (!empty)
		return fail(errbuf, errlen, "%s: directory is not empty "
			    "(kmsfs init needs an empty cipher directory)", cipherdir);
	if (kmsfs_probe_user_xattr(cipherdir) < 0)
		return fail(errbuf, errlen, "%s: filesystem does not support user extended "
			    "attributes (kmsfs keeps each file's wrapped data key in one; "
			    "mount with user_xattr or pick another filesystem)", cipherdir);

	new_uuid(c.vol.id);
	c.vol.format = KMSFS_FORMAT_VERSION;
	c.vol.cipher = cipher;
	c.vol.block_size = KMSFS_BLOCK_SIZE;
	c.vol.bucket_key = (flags & KMSFS_VOLUME_BUCKET_KEY) != 0;
	snprintf(c.vol.key_service, sizeof(c.vol.key_service), "%s", keyclient_service(kc));
	if (seal_conf(cipherdir, &c, key_id, kc, caller, errbuf, errlen) < 0)
		return -1;
	*out = c.vol;
	return 0;
}

int kmsfs_volume_rekey(const char *cipherdir, const struct kmsfs_volume *vol,
		       const char *new_key_id, struct keyclient *kc,
		       const struct kc_caller *caller, struct kmsfs_volume *out,
		       char *errbuf, size_t errlen)
{
	struct conf_fields c = { .vol = *vol };

	if (strcmp(vol->key_service, keyclient_service(kc)) != 0)
		return fail(errbuf, errlen, "%s: volume uses key service \"%s\", not \"%s\"",
			    cipherdir, vol->key_service, keyclient_service(kc));
	if (seal_conf(cipherdir, &c, new_key_id, kc, caller, errbuf, errlen) < 0)
		return -1;
	*out = c.vol;
	return 0;
}

/* Unwrap the MAC key as the caller and check the MAC in constant time. */
static int authenticate(struct conf_fields *c, const char *path, struct keyclient *kc,
			const struct kc_caller *caller, char *errbuf, size_t errlen,
			struct kc_error *err)
{
	uint8_t blob[MAC_KEY_B64_MAX], mac[MAC_LEN], want[MAC_LEN];
	size_t blob_len = 0, mac_len = 0, key_len = 0;
	struct kc_context ctx;
	uint8_t *mac_key = NULL;
	enum kc_status status;
	int ret = -EBADMSG;

	if (sodium_base642bin(blob, sizeof(blob), c->mac_key_b64, strlen(c->mac_key_b64), NULL,
			      &blob_len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    sodium_base642bin(mac, sizeof(mac), c->mac_b64, strlen(c->mac_b64), NULL,
			      &mac_len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    mac_len != MAC_LEN) {
		fail(errbuf, errlen, "%s: malformed mac or mac_key", path);
		return -EBADMSG;
	}
	mac_key = kmsfs_secure_alloc(crypto_auth_hmacsha256_KEYBYTES);
	if (!mac_key) {
		fail(errbuf, errlen, "out of secure memory");
		return -ENOMEM;
	}
	mac_context(&ctx, c->vol.id);
	status = keyclient_decrypt(kc, c->vol.key_id, blob, blob_len, &ctx, caller, mac_key,
				   crypto_auth_hmacsha256_KEYBYTES, &key_len, NULL, err);
	if (status != KC_OK) {
		fail(errbuf, errlen, "%s: cannot unwrap the config key with key %s: %s (%s)",
		     path, c->vol.key_id, err->message, err->type);
		/* A wrapped key the service calls damaged or not its own: the file was edited. */
		if (status != KC_INVALID_CIPHERTEXT && status != KC_INCORRECT_KEY &&
		    status != KC_VALIDATION)
			ret = kmsfs_errno_for_status(status);
		goto out;
	}
	if (key_len != crypto_auth_hmacsha256_KEYBYTES || compute_mac(c, mac_key, want) < 0 ||
	    kmsfs_ct_memcmp(mac, want, MAC_LEN) != 0) {
		fail(errbuf, errlen, "%s: configuration authentication failed "
		     "(the file was modified)", path);
		goto out;
	}
	ret = 0;
out:
	kmsfs_secure_free(mac_key);
	return ret;
}

/* Parse and validate the fields of kmsfs.conf (not yet authenticated). */
static int parse_conf(const char *cipherdir, struct conf_fields *c, char path[PATH_MAX],
		      char *errbuf, size_t errlen)
{
	int rc;

	snprintf(path, PATH_MAX, "%s/%s", cipherdir, KMSFS_CONF_NAME);
	rc = ini_parse(path, on_ini_entry, c);
	if (rc == -1)
		return fail(errbuf, errlen, "%s: cannot read: %s (is %s a kmsfs volume? "
			    "create one with kmsfs init)", path, strerror(errno), cipherdir);
	if (rc != 0)
		return fail(errbuf, errlen, "%s: line %d: %s", path, rc,
			    c->error[0] ? c->error : "syntax error");
	if ((c->seen & F_ALL) != F_ALL)
		return fail(errbuf, errlen, "%s: incomplete configuration", path);
	return 0;
}

int kmsfs_volume_peek(const char *cipherdir, struct kmsfs_volume *out, char *errbuf,
		      size_t errlen)
{
	char path[PATH_MAX];
	struct conf_fields c = { 0 };

	if (parse_conf(cipherdir, &c, path, errbuf, errlen) < 0)
		return -1;
	*out = c.vol;
	return 0;
}

int kmsfs_volume_load(const char *cipherdir, struct keyclient *kc,
		      const struct kc_caller *caller, struct kmsfs_volume *out,
		      char *errbuf, size_t errlen, struct kc_error *kc_err)
{
	char path[PATH_MAX];
	struct conf_fields c = { 0 };
	struct kc_error err = { 0 };
	int ret;

	if (parse_conf(cipherdir, &c, path, errbuf, errlen) < 0)
		return -EINVAL;
	if (strcmp(c.vol.key_service, keyclient_service(kc)) != 0) {
		fail(errbuf, errlen, "%s: volume uses key service \"%s\", not \"%s\"",
		     path, c.vol.key_service, keyclient_service(kc));
		return -EINVAL;
	}
	ret = authenticate(&c, path, kc, caller, errbuf, errlen, &err);
	if (kc_err)
		*kc_err = err;
	if (ret < 0)
		return ret;
	*out = c.vol;
	return 0;
}
