/*
 * dekfmt.c - the user.kmsfs.dek value: its two versions, the encryption
 * context a data key is bound to, and the bucket-key seal.
 *
 * Shared by the mount (filekey.c, bucketkey.c) and the offline tools
 * (offline.c: snapshot copy, rekey, fsck), so there is one definition of
 * what a wrapped data key looks like on disk:
 *   version 1: u8 1 | u8 arn_len | key ARN | CiphertextBlob
 *              (GenerateDataKey with {"kmsfs:volume": id, "kmsfs:file": fid})
 *   version 2: u8 2 | u8 arn_len | key ARN | u16 BE blob_len | bucket key's
 *              CiphertextBlob | 24-byte nonce | sealed data key (32) | tag (16)
 *              (XChaCha20-Poly1305 under the bucket key, AAD below)
 * Decoders check every length, so a hostile value is rejected, not read past.
 */
#include <errno.h>
#include <string.h>

#include "fs_internal.h"

void kfs_dek_context(struct kc_context *ctx, const char *volume_id, const char *file_id_hex)
{
	ctx->count = 0;
	kc_context_add(ctx, "kmsfs:volume", volume_id);
	if (file_id_hex)
		kc_context_add(ctx, "kmsfs:file", file_id_hex);
}

int kfs_dek_encode_v1(const char *key_arn, const uint8_t *blob, size_t blob_len,
		      uint8_t *out, size_t *out_len)
{
	size_t arn_len = strlen(key_arn);

	if (arn_len == 0 || arn_len > 255 || 2 + arn_len + blob_len > KMSFS_DEK_XATTR_MAX)
		return -EINVAL;
	out[0] = KFS_DEK_XATTR_V1;
	out[1] = (uint8_t)arn_len;
	memcpy(out + 2, key_arn, arn_len);
	memcpy(out + 2 + arn_len, blob, blob_len);
	*out_len = 2 + arn_len + blob_len;
	return 0;
}

int kfs_dek_decode_v1(const uint8_t *value, size_t len, struct kfs_dek_fields *f)
{
	size_t arn_len;

	memset(f, 0, sizeof(*f));
	if (len < 3 || value[0] != KFS_DEK_XATTR_V1)
		return -EIO;
	arn_len = value[1];
	if (len < 2 + arn_len + 1 || arn_len >= KC_ARN_MAX)
		return -EIO;
	memcpy(f->key_arn, value + 2, arn_len);
	f->key_arn[arn_len] = '\0';
	f->blob = value + 2 + arn_len;
	f->blob_len = len - 2 - arn_len;
	return 0;
}

int kfs_dek_encode_v2(const struct kfs_dek_fields *f, uint8_t *out, size_t *out_len)
{
	size_t arn_len = strlen(f->key_arn), pos = 0;

	if (arn_len == 0 || arn_len > 255 || f->blob_len == 0 || f->blob_len > 0xffff ||
	    2 + arn_len + 2 + f->blob_len + KFS_BUCKET_NONCE_LEN + KMSFS_DEK_LEN +
	    KMSFS_TAG_LEN > KMSFS_DEK_XATTR_MAX)
		return -EINVAL;
	out[pos++] = KFS_DEK_XATTR_BUCKET;
	out[pos++] = (uint8_t)arn_len;
	memcpy(out + pos, f->key_arn, arn_len);
	pos += arn_len;
	out[pos++] = (uint8_t)(f->blob_len >> 8);
	out[pos++] = (uint8_t)f->blob_len;
	memcpy(out + pos, f->blob, f->blob_len);
	pos += f->blob_len;
	memcpy(out + pos, f->nonce, KFS_BUCKET_NONCE_LEN);
	pos += KFS_BUCKET_NONCE_LEN;
	memcpy(out + pos, f->sealed, KMSFS_DEK_LEN);
	pos += KMSFS_DEK_LEN;
	memcpy(out + pos, f->tag, KMSFS_TAG_LEN);
	*out_len = pos + KMSFS_TAG_LEN;
	return 0;
}

