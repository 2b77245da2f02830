"""Real workloads inside a kmsfs mount: a git clone with commits and fsck, and building
kmsfs itself with cmake."""
import os
import shutil
import subprocess

import pytest

import kmsfs_it

SRC_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def run(argv, cwd, env, timeout=300):
    p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return kmsfs_it.CmdResult(argv, p.returncode, p.stdout, p.stderr)


def git_env(home):
    env = dict(os.environ)
    env.update(HOME=home, GIT_CONFIG_NOSYSTEM="1", GIT_AUTHOR_NAME="kmsfs it", GIT_AUTHOR_EMAIL="it@example.invalid",
               GIT_COMMITTER_NAME="kmsfs it", GIT_COMMITTER_EMAIL="it@example.invalid", LC_ALL="C")
    return env


@pytest.mark.slow
def test_git_clone_commit_fsck(mvol):
    env = git_env(mvol.root)
    src = os.path.join(mvol.root, "origin")
    os.makedirs(src)

    def g(*args, cwd=src, ok=True):
        r = run(["git"] + list(args), cwd, env)
        if ok:
            assert r.rc == 0, "git %s failed: %r" % (" ".join(args), r)
        return r

    g("init", "-q", "-b", "main")
    for i in range(6):
        with open(os.path.join(src, "file%d.txt" % i), "w") as f:
            f.write(("line %d\n" % i) * (1000 * (i + 1)))
        with open(os.path.join(src, "blob.bin"), "wb") as f:
            f.write(os.urandom(150000 + i))
        g("add", "-A")
        g("commit", "-q", "-m", "commit %d" % i)
    g("tag", "v1")
    clone = mvol.p("clone")
    g("clone", "-q", "--no-local", src, clone, cwd=mvol.mnt)
    with open(os.path.join(clone, "file0.txt"), "a") as f:
        f.write("changed inside kmsfs\n")
    os.makedirs(os.path.join(clone, "new", "dir"))
    with open(os.path.join(clone, "new", "dir", "n.txt"), "w") as f:
        f.write("new file\n")
    g("add", "-A", cwd=clone)
    g("commit", "-q", "-m", "commit inside the mount", cwd=clone)
    g("checkout", "-q", "-b", "feature", cwd=clone)
    g("mv", "file1.txt", "renamed.txt", cwd=clone)
    g("commit", "-q", "-m", "rename", cwd=clone)
    g("checkout", "-q", "main", cwd=clone)
    g("merge", "-q", "--no-edit", "feature", cwd=clone)
    g("gc", "-q", cwd=clone)
    r = g("fsck", "--full", "--strict", cwd=clone)
    assert "error" not in (r.out + r.err).lower(), r
    assert g("status", "--porcelain", cwd=clone).out == ""
    mvol.remount()
    r = g("fsck", "--full", "--strict", cwd=clone)
    assert g("rev-list", "--count", "HEAD", cwd=clone).out.strip() == "8"
    assert g("status", "--porcelain", cwd=clone).out == "", "working tree dirty after remount"
    assert g("diff", "v1", "HEAD", "--stat", cwd=clone).out.count("|") == 3
    # push back to the origin and verify it there
    g("push", "-q", src + "/.git", "main:fromkmsfs", cwd=clone)
    g("fsck", "--full", cwd=src)
    assert g("rev-parse", "fromkmsfs").out.strip() == g("rev-parse", "HEAD", cwd=clone).out.strip()


def _snapshot_source(dest):
    """The committed tree (git archive HEAD) when this is a git checkout, so the snapshot is
    consistent even while someone is editing the work tree; otherwise a copy of the work tree
    without build dirs, .git and caches."""
    if os.path.isdir(os.path.join(SRC_ROOT, ".git")):
        os.makedirs(dest)
        p = subprocess.run("git -C %s archive --format=tar HEAD | tar -xf - -C %s" % (SRC_ROOT, dest),
                           shell=True, capture_output=True, text=True, timeout=120)
        if p.returncode == 0 and os.path.isfile(os.path.join(dest, "CMakeLists.txt")):
            return
        shutil.rmtree(dest)

    def ignore(d, names):
        skip = {".git", ".cache", "__pycache__"}
        if os.path.abspath(d) == SRC_ROOT:
            skip |= {n for n in names if n.startswith("build")}
        return [n for n in names if n in skip]
    shutil.copytree(SRC_ROOT, dest, symlinks=True, ignore=ignore)


def _cmake_build(src, env):
    r = run(["cmake", "-S", src, "-B", os.path.join(src, "build"), "-DBUILD_TESTING=OFF"], src, env, 300)
    if r.rc != 0:
        return r
    return run(["cmake", "--build", os.path.join(src, "build"), "-j2"], src, env, 400)


