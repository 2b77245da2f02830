"""kmsfs fsck (issue 5): a volume checked without mounting it.

A fresh volume with files of many sizes is clean (exit 0). Each fault injected by editing the
backing files directly is found and named by path (and block) with exit 4: a flipped bit, two
stored blocks swapped, user.kmsfs.dek removed, a foreign header (a file copied with its xattr
from another volume, a plaintext file dropped in, a header moved onto another file). --quick
finds the xattr and header faults and a flipped bit in a first or last block while reading at
most 16 blocks per file. --repair deletes only leftovers (exit 1, then 0 on the next run) and
never touches a user's file. A disabled key is a clear "cannot check" with a non-zero exit.
Every finding is an audit record (eventSource kmsfs)."""
import errno
import os
import re
import signal
import stat
import subprocess
import time

import pytest

import kmsfs_it
from kmsfs_it import HEADER_SIZE, read_file, rec_get, stored_block_offset, write_file

DEK_XATTR = "user.kmsfs.dek"
QUICK_BLOCKS = 16
BLOCK = 4096

# name -> plaintext size; "sparse" is written at an offset (one block of data after a hole)
SIZES = {"empty": 0, "one": 1, "a4095": 4095, "a4096": 4096, "a4097": 4097,
         "big": 40 * BLOCK + 123, "docs/sub/mid": 20000}
SPARSE_AT = 8 * 1024 * 1024


def content(name, size):
    seed = name.encode() * (size // max(len(name), 1) + 2)
    return bytes((b * 7 + i) & 0xFF for i, b in enumerate(seed[:size]))


def populate(vol, sizes=SIZES):
    """Write the files through a mount (the default set with a hard link, a symlink and a
    sparse file); unmount; add a fifo in the cipher dir (fine as it is). {name: plaintext}"""
    vol.mount()
    data = {}
    try:
        for name, size in sizes.items():
            os.makedirs(os.path.dirname(vol.p(name)) or vol.mnt, exist_ok=True)
            data[name] = content(name, size)
            write_file(vol.p(name), data[name])
        if sizes is SIZES:
            os.link(vol.p("big"), vol.p("big.link"))
            os.symlink("one", vol.p("one.sym"))
            with open(vol.p("sparse"), "wb") as f:
                f.seek(SPARSE_AT)
                f.write(b"tail")
            data["sparse"] = b"\0" * SPARSE_AT + b"tail"
    finally:
        vol.unmount()
    os.mkfifo(vol.b("fifo"))
    return data


def fsck(vol, *args, check_rc=None):
    r = vol.ctx.run("fsck", *vol.ctx.store_args(), "--no-progress", *args, vol.cipherdir,
                    check=False, timeout=120)
    if check_rc is not None:
        assert r.rc == check_rc, "kmsfs fsck exited %r, expected %d: %r" % (r.rc, check_rc, r)
    return r


def findings(r):
    """stdout lines before the summary."""
    return [ln for ln in r.out.splitlines() if ln and not ln.startswith("kmsfs fsck: ")]


def summary(r):
    lines = [ln for ln in r.out.splitlines() if ln.startswith("kmsfs fsck: ")]
    assert len(lines) == 1, "expected one summary line: %r" % r
    m = re.search(r"(\d+) files?, .*?, (\d+) blocks? checked", lines[0])
    assert m, "summary without file and block counts: %r" % lines[0]
    return {"files": int(m.group(1)), "blocks": int(m.group(2)), "line": lines[0]}


def lines_for(r, path):
    return [ln for ln in findings(r) if ln.startswith(path + ": ")]


def flip_bit(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x10]))


def stored_len(cipher="aes-256-gcm"):
    return stored_block_offset(1, cipher) - stored_block_offset(0, cipher)


def snapshot_backing(vol):
    """Every regular backing file's bytes and xattrs, to show --repair left them alone."""
    out = {}
    for root, _dirs, files in os.walk(vol.cipherdir):
        for n in files:
            p = os.path.join(root, n)
            if not stat.S_ISREG(os.lstat(p).st_mode):
                continue
            xs = {x: os.getxattr(p, x) for x in os.listxattr(p)}
            out[os.path.relpath(p, vol.cipherdir)] = (read_file(p), xs)
    return out


