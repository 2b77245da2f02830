/*
 * kms_api_test.h - the harness the KMS API unit tests share: a key
 * engine in a scratch directory opened as kmsd opens it (region
 * us-east-1, account 111122223333), requests written as JSON text and
 * run through kc_api_call, the last result kept for checks, and check
 * macros that count failures and say what failed.
 */
#ifndef KMSFS_TEST_KMS_API_H
#define KMSFS_TEST_KMS_API_H

#include <stdio.h>

#include <jansson.h>

#include "kms_api.h"

#define TEST_ACCOUNT "111122223333"
#define TEST_REGION "us-east-1"

extern int failures;
extern struct keyclient *engine;
extern struct kc_api_result last;        /* the last call's result, until the next call */
extern struct kc_error last_err;
extern char store_dir[];                 /* the engine's key store directory */
extern const struct kc_caller admin;     /* arn:...:user/admin, identity policy kms:* */

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, __func__, #cond); \
		failures++; \
	} \
} while (0)

/*
 * Run op for caller with request (consumed; NULL counts as a failed
 * test). A call that succeeds must leave no error behind.
 */
enum kc_status call_json_as(const struct kc_caller *caller, const char *op, json_t *request);
/* The same with printf-formatted JSON text. */
__attribute__((format(printf, 3, 4)))
enum kc_status call_as(const struct kc_caller *caller, const char *op, const char *fmt, ...);
/* As admin. */
__attribute__((format(printf, 2, 3)))
enum kc_status call(const char *op, const char *fmt, ...);
enum kc_status call_json(const char *op, json_t *request);

void report_status(const char *file, int line, const char *op, enum kc_status got,
		enum kc_status want);

#define EXPECT_AS(caller, op, want, ...) do { \
	enum kc_status got_ = call_as(caller, op, __VA_ARGS__); \
	if (got_ != (want)) \
		report_status(__FILE__, __LINE__, op, got_, want); \
} while (0)
#define EXPECT_JSON_AS(caller, op, want, request) do { \
	enum kc_status got_ = call_json_as(caller, op, request); \
	if (got_ != (want)) \
		report_status(__FILE__, __LINE__, op, got_, want); \
} while (0)
#define EXPECT(op, want, ...) EXPECT_AS(&admin, op, want, __VA_ARGS__)
#define EXPECT_JSON(op, want, request) EXPECT_JSON_AS(&admin, op, want, request)

/* A string field of the last response (or of its KeyMetadata); "" when absent. */
const char *resp_str(const char *name);
const char *meta_str(const char *name);

/*
 * Open a fresh engine (created in a scratch directory named after the
 * test) with passphrase; 0 or -1 (reported). test_finish closes it,
 * removes the scratch directory and returns the exit status.
 */
int test_start(const char *test_name, const char *passphrase);
/* (Re)open the engine on store_dir, e.g. after keyclient_free(engine). */
enum kc_status test_open_engine(const char *passphrase, int create, struct kc_error *err);
int test_finish(const char *test_name);

#endif /* KMSFS_TEST_KMS_API_H */
