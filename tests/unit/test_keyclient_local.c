/*
 * test_keyclient_local.c - the local engine as the FS and CLI use it:
 * creating and unlocking key stores, key state seen across connections,
 * rotation, aliases, unknown keys, authorization of other principals,
 * ReEncrypt, listing, and concurrent use from several threads.
 */
#include "test_keyclient.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

/* GenerateDataKey under key_ref as caller; returns the status, blob in *blob. */
static enum kc_status gdk(struct keyclient *kc, const char *key_ref, const struct kc_caller *caller,
		const struct kc_context *ctx, uint8_t **blob, size_t *blob_len, struct kc_error *err)
{
	uint8_t *dek = sodium_malloc(32);
	enum kc_status rc = keyclient_generate_data_key(kc, key_ref, ctx, caller, dek, 32,
			blob, blob_len, NULL, err);

	sodium_free(dek);
	return rc;
}

static enum kc_status dec(struct keyclient *kc, const struct kc_caller *caller,
		const struct kc_context *ctx, const uint8_t *blob, size_t blob_len, struct kc_error *err)
{
	uint8_t *dek = sodium_malloc(64);
	size_t dek_len = 0;
	enum kc_status rc = keyclient_decrypt(kc, NULL, blob, blob_len, ctx, caller, dek, 64,
			&dek_len, NULL, err);

	sodium_free(dek);
	return rc;
}

static void test_create_and_unlock(void)
{
	struct keyclient *kc = NULL;
	struct kc_error err = { 0 };
	char dir[4096], db[4200];
	struct stat st;

	test_path("unlock/nested/store", dir);
	CHECK(!kc_keystore_exists(dir));
	CHECK_STATUS(kc_local_open(dir, TEST_PASSPHRASE, 0, &kc, &err), KC_NOT_FOUND, err);
	CHECK(kc == NULL);
	CHECK_STATUS(kc_local_open(dir, TEST_PASSPHRASE, 1, &kc, &err), KC_OK, err);
	CHECK(kc && strcmp(kc->ops->name, "local") == 0);
	keyclient_free(kc);
	kc = NULL;
	CHECK(kc_keystore_exists(dir));
	snprintf(db, sizeof db, "%s/keystore.db", dir);
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
	CHECK(stat(db, &st) == 0 && (st.st_mode & 0777) == 0600);

	CHECK_STATUS(kc_local_open(dir, TEST_PASSPHRASE, 0, &kc, &err), KC_OK, err);
	snprintf(db, sizeof db, "%s/keystore.db-wal", dir);   /* WAL journal, same mode as the db */
	CHECK(stat(db, &st) == 0 && (st.st_mode & 0777) == 0600);
	keyclient_free(kc);
	kc = NULL;
	CHECK_STATUS(kc_local_open(dir, TEST_PASSPHRASE, 1, &kc, &err), KC_OK, err);   /* exists: opened */
	keyclient_free(kc);
	kc = NULL;
	CHECK_STATUS(kc_local_open(dir, "wrong horse", 0, &kc, &err), KC_WRONG_PASSPHRASE, err);
	CHECK(kc == NULL);
	CHECK(strcmp(err.type, "WrongPassphrase") == 0);
	CHECK(strstr(err.message, dir) != NULL && strstr(err.message, "wrong passphrase") != NULL);
	CHECK_STATUS(kc_local_open(dir, "", 0, &kc, &err), KC_VALIDATION, err);
}

static void test_describe(struct test_fixture *fx)
{
	struct kc_key_info info;
	struct kc_error err = { 0 };

	CHECK(strlen(fx->key.key_id) == KC_KEY_ID_LEN);
	CHECK(strncmp(fx->key.arn, "arn:aws:kms:local:000000000000:key/", 35) == 0);
	CHECK(strcmp(fx->key.arn + 35, fx->key.key_id) == 0);
	CHECK(fx->key.state == KC_KEY_ENABLED && fx->key.material_versions == 1);
	CHECK(strcmp(fx->key.description, "test key") == 0 && fx->key.creation_date > 0);
	CHECK_STATUS(fx->kc->ops->describe_key(fx->kc, fx->key.arn, test_owner(), &info, &err), KC_OK, err);
	CHECK(strcmp(info.key_id, fx->key.key_id) == 0);
	CHECK(strcmp(kc_key_state_name(info.state), "Enabled") == 0);
}

