"""Every KMS operation kmsd serves, driven through Debian's AWS CLI (`aws kms ...`) and boto3,
checking what comes back and not only that nothing was raised: Decrypt returns the original bytes,
public keys load with the `cryptography` package, signatures verify locally, ciphertext made
locally with a public key decrypts through kmsd, imported key material works and, once deleted,
does not.

Key references: key ids, key ARNs, alias names and alias ARNs are used wherever AWS takes them
(test_key_references_everywhere, and the CLI tests below use each form somewhere).

Debian 12's AWS CLI (2.9) and botocore (1.29) predate RotationPeriodInDays, RotateKeyOnDemand and
ListKeyRotations: those go out as botocore-signed requests (kmsd.api). Deletion when the window
ends and automatic rotation are seen by moving a kmsd's clock with libfaketime (Debian's faketime).

Where each AWS error type is seen through a real client (boto3 or the AWS CLI), by file::test
(test_protocol.py speaks raw HTTP, signed by botocore's signer):
  NotFoundException                    test_clients::test_cli_error_types (CLI);
                                       here test_aliases_cli (CLI), test_key_policies_cli
  DisabledException                    here test_disable_enable_key
  KMSInvalidStateException             here test_deletion_window_cli (CLI), test_import_key_material
  InvalidCiphertextException           test_clients::test_cli_encrypt_decrypt_round_trip (CLI);
                                       here test_damaged_ciphertext, test_reencrypt_cli, RSA decrypt
  AccessDeniedException                test_clients (CLI, boto3); test_authz_grants (all of it)
  AlreadyExistsException               here test_aliases_cli (CLI)
  ValidationException                  here test_deletion_window_cli (CLI), test_rotation_cli,
                                       test_generate_data_key_variants; test_protocol (oversize body)
  InvalidAliasNameException            here test_alias_name_rules
  InvalidKeyUsageException             here test_key_usage_errors
  IncorrectKeyException                here test_reencrypt_cli
  UnknownOperationException            test_protocol::test_unknown_target and neighbours (raw HTTP)
  SerializationException               here test_serialization_exception_from_boto3; test_protocol
  LimitExceededException               here test_tags_cli, test_rotation_cli (on-demand rotations)
  MalformedPolicyDocumentException     here test_key_policies_cli
  TagException                         here test_tags_cli
  InvalidGrantIdException              test_authz_grants::test_grant_id_and_token_errors
  InvalidGrantTokenException           test_authz_grants::test_grant_id_and_token_errors
  InvalidMarkerException               here test_list_paging_and_markers; test_authz_grants
  UnsupportedOperationException        here test_create_key_refusals, test_asymmetric_key_limits
  InvalidImportTokenException          here test_import_key_material
  IncorrectKeyMaterialException        here test_import_key_material
  KMSInvalidSignatureException         here test_sign_verify_cli (CLI), test_sign_verify_locally
  MissingAuthenticationTokenException  here test_unsigned_boto3_request; test_protocol
  UnrecognizedClientException          test_clients::test_boto3_unknown_access_key; test_protocol
  InvalidSignatureException            test_clients::test_cli_wrong_secret (CLI); test_protocol
  IncompleteSignatureException         test_protocol::test_malformed_authorization (raw HTTP: no
                                       real client sends a malformed Authorization header)
"""
import base64
import datetime
import hashlib
import json
import os
import secrets
import time

import pytest

import kmsd_it
from kmsd_it import client_error

import boto3  # noqa: F401 - installed by tools/install-deps.sh; missing must fail, not skip

ACCOUNT = kmsd_it.ACCOUNT
REGION = kmsd_it.REGION
RSA_SIGNING = ["RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
               "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512"]
RSA_ENCRYPTION = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]


def crypto():
    """The cryptography package's modules this file uses (a missing package fails the test)."""
    import cryptography  # noqa: F401 - a missing package fails the test
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives import keywrap
    return hashes, serialization, ec, padding, rsa, keywrap


def unique(prefix):
    return "%s-%s" % (prefix, secrets.token_hex(4))


def key_arn(key_id):
    return "arn:aws:kms:%s:%s:key/%s" % (REGION, ACCOUNT, key_id)


def alias_arn(alias):
    return "arn:aws:kms:%s:%s:%s" % (REGION, ACCOUNT, alias)


def epoch(timestamp):
    """Seconds since the epoch of a datetime (boto3), an ISO 8601 string (AWS CLI v2) or a number
    (raw JSON)."""
    if hasattr(timestamp, "timestamp"):
        return timestamp.timestamp()
    if isinstance(timestamp, str):
        return datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    return float(timestamp)


def near(timestamp, expected, slack=300):
    """timestamp (any form epoch() reads) is within slack seconds of epoch `expected`."""
    return abs(epoch(timestamp) - expected) <= slack


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return "fileb://%s" % path


# ---- keys: creation, metadata, references, listing --------------------------------------------

ASYM_KEYS = {   # name: (KeySpec, KeyUsage); one RSA_4096 only, key generation is slow
    "rsa2048_enc": ("RSA_2048", "ENCRYPT_DECRYPT"),
    "rsa3072_sign": ("RSA_3072", "SIGN_VERIFY"),
    "rsa4096_enc": ("RSA_4096", "ENCRYPT_DECRYPT"),
    "p256": ("ECC_NIST_P256", "SIGN_VERIFY"),
    "p384": ("ECC_NIST_P384", "SIGN_VERIFY"),
}


@pytest.fixture(scope="module")
def asym(kmsd):
    """One key per asymmetric spec this module uses: name -> KeyMetadata."""
    kms = kmsd.client()
    return {name: kms.create_key(KeySpec=spec, KeyUsage=usage, Description=name)["KeyMetadata"]
            for name, (spec, usage) in ASYM_KEYS.items()}


def new_alias(kms, meta):
    """A fresh alias for the key of meta."""
    alias = "alias/%s" % unique(meta["Description"] or "key")
    kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
    return alias


