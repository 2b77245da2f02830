"""kmsfs volume: EBS-like disk images on a kmsfs mount, attached as loop devices.

The issue's "done when" for volumes: an ext4 volume under key A, filled with files and heavy
random I/O, detached, fsck-clean, snapshotted under key B (key A then disabled), attached again
from the snapshot: fsck.ext4 -f clean and every file identical. Plus the refusals a user relies
on: attaching twice, detaching a mounted device, creating outside a kmsfs mount, formatting over
a filesystem. Every loop device and mount a test makes is released in teardown, also on failure.
"""
import hashlib
import mmap
import os
import random
import re
import shutil
import subprocess
import time

import pytest

import kmsfs_it
from kmsfs_it import is_mounted

MiB = 1 << 20
IMAGE_SIZE = 256 * MiB
RANDOM_IO_SECONDS = 20
RANDOM_FILE_SIZE = 32 * MiB


def tool(name):
    """A system tool the test needs; missing means the test fails (not skips)."""
    for d in (None, "/usr/sbin", "/sbin"):
        path = shutil.which(name, path=d) if d else shutil.which(name)
        if path:
            return path
    pytest.fail("%s is not installed (tools/install-deps.sh installs e2fsprogs/util-linux)" % name)


def sh(*argv, check=True, timeout=300):
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)
    if check:
        assert p.returncode == 0, "%s failed (rc %d):\n%s\n%s" % (argv, p.returncode, p.stdout, p.stderr)
    return p


