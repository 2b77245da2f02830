/*
 * local_internal.h - private declarations shared inside keyclient/.
 *
 * The pieces the local engine is built from, one per file:
 *   context.c  canonical encryption-context bytes (the AAD of every blob)
 *   uuid.c     UUID v4 generation, parsing and formatting
 *   keyref.c   key references: key id, key ARN, alias name, alias ARN
 *   seal.c     small secrets sealed under the root key (material, verifier)
 *   blob.c     the versioned ciphertext blob a data key travels in
 *   store.c    the SQLite key store (keystore.db)
 *   rootkey.c  where the root key comes from: passphrase, key file, token
 *   pkcs11.c   the PKCS#11 token that keeps a store's root key wrapped
 *   authz.c    the one authorization decision
 *   local*.c   the engine: unlock, data-key operations, key management
 *
 * Nothing outside keyclient/ includes this header except its unit tests.
 */
#ifndef KMSFS_KEYCLIENT_LOCAL_INTERNAL_H
#define KMSFS_KEYCLIENT_LOCAL_INTERNAL_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "keyclient.h"

struct kc_local;

/* ---- names ---------------------------------------------------------------- */

#define KC_LOCAL_ARN_PREFIX "arn:aws:kms:local:000000000000:"
#define KC_KEY_ARN_PREFIX KC_LOCAL_ARN_PREFIX "key/"
#define KC_ALIAS_ARN_PREFIX KC_LOCAL_ARN_PREFIX "alias/"
#define KC_ALIAS_PREFIX "alias/"
#define KC_ALIAS_RESERVED_PREFIX "alias/aws/"
#define KC_ALIAS_MAX 256            /* longest alias name, "alias/" included */
#define KC_DESCRIPTION_MAX 255      /* fits kc_key_info.description (the CLI's keys) */
#define KC_API_DESCRIPTION_MAX 8192 /* the KMS API's limit */
#define KC_PRINCIPAL_MAX 127        /* fits kc_key_info.principals[] */
#define KC_STORE_DB_NAME "keystore.db"

/* ---- sizes ------------------------------------------------------------------ */

#define KC_UUID_LEN 16              /* binary UUID */
#define KC_STORE_ID_LEN 16
#define KC_KEY_LEN 32               /* root key and key material (XChaCha20) */
#define KC_SALT_LEN 16              /* crypto_pwhash_SALTBYTES */
#define KC_NONCE_LEN 24             /* XChaCha20-Poly1305 */
#define KC_TAG_LEN 16
#define KC_SEALED_LEN(n) (KC_NONCE_LEN + (n) + KC_TAG_LEN)
#define KC_SEALED_KEY_LEN KC_SEALED_LEN(KC_KEY_LEN)
#define KC_VERIFIER_PLAIN_LEN 32
#define KC_VERIFIER_LEN KC_SEALED_LEN(KC_VERIFIER_PLAIN_LEN)
#define KC_DATA_KEY_MAX 1024        /* GenerateDataKey NumberOfBytes limit */
#define KC_ENCRYPT_MAX 4096         /* Encrypt plaintext limit */

/* ---- context.c: canonical encryption context ------------------------------ */

/*
 * u16 pair count, then for each pair sorted by key (bytewise): u16 key
 * length, key, u16 value length, value; big-endian. NULL ctx = no pairs.
 * Duplicate or empty keys, over-long strings: KC_VALIDATION.
 * *out is malloc'ed (never NULL on success); free() it.
 */
enum kc_status kc_context_serialize(const struct kc_context *ctx, uint8_t **out,
		size_t *out_len, struct kc_error *err);

/* ---- uuid.c ----------------------------------------------------------------- */

/* Random (v4) UUID, lower-case text. */
void kc_uuid_v4(char out[KC_KEY_ID_LEN + 1]);
/* Text (either case) -> binary. 0 or -1 when not a UUID. */
int kc_uuid_parse(const char *text, uint8_t out[KC_UUID_LEN]);
void kc_uuid_format(const uint8_t in[KC_UUID_LEN], char out[KC_KEY_ID_LEN + 1]);

/* ---- keyref.c: key references ----------------------------------------------- */

enum kc_ref_kind { KC_REF_KEY_ID, KC_REF_ALIAS };

