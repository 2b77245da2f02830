/*
 * test_remote.c - unit tests of keyclient's remote transport that need no
 * key service: options refused at open, credentials refused, and the
 * retry rules against a tiny HTTP server on a thread of this process
 * (canned answers in order, requests counted): 5xx and throttling are
 * retried, other 4xx are not, the attempts stay within their time bound
 * when nothing listens, and a failed call leaves no data key behind.
 * The transport against a real kmsd is tests/kmsd/test_remote_backend.py.
 */
#include "crypto.h"
#include "keyclient.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int failures;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, __func__, #cond); \
		failures++; \
	} \
} while (0)

/* 32 bytes of 'k', base64 */
#define KEY_B64 "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s="
#define GDK_OK "{\"CiphertextBlob\":\"YmxvYg==\",\"Plaintext\":\"" KEY_B64 "\"," \
	"\"KeyId\":\"arn:aws:kms:us-east-1:111122223333:key/canned\"}"
#define REGION "us-east-1"

/* ---- a canned HTTP server -------------------------------------------------------------- */

struct canned {
	int status;
	const char *body;
};

struct server {
	int listen_fd;
	int port;
	pthread_t thread;
	const struct canned *answers;   /* in order; the last one repeats */
	size_t answer_count;
	pthread_mutex_t lock;
	int requests;
};

/* Read one request (headers, then Content-Length bytes of body); 0, or -1 at EOF. */
static int read_request(int fd)
{
	char buf[16384];
	size_t len = 0;
	char *end = NULL, *cl;
	long body = 0;
	ssize_t n;

	while (!end) {
		n = len < sizeof buf - 1 ? read(fd, buf + len, sizeof buf - 1 - len) : -1;
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	cl = strcasestr(buf, "\r\nContent-Length:");
	if (cl)
		body = strtol(cl + 17, NULL, 10);
	body -= (long)(len - (size_t)(end + 4 - buf));
	while (body > 0) {
		n = read(fd, buf, sizeof buf);
		if (n <= 0)
			return -1;
		body -= n;
	}
	return 0;
}

static void answer(struct server *srv, int fd)
{
	const struct canned *a;
	char head[256];
	int len;

	pthread_mutex_lock(&srv->lock);
	a = &srv->answers[(size_t)srv->requests < srv->answer_count ? (size_t)srv->requests :
			srv->answer_count - 1];
	srv->requests++;
	pthread_mutex_unlock(&srv->lock);
	len = snprintf(head, sizeof head, "HTTP/1.1 %d Canned\r\nContent-Type: "
			"application/x-amz-json-1.1\r\nContent-Length: %zu\r\n\r\n", a->status,
			strlen(a->body));
	if (write(fd, head, (size_t)len) != len || write(fd, a->body, strlen(a->body)) < 0)
		perror("canned server: write");
}

static void *serve(void *arg)
{
	struct server *srv = arg;
	int fd;

	while ((fd = accept(srv->listen_fd, NULL, NULL)) >= 0) {
		while (read_request(fd) == 0)
			answer(srv, fd);
		close(fd);
	}
	return NULL;
}

/* A listening loopback socket; its port in *port. */
static int listen_loopback(int *port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t addr_len = sizeof addr;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 16) != 0 ||
	    getsockname(fd, (struct sockaddr *)&addr, &addr_len) != 0) {
		perror("canned server: listen");
		exit(2);
	}
	*port = ntohs(addr.sin_port);
	return fd;
}

static void server_start(struct server *srv, const struct canned *answers, size_t count)
{
	memset(srv, 0, sizeof *srv);
	srv->answers = answers;
	srv->answer_count = count;
	pthread_mutex_init(&srv->lock, NULL);
	srv->listen_fd = listen_loopback(&srv->port);
	pthread_create(&srv->thread, NULL, serve, srv);
}

/* Call after keyclient_free (which closes the kept connection the thread reads from). */
static void server_stop(struct server *srv)
{
	shutdown(srv->listen_fd, SHUT_RDWR);
	pthread_join(srv->thread, NULL);
	close(srv->listen_fd);
	pthread_mutex_destroy(&srv->lock);
}

/* ---- helpers ----------------------------------------------------------------------------- */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const struct kc_caller alice = { .principal = "alice" };

