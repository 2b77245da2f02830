/*
 * kms_api.h - the local engine as an AWS KMS API: one call per
 * TrentService operation, JSON in and JSON out.
 *
 * kmsd parses the HTTP body, verifies SigV4, resolves the caller, and
 * hands the rest to kc_api_call(); the remote transport's tests use the
 * same request shapes. Requests and responses are exactly the AWS KMS
 * JSON 1.1 bodies (field names as in the API reference, blobs base64).
 * Errors come back as a status whose AWS __type is kc_status_type() and
 * whose HTTP status is kc_status_http(), with err->message as "message".
 *
 * Plaintext in a response (Decrypt's Plaintext, GenerateDataKey's) is
 * base64 text inside the jansson object; the caller wipes it with
 * kc_api_result_free() as soon as the body is sent.
 */
#ifndef KMSFS_KMS_API_H
#define KMSFS_KMS_API_H

#include <jansson.h>

#include "keyclient.h"

struct kc_api_result {
	json_t *response;            /* the success body (an object) */
	char key_arn[KC_ARN_MAX];    /* the key the request acted on ("" if none): audit resources */
	int read_only;               /* CloudTrail readOnly */
	/*
	 * CloudTrail's requestParameters and responseElements: the request
	 * and response with every secret or bulky blob removed (Plaintext,
	 * CiphertextBlob, key material, import token, signatures, messages),
	 * field names in CloudTrail's camelCase. NULL when there are none.
	 */
	json_t *audit_request;
	json_t *audit_response;
};

/*
 * Run operation ("GenerateDataKey", ...) with request (a JSON object,
 * borrowed) for caller. KC_OK fills result (free with kc_api_result_free);
 * otherwise err has the AWS type and message, and result->key_arn /
 * audit_request are still filled as far as known, for the audit record.
 * Unknown operation: KC_UNKNOWN_OPERATION. kc must be a local engine.
 */
enum kc_status kc_api_call(struct keyclient *kc, const char *operation, json_t *request,
		const struct kc_caller *caller, struct kc_api_result *result,
		struct kc_error *err);
/* Wipes plaintext fields in the response before freeing. Idempotent. */
void kc_api_result_free(struct kc_api_result *result);

/*
 * Background work a key service does on its own: keys whose deletion
 * window has passed are deleted, keys due for automatic rotation rotate.
 * kmsd calls this once a minute (and at start). now: unix seconds.
 */
enum kc_status kc_api_maintenance(struct keyclient *kc, int64_t now, struct kc_error *err);

#endif /* KMSFS_KMS_API_H */