/* Nothing may follow the tag. */
int kfs_dek_decode_v2(const uint8_t *value, size_t len, struct kfs_dek_fields *f)
{
	size_t arn_len, pos;

	memset(f, 0, sizeof(*f));
	if (len < 2 || value[0] != KFS_DEK_XATTR_BUCKET)
		return -EIO;
	arn_len = value[1];
	if (arn_len == 0 || arn_len >= KC_ARN_MAX || len < 2 + arn_len + 2)
		return -EIO;
	memcpy(f->key_arn, value + 2, arn_len);
	f->key_arn[arn_len] = '\0';
	pos = 2 + arn_len;
	f->blob_len = (size_t)value[pos] << 8 | value[pos + 1];
	pos += 2;
	if (f->blob_len == 0 ||
	    len != pos + f->blob_len + KFS_BUCKET_NONCE_LEN + KMSFS_DEK_LEN + KMSFS_TAG_LEN)
		return -EIO;
	f->blob = value + pos;
	f->nonce = f->blob + f->blob_len;
	f->sealed = f->nonce + KFS_BUCKET_NONCE_LEN;
	f->tag = f->sealed + KMSFS_DEK_LEN;
	return 0;
}

/* "kmsfs bucket v1" | volume id (36 chars) | file id (16 bytes): fixed lengths, no separators. */
static void bucket_aad(const char *volume_id, const struct kmsfs_header *hdr,
		       uint8_t aad[KFS_BUCKET_AAD_LEN])
{
	size_t label_len = sizeof(KFS_BUCKET_AAD_LABEL) - 1;

	memcpy(aad, KFS_BUCKET_AAD_LABEL, label_len);
	memcpy(aad + label_len, volume_id, KFS_VOLUME_ID_LEN);
	memcpy(aad + label_len + KFS_VOLUME_ID_LEN, hdr->file_id, KMSFS_FILE_ID_LEN);
}

int kfs_dek_bucket_seal(const uint8_t *bucket_key, const char *key_arn, const uint8_t *blob,
			size_t blob_len, const char *volume_id, const struct kmsfs_header *hdr,
			const uint8_t *dek, uint8_t *out, size_t *out_len)
{
	uint8_t aad[KFS_BUCKET_AAD_LEN], nonce[KFS_BUCKET_NONCE_LEN];
	uint8_t sealed[KMSFS_DEK_LEN], tag[KMSFS_TAG_LEN];
	struct kfs_dek_fields f = { .blob = blob, .blob_len = blob_len, .nonce = nonce,
				    .sealed = sealed, .tag = tag };
	int ret;

	if (strlen(volume_id) != KFS_VOLUME_ID_LEN || strlen(key_arn) >= KC_ARN_MAX)
		return -EINVAL;
	memcpy(f.key_arn, key_arn, strlen(key_arn) + 1);
	kmsfs_random(nonce, sizeof(nonce));
	bucket_aad(volume_id, hdr, aad);
	ret = kmsfs_aead_seal(KFS_BUCKET_CIPHER, bucket_key, KFS_BUCKET_KEY_LEN, nonce,
			      sizeof(nonce), aad, sizeof(aad), dek, KMSFS_DEK_LEN, sealed, tag);
	if (ret == 0)
		ret = kfs_dek_encode_v2(&f, out, out_len);
	return ret;
}

int kfs_dek_bucket_open(const uint8_t *bucket_key, const char *volume_id,
			const struct kmsfs_header *hdr, const struct kfs_dek_fields *f,
			uint8_t *dek)
{
	uint8_t aad[KFS_BUCKET_AAD_LEN];

	if (strlen(volume_id) != KFS_VOLUME_ID_LEN)
		return -EINVAL;
	bucket_aad(volume_id, hdr, aad);
	return kmsfs_aead_open(KFS_BUCKET_CIPHER, bucket_key, KFS_BUCKET_KEY_LEN, f->nonce,
			       KFS_BUCKET_NONCE_LEN, aad, sizeof(aad), f->sealed, KMSFS_DEK_LEN,
			       f->tag, KMSFS_TAG_LEN, dek);
}

void kfs_dek_audit_bucket(struct kc_audit *audit, const char *event_name,
			  const char *volume_id, const struct kmsfs_header *hdr, const char *path,
			  const struct kc_caller *caller, const char *key_arn,
			  const struct kc_error *err)
{
	char file_id[2 * KMSFS_FILE_ID_LEN + 1];
	struct kc_context ctx;
	struct kc_audit_event ev = {
		.event_source = "kmsfs",
		.event_name = event_name,
		.caller = caller,
		.key_id = key_arn,
		.ctx = &ctx,
		.path = path,
		.block_index = -1,
		.err = err,
		.key_arn = key_arn,
		.bucket_key = 1,
	};

	if (!audit)
		return;
	kmsfs_file_id_hex(hdr, file_id);
	kfs_dek_context(&ctx, volume_id, file_id);
	kc_audit_record(audit, &ev);
}
