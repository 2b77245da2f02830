"""kmsd's audit trail: one CloudTrail record per request - allowed, denied, malformed or
unauthenticated - with the request id the client saw, and never any plaintext.

Each test runs its own kmsd so the trail holds exactly the requests the test made.
"""
import base64
import datetime
import json
import os
import re
import stat

import pytest

import kmsd_it

import boto3  # noqa: F401 - installed by tools/install-deps.sh; missing must fail, not skip


def _request_id(call):
    """Run a boto3 call; return its request id whether it succeeded or raised ClientError."""
    import botocore.exceptions
    try:
        return call()["ResponseMetadata"]["RequestId"], None
    except botocore.exceptions.ClientError as e:
        return e.response["ResponseMetadata"]["RequestId"], e.response["Error"]["Code"]


def test_one_record_per_request(kmsd_factory):
    server = kmsd_factory()
    admin, bob = server.client("admin"), server.client("bob")
    marker = os.urandom(12).hex()
    plaintext = ("PLAINTEXT-%s" % marker).encode()
    made = {}   # request id -> (eventName, errorCode or None, user name or None)

    rid, _ = _request_id(lambda: admin.create_key(Description="audited"))
    made[rid] = ("CreateKey", None, "admin")
    created = [r for r in server.audit_records() if r["requestID"] == rid][0]
    key_arn = created["resources"][0]["ARN"]
    key_id = key_arn.split("/")[-1]

    enc = admin.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext={"case": "audit"})
    made[enc["ResponseMetadata"]["RequestId"]] = ("Encrypt", None, "admin")
    dec = admin.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext={"case": "audit"})
    assert dec["Plaintext"] == plaintext
    made[dec["ResponseMetadata"]["RequestId"]] = ("Decrypt", None, "admin")
    dk = admin.generate_data_key(KeyId=key_id, NumberOfBytes=32)
    made[dk["ResponseMetadata"]["RequestId"]] = ("GenerateDataKey", None, "admin")

    rid, code = _request_id(lambda: bob.create_key())
    assert code == "AccessDeniedException"
    made[rid] = ("CreateKey", "AccessDeniedException", "bob")
    rid, code = _request_id(lambda: bob.decrypt(CiphertextBlob=enc["CiphertextBlob"],
                                                EncryptionContext={"case": "audit"}))
    assert code == "AccessDeniedException"
    made[rid] = ("Decrypt", "AccessDeniedException", "bob")

    r = server.post("ListKeys", {}, sign=False)
    made[r.request_id] = ("ListKeys", "MissingAuthenticationTokenException", None)
    stranger = kmsd_it.User("stranger")
    r = server.post("ListKeys", {}, user=stranger)
    made[r.request_id] = ("ListKeys", "UnrecognizedClientException", None)
    r = server.post("Encrypt", {"KeyId": key_id, "Plaintext": base64.b64encode(plaintext).decode()},
                    secret="wrong-secret-wrong-secret")
    assert r.status == 403
    made[r.request_id] = ("Encrypt", "InvalidSignatureException", None)
    r = server.post("NoSuchOperation", {})
    made[r.request_id] = ("NoSuchOperation", "UnknownOperationException", "admin")
    r = server.post("Encrypt", b'{"KeyId": "%s", "Plaintext": "%s"' % (key_id.encode(), base64.b64encode(plaintext)))
    assert r.status == 400
    made[r.request_id] = ("Encrypt", "SerializationException", "admin")
    r = server.post("CreateKey", b"{" + b" " * 70000 + b"}")
    assert r.status == 413
    made[r.request_id] = ("CreateKey", "ValidationException", None)

    records = server.audit_records()
    by_id = {}
    for rec in records:
        by_id.setdefault(rec["requestID"], []).append(rec)
    assert len(records) == len(made), "expected one record per request: %d records, %d requests" % (len(records), len(made))
    for rid, (event, error, user) in made.items():
        assert len(by_id.get(rid, [])) == 1, "request %s (%s) has %d audit records" % (rid, event, len(by_id.get(rid, [])))
        rec = by_id[rid][0]
        check_record_shape(rec)
        assert rec["eventName"] == event
        assert rec.get("errorCode") == error, rec
        if error:
            assert rec["errorMessage"]
        ident = rec["userIdentity"]
        if user:
            u = server.user(user)
            assert ident["type"] == "IAMUser"
            assert ident["arn"] == u.arn
            assert ident["accessKeyId"] == u.access_key_id
            assert ident["userName"] == user
            assert ident["accountId"] == kmsd_it.ACCOUNT
        else:
            assert ident["type"] == "Unknown"
            assert "arn" not in ident
    # unauthenticated requests keep the access key id they claimed, nothing more
    wrong_secret = [r for r in records if r.get("errorCode") == "InvalidSignatureException"][0]
    assert wrong_secret["userIdentity"]["accessKeyId"] == server.user("admin").access_key_id
    unknown = [r for r in records if r.get("errorCode") == "UnrecognizedClientException"][0]
    assert unknown["userIdentity"]["accessKeyId"] == stranger.access_key_id

    # the operations on a key name it as a resource
    for rec in records:
        if rec["eventName"] in ("Encrypt", "Decrypt", "GenerateDataKey") and not rec.get("errorCode"):
            assert rec["resources"] == [{"accountId": kmsd_it.ACCOUNT, "type": "AWS::KMS::Key", "ARN": key_arn}]
            assert rec["readOnly"] is True
            if rec["eventName"] != "Decrypt":   # Decrypt's request names no key: the blob does
                assert rec["requestParameters"]["keyId"] == key_id

    # no plaintext anywhere: not the Encrypt input, not the data key, in no encoding
    text = server.audit_text()
    for secret in (plaintext, dk["Plaintext"]):
        for form in (secret, base64.b64encode(secret), secret.hex().encode()):
            assert form.decode("latin-1") not in text, "plaintext found in the audit trail"
    assert marker not in text
    # nor in kmsd's own log (it runs with --verbose: a line per request)
    log = server.stderr()
    assert marker not in log and base64.b64encode(dk["Plaintext"]).decode() not in log
    for user in server.users.values():
        assert user.secret_access_key not in log and user.secret_access_key not in text