def fsck_records(audit, event=None):
    return [r for r in audit.records() if r.get("eventSource") == "kmsfs"
            and (event is None or r.get("eventName") == event)
            and "fsck" in (r.get("errorMessage") or "")]


# ---- a clean volume -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["aes-256-gcm", "xchacha20-poly1305", "bucket-key"])
def test_fresh_volume_is_clean(kmsfs, kind):
    if kind == "bucket-key":
        root = os.path.join(kmsfs.base, "vols", "fsck-clean-bucket")
        vol = kmsfs_it.Volume(kmsfs, root, os.path.join(root, "cipher"), os.path.join(root, "mnt"),
                              "aes-256-gcm", None)
        os.makedirs(vol.cipherdir)
        os.makedirs(vol.mnt)
        kmsfs.run("init", "--bucket-key", *kmsfs.store_args(), vol.cipherdir)
    else:
        vol = kmsfs.new_volume("fsck-clean-" + kind, cipher=kind)
    populate(vol)
    r = fsck(vol, "-v", check_rc=0)
    s = summary(r)
    assert "no problems found" in s["line"], r
    # every regular file once (the hard link is the same file): the sizes, big's link, sparse
    assert s["files"] == len(SIZES) + 1, r
    checked = [ln.split(": ")[0] for ln in findings(r)]
    assert all(ln.split(": ", 1)[1].startswith("ok (") for ln in findings(r)), r
    assert len(checked) == len(set(checked)) == s["files"], r
    # a file with two links is checked once, under the name that sorts first
    assert set(checked) == set(SIZES) | {"sparse"}, r
    # every data block checked; the sparse file's 2048 blocks of hole are not read (only the
    # hole blocks sharing a disk block with the header or the data: they read as zeros)
    sl = stored_len(vol.cipher)
    want = sum(-(-(kmsfs_it.stored_size(n, vol.cipher) - HEADER_SIZE) // sl)
               for n in SIZES.values()) + 1
    assert want <= s["blocks"] <= want + 2, "expected %d blocks checked: %r" % (want, r)
    rq = fsck(vol, "--quick", check_rc=0)
    assert summary(rq)["blocks"] < want, rq


def test_usage_and_help(kmsfs, vol):
    r = kmsfs.run("fsck", "--help", check=False)
    assert r.rc == 0 and "usage: kmsfs fsck" in r.out and "--repair" in r.out, r
    r = kmsfs.run("fsck", check=False)
    assert r.rc == 16 and "usage" in r.err, r
    r = kmsfs.run("fsck", "--jobs", "0", vol.cipherdir, check=False)
    assert r.rc == 16 and "--jobs" in r.err, r
    notvol = os.path.join(vol.root, "notvol")
    os.makedirs(notvol)
    r = kmsfs.run("fsck", *kmsfs.store_args(), notvol, check=False)
    assert r.rc == 8 and "not a kmsfs volume" in r.err, r
    r = kmsfs.run("fsck", "--keystore", kmsfs.keystore, "--passfile", "/nonexistent/pass",
                  vol.cipherdir, check=False)
    assert r.rc == 8 and "/nonexistent/pass" in r.err, r


def test_unreachable_key_service_is_an_operational_error(kmsfs, vol):
    populate(vol, {"f": 100})
    with open(vol.b("kmsfs.conf")) as f:
        text = f.read()
    assert "key_service = local" in text
    with open(vol.b("kmsfs.conf"), "w") as f:     # nothing listens on port 9 (discard)
        f.write(text.replace("key_service = local", "key_service = http://127.0.0.1:9"))
    env = dict(kmsfs.env, AWS_ACCESS_KEY_ID="AKIAFSCKTEST", AWS_SECRET_ACCESS_KEY="secret",
               AWS_REGION="us-east-1", HOME=vol.root)
    r = kmsfs.run("fsck", "--keystore", kmsfs.keystore, "--no-progress", vol.cipherdir,
                  check=False, env=env, timeout=60)
    assert r.rc == 8, r
    assert "unreachable" in r.err and "DependencyTimeoutException" in r.err, r


def test_progress_line(kmsfs, vol):
    populate(vol, {"a": 5000, "b": 100})
    r = fsck(vol, "--progress", check_rc=0)
    assert "kmsfs fsck: 0/2 files" in r.err, "no progress line on stderr with --progress: %r" % r
    # (text mode reads the carriage returns as newlines)
    assert r.err.endswith("\033[K"), "the progress line is not cleared at the end: %r" % r
    assert "\033" not in r.out, r
    r = fsck(vol, check_rc=0)                      # --no-progress (and not a terminal)
    assert r.err == "", r


# ---- faults in the blocks ---------------------------------------------------------------------

def test_flipped_bit_and_swapped_blocks(kmsfs, vol, audit):
    data = populate(vol)
    sl = stored_len()
    flip_bit(vol.b("big"), stored_block_offset(3) + 12 + 100)          # in block 3's ciphertext
    with open(vol.b("a4097"), "r+b") as f:                              # blocks 0 and 1 swapped
        f.seek(stored_block_offset(0))
        b0 = f.read(sl)
        b1 = f.read()                                                   # the short last block
        f.seek(stored_block_offset(0))
        f.write(b1 + b0)
        f.truncate()
    with open(vol.b("docs/sub/mid"), "r+b") as f:                       # 1 and 2 swapped
        f.seek(stored_block_offset(1))
        b1, b2 = f.read(sl), f.read(sl)
        f.seek(stored_block_offset(1))
        f.write(b2 + b1)
    r = fsck(vol, check_rc=4)
    assert lines_for(r, "big") == ["big: block 3: authentication failed"], r
    mid = lines_for(r, "docs/sub/mid")
    assert sorted(mid) == ["docs/sub/mid: block 1: authentication failed",
                           "docs/sub/mid: block 2: authentication failed"], r
    # a4097 swapped its full block with its short last one: the size no longer fits a block
    # layout, or both blocks fail - either way a4097 is named
    assert lines_for(r, "a4097"), r
    named = {ln.split(": ")[0] for ln in findings(r)}
    assert named == {"big", "docs/sub/mid", "a4097"}, "only the damaged files: %r" % r
    recs = fsck_records(audit, "BlockAuthenticationFailure")
    got = {(kmsfs_it.rec_path(x), rec_get(x, "additionalEventData", "blockIndex")) for x in recs}
    assert {("big", 3), ("docs/sub/mid", 1), ("docs/sub/mid", 2)} <= got, audit.dump()
    assert all(x.get("errorCode") == "InvalidCiphertextException" for x in recs), audit.dump()
    # the mount agrees: big fails to read, the untouched files read back
    vol.mount()
    with pytest.raises(OSError) as e:
        read_file(vol.p("big"))
    assert e.value.errno == errno.EIO
    assert read_file(vol.p("a4096")) == data["a4096"]


def test_many_bad_blocks_listed_then_counted(kmsfs, vol):
    populate(vol, {"big": 40 * BLOCK})
    for i in range(40):
        flip_bit(vol.b("big"), stored_block_offset(i) + 20)
    r = fsck(vol, check_rc=4)
    lines = lines_for(r, "big")
    listed = [ln for ln in lines if re.match(r"big: block \d+: authentication failed$", ln)]
    assert len(listed) == 32, r
    assert any("8 more blocks failed authentication (40 in all)" in ln for ln in lines), r


def test_truncations_and_unsupported_header(kmsfs, vol):
    populate(vol, {"torn": 3 * BLOCK + 10, "short": 100, "future": 5000, "xfile": 100})
    with open(vol.b("torn"), "r+b") as f:        # a torn write: 5 bytes of the last block
        f.truncate(stored_block_offset(3) + 5)
    with open(vol.b("short"), "r+b") as f:
        f.truncate(20)
    with open(vol.b("future"), "r+b") as f:      # version 2
        f.seek(4)
        f.write(b"\x00\x02")
    with open(vol.b("xfile"), "r+b") as f:       # cipher xchacha in an aes volume
        f.seek(6)
        f.write(b"\x00\x02")
    r = fsck(vol, check_rc=4)
    assert lines_for(r, "torn") == ["torn: block 3: truncated: 5 stored bytes, a block needs "
                                    "at least 29 (nonce, tag and data; a torn write?)"], r
    assert lines_for(r, "short") == ["short: truncated header (20 of 32 bytes)"], r
    assert "unsupported header (version 2" in lines_for(r, "future")[0], r
    assert "header says xchacha20-poly1305" in lines_for(r, "xfile")[0], r


# ---- faults in the data keys and headers --------------------------------------------------------

def test_removed_xattr(kmsfs, vol, audit):
    populate(vol)
    os.removexattr(vol.b("a4096"), DEK_XATTR)
    r = fsck(vol, check_rc=4)
    line, = lines_for(r, "a4096")
    assert "no user.kmsfs.dek xattr" in line and "cp -a, rsync -X or kmsfs snapshot copy" in line, r
    assert not lines_for(r, "empty"), "an empty file needs no data key: %r" % r
    recs = fsck_records(audit, "MissingDataKey")
    assert [kmsfs_it.rec_path(x) for x in recs] == ["a4096"], audit.dump()


def test_foreign_headers(kmsfs, vol, audit):
    populate(vol)
    other = kmsfs.new_volume("fsck-other")          # another kmsfs init: its own key and id
    populate(other, {"theirs": 9000})
    # (a) copied with its xattr from the other volume (cp -a keeps user xattrs)
    subprocess.run(["cp", "-a", other.b("theirs"), vol.b("theirs")], check=True)
    # (b) plaintext dropped straight into the cipher dir
    write_file(vol.b("docs/notes.txt"), b"plain text, not through the mount\n")
    # (c) one file's header moved onto another
    with open(vol.b("a4096"), "rb") as f:
        hdr = f.read(HEADER_SIZE)
    with open(vol.b("a4097"), "r+b") as f:
        f.write(hdr)
    # and a whole file copied inside the cipher dir: both open, but they share an id and key
    subprocess.run(["cp", "-a", vol.b("one"), vol.b("one.copy")], check=True)
    r = fsck(vol, check_rc=4)
    line, = lines_for(r, "theirs")
    assert "does not open for this file (InvalidCiphertextException)" in line, r
    assert "another volume" in line, r
    line, = lines_for(r, "docs/notes.txt")
    assert "foreign file: no kmsfs header" in line, r
    line, = lines_for(r, "a4097")
    assert "its header is a copy of a4096's" in line, r
    assert not lines_for(r, "a4096"), "a4096 itself is intact: %r" % r
    dup = lines_for(r, "one") + lines_for(r, "one.copy")
    assert len(dup) == 1 and "same file id and data key as" in dup[0], r
    events = {(kmsfs_it.rec_path(x), x["eventName"]) for x in fsck_records(audit)}
    assert {("theirs", "DataKeyNotBound"), ("docs/notes.txt", "ForeignFile"),
            ("a4097", "DataKeyNotBound")} <= events, audit.dump()


def test_xattr_moved_between_files(kmsfs, vol):
    populate(vol)
    os.setxattr(vol.b("a4095"), DEK_XATTR, os.getxattr(vol.b("one"), DEK_XATTR))
    r = fsck(vol, check_rc=4)
    line, = lines_for(r, "a4095")
    assert "its user.kmsfs.dek is a copy of one's" in line, r


# ---- --quick --------------------------------------------------------------------------------

def test_quick_finds_key_header_and_end_block_faults(kmsfs, vol):
    sizes = {"first": 30 * BLOCK, "last": 30 * BLOCK + 7, "nokey": 5000, "moved": 6000,
             "small": 3 * BLOCK}
    populate(vol, sizes)
    flip_bit(vol.b("first"), stored_block_offset(0) + 40)
    flip_bit(vol.b("last"), os.path.getsize(vol.b("last")) - 3)        # in the last tag
    os.removexattr(vol.b("nokey"), DEK_XATTR)
    with open(vol.b("small"), "rb") as f:
        hdr = f.read(HEADER_SIZE)
    with open(vol.b("moved"), "r+b") as f:
        f.write(hdr)
    write_file(vol.b("dropped"), b"x" * 100)
    r = fsck(vol, "--quick", check_rc=4)
    assert lines_for(r, "first") == ["first: block 0: authentication failed"], r
    assert lines_for(r, "last") == ["last: block 30: authentication failed"], r
    assert "no user.kmsfs.dek" in lines_for(r, "nokey")[0], r
    assert "header is a copy of small's" in lines_for(r, "moved")[0], r
    assert "foreign file" in lines_for(r, "dropped")[0], r
    # a sample: at most 16 blocks of each file whose key opened (first, last, small)
    assert summary(r)["blocks"] == QUICK_BLOCKS + QUICK_BLOCKS + 3, r


# ---- --repair -------------------------------------------------------------------------------

def test_repair_deletes_leftovers_only(kmsfs, vol, audit):
    data = populate(vol)
    write_file(vol.b(".kmsfs.conf.Ab12Cd"), b"[volume]\n")
    write_file(vol.b(".kmsfs-xattr-probe.Zz9Yy8"), b"")
    os.setxattr(vol.b("one"), "user.kmsfs.stray", b"1")
    os.chmod(vol.b("kmsfs.conf"), 0o666)
    before = snapshot_backing(vol)
    r = fsck(vol, check_rc=4)                         # without --repair: reported, not touched
    assert "kmsfs fsck --repair deletes it" in lines_for(r, ".kmsfs.conf.Ab12Cd")[0], r
    assert lines_for(r, ".kmsfs-xattr-probe.Zz9Yy8"), r
    assert "unknown kmsfs xattr user.kmsfs.stray" in lines_for(r, "one")[0], r
    assert "group- or world-writable (mode 0666)" in lines_for(r, "kmsfs.conf")[0], r
    assert snapshot_backing(vol) == before
    audit.mark()
    r = fsck(vol, "--repair", check_rc=1)
    assert lines_for(r, ".kmsfs.conf.Ab12Cd")[0].endswith("(deleted)"), r
    assert lines_for(r, ".kmsfs-xattr-probe.Zz9Yy8")[0].endswith("(deleted)"), r
    assert lines_for(r, "one")[0].endswith("(removed)"), r
    assert lines_for(r, "kmsfs.conf")[0].endswith("(now 0644)"), r
    assert "4 problems found, 4 repaired" in summary(r)["line"], r
    assert not os.path.exists(vol.b(".kmsfs.conf.Ab12Cd"))
    assert not os.path.exists(vol.b(".kmsfs-xattr-probe.Zz9Yy8"))
    assert len(fsck_records(audit, "LeftoverFile")) == 2, audit.dump()
    fsck(vol, check_rc=0)
    # user files untouched, byte for byte (the stray xattr aside), and still readable
    after = snapshot_backing(vol)
    for name, (raw, xs) in before.items():
        if name.startswith(".kmsfs") or name == "kmsfs.conf":
            continue
        xs = {k: v for k, v in xs.items() if k != "user.kmsfs.stray"}
        assert after[name] == (raw, xs), name
    vol.mount()
    for name in ("one", "big", "docs/sub/mid"):
        assert read_file(vol.p(name)) == data[name]


def test_repair_never_touches_damaged_files(kmsfs, vol):
    populate(vol, {"bad": 3 * BLOCK})
    flip_bit(vol.b("bad"), stored_block_offset(1) + 50)
    write_file(vol.b(".kmsfs.conf.tmp123"), b"")
    before = read_file(vol.b("bad")), os.getxattr(vol.b("bad"), DEK_XATTR)
    r = fsck(vol, "--repair", check_rc=5)            # 1 corrected | 4 left
    assert lines_for(r, "bad") == ["bad: block 1: authentication failed"], r
    assert (read_file(vol.b("bad")), os.getxattr(vol.b("bad"), DEK_XATTR)) == before


def test_interrupted_rekey_staging_kept_until_state_gone(kmsfs, vol):
    populate(vol, {"f": 100})
    os.makedirs(vol.b(".kmsfs-rekey.d"))
    write_file(vol.b(".kmsfs-rekey.d", "partial"), b"half a file")
    write_file(vol.b(".kmsfs-rekey-state"), b"[rekey]\n")
    r = fsck(vol, "--repair", check_rc=4)
    line, = lines_for(r, ".kmsfs-rekey-state")
    assert "interrupted kmsfs rekey: re-run kmsfs rekey to finish" in line, r
    assert "staging files are kept" in line, r
    assert os.path.exists(vol.b(".kmsfs-rekey.d", "partial")), "staging deleted under a live state"
    assert not lines_for(r, ".kmsfs-rekey.d/partial"), "staging files are not user files: %r" % r
    os.unlink(vol.b(".kmsfs-rekey-state"))
    r = fsck(vol, "--repair", check_rc=1)
    assert lines_for(r, ".kmsfs-rekey.d")[0].endswith("(deleted)"), r
    assert not os.path.exists(vol.b(".kmsfs-rekey.d"))
    fsck(vol, check_rc=0)


# ---- the config and the key service -------------------------------------------------------

def test_tampered_config(kmsfs, vol, audit):
    populate(vol, {"f": 5000})
    text = vol.conf_text
    with open(vol.b("kmsfs.conf"), "w") as f:
        f.write(text.replace("bucket_key = false", "bucket_key = true"))
    r = fsck(vol, check_rc=4)
    line, = lines_for(r, "kmsfs.conf")
    assert "configuration authentication failed" in line, r
    assert fsck_records(audit, "ConfigAuthenticationFailure"), audit.dump()
    with open(vol.b("kmsfs.conf"), "w") as f:
        f.write(text.replace("[volume]", "[volume]\nextra = 1"))
    r = fsck(vol, check_rc=4)
    line, = lines_for(r, "kmsfs.conf")
    assert "unknown key extra" in line and "files not checked" in line, r


def test_disabled_key_cannot_check(kmsfs, audit):
    key = kmsfs.create_key("fsck-disabled")
    vol = kmsfs.new_volume("fsck-disabled", key=key)
    populate(vol, {"f": 5000})
    os.removexattr(vol.b("f"), DEK_XATTR)     # still found: the structure needs no key
    kmsfs.key("disable", key)
    try:
        r = fsck(vol)
        assert r.rc == 4, r
        line, = lines_for(r, "kmsfs.conf")
        assert "cannot check: the key service refused the volume's key" in line, r
        assert "(DisabledException)" in line, r
        assert "headers and sizes only" in summary(r)["line"], r
        assert "no user.kmsfs.dek" in lines_for(r, "f")[0], r
        recs = fsck_records(audit, "ConfigNotChecked")
        assert recs and recs[0].get("errorCode") == "DisabledException", audit.dump()
    finally:
        kmsfs.key("enable", key)


# ---- what the other offline tools leave -------------------------------------------------------

def test_snapshot_copy_and_rekey_results_are_clean(kmsfs, vol):
    populate(vol)
    key_b = kmsfs.create_key("fsck-after-copy")
    for mode in ([], ["--reencrypt"]):
        dst = os.path.join(vol.root, "copy%s" % "".join(mode))
        kmsfs.run("snapshot", "copy", *kmsfs.store_args(), "--key", key_b, "--no-progress",
                  *mode, vol.cipherdir, dst)
        r = kmsfs.run("fsck", *kmsfs.store_args(), "--no-progress", dst, check=False)
        assert r.rc == 0 and summary(r)["files"] == len(SIZES) + 1, r
    kmsfs.run("rekey", vol.cipherdir, *kmsfs.store_args(), "--key", key_b, "--reencrypt",
              "--no-progress")
    fsck(vol, check_rc=0)


def test_interrupted_snapshot_copy(kmsfs, vol):
    populate(vol, {"huge": 48 * 1024 * 1024, "small": 100})
    dst = os.path.join(vol.root, "copy")
    args = [kmsfs.bin, "snapshot", "copy", *kmsfs.store_args(), "--reencrypt", "--no-progress",
            "--jobs", "1", vol.cipherdir, dst]
    p = subprocess.Popen(args, env=kmsfs.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = os.path.join(dst, ".kmsfs-snapshot-state")
    try:
        while p.poll() is None and not os.path.exists(state):
            time.sleep(0.002)
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait()
    assert p.returncode == -signal.SIGKILL and os.path.exists(state), \
        "the copy finished before it could be interrupted (rc %r)" % p.returncode
    r = kmsfs.run("fsck", *kmsfs.store_args(), "--no-progress", "--repair", dst, check=False)
    assert r.rc == 4, r
    line, = lines_for(r, ".kmsfs-snapshot-state")
    assert "interrupted kmsfs snapshot copy: re-run kmsfs snapshot copy to finish" in line, r
    assert os.path.exists(state), "--repair must keep what the re-run needs"
    kmsfs.run(*args[1:])
    r = kmsfs.run("fsck", *kmsfs.store_args(), "--no-progress", dst, check=False)
    assert r.rc == 0 and summary(r)["files"] == 2, r
