/*
 * test_keyclient_rootkey.c - where a key store's root key comes from: key
 * files (create, reopen, wrong file, loose modes), PKCS#11 tokens (a real
 * SoftHSM token made in a scratch directory: create, reopen, wrong PIN,
 * another token, the AES key never readable), a store refusing to be
 * opened with another source than it was made with, and a version-1
 * store (made before root key sources) read as a passphrase store.
 *
 * Its own executable: it needs softhsm2-util and sets SOFTHSM2_CONF for
 * the whole process. No softhsm2-util means failure, not a skip (CI
 * installs it through tools/install-deps.sh).
 */
#include "test_keyclient.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>
#include <sodium.h>
#include <sqlite3.h>

#define TOKEN_PIN "1234"
#define WRONG_PIN "98765"   /* never in a message */
#define STORE_URI "pkcs11:token=kmsd;object=kmsd-root?pin-value=" TOKEN_PIN

int kc_test_failures;

static char scratch_dir[] = "/tmp/kmsfs-rootkey-test.XXXXXX";

const char *test_status_name(enum kc_status status)
{
	return status == KC_OK ? "KC_OK" : kc_status_type(status);
}

static const char *scratch(const char *name, char out[4096])
{
	snprintf(out, 4096, "%s/%s", scratch_dir, name);
	return out;
}

static const struct kc_caller *owner(void)
{
	static char principal[32];
	static struct kc_caller caller;

	kc_local_principal(getuid(), principal, sizeof principal);
	caller.principal = principal;
	caller.uid = getuid();
	caller.pid = getpid();
	return &caller;
}

/* len bytes (random when data is NULL) into path with mode. 0 or -1. */
static int write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	uint8_t random_bytes[64];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	int rc;

	if (fd < 0)
		return -1;
	if (!data) {
		randombytes_buf(random_bytes, sizeof random_bytes);
		data = random_bytes;
	}
	rc = write(fd, data, len) == (ssize_t)len ? 0 : -1;
	if (fchmod(fd, mode) != 0)   /* umask may have taken bits the test wants */
		rc = -1;
	close(fd);
	return rc;
}

/* ---- a data key round trip across close and reopen ------------------------------------------- */

struct sealed_dek {
	uint8_t *blob;
	size_t blob_len;
	uint8_t plain[32];
};

/* A fresh key in kc and a data key under it: the blob, and the plaintext to compare. */
static void make_dek(struct keyclient *kc, struct sealed_dek *dek)
{
	struct kc_key_info info;
	struct kc_error err = { 0 };
	uint8_t *plain = sodium_malloc(32);

	memset(dek, 0, sizeof *dek);
	CHECK_STATUS(kc->ops->create_key(kc, "root key test", owner(), &info, &err), KC_OK, err);
	CHECK_STATUS(keyclient_generate_data_key(kc, info.key_id, NULL, owner(), plain, 32,
			&dek->blob, &dek->blob_len, NULL, &err), KC_OK, err);
	memcpy(dek->plain, plain, 32);
	sodium_free(plain);
}

/* The blob decrypts in kc to the same data key. */
static void check_dek(struct keyclient *kc, const struct sealed_dek *dek)
{
	struct kc_error err = { 0 };
	uint8_t *plain = sodium_malloc(64);
	size_t plain_len = 0;

	CHECK(dek->blob != NULL);
	if (dek->blob) {
		CHECK_STATUS(keyclient_decrypt(kc, NULL, dek->blob, dek->blob_len, NULL, owner(), plain, 64,
				&plain_len, NULL, &err), KC_OK, err);
		CHECK(plain_len == 32 && memcmp(plain, dek->plain, 32) == 0);
	}
	sodium_free(plain);
}

static enum kc_status open_store(const char *dir, int create, const char *passphrase,
		const char *keyfile, const char *uri, struct keyclient **kc, struct kc_error *err)
{
	struct kc_local_options opts = {
		.dir = dir, .create = create, .passphrase = passphrase, .keyfile = keyfile,
		.pkcs11_uri = uri,
	};

	*kc = NULL;
	return kc_local_open_opts(&opts, kc, err);
}

