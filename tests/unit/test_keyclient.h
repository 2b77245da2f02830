/*
 * test_keyclient.h - shared helpers of the keyclient unit tests: check
 * macros that count failures and say what failed, a scratch directory,
 * callers, and a fixture holding an unlocked key store with one key.
 */
#ifndef KMSFS_TEST_KEYCLIENT_H
#define KMSFS_TEST_KEYCLIENT_H

#include <stdio.h>

#include "keyclient.h"
#include "local_internal.h"

extern int kc_test_failures;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, __func__, #cond); \
		kc_test_failures++; \
	} \
} while (0)

/* expr must return want; prints both AWS types and the error message otherwise. */
#define CHECK_STATUS(expr, want, err) do { \
	enum kc_status got_ = (expr); \
	if (got_ != (want)) { \
		fprintf(stderr, "%s:%d: %s: %s returned %s, want %s (message: %s)\n", \
			__FILE__, __LINE__, __func__, #expr, test_status_name(got_), \
			test_status_name(want), (err).message); \
		kc_test_failures++; \
	} \
} while (0)

#define TEST_PASSPHRASE "correct horse battery staple"

const char *test_status_name(enum kc_status status);
/* A fresh path under the run's scratch directory (not created). */
const char *test_path(const char *name, char out[4096]);
/* The key store owner (this process's uid) and a stranger. */
const struct kc_caller *test_owner(void);
const struct kc_caller *test_stranger(void);

struct test_fixture {
	char dir[4096];
	struct keyclient *kc;
	struct kc_key_info key;
};
/* Creates a key store named name and one key in it; 0 or -1 (reported). */
int test_fixture_open(struct test_fixture *fx, const char *name);
void test_fixture_close(struct test_fixture *fx);
/* The file context {"kmsfs:volume": volume, "kmsfs:file": file}. */
void test_file_context(struct kc_context *ctx, const char *volume, const char *file);

void test_context_suite(void);
void test_blob_suite(void);
void test_local_suite(void);
void test_passphrase_suite(void);
void test_audit_suite(void);

#endif
