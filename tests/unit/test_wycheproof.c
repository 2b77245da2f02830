/*
 * test_wycheproof.c - runs Google's Wycheproof AEAD vectors through the
 * shipped wrapper (kmsfs_aead_seal/open), not through OpenSSL or
 * libsodium directly, so the wrapper's own parameter handling is tested.
 *
 * Usage: test_wycheproof DIR   (DIR holds aes_gcm_test.json and
 * xchacha20_poly1305_test.json). Every "valid" vector must open to msg and
 * seal (with the same nonce) to ct ‖ tag; every "invalid" one must be
 * refused by open, whether as a bad parameter or a failed tag. A missing
 * file, a malformed file, or a file from which no vector ran is a failure:
 * a test that cannot fail proves nothing.
 */
#include "crypto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

struct counts {
	unsigned valid_ok, valid_failed;
	unsigned invalid_rejected, invalid_accepted;
	unsigned acceptable_ok, acceptable_rejected;
};

/* One decoded test vector; every buffer is non-NULL, even when empty. */
struct vector {
	long long tc_id;
	const char *comment;
	const char *result;
	uint8_t *key, *iv, *aad, *msg, *ct, *tag;
	size_t key_len, iv_len, aad_len, msg_len, ct_len, tag_len;
};

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode obj[field] (a hex string) into a fresh buffer. -1 on malformed input. */
static int hex_field(json_t *obj, const char *field, uint8_t **out, size_t *out_len)
{
	const char *hex = json_string_value(json_object_get(obj, field));
	size_t len;

	if (!hex || strlen(hex) % 2)
		return -1;
	len = strlen(hex) / 2;
	*out = malloc(len ? len : 1);
	if (!*out)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		(*out)[i] = (uint8_t)(hi << 4 | lo);
	}
	*out_len = len;
	return 0;
}

static void vector_free(struct vector *v)
{
	free(v->key);
	free(v->iv);
	free(v->aad);
	free(v->msg);
	free(v->ct);
	free(v->tag);
	memset(v, 0, sizeof(*v));
}

static int vector_load(json_t *test, struct vector *v)
{
	memset(v, 0, sizeof(*v));
	v->tc_id = json_integer_value(json_object_get(test, "tcId"));
	v->comment = json_string_value(json_object_get(test, "comment"));
	v->result = json_string_value(json_object_get(test, "result"));
	if (!v->comment)
		v->comment = "";
	if (!v->result ||
	    hex_field(test, "key", &v->key, &v->key_len) ||
	    hex_field(test, "iv", &v->iv, &v->iv_len) ||
	    hex_field(test, "aad", &v->aad, &v->aad_len) ||
	    hex_field(test, "msg", &v->msg, &v->msg_len) ||
	    hex_field(test, "ct", &v->ct, &v->ct_len) ||
	    hex_field(test, "tag", &v->tag, &v->tag_len))
		return -1;
	return 0;
}

/* Open v's ciphertext; 0 only if it authenticates and yields msg. */
static int check_open(enum kmsfs_cipher cipher, const struct vector *v)
{
	uint8_t *out = malloc(v->ct_len ? v->ct_len : 1);
	int ret;

	if (!out)
		return -ENOMEM;
	ret = kmsfs_aead_open(cipher, v->key, v->key_len, v->iv, v->iv_len,
			      v->aad, v->aad_len, v->ct, v->ct_len, v->tag, v->tag_len, out);
	if (ret == 0 && (v->ct_len != v->msg_len || memcmp(out, v->msg, v->msg_len) != 0))
		ret = -EFAULT; /* "authenticated" but wrong plaintext */
	free(out);
	return ret;
}

/* Seal v's message with v's nonce; 0 only if it yields exactly ct ‖ tag. */
static int check_seal(enum kmsfs_cipher cipher, const struct vector *v)
{
	uint8_t *out = malloc(v->msg_len ? v->msg_len : 1);
	uint8_t tag[KMSFS_TAG_LEN];
	int ret;

	if (!out)
		return -ENOMEM;
	ret = kmsfs_aead_seal(cipher, v->key, v->key_len, v->iv, v->iv_len,
			      v->aad, v->aad_len, v->msg, v->msg_len, out, tag);
	if (ret == 0 && (v->tag_len != KMSFS_TAG_LEN || v->ct_len != v->msg_len ||
			 memcmp(out, v->ct, v->ct_len) != 0 ||
			 memcmp(tag, v->tag, KMSFS_TAG_LEN) != 0))
		ret = -EFAULT;
	free(out);
	return ret;
}

