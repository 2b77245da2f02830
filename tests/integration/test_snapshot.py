"""kmsfs snapshot copy (issue 5): a volume under key A copied to a new volume under key B.

The tree has files of 0 B, 1 B, 4095, 4096, 4097 and 10 MiB, a sparse 1 GiB file with a few
written blocks, a file with three hard links and one with two, symlinks (relative, absolute,
dangling), a fifo, user xattrs, odd modes, other owners and set times, plus an empty backing
file with no header (as a file made in the cipher directory is). After the copy, key A is
disabled and the copy is mounted: every byte, mode, owner, mtime and xattr matches, holes are
holes (backing st_blocks, SEEK_HOLE/SEEK_DATA through the mount), links are links (one st_ino,
st_nlink), symlinks read back. The same with --reencrypt, where no stored block of the copy equals
one of the source. A copy killed with SIGKILL mid-way finishes when run again; a source key
disabled mid-way gives per-file errors naming paths and a non-zero exit; the audit log has a
ReEncrypt (default) or Decrypt + GenerateDataKey (--reencrypt) record naming each file.
"""
import hashlib
import os
import re
import signal
import stat
import subprocess
import time

import pytest

import kmsfs_it
from kmsfs_it import read_file, write_file

MiB = 1 << 20
GiB = 1 << 30
BLOCK = 4096
STORED_BLOCK = BLOCK + 12 + 16           # AES-256-GCM: nonce + tag
HOLE_WRITES = {0: b"head" * 1024, 300 * MiB: os.urandom(2 * BLOCK), GiB - 100: b"t" * 100}
T_FILE = 1_500_000_000_123_456_789       # mtimes set through the mount (ns)
T_DIR = 1_400_000_000_987_654_321
T_LINK = 1_300_000_000_000_000_001
STATE = ".kmsfs-snapshot-state"
STAGING = ".kmsfs-snapshot.d"


# ---- building and reading trees ---------------------------------------------------------------

def build_tree(vol):
    """The issue's tree, written through vol's mount (mounted here, unmounted at the end), plus
    what only the backing directory can hold: an empty backing file and a .kmsfs-* leftover."""
    vol.mount()
    m = vol.p
    for d in ("sizes", "linked/deep", "other", "links", "attrs"):
        os.makedirs(m(d))
    for size in (0, 1, 4095, 4096, 4097):
        write_file(m("sizes", "s%d" % size), os.urandom(size))
    write_file(m("sizes", "ten-mib"), os.urandom(10 * MiB))
    with open(m("sparse.img"), "wb") as f:
        f.truncate(GiB)
        for off, data in HOLE_WRITES.items():
            f.seek(off)
            f.write(data)
    write_file(m("linked", "one"), b"three names, one file\n" * 100)
    os.link(m("linked", "one"), m("linked", "deep", "two"))
    os.link(m("linked", "one"), m("other", "three"))
    write_file(m("other", "pair-a"), os.urandom(5000))
    os.link(m("other", "pair-a"), m("other", "pair-b"))
    os.symlink("../sizes/s1", m("links", "relative"))
    os.symlink("/etc/hostname", m("links", "absolute"))
    os.symlink("nowhere/at/all", m("links", "dangling"))
    os.mkfifo(m("links", "fifo"), 0o640)
    write_file(m("attrs", "tagged"), b"xattrs\n")
    os.setxattr(m("attrs", "tagged"), "user.color", b"blue")
    os.setxattr(m("attrs", "tagged"), "user.binary", bytes(range(256)))
    os.setxattr(m("attrs", "tagged"), "user.empty", b"")
    os.setxattr(m("attrs"), "user.dir-note", b"on a directory")
    os.setxattr(m("linked", "one"), "user.linked", b"shared by every name")
    os.chmod(m("attrs", "tagged"), 0o640)
    os.chmod(m("sizes", "s1"), 0o4755)
    os.chmod(m("sizes", "s0"), 0o000)
    os.chmod(m("other"), 0o2750)
    os.chmod(m("links"), 0o555)                  # read-only: the copy must still fill it
    os.chown(m("attrs", "tagged"), 1234, 4321)
    os.chown(m("other"), 2000, 2001)
    os.chown(m("links", "relative"), 1500, 1501, follow_symlinks=False)
    for rel in ("attrs/tagged", "sizes/s4097", "linked/one", "sparse.img"):
        os.utime(m(rel), ns=(T_FILE, T_FILE))
    os.utime(m("links", "relative"), ns=(T_LINK, T_LINK), follow_symlinks=False)
    for rel in ("attrs", "links", "linked/deep", "other", "sizes", "linked", ""):
        os.utime(m(rel) if rel else vol.mnt, ns=(T_DIR, T_DIR))
    vol.unmount()
    write_file(vol.b("raw-empty"), b"")            # no header, no xattr: reads as empty
    os.utime(vol.b("raw-empty"), ns=(T_FILE, T_FILE))
    write_file(vol.b(".kmsfs-leftover"), b"not part of the volume")
    os.utime(vol.cipherdir, ns=(T_DIR, T_DIR))