/* A remote keyclient on port with quick backoff and alice's (made-up) credentials. */
static struct keyclient *open_on(int port, int retries, long request_timeout_ms)
{
	char endpoint[64];
	struct kc_remote_options opts = {
		.endpoint = endpoint, .region = REGION, .retries = retries,
		.request_timeout_ms = request_timeout_ms, .backoff_base_ms = 10, .backoff_max_ms = 40,
	};
	struct kc_remote_credentials creds = { "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
		NULL };
	struct kc_error err = { 0 };
	struct keyclient *kc = NULL;

	snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", port);
	CHECK(kc_remote_open(&opts, &kc, &err) == KC_OK);
	CHECK(kc && kc_remote_add_principal(kc, "alice", &creds, &err) == KC_OK);
	return kc;
}

static int all_zero(const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i])
			return 0;
	return 1;
}

/* One GenerateDataKey of 32 bytes against answers; the server's request count in *requests. */
static enum kc_status gdk_against(const struct canned *answers, size_t count, int retries,
		int *requests, uint8_t *plaintext, struct kc_error *err)
{
	struct server srv;
	struct keyclient *kc;
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	char arn[KC_ARN_MAX];
	enum kc_status rc;

	server_start(&srv, answers, count);
	kc = open_on(srv.port, retries, 0);
	rc = keyclient_generate_data_key(kc, "alias/x", NULL, &alice, plaintext, 32, &blob,
			&blob_len, arn, err);
	CHECK(rc == KC_OK ? blob_len == 4 && strstr(arn, ":key/canned") : !blob && !blob_len && !*arn);
	free(blob);
	keyclient_free(kc);
	server_stop(&srv);
	*requests = srv.requests;
	return rc;
}

/* ---- the tests ---------------------------------------------------------------------------- */

static void test_open_refuses(void)
{
	static const char *bad[] = { "", "ftp://127.0.0.1/", "http://u:p@127.0.0.1/",
		"http://127.0.0.1/?x=1", "http://127.0.0.1/#f", "::::" };
	struct kc_remote_options opts = { .region = REGION };
	struct kc_error err = { 0 };
	struct keyclient *kc = (struct keyclient *)&opts;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		opts.endpoint = bad[i];
		CHECK(kc_remote_open(&opts, &kc, &err) == KC_VALIDATION && !kc);
	}
	opts.endpoint = "http://127.0.0.1:1";
	opts.region = NULL;
	CHECK(kc_remote_open(&opts, &kc, &err) == KC_VALIDATION);
	opts.region = REGION;
	opts.retries = -2;
	CHECK(kc_remote_open(&opts, &kc, &err) == KC_VALIDATION);
	CHECK(kc_remote_open(NULL, &kc, &err) == KC_VALIDATION);
	opts.retries = KC_REMOTE_NO_RETRY;
	CHECK(kc_remote_open(&opts, &kc, &err) == KC_OK && strcmp(kc->ops->name, "remote") == 0);
	keyclient_free(kc);
}

static void test_credentials_refused(void)
{
	struct kc_remote_options opts = { .endpoint = "https://kms.us-east-1.amazonaws.com",
		.region = REGION };
	struct kc_remote_credentials creds = { "AKID", "secret", NULL };
	struct kc_error err = { 0 };
	struct keyclient *kc = NULL, not_remote = { 0 };

	CHECK(kc_remote_add_principal(NULL, "alice", &creds, &err) == KC_VALIDATION);
	CHECK(kc_remote_add_principal(&not_remote, "alice", &creds, &err) == KC_VALIDATION);
	CHECK(kc_remote_open(&opts, &kc, &err) == KC_OK);
	CHECK(kc_remote_add_principal(kc, "", &creds, &err) == KC_VALIDATION);
	creds.secret_access_key = "";
	CHECK(kc_remote_add_principal(kc, "alice", &creds, &err) == KC_VALIDATION);
	creds.secret_access_key = "secret";
	creds.session_token = "";
	CHECK(kc_remote_add_principal(kc, "alice", &creds, &err) == KC_VALIDATION);
	creds.session_token = "token";
	CHECK(kc_remote_add_principal(kc, "alice", &creds, &err) == KC_OK);
	CHECK(kc_remote_add_principal(kc, "alice", &creds, &err) == KC_OK);   /* replaced */
	CHECK(kc->ops->set_key_principal(kc, "k", "bob", 1, &alice, &err) == KC_UNSUPPORTED_OPERATION);
	keyclient_free(kc);
}