/* A valid vector with one tag bit flipped must stop authenticating. */
static int check_flipped_tag(enum kmsfs_cipher cipher, struct vector *v)
{
	int ret;

	v->tag[0] ^= 0x80;
	ret = check_open(cipher, v);
	v->tag[0] ^= 0x80;
	return ret == -EBADMSG ? 0 : -EFAULT;
}

static void run_vector(enum kmsfs_cipher cipher, const char *label, struct vector *v,
		       struct counts *counts)
{
	if (strcmp(v->result, "valid") == 0) {
		int open_ret = check_open(cipher, v);
		int seal_ret = check_seal(cipher, v);
		int flip_ret = v->tag_len ? check_flipped_tag(cipher, v) : -EFAULT;

		if (open_ret || seal_ret || flip_ret) {
			fprintf(stderr, "%s tcId %lld (%s): valid vector failed: open %d, seal %d, flipped tag %d\n",
				label, v->tc_id, v->comment, open_ret, seal_ret, flip_ret);
			counts->valid_failed++;
		} else {
			counts->valid_ok++;
		}
	} else if (strcmp(v->result, "invalid") == 0) {
		int open_ret = check_open(cipher, v);

		if (open_ret == -EBADMSG || open_ret == -EINVAL) {
			counts->invalid_rejected++;
		} else {
			fprintf(stderr, "%s tcId %lld (%s): invalid vector not rejected (open %d)\n",
				label, v->tc_id, v->comment, open_ret);
			counts->invalid_accepted++;
		}
	} else {
		/* "acceptable": either outcome is allowed; record which. */
		if (check_open(cipher, v) == 0)
			counts->acceptable_ok++;
		else
			counts->acceptable_rejected++;
	}
}

static int run_groups(json_t *groups, enum kmsfs_cipher cipher, const char *label,
		      struct counts *counts)
{
	size_t gi, ti;
	json_t *group, *test;

	json_array_foreach(groups, gi, group) {
		json_array_foreach(json_object_get(group, "tests"), ti, test) {
			struct vector v;

			if (vector_load(test, &v) != 0) {
				fprintf(stderr, "%s: group %zu test %zu is malformed\n", label, gi, ti);
				vector_free(&v);
				return -1;
			}
			run_vector(cipher, label, &v, counts);
			vector_free(&v);
		}
	}
	return 0;
}

/* Runs one vector file; returns the number of problems found (0 = pass). */
static int run_file(const char *dir, const char *file, enum kmsfs_cipher cipher,
		    const char *label)
{
	char path[4096];
	json_error_t err;
	json_t *root;
	struct counts counts = { 0 };
	unsigned total;
	long long declared;
	int problems = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	root = json_load_file(path, 0, &err);
	if (!root) {
		fprintf(stderr, "%s: cannot load %s: %s (line %d)\n", label, path, err.text, err.line);
		return 1;
	}
	declared = json_integer_value(json_object_get(root, "numberOfTests"));
	if (run_groups(json_object_get(root, "testGroups"), cipher, label, &counts) != 0)
		problems++;
	json_decref(root);

	total = counts.valid_ok + counts.valid_failed + counts.invalid_rejected +
		counts.invalid_accepted + counts.acceptable_ok + counts.acceptable_rejected;
	printf("%s: %u valid ok, %u invalid rejected, %u acceptable (%u accepted, %u rejected); "
	       "%u valid failed, %u invalid accepted; %u of %lld declared tests ran\n",
	       label, counts.valid_ok, counts.invalid_rejected,
	       counts.acceptable_ok + counts.acceptable_rejected,
	       counts.acceptable_ok, counts.acceptable_rejected,
	       counts.valid_failed, counts.invalid_accepted, total, declared);
	if (total == 0 || total != declared) {
		fprintf(stderr, "%s: ran %u tests but the file declares %lld\n", label, total, declared);
		problems++;
	}
	return problems + (int)(counts.valid_failed + counts.invalid_accepted);
}

int main(int argc, char **argv)
{
	int problems = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s WYCHEPROOF_DIR\n", argv[0]);
		return 2;
	}
	if (kmsfs_crypto_init() != 0) {
		fprintf(stderr, "kmsfs_crypto_init failed\n");
		return 1;
	}
	problems += run_file(argv[1], "aes_gcm_test.json", KMSFS_CIPHER_AES_256_GCM, "aes_gcm");
	problems += run_file(argv[1], "xchacha20_poly1305_test.json",
			     KMSFS_CIPHER_XCHACHA20_POLY1305, "xchacha20_poly1305");
	if (problems) {
		fprintf(stderr, "test_wycheproof: %d problem(s)\n", problems);
		return 1;
	}
	return 0;
}
