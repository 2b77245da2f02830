"""Bucket key mode (DESIGN section 2, issue 4): `kmsfs init --bucket-key` volumes wrap each
file's data key locally under a bucket key that each principal gets from the key service once
per key_cache_ttl. The key service sees a handful of calls for thousands of files, yet every
file's GenerateDataKey and Decrypt is still in the audit log (eventSource "kmsfs",
additionalEventData.bucketKey), each principal is authorized by the key service on its own,
a wrapped key stays bound to its file and volume, and disabling the key denies new opens
within key_cache_ttl."""
import errno
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import kmsfs_it
from kmsfs_it import CHILD_PRELUDE, read_file, rec_get, rec_mentions_file, run_as, write_file

N_FILES = 2000
KEY_SERVICE = "kms.amazonaws.com"
OTHER_UID = 65534
STRANGER_UID = 65533
DEK_XATTR = "user.kmsfs.dek"


def new_bucket_volume(kmsfs, name, key=None, init_args=(), env=None):
    """kmsfs.new_volume with --bucket-key: a fresh, initialised, unmounted volume."""
    root = os.path.join(kmsfs.base, "vols", name)
    n = 0
    while os.path.exists(root + ("" if n == 0 else "-%d" % n)):
        n += 1
    root = root + ("" if n == 0 else "-%d" % n)
    cipherdir, mnt = os.path.join(root, "cipher"), os.path.join(root, "mnt")
    os.makedirs(cipherdir)
    os.makedirs(mnt)
    args = ["init", "--bucket-key"] + list(init_args or kmsfs.store_args())
    args += ["--key", key] if key else []
    r = kmsfs.run(*args, cipherdir, env=env)
    assert "bucket keys" in r.out, "init --bucket-key did not say so: %r" % r
    return kmsfs_it.Volume(kmsfs, root, cipherdir, mnt, "aes-256-gcm", key)


def read_err(path):
    try:
        return 0, read_file(path)
    except OSError as e:
        return e.errno, None


def errname(e):
    return errno.errorcode.get(e, str(e))


def key_service_calls(audit, name):
    return [r for r in audit.records()
            if r.get("eventSource") == KEY_SERVICE and r.get("eventName") == name]


def bucket_records(audit, name):
    """The per-file records written when a bucket key served the data key."""
    return [r for r in audit.records()
            if r.get("eventSource") == "kmsfs" and r.get("eventName") == name
            and rec_get(r, "additionalEventData", "bucketKey") is True]


def dek_version(vol, rel):
    return os.getxattr(vol.b(rel), DEK_XATTR)[0]


def content(i):
    return b"bucket file %05d\n" % i * (1 + i % 5)


def test_init_bucket_key_is_in_the_authenticated_config(kmsfs):
    v = new_bucket_volume(kmsfs, "bk-conf")
    orig = v.conf_text
    assert re.search(r"(?m)^bucket_key = true$", orig), orig
    v.mount()
    write_file(v.p("f"), b"x")
    v.unmount()
    assert dek_version(v, "f") == 2, "a bucket-key volume's file got xattr version %d" % dek_version(v, "f")
    with open(v.b("kmsfs.conf"), "w") as f:
        f.write(orig.replace("bucket_key = true", "bucket_key = false"))
    r = v.mount(check=False)
    assert r.rc != 0 and not kmsfs_it.is_mounted(v.mnt), "mount accepted bucket_key flipped: %r" % r
    with open(v.b("kmsfs.conf"), "w") as f:
        f.write(orig)
    v.mount()
    assert read_file(v.p("f")) == b"x"
    v.unmount()