/* Open must fail with want, leaving no keyclient; the message must hold every needle. */
static void check_refused(const char *dir, const char *passphrase, const char *keyfile,
		const char *uri, enum kc_status want, const char *needle1, const char *needle2)
{
	struct keyclient *kc = NULL;
	struct kc_error err = { 0 };

	CHECK_STATUS(open_store(dir, 0, passphrase, keyfile, uri, &kc, &err), want, err);
	CHECK(kc == NULL);
	keyclient_free(kc);
	if (needle1 && !strstr(err.message, needle1)) {
		fprintf(stderr, "message lacks \"%s\": %s\n", needle1, err.message);
		kc_test_failures++;
	}
	if (needle2 && !strstr(err.message, needle2)) {
		fprintf(stderr, "message lacks \"%s\": %s\n", needle2, err.message);
		kc_test_failures++;
	}
	CHECK(strstr(err.message, WRONG_PIN) == NULL);
}

static void check_meta_source(const char *dir, enum kc_root_source want)
{
	struct kc_store *store = NULL;
	struct kc_store_meta meta;
	struct kc_error err = { 0 };

	CHECK_STATUS(kc_store_open(dir, 0, &store, &err), KC_OK, err);
	if (!store)
		return;
	CHECK_STATUS(kc_store_get_meta(store, &meta, &err), KC_OK, err);
	CHECK(meta.root_source == want);
	CHECK(want == KC_ROOT_PASSPHRASE ? meta.opslimit > 0 : meta.opslimit == 0);
	CHECK(want != KC_ROOT_PKCS11 || meta.wrapped_root[0] == KC_WRAP_FORMAT);
	kc_store_close(store);
}

/* ---- HKDF and URIs ------------------------------------------------------------------------------ */

static void test_hkdf_rfc5869(void)
{
	/* RFC 5869 test case 1; the first 32 bytes of its 42-byte OKM. */
	static const uint8_t okm[32] = {
		0x3c, 0xb2, 0x5f, 0x25, 0xfa, 0xac, 0xd5, 0x7a, 0x90, 0x43, 0x4f, 0x64, 0xd0, 0x36, 0x2f, 0x2a,
		0x2d, 0x2d, 0x0a, 0x90, 0xcf, 0x1a, 0x5a, 0x4c, 0x5d, 0xb0, 0x2d, 0x56, 0xec, 0xc4, 0xc5, 0xbf,
	};
	static const char info[] = "\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9";
	uint8_t ikm[22], salt[13], out[32];

	memset(ikm, 0x0b, sizeof ikm);
	for (size_t i = 0; i < sizeof salt; i++)
		salt[i] = (uint8_t)i;
	CHECK(kc_hkdf_sha256(ikm, sizeof ikm, salt, sizeof salt, info, out) == 0);
	CHECK(memcmp(out, okm, sizeof okm) == 0);
}

