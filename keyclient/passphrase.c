/*
 * passphrase.c - where the key store passphrase comes from, and where the
 * key store lives by default.
 *
 * Sources, first that is set wins: --passfile (first line), --extpass
 * (first line of a command's stdout, run through /bin/sh -c), the
 * KMSFS_PASSPHRASE environment variable, a prompt on /dev/tty with echo
 * off (twice when creating). The passphrase is read straight into
 * libsodium secure memory, without stdio buffers that would keep copies.
 */
#include "local_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#define KC_PASSPHRASE_MAX 1024

enum line_result { LINE_OK, LINE_EMPTY, LINE_TOO_LONG, LINE_IO_ERROR };

/*
 * Read up to the first newline (or EOF) into buf (secure, cap bytes) and
 * NUL-terminate it without the newline or a CR before it. Anything read
 * past the newline is wiped.
 */
static enum line_result read_first_line(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	char *newline = NULL;

	while (len < cap - 1) {
		ssize_t got = read(fd, buf + len, cap - 1 - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return LINE_IO_ERROR;
		if (got == 0)
			break;
		newline = memchr(buf + len, '\n', (size_t)got);
		len += (size_t)got;
		if (newline)
			break;
	}
	if (!newline && len == cap - 1)
		return LINE_TOO_LONG;
	if (newline) {
		sodium_memzero(newline, len - (size_t)(newline - buf));
		len = (size_t)(newline - buf);
	}
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	buf[len] = '\0';
	return len ? LINE_OK : LINE_EMPTY;
}

static enum kc_status line_error(enum line_result result, const char *what, struct kc_error *err)
{
	switch (result) {
	case LINE_OK:
		return KC_OK;
	case LINE_EMPTY:
		return kc_fail(err, KC_VALIDATION, "%s: empty (the first line must hold the passphrase)", what);
	case LINE_TOO_LONG:
		return kc_fail(err, KC_VALIDATION, "%s: passphrase longer than %d bytes", what, KC_PASSPHRASE_MAX - 1);
	case LINE_IO_ERROR:
		break;
	}
	return kc_fail(err, KC_VALIDATION, "%s: read failed: %s", what, strerror(errno));
}

/* ---- passfile -------------------------------------------------------------------------- */

static enum kc_status from_passfile(const char *path, char *buf, struct kc_error *err)
{
	char what[PATH_MAX + 16];
	enum kc_status rc;
	int fd;

	snprintf(what, sizeof what, "passfile %s", path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kc_fail(err, KC_VALIDATION, "passfile %s: cannot open: %s", path, strerror(errno));
	rc = line_error(read_first_line(fd, buf, KC_PASSPHRASE_MAX), what, err);
	close(fd);
	return rc;
}

/* ---- extpass ---------------------------------------------------------------------------- */

/* Read and wipe the rest of a pipe so the writer does not die of SIGPIPE. */
static void drain(int fd)
{
	char *scratch = sodium_malloc(512);
	ssize_t got;

	if (!scratch)
		return;
	do {
		got = read(fd, scratch, 512);
	} while (got > 0 || (got < 0 && errno == EINTR));
	sodium_free(scratch);
}

static int wait_child(pid_t pid)
{
	int status = 0;

	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return status;
}

static enum kc_status child_status_error(int status, struct kc_error *err)
{
	if (status < 0)
		return kc_fail(err, KC_VALIDATION, "--extpass command: cannot wait for it: %s", strerror(errno));
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		return kc_fail(err, KC_VALIDATION, "--extpass command failed: exited with status %d",
				WEXITSTATUS(status));
	if (WIFSIGNALED(status))
		return kc_fail(err, KC_VALIDATION, "--extpass command failed: killed by signal %d",
				WTERMSIG(status));
	return KC_OK;
}

static enum kc_status from_extpass(const char *command, char *buf, struct kc_error *err)
{
	enum line_result result;
	enum kc_status rc;
	int pipe_fds[2];
	pid_t pid;

	if (pipe2(pipe_fds, O_CLOEXEC) != 0)
		return kc_fail(err, KC_INTERNAL, "--extpass command: cannot create pipe: %s", strerror(errno));
	pid = fork();
	if (pid == 0) {
		if (dup2(pipe_fds[1], STDOUT_FILENO) < 0)
			_exit(127);
		execl("/bin/sh", "sh", "-c", command, (char *)NULL);
		_exit(127);
	}
	close(pipe_fds[1]);
	if (pid < 0) {
		close(pipe_fds[0]);
		return kc_fail(err, KC_INTERNAL, "--extpass command: cannot fork: %s", strerror(errno));
	}
	result = read_first_line(pipe_fds[0], buf, KC_PASSPHRASE_MAX);
	drain(pipe_fds[0]);
	close(pipe_fds[0]);
	rc = child_status_error(wait_child(pid), err);
	if (rc == KC_OK)
		rc = line_error(result, "--extpass command output", err);
	return rc;
}

/* ---- environment ------------------------------------------------------------------------ */

static enum kc_status from_env(const char *value, char *buf, struct kc_error *err)
{
	size_t len = strlen(value);

	if (len >= KC_PASSPHRASE_MAX)
		return kc_fail(err, KC_VALIDATION, "KMSFS_PASSPHRASE: longer than %d bytes", KC_PASSPHRASE_MAX - 1);
	memcpy(buf, value, len + 1);
	return KC_OK;
}

/* ---- terminal ---------------------------------------------------------------------------- */

static void write_all(int fd, const char *text)
{
	size_t len = strlen(text);

	while (len > 0) {
		ssize_t done = write(fd, text, len);
		if (done < 0 && errno == EINTR)
			continue;
		if (done <= 0)
			return;
		text += done;
		len -= (size_t)done;
	}
}

/* One prompt with echo off; the terminal settings are restored whatever happens. */
static enum kc_status prompt_once(int tty, const char *prompt, char *buf, struct kc_error *err)
{
	struct termios saved, quiet;
	enum line_result result;

	if (tcgetattr(tty, &saved) != 0)
		return kc_fail(err, KC_VALIDATION, "/dev/tty: cannot read terminal settings: %s", strerror(errno));
	quiet = saved;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	/*
	 * Echo off before the prompt appears, and without flushing input: a
	 * passphrase typed (or sent by a program) as soon as the prompt shows
	 * must not be thrown away, nor a second line already typed ahead.
	 */
	if (tcsetattr(tty, TCSANOW, &quiet) != 0)
		return kc_fail(err, KC_VALIDATION, "/dev/tty: cannot turn echo off: %s", strerror(errno));
	write_all(tty, prompt);
	result = read_first_line(tty, buf, KC_PASSPHRASE_MAX);
	tcsetattr(tty, TCSANOW, &saved);
	return line_error(result, "passphrase from terminal", err);
}

static enum kc_status from_tty(int confirm, char *buf, struct kc_error *err)
{
	char *again = NULL;
	enum kc_status rc;
	int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);

	if (tty < 0)
		return kc_fail(err, KC_VALIDATION, "no passphrase: use --passfile, --extpass or KMSFS_PASSPHRASE");
	rc = prompt_once(tty, "Passphrase: ", buf, err);
	if (rc != KC_OK || !confirm)
		goto out;
	again = sodium_malloc(KC_PASSPHRASE_MAX);
	if (!again) {
		rc = kc_fail(err, KC_INTERNAL, "passphrase: out of secure memory");
		goto out;
	}
	rc = prompt_once(tty, "Repeat passphrase: ", again, err);
	if (rc == KC_OK && (strlen(buf) != strlen(again) ||
			sodium_memcmp(buf, again, strlen(buf)) != 0))
		rc = kc_fail(err, KC_VALIDATION, "passphrases do not match");
out:
	sodium_free(again);
	close(tty);
	return rc;
}

/* ---- entry points ---------------------------------------------------------------------------- */

char *kc_passphrase_get(const struct kc_passphrase_source *src, struct kc_error *err)
{
	const char *env = getenv("KMSFS_PASSPHRASE");
	char *buf = NULL;
	enum kc_status rc;

	if (sodium_init() < 0) {
		kc_fail(err, KC_INTERNAL, "passphrase: libsodium initialisation failed");
		goto out;
	}
	buf = sodium_malloc(KC_PASSPHRASE_MAX);
	if (!buf) {
		kc_fail(err, KC_INTERNAL, "passphrase: out of secure memory");
		goto out;
	}
	if (src && src->passfile)
		rc = from_passfile(src->passfile, buf, err);
	else if (src && src->extpass)
		rc = from_extpass(src->extpass, buf, err);
	else if (env && *env)
		rc = from_env(env, buf, err);
	else
		rc = from_tty(src ? src->confirm : 0, buf, err);
	if (rc != KC_OK) {
		sodium_free(buf);
		buf = NULL;
	}
out:
	return buf;
}

/* Home directory: $HOME, else the password database. */
static const char *home_dir(void)
{
	const char *home = getenv("HOME");
	struct passwd *pw;

	if (home && *home == '/')
		return home;
	pw = getpwuid(getuid());
	return pw && pw->pw_dir && *pw->pw_dir == '/' ? pw->pw_dir : NULL;
}

int kc_default_keystore(char *out, size_t out_len)
{
	const char *xdg = getenv("XDG_DATA_HOME");
	const char *home;
	int written;

	if (xdg && *xdg == '/') {
		written = snprintf(out, out_len, "%s/kmsfs", xdg);
	} else {
		home = home_dir();
		if (!home)
			return -1;
		written = snprintf(out, out_len, "%s/.local/share/kmsfs", home);
	}
	return written < 0 || (size_t)written >= out_len ? -1 : 0;
}

int kc_keystore_exists(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;

	if (!dir || snprintf(path, sizeof path, "%s/%s", dir, KC_STORE_DB_NAME) >= (int)sizeof path)
		return 0;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}