/*
 * Classify ref: a UUID or key ARN gives KC_REF_KEY_ID and the lower-case
 * key id in name; "alias/x" or an alias ARN gives KC_REF_ALIAS and
 * "alias/x" in name. Anything else: KC_NOT_FOUND naming ref.
 */
enum kc_status kc_keyref_parse(const char *ref, const char *arn_prefix, enum kc_ref_kind *kind,
		char name[KC_ALIAS_MAX + 1], struct kc_error *err);
/* KC_OK or KC_INVALID_ALIAS with the reason. */
enum kc_status kc_alias_name_check(const char *alias_name, struct kc_error *err);
void kc_key_arn(const char *key_id, char out[KC_ARN_MAX]);   /* the embedded engine's */
/* This engine's key ARN and alias ARN. */
void kc_local_key_arn(const struct kc_local *local, const char *key_id, char out[KC_ARN_MAX]);
void kc_local_alias_arn(const struct kc_local *local, const char *alias_name, char out[KC_ARN_MAX]);

/* ---- seal.c: secrets sealed under the root key ------------------------------- */

/* out = nonce ‖ ciphertext ‖ tag, KC_SEALED_LEN(in_len) bytes. */
void kc_seal(const uint8_t key[KC_KEY_LEN], const uint8_t *aad, size_t aad_len,
		const uint8_t *in, size_t in_len, uint8_t *out);
/* Inverse of kc_seal; out gets sealed_len - KC_SEALED_LEN(0) bytes. 0 or -1. */
int kc_unseal(const uint8_t key[KC_KEY_LEN], const uint8_t *aad, size_t aad_len,
		const uint8_t *sealed, size_t sealed_len, uint8_t *out);
/* AAD binding sealed key material to its key and version: key id ‖ u32 version. */
#define KC_MATERIAL_AAD_LEN (KC_UUID_LEN + 4)
void kc_material_aad(const uint8_t key_uuid[KC_UUID_LEN], uint32_t version,
		uint8_t out[KC_MATERIAL_AAD_LEN]);

/* ---- blob.c: ciphertext blobs ------------------------------------------------ */

/*
 * u8 version (1) ‖ 16 store id ‖ 16 key id ‖ u32 material version ‖
 * 24 nonce ‖ ciphertext ‖ 16 tag. AAD = the header ‖ canonical context.
 */
#define KC_BLOB_VERSION 1
#define KC_BLOB_HEADER_LEN (1 + KC_STORE_ID_LEN + KC_UUID_LEN + 4 + KC_NONCE_LEN)
#define KC_BLOB_OVERHEAD (KC_BLOB_HEADER_LEN + KC_TAG_LEN)

struct kc_blob_header {
	uint8_t version;
	uint8_t store_id[KC_STORE_ID_LEN];
	uint8_t key_id[KC_UUID_LEN];
	uint32_t material_version;
	uint8_t nonce[KC_NONCE_LEN];
};

/* KC_INVALID_CIPHERTEXT when too short or of an unknown version. */
enum kc_status kc_blob_parse_header(const uint8_t *blob, size_t blob_len,
		struct kc_blob_header *hdr, struct kc_error *err);
/* Fresh nonce; *blob malloc'ed. hdr->nonce is overwritten. */
enum kc_status kc_blob_seal(const uint8_t material[KC_KEY_LEN], struct kc_blob_header *hdr,
		const uint8_t *context, size_t context_len,
		const uint8_t *plaintext, size_t plaintext_len,
		uint8_t **blob, size_t *blob_len, struct kc_error *err);
/* KC_INVALID_CIPHERTEXT on any authentication failure (plaintext wiped). */
enum kc_status kc_blob_open(const uint8_t material[KC_KEY_LEN],
		const uint8_t *blob, size_t blob_len,
		const uint8_t *context, size_t context_len,
		uint8_t *plaintext, size_t plaintext_cap, size_t *plaintext_len,
		struct kc_error *err);

/* ---- rootkey.c / pkcs11.c: where a store's root key comes from ---------------------- */

/* Recorded in the store's meta row as "passphrase", "keyfile" or "pkcs11". */
enum kc_root_source { KC_ROOT_PASSPHRASE, KC_ROOT_KEYFILE, KC_ROOT_PKCS11 };

/*
 * A PKCS#11 store keeps its random root key encrypted by the token's AES
 * key (AES-256-GCM in the token): u8 format (1) ‖ 12 IV ‖ ciphertext ‖
 * 16 tag; AAD = the format byte ‖ store id.
 */
