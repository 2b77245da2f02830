"""Names and metadata through the mount: rename(2)/renameat2, links, directories, modes,
owners, times, statfs, xattrs, inode numbers, locks, unlink-while-open, permissions for
other uids (allow_other, default_permissions, key policy)."""
import errno
import json
import fcntl
import os
import stat
import subprocess
import time

import pytest

import kmsfs_it
from kmsfs_it import read_file, write_file
from kmsfs_it import CHILD_PRELUDE, run_as


def errno_of(fn):
    try:
        fn()
    except OSError as e:
        return e.errno
    return 0


def test_rename_replace_and_dirs(mvol):
    write_file(mvol.p("a"), b"content of a" * 1000)
    write_file(mvol.p("b"), b"old b")
    os.rename(mvol.p("a"), mvol.p("b"))  # replaces b
    assert not os.path.exists(mvol.p("a"))
    assert read_file(mvol.p("b")) == b"content of a" * 1000
    os.mkdir(mvol.p("d1"))
    write_file(mvol.p("d1", "inner"), b"inner data")
    os.rename(mvol.p("d1"), mvol.p("d2"))
    assert read_file(mvol.p("d2", "inner")) == b"inner data"
    os.rename(mvol.p("b"), mvol.p("d2", "moved"))
    assert sorted(os.listdir(mvol.p("d2"))) == ["inner", "moved"]
    mvol.remount()
    assert read_file(mvol.p("d2", "moved")) == b"content of a" * 1000
    assert read_file(mvol.p("d2", "inner")) == b"inner data"


def test_renameat2_noreplace_and_exchange(mvol):
    a, b = mvol.p("x"), mvol.p("y")
    da, db = os.urandom(9000), os.urandom(5000)
    write_file(a, da)
    write_file(b, db)
    with pytest.raises(OSError) as ei:
        kmsfs_it.renameat2(a, b, kmsfs_it.RENAME_NOREPLACE)
    assert ei.value.errno == errno.EEXIST, "RENAME_NOREPLACE onto an existing name: %s" % ei.value
    assert read_file(a) == da and read_file(b) == db
    kmsfs_it.renameat2(a, mvol.p("z"), kmsfs_it.RENAME_NOREPLACE)
    assert read_file(mvol.p("z")) == da and not os.path.exists(a)
    kmsfs_it.renameat2(mvol.p("z"), b, kmsfs_it.RENAME_EXCHANGE)
    assert read_file(b) == da, "RENAME_EXCHANGE did not swap contents"
    assert read_file(mvol.p("z")) == db, "RENAME_EXCHANGE did not swap contents"
    mvol.remount()
    assert read_file(b) == da and read_file(mvol.p("z")) == db, "swapped files unreadable after remount"


def test_hard_links(mvol):
    a, b = mvol.p("orig"), mvol.p("link")
    write_file(a, b"first")
    os.link(a, b)
    sa, sb = os.stat(a), os.stat(b)
    assert sa.st_ino == sb.st_ino
    assert sa.st_nlink == 2 and sb.st_nlink == 2
    with open(b, "r+b") as f:
        f.seek(3)
        f.write(b"-via-link-" * 500)
    assert read_file(a) == b"fir" + b"-via-link-" * 500
    mvol.remount()
    assert read_file(a) == read_file(b) == b"fir" + b"-via-link-" * 500
    assert os.stat(a).st_ino == os.stat(b).st_ino
    os.unlink(a)
    assert os.stat(b).st_nlink == 1
    assert read_file(b) == b"fir" + b"-via-link-" * 500


