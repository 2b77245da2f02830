/*
 * crypto.h - public interface of kmsfs's crypto module.
 *
 * Three things live behind this header:
 *   - secure memory for key material (libsodium guarded, locked pages);
 *   - a generic AEAD wrapper (AES-GCM via OpenSSL EVP, XChaCha20-Poly1305
 *     via libsodium) used by the file format and by the key service;
 *   - file format 1 (DESIGN.md section 3): header encode/decode, the
 *     plaintext <-> backing size mapping, and sealing/opening runs of
 *     blocks with the per-file data key.
 *
 * Nothing here knows about FUSE, paths, key services or audit logs.
 * Functions return 0 (or a length) on success and a negative errno on
 * failure, the same convention the FUSE layer passes to the kernel.
 */
#ifndef KMSFS_CRYPTO_H
#define KMSFS_CRYPTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- library setup ---------------------------------------------------- */

/* Initialise libsodium and OpenSSL; call once before anything else. */
int kmsfs_crypto_init(void);

/* ---- secure memory ---------------------------------------------------- */

/*
 * Zeroed, mlock'ed, excluded from core dumps: sodium_malloc memory (up to
 * 64 KiB as slots of shared locked chunks, keypool.c). NULL on failure.
 */
void *kmsfs_secure_alloc(size_t len);
/* Wipes and frees memory from kmsfs_secure_alloc; NULL is fine. */
void kmsfs_secure_free(void *ptr);
/* Constant-time comparison: 0 if equal. */
int kmsfs_ct_memcmp(const void *a, const void *b, size_t len);
/* Fill with bytes from the OS CSPRNG. */
void kmsfs_random(void *buf, size_t len);
/* Wipe memory in a way the compiler cannot elide. */
void kmsfs_wipe(void *buf, size_t len);

/* ---- AEAD ------------------------------------------------------------- */

enum kmsfs_cipher {
	KMSFS_CIPHER_NONE = 0,
	KMSFS_CIPHER_AES_256_GCM = 1,          /* OpenSSL EVP, the default */
	KMSFS_CIPHER_XCHACHA20_POLY1305 = 2,   /* libsodium */
};

#define KMSFS_TAG_LEN 16

/* "aes-256-gcm" / "xchacha20-poly1305" <-> enum. Unknown name: KMSFS_CIPHER_NONE. */
enum kmsfs_cipher kmsfs_cipher_from_name(const char *name);
const char *kmsfs_cipher_name(enum kmsfs_cipher cipher);
/* Nonce length used by the file format for this cipher (12 or 24). */
size_t kmsfs_cipher_nonce_len(enum kmsfs_cipher cipher);

/*
 * One-shot AEAD. For AES-GCM the key may be 16, 24 or 32 bytes and the
 * nonce any non-zero length (so Wycheproof can exercise the wrapper); the
 * file format itself only ever uses 32-byte keys and 12-byte nonces.
 * XChaCha20-Poly1305 needs a 32-byte key and a 24-byte nonce.
 * The tag is always KMSFS_TAG_LEN bytes; open rejects any other tag_len.
 * out must hold in_len bytes. Returns 0, -EINVAL for bad parameters,
 * -EBADMSG when authentication fails (out is then wiped).
 */
int kmsfs_aead_seal(enum kmsfs_cipher cipher,
		    const uint8_t *key, size_t key_len,
		    const uint8_t *nonce, size_t nonce_len,
		    const uint8_t *aad, size_t aad_len,
		    const uint8_t *in, size_t in_len,
		    uint8_t *out, uint8_t tag[KMSFS_TAG_LEN]);
int kmsfs_aead_open(enum kmsfs_cipher cipher,
		    const uint8_t *key, size_t key_len,
		    const uint8_t *nonce, size_t nonce_len,
		    const uint8_t *aad, size_t aad_len,
		    const uint8_t *in, size_t in_len,
		    const uint8_t *tag, size_t tag_len,
		    uint8_t *out);

/* ---- file format 1 ---------------------------------------------------- */