def entry_state(path, hash_contents=True):
    st = os.lstat(path)
    e = {"type": stat.S_IFMT(st.st_mode), "mode": oct(stat.S_IMODE(st.st_mode)),
         "uid": st.st_uid, "gid": st.st_gid, "mtime_ns": st.st_mtime_ns}
    if stat.S_ISREG(st.st_mode):
        e["size"], e["nlink"] = st.st_size, st.st_nlink
        if hash_contents:
            e["sha256"] = kmsfs_it.sha256_file(path, chunk=4 * MiB)
    if stat.S_ISLNK(st.st_mode):
        e["target"] = os.readlink(path)
    else:
        e["xattrs"] = {n: os.getxattr(path, n, follow_symlinks=False)
                       for n in sorted(os.listxattr(path, follow_symlinks=False))}
    return st, e


def tree_state(root, hash_contents=True):
    """({rel: what a user sees of it}, sorted hard-link groups) for the tree at root (a mount)."""
    state, inodes = {}, {}

    def walk(rel):
        path = os.path.join(root, rel) if rel else root
        st, state[rel or "."] = entry_state(path, hash_contents)
        if not stat.S_ISDIR(st.st_mode):
            if st.st_nlink > 1:
                inodes.setdefault(st.st_ino, []).append(rel)
            return
        for name in sorted(os.listdir(path)):
            if not rel and name.startswith(".kmsfs-"):
                continue    # not the volume's (a leftover the copy skips)
            walk(os.path.join(rel, name) if rel else name)

    walk("")
    return state, sorted(sorted(g) for g in inodes.values())


def data_regions(path):
    """[(data, hole), ...] as SEEK_DATA/SEEK_HOLE report them (through a mount: by blocks)."""
    out, off = [], 0
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        while off < size:
            try:
                data = os.lseek(f.fileno(), off, os.SEEK_DATA)
            except OSError:
                break
            off = os.lseek(f.fileno(), data, os.SEEK_HOLE)
            out.append((data, off))
    return out