def test_symlinks(mvol):
    write_file(mvol.p("target.txt"), b"target content")
    os.mkdir(mvol.p("dir"))
    write_file(mvol.p("dir", "f"), b"in dir")
    os.symlink("target.txt", mvol.p("ln"))
    os.symlink("dir", mvol.p("dln"))
    os.symlink("does-not-exist", mvol.p("dangling"))
    assert os.readlink(mvol.p("ln")) == "target.txt"
    assert stat.S_ISLNK(os.lstat(mvol.p("ln")).st_mode)
    assert read_file(mvol.p("ln")) == b"target content"
    assert read_file(mvol.p("dln", "f")) == b"in dir"
    assert errno_of(lambda: open(mvol.p("dangling"), "rb")) == errno.ENOENT
    long_target = "a/" * 1000 + "x"
    os.symlink(long_target, mvol.p("longlink"))
    mvol.remount()
    assert os.readlink(mvol.p("ln")) == "target.txt"
    assert os.readlink(mvol.p("longlink")) == long_target
    assert read_file(mvol.p("ln")) == b"target content"


def test_mkdir_rmdir(mvol):
    os.makedirs(mvol.p("a", "b", "c"))
    write_file(mvol.p("a", "b", "c", "f"), b"x")
    assert errno_of(lambda: os.rmdir(mvol.p("a", "b", "c"))) == errno.ENOTEMPTY
    assert errno_of(lambda: os.mkdir(mvol.p("a"))) == errno.EEXIST
    assert errno_of(lambda: os.rmdir(mvol.p("a", "b", "c", "f"))) == errno.ENOTDIR
    assert errno_of(lambda: os.rmdir(mvol.p("nope"))) == errno.ENOENT
    os.unlink(mvol.p("a", "b", "c", "f"))
    os.rmdir(mvol.p("a", "b", "c"))
    assert os.listdir(mvol.p("a", "b")) == []
    assert os.stat(mvol.p("a")).st_nlink >= 2
    for i in range(300):
        write_file(mvol.p("a", "n%03d" % i), b"")
    assert sorted(os.listdir(mvol.p("a"))) == ["b"] + ["n%03d" % i for i in range(300)]


def test_root_listing_hides_config(mvol):
    write_file(mvol.p("visible"), b"v")
    names = os.listdir(mvol.mnt)
    assert names == ["visible"], "mount root lists %r (kmsfs.conf must be hidden)" % names
    assert errno_of(lambda: os.stat(mvol.p("kmsfs.conf"))) == errno.ENOENT


def test_chmod_chown_utimens(mvol):
    p = mvol.p("meta")
    write_file(p, b"m")
    os.chmod(p, 0o640)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o640
    os.chown(p, 1234, 5678)
    st = os.stat(p)
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    os.chmod(p, 0o4755)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o4755
    at, mt = 1_500_000_000_123_456_789, 1_600_000_000_987_654_321
    os.utime(p, ns=(at, mt))
    st = os.stat(p)
    assert st.st_atime_ns == at and st.st_mtime_ns == mt, (st.st_atime_ns, st.st_mtime_ns)
    os.mkdir(mvol.p("d"))
    os.chmod(mvol.p("d"), 0o711)
    os.utime(mvol.p("d"), ns=(at, mt))
    os.symlink("meta", mvol.p("sl"))
    os.utime(mvol.p("sl"), ns=(at + 1, mt + 1), follow_symlinks=False)
    mvol.remount()
    st = os.stat(p)
    assert stat.S_IMODE(st.st_mode) == 0o4755 and (st.st_uid, st.st_gid) == (1234, 5678)
    assert st.st_atime_ns == at and st.st_mtime_ns == mt, "times after remount"
    sd = os.stat(mvol.p("d"))
    assert stat.S_IMODE(sd.st_mode) == 0o711 and sd.st_mtime_ns == mt
    assert os.lstat(mvol.p("sl")).st_mtime_ns == mt + 1
    before = os.stat(p).st_mtime_ns
    time.sleep(0.02)
    with open(p, "ab") as f:
        f.write(b"more")
    assert os.stat(p).st_mtime_ns > before, "write must update mtime"