#define KMSFS_FORMAT_VERSION 1
#define KMSFS_BLOCK_SIZE 4096
#define KMSFS_FILE_ID_LEN 16
#define KMSFS_DEK_LEN 32
/*
 * Header, 32 bytes, all integers big-endian:
 *   0  magic "KMFS" | 4 u16 version | 6 u16 cipher id | 8 u32 block size
 *   12 u32 reserved (zero) | 16 file id (16 random bytes)
 */
#define KMSFS_HEADER_LEN 32

struct kmsfs_header {
	uint16_t version;
	enum kmsfs_cipher cipher;
	uint32_t block_size;
	uint8_t file_id[KMSFS_FILE_ID_LEN];
};

/* A fresh header with a random file ID. */
void kmsfs_header_new(struct kmsfs_header *hdr, enum kmsfs_cipher cipher);
void kmsfs_header_encode(const struct kmsfs_header *hdr, uint8_t out[KMSFS_HEADER_LEN]);
/* -EIO if too short, bad magic, unknown version/cipher or bad block size. */
int kmsfs_header_decode(const uint8_t *in, size_t len, struct kmsfs_header *hdr);
/* Lower-case hex of the file ID, as used in the encryption context (33 bytes with NUL). */
void kmsfs_file_id_hex(const struct kmsfs_header *hdr, char out[2 * KMSFS_FILE_ID_LEN + 1]);

/* Bytes a stored block adds to its plaintext: nonce + tag. */
size_t kmsfs_block_overhead(enum kmsfs_cipher cipher);
/* Stored size of a full block. */
size_t kmsfs_stored_block_len(enum kmsfs_cipher cipher);
/* Plaintext size from backing size (header included); never decrypts. */
uint64_t kmsfs_plain_size(uint64_t backing_size, enum kmsfs_cipher cipher);
/* Backing size for a plaintext size (header included). 0 plaintext -> header only. */
uint64_t kmsfs_backing_size(uint64_t plain_size, enum kmsfs_cipher cipher);
/* Backing offset where block number `block` starts. */
uint64_t kmsfs_block_offset(uint64_t block, enum kmsfs_cipher cipher);

/*
 * A file's key state: the header and the plaintext DEK in secure memory.
 * Safe to use from several threads at once (no mutable state after new).
 */
struct kmsfs_filekey;

/* Copies dek (KMSFS_DEK_LEN bytes) into secure memory. NULL on ENOMEM. */
struct kmsfs_filekey *kmsfs_filekey_new(const struct kmsfs_header *hdr, const uint8_t *dek);
void kmsfs_filekey_free(struct kmsfs_filekey *fk);
const struct kmsfs_header *kmsfs_filekey_header(const struct kmsfs_filekey *fk);

/*
 * Seal a run of plaintext blocks starting at block index first_block.
 * plain_len: every block but the last is KMSFS_BLOCK_SIZE; the last may be
 * short (1..KMSFS_BLOCK_SIZE). stored_out must hold the stored length of
 * those blocks. Fresh random nonce per block; AAD = header ‖ block index.
 * Returns the number of stored bytes written, or a negative errno.
 */
ssize_t kmsfs_blocks_seal(const struct kmsfs_filekey *fk, uint64_t first_block,
			  const uint8_t *plain, size_t plain_len, uint8_t *stored_out);

/*
 * Open a run of stored blocks starting at first_block. stored_len: every
 * block but the last is a full stored block; the last may be short. An
 * all-zero stored block is a hole and yields zeros. plain_out must hold
 * the plaintext length. Returns the plaintext length, or -EIO when a block
 * fails authentication or is malformed; then *bad_block (if not NULL) names
 * the first bad block index and plain_out is wiped.
 */
ssize_t kmsfs_blocks_open(const struct kmsfs_filekey *fk, uint64_t first_block,
			  const uint8_t *stored, size_t stored_len, uint8_t *plain_out,
			  uint64_t *bad_block);

#endif /* KMSFS_CRYPTO_H */