def unescape(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def loops_under(base):
    """(device, backing file) of every attached loop device whose image is below base."""
    found = []
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith("loop"):
            continue
        try:
            with open("/sys/block/%s/loop/backing_file" % name) as f:
                backing = f.read().strip()
        except OSError:
            continue
        if backing.startswith(base.rstrip("/") + "/"):
            found.append(("/dev/" + name, backing))
    return found


def mounts_of_device(dev):
    """Mount points of a block device, oldest first (from /proc/self/mountinfo)."""
    rdev = os.stat(dev).st_rdev
    want = "%d:%d" % (os.major(rdev), os.minor(rdev))
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[2] == want:
                out.append(unescape(fields[4]))
    return out


@pytest.fixture
def loops(kmsfs):
    """Teardown: unmount and detach every loop device backed by a file of this session's work
    directory, with umount and losetup (not kmsfs), before the kmsfs mounts are unmounted."""
    yield
    problems = []
    for dev, backing in loops_under(kmsfs.base):
        for mp in reversed(mounts_of_device(dev)):
            if subprocess.run(["umount", mp], capture_output=True).returncode != 0:
                problems.append("umount %s failed; lazy unmount" % mp)
                subprocess.run(["umount", "-l", mp], capture_output=True)
        p = subprocess.run(["losetup", "-d", dev], capture_output=True, text=True)
        if p.returncode != 0:
            problems.append("losetup -d %s (%s): %s" % (dev, backing, p.stderr.strip()))
    assert not problems, "; ".join(problems)


def volume_cmd(kmsfs, *args, check=True, timeout=300):
    return kmsfs.run("volume", *args, check=check, timeout=timeout)


def attach(kmsfs, image, *opts):
    r = volume_cmd(kmsfs, "attach", image, *opts)
    dev = r.out.strip()
    assert re.fullmatch(r"/dev/loop\d+", dev), "attach printed no device: %r" % r
    return dev


def content(tag, size):
    """Deterministic bytes for a file (no runs of zeros to hide in holes)."""
    return hashlib.shake_256(("kmsfs-volume/%s" % tag).encode()).digest(size) if size else b""


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def fill(root):
    """A few hundred small files in nested directories and a few MiB-sized ones. Returns
    {relative path: sha256}."""
    rng = random.Random(1234)
    hashes = {}
    for i in range(320):
        rel = "small/d%02d/f%03d" % (i % 16, i)
        size = rng.choice([0, 1, 511, 512, 1023, 1024, 4095, 4096, 4097, rng.randrange(1, 20000)])
        data = content(rel, size)
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        kmsfs_it.write_file(os.path.join(root, rel), data)
        hashes[rel] = sha256(data)
    for i, size in enumerate([1 * MiB, 2 * MiB + 1, 3 * MiB - 7, 5 * MiB]):
        rel = "big/b%d" % i
        data = content(rel, size)
        os.makedirs(os.path.join(root, "big"), exist_ok=True)
        kmsfs_it.write_file(os.path.join(root, rel), data)
        hashes[rel] = sha256(data)
    return hashes


def random_io(path, image, seconds, size, seed=77):
    """Heavy random I/O on one file inside the volume's ext4: buffered writes of many sizes at
    aligned and unaligned offsets, fsyncs, punched holes, and O_DIRECT reads (so they come
    from the loop device, not ext4's page cache) checked against an in-memory model as they
    go. Now and then, after an fsync, the image's pages are dropped from the kmsfs mount's
    page cache, so the reads that follow are decrypted by kmsfs from what it wrote. Returns
    (model, operations, direct reads checked)."""
    rng = random.Random(seed)
    model = bytearray(size)
    buf = mmap.mmap(-1, 64 * 4096)  # page-aligned, as O_DIRECT needs
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    dfd = -1
    ops = reads = 0
    try:
        os.ftruncate(fd, size)
        dfd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            op = rng.random()
            if op < 0.55:
                length = rng.choice([1, 512, 4096, 4096, 8192, 65536, rng.randrange(1, 256 * 1024)])
                off = rng.randrange(0, size - length)
                if rng.random() < 0.5:
                    off -= off % 4096
                data = rng.randbytes(length)
                assert os.pwrite(fd, data, off) == length
                model[off:off + length] = data
            elif op < 0.58:
                os.fsync(fd)
                if rng.random() < 0.1:
                    image_fd = os.open(image, os.O_RDONLY)
                    os.posix_fadvise(image_fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    os.close(image_fd)
            elif op < 0.60:
                length = rng.randrange(1, 512 * 1024)
                off = rng.randrange(0, size - length)
                kmsfs_it.fallocate(fd, kmsfs_it.FALLOC_FL_PUNCH_HOLE | kmsfs_it.FALLOC_FL_KEEP_SIZE,
                                   off, length)
                model[off:off + length] = bytes(length)
            else:
                blocks = rng.choice([1, 1, 4, 16, 64])
                off = rng.randrange(0, size // 4096 - blocks) * 4096
                with memoryview(buf)[:blocks * 4096] as view:
                    n = os.preadv(dfd, [view], off)
                    got = bytes(view)
                assert n == blocks * 4096, "short O_DIRECT read at %d: %d" % (off, n)
                if got != model[off:off + n]:
                    raise AssertionError("O_DIRECT read of %d bytes at offset %d differs from what was "
                                         "written (after %d operations)" % (n, off, ops))
                reads += 1
            ops += 1
        os.fsync(fd)
    finally:
        os.close(fd)
        if dfd >= 0:
            os.close(dfd)
        buf.close()
    return model, ops, reads


def tree_hashes(root):
    out = {}
    for d, _, files in os.walk(root):
        for name in files:
            p = os.path.join(d, name)
            rel = os.path.relpath(p, root)
            if rel.startswith("lost+found"):
                continue
            out[rel] = kmsfs_it.sha256_file(p)
    return out


def fsck_clean(kmsfs, image):
    """Attach read-only, fsck.ext4 -f -n, detach. Returns fsck's output."""
    dev = attach(kmsfs, image, "--read-only")
    try:
        p = sh(tool("fsck.ext4"), "-f", "-n", dev, check=False)
    finally:
        volume_cmd(kmsfs, "detach", dev)
    assert p.returncode == 0, "fsck.ext4 -f -n %s (%s) found problems (rc %d):\n%s\n%s" % (
        dev, image, p.returncode, p.stdout, p.stderr)
    return p.stdout + p.stderr


def list_rows(kmsfs, *args):
    """`kmsfs volume list` as {image: (device, mountpoint)}."""
    r = volume_cmd(kmsfs, "list", *args)
    lines = r.out.splitlines()
    assert lines and lines[0].split()[:2] == ["DEVICE", "SIZE"], "list printed no header: %r" % r
    rows = {}
    for line in lines[1:]:
        f = line.split(None, 4)
        rows[f[4]] = (f[0], f[3])
    return rows


@pytest.mark.timeout(400)
def test_volume_filled_snapshot_under_another_key(kmsfs, loops):
    """ext4 on a volume under key A: files and random I/O, detach, fsck clean; snapshot under
    key B; with key A disabled the snapshot attaches, fsck.ext4 -f is clean and every file
    hash is identical."""
    tool("mkfs.ext4")
    key_a = kmsfs.create_key("volume key A")
    key_b = kmsfs.create_key("volume key B")
    vol = kmsfs.new_volume("volume-a", key=key_a)
    vol.mount()
    image = vol.p("disks", "data.img")
    os.makedirs(vol.p("disks"))
    ext = os.path.join(vol.root, "ext4")
    os.makedirs(ext)

    r = volume_cmd(kmsfs, "create", image, "--size", "256M")
    assert os.path.getsize(image) == IMAGE_SIZE
    assert os.getxattr(image, "user.kmsfs_volume") == str(IMAGE_SIZE).encode()
    assert os.stat(vol.b("disks", "data.img")).st_blocks * 512 < MiB, "the new image is not sparse"

    dev = attach(kmsfs, image, "--mkfs", "ext4", "--mount", ext)
    assert kmsfs_it.mount_fstype(ext) == "ext4"
    rows = list_rows(kmsfs)
    assert rows.get(image) == (dev, ext), "list does not show %s on %s at %s: %r" % (dev, image, ext, rows)

    hashes = fill(ext)
    model, ops, reads = random_io(os.path.join(ext, "random.bin"), image, RANDOM_IO_SECONDS,
                                  RANDOM_FILE_SIZE)
    assert ops > 1000 and reads > 100, "random I/O did too little: %d operations, %d reads" % (ops, reads)
    hashes["random.bin"] = sha256(model)
    assert tree_hashes(ext) == hashes

    r = volume_cmd(kmsfs, "detach", image, "--umount")
    assert not is_mounted(ext) and not loops_under(vol.root), "detach --umount left %r" % r
    assert dev in r.out and image in r.out
    # The ciphertext never holds the plaintext of a file inside the volume.
    with open(vol.b("disks", "data.img"), "rb") as f:
        backing = f.read()
    assert content("big/b3", 5 * MiB)[:4096] not in backing
    vol.remount()  # an empty page cache: fsck reads what kmsfs decrypts
    fsck_clean(kmsfs, image)

    dst = os.path.join(vol.root, "snapshot-b")
    # snapshot copy's options on either side of IMAGE DST, passed through
    r = volume_cmd(kmsfs, "snapshot", "--key", key_b, image, dst, *kmsfs.store_args(), "--verify",
                   timeout=600)
    assert "disks/data.img" in r.out and "volume attach" in r.out, "snapshot printed no directions: %r" % r
    with open(os.path.join(dst, "kmsfs.conf")) as f:
        conf = f.read()
    assert kmsfs_it.norm_id(key_b.split("/")[-1]) in kmsfs_it.norm_id(conf), "snapshot is not under key B"

    vol.unmount()
    kmsfs.key("disable", key_a)
    try:
        snap_mnt = os.path.join(vol.root, "snapshot-mnt")
        os.makedirs(snap_mnt)
        snap = kmsfs_it.Volume(kmsfs, vol.root, dst, snap_mnt, "aes-256-gcm", key_b)
        snap.mount()
        snap_image = snap.p("disks", "data.img")
        assert os.getxattr(snap_image, "user.kmsfs_volume") == str(IMAGE_SIZE).encode()
        fsck_clean(kmsfs, snap_image)
        ext2 = os.path.join(vol.root, "ext4-snapshot")
        os.makedirs(ext2)
        dev2 = attach(kmsfs, snap_image, "--mount", ext2)
        got = tree_hashes(ext2)
        missing = sorted(set(hashes) - set(got))
        differ = sorted(k for k in hashes if k in got and got[k] != hashes[k])
        assert not missing and not differ, "snapshot differs: missing %r, different %r" % (missing[:10], differ[:10])
        volume_cmd(kmsfs, "detach", dev2, "--umount")
        snap.unmount()
    finally:
        kmsfs.key("enable", key_a)


def test_volume_refusals_and_list(kmsfs, loops):
    """Attach twice, detach while mounted, create outside kmsfs or over a file, format over a
    filesystem without --force, snapshot while attached: each refused with the reason; list
    shows attached and (with DIR) detached volumes; fstrim gives freed blocks back."""
    vol = kmsfs.new_volume("volume-refusals")
    vol.mount()
    image = vol.p("small.img")
    ext = os.path.join(vol.root, "ext4")
    os.makedirs(ext)

    outside = os.path.join(vol.root, "outside.img")
    r = volume_cmd(kmsfs, "create", outside, "--size", "32M", check=False)
    assert r.rc != 0 and "not on a kmsfs mount" in r.err and outside in r.err, r
    assert not os.path.exists(outside)

    volume_cmd(kmsfs, "create", image, "--size", "32M", "--mkfs", "ext4")
    assert not loops_under(vol.root), "create --mkfs left its temporary loop device"
    r = volume_cmd(kmsfs, "create", image, "--size", "32M", check=False)
    assert r.rc != 0 and "already exists" in r.err, r
    for bad in ("32Q", "0", "1000", "-5M"):
        r = volume_cmd(kmsfs, "create", vol.p("bad.img"), "--size", bad, check=False)
        assert r.rc != 0 and bad in r.err, r
    assert not os.path.exists(vol.p("bad.img"))

    r = volume_cmd(kmsfs, "attach", image, "--mkfs", "ext4", check=False)
    assert r.rc != 0 and "already holds a filesystem (ext4)" in r.err and "--force" in r.err, r
    assert not loops_under(vol.root), "a refused --mkfs left the device attached"

    dev = attach(kmsfs, image, "--mount", ext)
    r = volume_cmd(kmsfs, "attach", image, check=False)
    assert r.rc != 0 and "already attached as %s" % dev in r.err, r
    assert len(loops_under(vol.root)) == 1

    # Blocks ext4 frees and trims become holes in the image again.
    kmsfs_it.write_file(os.path.join(ext, "scratch"), os.urandom(8 * MiB))
    os.sync()
    full = os.stat(vol.b("small.img")).st_blocks * 512
    os.unlink(os.path.join(ext, "scratch"))
    os.sync()  # ext4 trims only blocks whose freeing is committed
    sh(tool("fstrim"), ext)
    os.sync()
    trimmed = os.stat(vol.b("small.img")).st_blocks * 512
    assert full - trimmed >= 7 * MiB, "fstrim freed %d bytes of the image's %d" % (full - trimmed, full)

    r = volume_cmd(kmsfs, "detach", dev, check=False)
    assert r.rc != 0 and ("mounted on %s" % ext) in r.err and "--umount" in r.err, r
    assert is_mounted(ext) and loops_under(vol.root)

    r = volume_cmd(kmsfs, "snapshot", image, os.path.join(vol.root, "snap"), check=False)
    assert r.rc != 0 and "attached as %s" % dev in r.err and "detach it first" in r.err, r
    assert not os.path.exists(os.path.join(vol.root, "snap"))

    other = vol.p("other.img")
    volume_cmd(kmsfs, "create", other, "--size", "16M")
    plain = vol.p("not-a-volume")
    kmsfs_it.write_file(plain, b"x" * 4096)
    rows = list_rows(kmsfs, vol.mnt)
    assert rows.get(image) == (dev, ext), rows
    assert rows.get(other) == ("-", "-"), rows
    assert plain not in rows
    assert other not in list_rows(kmsfs), "list without DIR shows a detached image"

    r = volume_cmd(kmsfs, "detach", image, "--umount")
    assert "detached %s" % dev in r.out, r
    assert not is_mounted(ext) and not loops_under(vol.root)
    r = volume_cmd(kmsfs, "detach", image, check=False)
    assert r.rc != 0 and "not attached" in r.err, r

    for sub in ("create", "attach", "detach", "list", "snapshot"):
        r = volume_cmd(kmsfs, sub, "--help")
        assert r.out.startswith("usage: kmsfs volume"), r


def test_volume_concurrent_attaches_get_distinct_devices(kmsfs, loops):
    """Four attaches at once may be offered the same free loop device: each must end up on its
    own device, backed by its own image (the loser of such a race asks for another one)."""
    vol = kmsfs.new_volume("volume-race")
    vol.mount()
    images = [vol.p("race%d.img" % i) for i in range(4)]
    for image in images:
        volume_cmd(kmsfs, "create", image, "--size", "16M")
    procs = [subprocess.Popen([kmsfs.bin, "volume", "attach", image], env=kmsfs.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for image in images]
    results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
    for image, (out, err, rc) in zip(images, results):
        assert rc == 0, "attach %s failed: %s" % (image, err)
    devices = [out.strip() for out, _, _ in results]
    assert len(set(devices)) == 4, "attaches shared a device: %r" % devices
    attached = dict(loops_under(vol.root))
    for image, dev in zip(images, devices):
        assert attached.get(dev) == image, "%s is backed by %r, not %s" % (dev, attached.get(dev), image)
    for dev in devices:
        volume_cmd(kmsfs, "detach", dev)
    assert not loops_under(vol.root)