def backing_files(cipherdir):
    """Volume-relative paths of the regular backing files (kmsfs.conf and .kmsfs-* left out)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(cipherdir):
        rel_dir = os.path.relpath(dirpath, cipherdir)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if not d.startswith(".kmsfs-")]
            filenames = [f for f in filenames if f != "kmsfs.conf" and not f.startswith(".kmsfs-")]
        for f in filenames:
            rel = os.path.normpath(os.path.join(rel_dir, f))
            if stat.S_ISREG(os.lstat(os.path.join(cipherdir, rel)).st_mode):
                out.append(rel)
    return sorted(out)


def stored_blocks(path):
    """SHA-256 of each non-zero stored block of a backing file, reading data regions only."""
    digests = set()
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        fd = f.fileno()
        off = 0
        while off < size:
            try:
                data = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            first = max(0, (data - kmsfs_it.HEADER_SIZE) // STORED_BLOCK)
            pos = kmsfs_it.HEADER_SIZE + first * STORED_BLOCK
            while pos < hole:
                blk = os.pread(fd, STORED_BLOCK, pos)
                if blk.strip(b"\0"):
                    digests.add(hashlib.sha256(blk).digest())
                pos += STORED_BLOCK
            off = max(hole, pos)
    return digests


# ---- running copies ----------------------------------------------------------------------------

def dest_volume(kmsfs, name):
    root = os.path.join(kmsfs.base, "vols", name)
    n = 0
    while os.path.exists(root + ("" if n == 0 else "-%d" % n)):
        n += 1
    root += "" if n == 0 else "-%d" % n
    os.makedirs(os.path.join(root, "mnt"))
    return kmsfs_it.Volume(kmsfs, root, os.path.join(root, "cipher"), os.path.join(root, "mnt"),
                           "aes-256-gcm", None)


def copy(kmsfs, src, dst, *args, check=True, timeout=120):
    return kmsfs.run("snapshot", "copy", *kmsfs.store_args(), "--no-progress", *args,
                     src.cipherdir, dst.cipherdir, check=check, timeout=timeout)


def copy_popen(kmsfs, src, dst, *args, stderr_path):
    argv = [kmsfs.bin, "snapshot", "copy", *kmsfs.store_args(), *args, src.cipherdir,
            dst.cipherdir]
    err = open(stderr_path, "w")
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=kmsfs.env, text=True)
    err.close()
    return p


def assert_no_leftovers(dst):
    names = os.listdir(dst.cipherdir)
    assert STATE not in names and STAGING not in names, "copy left %r in %s" % (names, dst.cipherdir)


def conf_value(vol, name):
    for line in vol.conf_text.splitlines():
        if line.split("=")[0].strip() == name:
            return line.split("=", 1)[1].strip()
    raise AssertionError("%s: no %s in kmsfs.conf:\n%s" % (vol.cipherdir, name, vol.conf_text))


def check_copy(kmsfs, src, dst, expected, key_a, expected_regions):
    """Disable key A, mount the copy (key B) and compare everything a user sees."""
    kmsfs.key("disable", key_a)
    try:
        assert kmsfs.key_state(key_a) == "Disabled"
        dst.mount()
        state, groups = tree_state(dst.mnt)
        exp_state, exp_groups = expected
        assert sorted(state) == sorted(exp_state), "names differ: %s" % (
            set(state) ^ set(exp_state))
        for rel in exp_state:
            assert state[rel] == exp_state[rel], "%s: copy %r != source %r" % (
                rel, state[rel], exp_state[rel])
        assert groups == exp_groups == [["linked/deep/two", "linked/one", "other/three"],
                                        ["other/pair-a", "other/pair-b"]]
        assert os.stat(dst.p("linked/one")).st_nlink == 3
        assert read_file(dst.p("links/relative")) == read_file(dst.p("sizes/s1"))
        # holes are holes: through the mount, and in the backing file
        assert data_regions(dst.p("sparse.img")) == expected_regions
        blocks = os.stat(dst.b("sparse.img")).st_blocks
        assert blocks * 512 < MiB, "sparse image copy uses %d bytes on disk" % (blocks * 512)
        dst.unmount()
    finally:
        kmsfs.key("enable", key_a)
    # what is not seen through the mount
    assert os.path.getsize(dst.b("raw-empty")) == 0
    assert kmsfs_it.xattr_or_none(dst.b("raw-empty"), "user.kmsfs.dek") is None
    assert not os.path.exists(dst.b(".kmsfs-leftover"))
    assert_no_leftovers(dst)
    assert conf_value(dst, "id") != conf_value(src, "id")
    assert backing_files(dst.cipherdir) == backing_files(src.cipherdir)


def said(out, pattern):
    """The summary says pattern (a regex; numbers must not match inside bigger ones)."""
    return re.search(r"(?<![0-9])" + pattern, out) is not None


def records(audit, event, names):
    """Successful records of event naming one of names (the names of one file)."""
    return [r for r in audit.records() if r.get("eventName") == event and
            kmsfs_it.rec_path(r) in names and not r.get("errorCode")]


# The files with a data key, each as its names (the record names whichever the copy met first).
NONEMPTY = [("sizes/s1",), ("sizes/s4095",), ("sizes/s4096",), ("sizes/s4097",),
            ("sizes/ten-mib",), ("sparse.img",), ("attrs/tagged",),
            ("linked/one", "linked/deep/two", "other/three"), ("other/pair-a", "other/pair-b")]


@pytest.fixture
def source(kmsfs, request):
    """A volume under a new key A holding the tree, its expected state, and key A."""
    key_a = kmsfs.create_key("snapshot source")
    vol = kmsfs.new_volume("snap-src", key=key_a)
    build_tree(vol)
    vol.mount()
    expected = tree_state(vol.mnt)
    regions = data_regions(vol.p("sparse.img"))
    vol.unmount()
    # the source has holes (at block granularity: a backing block shared with data counts)
    assert regions[0][0] == 0 and regions[-1][1] == GiB and len(regions) == 3, regions
    assert sum(h - d for d, h in regions) <= 8 * BLOCK, regions
    return vol, expected, key_a, regions


# ---- the tests ------------------------------------------------------------------------------------

@pytest.mark.timeout(240)
def test_copy_under_another_key(kmsfs, source, audit):
    src, expected, key_a, regions = source
    key_b = kmsfs.create_key("snapshot destination")
    dst = dest_volume(kmsfs, "snap-dst")
    r = copy(kmsfs, src, dst, "--key", key_b, "--verify", "--jobs", "3")
    assert said(r.out, r"11 files \(") and said(r.out, "3 hard links"), r
    assert said(r.out, "3 symlinks") and said(r.out, "1 special files"), r
    assert said(r.out, "verified 11 files"), r
    # every data key moved by ReEncrypt: no plaintext data key in the copying process
    assert said(r.out, r"10 rewrapped by the key service \(ReEncrypt"), r
    assert said(r.out, "0 through this process"), r
    assert conf_value(dst, "key_id") == key_b and conf_value(dst, "cipher") == "aes-256-gcm"
    for names in NONEMPTY + [("sizes/s0",)]:
        recs = records(audit, "ReEncrypt", names)
        assert len(recs) == 1, "%s: %d ReEncrypt records:\n%s" % (names, len(recs), audit.dump(5))
        assert recs[0]["requestParameters"]["keyId"] == key_b
        assert recs[0]["requestParameters"]["encryptionContext"]["kmsfs:volume"] == conf_value(dst, "id")
    # default mode copies the ciphertext: the same stored blocks (the --reencrypt check can fail)
    assert stored_blocks(dst.b("sizes/ten-mib")) == stored_blocks(src.b("sizes/ten-mib"))
    assert kmsfs_it.read_header(dst.b("sizes/ten-mib")) == kmsfs_it.read_header(src.b("sizes/ten-mib"))
    check_copy(kmsfs, src, dst, expected, key_a, regions)


@pytest.mark.timeout(240)
def test_reencrypt(kmsfs, source, audit):
    src, expected, key_a, regions = source
    key_b = kmsfs.create_key("snapshot destination")
    dst = dest_volume(kmsfs, "snap-reenc")
    r = copy(kmsfs, src, dst, "--key", key_b, "--reencrypt", "--verify")
    assert said(r.out, "10 new ones") and said(r.out, "verified 11 files"), r
    for names in NONEMPTY:
        dec, gen = records(audit, "Decrypt", names), records(audit, "GenerateDataKey", names)
        assert [d["requestParameters"]["keyId"] for d in dec].count(key_a) >= 1, \
            "%s: no Decrypt under key A:\n%s" % (names, audit.dump(5))
        assert [g["requestParameters"]["keyId"] for g in gen] == [key_b], \
            "%s: GenerateDataKey records %r" % (names, gen)
        rel = names[0]
        assert kmsfs_it.read_header(dst.b(rel))["file_id"] != kmsfs_it.read_header(src.b(rel))["file_id"]
    src_blocks, dst_blocks = set(), set()
    for rel in backing_files(src.cipherdir):
        src_blocks |= stored_blocks(src.b(rel))
    for rel in backing_files(dst.cipherdir):
        dst_blocks |= stored_blocks(dst.b(rel))
    assert len(src_blocks) > 2560 and len(dst_blocks) == len(src_blocks)
    assert not src_blocks & dst_blocks, "%d stored blocks of the copy equal the source's" % len(
        src_blocks & dst_blocks)
    check_copy(kmsfs, src, dst, expected, key_a, regions)


def many_files(kmsfs, name, dirs, per_dir):
    key = kmsfs.create_key("many files")
    vol = kmsfs.new_volume(name, key=key)
    vol.mount()
    for d in range(dirs):
        os.makedirs(vol.p("d%02d" % d))
        for i in range(per_dir):
            write_file(vol.p("d%02d" % d, "f%03d" % i), b"%d/%d\n" % (d, i) * (i % 7 + 1))
    os.link(vol.p("d00", "f000"), vol.p("d%02d" % (dirs - 1), "last-link"))
    vol.unmount()
    return vol, key


def wait_mid_copy(p, dst, err_path, need_progress):
    """Until the copy has files in place (and printed progress): True; False if it ended first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None:
        try:
            done = len(os.listdir(os.path.join(dst.cipherdir, "d00")))
        except FileNotFoundError:
            done = 0
        with open(err_path) as f:
            shown = "ETA" in f.read()
        if done >= 5 and os.path.exists(os.path.join(dst.cipherdir, STATE)) and (
                shown or not need_progress):
            return True
        time.sleep(0.01)
    return False


