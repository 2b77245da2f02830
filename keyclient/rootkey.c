/*
 * rootkey.c - where a key store's root key comes from (DESIGN §6).
 *
 * Three sources; the one a store was made with is recorded in its meta
 * row, and opening it with another is refused up front, saying which
 * config would work:
 *   passphrase  Argon2id(passphrase, the store's salt) with the limits
 *               stored beside it (kmsfs volumes, kmsd with a passphrase);
 *   keyfile     HKDF-SHA256(the file's bytes, the store's salt,
 *               "kmsfs root key v1"); the file must be a regular file
 *               that neither group nor others may read;
 *   pkcs11      random, kept in the store encrypted by an AES key that
 *               never leaves a PKCS#11 token (pkcs11.c).
 * Whatever the source, the root key only lands in the caller's secure
 * memory, and the verifier sealed under it (checked in local.c) is what
 * says it is the right one.
 */
#include "crypto.h"
#include "local_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <sodium.h>

/* Stored parameters above this are refused (a tampered store could ask for terabytes). */
#define KC_MEMLIMIT_CEILING (UINT64_C(4) << 30)

#define KC_KEYFILE_MIN KC_KEY_LEN
#define KC_KEYFILE_MAX 4096          /* a key, not a document: refuse anything bigger */
#define KC_KEYFILE_INFO "kmsfs root key v1"

static const char *const source_names[] = {
	[KC_ROOT_PASSPHRASE] = "passphrase",
	[KC_ROOT_KEYFILE] = "keyfile",
	[KC_ROOT_PKCS11] = "pkcs11",
};

const char *kc_root_source_name(enum kc_root_source source)
{
	if ((size_t)source < sizeof source_names / sizeof source_names[0])
		return source_names[source];
	return "unknown";
}

int kc_root_source_parse(const char *name, enum kc_root_source *source)
{
	for (size_t i = 0; i < sizeof source_names / sizeof source_names[0]; i++) {
		if (strcmp(name, source_names[i]) == 0) {
			*source = (enum kc_root_source)i;
			return 0;
		}
	}
	return -1;
}

enum kc_status kc_root_source_pick(const struct kc_local_options *opts,
		enum kc_root_source *source, struct kc_error *err)
{
	int given = (opts->passphrase != NULL) + (opts->keyfile != NULL) + (opts->pkcs11_uri != NULL);

	if (given > 1)
		return kc_fail(err, KC_VALIDATION, "key store %s: give one root key source "
				"(a passphrase, a key file or a PKCS#11 URI), not %d", opts->dir, given);
	if (opts->keyfile) {
		*source = KC_ROOT_KEYFILE;
		if (!*opts->keyfile)
			return kc_fail(err, KC_VALIDATION, "key store %s: empty key file path", opts->dir);
	} else if (opts->pkcs11_uri) {
		*source = KC_ROOT_PKCS11;
		if (!*opts->pkcs11_uri)
			return kc_fail(err, KC_VALIDATION, "key store %s: empty PKCS#11 URI", opts->dir);
	} else {
		*source = KC_ROOT_PASSPHRASE;
		if (!opts->passphrase || !*opts->passphrase)
			return kc_fail(err, KC_VALIDATION, "key store %s: empty passphrase", opts->dir);
	}
	return KC_OK;
}

/* ---- passphrase: Argon2id ------------------------------------------------------------- */

/* KMSFS_ARGON2_OPSLIMIT / _MEMLIMIT override the defaults for new stores (tests). */
static enum kc_status env_limit(const char *name, uint64_t fallback, uint64_t min, uint64_t max,
		uint64_t *value, struct kc_error *err)
{
	const char *text = getenv(name);
	char *end = NULL;
	unsigned long long parsed;

	*value = fallback;
	if (!text || !*text)
		return KC_OK;
	errno = 0;
	parsed = strtoull(text, &end, 10);
	if (errno || *end || parsed < min || parsed > max)
		return kc_fail(err, KC_VALIDATION, "%s=%.32s: not a number between %" PRIu64 " and %" PRIu64,
				name, text, min, max);
	*value = parsed;
	return KC_OK;
}

static enum kc_status default_limits(struct kc_store_meta *meta, struct kc_error *err)
{
	enum kc_status rc;

	rc = env_limit("KMSFS_ARGON2_OPSLIMIT", crypto_pwhash_OPSLIMIT_INTERACTIVE,
			crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_OPSLIMIT_MAX, &meta->opslimit, err);
	if (rc == KC_OK)
		rc = env_limit("KMSFS_ARGON2_MEMLIMIT", crypto_pwhash_MEMLIMIT_INTERACTIVE,
				crypto_pwhash_MEMLIMIT_MIN, KC_MEMLIMIT_CEILING, &meta->memlimit, err);
	return rc;
}

