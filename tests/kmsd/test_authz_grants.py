"""Authorization through kmsd as AWS KMS decides it, seen by a second principal: bob (an IAM user
of the account with no identity policy) is denied on admin's keys until a grant or the key policy
lets him in, only for what they name; an explicit Deny in a key policy beats every Allow and grant.

Error types seen here through boto3 or the AWS CLI: AccessDeniedException (message naming the
caller's ARN and the action), InvalidGrantIdException, InvalidGrantTokenException,
NotFoundException (grants), MalformedPolicyDocumentException (lockout safety check),
ValidationException (grant operations).
"""
import base64
import json
import re
import secrets

import pytest

import kmsd_it
from kmsd_it import client_error

import boto3  # noqa: F401 - installed by tools/install-deps.sh; missing must fail, not skip

ROOT = "arn:aws:iam::%s:root" % kmsd_it.ACCOUNT


def denied(kmsd, user, action):
    """client_error for AWS's denial of action to user (name): message names both."""
    return client_error("AccessDeniedException", kmsd.user(user).arn, action)


def policy(*statements):
    """A key policy: the account root may do everything (so admin's identity policy applies),
    plus statements."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*",
         "Resource": "*"}] + list(statements)})


def test_bob_is_denied_until_a_grant_allows_him(kmsd, kms, aws, tmp_path):
    bob_arn = kmsd.user("bob").arn
    bob = kmsd.client("bob")
    key = kms.create_key(Description="admin's key")["KeyMetadata"]
    ctx = {"case": "grant"}
    plaintext = secrets.token_bytes(64)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=plaintext, EncryptionContext=ctx)["CiphertextBlob"]
    blob_file = tmp_path / "blob"
    blob_file.write_bytes(blob)

    with denied(kmsd, "bob", "kms:Decrypt") as e:
        bob.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)
    assert key["Arn"] in e.message
    with denied(kmsd, "bob", "kms:GenerateDataKey"):
        bob.generate_data_key(KeyId=key["Arn"], KeySpec="AES_256")
    with denied(kmsd, "bob", "kms:DescribeKey"):
        bob.describe_key(KeyId=key["KeyId"])
    e = kmsd.aws_error("AccessDeniedException", "decrypt", "--ciphertext-blob", "fileb://%s" % blob_file,
                       "--encryption-context", "case=grant", user="bob")
    assert bob_arn in e.stderr and "kms:Decrypt" in e.stderr
    # nor may bob act on the account: no identity policy
    for call, action in ((lambda: bob.list_keys(), "kms:ListKeys"),
                         (lambda: bob.generate_random(NumberOfBytes=8), "kms:GenerateRandom")):
        with denied(kmsd, "bob", action):
            call()

    grant = aws("create-grant", "--key-id", key["Arn"], "--grantee-principal", bob_arn,
                "--operations", "Decrypt", "GenerateDataKey", "--retiring-principal", bob_arn,
                "--name", "bob-data-keys")
    assert re.match(r"^[0-9a-f]{64}$", grant["GrantId"]), grant
    assert grant["GrantToken"]
    listed = aws("list-grants", "--key-id", key["KeyId"])["Grants"]
    assert len(listed) == 1
    entry = listed[0]
    assert entry["GrantId"] == grant["GrantId"] and entry["KeyId"] == key["Arn"]
    assert entry["GranteePrincipal"] == bob_arn and entry["RetiringPrincipal"] == bob_arn
    assert sorted(entry["Operations"]) == ["Decrypt", "GenerateDataKey"]
    assert entry["Name"] == "bob-data-keys"
    retirable = aws("list-retirable-grants", "--retiring-principal", bob_arn)["Grants"]
    assert grant["GrantId"] in [g["GrantId"] for g in retirable]

    # what the grant names, bob may now do - through boto3 and the CLI
    assert bob.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == plaintext
    dec = aws("decrypt", "--ciphertext-blob", "fileb://%s" % blob_file, "--encryption-context", "case=grant",
              user="bob")
    assert base64.b64decode(dec["Plaintext"]) == plaintext and dec["KeyId"] == key["Arn"]
    dk = bob.generate_data_key(KeyId=key["Arn"], KeySpec="AES_256", EncryptionContext={"by": "bob"})
    assert dk["KeyId"] == key["Arn"] and len(dk["Plaintext"]) == 32
    assert bob.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"by": "bob"})["Plaintext"] == dk["Plaintext"]
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"by": "bob"})["Plaintext"] == dk["Plaintext"]
    # and nothing more
    for call, action in ((lambda: bob.describe_key(KeyId=key["KeyId"]), "kms:DescribeKey"),
                         (lambda: bob.encrypt(KeyId=key["KeyId"], Plaintext=b"x"), "kms:Encrypt"),
                         (lambda: bob.generate_data_key_without_plaintext(KeyId=key["KeyId"], KeySpec="AES_256"),
                          "kms:GenerateDataKeyWithoutPlaintext"),
                         (lambda: bob.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext=ctx,
                                                 DestinationKeyId=key["KeyId"]), "kms:ReEncrypt"),
                         (lambda: bob.disable_key(KeyId=key["KeyId"]), "kms:DisableKey"),
                         (lambda: bob.create_grant(KeyId=key["KeyId"], GranteePrincipal=bob_arn,
                                                   Operations=["Encrypt"]), "kms:CreateGrant")):
        with denied(kmsd, "bob", action):
            call()

    # bob, the retiring principal, retires it: denied again
    assert aws("retire-grant", "--grant-token", grant["GrantToken"], user="bob") is None
    with denied(kmsd, "bob", "kms:Decrypt"):
        bob.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)
    with denied(kmsd, "bob", "kms:GenerateDataKey"):
        bob.generate_data_key(KeyId=key["Arn"], KeySpec="AES_256")
    assert kms.list_grants(KeyId=key["KeyId"])["Grants"] == []

    # a grant admin revokes
    second = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=bob_arn, Operations=["Decrypt"])
    assert bob.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == plaintext
    with denied(kmsd, "bob", "kms:RetireGrant"):   # grantee, but neither retiring principal nor granted RetireGrant
        bob.retire_grant(GrantToken=second["GrantToken"])
    assert aws("revoke-grant", "--key-id", key["KeyId"], "--grant-id", second["GrantId"]) is None
    with denied(kmsd, "bob", "kms:Decrypt"):
        bob.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)
    with client_error("NotFoundException"):
        kms.revoke_grant(KeyId=key["KeyId"], GrantId=second["GrantId"])
    with client_error("NotFoundException"):
        kms.retire_grant(GrantToken=second["GrantToken"])


def test_grant_constraints(kmsd, kms, aws):
    bob_arn = kmsd.user("bob").arn
    bob = kmsd.client("bob")
    key = kms.create_key(Description="constrained grants")["KeyMetadata"]
    eng = {"dept": "eng"}
    subset = aws("create-grant", "--key-id", key["KeyId"], "--grantee-principal", bob_arn,
                 "--operations", "GenerateDataKey", "Decrypt",
                 "--constraints", json.dumps({"EncryptionContextSubset": eng}))
    entry = kms.list_grants(KeyId=key["KeyId"], GrantId=subset["GrantId"])["Grants"]
    assert len(entry) == 1 and entry[0]["Constraints"] == {"EncryptionContextSubset": eng}

    for ctx in (eng, {"dept": "eng", "project": "p1"}):
        dk = bob.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256", EncryptionContext=ctx)
        assert bob.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == dk["Plaintext"]
    for ctx in ({"dept": "ops"}, {}, {"project": "p1"}, {"dept": "ENG"}):
        with denied(kmsd, "bob", "kms:GenerateDataKey"):
            bob.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256", EncryptionContext=ctx)
    ops_blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"ops only", EncryptionContext={"dept": "ops"})["CiphertextBlob"]
    with denied(kmsd, "bob", "kms:Decrypt"):
        bob.decrypt(CiphertextBlob=ops_blob, EncryptionContext={"dept": "ops"})

    # EncryptionContextEquals: exactly that context, no more
    other = kms.create_key(Description="equals grant")["KeyMetadata"]
    kms.create_grant(KeyId=other["Arn"], GranteePrincipal=bob_arn, Operations=["GenerateDataKey", "Decrypt"],
                     Constraints={"EncryptionContextEquals": eng})
    dk = bob.generate_data_key(KeyId=other["KeyId"], NumberOfBytes=16, EncryptionContext=eng)
    assert bob.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=eng)["Plaintext"] == dk["Plaintext"]
    for ctx in ({"dept": "eng", "project": "p1"}, {}, {"dept": "ops"}):
        with denied(kmsd, "bob", "kms:GenerateDataKey"):
            bob.generate_data_key(KeyId=other["KeyId"], NumberOfBytes=16, EncryptionContext=ctx)


def test_grant_id_and_token_errors(kmsd, kms):
    bob_arn = kmsd.user("bob").arn
    key = kms.create_key()["KeyMetadata"]
    with client_error("InvalidGrantIdException"):
        kms.revoke_grant(KeyId=key["KeyId"], GrantId="not-a-grant-id")
    with client_error("InvalidGrantIdException"):
        kms.list_grants(KeyId=key["KeyId"], GrantId="zz")
    with client_error("InvalidGrantTokenException"):
        kms.retire_grant(GrantToken="bm90IGEgZ3JhbnQgdG9rZW4=")
    with client_error("NotFoundException"):
        kms.revoke_grant(KeyId=key["KeyId"], GrantId=secrets.token_hex(32))
    with client_error("NotFoundException"):
        kms.retire_grant(KeyId=key["KeyId"], GrantId=secrets.token_hex(32))
    with client_error("ValidationException"):
        kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=bob_arn, Operations=["Fly"])
    with client_error("ValidationException"):
        kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=bob_arn, Operations=[])
    with client_error("NotFoundException"):
        kms.create_grant(KeyId="alias/%s" % secrets.token_hex(4), GranteePrincipal=bob_arn, Operations=["Decrypt"])

    # the same named request twice is one grant (AWS's idempotency rule); paging through them
    first = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=bob_arn, Operations=["Decrypt"], Name="same")
    again = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=bob_arn, Operations=["Decrypt"], Name="same")
    assert again["GrantId"] == first["GrantId"]
    kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=bob_arn, Operations=["Encrypt"])
    page = kms.list_grants(KeyId=key["KeyId"], Limit=1)
    assert len(page["Grants"]) == 1 and page["Truncated"] is True
    rest = kms.list_grants(KeyId=key["KeyId"], Limit=10, Marker=page["NextMarker"])
    assert len(rest["Grants"]) == 1 and rest["Truncated"] is False
    assert {page["Grants"][0]["GrantId"], rest["Grants"][0]["GrantId"]} >= {first["GrantId"]}
    with client_error("InvalidMarkerException"):
        kms.list_grants(KeyId=key["KeyId"], Marker="garbage")
    # admin retires by key and grant id
    kms.retire_grant(KeyId=key["Arn"], GrantId=first["GrantId"])
    assert first["GrantId"] not in [g["GrantId"] for g in kms.list_grants(KeyId=key["KeyId"])["Grants"]]


def test_key_policy_naming_bob_allows_him(kmsd, kms, aws, tmp_path):
    bob_arn = kmsd.user("bob").arn
    bob = kmsd.client("bob")
    key = kms.create_key(Description="policy for bob")["KeyMetadata"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"for bob")["CiphertextBlob"]
    with denied(kmsd, "bob", "kms:DescribeKey"):
        bob.describe_key(KeyId=key["KeyId"])
    text = policy({"Sid": "Bob", "Effect": "Allow", "Principal": {"AWS": bob_arn},
                   "Action": ["kms:Decrypt", "kms:DescribeKey"], "Resource": "*"},
                  {"Sid": "BobEngDataKeys", "Effect": "Allow", "Principal": {"AWS": bob_arn},
                   "Action": "kms:GenerateDataKey", "Resource": "*",
                   "Condition": {"StringEquals": {"kms:EncryptionContext:dept": "eng"}}})
    (tmp_path / "policy.json").write_text(text)
    aws("put-key-policy", "--key-id", key["KeyId"], "--policy-name", "default",
        "--policy", "file://%s" % (tmp_path / "policy.json"))

    assert bob.describe_key(KeyId=key["Arn"])["KeyMetadata"]["KeyId"] == key["KeyId"]
    assert bob.decrypt(CiphertextBlob=blob)["Plaintext"] == b"for bob"
    dk = bob.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256", EncryptionContext={"dept": "eng"})
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"dept": "eng"})["Plaintext"] == dk["Plaintext"]
    with denied(kmsd, "bob", "kms:GenerateDataKey"):
        bob.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256", EncryptionContext={"dept": "ops"})
    for call, action in ((lambda: bob.encrypt(KeyId=key["KeyId"], Plaintext=b"x"), "kms:Encrypt"),
                         (lambda: bob.get_key_policy(KeyId=key["KeyId"], PolicyName="default"), "kms:GetKeyPolicy"),
                         (lambda: bob.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=text),
                          "kms:PutKeyPolicy")):
        with denied(kmsd, "bob", action):
            call()
    # admin still acts through the account's statement and his identity policy
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"for bob"

    # a key created with such a policy lets bob in from the start
    made = kms.create_key(Policy=policy({"Effect": "Allow", "Principal": {"AWS": bob_arn},
                                         "Action": "kms:DescribeKey", "Resource": "*"}))["KeyMetadata"]
    assert bob.describe_key(KeyId=made["KeyId"])["KeyMetadata"]["Arn"] == made["Arn"]
    with denied(kmsd, "bob", "kms:Encrypt"):
        bob.encrypt(KeyId=made["KeyId"], Plaintext=b"x")


def test_explicit_deny_beats_every_allow(kmsd, kms):
    admin_arn = kmsd.user("admin").arn
    key = kms.create_key(Description="deny admin decrypt")["KeyMetadata"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"locked")["CiphertextBlob"]
    deny = {"Sid": "NoDecryptForAdmin", "Effect": "Deny", "Principal": {"AWS": admin_arn},
            "Action": "kms:Decrypt", "Resource": "*"}
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=policy(deny))
    with denied(kmsd, "admin", "kms:Decrypt") as e:
        kms.decrypt(CiphertextBlob=blob)
    assert "explicit deny" in e.message and key["Arn"] in e.message
    # what is not denied still works
    assert kms.encrypt(KeyId=key["KeyId"], Plaintext=b"still")["KeyId"] == key["Arn"]
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    # a grant does not get round an explicit deny
    kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=admin_arn, Operations=["Decrypt"])
    with denied(kmsd, "admin", "kms:Decrypt"):
        kms.decrypt(CiphertextBlob=blob)
    # lifting the deny lifts the denial
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=policy())
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"locked"

    # denying admin kms:PutKeyPolicy would lock him out: refused unless he insists
    lockout = policy({"Effect": "Deny", "Principal": {"AWS": admin_arn}, "Action": "kms:PutKeyPolicy",
                      "Resource": "*"})
    with client_error("MalformedPolicyDocumentException"):
        kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=lockout)
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=lockout, BypassPolicyLockoutSafetyCheck=True)
    with denied(kmsd, "admin", "kms:PutKeyPolicy"):
        kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=policy())
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"locked"
