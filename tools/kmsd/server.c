/*
 * server.c - kmsd's HTTP side, on libmicrohttpd: the listener (plain or
 * TLS), a pool of request threads (epoll), HTTP/1.1 keep-alive, and for
 * each request the body collected into locked memory, never more than
 * max_body of it. A complete request goes to request.c; the reply comes
 * back as JSON text that is wiped when libmicrohttpd is done sending it.
 */
#include "crypto.h"
#include "kmsd.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>
#include <sodium.h>

/* Only TLS 1.2 and 1.3, as AWS endpoints. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define TLS_FILE_MAX (256 * 1024)

/* One request between its first and its last callback. */
struct pending {
	char request_id[KMSD_UUID_LEN + 1];
	time_t received;
	struct timespec started;
	uint8_t *body;               /* sodium_malloc'ed: bodies carry plaintext */
	size_t body_len;
	size_t body_cap;
	int body_too_large;
	struct kc_http_header *headers;
	size_t header_count;
	size_t header_cap;
	int out_of_memory;           /* a header could not be kept */
};

/* ---- replies ---------------------------------------------------------------------------- */

static void free_secure_body(void *body)
{
	kmsd_reply_body_free(body, strlen(body), 1);
}

static void free_plain_body(void *body)
{
	kmsd_reply_body_free(body, strlen(body), 0);
}

/* Queue reply on connection; the response owns (and will wipe) the body from here on. */
static enum MHD_Result send_reply(struct MHD_Connection *connection, const char *request_id,
		struct kmsd_reply *reply)
{
	struct MHD_Response *response;
	enum MHD_Result queued;

	response = MHD_create_response_from_buffer_with_free_callback(reply->body_len,
			reply->body, reply->secure ? free_secure_body : free_plain_body);
	if (!response) {
		kmsd_reply_body_free(reply->body, reply->body_len, reply->secure);
		return MHD_NO;     /* closes the connection: nothing better to do without memory */
	}
	reply->body = NULL;
	MHD_add_response_header(response, "x-amzn-RequestId", request_id);
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/x-amz-json-1.1");
	if (reply->error_type[0])
		MHD_add_response_header(response, "X-Amzn-ErrorType", reply->error_type);
	queued = MHD_queue_response(connection, reply->http_status, response);
	MHD_destroy_response(response);
	return queued;
}

/* ---- requests ---------------------------------------------------------------------------- */

static enum MHD_Result collect_header(void *arg, enum MHD_ValueKind kind, const char *name,
		const char *value)
{
	struct pending *p = arg;
	struct kc_http_header *grown;

	if (p->header_count == p->header_cap) {
		size_t cap = p->header_cap ? p->header_cap * 2 : 16;

		grown = realloc(p->headers, cap * sizeof *grown);
		if (!grown) {
			p->out_of_memory = 1;
			return MHD_NO;
		}
		p->headers = grown;
		p->header_cap = cap;
	}
	p->headers[p->header_count].name = name;
	p->headers[p->header_count].value = value ? value : "";
	p->header_count++;
	return MHD_YES;
}

static void client_address(struct MHD_Connection *connection, char *out, size_t len)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *addr = info ? info->client_addr : NULL;
	socklen_t addr_len;

	snprintf(out, len, "unknown");
	if (!addr || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
		return;
	addr_len = addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
					      : sizeof(struct sockaddr_in6);
	if (getnameinfo(addr, addr_len, out, (socklen_t)len, NULL, 0, NI_NUMERICHOST) != 0) {
		snprintf(out, len, "unknown");
		return;
	}
	/* An IPv4 client of a dual-stack listener: log 192.0.2.1, not ::ffff:192.0.2.1. */
	if (!strncmp(out, "::ffff:", 7) && strchr(out, '.'))
		memmove(out, out + 7, strlen(out + 7) + 1);
}

/* Hand the complete (or rejected) request to request.c and queue its reply. */
static enum MHD_Result answer(struct kmsd *kmsd, struct MHD_Connection *connection,
		const char *url, const char *method, struct pending *p)
{
	struct kmsd_http_request req = {
		.received = p->received, .started = p->started, .method = method, .path = url,
		.body = p->body, .body_len = p->body_len, .body_too_large = p->body_too_large,
	};
	struct kmsd_reply reply = { 0 };
	int query_args;

	memcpy(req.request_id, p->request_id, sizeof req.request_id);
	p->header_count = 0;
	MHD_get_connection_values(connection, MHD_HEADER_KIND, collect_header, p);
	if (p->out_of_memory)
		return MHD_NO;
	req.headers = p->headers;
	req.header_count = p->header_count;
	/* The JSON protocol never uses a query; request.c refuses one. */
	query_args = MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, NULL, NULL);
	req.query = query_args > 0 ? "?" : "";
	client_address(connection, req.source_ip, sizeof req.source_ip);
	kmsd_request_run(kmsd, &req, &reply);
	return send_reply(connection, p->request_id, &reply);
}

static struct pending *begin_request(void)
{
	struct pending *p = calloc(1, sizeof *p);

	if (!p)
		return NULL;
	kmsd_uuid_v4(p->request_id);
	p->received = time(NULL);
	clock_gettime(CLOCK_MONOTONIC, &p->started);
	return p;
}

/*
 * How much body to expect: Content-Length when the client sent one
 * (libmicrohttpd holds it to that), else max_body for a chunked upload.
 * Returns -1 when the announced body is over max_body.
 */
