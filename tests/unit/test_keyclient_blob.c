/*
 * test_keyclient_blob.c - data keys through the local engine: round trip,
 * and every way a blob can be wrong (context, any flipped bit, truncation,
 * version, another key store, another key) failing with the right type.
 */
#include "test_keyclient.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

struct data_key {
	uint8_t *plaintext;        /* secure memory, KMSFS-style 32 bytes */
	uint8_t *blob;
	size_t blob_len;
};

static int make_data_key(struct test_fixture *fx, const struct kc_context *ctx, struct data_key *dk)
{
	struct kc_error err = { 0 };
	char arn[KC_ARN_MAX];

	memset(dk, 0, sizeof *dk);
	dk->plaintext = sodium_malloc(32);
	if (!dk->plaintext)
		return -1;
	CHECK_STATUS(keyclient_generate_data_key(fx->kc, fx->key.key_id, ctx, test_owner(),
			dk->plaintext, 32, &dk->blob, &dk->blob_len, arn, &err), KC_OK, err);
	CHECK(strcmp(arn, fx->key.arn) == 0);
	return dk->blob ? 0 : -1;
}

static void free_data_key(struct data_key *dk)
{
	sodium_free(dk->plaintext);
	free(dk->blob);
}

/* Decrypt blob and return the status; on success compare with want. */
static enum kc_status try_decrypt(struct test_fixture *fx, const char *key_id,
		const uint8_t *blob, size_t blob_len, const struct kc_context *ctx,
		const uint8_t *want, struct kc_error *err)
{
	uint8_t *out = sodium_malloc(64);
	size_t out_len = 0;
	enum kc_status rc;

	rc = keyclient_decrypt(fx->kc, key_id, blob, blob_len, ctx, test_owner(), out, 64,
			&out_len, NULL, err);
	if (rc == KC_OK && want)
		CHECK(out_len == 32 && memcmp(out, want, 32) == 0);
	sodium_free(out);
	return rc;
}

static void test_round_trip(struct test_fixture *fx)
{
	struct kc_context ctx, reordered = { 0 };
	struct kc_error err = { 0 };
	struct data_key dk;

	test_file_context(&ctx, "vol-1", "00112233445566778899aabbccddeeff");
	if (make_data_key(fx, &ctx, &dk) != 0)
		goto out;
	CHECK(dk.blob_len == KC_BLOB_OVERHEAD + 32);
	CHECK(dk.blob[0] == KC_BLOB_VERSION);
	CHECK_STATUS(try_decrypt(fx, NULL, dk.blob, dk.blob_len, &ctx, dk.plaintext, &err), KC_OK, err);
	kc_context_add(&reordered, "kmsfs:file", "00112233445566778899aabbccddeeff");
	kc_context_add(&reordered, "kmsfs:volume", "vol-1");
	CHECK_STATUS(try_decrypt(fx, NULL, dk.blob, dk.blob_len, &reordered, dk.plaintext, &err), KC_OK, err);
	CHECK_STATUS(try_decrypt(fx, fx->key.key_id, dk.blob, dk.blob_len, &ctx, dk.plaintext, &err), KC_OK, err);
	CHECK_STATUS(try_decrypt(fx, fx->key.arn, dk.blob, dk.blob_len, &ctx, dk.plaintext, &err), KC_OK, err);
out:
	free_data_key(&dk);
}

static void test_wrong_context(struct test_fixture *fx)
{
	struct kc_context ctx, other_file, extra;
	struct kc_error err = { 0 };
	struct data_key dk;

	test_file_context(&ctx, "vol-1", "file-a");
	test_file_context(&other_file, "vol-1", "file-b");
	test_file_context(&extra, "vol-1", "file-a");
	kc_context_add(&extra, "more", "x");
	if (make_data_key(fx, &ctx, &dk) != 0)
		goto out;
	CHECK_STATUS(try_decrypt(fx, NULL, dk.blob, dk.blob_len, &other_file, NULL, &err),
			KC_INVALID_CIPHERTEXT, err);
	CHECK(strcmp(err.type, "InvalidCiphertextException") == 0);
	CHECK_STATUS(try_decrypt(fx, NULL, dk.blob, dk.blob_len, NULL, NULL, &err),
			KC_INVALID_CIPHERTEXT, err);
	CHECK_STATUS(try_decrypt(fx, NULL, dk.blob, dk.blob_len, &extra, NULL, &err),
			KC_INVALID_CIPHERTEXT, err);
out:
	free_data_key(&dk);
}

static void test_flipped_bits(struct test_fixture *fx)
{
	struct kc_context ctx;
	struct kc_error err = { 0 };
	struct data_key dk;
	uint8_t *copy;
	int failures_before = kc_test_failures;

	test_file_context(&ctx, "vol-1", "file-a");
	if (make_data_key(fx, &ctx, &dk) != 0)
		goto out;
	copy = malloc(dk.blob_len);
	for (size_t i = 0; copy && i < dk.blob_len; i++) {
		memcpy(copy, dk.blob, dk.blob_len);
		copy[i] ^= (uint8_t)(1u << (i % 8));
		CHECK_STATUS(try_decrypt(fx, NULL, copy, dk.blob_len, &ctx, NULL, &err),
				KC_INVALID_CIPHERTEXT, err);
		if (kc_test_failures != failures_before) {
			fprintf(stderr, "  (flipped bit %zu of byte %zu)\n", i % 8, i);
			break;
		}
	}
	free(copy);
out:
	free_data_key(&dk);
}