#define KC_WRAP_FORMAT 1
#define KC_WRAP_IV_LEN 12
#define KC_WRAPPED_ROOT_LEN (1 + KC_WRAP_IV_LEN + KC_KEY_LEN + KC_TAG_LEN)
#define KC_PKCS11_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"

struct kc_store_meta;

const char *kc_root_source_name(enum kc_root_source source);
/* Inverse of kc_root_source_name: 0, or -1 for a name it does not know. */
int kc_root_source_parse(const char *name, enum kc_root_source *source);
/* The one source opts names; KC_VALIDATION when none, several, or an empty one. */
enum kc_status kc_root_source_pick(const struct kc_local_options *opts,
		enum kc_root_source *source, struct kc_error *err);
/*
 * A new store (meta holds its store id and salt): a root key from opts'
 * source into root_key (secure memory), and what the store must keep to
 * get it again (root_source, Argon2id limits or the wrapped root key).
 */
enum kc_status kc_root_key_create(const struct kc_local_options *opts,
		struct kc_store_meta *meta, uint8_t root_key[KC_KEY_LEN], struct kc_error *err);
/*
 * An existing store: the root key from opts, which must name the source
 * the store was made with (KC_VALIDATION saying which otherwise). Whether
 * it is the right key is the verifier's to say: see kc_root_key_wrong.
 */
enum kc_status kc_root_key_unlock(const struct kc_local_options *opts,
		const struct kc_store_meta *meta, uint8_t root_key[KC_KEY_LEN], struct kc_error *err);
/* KC_WRONG_PASSPHRASE naming the source that gave a key the verifier refused. */
enum kc_status kc_root_key_wrong(const struct kc_local_options *opts,
		const struct kc_store_meta *meta, struct kc_error *err);
/* HKDF-SHA256 (RFC 5869) with KC_KEY_LEN bytes of output. 0 or -1. */
int kc_hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
		const char *info, uint8_t out[KC_KEY_LEN]);

/* An RFC 7512 URI taken apart; percent-escapes decoded. */
#define KC_P11_LABEL_MAX 128
struct kc_pkcs11_uri {
	char token[33];                    /* token label ("" = any token) */
	char serial[17], manufacturer[33], model[17];   /* more token filters ("" = any) */
	char object[KC_P11_LABEL_MAX + 1]; /* the AES key's CKA_LABEL (required) */
	char module_path[PATH_MAX];        /* "" = not given */
	char pin_source[PATH_MAX];         /* a file whose first line is the PIN; "" = none */
	char *pin;                         /* pin-value, secure memory; NULL = none */
};
/* KC_VALIDATION with the reason (never echoing a PIN). Free with kc_pkcs11_uri_free. */
enum kc_status kc_pkcs11_uri_parse(const char *uri, struct kc_pkcs11_uri *out, struct kc_error *err);
void kc_pkcs11_uri_free(struct kc_pkcs11_uri *uri);
/*
 * Encrypt root_key in the token opts->pkcs11_uri names, with its AES key
 * (generated in the token, sensitive and not extractable, when the
 * token has none by that label yet).
 */
enum kc_status kc_pkcs11_wrap_root(const struct kc_local_options *opts,
		const uint8_t store_id[KC_STORE_ID_LEN], const uint8_t root_key[KC_KEY_LEN],
		uint8_t wrapped[KC_WRAPPED_ROOT_LEN], struct kc_error *err);
/* Inverse, in the token. A key that does not open it: KC_WRONG_PASSPHRASE. */
enum kc_status kc_pkcs11_unwrap_root(const struct kc_local_options *opts,
		const uint8_t store_id[KC_STORE_ID_LEN], const uint8_t wrapped[KC_WRAPPED_ROOT_LEN],
		uint8_t root_key[KC_KEY_LEN], struct kc_error *err);

/* ---- store.c: the SQLite key store ---------------------------------------------- */

struct kc_store;

struct kc_store_meta {
	uint8_t store_id[KC_STORE_ID_LEN];
	uid_t owner_uid;
	enum kc_root_source root_source;
	uint8_t salt[KC_SALT_LEN];         /* Argon2id salt; the key file's HKDF salt */
	uint64_t opslimit;                 /* Argon2id; 0 unless root_source is passphrase */
	uint64_t memlimit;
	uint8_t wrapped_root[KC_WRAPPED_ROOT_LEN];   /* pkcs11 stores only */
	uint8_t verifier[KC_VERIFIER_LEN];
};