static void test_disable_enable(struct test_fixture *fx)
{
	struct keyclient *second = NULL;
	struct kc_context ctx;
	struct kc_error err = { 0 };
	uint8_t *blob = NULL, *blob2 = NULL;
	size_t blob_len = 0, blob2_len = 0;

	test_file_context(&ctx, "vol", "f1");
	CHECK_STATUS(gdk(fx->kc, fx->key.key_id, test_owner(), &ctx, &blob, &blob_len, &err), KC_OK, err);
	/* A second connection, as the `kmsfs key disable` CLI would be. */
	CHECK_STATUS(kc_local_open(fx->dir, TEST_PASSPHRASE, 0, &second, &err), KC_OK, err);
	if (!second)
		goto out;
	CHECK_STATUS(second->ops->set_key_enabled(second, fx->key.key_id, 0, test_owner(), &err), KC_OK, err);
	CHECK_STATUS(gdk(fx->kc, fx->key.key_id, test_owner(), &ctx, &blob2, &blob2_len, &err), KC_DISABLED, err);
	CHECK(strcmp(err.type, "DisabledException") == 0 && strstr(err.message, fx->key.key_id) != NULL);
	CHECK(blob2 == NULL);
	CHECK_STATUS(dec(fx->kc, test_owner(), &ctx, blob, blob_len, &err), KC_DISABLED, err);
	CHECK_STATUS(keyclient_encrypt(fx->kc, fx->key.key_id, (const uint8_t *)"x", 1, &ctx, test_owner(),
			&blob2, &blob2_len, &err), KC_DISABLED, err);
	CHECK_STATUS(second->ops->set_key_enabled(second, fx->key.key_id, 1, test_owner(), &err), KC_OK, err);
	CHECK_STATUS(dec(fx->kc, test_owner(), &ctx, blob, blob_len, &err), KC_OK, err);
	CHECK_STATUS(gdk(fx->kc, fx->key.key_id, test_owner(), &ctx, &blob2, &blob2_len, &err), KC_OK, err);
out:
	keyclient_free(second);
	free(blob);
	free(blob2);
}

static uint32_t blob_material_version(const uint8_t *blob, size_t blob_len)
{
	struct kc_blob_header hdr;
	struct kc_error err = { 0 };

	if (kc_blob_parse_header(blob, blob_len, &hdr, &err) != KC_OK)
		return 0;
	return hdr.material_version;
}

static void test_rotate(struct test_fixture *fx)
{
	struct kc_context ctx;
	struct kc_key_info info;
	struct kc_error err = { 0 };
	uint8_t *old_blob = NULL, *new_blob = NULL;
	size_t old_len = 0, new_len = 0;

	test_file_context(&ctx, "vol", "rot");
	CHECK_STATUS(gdk(fx->kc, fx->key.key_id, test_owner(), &ctx, &old_blob, &old_len, &err), KC_OK, err);
	CHECK(blob_material_version(old_blob, old_len) == 1);
	CHECK_STATUS(fx->kc->ops->rotate_key(fx->kc, fx->key.key_id, test_owner(), &err), KC_OK, err);
	CHECK_STATUS(gdk(fx->kc, fx->key.key_id, test_owner(), &ctx, &new_blob, &new_len, &err), KC_OK, err);
	CHECK(blob_material_version(new_blob, new_len) == 2);
	CHECK_STATUS(dec(fx->kc, test_owner(), &ctx, old_blob, old_len, &err), KC_OK, err);
	CHECK_STATUS(dec(fx->kc, test_owner(), &ctx, new_blob, new_len, &err), KC_OK, err);
	CHECK_STATUS(fx->kc->ops->describe_key(fx->kc, fx->key.key_id, test_owner(), &info, &err), KC_OK, err);
	CHECK(info.material_versions == 2);
	free(old_blob);
	free(new_blob);
}