static enum kc_status from_passphrase(const char *dir, const char *passphrase,
		const struct kc_store_meta *meta, uint8_t root_key[KC_KEY_LEN], struct kc_error *err)
{
	if (meta->opslimit < crypto_pwhash_OPSLIMIT_MIN || meta->opslimit > crypto_pwhash_OPSLIMIT_MAX ||
	    meta->memlimit < crypto_pwhash_MEMLIMIT_MIN || meta->memlimit > KC_MEMLIMIT_CEILING)
		return kc_fail(err, KC_INTERNAL, "key store %s: Argon2id parameters out of range "
				"(opslimit %" PRIu64 ", memlimit %" PRIu64 ")", dir, meta->opslimit, meta->memlimit);
	if (crypto_pwhash(root_key, KC_KEY_LEN, passphrase, strlen(passphrase), meta->salt,
			meta->opslimit, (size_t)meta->memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0)
		return kc_fail(err, KC_INTERNAL, "key store %s: Argon2id key derivation failed "
				"(out of memory? memlimit %" PRIu64 " bytes)", dir, meta->memlimit);
	return KC_OK;
}

/* ---- keyfile: HKDF over the file's bytes ------------------------------------------------- */

int kc_hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
		const char *info, uint8_t out[KC_KEY_LEN])
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[5];
	int rc = -1;

	if (!ctx)
		goto out;
	/* OpenSSL copies the key into its own memory and clears it in EVP_KDF_CTX_free. */
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
	params[4] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, KC_KEY_LEN, params) == 1)
		rc = 0;
out:
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return rc;
}

/* Regular, owner-only: a key file others can read is no secret. */
static enum kc_status check_keyfile(int fd, const char *path, struct kc_error *err)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return kc_fail(err, KC_VALIDATION, "key file %s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return kc_fail(err, KC_VALIDATION, "key file %s: not a regular file", path);
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		return kc_fail(err, KC_VALIDATION, "key file %s: mode %04o lets group or others at it; "
				"chmod 600 it (and make a new key if others may have read it)",
				path, (unsigned)(st.st_mode & 07777));
	if (st.st_size < KC_KEYFILE_MIN || st.st_size > KC_KEYFILE_MAX)
		return kc_fail(err, KC_VALIDATION, "key file %s: %jd bytes; a key file holds %d to %d random "
				"bytes (head -c 32 /dev/urandom)", path, (intmax_t)st.st_size, KC_KEYFILE_MIN,
				KC_KEYFILE_MAX);
	return KC_OK;
}

/* The whole file into buf (secure, KC_KEYFILE_MAX + 1 bytes); *len bytes read. */
static enum kc_status read_keyfile(int fd, const char *path, uint8_t *buf, size_t *len,
		struct kc_error *err)
{
	*len = 0;
	while (*len <= KC_KEYFILE_MAX) {
		ssize_t got = read(fd, buf + *len, KC_KEYFILE_MAX + 1 - *len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return kc_fail(err, KC_VALIDATION, "key file %s: read failed: %s", path, strerror(errno));
		if (got == 0)
			break;
		*len += (size_t)got;
	}
	if (*len < KC_KEYFILE_MIN || *len > KC_KEYFILE_MAX)   /* changed since fstat */
		return kc_fail(err, KC_VALIDATION, "key file %s: not %d to %d bytes", path,
				KC_KEYFILE_MIN, KC_KEYFILE_MAX);
	return KC_OK;
}

static enum kc_status from_keyfile(const char *path, const struct kc_store_meta *meta,
		uint8_t root_key[KC_KEY_LEN], struct kc_error *err)
{
	uint8_t *bytes = kmsfs_secure_alloc(KC_KEYFILE_MAX + 1);
	size_t len = 0;
	enum kc_status rc;
	int fd = -1;

	if (!bytes) {
		rc = kc_fail(err, KC_INTERNAL, "key file %s: out of secure memory", path);
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = kc_fail(err, KC_VALIDATION, "key file %s: cannot open: %s", path, strerror(errno));
		goto out;
	}
	rc = check_keyfile(fd, path, err);
	if (rc == KC_OK)
		rc = read_keyfile(fd, path, bytes, &len, err);
	if (rc == KC_OK && kc_hkdf_sha256(bytes, len, meta->salt, KC_SALT_LEN, KC_KEYFILE_INFO,
			root_key) != 0)
		rc = kc_fail(err, KC_INTERNAL, "key file %s: HKDF-SHA256 failed", path);
out:
	if (fd >= 0)
		close(fd);
	kmsfs_secure_free(bytes);   /* wipes the file's bytes */
	return rc;
}

/* ---- create / unlock ------------------------------------------------------------------------ */

enum kc_status kc_root_key_create(const struct kc_local_options *opts,
		struct kc_store_meta *meta, uint8_t root_key[KC_KEY_LEN], struct kc_error *err)
{
	enum kc_status rc;