#define KC_SPEC_MAX 32              /* "SYMMETRIC_DEFAULT", "ECC_NIST_P384", ... */

struct kc_store_key {
	char key_id[KC_KEY_ID_LEN + 1];
	char description[KC_API_DESCRIPTION_MAX + 1];
	enum kc_key_state state;
	int64_t created;
	uint32_t material_versions;
	/* schema 2 (version-1 rows read as symmetric, AWS_KMS, no schedule) */
	char key_spec[KC_SPEC_MAX];        /* KeySpec */
	char key_usage[KC_SPEC_MAX];       /* ENCRYPT_DECRYPT, SIGN_VERIFY, GENERATE_VERIFY_MAC */
	char origin[KC_SPEC_MAX];          /* AWS_KMS, EXTERNAL */
	int64_t deletion_date;             /* unix seconds, 0 unless PendingDeletion */
	int32_t pending_window_days;
	int32_t rotation_days;             /* automatic rotation period, 0 = off */
	int64_t next_rotation;             /* unix seconds, 0 = none scheduled */
	int64_t valid_to;                  /* imported material expiry, 0 = never */
	int has_policy;                    /* 0: the default key policy applies */
};

/* Attributes of a new key beyond its description (kmsd's CreateKey). */
struct kc_key_attrs {
	const char *key_spec;              /* NULL: SYMMETRIC_DEFAULT */
	const char *key_usage;             /* NULL: ENCRYPT_DECRYPT */
	const char *origin;                /* NULL: AWS_KMS */
	const char *policy;                /* NULL: the default key policy */
	const uint8_t *public_key;         /* DER SubjectPublicKeyInfo, asymmetric keys */
	size_t public_key_len;
	enum kc_key_state state;           /* Enabled, or PendingImport for EXTERNAL */
};

/*
 * Seals the material for version into *sealed (malloc'ed, *sealed_len
 * bytes): symmetric keys' 32 bytes or an asymmetric private key's DER.
 */
typedef int (*kc_material_sealer_v)(uint32_t version, uint8_t **sealed, size_t *sealed_len,
		void *arg);

/* Key columns kc_store_set_key_int can change. */
enum kc_key_int_col {
	KC_COL_DELETION_DATE, KC_COL_PENDING_WINDOW, KC_COL_ROTATION_DAYS,
	KC_COL_NEXT_ROTATION, KC_COL_VALID_TO,
};

/* Fills sealed (KC_SEALED_KEY_LEN bytes) with the material for version. 0 or -1. */
typedef int (*kc_material_sealer)(uint32_t version, uint8_t sealed[KC_SEALED_KEY_LEN], void *arg);

/* create: make dir (0700) and keystore.db (0600) if missing. */
enum kc_status kc_store_open(const char *dir, int create, struct kc_store **out,
		struct kc_error *err);
/* exclusive: this process alone, for as long as it is open (kmsd). */
enum kc_status kc_store_open_ex(const char *dir, int create, int exclusive,
		struct kc_store **out, struct kc_error *err);
void kc_store_close(struct kc_store *store);
const char *kc_store_path(const struct kc_store *store);

/* KC_NOT_FOUND when the store has no metadata yet. */
enum kc_status kc_store_get_meta(struct kc_store *store, struct kc_store_meta *meta,
		struct kc_error *err);
/* KC_ALREADY_EXISTS when another process initialised it first. */
enum kc_status kc_store_put_meta(struct kc_store *store, const struct kc_store_meta *meta,
		struct kc_error *err);

/* Key row plus material count, read from the database now. KC_NOT_FOUND. */
enum kc_status kc_store_get_key(struct kc_store *store, const char *key_id,
		struct kc_store_key *key, struct kc_error *err);
/* One transaction: key row (Enabled) and material version 1 from sealer. */
enum kc_status kc_store_create_key(struct kc_store *store, const char *key_id,
		const char *description, int64_t created,
		kc_material_sealer sealer, void *arg, struct kc_error *err);
/* One transaction: material version newest+1 from sealer. */
enum kc_status kc_store_add_material(struct kc_store *store, const char *key_id,
		kc_material_sealer sealer, void *arg, uint32_t *version, struct kc_error *err);