@pytest.mark.timeout(240)
def test_sigkill_and_resume(kmsfs, tmp_path):
    src, key_a = many_files(kmsfs, "snap-many", 20, 100)
    key_b = kmsfs.create_key("snapshot destination")
    dst = dest_volume(kmsfs, "snap-killed")
    err_path = str(tmp_path / "copy.stderr")
    p = copy_popen(kmsfs, src, dst, "--key", key_b, "--reencrypt", "--jobs", "1", "--progress",
                   stderr_path=err_path)
    try:
        mid = wait_mid_copy(p, dst, err_path, need_progress=True)
    finally:
        p.kill()
        p.wait()
    assert mid, "the copy ended before it could be killed mid-way (rc %s): %s" % (
        p.returncode, open(err_path).read()[-2000:])
    with open(err_path, newline="") as f:
        progress = f.read()
    assert "\r" in progress and "/2000 files" in progress and "ETA" in progress, progress[-500:]
    assert os.path.exists(os.path.join(dst.cipherdir, STATE))
    # what is in place is whole: the source's size (same plaintext) and a data key
    placed = [rel for rel in backing_files(dst.cipherdir)]
    assert 5 <= len(placed) < 2001, len(placed)
    for rel in placed:
        assert os.path.getsize(dst.b(rel)) == os.path.getsize(src.b(rel)), rel
        assert kmsfs_it.xattr_or_none(dst.b(rel), "user.kmsfs.dek"), rel
    # a different copy into the same directory is refused, the same one resumes
    r = copy(kmsfs, src, dst, "--key", key_b, check=False)
    assert r.rc != 0 and "made with --reencrypt" in r.err, r
    r = copy(kmsfs, src, dst, "--key", key_b, "--reencrypt", "--verify")
    assert "resuming" in r.err and "already there" in r.out, r
    assert said(r.out, "verified 2000 files"), r
    assert_no_leftovers(dst)
    assert backing_files(dst.cipherdir) == backing_files(src.cipherdir)
    src.mount()
    expected = tree_state(src.mnt)
    src.unmount()
    dst.mount()
    got = tree_state(dst.mnt)
    dst.unmount()
    assert got == expected
    assert got[1] == [["d00/f000", "d19/last-link"]]