def test_statfs(mvol):
    s = os.statvfs(mvol.mnt)
    b = os.statvfs(mvol.cipherdir)
    assert s.f_bsize > 0 and s.f_frsize > 0
    assert s.f_blocks > 0 and 0 <= s.f_bavail <= s.f_bfree <= s.f_blocks
    assert s.f_namemax >= 200
    total, btotal = s.f_blocks * s.f_frsize, b.f_blocks * b.f_frsize
    assert 0.5 * btotal <= total <= 1.1 * btotal, "statfs total %d vs backing %d" % (total, btotal)
    free, bfree = s.f_bavail * s.f_frsize, b.f_bavail * b.f_frsize
    assert 0.5 * bfree <= free <= 1.1 * bfree + (64 << 20), "statfs free %d vs backing %d" % (free, bfree)


def test_unlink_while_open(mvol):
    p = mvol.p("doomed")
    data = os.urandom(10000)
    write_file(p, data)
    fd = os.open(p, os.O_RDWR)
    try:
        os.unlink(p)
        assert "doomed" not in os.listdir(mvol.mnt)
        assert errno_of(lambda: os.stat(p)) == errno.ENOENT
        assert os.pread(fd, 20000, 0) == data
        os.pwrite(fd, b"after-unlink" * 1000, 9000)
        assert os.pread(fd, 100, 9000) == (b"after-unlink" * 1000)[:100]
        assert os.fstat(fd).st_size == 9000 + 12000
    finally:
        os.close(fd)
    leftovers = kmsfs_it.wait_for(lambda: not [n for n in os.listdir(mvol.cipherdir) if n != "kmsfs.conf"], 5)
    assert leftovers, "backing dir still has %r after the last close" % os.listdir(mvol.cipherdir)
    assert os.listdir(mvol.mnt) == []


def test_user_xattrs(mvol):
    p = mvol.p("xf")
    write_file(p, b"xattr file content")
    os.setxattr(p, "user.color", b"blue")
    big = os.urandom(1500)
    os.setxattr(p, "user.blob", big)
    assert os.getxattr(p, "user.color") == b"blue"
    assert os.getxattr(p, "user.blob") == big
    names = os.listxattr(p)
    assert "user.color" in names and "user.blob" in names
    assert "user.kmsfs.dek" not in names, "the wrapped DEK xattr must be hidden: %r" % names
    assert errno_of(lambda: os.getxattr(p, "user.kmsfs.dek")) == errno.ENODATA
    e = errno_of(lambda: os.setxattr(p, "user.kmsfs.dek", b"attacker"))
    assert e != 0, "setting user.kmsfs.dek through the mount must be refused"
    e2 = errno_of(lambda: os.removexattr(p, "user.kmsfs.dek"))
    assert e2 != 0, "removing user.kmsfs.dek through the mount must be refused"
    assert errno_of(lambda: os.setxattr(p, "user.color", b"red", os.XATTR_CREATE)) == errno.EEXIST
    assert errno_of(lambda: os.setxattr(p, "user.new", b"x", os.XATTR_REPLACE)) == errno.ENODATA
    os.removexattr(p, "user.color")
    assert errno_of(lambda: os.getxattr(p, "user.color")) == errno.ENODATA
    os.mkdir(mvol.p("xd"))
    os.setxattr(mvol.p("xd"), "user.dirattr", b"d")
    mvol.remount()
    assert read_file(p) == b"xattr file content", "file unreadable after xattr games"
    assert os.getxattr(p, "user.blob") == big
    assert "user.color" not in os.listxattr(p)
    assert os.getxattr(mvol.p("xd"), "user.dirattr") == b"d"
    assert os.getxattr(mvol.b("xf"), "user.kmsfs.dek") != b"attacker"