/* version 0: the newest. KC_NOT_FOUND when that version does not exist. */
enum kc_status kc_store_get_material(struct kc_store *store, const char *key_id,
		uint32_t version, uint8_t sealed[KC_SEALED_KEY_LEN], uint32_t *version_out,
		struct kc_error *err);
enum kc_status kc_store_set_state(struct kc_store *store, const char *key_id,
		enum kc_key_state state, struct kc_error *err);
/* Every key id, oldest first; *ids malloc'ed. */
enum kc_status kc_store_list_keys(struct kc_store *store,
		char (**ids)[KC_KEY_ID_LEN + 1], size_t *count, struct kc_error *err);

/* Alias -> key id. KC_NOT_FOUND. */
enum kc_status kc_store_get_alias(struct kc_store *store, const char *alias_name,
		char key_id[KC_KEY_ID_LEN + 1], struct kc_error *err);
/* key_id NULL deletes (KC_NOT_FOUND if absent); otherwise create or re-point. */
enum kc_status kc_store_set_alias(struct kc_store *store, const char *alias_name,
		const char *key_id, struct kc_error *err);
enum kc_status kc_store_key_aliases(struct kc_store *store, const char *key_id,
		char (*names)[256], size_t max, size_t *count, struct kc_error *err);

/* Nested transaction (holds the store lock until the matching end). */
enum kc_status kc_store_txn_begin(struct kc_store *store, struct kc_error *err);
/* Ends one level: the outermost commits unless any level's rc failed. Returns rc (or the commit's error). */
enum kc_status kc_store_txn_end(struct kc_store *store, enum kc_status rc, struct kc_error *err);

/* ---- store_keyattrs.c: what schema 2 added to keys ---------------------------------- */

/* One transaction: key row with attrs, and material version 1 unless sealer is NULL. */
enum kc_status kc_store_create_key_v(struct kc_store *store, const char *key_id,
		const char *description, int64_t created, const struct kc_key_attrs *attrs,
		kc_material_sealer_v sealer, void *arg, struct kc_error *err);
/* One transaction: material newest+1 (rotation_type "AUTOMATIC", "ON_DEMAND" or NULL). */
enum kc_status kc_store_add_material_v(struct kc_store *store, const char *key_id,
		const char *rotation_type, kc_material_sealer_v sealer, void *arg,
		uint32_t *version, struct kc_error *err);
/* version 0: newest. *sealed malloc'ed. KC_NOT_FOUND when absent. */
enum kc_status kc_store_get_material_v(struct kc_store *store, const char *key_id,
		uint32_t version, uint8_t **sealed, size_t *sealed_len, uint32_t *version_out,
		struct kc_error *err);
/* Every material version, oldest first: fn(version, created, rotation_type or NULL). */
enum kc_status kc_store_each_material(struct kc_store *store, const char *key_id,
		int (*fn)(uint32_t version, int64_t created, const char *rotation_type, void *arg),
		void *arg, struct kc_error *err);
/* DeleteImportedKeyMaterial: every version goes. */
enum kc_status kc_store_delete_materials(struct kc_store *store, const char *key_id,
		struct kc_error *err);
enum kc_status kc_store_set_key_int(struct kc_store *store, const char *key_id,
		enum kc_key_int_col col, int64_t value, struct kc_error *err);
enum kc_status kc_store_set_description(struct kc_store *store, const char *key_id,
		const char *description, struct kc_error *err);
/* policy NULL: back to the default policy. */
enum kc_status kc_store_set_policy(struct kc_store *store, const char *key_id,
		const char *policy, struct kc_error *err);
/* *policy malloc'ed, NULL when the key has the default policy. */
enum kc_status kc_store_get_policy(struct kc_store *store, const char *key_id,
		char **policy, struct kc_error *err);
/* *der malloc'ed; KC_NOT_FOUND for symmetric keys. */
enum kc_status kc_store_get_public_key(struct kc_store *store, const char *key_id,
		uint8_t **der, size_t *der_len, struct kc_error *err);
/* Every trace of the key: materials, aliases, tags, grants, import parameters, row. */
enum kc_status kc_store_delete_key(struct kc_store *store, const char *key_id,
		struct kc_error *err);