static void test_aliases(struct test_fixture *fx)
{
	const struct keyclient_ops *ops = fx->kc->ops;
	struct kc_key_info second, info;
	struct kc_context ctx;
	struct kc_error err = { 0 };
	char arn[KC_ARN_MAX];
	uint8_t *blob = NULL, *dek = sodium_malloc(32);
	size_t blob_len = 0;

	test_file_context(&ctx, "vol", "alias");
	CHECK_STATUS(ops->set_alias(fx->kc, "alias/home", fx->key.key_id, test_owner(), &err), KC_OK, err);
	CHECK_STATUS(keyclient_generate_data_key(fx->kc, "alias/home", &ctx, test_owner(), dek, 32,
			&blob, &blob_len, arn, &err), KC_OK, err);
	CHECK(strcmp(arn, fx->key.arn) == 0);
	free(blob);
	blob = NULL;
	CHECK_STATUS(keyclient_generate_data_key(fx->kc, "arn:aws:kms:local:000000000000:alias/home", &ctx,
			test_owner(), dek, 32, &blob, &blob_len, arn, &err), KC_OK, err);
	CHECK(strcmp(arn, fx->key.arn) == 0);
	CHECK_STATUS(ops->describe_key(fx->kc, "alias/home", test_owner(), &info, &err), KC_OK, err);
	CHECK(info.alias_count == 1 && strcmp(info.aliases[0], "alias/home") == 0);

	/* Re-pointing is allowed; the old key's blobs still decrypt (they name their key). */
	CHECK_STATUS(ops->create_key(fx->kc, "second", test_owner(), &second, &err), KC_OK, err);
	CHECK_STATUS(ops->set_alias(fx->kc, "alias/home", second.arn, test_owner(), &err), KC_OK, err);
	CHECK_STATUS(ops->describe_key(fx->kc, "alias/home", test_owner(), &info, &err), KC_OK, err);
	CHECK(strcmp(info.key_id, second.key_id) == 0);
	CHECK_STATUS(dec(fx->kc, test_owner(), &ctx, blob, blob_len, &err), KC_OK, err);

	CHECK_STATUS(ops->set_alias(fx->kc, "alias/aws/ebs", fx->key.key_id, test_owner(), &err), KC_INVALID_ALIAS, err);
	CHECK_STATUS(ops->set_alias(fx->kc, "home", fx->key.key_id, test_owner(), &err), KC_INVALID_ALIAS, err);
	CHECK_STATUS(ops->set_alias(fx->kc, "alias/x", "alias/missing", test_owner(), &err), KC_NOT_FOUND, err);
	CHECK_STATUS(keyclient_create_alias(fx->kc, "alias/home", fx->key.key_id, test_owner(), &err),
			KC_ALREADY_EXISTS, err);
	CHECK(strcmp(err.type, "AlreadyExistsException") == 0 && strstr(err.message, second.arn) != NULL);
	CHECK_STATUS(keyclient_create_alias(fx->kc, "alias/fresh", fx->key.key_id, test_owner(), &err), KC_OK, err);
	CHECK_STATUS(keyclient_create_alias(fx->kc, "alias/aws/no", fx->key.key_id, test_owner(), &err),
			KC_INVALID_ALIAS, err);
	CHECK_STATUS(ops->set_alias(fx->kc, "alias/home", NULL, test_owner(), &err), KC_OK, err);
	CHECK_STATUS(ops->describe_key(fx->kc, "alias/home", test_owner(), &info, &err), KC_NOT_FOUND, err);
	CHECK(strstr(err.message, "alias/home") != NULL);
	CHECK_STATUS(ops->set_alias(fx->kc, "alias/home", NULL, test_owner(), &err), KC_NOT_FOUND, err);
	free(blob);
	sodium_free(dek);
}

static void test_unknown_key(struct test_fixture *fx)
{
	static const char missing[] = "11111111-2222-4333-8444-555555555555";
	struct kc_key_info info;
	struct kc_context ctx;
	struct kc_error err = { 0 };
	uint8_t *blob = NULL;
	size_t blob_len = 0;

	test_file_context(&ctx, "vol", "f");
	CHECK_STATUS(gdk(fx->kc, missing, test_owner(), &ctx, &blob, &blob_len, &err), KC_NOT_FOUND, err);
	CHECK(strcmp(err.type, "NotFoundException") == 0 && strstr(err.message, missing) != NULL);
	CHECK_STATUS(gdk(fx->kc, "alias/nope", test_owner(), &ctx, &blob, &blob_len, &err), KC_NOT_FOUND, err);
	CHECK_STATUS(gdk(fx->kc, "garbage", test_owner(), &ctx, &blob, &blob_len, &err), KC_NOT_FOUND, err);
	CHECK_STATUS(fx->kc->ops->describe_key(fx->kc, missing, test_owner(), &info, &err), KC_NOT_FOUND, err);
	CHECK_STATUS(fx->kc->ops->set_key_enabled(fx->kc, missing, 0, test_owner(), &err), KC_NOT_FOUND, err);
	CHECK_STATUS(fx->kc->ops->rotate_key(fx->kc, missing, test_owner(), &err), KC_NOT_FOUND, err);
	CHECK(blob == NULL);
}