static void test_truncated_and_malformed(struct test_fixture *fx)
{
	struct kc_context ctx;
	struct kc_error err = { 0 };
	struct data_key dk;
	uint8_t *copy;

	test_file_context(&ctx, "vol-1", "file-a");
	if (make_data_key(fx, &ctx, &dk) != 0)
		goto out;
	for (size_t len = 0; len < dk.blob_len; len++)
		CHECK_STATUS(try_decrypt(fx, NULL, dk.blob, len, &ctx, NULL, &err), KC_INVALID_CIPHERTEXT, err);
	CHECK_STATUS(try_decrypt(fx, NULL, NULL, 0, &ctx, NULL, &err), KC_INVALID_CIPHERTEXT, err);
	copy = malloc(dk.blob_len + 1);
	if (copy) {
		memcpy(copy, dk.blob, dk.blob_len);
		copy[dk.blob_len] = 0;   /* one extra byte */
		CHECK_STATUS(try_decrypt(fx, NULL, copy, dk.blob_len + 1, &ctx, NULL, &err), KC_INVALID_CIPHERTEXT, err);
		copy[0] = 2;             /* unknown version */
		CHECK_STATUS(try_decrypt(fx, NULL, copy, dk.blob_len, &ctx, NULL, &err), KC_INVALID_CIPHERTEXT, err);
		CHECK(strstr(err.message, "version") != NULL);
	}
	free(copy);
out:
	free_data_key(&dk);
}

static void test_small_buffer(struct test_fixture *fx)
{
	struct kc_context ctx;
	struct kc_error err = { 0 };
	struct data_key dk;
	uint8_t *out = sodium_malloc(16);
	size_t out_len = 99;

	test_file_context(&ctx, "vol-1", "file-a");
	if (make_data_key(fx, &ctx, &dk) == 0 && out)
		CHECK_STATUS(keyclient_decrypt(fx->kc, NULL, dk.blob, dk.blob_len, &ctx, test_owner(),
				out, 16, &out_len, NULL, &err), KC_VALIDATION, err);
	CHECK(out_len == 0);
	sodium_free(out);
	free_data_key(&dk);
}

static void test_other_store_and_key(struct test_fixture *fx)
{
	struct test_fixture other;
	struct kc_key_info second;
	struct kc_context ctx;
	struct kc_error err = { 0 };
	struct data_key dk;

	test_file_context(&ctx, "vol-1", "file-a");
	if (make_data_key(fx, &ctx, &dk) != 0)
		goto out;
	if (test_fixture_open(&other, "blob-other-store") == 0) {
		CHECK_STATUS(try_decrypt(&other, NULL, dk.blob, dk.blob_len, &ctx, NULL, &err),
				KC_INVALID_CIPHERTEXT, err);
		CHECK(strstr(err.message, "another key store") != NULL);
		test_fixture_close(&other);
	}
	CHECK_STATUS(fx->kc->ops->create_key(fx->kc, "second", test_owner(), &second, &err), KC_OK, err);
	CHECK_STATUS(try_decrypt(fx, second.key_id, dk.blob, dk.blob_len, &ctx, NULL, &err),
			KC_INCORRECT_KEY, err);
	CHECK(strcmp(err.type, "IncorrectKeyException") == 0);
	CHECK_STATUS(try_decrypt(fx, "alias/does-not-exist", dk.blob, dk.blob_len, &ctx, NULL, &err),
			KC_NOT_FOUND, err);
out:
	free_data_key(&dk);
}

static void test_encrypt(struct test_fixture *fx)
{
	static const uint8_t secret[] = "a small secret, e.g. a volume config MAC key";
	struct kc_context ctx = { 0 };
	struct kc_error err = { 0 };
	uint8_t *blob = NULL, *out = sodium_malloc(sizeof secret);
	size_t blob_len = 0, out_len = 0;

	kc_context_add(&ctx, "kmsfs:volume", "vol-1");
	CHECK_STATUS(keyclient_encrypt(fx->kc, fx->key.key_id, secret, sizeof secret, &ctx,
			test_owner(), &blob, &blob_len, &err), KC_OK, err);
	CHECK_STATUS(keyclient_decrypt(fx->kc, NULL, blob, blob_len, &ctx, test_owner(), out,
			sizeof secret, &out_len, NULL, &err), KC_OK, err);
	CHECK(out_len == sizeof secret && memcmp(out, secret, sizeof secret) == 0);
	free(blob);
	CHECK_STATUS(keyclient_encrypt(fx->kc, fx->key.key_id, secret, 0, &ctx, test_owner(),
			&blob, &blob_len, &err), KC_VALIDATION, err);
	sodium_free(out);
}

void test_blob_suite(void)
{
	struct test_fixture fx;

	if (test_fixture_open(&fx, "blob") != 0)
		return;
	test_round_trip(&fx);
	test_wrong_context(&fx);
	test_flipped_bits(&fx);
	test_truncated_and_malformed(&fx);
	test_small_buffer(&fx);
	test_other_store_and_key(&fx);
	test_encrypt(&fx);
	test_fixture_close(&fx);
}