@pytest.mark.timeout(240)
def test_source_key_disabled(kmsfs, tmp_path):
    src, key_a = many_files(kmsfs, "snap-denied", 6, 100)
    dst = dest_volume(kmsfs, "snap-denied-dst")
    # disabled from the start: the source's config cannot even be authenticated
    kmsfs.key("disable", key_a)
    r = copy(kmsfs, src, dst, check=False)
    kmsfs.key("enable", key_a)
    assert r.rc != 0 and "kmsfs.conf" in r.err and "(DisabledException)" in r.err, r
    assert not os.path.exists(dst.cipherdir)
    # disabled mid-way: every file after that is an error naming it, the others are copied
    err_path = str(tmp_path / "copy.stderr")
    p = copy_popen(kmsfs, src, dst, "--jobs", "1", "--no-progress", stderr_path=err_path)
    try:
        mid = wait_mid_copy(p, dst, err_path, need_progress=False)
        if mid:
            p.send_signal(signal.SIGSTOP)
            kmsfs.key("disable", key_a)
            p.send_signal(signal.SIGCONT)
        out, _ = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        kmsfs.key("enable", key_a)
    assert mid, "the copy ended before the key could be disabled: %s" % open(err_path).read()
    err = open(err_path).read()
    failed = [ln for ln in err.splitlines() if ln.endswith("(DisabledException)")]
    assert p.returncode == 1 and failed, (p.returncode, err[-2000:])
    for ln in failed:
        assert ln.startswith("kmsfs: snapshot: d0") and "/f" in ln.split(":")[2], ln
        assert "cannot rewrap its data key" in ln, ln
    assert ("kmsfs: snapshot: %d failed" % len(failed)) in err and "run the same command again" in err
    assert os.path.exists(os.path.join(dst.cipherdir, STATE))
    for ln in failed:
        assert not os.path.exists(dst.b(ln.split(":")[2].strip())), ln
    # key enabled again: the same command finishes the copy. Meanwhile two files already copied
    # changed in the source: --verify finds them, removes their copies (every name) and fails
    src.mount()
    for rel in ("d00/f000", "d00/f001"):
        write_file(src.p(rel), b"changed after it was copied\n")
    changed = read_file(src.p("d00/f000"))
    src.unmount()
    r = copy(kmsfs, src, dst, "--verify", check=False)
    assert r.rc == 1 and said(r.out, r"%d files \(" % len(failed)), r
    for rel in ("d00/f000", "d00/f001"):
        want = "kmsfs: snapshot: %s: verify: the copy's contents differ from the source's" % rel
        assert want in r.err, r
        assert not os.path.exists(dst.b(rel))
    assert not os.path.exists(dst.b("d05/last-link"))
    assert "kmsfs: snapshot: 2 failed" in r.err, r
    r = copy(kmsfs, src, dst, "--verify")
    assert said(r.out, r"2 files \(") and said(r.out, "598 already there"), r
    assert said(r.out, "verified 600 files") and said(r.out, "1 hard links"), r
    assert_no_leftovers(dst)
    dst.mount()
    assert read_file(dst.p("d05/last-link")) == changed
    assert os.stat(dst.p("d05/last-link")).st_ino == os.stat(dst.p("d00/f000")).st_ino
    dst.unmount()


