"""kmsfs rekey (issue 5): move an unmounted volume to another KMS key in place.

Default mode rewraps each file's data key through ReEncrypt (contents untouched, no plaintext
data key in the process); --reencrypt gives every file a fresh data key and file id. Either
way the old key can be disabled afterwards and every byte, link and xattr is still there; a
run killed half-way finishes when run again; a mounted volume, an unknown or a disabled new
key is refused with the volume unchanged."""
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile

import pytest

import kmsfs_it
from kmsfs_it import AuditLog, read_file, rec_get, rec_path, write_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kmsd"))
import kmsd_it  # noqa: E402  (tests/kmsd's harness: starts a real kmsd)

STATE = ".kmsfs-rekey-state"
STAGING = ".kmsfs-rekey.d"
DEK_XATTR = "user.kmsfs.dek"
MIB = 1 << 20
OLD_MTIME = 1_100_000_000


def rekey(kmsfs, v, key, *extra, check=True):
    return kmsfs.run("rekey", v.cipherdir, "--key", key, "--no-progress", *extra,
                     *kmsfs.store_args(), check=check)


def new_bucket_volume(kmsfs, name, key):
    root = os.path.join(kmsfs.base, "vols", name)
    cipherdir, mnt = os.path.join(root, "cipher"), os.path.join(root, "mnt")
    os.makedirs(cipherdir)
    os.makedirs(mnt)
    kmsfs.run("init", "--bucket-key", "--key", key, *kmsfs.store_args(), cipherdir)
    return kmsfs_it.Volume(kmsfs, root, cipherdir, mnt, "aes-256-gcm", key)


def populate(v):
    """Through a mount: files of 0, 1, 4097 bytes and 1 MiB, an 8 MiB sparse file, a hard
    link, a symlink, an xattr, a mode and an old mtime; plus a keyless empty backing file.
    Returns {name: sha256 of its plaintext}."""
    v.mount()
    os.makedirs(v.p("d", "sub"))
    for rel, data in {"empty": b"", "one": b"x", "f4097": os.urandom(4097),
                      "d/big": os.urandom(MIB)}.items():
        write_file(v.p(rel), data)
    with open(v.p("d/sub/sparse"), "wb") as f:
        f.truncate(8 * MIB)
        f.seek(3 * MIB)
        f.write(b"in the middle of nothing")
    os.link(v.p("f4097"), v.p("d/sub/hardlink"))
    os.symlink("../f4097", v.p("d/symlink"))
    os.setxattr(v.p("one"), "user.color", b"blue")
    os.chmod(v.p("d/big"), 0o640)
    os.utime(v.p("d/big"), (OLD_MTIME, OLD_MTIME))
    names = ["empty", "one", "f4097", "d/big", "d/sub/sparse", "d/sub/hardlink"]
    sums = {rel: kmsfs_it.sha256_file(v.p(rel)) for rel in names}
    v.unmount()
    open(v.b("zero"), "wb").close()      # backing size 0: no header, no data key
    sums["zero"] = kmsfs_it.sha256_file(v.b("zero"))
    return sums


def check_mounted(v, sums):
    """Mount (the old key may be disabled by now): every byte, link and xattr is there."""
    v.mount()
    try:
        for rel, digest in sums.items():
            assert kmsfs_it.sha256_file(v.p(rel)) == digest, "%s reads back different bytes" % rel
        a, b = os.stat(v.p("f4097")), os.stat(v.p("d/sub/hardlink"))
        assert (a.st_ino, a.st_nlink) == (b.st_ino, 2), "the hard link is no longer one"
        assert os.readlink(v.p("d/symlink")) == "../f4097"
        assert os.getxattr(v.p("one"), "user.color") == b"blue"
        big = os.stat(v.p("d/big"))
        assert (big.st_mode & 0o7777, int(big.st_mtime)) == (0o640, OLD_MTIME)
    finally:
        v.unmount()
    assert not os.path.exists(v.b(STATE)) and not os.path.exists(v.b(STAGING)), \
        "rekey left %s" % os.listdir(v.cipherdir)


def backing_files(v):
    """Volume-relative names of the backing regular files that carry a header, by inode."""
    seen, out = set(), []
    for top, dirs, files in os.walk(v.cipherdir):
        for name in files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, v.cipherdir)
            if rel == "kmsfs.conf" or not stat.S_ISREG(st.st_mode) or st.st_size == 0:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                out.append(rel)
    return sorted(out)


