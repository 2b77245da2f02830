"""The real AWS clients against kmsd: the AWS CLI (`aws kms ...`) and boto3 with endpoint_url.

These check that what AWS's own tools send and expect round-trips: key creation and metadata,
listing, Encrypt/Decrypt, GenerateDataKey, and errors arriving as the right exception types.
"""
import base64
import os
import secrets

import pytest

import kmsd_it


# ---- AWS CLI ------------------------------------------------------------------------------------

def test_cli_create_describe_list(aws):
    created = aws("create-key", "--description", "cli key")["KeyMetadata"]
    assert created["Description"] == "cli key"
    assert created["KeyState"] == "Enabled"
    assert created["Arn"] == "arn:aws:kms:%s:%s:key/%s" % (kmsd_it.REGION, kmsd_it.ACCOUNT, created["KeyId"])

    described = aws("describe-key", "--key-id", created["KeyId"])["KeyMetadata"]
    assert described["KeyId"] == created["KeyId"]
    assert described["Arn"] == created["Arn"]
    # by ARN too
    assert aws("describe-key", "--key-id", created["Arn"])["KeyMetadata"]["KeyId"] == created["KeyId"]

    listed = aws("list-keys")["Keys"]
    assert created["KeyId"] in [k["KeyId"] for k in listed]


def test_cli_encrypt_decrypt_round_trip(aws, kmsd, tmp_path):
    key_id = aws("create-key")["KeyMetadata"]["KeyId"]
    plaintext = secrets.token_bytes(100)
    src = tmp_path / "plain.bin"
    src.write_bytes(plaintext)
    enc = aws("encrypt", "--key-id", key_id, "--plaintext", "fileb://%s" % src,
              "--encryption-context", "purpose=test,volume=v1")
    blob = base64.b64decode(enc["CiphertextBlob"])
    assert plaintext not in blob
    blob_file = tmp_path / "blob.bin"
    blob_file.write_bytes(blob)
    dec = aws("decrypt", "--ciphertext-blob", "fileb://%s" % blob_file,
              "--encryption-context", "purpose=test,volume=v1")
    assert base64.b64decode(dec["Plaintext"]) == plaintext
    assert dec["KeyId"].endswith(key_id)

    # The wrong encryption context does not decrypt.
    with pytest.raises(kmsd_it.AwsCliError) as e:
        aws("decrypt", "--ciphertext-blob", "fileb://%s" % blob_file,
            "--encryption-context", "purpose=other,volume=v1")
    assert e.value.code == "InvalidCiphertextException"


def test_cli_generate_data_key(aws):
    key_id = aws("create-key")["KeyMetadata"]["KeyId"]
    dk = aws("generate-data-key", "--key-id", key_id, "--key-spec", "AES_256")
    assert len(base64.b64decode(dk["Plaintext"])) == 32
    blob = dk["CiphertextBlob"]
    # what the CLI wrote back decrypts to the same key
    dk2 = aws("generate-data-key", "--key-id", key_id, "--number-of-bytes", "16")
    assert len(base64.b64decode(dk2["Plaintext"])) == 16
    assert blob != dk2["CiphertextBlob"]


def test_cli_error_types(aws):
    with pytest.raises(kmsd_it.AwsCliError) as e:
        aws("describe-key", "--key-id", "00000000-0000-4000-8000-000000000000")
    assert e.value.code == "NotFoundException"
    with pytest.raises(kmsd_it.AwsCliError) as e:
        aws("create-key", user="bob")
    assert e.value.code == "AccessDeniedException"


def test_cli_wrong_secret(kmsd, aws):
    wrong = kmsd_it.User("admin")
    wrong.access_key_id = kmsd.user("admin").access_key_id  # right key id, random secret
    proc = kmsd.aws("list-keys", user=wrong, check=False)
    assert proc.returncode != 0
    assert "InvalidSignatureException" in proc.stderr


# ---- boto3 --------------------------------------------------------------------------------------

def test_boto3_create_describe_list(kms):
    meta = kms.create_key(Description="boto3 key")["KeyMetadata"]
    assert meta["Enabled"] is True
    assert meta["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert kms.describe_key(KeyId=meta["KeyId"])["KeyMetadata"]["Arn"] == meta["Arn"]
    keys = []
    for page in kms.get_paginator("list_keys").paginate():
        keys += [k["KeyId"] for k in page["Keys"]]
    assert meta["KeyId"] in keys


def test_boto3_encrypt_decrypt(kms):
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    for size in (1, 100, 4000):
        plaintext = os.urandom(size)
        ctx = {"kmsfs:volume": "v-%d" % size}
        enc = kms.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=ctx)
        dec = kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=ctx)
        assert dec["Plaintext"] == plaintext
        assert dec["KeyId"] == enc["KeyId"]


def test_boto3_encrypt_accepts_4096_bytes(kms):
    """AWS's limit for Encrypt's Plaintext is 4096 bytes inclusive; 4097 is a ValidationException."""
    import botocore.exceptions
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    plaintext = os.urandom(4096)
    enc = kms.encrypt(KeyId=key_id, Plaintext=plaintext)
    assert kms.decrypt(CiphertextBlob=enc["CiphertextBlob"])["Plaintext"] == plaintext
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kms.encrypt(KeyId=key_id, Plaintext=os.urandom(4097))
    assert e.value.response["Error"]["Code"] == "ValidationException"


def test_boto3_generate_data_key_decrypts(kms):
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    ctx = {"kmsfs:volume": "vol", "kmsfs:file": "file"}
    dk = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=ctx)
    assert len(dk["Plaintext"]) == 32
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == dk["Plaintext"]


def test_boto3_request_id_matches_header(kms):
    r = kms.list_keys()
    md = r["ResponseMetadata"]
    assert md["HTTPStatusCode"] == 200
    assert md["RequestId"] == md["HTTPHeaders"]["x-amzn-requestid"]
    assert md["HTTPHeaders"]["content-type"] == "application/x-amz-json-1.1"


def test_boto3_bob_is_denied(kmsd, kms):
    import botocore.exceptions
    bob = kmsd.client("bob")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        bob.create_key()
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_boto3_unknown_access_key(kmsd):
    import botocore.exceptions
    stranger = kmsd_it.User("stranger")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kmsd.client(stranger).list_keys()
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"
