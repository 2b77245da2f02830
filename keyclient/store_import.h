/*
 * store_import.h - the key store's side of importing key material
 * (store_import.c), for api_import.c and the maintenance pass:
 *
 *   - the parameters of the last GetParametersForImport for a key: its
 *     import token and its RSA wrapping key (the private half sealed
 *     under the root key), valid for 24 hours, spent by a successful
 *     ImportKeyMaterial;
 *   - the fingerprint of the key material a key was first given, kept
 *     for the life of the key (through DeleteImportedKeyMaterial and
 *     expiry) so that importing different material later is refused,
 *     as AWS refuses it;
 *   - the expiry of imported material whose ValidTo has passed.
 *
 * Both live in the import_params table (one row per key, deleted with
 * the key). The fingerprint column is added to it in place, once, the
 * first time it is needed (kc_store_import_init).
 */
#ifndef KMSFS_KEYCLIENT_STORE_IMPORT_H
#define KMSFS_KEYCLIENT_STORE_IMPORT_H

#include <stdint.h>

#include "local_internal.h"

#define KC_IMPORT_FINGERPRINT_LEN 32

struct kc_import_params {
	uint8_t *token;                    /* malloc'ed */
	size_t token_len;
	uint8_t *wrapping_sealed;          /* wrapping private key sealed under the root key; malloc'ed */
	size_t wrapping_sealed_len;
	char wrapping_spec[KC_SPEC_MAX];   /* WrappingKeySpec: RSA_2048, ... */
	char wrapping_algorithm[KC_SPEC_MAX];   /* WrappingAlgorithm: RSAES_OAEP_SHA_256, ... */
	int64_t expires;                   /* unix seconds */
};

/* Adds the fingerprint column to import_params when missing. Idempotent, safe across processes. */
enum kc_status kc_store_import_init(struct kc_store *store, struct kc_error *err);

/* Replaces the key's outstanding parameters (its fingerprint stays). */
enum kc_status kc_store_put_import_params(struct kc_store *store, const char *key_id,
		const struct kc_import_params *params, struct kc_error *err);
/* The outstanding parameters; KC_NOT_FOUND when there are none (never asked, or spent). */
enum kc_status kc_store_get_import_params(struct kc_store *store, const char *key_id,
		struct kc_import_params *params, struct kc_error *err);
void kc_import_params_free(struct kc_import_params *params);
/* Spends them: token and wrapping key are erased; the fingerprint stays. */
enum kc_status kc_store_spend_import_params(struct kc_store *store, const char *key_id,
		struct kc_error *err);

/* *present 0 when the key never had material imported. */
enum kc_status kc_store_get_import_fingerprint(struct kc_store *store, const char *key_id,
		uint8_t fingerprint[KC_IMPORT_FINGERPRINT_LEN], int *present, struct kc_error *err);
enum kc_status kc_store_set_import_fingerprint(struct kc_store *store, const char *key_id,
		const uint8_t fingerprint[KC_IMPORT_FINGERPRINT_LEN], struct kc_error *err);

/*
 * Maintenance: imported material whose ValidTo is at or before now is
 * deleted, and its key goes to PendingImport (a key pending deletion
 * stays so), as AWS expires it. kmsd calls this with kc_api_maintenance.
 */
enum kc_status kc_import_expire_due(struct kc_local *local, int64_t now, struct kc_error *err);

#endif /* KMSFS_KEYCLIENT_STORE_IMPORT_H */