def check_record_shape(rec):
    assert rec["eventVersion"] == "1.08"
    assert rec["eventSource"] == "kms.amazonaws.com"
    assert rec["awsRegion"] == kmsd_it.REGION
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", rec["eventTime"])
    assert rec["sourceIPAddress"] == "127.0.0.1"
    assert isinstance(rec["userAgent"], str)
    assert rec["eventType"] == "AwsApiCall"
    assert rec["managementEvent"] is True
    assert rec["recipientAccountId"] == kmsd_it.ACCOUNT
    assert rec["eventCategory"] == "Management"
    assert isinstance(rec["readOnly"], bool)
    assert re.match(r"^[0-9a-f-]{36}$", rec["eventID"]) and rec["eventID"] != rec["requestID"]
    assert "requestParameters" in rec and "responseElements" in rec


def test_trail_files_and_modes(kmsd_factory):
    server = kmsd_factory()
    server.post("ListKeys", {})
    now = datetime.datetime.utcnow()
    days = {(now + datetime.timedelta(minutes=d)).strftime("%Y%m%d") for d in (-5, 0)}  # near midnight
    files = server.audit_files()
    assert files and all(re.match(r"^kmsd-\d{8}\.jsonl$", os.path.basename(f)) for f in files)
    assert {os.path.basename(f)[5:13] for f in files} <= days
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(server.audit_dir).st_mode) == 0o700
    for line in open(files[0]):
        json.loads(line)


def test_user_agent_and_request_id_from_cli(kmsd_factory):
    if kmsd_it.aws_cli_binary() is None:
        pytest.fail("no AWS CLI")
    server = kmsd_factory()
    proc = server.aws("list-keys", "--debug", check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r"x-amzn-RequestId['\"]?: ['\"]?([0-9a-f-]{36})", proc.stderr, re.I)
    assert m, "no request id in the CLI's debug output"
    recs = server.audit_for(m.group(1))
    assert len(recs) == 1
    assert recs[0]["userAgent"].startswith("aws-cli/")
    assert recs[0]["eventName"] == "ListKeys"