	rc = kc_root_source_pick(opts, &meta->root_source, err);
	if (rc != KC_OK)
		return rc;
	meta->opslimit = 0;
	meta->memlimit = 0;
	switch (meta->root_source) {
	case KC_ROOT_PASSPHRASE:
		rc = default_limits(meta, err);
		if (rc == KC_OK)
			rc = from_passphrase(opts->dir, opts->passphrase, meta, root_key, err);
		return rc;
	case KC_ROOT_KEYFILE:
		return from_keyfile(opts->keyfile, meta, root_key, err);
	case KC_ROOT_PKCS11:
		randombytes_buf(root_key, KC_KEY_LEN);
		return kc_pkcs11_wrap_root(opts, meta->store_id, root_key, meta->wrapped_root, err);
	}
	return kc_fail(err, KC_INTERNAL, "key store %s: unknown root key source", opts->dir);
}

/* The store was made with another source than opts gives: say what to give instead. */
static enum kc_status wrong_source(const char *dir, enum kc_root_source made_with,
		enum kc_root_source given, struct kc_error *err)
{
	static const char *const given_as[] = {
		[KC_ROOT_PASSPHRASE] = "a passphrase",
		[KC_ROOT_KEYFILE] = "a key file",
		[KC_ROOT_PKCS11] = "a PKCS#11 URI",
	};

	switch (made_with) {
	case KC_ROOT_KEYFILE:
		return kc_fail(err, KC_VALIDATION, "key store %s was created with a key file; give "
				"root_key = keyfile:PATH, not %s", dir, given_as[given]);
	case KC_ROOT_PKCS11:
		return kc_fail(err, KC_VALIDATION, "key store %s was created with a PKCS#11 token key; "
				"give root_key = pkcs11:URI (the token and object it was made with), not %s",
				dir, given_as[given]);
	case KC_ROOT_PASSPHRASE:
		break;
	}
	return kc_fail(err, KC_VALIDATION, "key store %s was created with a passphrase; give its "
			"passphrase (root_key = passphrase-file:PATH), not %s", dir, given_as[given]);
}

enum kc_status kc_root_key_unlock(const struct kc_local_options *opts,
		const struct kc_store_meta *meta, uint8_t root_key[KC_KEY_LEN], struct kc_error *err)
{
	enum kc_root_source given;
	enum kc_status rc;

	rc = kc_root_source_pick(opts, &given, err);
	if (rc != KC_OK)
		return rc;
	if (given != meta->root_source)
		return wrong_source(opts->dir, meta->root_source, given, err);
	switch (given) {
	case KC_ROOT_PASSPHRASE:
		return from_passphrase(opts->dir, opts->passphrase, meta, root_key, err);
	case KC_ROOT_KEYFILE:
		return from_keyfile(opts->keyfile, meta, root_key, err);
	case KC_ROOT_PKCS11:
		return kc_pkcs11_unwrap_root(opts, meta->store_id, meta->wrapped_root, root_key, err);
	}
	return kc_fail(err, KC_INTERNAL, "key store %s: unknown root key source", opts->dir);
}

enum kc_status kc_root_key_wrong(const struct kc_local_options *opts,
		const struct kc_store_meta *meta, struct kc_error *err)
{
	switch (meta->root_source) {
	case KC_ROOT_KEYFILE:
		return kc_fail(err, KC_WRONG_PASSPHRASE, "key store %s: wrong key file %s (its key does "
				"not unlock the store)", opts->dir, opts->keyfile);
	case KC_ROOT_PKCS11:
		/* The token said the key opened the wrapped root key, yet the verifier disagrees. */
		return kc_fail(err, KC_WRONG_PASSPHRASE, "key store %s: the PKCS#11 token's root key "
				"does not unlock the store", opts->dir);
	case KC_ROOT_PASSPHRASE:
		break;
	}
	return kc_fail(err, KC_WRONG_PASSPHRASE, "key store %s: wrong passphrase (could not unlock)",
			opts->dir);
}
