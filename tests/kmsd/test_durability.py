"""kmsd's key store under crashes: `kill -9` at any moment loses no key (nor alias) a client was
told exists, and a second kmsd cannot open a store that one already holds.
"""
import concurrent.futures
import os
import random
import signal
import threading
import time

import pytest

import kmsd_it

import boto3  # noqa: F401 - installed by tools/install-deps.sh; missing must fail, not skip

ROUNDS = 5
WRITERS = 2


class Writer(threading.Thread):
    """Creates keys, each followed by an Encrypt and a CreateAlias, until its kmsd goes away.

    Records only what kmsd acknowledged: a key once CreateKey returned, its ciphertext once
    Encrypt returned, its alias once CreateAlias returned. An error reply (rather than a broken
    connection) is kept in `unexpected` and the writer goes on with its next key.
    """

    def __init__(self, server, name, records, lock):
        super().__init__(name=name, daemon=True)
        self.kms = server.client()
        self.records = records
        self.lock = lock
        self.unexpected = []
        self.made = 0

    def run(self):
        import botocore.exceptions
        n = 0
        while True:
            n += 1
            record = {}
            try:
                meta = self.kms.create_key(Description="%s #%d" % (self.name, n))["KeyMetadata"]
                record["key_id"] = meta["KeyId"]
                with self.lock:
                    self.records.append(record)
                self.made += 1
                plaintext = os.urandom(32)
                ctx = {"writer": self.name, "n": str(n)}
                blob = self.kms.encrypt(KeyId=meta["KeyId"], Plaintext=plaintext, EncryptionContext=ctx)["CiphertextBlob"]
                record.update(blob=blob, plaintext=plaintext, ctx=ctx)
                alias = "alias/durable-%s-%d-%s" % (self.name, n, os.urandom(3).hex())
                self.kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
                record["alias"] = alias
            except botocore.exceptions.ClientError as e:   # noted; the next key is tried
                self.unexpected.append("%s: %s" % (e.response["Error"]["Code"], e.response["Error"]["Message"]))
            except botocore.exceptions.BotoCoreError:
                return    # the connection went with kmsd


def check_records(server, records):
    """Every acknowledged key describes, decrypts its ciphertext and keeps its alias."""
    local = threading.local()

    def check(record):
        if not hasattr(local, "kms"):
            local.kms = server.client()
        kms = local.kms
        meta = kms.describe_key(KeyId=record["key_id"])["KeyMetadata"]
        assert meta["KeyState"] == "Enabled", meta
        if "blob" in record:
            dec = kms.decrypt(CiphertextBlob=record["blob"], EncryptionContext=record["ctx"])
            assert dec["Plaintext"] == record["plaintext"] and dec["KeyId"] == meta["Arn"]
        if "alias" in record:
            assert kms.describe_key(KeyId=record["alias"])["KeyMetadata"]["KeyId"] == record["key_id"]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(check, records))   # re-raises the first failure


def test_kill_9_loses_no_acknowledged_key(kmsd_factory):
    server = kmsd_factory()
    rng = random.Random()
    records, lock = [], threading.Lock()
    unexpected = []
    per_round = []
    for round_no in range(ROUNDS):
        writers = [Writer(server, "w%d-%d" % (round_no, i), records, lock) for i in range(WRITERS)]
        for w in writers:
            w.start()
        time.sleep(rng.uniform(0.1, 0.8))
        os.kill(server.proc.pid, signal.SIGKILL)     # kill -9 with requests in flight
        server.kill()                                # reap it
        for w in writers:
            w.join(timeout=60)
            assert not w.is_alive(), "a client hung after kmsd was killed"
            unexpected += w.unexpected
        per_round.append(sum(w.made for w in writers))
        server.start()                               # the same data_dir
        check_records(server, records[sum(per_round[:-1]):])   # what this round was told
    check_records(server, records)                   # and nothing older went with a later crash
    assert "created a new key store" not in server.stderr().split("kmsd: listening", 1)[1], \
        "a restart made a new key store"
    assert sum(per_round) >= 2 * ROUNDS and min(per_round) >= 1, \
        "too few keys were made between kills to test anything: %s" % per_round
    assert not unexpected, "error replies while writing: %s" % unexpected[:5]


def test_store_is_held_exclusively(kmsd_factory):
    """A second kmsd on a data_dir in use is refused with a message naming the store and the
    lock; the first goes on unharmed."""
    server = kmsd_factory()
    kms = server.client()
    key_id = kms.create_key(Description="held")["KeyMetadata"]["KeyId"]
    proc = server.run("--config", server.config_path, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "listening" not in proc.stderr
    assert "cannot open the key store" in proc.stderr and server.data_dir in proc.stderr, proc.stderr
    assert "locked" in proc.stderr, proc.stderr
    assert "Sanitizer" not in proc.stderr
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "held"
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"still mine")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"still mine"