def test_thousands_of_files_few_key_service_calls(kmsfs, audit):
    """2,000 files: at most a handful of key-service calls to create them and to read them back
    after a remount, and one kmsfs record per file each way, naming the file."""
    v = new_bucket_volume(kmsfs, "bk-many")
    v.mount()
    audit.mark()
    t0 = time.monotonic()
    for d in range(4):
        os.mkdir(v.p("d%d" % d))
        for i in range(N_FILES // 4):
            write_file(v.p("d%d" % d, "f%04d" % i), content(d * 1000 + i))
    t_create = time.monotonic() - t0
    rels = ["d%d/f%04d" % (d, i) for d in range(4) for i in range(N_FILES // 4)]
    gdk = key_service_calls(audit, "GenerateDataKey")
    assert 1 <= len(gdk) <= 3, "%d key-service GenerateDataKey calls for %d files" % (len(gdk), N_FILES)
    assert all(rec_get(r, "requestParameters", "encryptionContext") == {"kmsfs:volume": rec_get(
        r, "requestParameters", "encryptionContext", "kmsfs:volume")} for r in gdk), \
        "a bucket key's context should be the volume alone: %r" % gdk
    local = bucket_records(audit, "GenerateDataKey")
    paths = sorted(kmsfs_it.rec_path(r) for r in local)
    assert paths == sorted(rels), "kmsfs GenerateDataKey records: %d for %d files (missing %r, extra %r)" % (
        len(paths), N_FILES, sorted(set(rels) - set(paths))[:5], sorted(set(paths) - set(rels))[:5])
    fid = v.file_id(rels[7])
    assert any(rec_mentions_file(r, rels[7], fid) for r in local), "no record with the file's context"
    assert all("errorCode" not in r for r in local)
    assert {dek_version(v, rel) for rel in rels[::97]} == {2}

    v.remount()
    audit.mark()
    t0 = time.monotonic()
    for n, rel in enumerate(rels):
        d, i = int(rel[1]), int(rel[-4:])
        assert read_file(v.p(rel)) == content(d * 1000 + i), rel
    t_read = time.monotonic() - t0
    dec = key_service_calls(audit, "Decrypt")
    assert 1 <= len(dec) <= 3, "%d key-service Decrypt calls to read %d files back" % (len(dec), N_FILES)
    local = bucket_records(audit, "Decrypt")
    paths = sorted(kmsfs_it.rec_path(r) for r in local)
    assert paths == sorted(rels), "kmsfs Decrypt records: %d for %d files" % (len(paths), N_FILES)
    print("\nbucket keys, %d files: create %.1f s with %d key-service calls, read %.1f s with %d"
          % (N_FILES, t_create, len(gdk), t_read, len(dec)))
    v.unmount()


def test_plain_volume_unchanged(kmsfs, audit):
    """Without --bucket-key: xattr version 1, one key-service call per file, no bucketKey."""
    v = kmsfs.new_volume("bk-plain")
    assert re.search(r"(?m)^bucket_key = false$", v.conf_text)
    v.mount()
    audit.mark()
    for i in range(20):
        write_file(v.p("p%02d" % i), content(i))
    assert len(key_service_calls(audit, "GenerateDataKey")) == 20
    assert not bucket_records(audit, "GenerateDataKey")
    assert dek_version(v, "p03") == 1
    v.unmount()


def test_ttl_zero_asks_the_key_service_every_time(kmsfs, audit):
    v = new_bucket_volume(kmsfs, "bk-ttl0")
    v.mount("--key-cache-ttl", "0")
    audit.mark()
    for i in range(5):
        write_file(v.p("z%d" % i), content(i))
    for i in range(5):
        assert read_file(v.p("z%d" % i)) == content(i)
    assert len(key_service_calls(audit, "GenerateDataKey")) == 5, audit.dump()
    assert len(key_service_calls(audit, "Decrypt")) >= 5, audit.dump()
    assert len(bucket_records(audit, "Decrypt")) >= 5, audit.dump()
    v.unmount()


def test_wrapped_key_bound_to_file_and_volume(kmsfs, audit):
    v = new_bucket_volume(kmsfs, "bk-bind")
    v.mount()
    write_file(v.p("A"), b"file A secret " * 300)
    write_file(v.p("B"), b"file B secret " * 300)
    write_file(v.p("C"), b"file C secret")
    v.unmount()
    b_id = v.file_id("B")
    os.setxattr(v.b("B"), DEK_XATTR, os.getxattr(v.b("A"), DEK_XATTR))
    raw = os.getxattr(v.b("C"), DEK_XATTR)
    os.setxattr(v.b("C"), DEK_XATTR, raw[:-1])  # malformed: one byte short
    v2 = new_bucket_volume(kmsfs, "bk-bind-other")
    subprocess.run(["cp", "-a", v.b("A"), v2.b("A-from-elsewhere")], check=True)
    v.mount()
    audit.mark()
    e, data = read_err(v.p("B"))
    assert e in (errno.EIO, errno.EACCES), "B with A's wrapped key: errno %s, data %r" % (
        errname(e), (data or b"")[:40])
    recs = audit.wait(lambda r: r.get("errorCode") and rec_mentions_file(r, "B", b_id))
    assert recs, "no audit record with errorCode naming B:\n" + audit.dump()
    assert read_file(v.p("A")) == b"file A secret " * 300, "A must stay readable"
    e, _ = read_err(v.p("C"))
    assert e == errno.EIO, "truncated version-2 xattr: errno %s" % errname(e)
    assert audit.wait(lambda r: r.get("eventName") == "MalformedDataKey"), audit.dump()
    v.unmount()
    v2.mount()
    e, data = read_err(v2.p("A-from-elsewhere"))
    assert e in (errno.EIO, errno.EACCES), "a file moved to another volume: errno %s" % errname(e)
    v2.unmount()


def _other_uid_child(v):
    script = CHILD_PRELUDE + r'''
m = %r
attempt("read_shared", lambda: rd(m + "/shared"))
attempt("create", lambda: wr(m + "/open/by-other", "other's file", "wb"))
attempt("read_own", lambda: rd(m + "/open/by-other"))
print(json.dumps(res))
''' % v.mnt
    return run_as(OTHER_UID, OTHER_UID, script)


def test_each_principal_authorized_separately(kmsfs, audit):
    """Root's cached bucket key never serves uid 65534: it is denied until `kmsfs key allow`,
    then gets its own bucket keys from the key service."""
    key = kmsfs.create_key("bk-principals")
    v = new_bucket_volume(kmsfs, "bk-principals", key=key)
    v.mount("-o", "allow_other,default_permissions")
    write_file(v.p("shared"), b"root's data")
    os.chmod(v.p("shared"), 0o644)
    os.mkdir(v.p("open"))
    os.chmod(v.p("open"), 0o777)
    assert read_file(v.p("shared")) == b"root's data"   # root's bucket key is cached now
    audit.mark()
    r = _other_uid_child(v)
    assert r["read_shared"] == ["err", "EACCES"], "uid %d read through root's bucket key: %r" % (OTHER_UID, r)
    assert r["create"] == ["err", "EACCES"], r
    denied = [x for x in audit.records() if x.get("errorCode")
              and str(rec_get(x, "userIdentity", "uid")) == str(OTHER_UID)]
    assert denied, "no denial recorded for uid %d:\n%s" % (OTHER_UID, audit.dump())

    kmsfs.key("allow", key, "uid:%d" % OTHER_UID)
    audit.mark()
    r = _other_uid_child(v)
    assert r["read_shared"] == ["ok", "root's data"], r
    assert r["create"] == ["ok", True] and r["read_own"] == ["ok", "other's file"], r
    mine = [x for x in audit.records() if str(rec_get(x, "userIdentity", "uid")) == str(OTHER_UID)]
    calls = {(x.get("eventSource"), x.get("eventName")) for x in mine if not x.get("errorCode")}
    assert {(KEY_SERVICE, "Decrypt"), (KEY_SERVICE, "GenerateDataKey"),
            ("kmsfs", "Decrypt"), ("kmsfs", "GenerateDataKey")} <= calls, \
        "uid %d should get its own bucket keys and per-file records:\n%s" % (OTHER_UID, audit.dump())
    assert dek_version(v, "open/by-other") == 2
    assert read_file(v.p("open/by-other")) == b"other's file", "root reads uid %d's file" % OTHER_UID
    v.unmount()


def test_disabled_key_denies_new_opens_after_ttl(kmsfs, audit):
    """The revocation latency is key_cache_ttl, counted from the key service's answer."""
    key = kmsfs.create_key("bk-disable")
    v = new_bucket_volume(kmsfs, "bk-disable", key=key)
    v.mount("--key-cache-ttl", "2")
    for name in ("a", "b"):
        write_file(v.p(name), b"before disable " + name.encode())
    assert read_file(v.p("a")) == b"before disable a"
    kmsfs.key("disable", key)
    audit.mark()
    try:
        time.sleep(3.5)
        for name in ("a", "b"):
            e, _ = read_err(v.p(name))
            assert e == errno.EACCES, "%s: open 3.5 s after disabling the key (ttl 2 s): errno %s" % (
                name, errname(e))
        try:
            write_file(v.p("new"), b"x")
            created = 0
        except OSError as err:
            created = err.errno
        assert created == errno.EACCES, "create 3.5 s after disabling the key: errno %s" % errname(created)
        assert audit.wait(lambda r: r.get("errorCode") == "DisabledException"), audit.dump()
    finally:
        kmsfs.key("enable", key)
    assert read_file(v.p("b")) == b"before disable b"
    write_file(v.p("new"), b"after enable")
    assert read_file(v.p("new")) == b"after enable"
    v.unmount()


def test_concurrent_creates_share_one_key_service_call(kmsfs, audit):
    """Eight writers at once on a fresh mount: the first misses wait for one GenerateDataKey
    instead of each making their own."""
    v = new_bucket_volume(kmsfs, "bk-concurrent")
    v.mount()
    audit.mark()
    errors = []

    def writer(t):
        try:
            for i in range(100):
                write_file(v.p("t%d-%03d" % (t, i)), content(t * 100 + i))
        except OSError as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(key_service_calls(audit, "GenerateDataKey")) == 1, audit.dump()
    assert len(bucket_records(audit, "GenerateDataKey")) == 800
    v.remount()
    audit.mark()
    threads = [threading.Thread(target=lambda t=t: [read_file(v.p("t%d-%03d" % (t, i)))
                                                    for i in range(100)]) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(key_service_calls(audit, "Decrypt")) == 1, audit.dump()
    assert read_file(v.p("t5-042")) == content(542)
    v.unmount()


# ---- a bucket-key volume on a remote key service (kmsd) ------------------------------------

def _kmsd_module():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kmsd"))
    import kmsd_it  # noqa: E402  (tests/kmsd's harness: starts a real kmsd)
    return kmsd_it


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def kmsd_volume(kmsfs):
    """kmsd on loopback, an admin profile for root, and a bucket-key volume on it, mounted with
    allow_other (so an unmapped uid can try, unsigned)."""
    kmsd_it = _kmsd_module()
    binary = os.path.join(os.path.dirname(kmsfs.bin), "kmsd", "kmsd")
    if not os.access(binary, os.X_OK):
        pytest.fail("kmsd not built next to kmsfs: %s" % binary)
    base = tempfile.mkdtemp(prefix="bk-remote-", dir=kmsfs.base)
    os.chmod(base, 0o755)
    server = kmsd_it.Kmsd(binary, os.path.join(base, "kmsd"), listen="127.0.0.1:%d" % _free_port())
    server.start()
    admin = server.user("admin")
    creds = os.path.join(base, "aws-credentials")
    with open(creds, "w") as f:
        f.write("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                % (admin.access_key_id, admin.secret_access_key))
    os.chmod(creds, 0o600)
    env = dict(kmsfs.env, AWS_SHARED_CREDENTIALS_FILE=creds, AWS_CONFIG_FILE="/dev/null",
               AWS_REGION=kmsd_it.REGION)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.pop(name, None)
    kms = server.client("admin")
    key_arn = kms.create_key(Description="bucket-key volume")["KeyMetadata"]["Arn"]
    v = new_bucket_volume(kmsfs, "bk-remote", key=key_arn,
                          init_args=["--key-service", server.endpoint], env=env)
    audit_path = os.path.join(base, "audit.log")
    kmsfs.run("mount", "-o", "allow_other", "--map-uid", "0=default", "--audit-log", audit_path,
              v.cipherdir, v.mnt, env=env)
    kmsfs.track_mount(v.mnt)
    ctx = type("KmsdVolume", (), {})()
    ctx.vol, ctx.kms, ctx.key_arn, ctx.audit = v, kms, key_arn, kmsfs_it.AuditLog(audit_path)
    try:
        yield ctx
    finally:
        problems = kmsfs.unmount(v.mnt)
        if server.alive():
            server.stop()
        assert not problems, problems


def _write_version1_file(vol, kms, key_arn, rel, plaintext):
    """A format-1 backing file whose data key came straight from GenerateDataKey (user.kmsfs.dek
    version 1), as a volume without bucket keys writes it: what a volume switched to bucket keys
    still holds from before."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    vid = re.search(r"(?m)^id = (\S+)$", vol.conf_text).group(1)
    file_id = os.urandom(16)
    dk = kms.generate_data_key(KeyId=key_arn, KeySpec="AES_256", EncryptionContext={
        "kmsfs:volume": vid, "kmsfs:file": file_id.hex()})
    header = b"KMFS" + struct.pack(">HHII", 1, 1, 4096, 0) + file_id
    nonce = os.urandom(12)
    sealed = AESGCM(dk["Plaintext"]).encrypt(nonce, plaintext, header + struct.pack(">Q", 0))
    write_file(vol.b(rel), header + nonce + sealed)
    arn = dk["KeyId"].encode()
    os.setxattr(vol.b(rel), DEK_XATTR, bytes([1, len(arn)]) + arn + dk["CiphertextBlob"])


def test_remote_bucket_volume_with_version1_files(kmsd_volume):
    """On kmsd: 200 files for one GenerateDataKey; a version-1 file among version-2 ones opens
    (mixed volumes are fine); an unmapped uid is unsigned and gets nothing from root's cached
    bucket key."""
    r = kmsd_volume
    v = r.vol
    r.audit.mark()
    for i in range(200):
        write_file(v.p("r%03d" % i), content(i))
    assert len(key_service_calls(r.audit, "GenerateDataKey")) == 1, r.audit.dump()
    assert len(bucket_records(r.audit, "GenerateDataKey")) == 200
    os.chmod(v.p("r007"), 0o644)
    os.chmod(v.mnt, 0o777)
    _write_version1_file(v, r.kms, r.key_arn, "old-v1", b"written before bucket keys\n")
    assert dek_version(v, "old-v1") == 1 and dek_version(v, "r007") == 2
    r.audit.mark()
    assert read_file(v.p("old-v1")) == b"written before bucket keys\n"
    assert read_file(v.p("r007")) == content(7)
    v1_decrypts = [x for x in key_service_calls(r.audit, "Decrypt")
                   if rec_get(x, "requestParameters", "encryptionContext", "kmsfs:file")]
    assert len(v1_decrypts) == 1 and "old-v1" in kmsfs_it.rec_path(v1_decrypts[0]), r.audit.dump()
    res = run_as(STRANGER_UID, STRANGER_UID, CHILD_PRELUDE + r"""
attempt("read", lambda: rd(%r))
attempt("create", lambda: wr(%r, "x", "wb"))
print(json.dumps(res))
""" % (v.p("r007"), v.p("stranger")))
    assert res["read"] == ["err", "EACCES"] and res["create"] == ["err", "EACCES"], res
    refused = [x for x in r.audit.records() if x.get("errorCode") == "MissingAuthenticationTokenException"]
    assert len(refused) >= 2, r.audit.dump()