def test_refusals(kmsfs):
    src, _ = many_files(kmsfs, "snap-refuse", 1, 3)
    other = kmsfs.new_volume("snap-unrelated")
    conf = other.conf_text
    r = copy(kmsfs, src, other, check=False)
    assert r.rc == 1 and "already a kmsfs volume" in r.err, r
    assert other.conf_text == conf and sorted(os.listdir(other.cipherdir)) == ["kmsfs.conf"]
    busy = dest_volume(kmsfs, "snap-busy")
    os.makedirs(busy.cipherdir)
    write_file(busy.b("something"), b"x")
    r = copy(kmsfs, src, busy, check=False)
    assert r.rc == 1 and "not empty" in r.err, r
    assert sorted(os.listdir(busy.cipherdir)) == ["something"]
    inside = kmsfs_it.Volume(kmsfs, src.root, src.b("d00", "nested"), src.mnt, "aes-256-gcm", None)
    r = copy(kmsfs, src, inside, check=False)
    assert r.rc == 1 and "inside the source volume" in r.err, r
    r = copy(kmsfs, src, dest_volume(kmsfs, "snap-nokey"), "--key", "alias/no-such-key", check=False)
    assert r.rc == 1 and "NotFoundException" in r.err, r
    r = kmsfs.run("snapshot", "copy", "--help")
    assert r.rc == 0 and "usage: kmsfs snapshot copy" in r.out and "--reencrypt" in r.out
    assert kmsfs.run("snapshot", "copy", src.cipherdir, check=False).rc == 2