static void test_uri_parse(void)
{
	struct kc_pkcs11_uri uri;
	struct kc_error err = { 0 };

	CHECK_STATUS(kc_pkcs11_uri_parse("pkcs11:token=kmsd;object=kmsd-root?pin-value=1234", &uri, &err),
			KC_OK, err);
	CHECK(strcmp(uri.token, "kmsd") == 0 && strcmp(uri.object, "kmsd-root") == 0);
	CHECK(uri.pin && strcmp(uri.pin, "1234") == 0 && !*uri.module_path && !*uri.pin_source);
	kc_pkcs11_uri_free(&uri);

	CHECK_STATUS(kc_pkcs11_uri_parse("pkcs11:token=my%20token;object=k%3b1;type=secret-key"
			"?pin-source=file:/etc/kmsd/pin&module-path=/usr/lib/x.so", &uri, &err), KC_OK, err);
	CHECK(strcmp(uri.token, "my token") == 0 && strcmp(uri.object, "k;1") == 0);
	CHECK(strcmp(uri.pin_source, "/etc/kmsd/pin") == 0 && uri.pin == NULL);
	CHECK(strcmp(uri.module_path, "/usr/lib/x.so") == 0);
	kc_pkcs11_uri_free(&uri);

	/* pin-value in the path, as keyclient.h's example writes it */
	CHECK_STATUS(kc_pkcs11_uri_parse("pkcs11:token=kmsd;object=root;pin-value=77", &uri, &err), KC_OK, err);
	CHECK(uri.pin && strcmp(uri.pin, "77") == 0);
	kc_pkcs11_uri_free(&uri);

	CHECK_STATUS(kc_pkcs11_uri_parse("pkcs11:token=kmsd", &uri, &err), KC_VALIDATION, err);
	CHECK(strstr(err.message, "object") != NULL);
	CHECK_STATUS(kc_pkcs11_uri_parse("pkcs12:object=x", &uri, &err), KC_VALIDATION, err);
	CHECK_STATUS(kc_pkcs11_uri_parse("pkcs11:object=x;id=%01", &uri, &err), KC_VALIDATION, err);
	CHECK_STATUS(kc_pkcs11_uri_parse("pkcs11:object=x;type=private", &uri, &err), KC_VALIDATION, err);
	CHECK_STATUS(kc_pkcs11_uri_parse("pkcs11:object=x%2", &uri, &err), KC_VALIDATION, err);
	CHECK_STATUS(kc_pkcs11_uri_parse("pkcs11:object=x%00y", &uri, &err), KC_VALIDATION, err);
	CHECK_STATUS(kc_pkcs11_uri_parse("pkcs11:object=x;object=y", &uri, &err), KC_VALIDATION, err);
	CHECK_STATUS(kc_pkcs11_uri_parse("pkcs11:object=x?module-path=lib.so", &uri, &err), KC_VALIDATION, err);
	CHECK_STATUS(kc_pkcs11_uri_parse("pkcs11:object=x?pin-source=https://x/pin", &uri, &err),
			KC_VALIDATION, err);
	CHECK_STATUS(kc_pkcs11_uri_parse("pkcs11:object=x?pin-value=secret99&pin-source=/p", &uri, &err),
			KC_VALIDATION, err);
	CHECK(strstr(err.message, "secret99") == NULL);   /* a PIN never lands in a message */
	CHECK_STATUS(kc_pkcs11_uri_parse("pkcs11:object=x?pin-value=secret99&bogus=1", &uri, &err),
			KC_VALIDATION, err);
	CHECK(strstr(err.message, "secret99") == NULL);
	CHECK_STATUS(kc_pkcs11_uri_parse("pkcs11:object=x?secret99", &uri, &err), KC_VALIDATION, err);
	CHECK(strstr(err.message, "secret99") == NULL);
}

/* ---- key files ------------------------------------------------------------------------------------- */

static void test_keyfile_store(void)
{
	char dir[4096], key[4096], other[4096], loose[4096], tiny[4096], subdir[4096];
	struct keyclient *kc = NULL;
	struct kc_error err = { 0 };
	struct sealed_dek dek;

	scratch("kf-store", dir);
	CHECK(write_file(scratch("root.key", key), NULL, 32, 0600) == 0);
	CHECK(write_file(scratch("other.key", other), NULL, 64, 0400) == 0);
	CHECK(write_file(scratch("loose.key", loose), NULL, 32, 0644) == 0);
	CHECK(write_file(scratch("tiny.key", tiny), NULL, 16, 0600) == 0);
	CHECK(mkdir(scratch("key-dir", subdir), 0700) == 0);

	/* a bad key file makes no store */
	CHECK_STATUS(open_store(dir, 1, NULL, loose, NULL, &kc, &err), KC_VALIDATION, err);
	CHECK(strstr(err.message, "mode 0644") != NULL && strstr(err.message, loose) != NULL);
	CHECK_STATUS(open_store(dir, 1, NULL, tiny, NULL, &kc, &err), KC_VALIDATION, err);
	CHECK(strstr(err.message, "16 bytes") != NULL);
	CHECK_STATUS(open_store(dir, 1, NULL, subdir, NULL, &kc, &err), KC_VALIDATION, err);
	CHECK(strstr(err.message, "not a regular file") != NULL);
	CHECK_STATUS(open_store(dir, 1, "pass", key, NULL, &kc, &err), KC_VALIDATION, err);
	CHECK(strstr(err.message, "one root key source") != NULL);

	CHECK_STATUS(open_store(dir, 1, NULL, key, NULL, &kc, &err), KC_OK, err);
	if (!kc)
		return;
	make_dek(kc, &dek);
	keyclient_free(kc);
	check_meta_source(dir, KC_ROOT_KEYFILE);

	CHECK_STATUS(open_store(dir, 0, NULL, key, NULL, &kc, &err), KC_OK, err);
	if (kc)
		check_dek(kc, &dek);
	keyclient_free(kc);

	check_refused(dir, NULL, other, NULL, KC_WRONG_PASSPHRASE, "wrong key file", other);
	check_refused(dir, NULL, loose, NULL, KC_VALIDATION, "mode 0644", NULL);
	check_refused(dir, TEST_PASSPHRASE, NULL, NULL, KC_VALIDATION, "created with a key file",
			"root_key = keyfile:");
	check_refused(dir, NULL, NULL, STORE_URI, KC_VALIDATION, "created with a key file", NULL);
	free(dek.blob);
}