def test_inode_numbers_stable(mvol):
    write_file(mvol.p("f"), b"ino")
    os.mkdir(mvol.p("dir"))
    ino = os.stat(mvol.p("f")).st_ino
    dino = os.stat(mvol.p("dir")).st_ino
    assert ino == os.stat(mvol.b("f")).st_ino, "st_ino should be the backing inode"
    mvol.remount()
    assert os.stat(mvol.p("f")).st_ino == ino
    assert os.stat(mvol.p("dir")).st_ino == dino
    os.rename(mvol.p("f"), mvol.p("dir", "g"))
    assert os.stat(mvol.p("dir", "g")).st_ino == ino
    assert os.stat(mvol.b("dir", "g")).st_ino == ino
    assert {e.name: e.inode() for e in os.scandir(mvol.p("dir"))}["g"] == ino
    mvol.remount()
    assert os.stat(mvol.p("dir", "g")).st_ino == ino


def test_flock_and_posix_locks(mvol):
    p = mvol.p("lockme")
    write_file(p, b"lock")
    f1 = open(p, "rb")
    f2 = open(p, "rb")
    try:
        fcntl.flock(f1, fcntl.LOCK_EX)
        with pytest.raises(BlockingIOError):
            fcntl.flock(f2, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(f1, fcntl.LOCK_UN)
        fcntl.flock(f2, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(f2, fcntl.LOCK_UN)
    finally:
        f1.close()
        f2.close()
    # POSIX record locks conflict between processes
    with open(p, "r+b") as f:
        fcntl.lockf(f, fcntl.LOCK_EX, 2, 0)
        script = ("import fcntl,errno,sys\nf=open(%r,'r+b')\ntry:\n fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB, 2, 0)\n"
                  " print('locked')\nexcept OSError as e:\n print(errno.errorcode[e.errno])\n" % p)
        out = subprocess.run(["/usr/bin/python3", "-c", script], capture_output=True, text=True, timeout=30).stdout.strip()
        assert out in ("EAGAIN", "EACCES"), "second process got %r for a conflicting F_SETLK" % out
        script2 = script.replace("2, 0)", "2, 2)")
        out = subprocess.run(["/usr/bin/python3", "-c", script2], capture_output=True, text=True, timeout=30).stdout.strip()
        assert out == "locked", "non-overlapping range lock should succeed, got %r" % out


def _setup_perm_tree(v):
    write_file(v.p("private"), b"root-only")
    os.chmod(v.p("private"), 0o600)
    write_file(v.p("public"), b"world-writable")
    os.chmod(v.p("public"), 0o666)
    write_file(v.p("readable"), b"world-readable")
    os.chmod(v.p("readable"), 0o644)
    os.mkdir(v.p("closed"))
    os.chmod(v.p("closed"), 0o700)
    write_file(v.p("closed", "f"), b"x")
    os.mkdir(v.p("open"))
    os.chmod(v.p("open"), 0o777)


def _child(v, uid=65534):
    script = CHILD_PRELUDE + r'''
m = %r
attempt("stat_public", lambda: os.stat(m + "/public").st_size)
attempt("list_root", lambda: sorted(os.listdir(m)))
attempt("read_private", lambda: rd(m + "/private"))
attempt("list_closed", lambda: os.listdir(m + "/closed"))
attempt("read_public", lambda: rd(m + "/public"))
attempt("read_readable", lambda: rd(m + "/readable"))
attempt("write_readable", lambda: wr(m + "/readable", "nope"))
attempt("write_public", lambda: wr(m + "/public", "WORLD"))
attempt("create_in_open", lambda: wr(m + "/open/new-%%d" %% os.getpid(), "created", "wb"))
attempt("chmod_public", lambda: os.chmod(m + "/public", 0o777))
print(json.dumps(res))
''' % v.mnt
    return run_as(uid, uid, script)


def test_allow_other_permissions_and_key_policy(kmsfs, audit):
    """-o allow_other,default_permissions: uid 65534 gets Unix permission errors per the modes,
    and EACCES on content of files it may open per the modes until `kmsfs key allow`."""
    key = kmsfs.create_key("perm-test")
    v = kmsfs.new_volume("perm", key=key)
    v.mount("-o", "allow_other,default_permissions", "--key-cache-ttl", "0")
    _setup_perm_tree(v)
    audit.mark()
    r = _child(v)
    assert r["stat_public"] == ["ok", len(b"world-writable")], r
    assert r["list_root"][0] == "ok", r
    assert r["read_private"] == ["err", "EACCES"], r
    assert r["list_closed"] == ["err", "EACCES"], r
    assert r["write_readable"] == ["err", "EACCES"], r
    assert r["chmod_public"] == ["err", "EPERM"], r
    # the key belongs to uid:0; uid 65534 is not allowed to use it, whatever the mode says
    assert r["read_public"] == ["err", "EACCES"], "uid 65534 read content without key permission: %r" % r
    assert r["read_readable"] == ["err", "EACCES"], r
    assert r["write_public"] == ["err", "EACCES"], r
    assert r["create_in_open"] == ["err", "EACCES"], r
    denied = audit.wait(lambda x: x.get("errorCode") and str(kmsfs_it.rec_get(x, "userIdentity", "uid")) == "65534")
    assert denied, "no audit record with errorCode for uid 65534:\n" + audit.dump()

    kmsfs.key("allow", key, "uid:65534")
    r = _child(v)
    assert r["read_public"] == ["ok", "world-writable"], r
    assert r["read_readable"] == ["ok", "world-readable"], r
    assert r["write_public"] == ["ok", True], r
    assert r["create_in_open"] == ["ok", True], r
    assert r["read_private"] == ["err", "EACCES"], r
    assert r["write_readable"] == ["err", "EACCES"], r
    assert read_file(v.p("public")) == b"WORLD-writable"
    created = [n for n in os.listdir(v.p("open")) if n.startswith("new-")]
    assert created and read_file(v.p("open", created[0])) == b"created"
    assert os.stat(v.p("open", created[0])).st_uid == 65534, "file created by uid 65534 should belong to it"

    kmsfs.key("disallow", key, "uid:65534")
    r = _child(v)
    assert r["read_public"] == ["err", "EACCES"], "disallow did not take effect (key cache ttl 0): %r" % r
    assert read_file(v.p("public")) == b"WORLD-writable", "root lost access"
    v.unmount()


def test_other_uid_without_allow_other_is_refused(mvol):
    """Without allow_other the kernel refuses other uids entirely (FUSE default)."""
    write_file(mvol.p("f"), b"x")
    os.chmod(mvol.p("f"), 0o666)
    r = run_as(65534, 65534, CHILD_PRELUDE + "attempt('stat', lambda: os.stat(%r).st_size)\nprint(json.dumps(res))\n"
               % mvol.p("f"))
    assert r["stat"] == ["err", "EACCES"], r


def test_names_lengths_and_characters(mvol):
    names = ["a" * 255, "ünïcödé-名前-🔐", "with space", "new\nline", "-dash", ".hidden", "x" * 200 + ".txt"]
    for n in names:
        write_file(mvol.p(n), n.encode())
    assert errno_of(lambda: open(mvol.p("b" * 256), "wb")) == errno.ENAMETOOLONG
    mvol.remount()
    assert sorted(os.listdir(mvol.mnt)) == sorted(names)
    for n in names:
        assert read_file(mvol.p(n)) == n.encode()


def test_deep_paths_beyond_path_max(mvol):
    """Directories nested deeper than PATH_MAX (reached with *at() calls, as rsync/tar do)."""
    comp = "d" * 200
    depth = 25  # ~5000 bytes below the mount point
    fds = [os.open(mvol.mnt, os.O_RDONLY | os.O_DIRECTORY)]
    try:
        for i in range(depth):
            try:
                os.mkdir(comp, dir_fd=fds[-1])
                fds.append(os.open(comp, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fds[-1]))
            except OSError as e:
                pytest.fail("mkdir/open at depth %d (~%d bytes below the mount): %s" % (i, i * 201, e))
        fd = os.open("leaf", os.O_RDWR | os.O_CREAT, 0o644, dir_fd=fds[-1])
        try:
            os.write(fd, b"deep data")
        except OSError as e:
            pytest.fail("write to a file %d bytes below the mount: %s" % (depth * 201, e))
        finally:
            os.close(fd)
        fd = os.open("leaf", os.O_RDONLY, dir_fd=fds[-1])
        try:
            assert os.read(fd, 100) == b"deep data"
        finally:
            os.close(fd)
    finally:
        for fd in fds:
            os.close(fd)


def test_fifo_and_rename_edge_cases(mvol):
    os.mkfifo(mvol.p("fifo"), 0o644)
    assert stat.S_ISFIFO(os.stat(mvol.p("fifo")).st_mode)
    os.makedirs(mvol.p("d1", "sub"))
    os.mkdir(mvol.p("empty"))
    write_file(mvol.p("d1", "sub", "f"), b"f")
    assert errno_of(lambda: os.rename(mvol.p("d1"), mvol.p("d1", "sub", "into-self"))) == errno.EINVAL
    os.mkdir(mvol.p("d2"))
    write_file(mvol.p("d2", "x"), b"x")
    assert errno_of(lambda: os.rename(mvol.p("d1"), mvol.p("d2"))) == errno.ENOTEMPTY
    os.rename(mvol.p("d1"), mvol.p("empty"))  # over an empty directory
    assert read_file(mvol.p("empty", "sub", "f")) == b"f"
    assert errno_of(lambda: os.rename(mvol.p("d2"), mvol.p("empty", "sub", "f"))) == errno.ENOTDIR
    assert errno_of(lambda: os.rename(mvol.p("d2", "x"), mvol.p("empty"))) == errno.EISDIR
    assert errno_of(lambda: os.rename(mvol.p("nope"), mvol.p("x"))) == errno.ENOENT


def test_times_now_and_ctime(mvol):
    p = mvol.p("t")
    write_file(p, b"t")
    os.utime(p, ns=(10**18, 10**18))
    c0 = os.stat(p).st_ctime_ns
    time.sleep(0.05)
    os.chmod(p, 0o600)
    assert os.stat(p).st_ctime_ns > c0, "chmod must update ctime"
    os.utime(p)
    st = os.stat(p)
    now = time.time_ns()
    assert abs(st.st_mtime_ns - now) < 5 * 10**9 and abs(st.st_atime_ns - now) < 5 * 10**9, "utime(NULL) did not set now"


def test_rename_while_open_for_write(mvol):
    os.mkdir(mvol.p("from"))
    os.mkdir(mvol.p("to"))
    fd = os.open(mvol.p("from", "f"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"A" * 5000)
        os.rename(mvol.p("from", "f"), mvol.p("to", "g"))
        os.write(fd, b"B" * 5000)
        os.rename(mvol.p("to"), mvol.p("to2"))
        os.pwrite(fd, b"C" * 10, 4995)
        assert os.pread(fd, 20, 4990) == b"AAAAA" + b"C" * 10 + b"BBBBB"
    finally:
        os.close(fd)
    want = b"A" * 4995 + b"C" * 10 + b"B" * 4995
    assert read_file(mvol.p("to2", "g")) == want
    mvol.remount()
    assert read_file(mvol.p("to2", "g")) == want


def test_unlinked_open_file_is_independent_of_a_new_file_with_its_name(mvol):
    p = mvol.p("name")
    write_file(p, b"old" * 2000)
    fd = os.open(p, os.O_RDWR)
    try:
        os.unlink(p)
        write_file(p, b"NEW FILE")
        os.pwrite(fd, b"written-through-old-fd", 10)
        assert os.pread(fd, 32, 0)[:32] == (b"old" * 2000)[:10] + b"written-through-old-fd"
        assert read_file(p) == b"NEW FILE", "a write through the unlinked file's fd landed in the new file"
        os.rename(p, mvol.p("moved"))
        os.pwrite(fd, b"again", 0)
        assert read_file(mvol.p("moved")) == b"NEW FILE"
    finally:
        os.close(fd)
    mvol.remount()
    assert read_file(mvol.p("moved")) == b"NEW FILE"
    assert sorted(os.listdir(mvol.mnt)) == ["moved"]


def test_key_cache_is_per_principal(kmsfs):
    """Default key cache on: root has the file's DEK cached (and the file open), yet uid 65534,
    which the key policy does not allow, still gets EACCES for a mode-0666 file."""
    v = kmsfs.new_volume("percache")
    v.mount("-o", "allow_other,default_permissions")
    write_file(v.p("shared"), b"root's data")
    os.chmod(v.p("shared"), 0o666)
    with open(v.p("shared"), "rb") as held:
        assert held.read() == b"root's data"
        r = run_as(65534, 65534, CHILD_PRELUDE + "attempt('read', lambda: rd(%r))\n"
                   "attempt('write', lambda: wr(%r, 'X'))\nprint(json.dumps(res))\n" % (v.p("shared"), v.p("shared")))
    assert r["read"] == ["err", "EACCES"], "uid 65534 used root's cached data key: %r" % r
    assert r["write"] == ["err", "EACCES"], r
    assert read_file(v.p("shared")) == b"root's data"
    v.unmount()


def test_allow_other_without_default_permissions_still_enforces_modes(kmsfs):
    """Forgetting default_permissions must not turn off Unix permissions: with the key allowed
    for uid 65534, it still cannot read root's 0600 file or write a 0644 one."""
    key = kmsfs.create_key("noperm-test")
    v = kmsfs.new_volume("noperm", key=key)
    v.mount("-o", "allow_other", "--key-cache-ttl", "0")
    _setup_perm_tree(v)
    kmsfs.key("allow", key, "uid:65534")
    r = _child(v)
    assert r["read_public"] == ["ok", "world-writable"], r
    assert r["read_private"] == ["err", "EACCES"], "uid 65534 read a root 0600 file: %r" % r
    assert r["write_readable"] == ["err", "EACCES"], "uid 65534 wrote a root 0644 file: %r" % r
    assert r["list_closed"] == ["err", "EACCES"], r
    assert r["chmod_public"] == ["err", "EPERM"], r
    assert read_file(v.p("readable")) == b"world-readable"
    v.unmount()


def test_setuid_bits_cleared_when_another_user_writes_or_truncates(kmsfs):
    """As on a local disk: a write or truncate by someone other than root clears setuid and
    setgid, even though the daemon itself runs as root (which keeps them on its own writes)."""
    key = kmsfs.create_key("suid-test")
    v = kmsfs.new_volume("suid", key=key)
    v.mount("-o", "allow_other,default_permissions")
    kmsfs.key("allow", key, "uid:65534")
    for name in ("w", "t"):
        write_file(v.p(name), b"#!/bin/sh\necho hi\n")
        os.chmod(v.p(name), 0o6777)
        assert os.stat(v.p(name)).st_mode & 0o6000 == 0o6000
    script = kmsfs_it.CHILD_PRELUDE + r'''
attempt("write", lambda: wr(sys.argv[1], "x", "ab"))
attempt("truncate", lambda: os.truncate(sys.argv[2], 3))
print(json.dumps(res))
'''
    p = subprocess.run(["/usr/bin/python3", "-c", script, v.p("w"), v.p("t")], capture_output=True,
                       text=True, user=65534, group=65534, extra_groups=[], timeout=60, cwd="/")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["write"] == ["ok", True] and r["truncate"] == ["ok", None], r
    for name in ("w", "t"):
        mode = os.stat(v.p(name)).st_mode
        assert mode & 0o6000 == 0, "%s: setuid/setgid survived another user's change: %o" % (name, mode)
    assert read_file(v.p("w")) == b"#!/bin/sh\necho hi\nx"
    assert read_file(v.p("t")) == b"#!/"
    v.unmount()