@pytest.mark.slow
def test_cmake_build_of_kmsfs_inside_mount(mvol):
    if not os.path.isfile(os.path.join(SRC_ROOT, "CMakeLists.txt")):
        pytest.skip("kmsfs source tree not found at %s" % SRC_ROOT)
    env = dict(os.environ, LC_ALL="C")
    snap = os.path.join(mvol.root, "snapshot")
    _snapshot_source(snap)
    src = mvol.p("kmsfs-src")
    shutil.copytree(snap, src, symlinks=True)
    r = _cmake_build(src, env)
    if r.rc != 0:
        native = _cmake_build(snap, env)
        if native.rc != 0:
            pytest.skip("this snapshot of the source tree does not build on the native disk either "
                        "(others are mid-change): %s" % (native.err or native.out)[-1500:])
        pytest.fail("build inside the kmsfs mount failed but the same tree builds natively: %r" % r)
    exe = os.path.join(src, "build", "tools", "kmsfs")
    assert os.access(exe, os.X_OK), "no kmsfs binary produced at %s" % exe
    r = run([exe, "--help"], mvol.mnt, env, 30)
    assert r.rc == 0 and "usage" in (r.out + r.err).lower(), "built kmsfs --help: %r" % r
    # an incremental rebuild after touching a source sees nothing stale
    r = run(["cmake", "--build", os.path.join(src, "build")], src, env, 300)
    assert r.rc == 0, r


TAR_SRC = "/usr/lib/python3.11"


@pytest.mark.slow
def test_tar_extract_and_compare_tree(mvol):
    """Untar a real tree (the Python stdlib) into the mount: every file, mode, mtime and symlink
    matches, and tar can read it all back without 'file changed as we read it'."""
    if not os.path.isdir(TAR_SRC):
        pytest.skip("%s not present" % TAR_SRC)
    env = dict(os.environ, LC_ALL="C")
    tarball = os.path.join(mvol.root, "tree.tar")
    r = run(["tar", "-cf", tarball, "--exclude=__pycache__", "--exclude=*.pyc", "-C", os.path.dirname(TAR_SRC),
             os.path.basename(TAR_SRC)], mvol.root, env)
    assert r.rc == 0, r
    r = run(["tar", "-xpf", tarball, "-C", mvol.mnt], mvol.root, env)
    assert r.rc == 0, "tar x into the mount failed: %r" % r
    mvol.remount()
    dst = os.path.join(mvol.mnt, os.path.basename(TAR_SRC))
    n = 0
    for dp, dns, fns in os.walk(TAR_SRC):
        dns[:] = [d for d in dns if d != "__pycache__"]
        rel = os.path.relpath(dp, TAR_SRC)
        for name in fns:
            if name.endswith(".pyc"):
                continue
            s, d = os.path.join(dp, name), os.path.join(dst, rel, name)
            ss, ds = os.lstat(s), os.lstat(d)
            assert ss.st_mode == ds.st_mode and int(ss.st_mtime) == int(ds.st_mtime), d
            if os.path.islink(s):
                assert os.readlink(s) == os.readlink(d), d
            else:
                assert ss.st_size == ds.st_size, d
                assert kmsfs_it.sha256_file(s) == kmsfs_it.sha256_file(d), "content differs: %s" % d
            n += 1
    assert n > 500
    r = run(["tar", "-cf", "/dev/null", "--warning=all", "-C", mvol.mnt, os.path.basename(TAR_SRC)], mvol.root, env)
    assert r.rc == 0 and "changed as we read" not in r.err, r
    r = run(["tar", "-df", tarball, "-C", mvol.mnt], mvol.root, env)
    assert r.rc == 0, "tar --diff found differences: %r" % r


@pytest.mark.slow
def test_ext4_image_on_loop_device(mvol):
    """An EBS-like volume: a sparse disk image on kmsfs, attached to a loop device, with ext4
    inside; write files, unmount, fsck clean, remount kmsfs, read them back."""
    if not shutil.which("losetup") or not shutil.which("mkfs.ext4"):
        pytest.skip("losetup/mkfs.ext4 not installed")
    env = dict(os.environ, LC_ALL="C")
    img = mvol.p("disk.img")
    with open(img, "wb") as f:
        f.truncate(96 << 20)
    r = run(["mkfs.ext4", "-q", "-F", img], mvol.root, env)
    assert r.rc == 0, r
    inner = os.path.join(mvol.root, "inner")
    os.makedirs(inner)
    payload = os.urandom(3 << 20)

    def attach():
        r = run(["losetup", "--find", "--show", img], mvol.root, env)
        if r.rc != 0:
            pytest.skip("cannot attach a loop device here: %s" % r.err.strip())
        return r.out.strip()

    dev = attach()
    try:
        r = run(["mount", dev, inner], mvol.root, env)
        assert r.rc == 0, r
        try:
            with open(os.path.join(inner, "payload"), "wb") as f:
                f.write(payload)
            os.makedirs(os.path.join(inner, "a", "b"))
            with open(os.path.join(inner, "a", "b", "small"), "w") as f:
                f.write("small file\n")
        finally:
            assert run(["umount", inner], mvol.root, env).rc == 0
    finally:
        run(["losetup", "-d", dev], mvol.root, env)
    r = run(["e2fsck", "-fn", img], mvol.root, env)
    assert r.rc == 0, "e2fsck of the image on kmsfs: %r" % r
    assert os.stat(img).st_blocks * 512 < (48 << 20), "image on kmsfs is not sparse"
    mvol.remount()
    dev = attach()
    try:
        r = run(["mount", "-o", "ro", dev, inner], mvol.root, env)
        assert r.rc == 0, r
        try:
            assert kmsfs_it.sha256_file(os.path.join(inner, "payload")) == __import__("hashlib").sha256(payload).hexdigest()
            with open(os.path.join(inner, "a", "b", "small")) as f:
                assert f.read() == "small file\n"
        finally:
            run(["umount", inner], mvol.root, env)
    finally:
        run(["losetup", "-d", dev], mvol.root, env)
