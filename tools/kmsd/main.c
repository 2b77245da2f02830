/*
 * main.c - the kmsd command: an AWS KMS-compatible key service over the
 * local key engine (DESIGN.md §6).
 *
 *   kmsd --config FILE [--verbose]   run in the foreground until SIGTERM/SIGINT
 *   kmsd --config FILE --check-config
 *
 * Start-up order: configuration (refused when others can read it), key
 * store (created when missing unless create_store = no), audit trail
 * (after the store: a second kmsd on a store in use stops there, before
 * it touches the first one's trail), the engine's own maintenance once,
 * then the listener; "kmsd: listening on
 * ADDRESS:PORT" on stderr says it is ready. A maintenance thread runs the
 * engine's background work (deletion windows, automatic rotation) every
 * 60 s. SIGTERM or SIGINT stops the listener, lets running requests
 * finish, closes the key store and frees everything.
 */
#include "kmsd.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto.h"
#include "kms_api.h"

#define MAINTENANCE_PERIOD 60      /* seconds */
#define PASSPHRASE_FILE_MAX 4096

static const char usage[] =
	"usage: kmsd --config FILE [--verbose]\n"
	"       kmsd --config FILE --check-config\n"
	"\n"
	"AWS KMS-compatible key service (JSON 1.1 protocol, SigV4) over the kmsfs\n"
	"key engine. Runs in the foreground and logs to stderr; SIGTERM or SIGINT\n"
	"stops it cleanly. Point the AWS CLI or an SDK at it with --endpoint-url.\n"
	"\n"
	"options:\n"
	"  -c, --config FILE    configuration (INI; mode 0600: it holds secret keys)\n"
	"      --check-config   validate the configuration and its files, then exit\n"
	"  -v, --verbose        one log line per request\n"
	"  -h, --help           this text\n"
	"  -V, --version        print the version\n"
	"\n"
	"The configuration format is described at the top of tools/kmsd/config.c.\n";

struct options {
	const char *config;
	int check_only;
	int verbose;
};

static int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int die(const char *fmt, ...)
{
	va_list ap;

	fputs("kmsd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

/* -1 to go on, or the exit status to leave with (help, version, usage error). */
static int parse_options(int argc, char **argv, struct options *opts)
{
	enum { OPT_CHECK = 256 };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, OPT_CHECK },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:vhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': opts->config = optarg; break;
		case OPT_CHECK: opts->check_only = 1; break;
		case 'v': opts->verbose = 1; break;
		case 'h': fputs(usage, stdout); return 0;
		case 'V': puts("kmsd " KMSD_VERSION); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind < argc) {
		die("unexpected argument \"%s\"", argv[optind]);
		return 2;
	}
	if (!opts->config) {
		die("--config FILE is required");
		fputs(usage, stderr);
		return 2;
	}
	return -1;
}

/* ---- the key engine ------------------------------------------------------------------ */

/* The passphrase file's text in locked memory, less one trailing newline. */
static char *read_passphrase(const char *path, size_t *len)
{
	char err[KMSD_ERR_MAX];
	char *passphrase = kmsd_read_secret_file(path, "passphrase file", PASSPHRASE_FILE_MAX,
						 len, err);

	if (!passphrase) {
		die("%s", err);
		return NULL;
	}
	if (*len && passphrase[*len - 1] == '\n')
		passphrase[--*len] = '\0';
	if (*len && passphrase[*len - 1] == '\r')
		passphrase[--*len] = '\0';
	return passphrase;
}

static int open_engine(struct kmsd *kmsd)
{
	const struct kmsd_config *cfg = kmsd->config;
	struct kc_local_options opts = {
		.dir = cfg->data_dir, .create = cfg->create_store, .region = cfg->region,
		.account = cfg->account, .pkcs11_module = cfg->pkcs11_module, .exclusive = 1,
		.keyfile = cfg->root_kind == KMSD_ROOT_KEYFILE ? cfg->root_path : NULL,
		.pkcs11_uri = cfg->root_kind == KMSD_ROOT_PKCS11 ? cfg->pkcs11_uri : NULL,
	};
	struct kc_error err = { 0 };
	char *passphrase = NULL;
	size_t len = 0;
	int existed = kc_keystore_exists(cfg->data_dir), rc = 1;

	if (!existed && !cfg->create_store)
		return die("data_dir %s has no key store and create_store = no", cfg->data_dir);
	if (cfg->root_kind == KMSD_ROOT_PASSPHRASE_FILE) {
		passphrase = read_passphrase(cfg->root_path, &len);
		if (!passphrase)
			return 1;
		opts.passphrase = passphrase;
	}
	if (kc_local_open_opts(&opts, &kmsd->kc, &err) != KC_OK) {
		die("cannot open the key store in %s: %s (%s)", cfg->data_dir, err.message,
		    err.type);
		goto out;
	}
	if (!existed)
		fprintf(stderr, "kmsd: created a new key store in %s\n", cfg->data_dir);
	rc = 0;
out:
	if (passphrase) {
		sodium_memzero(passphrase, len);
		sodium_free(passphrase);
	}
	return rc;
}

/* ---- maintenance thread -------------------------------------------------------------- */

struct maintenance {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int stop;
	int running;
	struct keyclient *kc;
};

static void run_maintenance(struct keyclient *kc)
{
	struct kc_error err = { 0 };

	if (kc_api_maintenance(kc, (int64_t)time(NULL), &err) != KC_OK)
		fprintf(stderr, "kmsd: maintenance (key deletion, rotation) failed: %s (%s)\n",
			err.message, err.type);
}