def test_path_and_bucket_key(kmsfs, audit):
    """--path copies one file and the directories leading to it (kmsfs volume snapshot); a
    bucket-key source stays a bucket-key volume, its data keys resealed here (their seal names
    the volume), which the summary says."""
    key = kmsfs.create_key("bucket source")
    src = dest_volume(kmsfs, "snap-bucket")
    kmsfs.run("init", "--bucket-key", "--key", key, *kmsfs.store_args(), src.cipherdir)
    src.mount()
    os.makedirs(src.p("images", "sub"))
    write_file(src.p("images", "sub", "disk.img"), os.urandom(3 * BLOCK + 5))
    write_file(src.p("images", "other.img"), b"not selected")
    write_file(src.p("top"), b"not selected")
    want = read_file(src.p("images", "sub", "disk.img"))
    src.unmount()
    dst = dest_volume(kmsfs, "snap-one-path")
    r = copy(kmsfs, src, dst, "--path", "images/sub/disk.img", "--verify")
    assert said(r.out, r"1 files \(") and said(r.out, "1 through this process"), r
    assert conf_value(dst, "bucket_key") == "true"
    assert backing_files(dst.cipherdir) == ["images/sub/disk.img"]
    dst.mount()
    assert read_file(dst.p("images", "sub", "disk.img")) == want
    assert sorted(os.listdir(dst.mnt)) == ["images"]
    dst.unmount()
    plain = dest_volume(kmsfs, "snap-no-bucket")
    r = copy(kmsfs, src, plain, "--no-bucket-key")
    assert said(r.out, r"3 files \("), r
    assert conf_value(plain, "bucket_key") == "false"
    plain.mount()
    assert read_file(plain.p("images", "sub", "disk.img")) == want
    plain.unmount()
    r = copy(kmsfs, src, dest_volume(kmsfs, "snap-bad-path"), "--path", "images/missing",
             check=False)
    assert r.rc == 1 and "images/missing: not in the source volume" in r.err, r


def test_ten_gib_image_stays_sparse(kmsfs):
    """The issue's 10 GiB sparse disk image: copied (rewrap and --reencrypt) it stays sparse
    on disk, the mount reports the same data regions, and the written bytes read back; the
    copy writes only the written blocks."""
    key = kmsfs.create_key("ten gib source")
    src = kmsfs.new_volume("snap-10g", key=key)
    writes = {0: os.urandom(BLOCK), 3 * GiB + 17: os.urandom(3 * BLOCK),
              10 * GiB - 5: b"tail!"}
    src.mount()
    with open(src.p("disk.img"), "wb") as f:
        f.truncate(10 * GiB)
        for off, data in writes.items():
            f.seek(off)
            f.write(data)
    regions = data_regions(src.p("disk.img"))
    src.unmount()
    for mode in ((), ("--reencrypt",)):
        dst = dest_volume(kmsfs, "snap-10g-copy")
        copy(kmsfs, src, dst, *mode)
        assert os.stat(dst.b("disk.img")).st_size == os.stat(src.b("disk.img")).st_size
        on_disk = os.stat(dst.b("disk.img")).st_blocks * 512
        assert on_disk < MiB, "%s: 10 GiB image copy takes %d bytes on disk" % (mode, on_disk)
        dst.mount()
        assert os.stat(dst.p("disk.img")).st_size == 10 * GiB
        assert data_regions(dst.p("disk.img")) == regions, mode
        with open(dst.p("disk.img"), "rb") as f:
            for off, data in writes.items():
                f.seek(off)
                assert f.read(len(data)) == data, "%s: bytes at %d differ" % (mode, off)
        dst.unmount()