def test_create_key_symmetric_defaults(kms):
    meta = kms.create_key()["KeyMetadata"]
    assert meta["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert meta["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert meta["Origin"] == "AWS_KMS"
    assert meta["KeyState"] == "Enabled" and meta["Enabled"] is True
    assert meta["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert meta["Arn"] == key_arn(meta["KeyId"])
    assert meta["AWSAccountId"] == ACCOUNT
    assert meta["KeyManager"] == "CUSTOMER"
    assert near(meta["CreationDate"], time.time())
    assert "DeletionDate" not in meta and "SigningAlgorithms" not in meta


def test_create_key_asymmetric_specs(kms, asym):
    for name, (spec, usage) in ASYM_KEYS.items():
        created = asym[name]
        described = kms.describe_key(KeyId=created["KeyId"])["KeyMetadata"]
        for meta in (created, described):
            assert meta["KeySpec"] == spec and meta["CustomerMasterKeySpec"] == spec, meta
            assert meta["KeyUsage"] == usage, meta
            assert meta["KeyState"] == "Enabled" and meta["Origin"] == "AWS_KMS", meta
            assert meta["Description"] == name
            if usage == "ENCRYPT_DECRYPT":
                assert meta["EncryptionAlgorithms"] == RSA_ENCRYPTION, meta
                assert "SigningAlgorithms" not in meta
            elif spec.startswith("RSA_"):
                assert sorted(meta["SigningAlgorithms"]) == RSA_SIGNING, meta
            else:
                assert meta["SigningAlgorithms"] == ["ECDSA_SHA_%s" % spec[-3:]], meta
                assert "EncryptionAlgorithms" not in meta


def test_cli_create_key_with_every_option(aws, kmsd, tmp_path):
    """KeySpec, KeyUsage, Description, Tags and Policy in one `aws kms create-key`."""
    policy = {"Version": "2012-10-17", "Id": unique("cli-policy"), "Statement": [
        {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:root" % ACCOUNT},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "Bob", "Effect": "Allow", "Principal": {"AWS": kmsd.user("bob").arn},
         "Action": ["kms:Verify", "kms:GetPublicKey"], "Resource": "*"}]}
    policy_text = json.dumps(policy, indent=2)
    (tmp_path / "policy.json").write_text(policy_text)
    meta = aws("create-key", "--key-spec", "ECC_NIST_P256", "--key-usage", "SIGN_VERIFY",
               "--description", "made by the CLI", "--origin", "AWS_KMS",
               "--tags", "TagKey=team,TagValue=storage", "TagKey=cost-centre,TagValue=42",
               "--policy", "file://%s" % (tmp_path / "policy.json"))["KeyMetadata"]
    assert meta["KeySpec"] == "ECC_NIST_P256" and meta["KeyUsage"] == "SIGN_VERIFY"
    assert meta["Description"] == "made by the CLI"
    assert meta["SigningAlgorithms"] == ["ECDSA_SHA_256"]
    got = aws("get-key-policy", "--key-id", meta["Arn"], "--policy-name", "default")
    assert json.loads(got["Policy"]) == policy
    tags = aws("list-resource-tags", "--key-id", meta["KeyId"])["Tags"]
    assert sorted((t["TagKey"], t["TagValue"]) for t in tags) == [("cost-centre", "42"), ("team", "storage")]


def test_create_key_refusals(kmsd, kms):
    raw = kmsd.client(validate=False)
    with client_error("ValidationException", "SIGN_VERIFY"):
        kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="SIGN_VERIFY")
    with client_error("ValidationException"):
        kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="ENCRYPT_DECRYPT")
    with client_error("ValidationException"):
        raw.create_key(KeySpec="RSA_1024")
    with client_error("ValidationException"):
        raw.create_key(KeyUsage="DECRYPT_ONLY")
    with client_error("UnsupportedOperationException"):
        kms.create_key(Origin="AWS_CLOUDHSM")
    with client_error("UnsupportedOperationException"):
        kms.create_key(MultiRegion=True)
    with client_error("MalformedPolicyDocumentException"):
        kms.create_key(Policy='{"Version": "2012-10-17", "Statement": [{"Effect": "Perhaps"}]}')
    with client_error("MalformedPolicyDocumentException"):
        kms.create_key(Policy="this is not JSON")
    with client_error("TagException"):
        kms.create_key(Tags=[{"TagKey": "aws:reserved", "TagValue": "x"}])