static void test_authorization(struct test_fixture *fx)
{
	const struct keyclient_ops *ops = fx->kc->ops;
	const struct kc_caller *stranger = test_stranger();
	struct kc_key_info info;
	struct kc_context ctx;
	struct kc_error err = { 0 };
	char want[512];
	uint8_t *blob = NULL, *theirs = NULL;
	size_t blob_len = 0, theirs_len = 0;

	test_file_context(&ctx, "vol", "authz");
	CHECK_STATUS(gdk(fx->kc, fx->key.key_id, test_owner(), &ctx, &blob, &blob_len, &err), KC_OK, err);
	CHECK_STATUS(dec(fx->kc, stranger, &ctx, blob, blob_len, &err), KC_ACCESS_DENIED, err);
	snprintf(want, sizeof want, "User: uid:64999 is not authorized to perform: kms:Decrypt on resource: %s "
			"because no resource-based policy allows the kms:Decrypt action", fx->key.arn);
	CHECK(strcmp(err.type, "AccessDeniedException") == 0);
	CHECK(strcmp(err.message, want) == 0);
	CHECK_STATUS(gdk(fx->kc, fx->key.key_id, stranger, &ctx, &theirs, &theirs_len, &err), KC_ACCESS_DENIED, err);
	CHECK_STATUS(ops->describe_key(fx->kc, fx->key.key_id, stranger, &info, &err), KC_ACCESS_DENIED, err);
	CHECK_STATUS(ops->set_key_principal(fx->kc, fx->key.key_id, "uid:64999", 1, stranger, &err),
			KC_ACCESS_DENIED, err);
	CHECK_STATUS(dec(fx->kc, NULL, &ctx, blob, blob_len, &err), KC_ACCESS_DENIED, err);

	CHECK_STATUS(ops->set_key_principal(fx->kc, fx->key.key_id, "uid:64999", 1, test_owner(), &err), KC_OK, err);
	CHECK_STATUS(dec(fx->kc, stranger, &ctx, blob, blob_len, &err), KC_OK, err);
	CHECK_STATUS(gdk(fx->kc, fx->key.key_id, stranger, &ctx, &theirs, &theirs_len, &err), KC_OK, err);
	CHECK_STATUS(ops->describe_key(fx->kc, fx->key.key_id, stranger, &info, &err), KC_OK, err);
	CHECK(info.principal_count == 1 && strcmp(info.principals[0], "uid:64999") == 0);
	/* Data-key use only: no management. */
	CHECK_STATUS(ops->set_key_enabled(fx->kc, fx->key.key_id, 0, stranger, &err), KC_ACCESS_DENIED, err);
	CHECK(strstr(err.message, "kms:DisableKey") != NULL);
	CHECK_STATUS(ops->rotate_key(fx->kc, fx->key.key_id, stranger, &err), KC_ACCESS_DENIED, err);
	CHECK_STATUS(ops->create_key(fx->kc, "theirs", stranger, &info, &err), KC_ACCESS_DENIED, err);
	CHECK(strstr(err.message, "on resource: *") != NULL);

	CHECK_STATUS(ops->set_key_principal(fx->kc, fx->key.key_id, "uid:64999", 0, test_owner(), &err), KC_OK, err);
	CHECK_STATUS(dec(fx->kc, stranger, &ctx, blob, blob_len, &err), KC_ACCESS_DENIED, err);
	CHECK_STATUS(ops->set_key_principal(fx->kc, fx->key.key_id, "uid:64999", 0, test_owner(), &err),
			KC_NOT_FOUND, err);
	CHECK_STATUS(ops->set_key_principal(fx->kc, fx->key.key_id, "has space", 1, test_owner(), &err),
			KC_VALIDATION, err);
	free(blob);
	free(theirs);
}

