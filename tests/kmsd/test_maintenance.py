"""kmsd's own background work, end to end: a key scheduled for deletion is really deleted
once its window has passed, and a key with automatic rotation rotates when its period is up.

A test cannot wait 7 days, and kmsd has no clock override (a key service must not have one).
So the test stops kmsd, moves the due date of the key into the past in the key store itself
(an SQLite file kmsd holds exclusively only while it runs), and starts kmsd again: kmsd's
maintenance pass, which runs at start and every minute, must then do the work.
"""
import sqlite3
import time

import pytest


def set_key_column(server, key_id, column, value):
    db = sqlite3.connect(server.data_dir + "/keystore.db")
    try:
        db.execute("UPDATE keys SET %s = ? WHERE key_id = ?" % column, (value, key_id))
        db.commit()
    finally:
        db.close()


def key_exists_in_store(server, key_id):
    db = sqlite3.connect(server.data_dir + "/keystore.db")
    try:
        tables = ["keys", "key_material", "aliases", "key_tags", "grants"]
        return {t: db.execute("SELECT COUNT(*) FROM %s WHERE key_id = ?" % t,
                              (key_id,)).fetchone()[0] for t in tables}
    finally:
        db.close()


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_deletion_happens_when_the_window_ends(kmsd_factory):
    server = kmsd_factory()
    kms = server.client()
    key_id = kms.create_key(Description="doomed", Tags=[{"TagKey": "t", "TagValue": "v"}])["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/doomed", TargetKeyId=key_id)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"gone soon")["CiphertextBlob"]
    kept = kms.create_key(Description="kept")["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    kms.schedule_key_deletion(KeyId=kept, PendingWindowInDays=7)

    # Restarting before the window ends deletes nothing.
    server.stop()
    server.start()
    kms = server.client()
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"

    server.stop()
    set_key_column(server, key_id, "deletion_date", int(time.time()) - 1)
    server.start()
    kms = server.client()

    def deleted():
        try:
            kms.describe_key(KeyId=key_id)
            return False
        except kms.exceptions.NotFoundException:
            return True
    assert wait_for(deleted), "key still there after its deletion date"
    with pytest.raises(kms.exceptions.NotFoundException):
        kms.describe_key(KeyId="alias/doomed")
    with pytest.raises(kms.exceptions.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=blob)
    assert kms.describe_key(KeyId=kept)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    server.stop()
    assert key_exists_in_store(server, key_id) == {t: 0 for t in
                                                   ["keys", "key_material", "aliases", "key_tags", "grants"]}


def test_automatic_rotation_when_the_period_is_up(kmsd_factory):
    server = kmsd_factory()
    kms = server.client()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    before = kms.encrypt(KeyId=key_id, Plaintext=b"before rotation")["CiphertextBlob"]
    # Debian 12's botocore predates RotationPeriodInDays and ListKeyRotations: signed raw requests.
    server.api("EnableKeyRotation", KeyId=key_id, RotationPeriodInDays=90)
    status = server.api("GetKeyRotationStatus", KeyId=key_id)
    assert status["KeyRotationEnabled"] and status["RotationPeriodInDays"] == 90
    assert server.api("ListKeyRotations", KeyId=key_id)["Rotations"] == []

    server.stop()
    set_key_column(server, key_id, "next_rotation", int(time.time()) - 1)
    server.start()
    kms = server.client()
    assert wait_for(lambda: len(server.api("ListKeyRotations", KeyId=key_id)["Rotations"]) == 1)
    rotation = server.api("ListKeyRotations", KeyId=key_id)["Rotations"][0]
    assert rotation["RotationType"] == "AUTOMATIC"
    # The next rotation is a period later, and old ciphertext still decrypts.
    status = server.api("GetKeyRotationStatus", KeyId=key_id)
    assert status["NextRotationDate"] > time.time() + 89 * 86400
    assert kms.decrypt(CiphertextBlob=before)["Plaintext"] == b"before rotation"
    after = kms.encrypt(KeyId=key_id, Plaintext=b"after rotation")["CiphertextBlob"]
    # The blob names its key-material version (u32 big-endian after version, store and key ids).
    assert int.from_bytes(before[33:37], "big") == 1
    assert int.from_bytes(after[33:37], "big") == 2
    assert kms.decrypt(CiphertextBlob=after)["Plaintext"] == b"after rotation"
