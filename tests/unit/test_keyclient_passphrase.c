/*
 * test_keyclient_passphrase.c - passphrase sources (passfile, extpass,
 * environment, no source without a terminal) and the default key store
 * location.
 */
#include "test_keyclient.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

static void write_file(const char *path, const char *content)
{
	FILE *f = fopen(path, "w");

	CHECK(f != NULL);
	if (!f)
		return;
	fputs(content, f);
	fclose(f);
}

/* Expect src to yield want (NULL: to fail with a message containing fragment). */
static void expect(const struct kc_passphrase_source *src, const char *want, const char *fragment)
{
	struct kc_error err = { 0 };
	char *got = kc_passphrase_get(src, &err);

	if (want) {
		CHECK(got && strcmp(got, want) == 0);
		if (!got)
			fprintf(stderr, "  passphrase error: %s\n", err.message);
	} else {
		CHECK(got == NULL);
		CHECK(strstr(err.message, fragment) != NULL);
		if (!strstr(err.message, fragment))
			fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", err.message, fragment);
	}
	sodium_free(got);
}

static void test_passfile(void)
{
	char path[4096], empty[4096], missing[4096];
	struct kc_passphrase_source src = { 0 };

	test_path("pass.txt", path);
	test_path("empty.txt", empty);
	test_path("missing.txt", missing);
	write_file(path, "s3cret phrase\r\nsecond line\n");
	write_file(empty, "\nnot the first line\n");
	src.passfile = path;
	expect(&src, "s3cret phrase", NULL);
	write_file(path, "no newline");
	expect(&src, "no newline", NULL);
	src.passfile = empty;
	expect(&src, NULL, empty);
	src.passfile = missing;
	expect(&src, NULL, missing);
	/* passfile wins over the environment */
	setenv("KMSFS_PASSPHRASE", "from env", 1);
	src.passfile = path;
	expect(&src, "no newline", NULL);
	unsetenv("KMSFS_PASSPHRASE");
}

static void test_extpass(void)
{
	struct kc_passphrase_source src = { 0 };

	src.extpass = "printf 'from command\\nignored\\n'";
	expect(&src, "from command", NULL);
	src.extpass = "echo partial; exit 3";
	expect(&src, NULL, "status 3");
	src.extpass = "true";
	expect(&src, NULL, "empty");
	src.extpass = "yes long-output-is-drained | head -c 100000";
	expect(&src, "long-output-is-drained", NULL);
}

static void test_env(void)
{
	setenv("KMSFS_PASSPHRASE", "env phrase", 1);
	expect(NULL, "env phrase", NULL);
	unsetenv("KMSFS_PASSPHRASE");
}

/* Without a controlling terminal and without sources: a clear error. */
static void test_no_source(void)
{
	int status = 0;
	pid_t pid = fork();

	if (pid == 0) {
		struct kc_error err = { 0 };
		char *got;
		setsid();   /* drop the controlling terminal */
		got = kc_passphrase_get(NULL, &err);
		_exit(got == NULL && strcmp(err.message,
				"no passphrase: use --passfile, --extpass or KMSFS_PASSPHRASE") == 0 ? 0 : 1);
	}
	CHECK(pid > 0);
	if (pid > 0)
		waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_default_keystore(void)
{
	char *saved_xdg = getenv("XDG_DATA_HOME") ? strdup(getenv("XDG_DATA_HOME")) : NULL;
	char *saved_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
	char out[4096], tiny[8];

	setenv("XDG_DATA_HOME", "/data/home", 1);
	CHECK(kc_default_keystore(out, sizeof out) == 0 && strcmp(out, "/data/home/kmsfs") == 0);
	CHECK(kc_default_keystore(tiny, sizeof tiny) == -1);
	unsetenv("XDG_DATA_HOME");
	setenv("HOME", "/home/someone", 1);
	CHECK(kc_default_keystore(out, sizeof out) == 0 && strcmp(out, "/home/someone/.local/share/kmsfs") == 0);
	if (saved_xdg)
		setenv("XDG_DATA_HOME", saved_xdg, 1);
	if (saved_home)
		setenv("HOME", saved_home, 1);
	else
		unsetenv("HOME");
	free(saved_xdg);
	free(saved_home);
}

void test_passphrase_suite(void)
{
	test_passfile();
	test_extpass();
	test_env();
	test_no_source();
	test_default_keystore();
}