/* Keys with deletion_date <= now (PendingDeletion), or rotation due <= now. */
enum kc_status kc_store_keys_due(struct kc_store *store, int64_t now, int rotation,
		char (**ids)[KC_KEY_ID_LEN + 1], size_t *count, struct kc_error *err);
/* A counter that changes whenever any process changes the store (cache validation). */
int64_t kc_store_generation(struct kc_store *store);

/* Tags */
enum kc_status kc_store_set_tag(struct kc_store *store, const char *key_id,
		const char *tag_key, const char *tag_value, struct kc_error *err);
/* Absent tag: KC_OK (UntagResource ignores missing keys, as AWS does). */
enum kc_status kc_store_delete_tag(struct kc_store *store, const char *key_id,
		const char *tag_key, struct kc_error *err);
enum kc_status kc_store_each_tag(struct kc_store *store, const char *key_id,
		int (*fn)(const char *tag_key, const char *tag_value, void *arg), void *arg,
		struct kc_error *err);
enum kc_status kc_store_count_tags(struct kc_store *store, const char *key_id,
		size_t *count, struct kc_error *err);

/* Aliases of every key (key_id NULL) or one: fn(name, key_id, created, updated). */
enum kc_status kc_store_each_alias(struct kc_store *store, const char *key_id,
		int (*fn)(const char *name, const char *key_id, int64_t created, int64_t updated,
			void *arg), void *arg, struct kc_error *err);

/* allow=0 on an absent principal: KC_NOT_FOUND. */
enum kc_status kc_store_set_principal(struct kc_store *store, const char *key_id,
		const char *principal, int allow, struct kc_error *err);
enum kc_status kc_store_has_principal(struct kc_store *store, const char *key_id,
		const char *principal, int *listed, struct kc_error *err);
enum kc_status kc_store_key_principals(struct kc_store *store, const char *key_id,
		char (*principals)[128], size_t max, size_t *count, struct kc_error *err);

/* ---- the local engine's state -------------------------------------------------- */

#define KC_REGION_MAX 32
#define KC_ACCOUNT_LEN 12

struct kc_local {
	struct kc_store *store;
	char region[KC_REGION_MAX + 1];    /* "local" for the embedded engine */
	char account[KC_ACCOUNT_LEN + 1];  /* "000000000000" for the embedded engine */
	char arn_prefix[80];               /* "arn:aws:kms:<region>:<account>:" */
	int account_mode;                  /* kmsd: key policies, grants, identity policies */
	uint8_t *root_key;                 /* sodium_malloc'ed, KC_KEY_LEN */
	uint8_t store_id[KC_STORE_ID_LEN];
	uid_t owner_uid;
	char owner_principal[32];          /* "uid:N" */
};

static inline struct kc_local *kc_local_of(struct keyclient *kc)
{
	return kc->impl;
}

/* local.c: resolve any key reference to a key row read from the database now. */
enum kc_status kc_local_find_key(struct kc_local *local, const char *key_ref,
		struct kc_store_key *key, struct kc_error *err);
/* KC_DISABLED / KC_INVALID_STATE unless the key is Enabled. */
enum kc_status kc_local_require_enabled(const struct kc_store_key *key, struct kc_error *err);
/* Unseal the key material (version 0 = newest) into secure memory. */
enum kc_status kc_local_material(struct kc_local *local, const char *key_id,
		uint32_t version, uint8_t material[KC_KEY_LEN], uint32_t *version_out,
		struct kc_error *err);

/*
 * local_data.c: the data-key core both ways in share (the vtable and the
 * KMS API), for a key already found and the caller already authorized.
 */
enum kc_status kc_local_seal_for_key(struct kc_local *local, const struct kc_store_key *key,
		const struct kc_context *ctx, const uint8_t *plaintext, size_t plaintext_len,
		uint8_t **blob, size_t *blob_len, struct kc_error *err);
/* The blob's header, checked to be this store's, and its key's row. */
enum kc_status kc_local_blob_key(struct kc_local *local, const uint8_t *blob, size_t blob_len,
		struct kc_blob_header *hdr, struct kc_store_key *key, struct kc_error *err);
/* KC_INCORRECT_KEY unless expected_ref (may be NULL: anything goes) names key. */
enum kc_status kc_local_check_expected_key(struct kc_local *local, const char *expected_ref,
		const struct kc_store_key *key, struct kc_error *err);
