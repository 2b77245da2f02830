/*
 * store_grants.h - grants, and the parts of account-mode (kmsd)
 * authorization that grants and key policies need beyond
 * kc_authorize_request. Private to keyclient/; used by authz.c and
 * api_policy.c.
 *   store_grants.c  the grants table of keystore.db
 *   policy_cache.c  each key's policy compiled once and kept while the
 *                   store is unchanged, so no request parses policy JSON
 *   authz.c         the decisions of CreateGrant (the operations asked
 *                   for), RetireGrant (decided by the grant itself) and
 *                   PutKeyPolicy's lockout safety check
 */
#ifndef KMSFS_KEYCLIENT_STORE_GRANTS_H
#define KMSFS_KEYCLIENT_STORE_GRANTS_H

#include <stddef.h>
#include <stdint.h>

#include "local_internal.h"
#include "policy.h"

#define KC_GRANT_ID_LEN 64          /* hex, as AWS's grant ids */
#define KC_GRANT_NAME_MAX 256       /* CreateGrant Name */
#define KC_GRANT_PRINCIPAL_MAX 256  /* GranteePrincipal, RetiringPrincipal */

/* ---- store_grants.c ---------------------------------------------------------------- */

/*
 * One grant. Read back through a callback, the strings point into the
 * database row and live only until the callback returns.
 */
struct kc_grant {
	const char *grant_id;
	const char *key_id;
	const char *name;          /* NULL: none */
	const char *grantee;
	const char *retiring;      /* NULL: none */
	const char *issuing;       /* arn:aws:iam::<account>:root */
	const char *operations;    /* JSON array of operation names, as CreateGrant took them */
	const char *constraints;   /* JSON object (GrantConstraints), NULL: none */
	const char *token;
	int64_t created;           /* unix seconds */
};

/* Called once per grant; non-zero stops the walk. */
typedef int (*kc_grant_fn)(const struct kc_grant *grant, void *arg);

enum kc_status kc_store_grant_insert(struct kc_store *store, const struct kc_grant *grant,
		struct kc_error *err);
/* KC_NOT_FOUND when key_id has no grant grant_id. */
enum kc_status kc_store_grant_delete(struct kc_store *store, const char *key_id,
		const char *grant_id, struct kc_error *err);
/* fn for the grant grant_id (of any key); KC_NOT_FOUND when there is none. */
enum kc_status kc_store_grant_get(struct kc_store *store, const char *grant_id,
		kc_grant_fn fn, void *arg, struct kc_error *err);
/*
 * The grants of key_id, oldest first; grantee non-NULL: only that
 * grantee's, one lookup in the (key_id, grantee) index (the
 * authorization path runs this on requests no key policy allows).
 */
enum kc_status kc_store_each_grant(struct kc_store *store, const char *key_id,
		const char *grantee, kc_grant_fn fn, void *arg, struct kc_error *err);
/* Every grant, of any key, whose retiring principal is retiring; oldest first. */
enum kc_status kc_store_each_retirable(struct kc_store *store, const char *retiring,
		kc_grant_fn fn, void *arg, struct kc_error *err);

/* ---- policy_cache.c ------------------------------------------------------------------ */

struct kc_policy_entry;

/*
 * The policy of key (its own, or the default key policy of the engine's
 * account when it has none), compiled. Held until kc_policy_entry_release,
 * so a policy replaced meanwhile is freed only after this decision.
 */
enum kc_status kc_policy_cache_get(struct kc_local *local, const struct kc_store_key *key,
		struct kc_policy_entry **entry, struct kc_error *err);
const struct kc_policy *kc_policy_entry_policy(const struct kc_policy_entry *entry);
void kc_policy_entry_release(struct kc_policy_entry *entry);

/* ---- authz.c ---------------------------------------------------------------------------- */

/*
 * kms:CreateGrant on key for caller, with the requested operations
 * (names, and the same as a kc_grant_operations_parse mask) as the
 * policy's kms:GrantOperations. A grant that allows CreateGrant lets its
 * grantee grant no more than its own operations.
 */
enum kc_status kc_authorize_create_grant(struct kc_local *local, const struct kc_store_key *key,
		const char *const *operations, size_t operation_count, uint32_t operations_mask,
		const struct kc_caller *caller, struct kc_error *err);

/*
 * RetireGrant, decided by the grant as AWS does (a key policy has no say):
 * its retiring principal, its grantee when it allows RetireGrant, the
 * account that issued it, or a principal whose identity policy allows
 * kms:RetireGrant in the key's account or in the retiring account.
 */
enum kc_status kc_authorize_retire(struct kc_local *local, const struct kc_store_key *key,
		const struct kc_grant *grant, const struct kc_caller *caller, struct kc_error *err);

/*
 * Would policy (not yet the key's) let caller perform action on key,
 * with its identity policy and no grant? KC_OK or KC_ACCESS_DENIED:
 * PutKeyPolicy's lockout safety check. Always KC_OK for an engine
 * without an account (its owner may do everything).
 */
enum kc_status kc_authorize_with_policy(struct kc_local *local, const struct kc_policy *policy,
		const struct kc_store_key *key, const char *action, const struct kc_caller *caller,
		struct kc_error *err);

#endif /* KMSFS_KEYCLIENT_STORE_GRANTS_H */