def test_key_references_everywhere(kms):
    """Key id, key ARN, alias name and alias ARN wherever AWS accepts all four."""
    meta = kms.create_key()["KeyMetadata"]
    other = kms.create_key()["KeyMetadata"]
    alias = "alias/%s" % unique("refs")
    kms.create_alias(AliasName=alias, TargetKeyId=meta["Arn"])    # TargetKeyId as an ARN
    forms = [meta["KeyId"], meta["Arn"], alias, alias_arn(alias)]
    blob = kms.encrypt(KeyId=meta["KeyId"], Plaintext=b"refs")["CiphertextBlob"]
    other_blob = kms.encrypt(KeyId=other["KeyId"], Plaintext=b"other")["CiphertextBlob"]
    for ref in forms:
        assert kms.describe_key(KeyId=ref)["KeyMetadata"]["KeyId"] == meta["KeyId"], ref
        enc = kms.encrypt(KeyId=ref, Plaintext=b"x")
        assert enc["KeyId"] == meta["Arn"], ref
        assert kms.decrypt(CiphertextBlob=blob, KeyId=ref)["Plaintext"] == b"refs", ref
        dk = kms.generate_data_key(KeyId=ref, NumberOfBytes=32)
        assert dk["KeyId"] == meta["Arn"]
        assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == dk["Plaintext"]
        assert kms.generate_data_key_without_plaintext(KeyId=ref, KeySpec="AES_256")["KeyId"] == meta["Arn"]
        re = kms.re_encrypt(CiphertextBlob=other_blob, SourceKeyId=other["Arn"], DestinationKeyId=ref)
        assert re["KeyId"] == meta["Arn"] and re["SourceKeyId"] == other["Arn"]
        re = kms.re_encrypt(CiphertextBlob=blob, SourceKeyId=ref, DestinationKeyId=other["KeyId"])
        assert kms.decrypt(CiphertextBlob=re["CiphertextBlob"])["Plaintext"] == b"refs"
    # operations that take a key id or key ARN
    for ref in forms[:2]:
        kms.disable_key(KeyId=ref)
        assert kms.describe_key(KeyId=meta["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"
        kms.enable_key(KeyId=ref)
        assert kms.get_key_rotation_status(KeyId=ref)["KeyRotationEnabled"] is False
        kms.tag_resource(KeyId=ref, Tags=[{"TagKey": "ref", "TagValue": ref[-8:]}])
        assert kms.list_resource_tags(KeyId=ref)["Tags"] == [{"TagKey": "ref", "TagValue": ref[-8:]}]
    # this key's id under another account or region is not this key
    for ref in ("arn:aws:kms:%s:999999999999:key/%s" % (REGION, meta["KeyId"]),
                "arn:aws:kms:eu-west-1:%s:key/%s" % (ACCOUNT, meta["KeyId"]),
                "arn:aws:kms:eu-west-1:%s:%s" % (ACCOUNT, alias)):
        with client_error("NotFoundException"):
            kms.describe_key(KeyId=ref)
    # a key that does not exist, in each form
    missing = "00000000-0000-4000-8000-%012d" % secrets.randbelow(10 ** 12)
    for ref in (missing, key_arn(missing), "alias/%s" % unique("nope"), alias_arn("alias/%s" % unique("nope"))):
        with client_error("NotFoundException"):
            kms.describe_key(KeyId=ref)
        with client_error("NotFoundException"):
            kms.encrypt(KeyId=ref, Plaintext=b"x")


def test_list_paging_and_markers(kms):
    mine = {kms.create_key(Description="paging")["KeyMetadata"]["KeyId"] for _ in range(3)}
    everything = {k["KeyId"] for k in kms.list_keys(Limit=1000)["Keys"]}
    assert mine <= everything
    first = kms.list_keys(Limit=1)
    assert len(first["Keys"]) == 1 and first["Truncated"] is True and first["NextMarker"]
    assert first["Keys"][0]["KeyArn"] == key_arn(first["Keys"][0]["KeyId"])
    paged, marker = [], None
    while True:
        page = kms.list_keys(Limit=2, **({"Marker": marker} if marker else {}))
        assert len(page["Keys"]) <= 2
        paged += [k["KeyId"] for k in page["Keys"]]
        if not page["Truncated"]:
            assert "NextMarker" not in page
            break
        marker = page["NextMarker"]
    assert len(paged) == len(set(paged)), "a key listed twice across pages"
    assert everything <= set(paged)
    for call in (lambda: kms.list_keys(Marker="not-a-marker"),
                 lambda: kms.list_aliases(Marker="not-a-marker"),
                 lambda: kms.list_resource_tags(KeyId=next(iter(mine)), Marker="not-a-marker")):
        with client_error("InvalidMarkerException"):
            call()


# ---- aliases ------------------------------------------------------------------------------------

def test_aliases_cli(aws, kmsd, kms):
    k1 = kms.create_key(Description="alias one")["KeyMetadata"]
    k2 = kms.create_key(Description="alias two")["KeyMetadata"]
    name = "alias/%s" % unique("cli")
    assert aws("create-alias", "--alias-name", name, "--target-key-id", k1["KeyId"]) is None
    listed = aws("list-aliases", "--key-id", k1["Arn"])["Aliases"]
    assert [(a["AliasName"], a["AliasArn"], a["TargetKeyId"]) for a in listed] == \
        [(name, alias_arn(name), k1["KeyId"])]
    assert kms.encrypt(KeyId=name, Plaintext=b"a")["KeyId"] == k1["Arn"]

    e = kmsd.aws_error("AlreadyExistsException", "create-alias", "--alias-name", name,
                       "--target-key-id", k2["KeyId"])
    assert alias_arn(name) in e.stderr

    aws("update-alias", "--alias-name", name, "--target-key-id", k2["Arn"])
    assert kms.encrypt(KeyId=name, Plaintext=b"a")["KeyId"] == k2["Arn"]
    assert kms.describe_key(KeyId=alias_arn(name))["KeyMetadata"]["KeyId"] == k2["KeyId"]
    everything = [a for page in kms.get_paginator("list_aliases").paginate(PaginationConfig={"PageSize": 2})
                  for a in page["Aliases"]]
    assert [a["TargetKeyId"] for a in everything if a["AliasName"] == name] == [k2["KeyId"]]
    assert kms.list_aliases(KeyId=k1["KeyId"])["Aliases"] == []

    # a key may have several aliases
    second = "alias/%s" % unique("cli-second")
    kms.create_alias(AliasName=second, TargetKeyId=k2["KeyId"])
    assert sorted(a["AliasName"] for a in kms.list_aliases(KeyId=k2["KeyId"])["Aliases"]) == sorted([name, second])

    assert aws("delete-alias", "--alias-name", name) is None
    kmsd.aws_error("NotFoundException", "describe-key", "--key-id", name)
    with client_error("NotFoundException"):
        kms.delete_alias(AliasName=name)
    with client_error("NotFoundException"):
        kms.update_alias(AliasName=name, TargetKeyId=k1["KeyId"])
    assert kms.describe_key(KeyId=second)["KeyMetadata"]["KeyId"] == k2["KeyId"]


def test_alias_name_rules(kms, asym):
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    for bad in ("alias/aws/reserved", "no-prefix", "alias/", "alias/has space", "alias/semi;colon"):
        with client_error("InvalidAliasNameException"):
            kms.create_alias(AliasName=bad, TargetKeyId=key_id)
    # an alias cannot point at an alias, nor be moved to a key of another kind
    name = "alias/%s" % unique("rules")
    kms.create_alias(AliasName=name, TargetKeyId=key_id)
    with client_error("ValidationException"):
        kms.create_alias(AliasName="alias/%s" % unique("chain"), TargetKeyId=name)
    with client_error("ValidationException"):
        kms.update_alias(AliasName=name, TargetKeyId=asym["rsa2048_enc"]["KeyId"])
    assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == key_id


# ---- symmetric data operations ------------------------------------------------------------------

def test_reencrypt_cli(aws, kmsd, kms, tmp_path):
    ka = kms.create_key(Description="source")["KeyMetadata"]
    kb = kms.create_key(Description="destination")["KeyMetadata"]
    plaintext = os.urandom(300)
    enc = aws("encrypt", "--key-id", ka["KeyId"], "--plaintext", write(tmp_path, "plain", plaintext),
              "--encryption-context", "stage=one")
    assert enc["KeyId"] == ka["Arn"] and enc["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    blob = base64.b64decode(enc["CiphertextBlob"])
    re = aws("re-encrypt", "--ciphertext-blob", write(tmp_path, "blob", blob),
             "--source-encryption-context", "stage=one",
             "--destination-key-id", kb["Arn"], "--destination-encryption-context", "stage=two")
    assert re["SourceKeyId"] == ka["Arn"] and re["KeyId"] == kb["Arn"]
    new_blob = base64.b64decode(re["CiphertextBlob"])
    dec = kms.decrypt(CiphertextBlob=new_blob, EncryptionContext={"stage": "two"})
    assert dec["Plaintext"] == plaintext and dec["KeyId"] == kb["Arn"]
    # the new blob is bound to the destination context and key
    with client_error("InvalidCiphertextException"):
        kms.decrypt(CiphertextBlob=new_blob, EncryptionContext={"stage": "one"})
    with client_error("IncorrectKeyException"):
        kms.decrypt(CiphertextBlob=new_blob, KeyId=ka["KeyId"], EncryptionContext={"stage": "two"})
    with client_error("IncorrectKeyException"):
        kms.re_encrypt(CiphertextBlob=blob, SourceKeyId=kb["Arn"], SourceEncryptionContext={"stage": "one"},
                       DestinationKeyId=kb["KeyId"])
    # the wrong source context does not re-encrypt
    kmsd.aws_error("InvalidCiphertextException", "re-encrypt", "--ciphertext-blob", write(tmp_path, "blob", blob),
                   "--source-encryption-context", "stage=other", "--destination-key-id", kb["KeyId"])


def test_generate_data_key_variants(aws, kmsd, kms):
    key = kms.create_key()["KeyMetadata"]
    ctx = {"volume": "v1"}
    wp = aws("generate-data-key-without-plaintext", "--key-id", key["KeyId"], "--key-spec", "AES_128",
             "--encryption-context", "volume=v1")
    assert "Plaintext" not in wp and wp["KeyId"] == key["Arn"]
    plain = kms.decrypt(CiphertextBlob=base64.b64decode(wp["CiphertextBlob"]), EncryptionContext=ctx)["Plaintext"]
    assert len(plain) == 16
    for n in (1, 64, 1024):
        dk = kms.generate_data_key(KeyId=key["KeyId"], NumberOfBytes=n, EncryptionContext=ctx)
        assert len(dk["Plaintext"]) == n
        assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == dk["Plaintext"]
    raw = kmsd.client(validate=False)
    with client_error("ValidationException", "not both"):
        kms.generate_data_key(KeyId=key["KeyId"], NumberOfBytes=32, KeySpec="AES_256")
    with client_error("ValidationException"):
        kms.generate_data_key(KeyId=key["KeyId"])
    with client_error("ValidationException"):
        raw.generate_data_key(KeyId=key["KeyId"], NumberOfBytes=1025)
    with client_error("ValidationException"):
        raw.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_512")

    rnd = aws("generate-random", "--number-of-bytes", "48")
    first = base64.b64decode(rnd["Plaintext"])
    assert len(first) == 48
    second = kms.generate_random(NumberOfBytes=48)["Plaintext"]
    assert len(second) == 48 and second != first
    assert len(kms.generate_random(NumberOfBytes=1024)["Plaintext"]) == 1024
    with client_error("ValidationException"):
        raw.generate_random(NumberOfBytes=1025)
    with client_error("ValidationException"):
        raw.generate_random(NumberOfBytes=0)


def test_disable_enable_key(kms):
    key = kms.create_key()["KeyMetadata"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"before")["CiphertextBlob"]
    kms.disable_key(KeyId=key["KeyId"])
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert meta["KeyState"] == "Disabled" and meta["Enabled"] is False
    for call in (lambda: kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x"),
                 lambda: kms.decrypt(CiphertextBlob=blob),
                 lambda: kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256"),
                 lambda: kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=key["KeyId"])):
        with client_error("DisabledException", key["Arn"]):
            call()
    kms.enable_key(KeyId=key["KeyId"])
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before"


def test_damaged_ciphertext(kms):
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = bytearray(kms.encrypt(KeyId=key_id, Plaintext=b"intact")["CiphertextBlob"])
    for where in (len(blob) // 2, len(blob) - 1):
        damaged = bytearray(blob)
        damaged[where] ^= 0x01
        with client_error("InvalidCiphertextException"):
            kms.decrypt(CiphertextBlob=bytes(damaged))
    with client_error("InvalidCiphertextException"):
        kms.decrypt(CiphertextBlob=os.urandom(120))
    with client_error("InvalidCiphertextException"):
        kms.decrypt(CiphertextBlob=bytes(blob[:20]))
    assert kms.decrypt(CiphertextBlob=bytes(blob))["Plaintext"] == b"intact"


def test_key_usage_errors(kms, asym):
    sym = kms.create_key()["KeyMetadata"]
    with client_error("InvalidKeyUsageException"):
        kms.encrypt(KeyId=sym["KeyId"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    with client_error("InvalidKeyUsageException"):
        kms.sign(KeyId=sym["KeyId"], Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")
    rsa_enc, rsa_sign, p256 = asym["rsa2048_enc"], asym["rsa3072_sign"], asym["p256"]
    with client_error("InvalidKeyUsageException"):
        kms.generate_data_key(KeyId=rsa_enc["KeyId"], KeySpec="AES_256")
    with client_error("InvalidKeyUsageException"):
        kms.sign(KeyId=rsa_enc["KeyId"], Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")
    with client_error("InvalidKeyUsageException"):
        kms.encrypt(KeyId=rsa_sign["KeyId"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    with client_error("InvalidKeyUsageException"):
        kms.encrypt(KeyId=p256["KeyId"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    with client_error("InvalidKeyUsageException"):
        kms.sign(KeyId=p256["KeyId"], Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")
    with client_error("InvalidKeyUsageException"):
        kms.sign(KeyId=p256["KeyId"], Message=b"m", SigningAlgorithm="ECDSA_SHA_384")
    with client_error("InvalidKeyUsageException"):
        kms.generate_data_key_pair(KeyId=rsa_enc["KeyId"], KeyPairSpec="ECC_NIST_P256")


# ---- deletion ------------------------------------------------------------------------------------

def test_deletion_window_cli(aws, kmsd, kms):
    key = kms.create_key(Description="to delete")["KeyMetadata"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"keep me")["CiphertextBlob"]
    for days in ("6", "31"):
        kmsd.aws_error("ValidationException", "schedule-key-deletion", "--key-id", key["KeyId"],
                       "--pending-window-in-days", days)
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"

    scheduled = aws("schedule-key-deletion", "--key-id", key["Arn"], "--pending-window-in-days", "7")
    assert scheduled["KeyId"] == key["Arn"]
    assert scheduled["KeyState"] == "PendingDeletion"
    assert scheduled["PendingWindowInDays"] == 7
    assert near(scheduled["DeletionDate"], time.time() + 7 * 86400)
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion" and meta["Enabled"] is False
    assert meta["PendingDeletionWindowInDays"] == 7
    assert near(meta["DeletionDate"], time.time() + 7 * 86400)

    for call in (lambda: kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x"),
                 lambda: kms.decrypt(CiphertextBlob=blob),
                 lambda: kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256"),
                 lambda: kms.enable_key(KeyId=key["KeyId"]),
                 lambda: kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)):
        with client_error("KMSInvalidStateException", key["Arn"]):
            call()

    cancelled = aws("cancel-key-deletion", "--key-id", key["KeyId"])
    assert cancelled["KeyId"] == key["Arn"]
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert meta["KeyState"] == "Disabled" and "DeletionDate" not in meta
    with client_error("DisabledException"):
        kms.decrypt(CiphertextBlob=blob)
    with client_error("KMSInvalidStateException"):
        kms.cancel_key_deletion(KeyId=key["KeyId"])
    kms.enable_key(KeyId=key["KeyId"])
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"keep me"

    # the default window is 30 days
    default = kms.schedule_key_deletion(KeyId=key["KeyId"])
    assert default["PendingWindowInDays"] == 30
    assert near(default["DeletionDate"], time.time() + 30 * 86400)
    kms.cancel_key_deletion(KeyId=key["KeyId"])


def test_deletion_and_rotation_happen_when_due(kmsd_factory):
    """Keys are really deleted when their window ends, and rotate automatically when due: kmsd's
    maintenance (at start and every minute) run with its clock moved forward by libfaketime."""
    if kmsd_it.faketime_library() is None:
        pytest.fail("libfaketime is not installed (apt-get install faketime): kmsd's clock cannot be moved")
    server = kmsd_factory()
    kms = server.client()
    doomed = kms.create_key(Description="7 days")["KeyMetadata"]
    doomed_blob = kms.encrypt(KeyId=doomed["KeyId"], Plaintext=b"doomed")["CiphertextBlob"]
    kept = kms.create_key(Description="30 days")["KeyMetadata"]
    rotating = kms.create_key(Description="rotates every 90 days")["KeyMetadata"]
    before = kms.encrypt(KeyId=rotating["KeyId"], Plaintext=b"before", EncryptionContext={"r": "1"})["CiphertextBlob"]
    kms.schedule_key_deletion(KeyId=doomed["KeyId"], PendingWindowInDays=7)
    kms.schedule_key_deletion(KeyId=kept["KeyId"], PendingWindowInDays=30)
    server.api("EnableKeyRotation", KeyId=rotating["KeyId"], RotationPeriodInDays=90)
    server.stop()

    server.set_clock(datetime.timedelta(days=8))
    server.start()
    listed = [k["KeyId"] for k in server.api("ListKeys", Limit=1000)["Keys"]]
    assert doomed["KeyId"] not in listed and kept["KeyId"] in listed and rotating["KeyId"] in listed
    with client_error("NotFoundException"):
        server.api("DescribeKey", KeyId=doomed["KeyId"])
    with pytest.raises(Exception) as e:
        server.api("Decrypt", CiphertextBlob=doomed_blob)
    assert e.value.response["Error"]["Code"] in ("NotFoundException", "InvalidCiphertextException"), e.value
    meta = server.api("DescribeKey", KeyId=kept["KeyId"])["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion" and near(meta["DeletionDate"], time.time() + 30 * 86400)
    assert server.api("ListKeyRotations", KeyId=rotating["KeyId"])["Rotations"] == []
    server.stop()

    server.set_clock(datetime.timedelta(days=91))
    server.start()
    with client_error("NotFoundException"):
        server.api("DescribeKey", KeyId=kept["KeyId"])
    rotations = server.api("ListKeyRotations", KeyId=rotating["KeyId"])["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["AUTOMATIC"], rotations
    fake_now = time.time() + 91 * 86400
    assert near(rotations[0]["RotationDate"], fake_now)
    status = server.api("GetKeyRotationStatus", KeyId=rotating["KeyId"])
    assert status["KeyRotationEnabled"] is True and near(status["NextRotationDate"], fake_now + 90 * 86400)
    dec = server.api("Decrypt", CiphertextBlob=before, EncryptionContext={"r": "1"})
    assert base64.b64decode(dec["Plaintext"]) == b"before"
    server.stop()
    server.set_clock(None)


# ---- rotation -----------------------------------------------------------------------------------

def test_rotation_cli(aws, kmsd, kms):
    """Debian 12's AWS CLI and botocore know EnableKeyRotation and GetKeyRotationStatus but not
    RotationPeriodInDays, RotateKeyOnDemand or ListKeyRotations: those go as signed requests."""
    key = kms.create_key(Description="rotating")["KeyMetadata"]
    ctx = {"rot": "1"}
    before = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"before rotation", EncryptionContext=ctx)["CiphertextBlob"]
    dk_before = kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is False

    assert aws("enable-key-rotation", "--key-id", key["KeyId"]) is None
    assert aws("get-key-rotation-status", "--key-id", key["Arn"])["KeyRotationEnabled"] is True
    status = kmsd.api("GetKeyRotationStatus", KeyId=key["KeyId"])
    assert status["RotationPeriodInDays"] == 365 and status["KeyId"] == key["Arn"]
    assert near(status["NextRotationDate"], time.time() + 365 * 86400)

    assert kmsd.api("EnableKeyRotation", KeyId=key["Arn"], RotationPeriodInDays=90) == {}
    status = kmsd.api("GetKeyRotationStatus", KeyId=key["KeyId"])
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 90
    assert near(status["NextRotationDate"], time.time() + 90 * 86400)
    for days in (89, 2561):
        with client_error("ValidationException"):
            kmsd.api("EnableKeyRotation", KeyId=key["KeyId"], RotationPeriodInDays=days)
    assert kmsd.api("GetKeyRotationStatus", KeyId=key["KeyId"])["RotationPeriodInDays"] == 90
    assert kmsd.api("ListKeyRotations", KeyId=key["KeyId"])["Rotations"] == []

    rotated = kmsd.api("RotateKeyOnDemand", KeyId=key["KeyId"])
    assert rotated["KeyId"] == key["Arn"]
    rotations = kmsd.api("ListKeyRotations", KeyId=key["KeyId"])["Rotations"]
    assert len(rotations) == 1
    assert rotations[0]["KeyId"] == key["Arn"] and rotations[0]["RotationType"] == "ON_DEMAND"
    assert near(rotations[0]["RotationDate"], time.time())

    after = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"after rotation", EncryptionContext=ctx)["CiphertextBlob"]
    kmsd.api("RotateKeyOnDemand", KeyId=key["Arn"])
    listed = kmsd.api("ListKeyRotations", KeyId=key["KeyId"])
    assert [r["RotationType"] for r in listed["Rotations"]] == ["ON_DEMAND"] * 2 and listed["Truncated"] is False
    page = kmsd.api("ListKeyRotations", KeyId=key["KeyId"], Limit=1)
    assert len(page["Rotations"]) == 1 and page["Truncated"] is True
    rest = kmsd.api("ListKeyRotations", KeyId=key["KeyId"], Limit=1, Marker=page["NextMarker"])
    assert len(rest["Rotations"]) == 1 and rest["Truncated"] is False
    assert rest["Rotations"][0]["RotationDate"] >= page["Rotations"][0]["RotationDate"]
    # every generation of ciphertext still decrypts
    assert kms.decrypt(CiphertextBlob=before, EncryptionContext=ctx)["Plaintext"] == b"before rotation"
    assert kms.decrypt(CiphertextBlob=after, EncryptionContext=ctx)["Plaintext"] == b"after rotation"
    assert kms.decrypt(CiphertextBlob=dk_before["CiphertextBlob"])["Plaintext"] == dk_before["Plaintext"]
    re = kms.re_encrypt(CiphertextBlob=before, SourceEncryptionContext=ctx, DestinationKeyId=key["KeyId"])
    assert kms.decrypt(CiphertextBlob=re["CiphertextBlob"])["Plaintext"] == b"before rotation"

    assert aws("disable-key-rotation", "--key-id", key["KeyId"]) is None
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is False
    assert kms.decrypt(CiphertextBlob=before, EncryptionContext=ctx)["Plaintext"] == b"before rotation"
    # on-demand rotation does not need automatic rotation, up to 10 times a key
    for _ in range(8):
        kmsd.api("RotateKeyOnDemand", KeyId=key["KeyId"])
    with client_error("LimitExceededException"):
        kmsd.api("RotateKeyOnDemand", KeyId=key["KeyId"])
    assert len(kmsd.api("ListKeyRotations", KeyId=key["KeyId"])["Rotations"]) == 10
    assert kms.decrypt(CiphertextBlob=after, EncryptionContext=ctx)["Plaintext"] == b"after rotation"


# ---- tags ------------------------------------------------------------------------------------------

def tag_dict(tags):
    return {t["TagKey"]: t["TagValue"] for t in tags}


def test_tags_cli(aws, kmsd, kms):
    key = kms.create_key(Tags=[{"TagKey": "env", "TagValue": "test"}])["KeyMetadata"]
    assert aws("tag-resource", "--key-id", key["Arn"], "--tags", "TagKey=team,TagValue=storage",
               "TagKey=env,TagValue=prod") is None
    assert tag_dict(aws("list-resource-tags", "--key-id", key["KeyId"])["Tags"]) == {"env": "prod", "team": "storage"}
    assert aws("untag-resource", "--key-id", key["KeyId"], "--tag-keys", "env") is None
    assert tag_dict(kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]) == {"team": "storage"}

    e = kmsd.aws_error("TagException", "tag-resource", "--key-id", key["KeyId"],
                       "--tags", "TagKey=aws:owner,TagValue=me")
    assert "aws:" in e.stderr
    with client_error("TagException"):
        kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "long", "TagValue": "v" * 257}])
    with client_error("TagException"):
        kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "t%d" % i, "TagValue": "v"} for i in range(51)])

    # 50 tags a key; the request that would make 51 changes nothing
    kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "t%02d" % i, "TagValue": "v"} for i in range(49)])
    with client_error("LimitExceededException"):
        kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "one-too-many", "TagValue": "v"}])
    tags = [t for page in kms.get_paginator("list_resource_tags").paginate(
        KeyId=key["KeyId"], PaginationConfig={"PageSize": 20}) for t in page["Tags"]]
    assert len(tags) == 50 and "one-too-many" not in tag_dict(tags)
    # changing the value of a tag it has is no new tag
    kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "team", "TagValue": "platform"}])
    assert tag_dict(kms.list_resource_tags(KeyId=key["KeyId"], Limit=50)["Tags"])["team"] == "platform"


