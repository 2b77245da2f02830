/*
 * test_keyclient.c - runner and shared helpers of the keyclient unit
 * tests. Runs every suite in a scratch directory from mkdtemp, removes it
 * afterwards, and exits non-zero if any check failed.
 */
#include "test_keyclient.h"

#include <ftw.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

int kc_test_failures;

static char scratch_dir[] = "/tmp/kmsfs-keyclient-test.XXXXXX";

const char *test_status_name(enum kc_status status)
{
	return status == KC_OK ? "KC_OK" : kc_status_type(status);
}

const char *test_path(const char *name, char out[4096])
{
	snprintf(out, 4096, "%s/%s", scratch_dir, name);
	return out;
}

static char owner_principal[32];
static struct kc_caller owner_caller;

static void owner_init(void)
{
	kc_local_principal(getuid(), owner_principal, sizeof owner_principal);
	owner_caller.principal = owner_principal;
	owner_caller.uid = getuid();
	owner_caller.pid = getpid();
}

/*
 * Filled once: the thread tests call this from several threads, and
 * rewriting the principal with snprintf (which starts by writing a NUL)
 * under a reader made it "\0id:0" for that reader now and then.
 */
const struct kc_caller *test_owner(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, owner_init);
	return &owner_caller;
}

const struct kc_caller *test_stranger(void)
{
	static struct kc_caller caller = { .principal = "uid:64999", .uid = 64999 };

	caller.pid = getpid();
	return &caller;
}

void test_file_context(struct kc_context *ctx, const char *volume, const char *file)
{
	memset(ctx, 0, sizeof *ctx);
	kc_context_add(ctx, "kmsfs:volume", volume);
	kc_context_add(ctx, "kmsfs:file", file);
}

int test_fixture_open(struct test_fixture *fx, const char *name)
{
	struct kc_error err = { 0 };
	enum kc_status rc;

	memset(fx, 0, sizeof *fx);
	test_path(name, fx->dir);
	rc = kc_local_open(fx->dir, TEST_PASSPHRASE, 1, &fx->kc, &err);
	if (rc != KC_OK) {
		fprintf(stderr, "fixture %s: kc_local_open: %s: %s\n", name, test_status_name(rc), err.message);
		kc_test_failures++;
		return -1;
	}
	rc = fx->kc->ops->create_key(fx->kc, "test key", test_owner(), &fx->key, &err);
	if (rc != KC_OK) {
		fprintf(stderr, "fixture %s: create_key: %s: %s\n", name, test_status_name(rc), err.message);
		kc_test_failures++;
		keyclient_free(fx->kc);
		fx->kc = NULL;
		return -1;
	}
	return 0;
}

void test_fixture_close(struct test_fixture *fx)
{
	keyclient_free(fx->kc);
	fx->kc = NULL;
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
	unsetenv("KMSFS_PASSPHRASE");
	if (sodium_init() < 0 || !mkdtemp(scratch_dir)) {
		fprintf(stderr, "test_keyclient: setup failed\n");
		return 2;
	}
	test_context_suite();
	test_blob_suite();
	test_local_suite();
	test_passphrase_suite();
	test_audit_suite();
	nftw(scratch_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (kc_test_failures) {
		fprintf(stderr, "test_keyclient: %d check(s) failed\n", kc_test_failures);
		return 1;
	}
	printf("test_keyclient: all checks passed\n");
	return 0;
}