static void test_retried_answers(void)
{
	static const struct canned unavailable[] = {
		{ 503, "{\"__type\":\"DependencyTimeoutException\",\"message\":\"busy\"}" },
		{ 502, "<html>bad gateway</html>" }, { 200, GDK_OK },
	};
	static const struct canned throttled[] = {
		{ 400, "{\"__type\":\"ThrottlingException\",\"message\":\"Rate exceeded\"}" },
		{ 400, "{\"__type\":\"com.amazonaws.kms#LimitExceededException\"}" }, { 200, GDK_OK },
	};
	uint8_t *key = kmsfs_secure_alloc(32);
	struct kc_error err = { 0 };
	int requests = 0;

	CHECK(gdk_against(unavailable, 3, 3, &requests, key, &err) == KC_OK && requests == 3);
	CHECK(memcmp(key, "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", 32) == 0);
	CHECK(err.status == KC_OK && !err.type[0] && !err.message[0]);   /* no failure left behind */
	CHECK(gdk_against(throttled, 3, 3, &requests, key, &err) == KC_OK && requests == 3);
	/* one retry only: the second 5xx is final */
	CHECK(gdk_against(unavailable, 3, 1, &requests, key, &err) == KC_DEPENDENCY_TIMEOUT);
	CHECK(requests == 2 && strstr(err.message, "HTTP 502") && all_zero(key, 32));
	kmsfs_secure_free(key);
}

static void test_final_answers(void)
{
	static const struct canned denied[] = {
		{ 400, "{\"__type\":\"AccessDeniedException\",\"message\":\"User alice is not authorized\"}" },
	};
	static const struct canned short_key[] = {
		{ 200, "{\"CiphertextBlob\":\"YmxvYg==\",\"Plaintext\":\"a2tra2tra2tra2tra2tra2s=\"," \
			"\"KeyId\":\"k\"}" },
	};
	uint8_t *key = kmsfs_secure_alloc(32);
	struct kc_error err = { 0 };
	int requests = 0;

	memset(key, 0xaa, 32);
	CHECK(gdk_against(denied, 1, 3, &requests, key, &err) == KC_ACCESS_DENIED && requests == 1);
	CHECK(strcmp(err.type, "AccessDeniedException") == 0 &&
	      strcmp(err.message, "User alice is not authorized") == 0 && all_zero(key, 32));
	memset(key, 0xaa, 32);
	CHECK(gdk_against(short_key, 1, 3, &requests, key, &err) == KC_INTERNAL && requests == 1);
	CHECK(all_zero(key, 32));
	kmsfs_secure_free(key);
}

static void test_unreachable_within_bound(void)
{
	int port, fd = listen_loopback(&port);
	uint8_t *key = kmsfs_secure_alloc(32);
	struct kc_error err = { 0 };
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	struct keyclient *kc;
	double start, took;

	close(fd);   /* nothing listens there now */
	kc = open_on(port, 3, 500);
	start = now_ms();
	CHECK(keyclient_generate_data_key(kc, "alias/x", NULL, &alice, key, 32, &blob, &blob_len,
			NULL, &err) == KC_DEPENDENCY_TIMEOUT);
	took = now_ms() - start;
	/* four attempts of at most 500 ms, and backoffs of at most 10 + 20 + 40 ms */
	CHECK(took < 4 * 500 + 70);
	CHECK(strstr(err.message, "unreachable") && strstr(err.message, "(4 attempts"));
	CHECK(!blob && all_zero(key, 32));
	printf("unreachable: %s after %.0f ms: %s\n", err.type, took, err.message);
	keyclient_free(kc);
	kmsfs_secure_free(key);
}

int main(void)
{
	if (kmsfs_crypto_init() != 0) {
		fprintf(stderr, "test_remote: crypto init failed\n");
		return 2;
	}
	test_open_refuses();
	test_credentials_refused();
	test_retried_answers();
	test_final_answers();
	test_unreachable_within_bound();
	if (failures) {
		fprintf(stderr, "test_remote: %d check(s) failed\n", failures);
		return 1;
	}
	printf("test_remote: all checks passed\n");
	return 0;
}