static int plan_body(const struct kmsd *kmsd, struct MHD_Connection *connection,
		struct pending *p)
{
	const char *length = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
							 MHD_HTTP_HEADER_CONTENT_LENGTH);
	unsigned long long announced = length ? strtoull(length, NULL, 10) : 0;

	if (length && announced > kmsd->config->max_body) {
		p->body_too_large = 1;
		return -1;
	}
	p->body_cap = length ? (size_t)announced : kmsd->config->max_body;
	return 0;
}

/*
 * Keep what fits, in locked memory allocated when the first bytes come;
 * past max_body remember that and drop the rest unbuffered.
 */
static int take_body(struct pending *p, const char *data, size_t size)
{
	if (p->body_too_large)
		return 0;
	if (size > p->body_cap - p->body_len) {
		p->body_too_large = 1;
		return 0;
	}
	if (!p->body) {
		p->body = kmsfs_secure_alloc(p->body_cap);
		if (!p->body)
			return -1;
	}
	memcpy(p->body + p->body_len, data, size);
	p->body_len += size;
	return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection,
		const char *url, const char *method, const char *version,
		const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct kmsd *kmsd = cls;
	struct pending *p = *con_cls;

	if (!p) {
		p = begin_request();
		if (!p)
			return MHD_NO;
		*con_cls = p;
		/* Refuse an announced oversize body before reading a byte of it. */
		if (plan_body(kmsd, connection, p) != 0)
			return answer(kmsd, connection, url, method, p);
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		if (take_body(p, upload_data, *upload_data_size) != 0)
			return MHD_NO;   /* out of locked memory: drop the connection */
		*upload_data_size = 0;
		return MHD_YES;
	}
	return answer(kmsd, connection, url, method, p);
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
		enum MHD_RequestTerminationCode toe)
{
	struct pending *p = *con_cls;

	if (!p)
		return;
	if (p->body) {
		sodium_memzero(p->body, p->body_len);
		kmsfs_secure_free(p->body);   /* wipes again */
	}
	free(p->headers);
	free(p);
	*con_cls = NULL;
}

/* ---- the daemon --------------------------------------------------------------------------- */

__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];

	vsnprintf(line, sizeof line, fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	fprintf(stderr, "kmsd: libmicrohttpd: %s\n", line);
}

/* Certificate and private key in memory for libmicrohttpd (the key locked and wiped later). */
static int load_tls(struct kmsd *kmsd, char err[KMSD_ERR_MAX])
{
	const struct kmsd_config *cfg = kmsd->config;
	size_t len;

	if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
		snprintf(err, KMSD_ERR_MAX, "tls_cert is set but this libmicrohttpd was built "
			 "without TLS support");
		return -1;
	}
	kmsd->tls_key_pem = kmsd_read_secret_file(cfg->tls_key, "TLS private key",
						  TLS_FILE_MAX, &len, err);
	if (!kmsd->tls_key_pem)
		return -1;
	kmsd->tls_cert_pem = kmsd_read_text_file(cfg->tls_cert, "TLS certificate", TLS_FILE_MAX,
						 err);
	return kmsd->tls_cert_pem ? 0 : -1;
}

static void free_tls(struct kmsd *kmsd)
{
	if (kmsd->tls_key_pem) {
		sodium_memzero(kmsd->tls_key_pem, strlen(kmsd->tls_key_pem));
		sodium_free(kmsd->tls_key_pem);
	}
	free(kmsd->tls_cert_pem);
	kmsd->tls_key_pem = kmsd->tls_cert_pem = NULL;
}

static unsigned daemon_flags(const struct kmsd_config *cfg)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;

	if (cfg->listen_addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (cfg->tls_cert)
		flags |= MHD_USE_TLS;
	return flags;
}

int kmsd_server_start(struct kmsd *kmsd, char err[KMSD_ERR_MAX])
{
	const struct kmsd_config *cfg = kmsd->config;
	const union MHD_DaemonInfo *info;
	struct MHD_OptionItem tls_options[] = {
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, NULL },
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, NULL },
		{ MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES },
		{ MHD_OPTION_END, 0, NULL },
	};

	if (cfg->tls_cert) {
		if (load_tls(kmsd, err) != 0)
			goto fail;
		tls_options[0].ptr_value = kmsd->tls_key_pem;
		tls_options[1].ptr_value = kmsd->tls_cert_pem;
	} else {
		tls_options[0].option = MHD_OPTION_END;
	}
	/* The logger first: libmicrohttpd logs its own way until it has seen it. */
	kmsd->daemon = MHD_start_daemon(daemon_flags(cfg), 0, NULL, NULL, on_request, kmsd,
			MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
			MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&cfg->listen_addr,
			MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cfg->threads,
			MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->connection_timeout,
			MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections,
			MHD_OPTION_NOTIFY_COMPLETED, on_completed, kmsd,
			MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
			MHD_OPTION_ARRAY, tls_options,
			MHD_OPTION_END);
	if (!kmsd->daemon) {
		snprintf(err, KMSD_ERR_MAX, "cannot listen on %s (address in use, not local, "
			 "or a bad TLS certificate/key; libmicrohttpd said why above)",
			 cfg->listen);
		goto fail;
	}
	info = MHD_get_daemon_info(kmsd->daemon, MHD_DAEMON_INFO_BIND_PORT);
	kmsd->port = info ? info->port : 0;
	return 0;
fail:
	free_tls(kmsd);
	return -1;
}

void kmsd_server_stop(struct kmsd *kmsd)
{
	if (kmsd->daemon)
		MHD_stop_daemon(kmsd->daemon);
	kmsd->daemon = NULL;
	free_tls(kmsd);
}