static void test_passphrase_store_refuses_keyfile(void)
{
	char dir[4096], key[4096];
	struct keyclient *kc = NULL;
	struct kc_error err = { 0 };

	scratch("pass-store", dir);
	CHECK(write_file(scratch("pass-store.key", key), NULL, 32, 0600) == 0);
	CHECK_STATUS(open_store(dir, 1, TEST_PASSPHRASE, NULL, NULL, &kc, &err), KC_OK, err);
	keyclient_free(kc);
	check_meta_source(dir, KC_ROOT_PASSPHRASE);
	check_refused(dir, NULL, key, NULL, KC_VALIDATION, "created with a passphrase", NULL);
	check_refused(dir, NULL, NULL, STORE_URI, KC_VALIDATION, "created with a passphrase", NULL);
	check_refused(dir, "wrong horse", NULL, NULL, KC_WRONG_PASSPHRASE, "wrong passphrase", NULL);
}

/*
 * A store as kmsfs made them before schema 2 (every kmsfs volume out
 * there): its meta row has no root_source, and must read as a
 * passphrase store after the in-place upgrade.
 */
static int make_v1_store(const char *dir, const char *passphrase)
{
	static const uint8_t verifier_plain[KC_VERIFIER_PLAIN_LEN] = "kmsfs key store root key check";
	uint8_t store_id[KC_STORE_ID_LEN], salt[KC_SALT_LEN], verifier[KC_VERIFIER_LEN];
	uint8_t *root_key = sodium_malloc(KC_KEY_LEN);
	char db_path[4200];
	sqlite3_stmt *insert = NULL;
	sqlite3 *db = NULL;
	int rc = -1;

	randombytes_buf(store_id, sizeof store_id);
	randombytes_buf(salt, sizeof salt);
	snprintf(db_path, sizeof db_path, "%s/" KC_STORE_DB_NAME, dir);
	if (!root_key || mkdir(dir, 0700) != 0 ||
	    crypto_pwhash(root_key, KC_KEY_LEN, passphrase, strlen(passphrase), salt, 1, 8192,
			crypto_pwhash_ALG_ARGON2ID13) != 0 ||
	    sqlite3_open(db_path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, "CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 1),"
			" store_id BLOB NOT NULL, owner_uid INTEGER NOT NULL,"
			" salt BLOB NOT NULL, opslimit INTEGER NOT NULL, memlimit INTEGER NOT NULL,"
			" verifier BLOB NOT NULL, created INTEGER NOT NULL); PRAGMA user_version = 1;",
			NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO meta VALUES (1, ?1, ?2, ?3, 1, 8192, ?4, 0)", -1,
			&insert, NULL) != SQLITE_OK)
		goto out;
	kc_seal(root_key, store_id, KC_STORE_ID_LEN, verifier_plain, KC_VERIFIER_PLAIN_LEN, verifier);
	sqlite3_bind_blob(insert, 1, store_id, sizeof store_id, SQLITE_STATIC);
	sqlite3_bind_int64(insert, 2, getuid());
	sqlite3_bind_blob(insert, 3, salt, sizeof salt, SQLITE_STATIC);
	sqlite3_bind_blob(insert, 4, verifier, sizeof verifier, SQLITE_STATIC);
	if (sqlite3_step(insert) == SQLITE_DONE)
		rc = 0;
out:
	sqlite3_finalize(insert);
	sqlite3_close(db);
	sodium_free(root_key);
	return rc;
}

static void test_version1_store_is_a_passphrase_store(void)
{
	char dir[4096], key[4096];
	struct keyclient *kc = NULL;
	struct kc_error err = { 0 };

	scratch("v1-store", dir);
	CHECK(make_v1_store(dir, TEST_PASSPHRASE) == 0);
	CHECK(write_file(scratch("v1.key", key), NULL, 32, 0600) == 0);
	check_refused(dir, NULL, key, NULL, KC_VALIDATION, "created with a passphrase", NULL);
	CHECK_STATUS(open_store(dir, 0, TEST_PASSPHRASE, NULL, NULL, &kc, &err), KC_OK, err);
	keyclient_free(kc);
	check_meta_source(dir, KC_ROOT_PASSPHRASE);
	check_refused(dir, "wrong horse", NULL, NULL, KC_WRONG_PASSPHRASE, "wrong passphrase", NULL);
}