def stored_blocks(path):
    """The sealed blocks of a backing file, holes (all-zero blocks) left out."""
    data = read_file(path)[kmsfs_it.HEADER_SIZE:]
    size = kmsfs_it.BLOCK + kmsfs_it.NONCE["aes-256-gcm"] + kmsfs_it.TAG
    blocks = (data[i:i + size] for i in range(0, len(data), size))
    return {b for b in blocks if b.strip(b"\0")}


def conf_key(v):
    return re.search(r"^key_id\s*=\s*(\S+)", v.conf_text, re.M).group(1)


def audit_log(kmsfs):
    return AuditLog(os.path.join(kmsfs.keystore, "audit.log"))


def data_key_records(audit, event):
    """Records of event about a file's data key (the encryption context names the file)."""
    return [r for r in audit.records() if r.get("eventName") == event
            and "kmsfs:file" in (rec_get(r, "requestParameters", "encryptionContext") or {})]


def test_rekey_rewraps_every_data_key_and_the_old_key_can_go(kmsfs):
    key_a = kmsfs.create_key("rekey A")
    key_b = kmsfs.create_key("rekey B", alias="alias/rekey-rewrap-b")
    v = kmsfs.new_volume("rekey-rewrap", key=key_a)
    sums = populate(v)
    files = backing_files(v)
    before = {rel: read_file(v.b(rel)) for rel in files}
    audit = audit_log(kmsfs)

    r = rekey(kmsfs, v, "alias/rekey-rewrap-b")
    m = re.search(r"(\d+) files rewrapped, (\d+) skipped, (\d+) failed", r.out)
    assert m and m.groups() == (str(len(files)), "1", "0"), r
    arn_b = conf_key(v)
    assert key_b in (arn_b, arn_b.split("/")[-1]), "kmsfs.conf names %s, not key B" % arn_b
    for rel in files:
        assert read_file(v.b(rel)) == before[rel], "%s: contents changed by a rewrap" % rel
        assert arn_b.encode() in os.getxattr(v.b(rel), DEK_XATTR), "%s: data key not under B" % rel
    reenc = [r for r in audit.records() if r.get("eventName") == "ReEncrypt"]
    named = {rec_path(r) for r in reenc if not r.get("errorCode")
             and rec_get(r, "requestParameters", "keyId") == arn_b}
    linked = {"f4097", "d/sub/hardlink"}
    assert set(files) - linked <= named and named & linked, \
        "ReEncrypt records name %s, files are %s:\n%s" % (named, files, audit.dump())
    assert not data_key_records(audit, "Decrypt") + data_key_records(audit, "GenerateDataKey"), \
        "a plaintext data key was asked for:\n%s" % audit.dump()

    again = rekey(kmsfs, v, key_b)
    assert re.search(r"0 files rewrapped, %d skipped, 0 failed" % (len(files) + 1), again.out), again
    kmsfs.key("disable", key_a)
    check_mounted(v, sums)


def test_rekey_reencrypt_replaces_every_data_key_file_id_and_block(kmsfs):
    key_a, key_b = kmsfs.create_key("reencrypt A"), kmsfs.create_key("reencrypt B")
    v = kmsfs.new_volume("rekey-reencrypt", key=key_a)
    sums = populate(v)
    files = backing_files(v)
    ids = {rel: v.file_id(rel) for rel in files}
    old_blocks = set().union(*(stored_blocks(v.b(rel)) for rel in files))
    audit = audit_log(kmsfs)

    r = kmsfs.run("rekey", v.cipherdir, "--key", key_b, "--reencrypt", "--progress",
                  *kmsfs.store_args())
    assert re.search(r"%d files re-encrypted, 1 skipped, 0 failed" % len(files), r.out), r
    assert re.search(r"rekey: \d+/\d+ files, .*/s, ETA", r.err), "no progress line: %r" % r
    assert backing_files(v) == files
    for rel in files:
        assert v.file_id(rel) != ids[rel], "%s kept its file id" % rel
        assert not stored_blocks(v.b(rel)) & old_blocks, "%s kept a stored block" % rel
    link_a, link_b = os.stat(v.b("f4097")), os.stat(v.b("d/sub/hardlink"))
    assert (link_a.st_ino, link_a.st_nlink) == (link_b.st_ino, 2)
    assert os.stat(v.b("d/sub/sparse")).st_blocks * 512 < MIB, "the sparse file was filled in"
    for event in ("Decrypt", "GenerateDataKey"):
        named = {rec_path(rec) for rec in data_key_records(audit, event) if not rec.get("errorCode")}
        assert len(named) == len(files), "%s records name %s:\n%s" % (event, named, audit.dump())
    kmsfs.key("disable", key_a)
    check_mounted(v, sums)


