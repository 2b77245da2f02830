/*
 * auth.c - who sent a request: SigV4 verification (keyclient/sigv4.h)
 * with the secret looked up among the configured users, and the caller
 * identity the engine authorizes.
 *
 * The signature itself is keyclient's business; what kmsd adds is where
 * secrets come from (the configuration, in locked memory), this
 * service's region and the "kms" service name in the credential scope,
 * and the access key id a failed request claimed, which goes into its
 * audit record as an unverified claim.
 */
#include "kmsd.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *kmsd_header(const struct kmsd_http_request *req, const char *name)
{
	for (size_t i = 0; i < req->header_count; i++)
		if (!strcasecmp(req->headers[i].name, name))
			return req->headers[i].value;
	return NULL;
}

/* kc_sigv4_verify's lookup: the secret stays in the configuration's locked memory. */
static const char *lookup_secret(const char *access_key_id, void *arg)
{
	const struct kmsd_user *user = kmsd_config_find_user(arg, access_key_id);

	return user ? user->secret : NULL;
}

/* The access key id the Authorization header names, whether or not it verifies. */
static void claimed_key_id(const struct kmsd_http_request *req, char *out, size_t len)
{
	const char *authorization = kmsd_header(req, "Authorization");
	struct kc_sigv4_auth auth;
	struct kc_error ignored = { 0 };

	out[0] = '\0';
	if (authorization &&
	    kc_sigv4_parse_authorization(authorization, &auth, &ignored) == KC_OK)
		snprintf(out, len, "%s", auth.access_key_id);
}

enum kc_status kmsd_authenticate(const struct kmsd *kmsd, const struct kmsd_http_request *req,
		const struct kmsd_user **user, char *claimed, size_t claimed_len,
		struct kc_error *err)
{
	const struct kmsd_config *cfg = kmsd->config;
	struct kc_sigv4_request signed_request = {
		.method = req->method, .path = req->path, .query = req->query,
		.headers = req->headers, .header_count = req->header_count,
		.body = req->body, .body_len = req->body_len,
	};
	struct kc_sigv4_verify_params params = {
		.region = cfg->region, .service = "kms", .now = time(NULL),
		.lookup = lookup_secret, .arg = (void *)cfg, .cache = kmsd->sigv4_cache,
	};
	struct kc_sigv4_identity who;
	enum kc_status status;

	*user = NULL;
	claimed_key_id(req, claimed, claimed_len);
	status = kc_sigv4_verify(&signed_request, &params, &who, err);
	if (status != KC_OK)
		return status;
	*user = kmsd_config_find_user(cfg, who.access_key_id);
	if (!*user)   /* verified against a secret we just looked up: cannot happen */
		return kc_fail(err, KC_INTERNAL, "verified access key %s has no user",
			       who.access_key_id);
	return KC_OK;
}