/* ---- PKCS#11 through SoftHSM ---------------------------------------------------------------------- */

/* A SoftHSM configuration of our own, so the tokens live in the scratch directory. */
static int softhsm_setup(void)
{
	char conf[4096], tokens[4096], text[8400];

	if (mkdir(scratch("tokens", tokens), 0700) != 0)
		return -1;
	snprintf(text, sizeof text, "directories.tokendir = %s\nobjectstore.backend = file\n"
			"log.level = ERROR\nslots.removable = false\n", tokens);
	if (write_file(scratch("softhsm2.conf", conf), text, strlen(text), 0600) != 0)
		return -1;
	return setenv("SOFTHSM2_CONF", conf, 1);
}

/* A fresh token labelled label with user PIN 1234. 0, or -1 said why. */
static int init_token(const char *label)
{
	char command[512];
	int status;

	snprintf(command, sizeof command, "softhsm2-util --init-token --free --label %s --pin "
			TOKEN_PIN " --so-pin 5678 >/dev/null", label);
	status = system(command);
	if (status != 0) {
		fprintf(stderr, "`%s` failed (status %d): softhsm2-util missing? "
				"tools/install-deps.sh installs softhsm2\n", command, status);
		return -1;
	}
	return 0;
}

/* The token's AES key must refuse to give its value: CKR_ATTRIBUTE_SENSITIVE, not bytes. */
static void check_key_unreadable(const char *token_label)
{
	void *module = dlopen(KC_PKCS11_DEFAULT_MODULE, RTLD_NOW | RTLD_LOCAL);
	CK_FUNCTION_LIST_PTR fn = NULL;
	CK_C_GetFunctionList get_list;
	CK_SLOT_ID slots[8];
	CK_ULONG slot_count = 8, found = 0;
	CK_SESSION_HANDLE session = 0;
	CK_OBJECT_CLASS key_class = CKO_SECRET_KEY;
	CK_ATTRIBUTE match[] = {
		{ CKA_CLASS, &key_class, sizeof key_class },
		{ CKA_LABEL, (void *)"kmsd-root", 9 },
	};
	CK_OBJECT_HANDLE key = 0;
	CK_BBOOL extractable = CK_TRUE, sensitive = CK_FALSE;
	uint8_t value[32];
	CK_ATTRIBUTE flags[] = {
		{ CKA_EXTRACTABLE, &extractable, sizeof extractable },
		{ CKA_SENSITIVE, &sensitive, sizeof sensitive },
	};
	CK_ATTRIBUTE value_attr = { CKA_VALUE, value, sizeof value };

	CHECK(module != NULL);
	if (!module)
		return;
	get_list = (CK_C_GetFunctionList)dlsym(module, "C_GetFunctionList");
	CHECK(get_list && get_list(&fn) == CKR_OK && fn->C_Initialize(NULL) == CKR_OK);
	CHECK(fn->C_GetSlotList(CK_TRUE, slots, &slot_count) == CKR_OK);
	for (CK_ULONG i = 0; i < slot_count; i++) {
		CK_TOKEN_INFO info;
		if (fn->C_GetTokenInfo(slots[i], &info) == CKR_OK &&
		    memcmp(info.label, token_label, strlen(token_label)) == 0 &&
		    info.label[strlen(token_label)] == ' ')
			CHECK(fn->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL, &session) == CKR_OK);
	}
	CHECK(session != 0);
	CHECK(fn->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR)TOKEN_PIN, 4) == CKR_OK);
	CHECK(fn->C_FindObjectsInit(session, match, 2) == CKR_OK);
	CHECK(fn->C_FindObjects(session, &key, 1, &found) == CKR_OK && found == 1);
	fn->C_FindObjectsFinal(session);
	CHECK(fn->C_GetAttributeValue(session, key, flags, 2) == CKR_OK);
	CHECK(!extractable && sensitive);
	CHECK(fn->C_GetAttributeValue(session, key, &value_attr, 1) == CKR_ATTRIBUTE_SENSITIVE);
	fn->C_Logout(session);
	fn->C_CloseSession(session);
	fn->C_Finalize(NULL);
	dlclose(module);
}