enum kc_status kc_local_open_for_key(struct kc_local *local, const struct kc_store_key *key,
		const struct kc_blob_header *hdr, const uint8_t *blob, size_t blob_len,
		const struct kc_context *ctx, uint8_t *plaintext, size_t plaintext_cap,
		size_t *plaintext_len, struct kc_error *err);

/* local_data.c / local_keys.c: the ops vtable entries. */
enum kc_status kc_local_generate_data_key(struct keyclient *kc, const char *key_id,
		const struct kc_context *ctx, const struct kc_caller *caller,
		uint8_t *plaintext, size_t plaintext_len, uint8_t **blob, size_t *blob_len,
		char key_arn_out[KC_ARN_MAX], struct kc_error *err);
enum kc_status kc_local_decrypt(struct keyclient *kc, const char *key_id,
		const uint8_t *blob, size_t blob_len, const struct kc_context *ctx,
		const struct kc_caller *caller, uint8_t *plaintext, size_t plaintext_cap,
		size_t *plaintext_len, char key_arn_out[KC_ARN_MAX], struct kc_error *err);
enum kc_status kc_local_encrypt(struct keyclient *kc, const char *key_id,
		const uint8_t *plaintext, size_t plaintext_len, const struct kc_context *ctx,
		const struct kc_caller *caller, uint8_t **blob, size_t *blob_len,
		struct kc_error *err);
enum kc_status kc_local_re_encrypt(struct keyclient *kc,
		const uint8_t *blob, size_t blob_len, const struct kc_context *src_ctx,
		const char *dst_key_id, const struct kc_context *dst_ctx,
		const struct kc_caller *caller, uint8_t **new_blob, size_t *new_blob_len,
		char dst_key_arn_out[KC_ARN_MAX], struct kc_error *err);
enum kc_status kc_local_create_key(struct keyclient *kc, const char *description,
		const struct kc_caller *caller, struct kc_key_info *out, struct kc_error *err);
enum kc_status kc_local_describe_key(struct keyclient *kc, const char *key_id,
		const struct kc_caller *caller, struct kc_key_info *out, struct kc_error *err);
enum kc_status kc_local_list_keys(struct keyclient *kc, const struct kc_caller *caller,
		int (*fn)(const struct kc_key_info *info, void *arg), void *arg,
		struct kc_error *err);
enum kc_status kc_local_set_alias(struct keyclient *kc, const char *alias_name,
		const char *target_key_id, const struct kc_caller *caller, struct kc_error *err);
enum kc_status kc_local_set_key_enabled(struct keyclient *kc, const char *key_id,
		int enabled, const struct kc_caller *caller, struct kc_error *err);
enum kc_status kc_local_rotate_key(struct keyclient *kc, const char *key_id,
		const struct kc_caller *caller, struct kc_error *err);
enum kc_status kc_local_set_key_principal(struct keyclient *kc, const char *key_id,
		const char *principal, int allow, const struct kc_caller *caller,
		struct kc_error *err);

/* ---- authz.c --------------------------------------------------------------------- */

/*
 * The single authorization decision for the local engine. key_id is the
 * key the action is on (NULL for account-level actions like kms:CreateKey).
 * KC_OK, or KC_ACCESS_DENIED with AWS's message shape.
 */
enum kc_status kc_authorize(struct kc_local *local, const char *key_id, const char *action,
		const struct kc_caller *caller, struct kc_error *err);
/*
 * The decision for a KMS API request: key (NULL for account-level actions
 * like kms:CreateKey) and the request's encryption context (may be NULL)
 * for policy conditions and grant constraints. An engine without an
 * account uses kc_authorize's rule; one with an account evaluates the
 * key policy, the key's grants and the caller's identity policy: an
 * explicit Deny wins, then an Allow naming the caller, then an Allow of
 * the account (the default policy) combined with the identity policy,
 * then a grant.
 */
/* MalformedPolicyDocumentException unless text is a key policy this engine evaluates. */
enum kc_status kc_policy_check(const char *text, struct kc_error *err);
enum kc_status kc_authorize_request(struct kc_local *local, const struct kc_store_key *key,
		const char *action, const struct kc_context *ctx, const struct kc_caller *caller,
		struct kc_error *err);

#endif /* KMSFS_KEYCLIENT_LOCAL_INTERNAL_H */