static void *maintenance_main(void *arg)
{
	struct maintenance *m = arg;
	struct timespec deadline;

	pthread_mutex_lock(&m->lock);
	while (!m->stop) {
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += MAINTENANCE_PERIOD;
		while (!m->stop &&
		       pthread_cond_timedwait(&m->wake, &m->lock, &deadline) != ETIMEDOUT)
			;
		if (m->stop)
			break;
		pthread_mutex_unlock(&m->lock);
		run_maintenance(m->kc);
		pthread_mutex_lock(&m->lock);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

static int maintenance_start(struct maintenance *m, struct keyclient *kc)
{
	pthread_condattr_t attr;
	int rc;

	m->kc = kc;
	pthread_mutex_init(&m->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&m->wake, &attr);
	pthread_condattr_destroy(&attr);
	rc = pthread_create(&m->thread, NULL, maintenance_main, m);
	if (rc != 0)
		return die("cannot start the maintenance thread: %s", strerror(rc));
	m->running = 1;
	return 0;
}

static void maintenance_stop(struct maintenance *m)
{
	if (!m->kc)
		return;
	if (m->running) {
		pthread_mutex_lock(&m->lock);
		m->stop = 1;
		pthread_cond_signal(&m->wake);
		pthread_mutex_unlock(&m->lock);
		pthread_join(m->thread, NULL);
	}
	pthread_cond_destroy(&m->wake);
	pthread_mutex_destroy(&m->lock);
	m->kc = NULL;
}

/* ---- running --------------------------------------------------------------------------- */

/* "127.0.0.1:4599", "[::1]:4599" with the port actually bound. */
static void listening_address(const struct kmsd *kmsd, char *out, size_t len)
{
	const struct kmsd_config *cfg = kmsd->config;
	char host[NI_MAXHOST];
	int v6 = cfg->listen_addr.ss_family == AF_INET6;

	if (getnameinfo((const struct sockaddr *)&cfg->listen_addr, cfg->listen_addr_len,
			host, sizeof host, NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(host, sizeof host, "?");
	snprintf(out, len, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "",
		 (unsigned)kmsd->port);
}

/* Block the stop signals in every thread; main collects them with sigwait. */
static void block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);   /* a client gone mid-reply is not our death */
}

static int wait_for_stop(const sigset_t *set)
{
	int sig = 0;

	while (sigwait(set, &sig) != 0)
		;
	return sig;
}

static int serve(struct kmsd *kmsd, const sigset_t *stop_signals)
{
	struct maintenance maintenance = { 0 };
	char err[KMSD_ERR_MAX], address[NI_MAXHOST + 16];
	int rc = 1, sig;

	run_maintenance(kmsd->kc);
	if (maintenance_start(&maintenance, kmsd->kc) != 0)
		goto out;
	if (kmsd_server_start(kmsd, err) != 0) {
		die("%s", err);
		goto out;
	}
	listening_address(kmsd, address, sizeof address);
	fprintf(stderr, "kmsd: listening on %s%s\n", address,
		kmsd->config->tls_cert ? " (TLS)" : "");
	sig = wait_for_stop(stop_signals);
	fprintf(stderr, "kmsd: %s: stopping\n", strsignal(sig));
	rc = 0;
out:
	kmsd_server_stop(kmsd);
	maintenance_stop(&maintenance);
	return rc;
}

static int check_config(const struct kmsd_config *cfg)
{
	printf("kmsd: %s: configuration OK (listen %s, region %s, account %s, %zu user%s)\n",
	       cfg->path, cfg->listen, cfg->region, cfg->account, cfg->user_count,
	       cfg->user_count == 1 ? "" : "s");
	return 0;
}

static int run(const struct options *opts, const sigset_t *stop_signals)
{
	struct kmsd_config cfg;
	struct kmsd kmsd = { .config = &cfg, .verbose = opts->verbose };
	char err[KMSD_ERR_MAX];
	int rc = 1;

	if (kmsd_config_load(opts->config, &cfg, err) != 0)
		return die("%s", err);
	if (kmsd_config_check_files(&cfg, err) != 0) {
		die("%s", err);
		goto out;
	}
	if (opts->check_only) {
		rc = check_config(&cfg);
		goto out;
	}
	fprintf(stderr, "kmsd %s: starting with %s (%zu users, key store %s, audit trail %s, "
		"%u threads, max_body %zu)\n", KMSD_VERSION, cfg.path, cfg.user_count, cfg.data_dir,
		cfg.audit_dir, cfg.threads, cfg.max_body);
	kmsd.sigv4_cache = kc_sigv4_key_cache_new();
	if (!kmsd.sigv4_cache) {
		die("out of locked memory for the signing-key cache");
		goto out;
	}
	if (open_engine(&kmsd) != 0)
		goto out;
	kmsd.audit = kmsd_audit_open(&cfg, err);
	if (!kmsd.audit) {
		die("%s", err);
		goto out;
	}
	rc = serve(&kmsd, stop_signals);
	if (rc == 0)
		fprintf(stderr, "kmsd: stopped\n");
out:
	keyclient_free(kmsd.kc);
	kc_sigv4_key_cache_free(kmsd.sigv4_cache);
	kmsd_audit_close(kmsd.audit);
	kmsd_config_free(&cfg);
	return rc;
}

int main(int argc, char **argv)
{
	struct options opts = { 0 };
	sigset_t stop_signals;
	int rc = parse_options(argc, argv, &opts);

	if (rc >= 0)
		return rc;
	/* Before any thread exists, so they all inherit the mask. */
	block_signals(&stop_signals);
	/* Before jansson allocates anything. */
	kmsd_json_wipe_on_free();
	if (kmsfs_crypto_init() != 0)
		return die("cannot initialise libsodium/OpenSSL");
	return run(&opts, &stop_signals);
}