static void test_pkcs11_store(void)
{
	char dir[4096], other_dir[4096], pin_file[4096], uri[8300], key[4096];
	struct keyclient *kc = NULL;
	struct kc_error err = { 0 };
	struct sealed_dek dek;

	if (softhsm_setup() != 0 || init_token("kmsd") != 0 || init_token("other") != 0) {
		fprintf(stderr, "%s: no SoftHSM token, PKCS#11 untested\n", __func__);
		kc_test_failures++;
		return;
	}
	scratch("p11-store", dir);
	CHECK_STATUS(open_store(dir, 1, NULL, NULL, STORE_URI, &kc, &err), KC_OK, err);
	if (!kc)
		return;
	make_dek(kc, &dek);
	keyclient_free(kc);
	check_meta_source(dir, KC_ROOT_PKCS11);
	check_key_unreadable("kmsd");

	CHECK_STATUS(open_store(dir, 0, NULL, NULL, STORE_URI, &kc, &err), KC_OK, err);
	if (kc)
		check_dek(kc, &dek);
	keyclient_free(kc);

	/* the PIN from a file, the module named in the URI */
	CHECK(write_file(scratch("pin", pin_file), TOKEN_PIN "\n", 5, 0600) == 0);
	snprintf(uri, sizeof uri, "pkcs11:token=kmsd;object=kmsd-root?pin-source=file:%s"
			"&module-path=" KC_PKCS11_DEFAULT_MODULE, pin_file);
	CHECK_STATUS(open_store(dir, 0, NULL, NULL, uri, &kc, &err), KC_OK, err);
	if (kc)
		check_dek(kc, &dek);
	keyclient_free(kc);

	/* wrong PIN; a token without the key; a token with another key by that name; no such token */
	check_refused(dir, NULL, NULL, "pkcs11:token=kmsd;object=kmsd-root?pin-value=" WRONG_PIN,
			KC_WRONG_PASSPHRASE, "wrong PIN", "token kmsd");
	check_refused(dir, NULL, NULL, "pkcs11:token=other;object=kmsd-root?pin-value=" TOKEN_PIN,
			KC_WRONG_PASSPHRASE, "no AES key labelled kmsd-root", NULL);
	scratch("p11-other", other_dir);
	CHECK_STATUS(open_store(other_dir, 1, NULL, NULL,
			"pkcs11:token=other;object=kmsd-root?pin-value=" TOKEN_PIN, &kc, &err), KC_OK, err);
	keyclient_free(kc);
	check_refused(dir, NULL, NULL, "pkcs11:token=other;object=kmsd-root?pin-value=" TOKEN_PIN,
			KC_WRONG_PASSPHRASE, "does not unwrap", "token other");
	check_refused(dir, NULL, NULL, "pkcs11:token=nope;object=kmsd-root?pin-value=" TOKEN_PIN,
			KC_NOT_FOUND, "token nope", NULL);
	check_refused(dir, NULL, NULL, "pkcs11:token=kmsd;object=kmsd-root", KC_VALIDATION, "needs a PIN",
			NULL);
	check_refused(dir, NULL, NULL, "pkcs11:token=kmsd;object=kmsd-root?pin-value=1234"
			"&module-path=/nonexistent/libp11.so", KC_VALIDATION, "cannot load PKCS#11 module", NULL);

	/* another source than the token */
	check_refused(dir, TEST_PASSPHRASE, NULL, NULL, KC_VALIDATION, "created with a PKCS#11 token key",
			"root_key = pkcs11:");
	CHECK(write_file(scratch("p11.key", key), NULL, 32, 0600) == 0);
	check_refused(dir, NULL, key, NULL, KC_VALIDATION, "created with a PKCS#11 token key", NULL);
	free(dek.blob);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

int main(void)
{
	/* Keep Argon2id cheap even when run outside ctest. */
	setenv("KMSFS_ARGON2_OPSLIMIT", "1", 0);
	setenv("KMSFS_ARGON2_MEMLIMIT", "8192", 0);
	if (sodium_init() < 0 || !mkdtemp(scratch_dir)) {
		fprintf(stderr, "test_keyclient_rootkey: setup failed\n");
		return 2;
	}
	test_hkdf_rfc5869();
	test_uri_parse();
	test_keyfile_store();
	test_passphrase_store_refuses_keyfile();
	test_version1_store_is_a_passphrase_store();
	test_pkcs11_store();
	nftw(scratch_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (kc_test_failures) {
		fprintf(stderr, "test_keyclient_rootkey: %d check(s) failed\n", kc_test_failures);
		return 1;
	}
	printf("test_keyclient_rootkey: all checks passed\n");
	return 0;
}