static void test_re_encrypt(struct test_fixture *fx)
{
	const struct keyclient_ops *ops = fx->kc->ops;
	struct kc_key_info dst;
	struct kc_context src_ctx, dst_ctx;
	struct kc_error err = { 0 };
	char arn[KC_ARN_MAX];
	uint8_t *dek = sodium_malloc(32), *back = sodium_malloc(32);
	uint8_t *blob = NULL, *moved = NULL;
	size_t blob_len = 0, moved_len = 0, back_len = 0;

	test_file_context(&src_ctx, "vol-a", "f");
	test_file_context(&dst_ctx, "vol-b", "f");
	CHECK_STATUS(ops->create_key(fx->kc, "destination", test_owner(), &dst, &err), KC_OK, err);
	CHECK_STATUS(keyclient_generate_data_key(fx->kc, fx->key.key_id, &src_ctx, test_owner(), dek, 32,
			&blob, &blob_len, NULL, &err), KC_OK, err);
	CHECK_STATUS(keyclient_re_encrypt(fx->kc, blob, blob_len, &src_ctx, dst.key_id, &dst_ctx, test_owner(),
			&moved, &moved_len, arn, &err), KC_OK, err);
	CHECK(strcmp(arn, dst.arn) == 0);
	CHECK_STATUS(keyclient_decrypt(fx->kc, dst.key_id, moved, moved_len, &dst_ctx, test_owner(), back, 32,
			&back_len, NULL, &err), KC_OK, err);
	CHECK(back_len == 32 && memcmp(back, dek, 32) == 0);
	CHECK_STATUS(keyclient_decrypt(fx->kc, fx->key.key_id, moved, moved_len, &dst_ctx, test_owner(), back, 32,
			&back_len, NULL, &err), KC_INCORRECT_KEY, err);
	free(moved);
	moved = NULL;
	CHECK_STATUS(keyclient_re_encrypt(fx->kc, blob, blob_len, &dst_ctx, dst.key_id, &dst_ctx, test_owner(),
			&moved, &moved_len, arn, &err), KC_INVALID_CIPHERTEXT, err);
	CHECK_STATUS(ops->set_key_enabled(fx->kc, dst.key_id, 0, test_owner(), &err), KC_OK, err);
	CHECK_STATUS(keyclient_re_encrypt(fx->kc, blob, blob_len, &src_ctx, dst.key_id, &dst_ctx, test_owner(),
			&moved, &moved_len, arn, &err), KC_DISABLED, err);
	CHECK(moved == NULL);
	free(blob);
	sodium_free(dek);
	sodium_free(back);
}

struct list_state {
	size_t seen;
	size_t stop_after;
};

static int count_key(const struct kc_key_info *info, void *arg)
{
	struct list_state *state = arg;

	CHECK(strlen(info->key_id) == KC_KEY_ID_LEN);
	state->seen++;
	return state->stop_after && state->seen >= state->stop_after;
}

static void test_list_keys(void)
{
	struct test_fixture fx;
	struct list_state state = { 0 };
	struct kc_key_info info;
	struct kc_error err = { 0 };

	if (test_fixture_open(&fx, "list") != 0)
		return;
	CHECK_STATUS(fx.kc->ops->create_key(fx.kc, "two", test_owner(), &info, &err), KC_OK, err);
	CHECK_STATUS(fx.kc->ops->create_key(fx.kc, "three", test_owner(), &info, &err), KC_OK, err);
	CHECK_STATUS(fx.kc->ops->list_keys(fx.kc, test_owner(), count_key, &state, &err), KC_OK, err);
	CHECK(state.seen == 3);
	state.seen = 0;
	state.stop_after = 2;
	CHECK_STATUS(fx.kc->ops->list_keys(fx.kc, test_owner(), count_key, &state, &err), KC_OK, err);
	CHECK(state.seen == 2);
	CHECK_STATUS(fx.kc->ops->list_keys(fx.kc, test_stranger(), count_key, &state, &err), KC_ACCESS_DENIED, err);
	test_fixture_close(&fx);
}

struct thread_job {
	struct test_fixture *fx;
	int index;
	int failures;
};

static void *data_key_worker(void *arg)
{
	struct thread_job *job = arg;
	struct kc_error err = { 0 };
	struct kc_context ctx;
	char file[32];

	snprintf(file, sizeof file, "thread-%d", job->index);
	test_file_context(&ctx, "vol", file);
	for (int i = 0; i < 25; i++) {
		uint8_t *blob = NULL;
		size_t blob_len = 0;
		if (gdk(job->fx->kc, job->fx->key.key_id, test_owner(), &ctx, &blob, &blob_len, &err) != KC_OK ||
		    dec(job->fx->kc, test_owner(), &ctx, blob, blob_len, &err) != KC_OK)
			job->failures++;
		free(blob);
	}
	return NULL;
}

static void test_threads(struct test_fixture *fx)
{
	pthread_t threads[4];
	struct thread_job jobs[4];

	for (int i = 0; i < 4; i++) {
		jobs[i] = (struct thread_job){ .fx = fx, .index = i };
		CHECK(pthread_create(&threads[i], NULL, data_key_worker, &jobs[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(threads[i], NULL);
		CHECK(jobs[i].failures == 0);
	}
}

void test_local_suite(void)
{
	struct test_fixture fx;

	test_create_and_unlock();
	test_list_keys();
	if (test_fixture_open(&fx, "local") != 0)
		return;
	test_describe(&fx);
	test_disable_enable(&fx);
	test_rotate(&fx);
	test_aliases(&fx);
	test_unknown_key(&fx);
	test_authorization(&fx);
	test_re_encrypt(&fx);
	test_threads(&fx);
	test_fixture_close(&fx);
}
