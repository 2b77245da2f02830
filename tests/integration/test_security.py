"""What an attacker with the backing directory, or a careless admin, can and cannot do:
no plaintext at rest, per-file keys, tamper detection (EIO + audit), passphrase, disabled
keys, authenticated config, and the audit records themselves."""
import errno
import os
import re
import signal
import subprocess
import time

import pytest

import kmsfs_it
from kmsfs_it import read_file, write_file
from kmsfs_it import BLOCK, NONCE, TAG, rec_get, rec_mentions_file, stored_block_offset

MiB = 1 << 20
CANARY = b"KMSFS-PLAINTEXT-CANARY-7f3a9c1e-"


def read_err(path, offset=None, length=None):
    """Read a file through the mount; returns (errno or 0, data)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return e.errno, None
    try:
        if offset is None:
            chunks = []
            while True:
                c = os.read(fd, 1 << 20)
                if not c:
                    break
                chunks.append(c)
            return 0, b"".join(chunks)
        return 0, os.pread(fd, length, offset)
    except OSError as e:
        return e.errno, None
    finally:
        os.close(fd)


def errname(e):
    return errno.errorcode.get(e, str(e))


def all_backing_bytes(root):
    for dp, dns, fns in os.walk(root):
        for n in fns + dns:
            p = os.path.join(dp, n)
            if os.path.isfile(p) and not os.path.islink(p):
                yield p, read_file(p)
            try:
                for x in os.listxattr(p, follow_symlinks=False):
                    yield p + " [xattr " + x + "]", os.getxattr(p, x, follow_symlinks=False)
            except OSError:
                pass


def test_backing_files_contain_no_plaintext(mvol, kmsfs):
    big = (CANARY * (300 * 1024 // len(CANARY) + 1))[:300 * 1024]
    write_file(mvol.p("big-secret"), big)
    write_file(mvol.p("small-secret"), CANARY)
    os.mkdir(mvol.p("sub"))
    with open(mvol.p("sub", "appended"), "ab") as f:
        for _ in range(50):
            f.write(CANARY[:7])
            f.write(CANARY[7:])
    zeros_then = b"\0" * 5000 + CANARY
    write_file(mvol.p("zeros-then-secret"), zeros_then)
    mvol.unmount()
    needles = [CANARY[i:i + 12] for i in range(0, len(CANARY) - 12, 4)]
    for where, blob in all_backing_bytes(mvol.cipherdir):
        for n in needles:
            assert n not in blob, "plaintext %r found in %s" % (n, where)
    for where, blob in all_backing_bytes(kmsfs.keystore):
        assert CANARY[:12] not in blob, "plaintext found in the key store / audit log: %s" % where
    mvol.mount()
    assert read_file(mvol.p("big-secret")) == big
    assert read_file(mvol.p("sub", "appended")) == CANARY * 50
    assert read_file(mvol.p("zeros-then-secret")) == zeros_then


def test_nonces_and_ciphertexts_never_repeat(mvol):
    """Identical plaintext blocks encrypt differently, and rewriting a block never reuses its nonce."""
    nl = NONCE[mvol.cipher]
    write_file(mvol.p("same"), b"\x55" * (8 * BLOCK))
    write_file(mvol.p("same2"), b"\x55" * (8 * BLOCK))
    seen_nonces = set()
    seen_ct = set()
    for _ in range(3):
        with open(mvol.p("same"), "r+b") as f:
            os.pwrite(f.fileno(), b"\x55" * BLOCK, 0)  # rewrite block 0 with the same bytes
            os.fsync(f.fileno())
        raw = read_file(mvol.b("same"))
        off = stored_block_offset(0, mvol.cipher)
        seen_nonces.add(raw[off:off + nl])
    assert len(seen_nonces) == 3, "rewriting block 0 reused a nonce"
    for name in ("same", "same2"):
        raw = read_file(mvol.b(name))
        for i in range(8):
            off = stored_block_offset(i, mvol.cipher)
            n, ct = raw[off:off + nl], raw[off + nl:off + nl + BLOCK + TAG]
            assert n not in seen_nonces or (name == "same" and i == 0), "nonce repeated (%s block %d)" % (name, i)
            seen_nonces.add(n)
            assert ct not in seen_ct, "identical ciphertext for identical plaintext (%s block %d)" % (name, i)
            seen_ct.add(ct)


def test_wrapped_keys_and_file_ids_unique(mvol):
    names = ["k1", "k2", "k3", "sub/k4"]
    os.mkdir(mvol.p("sub"))
    for n in names:
        write_file(mvol.p(n), b"same content")
    deks = {n: os.getxattr(mvol.b(n), "user.kmsfs.dek") for n in names}
    ids = {n: mvol.file_id(n) for n in names}
    assert all(len(d) >= 32 for d in deks.values()), "wrapped DEKs look too short: %r" % {k: len(v) for k, v in deks.items()}
    assert len(set(deks.values())) == len(names), "two files share a wrapped DEK"
    assert len(set(ids.values())) == len(names), "two files share a file id: %r" % ids
    old_id, old_dek = ids["k1"], deks["k1"]
    os.unlink(mvol.p("k1"))
    write_file(mvol.p("k1"), b"same content")
    assert mvol.file_id("k1") != old_id, "re-created file reused the old file id"
    assert os.getxattr(mvol.b("k1"), "user.kmsfs.dek") != old_dek
    raw = [read_file(mvol.b(n))[32:] for n in names]
    assert len(set(raw)) == len(names), "identical plaintext produced identical ciphertext in two files"


def test_dek_copied_to_other_file_is_rejected(vol, audit):
    vol.mount()
    write_file(vol.p("A"), b"file A secret " * 300)
    write_file(vol.p("B"), b"file B secret " * 300)
    vol.unmount()
    b_id = vol.file_id("B")
    os.setxattr(vol.b("B"), "user.kmsfs.dek", os.getxattr(vol.b("A"), "user.kmsfs.dek"))
    vol.mount("--key-cache-ttl", "0")
    audit.mark()
    e, data = read_err(vol.p("B"))
    assert e in (errno.EIO, errno.EACCES), "reading B with A's wrapped DEK: errno %s, data %r" % (errname(e), (data or b"")[:40])
    assert read_file(vol.p("A")) == b"file A secret " * 300, "A must stay readable"
    recs = audit.wait(lambda r: r.get("errorCode") and rec_mentions_file(r, "B", b_id))
    assert recs, "no audit record with errorCode naming B (path or file id %s):\n%s" % (b_id, audit.dump())


def test_missing_dek_xattr_is_an_error_not_zeros(vol):
    vol.mount()
    write_file(vol.p("nokey"), b"needs its key " * 100)
    vol.unmount()
    os.removexattr(vol.b("nokey"), "user.kmsfs.dek")
    vol.mount()
    e, data = read_err(vol.p("nokey"))
    assert e != 0, "file without its wrapped DEK was readable: %r" % (data or b"")[:40]
    assert e in (errno.EIO, errno.EACCES, errno.ENODATA, errno.ENOKEY, errno.EBADMSG), errname(e)


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "xchacha20-poly1305"])
@pytest.mark.parametrize("where", ["nonce", "ciphertext", "tag"])
def test_bit_flip_detected(kmsfs, audit, where, cipher):
    vol = kmsfs.new_volume("flip-%s-%s" % (where, cipher), cipher=cipher)
    rng_data = os.urandom(3 * BLOCK)
    vol.mount()
    write_file(vol.p("victim"), rng_data)
    vol.unmount()
    fid = vol.file_id("victim")
    nl = NONCE[vol.cipher]
    base = stored_block_offset(1, vol.cipher)
    pos = {"nonce": base + 3, "ciphertext": base + nl + 100, "tag": base + nl + BLOCK + 5}[where]
    with open(vol.b("victim"), "r+b") as f:
        f.seek(pos)
        byte = f.read(1)[0]
        f.seek(pos)
        f.write(bytes([byte ^ 0x10]))
    vol.mount()
    audit.mark()
    e, data = read_err(vol.p("victim"))
    assert e == errno.EIO, "read of a file with a flipped %s bit: errno %s, got %s" % (
        where, errname(e), "the original data" if data == rng_data else "garbage" if data else data)
    e, data = read_err(vol.p("victim"), BLOCK, BLOCK)
    assert e == errno.EIO, "pread of the damaged block: errno %s" % errname(e)
    recs = audit.wait(lambda r: r.get("eventName") == "BlockAuthenticationFailure")
    assert recs, "no BlockAuthenticationFailure audit record:\n" + audit.dump()
    good = [r for r in recs if rec_mentions_file(r, "victim", fid)
            and str(rec_get(r, "additionalEventData", "blockIndex")) == "1"]
    assert good, "BlockAuthenticationFailure records do not name path 'victim' and blockIndex 1:\n" + audit.dump()
    assert kmsfs_it.rec_path(good[0]) is not None and "victim" in kmsfs_it.rec_path(good[0]), \
        "the record should carry the file path: %r" % good[0]


def test_swapped_blocks_detected(vol, audit):
    a = os.urandom(4 * BLOCK)
    vol.mount()
    write_file(vol.p("swap"), a)
    write_file(vol.p("other"), os.urandom(4 * BLOCK))
    vol.unmount()
    swap_id, other_id = vol.file_id("swap"), vol.file_id("other")
    sb = BLOCK + NONCE[vol.cipher] + TAG
    raw = bytearray(read_file(vol.b("swap")))
    o0, o1 = stored_block_offset(0, vol.cipher), stored_block_offset(1, vol.cipher)
    b0, b1 = bytes(raw[o0:o0 + sb]), bytes(raw[o1:o1 + sb])
    raw[o0:o0 + sb], raw[o1:o1 + sb] = b1, b0
    with open(vol.b("swap"), "r+b") as f:
        f.write(raw)
    # and block 2 of "other" replaced by block 2 of ... itself from another file position
    other = bytearray(read_file(vol.b("other")))
    o2 = stored_block_offset(2, vol.cipher)
    other[o2:o2 + sb] = read_file(vol.b("swap"))[o2:o2 + sb]  # a block moved between files
    with open(vol.b("other"), "r+b") as f:
        f.write(other)
    vol.mount()
    audit.mark()
    e, data = read_err(vol.p("swap"))
    assert e == errno.EIO, "file with two swapped blocks: errno %s (%s)" % (
        errname(e), "data equals original" if data == a else "returned data")
    e2, _ = read_err(vol.p("other"), 2 * BLOCK, BLOCK)
    assert e2 == errno.EIO, "block moved from another file: errno %s" % errname(e2)
    recs = audit.wait(lambda r: r.get("eventName") == "BlockAuthenticationFailure" and rec_mentions_file(r, "swap", swap_id))
    assert recs, "no BlockAuthenticationFailure record naming 'swap':\n" + audit.dump()
    assert {str(rec_get(r, "additionalEventData", "blockIndex")) for r in recs} & {"0", "1"}, recs
    recs2 = audit.wait(lambda r: r.get("eventName") == "BlockAuthenticationFailure" and rec_mentions_file(r, "other", other_id))
    assert recs2 and str(rec_get(recs2[0], "additionalEventData", "blockIndex")) == "2", audit.dump()


def test_truncated_header_detected(vol, audit):
    vol.mount()
    write_file(vol.p("cut"), b"header will be cut " * 500)
    write_file(vol.p("cut-tail"), os.urandom(2 * BLOCK + 777))
    vol.unmount()
    fid = vol.file_id("cut")
    os.truncate(vol.b("cut"), 10)
    # a cut inside the last stored block (not at a block boundary) must also be caught
    os.truncate(vol.b("cut-tail"), os.path.getsize(vol.b("cut-tail")) - 5)
    vol.mount()
    audit.mark()
    e, data = read_err(vol.p("cut"))
    assert e == errno.EIO, "file whose backing was cut to 10 bytes: errno %s, data %r" % (errname(e), (data or b"")[:40])
    recs = audit.wait(lambda r: (r.get("errorCode") or r.get("errorMessage") or "Failure" in str(r.get("eventName")))
                      and rec_mentions_file(r, "cut", fid))
    assert recs, "no audit record (errorCode or *Failure) naming 'cut':\n" + audit.dump()
    e, data = read_err(vol.p("cut-tail"))
    assert e == errno.EIO, "file whose last stored block lost 5 bytes: errno %s" % errname(e)


def test_header_tamper_detected(vol):
    vol.mount()
    write_file(vol.p("h-cipher"), os.urandom(5000))
    write_file(vol.p("h-fileid"), os.urandom(5000))
    vol.unmount()
    with open(vol.b("h-fileid"), "r+b") as f:
        f.seek(20)
        b = f.read(1)[0]
        f.seek(20)
        f.write(bytes([b ^ 1]))
    with open(vol.b("h-cipher"), "r+b") as f:
        f.seek(6)
        f.write((3 - kmsfs_it.CIPHER_ID[vol.cipher]).to_bytes(2, "big"))  # the other cipher
    vol.mount("--key-cache-ttl", "0")
    for n in ("h-fileid", "h-cipher"):
        e, data = read_err(vol.p(n))
        assert e in (errno.EIO, errno.EACCES), "%s: tampered header read gave errno %s" % (n, errname(e))


def test_wrong_passphrase_refuses_mount(vol, kmsfs):
    bad = os.path.join(vol.root, "bad-pass")
    write_file(bad, b"not the passphrase\n")
    t0 = time.monotonic()
    r = kmsfs.run("mount", "--keystore", kmsfs.keystore, "--passfile", bad, vol.cipherdir, vol.mnt,
                  check=False, timeout=60)
    assert r.rc == 1, "mount with a wrong passphrase should exit 1: %r" % r
    assert "passphrase" in (r.err + r.out).lower(), "message should mention the passphrase: %r" % r
    assert time.monotonic() - t0 < 30
    assert not kmsfs_it.is_mounted(vol.mnt), "something got mounted despite the wrong passphrase"
    kmsfs_it.wait_for(lambda: not vol.daemon_pids(), 5)
    assert not vol.daemon_pids(), "a kmsfs daemon stayed behind: %r" % vol.daemon_pids()
    env = dict(kmsfs.env, KMSFS_PASSPHRASE="also wrong")
    r = kmsfs.run("mount", "--keystore", kmsfs.keystore, vol.cipherdir, vol.mnt, check=False, env=env, timeout=60)
    assert r.rc == 1 and "passphrase" in (r.err + r.out).lower(), r
    assert not kmsfs_it.is_mounted(vol.mnt)
    r = kmsfs.run("key", "list", "--keystore", kmsfs.keystore, "--passfile", bad, check=False)
    assert r.rc != 0, "key list with a wrong passphrase succeeded: %r" % r


def test_disabled_key_denies_access(kmsfs, audit):
    key = kmsfs.create_key("disable-test")
    v = kmsfs.new_volume("disable", key=key)
    v.mount("--key-cache-ttl", "0")
    write_file(v.p("existing"), b"before disable")
    kmsfs.key("disable", key)
    audit.mark()
    try:
        e, _ = read_err(v.p("existing"))
        assert e == errno.EACCES, "open of an existing file under a disabled key: errno %s" % errname(e)
        with pytest.raises(OSError) as ei:
            write_file(v.p("new-file"), b"x")
        assert ei.value.errno == errno.EACCES, "create under a disabled key: %s" % ei.value
        recs = audit.wait(lambda r: r.get("errorCode") == "DisabledException")
        assert recs, "no audit record with errorCode DisabledException:\n" + audit.dump()
        assert any(rec_mentions_file(r, "existing", v.file_id("existing")) for r in recs), \
            "DisabledException records do not name the file:\n" + audit.dump()
    finally:
        kmsfs.key("enable", key)
    assert read_file(v.p("existing")) == b"before disable"
    write_file(v.p("new-file"), b"after enable")
    assert read_file(v.p("new-file")) == b"after enable"
    v.unmount()


def _iso8601(s):
    return isinstance(s, str) and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$", s)


def test_audit_records_for_decrypt(mvol, audit):
    """The GenerateDataKey for a new file and the Decrypt for reading it after a remount carry
    the CloudTrail fields of the contract (every mismatch is listed, not just the first)."""
    start = audit.offset
    write_file(mvol.p("audited"), b"audit me")
    fid = mvol.file_id("audited")
    gdk = audit.wait(lambda r: r.get("eventName") == "GenerateDataKey" and rec_mentions_file(r, "audited", fid))
    assert gdk, "creating a file logged no GenerateDataKey with its file id:\n" + audit.dump()
    mvol.remount()
    audit.mark()
    p = subprocess.Popen(["cat", mvol.p("audited")], stdout=subprocess.PIPE)
    out, _ = p.communicate(timeout=30)
    assert out == b"audit me"
    recs = audit.wait(lambda r: r.get("eventName") == "Decrypt" and rec_mentions_file(r, "audited", fid))
    assert recs, "reading a file after remount logged no Decrypt:\n" + audit.dump()
    problems = []

    def need(cond, msg):
        if not cond:
            problems.append(msg)

    for what, r in (("GenerateDataKey", gdk[0]), ("Decrypt", recs[0])):
        ctx = rec_get(r, "requestParameters", "encryptionContext") or {}
        need(kmsfs_it.norm_id(ctx.get("kmsfs:file")) == kmsfs_it.norm_id(fid),
             "%s: encryptionContext kmsfs:file %r != header file id %s" % (what, ctx.get("kmsfs:file"), fid))
        need(ctx.get("kmsfs:volume") and mvol.volume_id_in_conf(ctx["kmsfs:volume"]),
             "%s: kmsfs:volume %r is not the volume id in kmsfs.conf" % (what, ctx.get("kmsfs:volume")))
        ui = r.get("userIdentity") or {}
        need(str(ui.get("uid")) == "0" and ui.get("type") and ui.get("principalId") and ui.get("arn"),
             "%s: userIdentity incomplete: %r" % (what, ui))
        ad = r.get("additionalEventData") or {}
        need(isinstance(ad.get("pid"), int) and ad["pid"] > 0, "%s: additionalEventData.pid missing: %r" % (what, ad))
        need(ad.get("processName"), "%s: additionalEventData.processName missing: %r" % (what, ad))
        need(_iso8601(r.get("eventTime")), "%s: eventTime %r is not ISO 8601" % (what, r.get("eventTime")))
        need(r.get("eventSource") and r.get("eventID") and r.get("requestID"),
             "%s: eventSource/eventID/requestID missing" % what)
        need("errorCode" not in r, "%s: unexpected errorCode %r" % (what, r.get("errorCode")))
        key_id = rec_get(r, "requestParameters", "keyId") or ""
        m = kmsfs_it.UUID_RE.search(key_id)
        need(m and m.group(0).lower() in mvol.conf_text.lower(),
             "%s: requestParameters.keyId %r does not name the volume's key (resources: %r)"
             % (what, key_id, r.get("resources")))
        need(isinstance(ad.get("path"), str) and "audited" in ad["path"],
             "%s: additionalEventData.path %r does not name the file (additionalEventData=%r)"
             % (what, ad.get("path"), ad))
    ad = recs[0].get("additionalEventData") or {}
    need(ad.get("pid") == p.pid, "Decrypt pid %r is not the reader's pid %d" % (ad.get("pid"), p.pid))
    need(ad.get("processName") == "cat", "Decrypt processName %r, the reader was cat" % ad.get("processName"))
    # every Decrypt of the test: volume, uid and pid; file id when it was for a file access
    audit.offset = start
    for rec in audit.records():
        if rec.get("eventName") != "Decrypt":
            continue
        c = rec_get(rec, "requestParameters", "encryptionContext") or {}
        need(c.get("kmsfs:volume"), "Decrypt without kmsfs:volume: %r" % rec)
        need(rec_get(rec, "userIdentity", "uid") is not None, "Decrypt without userIdentity.uid: %r" % rec)
        need(rec_get(rec, "additionalEventData", "pid") is not None, "Decrypt without pid: %r" % rec)
        if rec_get(rec, "additionalEventData", "processName") not in ("kmsfs",):
            need(c.get("kmsfs:file"), "Decrypt by %r without kmsfs:file: %r"
                 % (rec_get(rec, "additionalEventData", "processName"), rec))
    ids = [x.get("eventID") for x in audit.records(since_mark=False)]
    need(len(ids) == len(set(ids)), "duplicate eventID in the audit log")
    assert not problems, "audit record problems:\n  " + "\n  ".join(problems)


def test_audit_pid_is_the_reader(mvol, audit):
    write_file(mvol.p("who"), b"who reads")
    mvol.remount()
    audit.mark()
    p = subprocess.Popen(["cat", mvol.p("who")], stdout=subprocess.DEVNULL)
    pid = p.pid
    p.wait(30)
    recs = audit.wait(lambda r: r.get("eventName") == "Decrypt" and rec_mentions_file(r, "who", mvol.file_id("who")))
    assert recs, audit.dump()
    assert int(rec_get(recs[0], "additionalEventData", "pid")) == pid, \
        "Decrypt record pid %r, reader pid %d" % (rec_get(recs[0], "additionalEventData", "pid"), pid)


def test_config_is_protected_and_authenticated(kmsfs):
    k1 = kmsfs.create_key("conf-k1")
    k2 = kmsfs.create_key("conf-k2")
    v = kmsfs.new_volume("conf", key=k1)
    orig = read_file(v.b("kmsfs.conf"))
    v.mount()
    write_file(v.p("data"), b"payload")
    try:
        with open(v.p("kmsfs.conf"), "wb") as f:
            f.write(b"[evil]\n")
    except OSError:
        pass
    try:
        os.rename(v.p("data"), v.p("kmsfs.conf"))
    except OSError:
        pass
    v.unmount()
    assert read_file(v.b("kmsfs.conf")) == orig, "writing kmsfs.conf through the mount changed the volume config"
    if not os.path.exists(v.b("data")):
        pytest.fail("renaming a file onto kmsfs.conf through the mount removed it from the volume")
    u1 = kmsfs_it.UUID_RE.search(k1).group(0)
    u2 = kmsfs_it.UUID_RE.search(k2).group(0)
    text = orig.decode()
    assert u1.lower() in text.lower(), "kmsfs.conf does not name the volume key %s:\n%s" % (u1, text)
    tampered = re.sub(re.escape(u1), u2, text, flags=re.I)
    write_file(v.b("kmsfs.conf"), tampered.encode())
    r = v.mount(check=False)
    assert r.rc != 0, "mount accepted a kmsfs.conf whose key id was swapped: %r" % r
    assert not kmsfs_it.is_mounted(v.mnt)
    write_file(v.b("kmsfs.conf"), orig)
    v.mount()
    assert read_file(v.p("data")) == b"payload"
    v.unmount()


def _decrypts_for(audit, rel, fid):
    return [r for r in audit.records() if r.get("eventName") == "Decrypt" and rec_mentions_file(r, rel, fid)]


def test_key_cache_default_and_ttl0(kmsfs, audit):
    """Default mount: reopening a file whose key is cached makes no new key-service call.
    --key-cache-ttl 0: every open is a Decrypt (and an audit record)."""
    v = kmsfs.new_volume("cache")
    v.mount()
    write_file(v.p("f"), b"cached")
    fid = v.file_id("f")
    v.remount()
    audit.mark()
    for _ in range(3):
        assert read_file(v.p("f")) == b"cached"
    time.sleep(0.3)
    n_default = len(_decrypts_for(audit, "f", fid))
    assert n_default == 1, "default mount: %d Decrypt calls for 3 opens (expected 1):\n%s" % (n_default, audit.dump())
    v.remount("--key-cache-ttl", "0")
    audit.mark()
    for _ in range(3):
        assert read_file(v.p("f")) == b"cached"
    kmsfs_it.wait_for(lambda: len(_decrypts_for(audit, "f", fid)) >= 3, 5)
    got = len(_decrypts_for(audit, "f", fid))
    assert got >= 3, "--key-cache-ttl 0: %d Decrypt records for 3 opens:\n%s" % (got, audit.dump())
    v.unmount()


def test_key_cache_ttl_bounds_revocation(kmsfs, audit):
    """With --key-cache-ttl 2, disabling the key denies new opens within about 2 s."""
    key = kmsfs.create_key("ttl-test")
    v = kmsfs.new_volume("ttl", key=key)
    v.mount("--key-cache-ttl", "2")
    write_file(v.p("f"), b"ttl")
    assert read_file(v.p("f")) == b"ttl"
    kmsfs.key("disable", key)
    try:
        time.sleep(3.5)
        e, _ = read_err(v.p("f"))
        assert e == errno.EACCES, "3.5 s after disabling the key (ttl 2 s) open gave errno %s" % errname(e)
    finally:
        kmsfs.key("enable", key)
    time.sleep(0.2)
    assert read_file(v.p("f")) == b"ttl"
    v.unmount()


def test_init_and_key_commands_with_wrong_passphrase(vol, kmsfs):
    bad = os.path.join(vol.root, "bad-pass")
    write_file(bad, b"wrong\n")
    d = os.path.join(vol.root, "second")
    os.makedirs(d)
    r = kmsfs.run("init", "--keystore", kmsfs.keystore, "--passfile", bad, d, check=False)
    assert r.rc != 0 and "passphrase" in (r.out + r.err).lower(), r
    assert not os.path.exists(os.path.join(d, "kmsfs.conf"))
    r = kmsfs.run("key", "create", "--keystore", kmsfs.keystore, "--passfile", bad, check=False)
    assert r.rc != 0, r


def test_backup_restore_with_xattrs_works(vol):
    """A backing file copied with its xattrs (cp -a) is readable under a new name: backups and
    restores of the cipher dir work; copied without xattrs it fails cleanly."""
    vol.mount()
    data = os.urandom(3 * BLOCK + 17)
    write_file(vol.p("orig"), data)
    vol.unmount()
    r = subprocess.run(["cp", "-a", vol.b("orig"), vol.b("restored")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["cp", vol.b("orig"), vol.b("no-xattrs")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    vol.mount()
    assert read_file(vol.p("restored")) == data, "a cp -a copy of a backing file is not readable"
    assert read_file(vol.p("orig")) == data
    e, got = read_err(vol.p("no-xattrs"))
    assert e != 0, "a copy without the wrapped DEK returned data"


def test_key_admin_calls_are_audited(kmsfs, audit):
    key = kmsfs.create_key("admin-audit")
    kmsfs.key("disable", key)
    kmsfs.key("enable", key)
    uuid = kmsfs_it.UUID_RE.search(key).group(0).lower()
    recs = audit.records()
    names = [r.get("eventName") for r in recs if uuid in str(r).lower()]
    for ev in ("CreateKey", "DisableKey", "EnableKey"):
        assert ev in names, "no %s record for key %s (records naming it: %r)\n%s" % (ev, uuid, names, audit.dump())


def test_daemon_crash_keeps_fsynced_data(vol, kmsfs):
    """SIGKILL the daemon: everything fsynced before is intact after a remount."""
    vol.mount()
    a = os.urandom(MiB + 5)
    write_file(vol.p("a"), a)
    b = os.urandom(2 * MiB + 3)
    fd = os.open(vol.p("b"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b)
        os.fsync(fd)
        os.write(fd, os.urandom(100000))  # not fsynced
        pids = vol.daemon_pids()
        assert len(pids) == 1, pids
        os.kill(pids[0], signal.SIGKILL)
        kmsfs_it.wait_for(lambda: not kmsfs_it.pid_alive(pids[0]), 10)
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    subprocess.run(["fusermount3", "-u", vol.mnt], capture_output=True)
    if kmsfs_it.is_mounted(vol.mnt):
        subprocess.run(["fusermount3", "-u", "-z", vol.mnt], capture_output=True)
    kmsfs.mounts.discard(os.path.abspath(vol.mnt))
    vol.mount()
    assert read_file(vol.p("a")) == a, "a file written and closed before the crash is damaged"
    e, got = read_err(vol.p("b"), 0, len(b))
    assert e == 0, "fsynced part of b unreadable after the crash: errno %s" % errname(e)
    assert got == b, "fsynced part of b differs after the crash"
    vol.unmount()