# ---- key policies -----------------------------------------------------------------------------------

def test_key_policies_cli(aws, kmsd, kms, tmp_path):
    key = kms.create_key()["KeyMetadata"]
    assert aws("list-key-policies", "--key-id", key["KeyId"])["PolicyNames"] == ["default"]
    got = aws("get-key-policy", "--key-id", key["KeyId"], "--policy-name", "default")
    default = json.loads(got["Policy"])
    root = [s for s in default["Statement"] if s["Effect"] == "Allow" and s.get("Action") == "kms:*"]
    assert root and root[0]["Principal"] == {"AWS": "arn:aws:iam::%s:root" % ACCOUNT}, default

    policy = {"Version": "2012-10-17", "Id": unique("put"), "Statement": [
        {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:root" % ACCOUNT},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "DescribeForBob", "Effect": "Allow", "Principal": {"AWS": kmsd.user("bob").arn},
         "Action": "kms:DescribeKey", "Resource": "*"}]}
    text = json.dumps(policy, indent=4)
    (tmp_path / "p.json").write_text(text)
    assert aws("put-key-policy", "--key-id", key["Arn"], "--policy-name", "default",
               "--policy", "file://%s" % (tmp_path / "p.json")) is None
    assert json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"]) == policy
    assert json.loads(kmsd.api("GetKeyPolicy", KeyId=key["KeyId"])["Policy"]) == policy   # PolicyName is optional

    for bad in ("{not json", '{"Version": "2012-10-17", "Statement": [{"Effect": "Perhaps", "Action": "kms:*", '
                '"Principal": "*", "Resource": "*"}]}', '{"Version": "2012-10-17"}'):
        with client_error("MalformedPolicyDocumentException"):
            kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=bad)
    with client_error("NotFoundException"):
        kms.get_key_policy(KeyId=key["KeyId"], PolicyName="other")
    with client_error("NotFoundException"):
        kms.put_key_policy(KeyId=key["KeyId"], PolicyName="other", Policy=text)
    assert json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"]) == policy, \
        "a refused policy was stored"

    # the lockout safety check: a policy that would shut the caller out is refused unless bypassed
    bob_only = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": kmsd.user("bob").arn}, "Action": "kms:*", "Resource": "*"}]}
    with client_error("MalformedPolicyDocumentException"):
        kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps(bob_only))
    kms.describe_key(KeyId=key["KeyId"])
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps(bob_only),
                       BypassPolicyLockoutSafetyCheck=True)
    with client_error("AccessDeniedException", kmsd.user("admin").arn):
        kms.describe_key(KeyId=key["KeyId"])
    assert kmsd.client("bob").describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyId"] == key["KeyId"]