def count_done(state_path):
    try:
        text = read_file(state_path).decode()
    except FileNotFoundError:
        return 0
    return len(re.findall(r"^[0-9a-f]{32} = [0-9a-f]{32}$", text, re.M))


def test_rekey_reencrypt_killed_midway_finishes_on_the_next_run(kmsfs):
    key_a, key_b = kmsfs.create_key("kill A"), kmsfs.create_key("kill B")
    v = kmsfs.new_volume("rekey-kill", key=key_a)
    v.mount()
    n = 400
    for i in range(n):
        write_file(v.p("f%03d" % i), b"%05d" % i * (200 + i * 7))
    os.link(v.p("f399"), v.p("link399"))
    sums = {name: kmsfs_it.sha256_file(v.p(name)) for name in os.listdir(v.mnt)}
    v.unmount()
    ids = {name: v.file_id(name) for name in sums}

    p = subprocess.Popen([kmsfs.bin, "rekey", v.cipherdir, "--key", key_b, "--reencrypt",
                          "--jobs", "1", "--no-progress"] + kmsfs.store_args(),
                         env=kmsfs.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    kmsfs_it.wait_for(lambda: count_done(v.b(STATE)) >= 40 or p.poll() is not None,
                      timeout=60, interval=0.002)
    assert p.poll() is None, "rekey finished before it could be killed: %r" % (p.communicate(),)
    p.send_signal(signal.SIGKILL)
    p.communicate()
    done = count_done(v.b(STATE))
    assert 40 <= done < n, "killed after %d of %d files" % (done, n)
    assert conf_key(v).endswith(key_a.split("/")[-1]), "kmsfs.conf moved before the files did"

    # Half-way, the volume mounts (both keys enabled) and every file is whole.
    v.mount()
    for name, digest in sums.items():
        assert kmsfs_it.sha256_file(v.p(name)) == digest, "%s is damaged after SIGKILL" % name
    v.unmount()

    r = rekey(kmsfs, v, key_b, "--reencrypt", "--jobs", "1")
    m = re.search(r"(\d+) files re-encrypted, (\d+) skipped, 0 failed", r.out)
    assert m, r
    redone, skipped = int(m.group(1)), int(m.group(2))
    # n inodes, or n + 1 if the kill split f399 from link399 (the re-run rejoins them)
    assert redone + skipped in (n, n + 1) and done - 1 <= skipped <= done, \
        "%d files were done before the kill; the re-run: %r" % (done, r)
    assert all(v.file_id(name) != ids[name] for name in sums), "a file was not re-encrypted"
    assert sorted(os.listdir(v.cipherdir)) == sorted(list(sums) + ["kmsfs.conf"])
    kmsfs.key("disable", key_a)
    v.mount()
    try:
        for name, digest in sums.items():
            assert kmsfs_it.sha256_file(v.p(name)) == digest, "%s differs after the re-run" % name
        assert os.stat(v.p("f399")).st_ino == os.stat(v.p("link399")).st_ino
    finally:
        v.unmount()


@pytest.mark.parametrize("edited", [False, True], ids=["untouched", "edited-between-runs"])
def test_rekey_reencrypt_failure_reported_and_split_links_rejoined_by_the_rerun(kmsfs, edited):
    """A name that cannot be replaced splits a hard-linked file between its old and new inode;
    the re-run links the names together again - unless one was written in between (through a
    mount), when both are kept as they are, two files."""
    key_a, key_b = kmsfs.create_key("split A"), kmsfs.create_key("split B")
    v = kmsfs.new_volume("rekey-split", key=key_a)
    v.mount()
    os.mkdir(v.p("locked"))
    write_file(v.p("a"), b"linked twice\n" * 1000)
    os.link(v.p("a"), v.p("locked/b"))
    write_file(v.p("other"), b"another file\n")
    v.unmount()
    # The second name cannot be replaced: the first moves to the new inode, the second stays.
    subprocess.run(["chattr", "+i", v.b("locked")], check=True)
    try:
        r = rekey(kmsfs, v, key_b, "--reencrypt", check=False)
    finally:
        subprocess.run(["chattr", "-i", v.b("locked")], check=True)
    assert r.rc == 1, r
    assert re.search(r"^kmsfs: rekey: locked/b: .*Operation not permitted", r.err, re.M), r
    assert "1 failed" in r.out and conf_key(v).endswith(key_a.split("/")[-1]), r
    assert os.path.exists(v.b(STATE)), "the state file was removed after a failure"
    assert os.stat(v.b("a")).st_ino != os.stat(v.b("locked/b")).st_ino
    v.mount()
    assert read_file(v.p("a")) == read_file(v.p("locked/b")) == b"linked twice\n" * 1000
    if edited:
        with open(v.p("locked/b"), "ab") as f:
            f.write(b"edited\n")
    v.unmount()
    new_id = v.file_id("a")
    b_text = b"linked twice\n" * 1000 + (b"edited\n" if edited else b"")

    r = rekey(kmsfs, v, key_b, "--reencrypt")
    assert "0 failed" in r.out, r
    a, b = os.stat(v.b("a")), os.stat(v.b("locked/b"))
    if edited:
        assert a.st_ino != b.st_ino and (a.st_nlink, b.st_nlink) == (1, 1), \
            "an edited name was joined to the other (its edit lost)"
    else:
        assert (a.st_ino, a.st_nlink) == (b.st_ino, 2), "the split link was not rejoined"
    assert v.file_id("a") == new_id, "the re-run re-encrypted a finished file again"
    kmsfs.key("disable", key_a)
    v.mount()
    try:
        assert read_file(v.p("a")) == b"linked twice\n" * 1000
        assert read_file(v.p("locked/b")) == b_text
        assert read_file(v.p("other")) == b"another file\n"
    finally:
        v.unmount()
    assert sorted(os.listdir(v.cipherdir)) == ["a", "kmsfs.conf", "locked", "other"]


def test_rekey_reports_a_bad_file_goes_on_and_finishes_once_it_is_fixed(kmsfs):
    key_a, key_b = kmsfs.create_key("bad file A"), kmsfs.create_key("bad file B")
    v = kmsfs.new_volume("rekey-bad-file", key=key_a)
    v.mount()
    for name in ("a", "b", "c"):
        write_file(v.p(name), name.encode() * 5000)
    v.unmount()
    os.removexattr(v.b("b"), DEK_XATTR)                       # as a copy without xattrs
    write_file(v.b(".kmsfs.conf.x1Yz9Q"), b"[volume]\n")      # a config rewrite's leftover

    r = rekey(kmsfs, v, key_b, check=False)
    assert r.rc == 1, r
    assert re.search(r"^kmsfs: rekey: b: .*no user.kmsfs.dek", r.err, re.M), r
    assert "2 files rewrapped, 1 skipped, 1 failed" in r.out, r
    assert conf_key(v).endswith(key_a.split("/")[-1]), "kmsfs.conf moved with a file left behind"
    os.unlink(v.b("b"))
    r = rekey(kmsfs, v, key_b)
    assert "0 files rewrapped, 3 skipped, 0 failed" in r.out, r
    assert not conf_key(v).endswith(key_a.split("/")[-1])
    kmsfs.key("disable", key_a)
    v.mount()
    try:
        assert read_file(v.p("a")) == b"a" * 5000 and read_file(v.p("c")) == b"c" * 5000
    finally:
        v.unmount()


def test_rekey_bucket_key_volume(kmsfs):
    key_a, key_b, key_c = (kmsfs.create_key("bucket " + n) for n in "ABC")
    v = new_bucket_volume(kmsfs, "rekey-bucket", key_a)
    v.mount()
    data = {"f%d" % i: os.urandom(100 + 5000 * i) for i in range(6)}
    for name, content in data.items():
        write_file(v.p(name), content)
    v.unmount()
    assert all(os.getxattr(v.b(name), DEK_XATTR)[0] == 2 for name in data)
    audit = audit_log(kmsfs)

    r = rekey(kmsfs, v, key_b)
    assert "6 files rewrapped, 0 skipped, 0 failed" in r.out, r
    reenc = [rec for rec in audit.records() if rec.get("eventName") == "ReEncrypt"]
    assert len(reenc) == 1 and not reenc[0].get("errorCode"), \
        "one bucket key, one ReEncrypt:\n%s" % audit.dump()
    assert not data_key_records(audit, "Decrypt"), audit.dump()
    assert "bucket_key = true" in v.conf_text
    kmsfs.key("disable", key_a)
    v.mount()
    try:
        assert all(read_file(v.p(name)) == content for name, content in data.items())
    finally:
        v.unmount()

    r = rekey(kmsfs, v, key_c, "--reencrypt")
    assert "6 files re-encrypted" in r.out, r
    kmsfs.key("disable", key_b)
    v.mount()
    try:
        assert all(read_file(v.p(name)) == content for name, content in data.items())
    finally:
        v.unmount()


def test_rekey_remote_volume_on_kmsd(kmsfs):
    """A volume on a remote key service: DescribeKey and ReEncrypt go to kmsd, signed with the
    user's AWS profile; the old key disabled in kmsd, the volume still reads."""
    kmsd = os.path.join(os.path.dirname(kmsfs.bin), "kmsd", "kmsd")
    if not os.access(kmsd, os.X_OK):
        pytest.fail("kmsd not built next to kmsfs: %s" % kmsd)
    base = tempfile.mkdtemp(prefix="rekey-remote-", dir=kmsfs.base)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = kmsd_it.Kmsd(kmsd, os.path.join(base, "kmsd"), listen="127.0.0.1:%d" % port)
    server.start()
    try:
        admin = server.user("admin")
        creds = os.path.join(base, "aws-credentials")
        with open(creds, "w") as f:
            f.write("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                    % (admin.access_key_id, admin.secret_access_key))
        env = dict(kmsfs.env, AWS_SHARED_CREDENTIALS_FILE=creds, AWS_CONFIG_FILE="/dev/null",
                   AWS_REGION=kmsd_it.REGION)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                     "AWS_PROFILE"):
            env.pop(name, None)
        kms = server.client("admin")
        key_a, key_b = (kms.create_key(Description=d)["KeyMetadata"]["Arn"] for d in "AB")
        cipherdir, mnt = os.path.join(base, "cipher"), os.path.join(base, "mnt")
        os.makedirs(mnt)
        audit_path = os.path.join(base, "audit.log")
        kmsfs.run("init", "--key-service", server.endpoint, "--key", key_a, cipherdir, env=env)

        def mount():
            kmsfs.run("mount", "--audit-log", audit_path, cipherdir, mnt, env=env)
            kmsfs.track_mount(mnt)

        data = {"f%d" % i: os.urandom(3000 * i + 1) for i in range(5)}
        mount()
        for name, content in data.items():
            write_file(os.path.join(mnt, name), content)
        assert not kmsfs.unmount(mnt)
        audit = AuditLog(audit_path)
        r = kmsfs.run("rekey", cipherdir, "--key", key_b, "--no-progress", "--audit-log",
                      audit_path, env=env)
        assert "5 files rewrapped, 0 skipped, 0 failed" in r.out, r
        named = {rec_path(rec) for rec in audit.records()
                 if rec.get("eventName") == "ReEncrypt" and not rec.get("errorCode")}
        assert named == set(data), audit.dump()
        kms.disable_key(KeyId=key_a)
        mount()
        try:
            for name, content in data.items():
                assert read_file(os.path.join(mnt, name)) == content, name
        finally:
            assert not kmsfs.unmount(mnt)
    finally:
        server.stop()


def test_rekey_refused_while_mounted(kmsfs):
    key_b = kmsfs.create_key("mounted B")
    v = kmsfs.new_volume("rekey mounted")          # a space: \040 in mountinfo
    v.mount()
    write_file(v.p("f"), b"busy")
    conf = v.conf_text
    try:
        r = rekey(kmsfs, v, key_b, check=False)
    finally:
        v.unmount()
    assert r.rc != 0 and "mounted at %s" % v.mnt in r.err, r
    assert v.conf_text == conf and not os.path.exists(v.b(STATE))


def test_rekey_unknown_or_disabled_key_changes_nothing(kmsfs):
    key_a, key_c = kmsfs.create_key("refused A"), kmsfs.create_key("refused C")
    kmsfs.key("disable", key_c)
    v = kmsfs.new_volume("rekey-refused", key=key_a)
    v.mount()
    write_file(v.p("f"), b"still here\n")
    v.unmount()
    conf, dek = v.conf_text, os.getxattr(v.b("f"), DEK_XATTR)

    r = rekey(kmsfs, v, "alias/rekey-no-such-key", check=False)
    assert r.rc != 0 and re.search(r"alias/rekey-no-such-key: .*NotFoundException", r.err), r
    r = rekey(kmsfs, v, key_c, "--reencrypt", check=False)
    assert r.rc != 0 and re.search(r"is Disabled.*DisabledException", r.err), r
    assert v.conf_text == conf and os.getxattr(v.b("f"), DEK_XATTR) == dek
    assert sorted(os.listdir(v.cipherdir)) == ["f", "kmsfs.conf"]
    v.mount()
    try:
        assert read_file(v.p("f")) == b"still here\n"
    finally:
        v.unmount()


def test_rekey_usage(kmsfs):
    r = kmsfs.run("rekey", "--help")
    assert r.out.startswith("usage: kmsfs rekey") and "--reencrypt" in r.out, r
    r = kmsfs.run("rekey", kmsfs.bootstrap.cipherdir, check=False)
    assert r.rc == 2 and "--key NEW_KEY is required" in r.err, r