# ---- asymmetric keys ------------------------------------------------------------------------------

def public_key(kms, key_id):
    _, serialization, _, _, _, _ = crypto()
    return serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])


def test_get_public_key_and_rsa_encryption(kms, aws, asym):
    hashes, serialization, _, padding, rsa, _ = crypto()
    for name, bits in (("rsa2048_enc", 2048), ("rsa4096_enc", 4096)):
        meta = asym[name]
        alias = new_alias(kms, meta)
        got = kms.get_public_key(KeyId=alias)
        assert got["KeyId"] == meta["Arn"]
        assert got["KeySpec"] == meta["KeySpec"] and got["KeyUsage"] == "ENCRYPT_DECRYPT"
        assert got["EncryptionAlgorithms"] == RSA_ENCRYPTION
        pub = serialization.load_der_public_key(got["PublicKey"])
        assert isinstance(pub, rsa.RSAPublicKey) and pub.key_size == bits
        for algorithm, digest in (("RSAES_OAEP_SHA_256", hashes.SHA256), ("RSAES_OAEP_SHA_1", hashes.SHA1)):
            oaep = padding.OAEP(mgf=padding.MGF1(digest()), algorithm=digest(), label=None)
            secret = os.urandom(100)
            local = pub.encrypt(secret, oaep)   # made here, opened by kmsd
            dec = kms.decrypt(KeyId=meta["KeyId"], CiphertextBlob=local, EncryptionAlgorithm=algorithm)
            assert dec["Plaintext"] == secret and dec["KeyId"] == meta["Arn"]
            assert dec["EncryptionAlgorithm"] == algorithm
            enc = kms.encrypt(KeyId=alias, Plaintext=secret, EncryptionAlgorithm=algorithm)
            assert enc["EncryptionAlgorithm"] == algorithm and len(enc["CiphertextBlob"]) == bits // 8
            assert kms.decrypt(KeyId=meta["Arn"], CiphertextBlob=enc["CiphertextBlob"],
                               EncryptionAlgorithm=algorithm)["Plaintext"] == secret
        # the other OAEP digest does not open it
        local = pub.encrypt(b"sha1 only", padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
        with client_error("InvalidCiphertextException"):
            kms.decrypt(KeyId=meta["KeyId"], CiphertextBlob=local, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    meta = asym["rsa2048_enc"]
    with client_error("ValidationException"):    # RSA ciphertext names no key: KeyId is required
        kms.decrypt(CiphertextBlob=os.urandom(256), EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    with client_error("ValidationException"):    # more than RSA_2048 with OAEP-SHA-256 can take (190)
        kms.encrypt(KeyId=meta["KeyId"], Plaintext=os.urandom(191), EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    # and through the CLI
    got = aws("get-public-key", "--key-id", alias_arn(new_alias(kms, meta)))
    pub = serialization.load_der_public_key(base64.b64decode(got["PublicKey"]))
    assert pub.public_numbers() == public_key(kms, meta["KeyId"]).public_numbers()


SIGNING_CASES = [   # (key, SigningAlgorithm)
    ("rsa3072_sign", "RSASSA_PSS_SHA_256"),
    ("rsa3072_sign", "RSASSA_PSS_SHA_512"),
    ("rsa3072_sign", "RSASSA_PKCS1_V1_5_SHA_256"),
    ("rsa3072_sign", "RSASSA_PKCS1_V1_5_SHA_384"),
    ("p256", "ECDSA_SHA_256"),
    ("p384", "ECDSA_SHA_384"),
]


def local_verify(pub, algorithm, signature, message):
    """Verify as any AWS client does (PSS salt = digest length, ECDSA DER); raises if invalid."""
    hashes, _, ec, padding, _, _ = crypto()
    digest = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}[algorithm[-3:]]()
    if algorithm.startswith("ECDSA"):
        pub.verify(signature, message, ec.ECDSA(digest))
    elif algorithm.startswith("RSASSA_PSS"):
        pub.verify(signature, message, padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size), digest)
    else:
        pub.verify(signature, message, padding.PKCS1v15(), digest)


def test_sign_verify_locally(kms, asym):
    crypto()
    from cryptography.exceptions import InvalidSignature
    pubs = {}
    for name, algorithm in SIGNING_CASES:
        meta = asym[name]
        pub = pubs.setdefault(name, public_key(kms, meta["KeyId"]))
        message = os.urandom(200)
        signed = kms.sign(KeyId=meta["Arn"], Message=message, MessageType="RAW", SigningAlgorithm=algorithm)
        assert signed["KeyId"] == meta["Arn"] and signed["SigningAlgorithm"] == algorithm
        local_verify(pub, algorithm, signed["Signature"], message)
        with pytest.raises(InvalidSignature):
            local_verify(pub, algorithm, signed["Signature"], message + b"!")
        verified = kms.verify(KeyId=meta["KeyId"], Message=message, Signature=signed["Signature"],
                              SigningAlgorithm=algorithm)
        assert verified["SignatureValid"] is True and verified["KeyId"] == meta["Arn"]
        with client_error("KMSInvalidSignatureException"):
            kms.verify(KeyId=meta["KeyId"], Message=message + b"!", Signature=signed["Signature"],
                       SigningAlgorithm=algorithm)
        # a digest computed here, signed there: the signature is over the same message
        hash_name = {"256": "sha256", "384": "sha384", "512": "sha512"}[algorithm[-3:]]
        digest = hashlib.new(hash_name, message).digest()
        signed = kms.sign(KeyId=meta["Arn"], Message=digest, MessageType="DIGEST", SigningAlgorithm=algorithm)
        local_verify(pub, algorithm, signed["Signature"], message)
        assert kms.verify(KeyId=meta["KeyId"], Message=message, MessageType="RAW", Signature=signed["Signature"],
                          SigningAlgorithm=algorithm)["SignatureValid"] is True


def test_sign_verify_cli(aws, kmsd, kms, asym, tmp_path):
    meta = asym["p256"]
    message = b"signed through the AWS CLI " + os.urandom(16)
    msg = write(tmp_path, "message", message)
    signed = aws("sign", "--key-id", new_alias(kms, meta), "--message", msg, "--message-type", "RAW",
                 "--signing-algorithm", "ECDSA_SHA_256")
    assert signed["KeyId"] == meta["Arn"]
    signature = base64.b64decode(signed["Signature"])
    local_verify(public_key(kms, meta["KeyId"]), "ECDSA_SHA_256", signature, message)
    sig = write(tmp_path, "signature", signature)
    verified = aws("verify", "--key-id", meta["KeyId"], "--message", msg, "--message-type", "RAW",
                   "--signature", sig, "--signing-algorithm", "ECDSA_SHA_256")
    assert verified["SignatureValid"] is True
    kmsd.aws_error("KMSInvalidSignatureException", "verify", "--key-id", meta["KeyId"],
                   "--message", write(tmp_path, "other", message + b"."), "--message-type", "RAW",
                   "--signature", sig, "--signing-algorithm", "ECDSA_SHA_256")


def test_generate_data_key_pair(kms):
    _, serialization, _, _, _, _ = crypto()
    key = kms.create_key()["KeyMetadata"]
    ctx = {"pair": "yes"}
    for spec in ("ECC_NIST_P256", "RSA_2048"):
        pair = kms.generate_data_key_pair(KeyId=key["KeyId"], KeyPairSpec=spec, EncryptionContext=ctx)
        assert pair["KeyId"] == key["Arn"] and pair["KeyPairSpec"] == spec
        pub = serialization.load_der_public_key(pair["PublicKey"])
        priv = serialization.load_der_private_key(pair["PrivateKeyPlaintext"], password=None)
        assert priv.public_key().public_numbers() == pub.public_numbers()
        opened = kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"], EncryptionContext=ctx)
        assert opened["Plaintext"] == pair["PrivateKeyPlaintext"]
        with client_error("InvalidCiphertextException"):
            kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"])
    bare = kms.generate_data_key_pair_without_plaintext(KeyId=key["KeyId"], KeyPairSpec="ECC_NIST_P384")
    assert "PrivateKeyPlaintext" not in bare
    priv = serialization.load_der_private_key(kms.decrypt(CiphertextBlob=bare["PrivateKeyCiphertextBlob"])["Plaintext"],
                                              password=None)
    assert priv.public_key().public_numbers() == serialization.load_der_public_key(bare["PublicKey"]).public_numbers()


def test_asymmetric_key_limits(kmsd, kms, asym):
    sym = kms.create_key()["KeyMetadata"]
    with client_error("UnsupportedOperationException"):
        kms.get_public_key(KeyId=sym["KeyId"])
    for name in ("rsa2048_enc", "p256"):
        with client_error("UnsupportedOperationException"):
            kms.enable_key_rotation(KeyId=asym[name]["KeyId"])
        with client_error("UnsupportedOperationException"):
            kmsd.api("RotateKeyOnDemand", KeyId=asym[name]["KeyId"])
    with client_error("UnsupportedOperationException"):
        kms.get_parameters_for_import(KeyId=sym["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                      WrappingKeySpec="RSA_2048")


# ---- imported key material --------------------------------------------------------------------------

def wrap(params, material, algorithm="RSAES_OAEP_SHA_256"):
    """Wrap material with GetParametersForImport's PublicKey as AWS's import tools do."""
    hashes, serialization, _, padding, _, keywrap = crypto()
    pub = serialization.load_der_public_key(params["PublicKey"])
    digest = hashes.SHA256() if algorithm.endswith("SHA_256") else hashes.SHA1()
    oaep = padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)
    if algorithm.startswith("RSA_AES_KEY_WRAP"):
        aes_key = os.urandom(32)
        return pub.encrypt(aes_key, oaep) + keywrap.aes_key_wrap_with_padding(aes_key, material)
    return pub.encrypt(material, oaep)


def test_import_key_material(aws, kmsd, kms, tmp_path):
    crypto()
    meta = aws("create-key", "--origin", "EXTERNAL", "--description", "imported")["KeyMetadata"]
    key_id = meta["KeyId"]
    assert meta["Origin"] == "EXTERNAL" and meta["KeyState"] == "PendingImport" and meta["Enabled"] is False
    with client_error("KMSInvalidStateException"):
        kms.encrypt(KeyId=key_id, Plaintext=b"x")

    got = aws("get-parameters-for-import", "--key-id", key_id, "--wrapping-algorithm", "RSAES_OAEP_SHA_256",
              "--wrapping-key-spec", "RSA_2048")
    assert got["KeyId"] == meta["Arn"]
    assert near(got["ParametersValidTo"], time.time() + 86400)
    params = {"PublicKey": base64.b64decode(got["PublicKey"]), "ImportToken": base64.b64decode(got["ImportToken"])}
    _, serialization, _, _, _, _ = crypto()
    assert serialization.load_der_public_key(params["PublicKey"]).key_size == 2048
    material = os.urandom(32)

    # parameters of another key, or material wrapped with another wrapping key, do not import
    other = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
    other_params = kms.get_parameters_for_import(KeyId=other["KeyId"], WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256",
                                                 WrappingKeySpec="RSA_2048")
    with client_error("InvalidImportTokenException"):
        kms.import_key_material(KeyId=key_id, ImportToken=other_params["ImportToken"],
                                EncryptedKeyMaterial=wrap(params, material),
                                ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    with client_error("InvalidCiphertextException"):
        kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"],
                                EncryptedKeyMaterial=wrap(other_params, material),
                                ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    with client_error("IncorrectKeyMaterialException"):   # 16 bytes are no symmetric key here
        kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"],
                                EncryptedKeyMaterial=wrap(params, os.urandom(16)),
                                ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"

    assert aws("import-key-material", "--key-id", key_id,
               "--import-token", write(tmp_path, "token", params["ImportToken"]),
               "--encrypted-key-material", write(tmp_path, "material", wrap(params, material)),
               "--expiration-model", "KEY_MATERIAL_DOES_NOT_EXPIRE") is None
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "Enabled" and meta["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"under imported material")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"under imported material"
    with client_error("InvalidImportTokenException"):   # parameters are spent by a successful import
        kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"],
                                EncryptedKeyMaterial=wrap(params, material),
                                ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    with client_error("UnsupportedOperationException"):
        kmsd.api("RotateKeyOnDemand", KeyId=key_id)

    # deleting the material makes the key unusable, its ciphertext too
    assert kms.delete_imported_key_material(KeyId=key_id)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    with client_error("KMSInvalidStateException"):
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    with client_error("KMSInvalidStateException"):
        kms.decrypt(CiphertextBlob=blob)
    with client_error("KMSInvalidStateException"):
        kms.delete_imported_key_material(KeyId=key_id)

    # only the same material can come back, and with it the old ciphertext opens again
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_1", WrappingKeySpec="RSA_2048")
    with client_error("IncorrectKeyMaterialException"):
        kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"],
                                EncryptedKeyMaterial=wrap(params, os.urandom(32), "RSAES_OAEP_SHA_1"),
                                ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    valid_to = int(time.time()) + 2 * 86400
    kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"],
                            EncryptedKeyMaterial=wrap(params, material, "RSAES_OAEP_SHA_1"), ValidTo=valid_to)
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "Enabled" and meta["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert near(meta["ValidTo"], valid_to, slack=2)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"under imported material"

    # the two-step wrapping (RSA-OAEP of an AES key, then AES key wrap with padding)
    kms.import_key_material(KeyId=other["KeyId"], ImportToken=other_params["ImportToken"],
                            EncryptedKeyMaterial=wrap(other_params, os.urandom(32), "RSA_AES_KEY_WRAP_SHA_256"),
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    blob = kms.encrypt(KeyId=other["KeyId"], Plaintext=b"two-step")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"two-step"


# ---- errors only a client's own choices produce --------------------------------------------------

def test_serialization_exception_from_boto3(kmsd):
    """boto3 with its own validation off sends a string where kmsd expects a number."""
    raw = kmsd.client(validate=False)
    with client_error("SerializationException", "Limit"):
        raw.list_keys(Limit="many")
    with client_error("SerializationException"):
        raw.encrypt(KeyId="alias/whatever", Plaintext=b"x", EncryptionContext={"k": 7})


def test_unsigned_boto3_request(kmsd):
    with client_error("MissingAuthenticationTokenException"):
        kmsd.client(unsigned=True).list_keys()
