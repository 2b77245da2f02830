"""File content through the mount: reads and writes at every interesting offset, holes,
truncate, append, mmap, fallocate, SEEK_DATA/SEEK_HOLE, big and concurrent I/O."""
import errno
import hashlib
import mmap
import os
import random
import threading
import time

import pytest

import kmsfs_it
from kmsfs_it import read_file, write_file
from kmsfs_it import BLOCK, stored_size

MiB = 1 << 20
SIZES = [0, 1, 4095, 4096, 4097, 3 * 4096, MiB + 3]


def first_diff(a, b):
    for i in range(min(len(a), len(b))):
        if a[i] != b[i]:
            return i
    return min(len(a), len(b)) if len(a) != len(b) else -1


def assert_same(got, want, what=""):
    if got != want:
        i = first_diff(got, want)
        raise AssertionError("%s: content differs (len got %d, want %d; first difference at offset %d: got %r want %r)"
                             % (what, len(got), len(want), i, got[i:i + 16], want[i:i + 16]))


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "xchacha20-poly1305"])
def test_read_write_sizes_and_offsets(kmsfs, cipher):
    """Whole files of edge sizes, then overwrites at random offsets, checked against a model,
    through the page cache and again after a remount; the backing format matches DESIGN.md §3."""
    vol = kmsfs.new_volume("rw-" + cipher, cipher=cipher)
    vol.mount()
    rng = random.Random(0xC0FFEE)
    files = {}
    for n in SIZES:
        data = rng.randbytes(n)
        write_file(vol.p("f%d" % n), data)
        files["f%d" % n] = bytearray(data)
        assert os.stat(vol.p("f%d" % n)).st_size == n
        assert_same(read_file(vol.p("f%d" % n)), data, "size %d read back" % n)
    # overwrites at random offsets (inside, straddling blocks, and extending the file)
    big = files["f%d" % (MiB + 3)]
    with open(vol.p("f%d" % (MiB + 3)), "r+b") as f:
        for _ in range(60):
            off = rng.randrange(0, len(big) + 9000)
            ln = rng.choice([1, 7, 4095, 4096, 4097, 10000, rng.randrange(1, 70000)])
            chunk = rng.randbytes(ln)
            os.pwrite(f.fileno(), chunk, off)
            if off > len(big):
                big.extend(b"\0" * (off - len(big)))
            big[off:off + ln] = chunk
            roff = rng.randrange(0, len(big))
            rlen = rng.randrange(1, 20000)
            assert_same(os.pread(f.fileno(), rlen, roff), bytes(big[roff:roff + rlen]),
                        "pread(%d, %d) after writes" % (roff, rlen))
    # edge offsets within one file
    with open(vol.p("f4097"), "r+b") as f:
        m = files["f4097"]
        for off, data in [(0, b"A"), (4095, b"BC"), (4096, b"D"), (4094, b"E" * 4100), (8191, b"F")]:
            os.pwrite(f.fileno(), data, off)
            if off + len(data) > len(m):
                m.extend(b"\0" * (off + len(data) - len(m)))
            m[off:off + len(data)] = data
    vol.remount()
    for name, data in files.items():
        got = read_file(vol.p(name))
        assert_same(got, bytes(data), "%s after remount" % name)
        assert os.stat(vol.p(name)).st_size == len(data)
        # on-disk contract: header + blocks, sizes computable from the plaintext size
        hdr = kmsfs_it.read_header(vol.b(name))
        assert hdr["magic"] == b"KMFS"
        assert hdr["version"] == 1
        assert hdr["cipher"] == kmsfs_it.CIPHER_ID[cipher]
        assert hdr["block_size"] == 4096
        assert hdr["file_id"] != b"\0" * 16
        assert os.stat(vol.b(name)).st_size == stored_size(len(data), cipher), \
            "backing size of %s (plaintext %d bytes) is %d, DESIGN.md §3 gives %d" % (
                name, len(data), os.stat(vol.b(name)).st_size, stored_size(len(data), cipher))
    vol.unmount()


def test_random_ops_against_model(mvol):
    """Random pwrite/pread/truncate/ftruncate sequence, compared with a bytearray model."""
    rng = random.Random(1234)
    model = bytearray()
    path = mvol.p("model.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        for step in range(400):
            op = rng.random()
            if op < 0.55:
                off = rng.randrange(0, 200 * 1024)
                ln = rng.choice([1, 2, 100, 4095, 4096, 4097, 8192, rng.randrange(1, 3 * 4096)])
                data = rng.randbytes(ln)
                assert os.pwrite(fd, data, off) == ln
                if off > len(model):
                    model.extend(b"\0" * (off - len(model)))
                model[off:off + ln] = data
            elif op < 0.85:
                off = rng.randrange(0, len(model) + 5000)
                ln = rng.randrange(0, 3 * 4096 + 10)
                assert_same(os.pread(fd, ln, off), bytes(model[off:off + ln]), "step %d pread(%d,%d)" % (step, off, ln))
            else:
                n = rng.randrange(0, 220 * 1024)
                os.ftruncate(fd, n)
                if n < len(model):
                    del model[n:]
                else:
                    model.extend(b"\0" * (n - len(model)))
            assert os.fstat(fd).st_size == len(model), "step %d: st_size %d, model %d" % (step, os.fstat(fd).st_size, len(model))
            if step % 25 == 24:
                # push dirty pages to the daemon and drop the page cache, so the next reads
                # decrypt from the backing file instead of being served by the kernel
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    assert_same(read_file(path), bytes(model), "reopen")
    mvol.remount()
    assert_same(read_file(path), bytes(model), "after remount")


def test_o_append(mvol):
    path = mvol.p("log.txt")
    write_file(path, b"start\n")
    fa = os.open(path, os.O_WRONLY | os.O_APPEND)
    fb = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        expect = b"start\n"
        for i in range(50):
            fd = fa if i % 2 == 0 else fb
            line = (b"line %d " % i) + b"x" * (i * 97 % 5000) + b"\n"
            os.lseek(fd, 0, os.SEEK_SET)  # O_APPEND must ignore the position
            os.write(fd, line)
            expect += line
            assert os.fstat(fd).st_size == len(expect)
    finally:
        os.close(fa)
        os.close(fb)
    assert_same(read_file(path), expect, "O_APPEND file")
    mvol.remount()
    assert_same(read_file(path), expect, "O_APPEND file after remount")


def test_truncate_shrink_and_grow(mvol):
    rng = random.Random(7)
    path = mvol.p("t.bin")
    data = rng.randbytes(3 * BLOCK + 100)
    write_file(path, data)
    model = bytearray(data)

    def check(what):
        assert os.stat(path).st_size == len(model), what
        assert_same(read_file(path), bytes(model), what)

    for n, what in [(5000, "shrink inside block 1"), (20000, "grow across blocks"),
                    (4096, "shrink to block boundary"), (4097, "grow by one byte"),
                    (4000, "shrink inside block 0"), (4100, "grow inside/over boundary"),
                    (0, "truncate to zero"), (3 * BLOCK + 5, "grow empty file")]:
        os.truncate(path, n)
        if n < len(model):
            del model[n:]
        else:
            model.extend(b"\0" * (n - len(model)))
        check(what)
        if n == 4097:
            refill = rng.randbytes(4097)  # so the next shrink/grow has non-zero stale bytes
            with open(path, "r+b") as f:
                f.write(refill)
            model[:] = refill
    # the zeros after a shrink+grow must not be the old bytes coming back
    write_file(path, b"\xff" * 10000)
    os.truncate(path, 4500)
    os.truncate(path, 9000)
    assert_same(read_file(path), b"\xff" * 4500 + b"\0" * 4500, "shrink then grow: grown part must read as zeros")
    mvol.remount()
    assert_same(read_file(path), b"\xff" * 4500 + b"\0" * 4500, "shrink then grow, after remount")
    assert os.stat(mvol.b("t.bin")).st_size == stored_size(9000, mvol.cipher)


def test_sparse_hole_at_10mib(mvol):
    path = mvol.p("sparse.bin")
    off = 10 * MiB
    with open(path, "wb") as f:
        f.seek(off)
        f.write(b"tail-data!")
    st = os.stat(path)
    assert st.st_size == off + 10
    assert st.st_blocks * 512 < MiB, "a 10 MiB hole should not be allocated: st_blocks=%d" % st.st_blocks
    with open(path, "rb") as f:
        pos = 0
        while pos < off:
            chunk = f.read(min(MiB, off - pos))
            assert chunk == b"\0" * len(chunk), "hole region at %d is not zeros" % pos
            pos += len(chunk)
        assert f.read() == b"tail-data!"
    mvol.remount()
    assert os.stat(path).st_size == off + 10
    assert os.stat(mvol.b("sparse.bin")).st_blocks * 512 < MiB, "backing file of a sparse file is not sparse"
    with open(path, "rb") as f:
        f.seek(off - 4)
        assert f.read() == b"\0" * 4 + b"tail-data!"


def test_fsync_and_fdatasync_reach_backing(mvol):
    path = mvol.p("durable.bin")
    data = os.urandom(5 * BLOCK + 123)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
        assert os.stat(mvol.b("durable.bin")).st_size == stored_size(len(data), mvol.cipher), \
            "after fsync the backing file does not hold all blocks"
        os.pwrite(fd, b"more", len(data))
        os.fdatasync(fd)
        assert os.stat(mvol.b("durable.bin")).st_size == stored_size(len(data) + 4, mvol.cipher), \
            "after fdatasync the backing file does not hold the appended data"
        d = os.open(mvol.mnt, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(d)
        finally:
            os.close(d)
    finally:
        os.close(fd)
    assert read_file(path) == data + b"more"


def test_mmap_read(mvol):
    data = os.urandom(3 * BLOCK + 1000)
    path = mvol.p("m.bin")
    write_file(path, data)
    mvol.remount()
    with open(path, "rb") as f:
        with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
            assert m[:] == data
            assert m[BLOCK - 3:BLOCK + 3] == data[BLOCK - 3:BLOCK + 3]


def test_mmap_shared_write(mvol):
    data = bytearray(os.urandom(3 * BLOCK + 1000))
    path = mvol.p("mw.bin")
    write_file(path, bytes(data))
    with open(path, "r+b") as f:
        with mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE) as m:
            for off, patch in [(0, b"HEAD"), (BLOCK - 2, b"SPAN"), (2 * BLOCK + 17, b"MID" * 100),
                               (len(data) - 5, b"TAIL!")]:
                m[off:off + len(patch)] = patch
                data[off:off + len(patch)] = patch
            m.flush()
    assert_same(read_file(path), bytes(data), "read() after msync")
    mvol.remount()
    assert_same(read_file(path), bytes(data), "read() after msync and remount")


def _fallocate_or_fail(fd, mode, off, ln, what):
    try:
        kmsfs_it.fallocate(fd, mode, off, ln)
    except OSError as e:
        pytest.fail("fallocate(%s) failed: %s (errno %s)" % (what, e.strerror, errno.errorcode.get(e.errno)))


def test_fallocate_modes(mvol):
    path = mvol.p("fa.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _fallocate_or_fail(fd, 0, 0, 10000, "mode 0")
        assert os.fstat(fd).st_size == 10000, "fallocate mode 0 must extend the size"
        assert os.pread(fd, 20000, 0) == b"\0" * 10000
        _fallocate_or_fail(fd, kmsfs_it.FALLOC_FL_KEEP_SIZE, 10000, 50000, "KEEP_SIZE")
        assert os.fstat(fd).st_size == 10000, "FALLOC_FL_KEEP_SIZE must not change the size"
        assert os.pread(fd, 20000, 0) == b"\0" * 10000
    finally:
        os.close(fd)

    rng = random.Random(99)
    for mode, name in [(kmsfs_it.FALLOC_FL_PUNCH_HOLE | kmsfs_it.FALLOC_FL_KEEP_SIZE, "PUNCH_HOLE|KEEP_SIZE"),
                       (kmsfs_it.FALLOC_FL_ZERO_RANGE, "ZERO_RANGE")]:
        p = mvol.p("fa-%s.bin" % name.replace("|", "-"))
        data = bytearray(rng.randbytes(6 * BLOCK + 300))
        write_file(p, bytes(data))
        ranges = [(1000, 3 * BLOCK + 500),   # partial, full, full, partial blocks
                  (5 * BLOCK, BLOCK),         # exactly one aligned block
                  (6 * BLOCK + 10, 20)]       # inside the short last block
        fd = os.open(p, os.O_RDWR)
        try:
            for off, ln in ranges:
                _fallocate_or_fail(fd, mode, off, ln, name)
                data[off:off + ln] = b"\0" * ln
            assert os.fstat(fd).st_size == len(data), "%s changed the file size" % name
            assert_same(os.pread(fd, len(data) + 10, 0), bytes(data), "%s: zeroed ranges, rest intact" % name)
        finally:
            os.close(fd)
        mvol.remount()
        assert_same(read_file(p), bytes(data), "%s after remount" % name)


def test_seek_data_seek_hole(mvol):
    path = mvol.p("holes.bin")
    a = os.urandom(BLOCK)
    b = os.urandom(BLOCK)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, a, 0)
        os.pwrite(fd, b, MiB)
        os.fsync(fd)
        size = MiB + BLOCK
        assert os.fstat(fd).st_size == size
        assert os.lseek(fd, 0, os.SEEK_DATA) == 0
        h = os.lseek(fd, 0, os.SEEK_HOLE)
        assert BLOCK <= h < MiB, "SEEK_HOLE from 0 returned %d; expected a hole between 4096 and 1 MiB" % h
        d = os.lseek(fd, 64 * 1024, os.SEEK_DATA)
        assert 64 * 1024 < d <= MiB, "SEEK_DATA from 64 KiB returned %d; expected (64 KiB, 1 MiB]" % d
        h2 = os.lseek(fd, MiB, os.SEEK_HOLE)
        assert h2 == size, "SEEK_HOLE inside the last data block returned %d, expected EOF %d" % (h2, size)
        with pytest.raises(OSError) as ei:
            os.lseek(fd, size + 10, os.SEEK_DATA)
        assert ei.value.errno == errno.ENXIO
        assert os.pread(fd, BLOCK, 0) == a
        assert os.pread(fd, BLOCK, MiB) == b
        assert os.pread(fd, 100, 500 * 1024) == b"\0" * 100
    finally:
        os.close(fd)


def test_large_file_64mib(mvol):
    path = mvol.p("big.bin")
    seed = hashlib.sha256(b"kmsfs-big").digest()
    h = hashlib.sha256()
    chunks = []
    blob = os.urandom(4 * MiB)
    with open(path, "wb", buffering=0) as f:
        for i in range(64):
            c = blob[(i * 65537) % (3 * MiB):][:MiB]
            c = seed[:4] + i.to_bytes(4, "little") + c[8:]
            chunks.append(hashlib.sha256(c).digest())
            h.update(c)
            assert f.write(c) == MiB
        os.fsync(f.fileno())
    want = h.hexdigest()
    assert os.stat(path).st_size == 64 * MiB
    assert kmsfs_it.sha256_file(path) == want
    mvol.remount()
    assert os.stat(path).st_size == 64 * MiB
    assert os.stat(mvol.b("big.bin")).st_size == stored_size(64 * MiB, mvol.cipher)
    assert kmsfs_it.sha256_file(path) == want, "64 MiB file differs after remount"


def test_concurrent_writers_different_files(mvol):
    n_threads, size, step = 6, 4 * MiB, 65536 + 13
    errors = []
    contents = {}

    def worker(i):
        try:
            rng = random.Random(i)
            data = rng.randbytes(size)
            contents[i] = data
            with open(mvol.p("c%d.bin" % i), "wb") as f:
                for off in range(0, size, step):
                    f.write(data[off:off + step])
            with open(mvol.p("c%d.bin" % i), "rb") as f:
                if f.read() != data:
                    errors.append("thread %d read back different data" % i)
        except Exception as e:  # noqa: BLE001
            errors.append("thread %d: %r" % (i, e))

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors
    mvol.remount()
    for i, data in contents.items():
        assert_same(read_file(mvol.p("c%d.bin" % i)), data, "c%d.bin after remount" % i)


def test_concurrent_writers_same_file_disjoint_ranges(mvol):
    """Threads write disjoint, block-unaligned ranges of one file: blocks shared between two
    writers must not lose either write (read-modify-write of a block must be serialised)."""
    path = mvol.p("shared.bin")
    n_threads, piece, rounds = 4, 1500, 200
    total = n_threads * piece * rounds
    with open(path, "wb") as f:
        f.truncate(total)
    expect = bytearray(total)
    errors = []

    def worker(i):
        try:
            fd = os.open(path, os.O_WRONLY)
            try:
                for r in range(rounds):
                    off = (r * n_threads + i) * piece
                    data = bytes([(i * 31 + r) % 251 + 1]) * piece
                    os.pwrite(fd, data, off)
            finally:
                os.close(fd)
        except Exception as e:  # noqa: BLE001
            errors.append("thread %d: %r" % (i, e))

    for i in range(n_threads):
        for r in range(rounds):
            off = (r * n_threads + i) * piece
            expect[off:off + piece] = bytes([(i * 31 + r) % 251 + 1]) * piece
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors
    assert_same(read_file(path), bytes(expect), "concurrent disjoint writes")
    mvol.remount()
    assert_same(read_file(path), bytes(expect), "concurrent disjoint writes after remount")


def test_stat_size_without_decrypting(mvol, audit):
    """st_size is right for every size right after a remount, and stat/readdir make no
    key-service call (no Decrypt in the audit log)."""
    sizes = SIZES + [5 * BLOCK - 1, 7 * MiB + 4097]
    for n in sizes:
        with open(mvol.p("s%d" % n), "wb") as f:
            if n:
                f.seek(n - 1)
                f.write(b"z")
    mvol.remount()
    audit.mark()
    for n in sizes:
        assert os.stat(mvol.p("s%d" % n)).st_size == n, "st_size of a %d-byte file" % n
    listed = {e.name: e.stat().st_size for e in os.scandir(mvol.mnt)}
    for n in sizes:
        assert listed["s%d" % n] == n
    time.sleep(0.5)
    dec = [r for r in audit.records() if r.get("eventName") in ("Decrypt", "GenerateDataKey")]
    assert not dec, "stat/readdir caused key-service calls:\n" + audit.dump()


def test_concurrent_reader_and_writer_never_see_eio_or_garbage(mvol):
    """One thread keeps rewriting a region (each pass fills it with one byte value); readers
    reading the same region (cache dropped) may see a mix of passes, but never an error and never
    a byte that no pass wrote."""
    path = mvol.p("rw-race.bin")
    size = 64 * BLOCK + 123
    write_file(path, b"\x01" * size)
    stop = threading.Event()
    errors = []
    passes = [0]

    def writer():
        try:
            fd = os.open(path, os.O_WRONLY)
            try:
                v = 1
                while not stop.is_set() and v < 200:
                    v += 1
                    off = 0
                    while off < size:
                        ln = min(size - off, 3 * BLOCK + 555)
                        os.pwrite(fd, bytes([v]) * ln, off)
                        off += ln
                    if v % 5 == 0:
                        os.fsync(fd)
                    passes[0] = v
            finally:
                os.close(fd)
        except Exception as e:  # noqa: BLE001
            errors.append("writer: %r" % e)

    def reader(i):
        rng = random.Random(i)
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                for _ in range(300):
                    if stop.is_set():
                        break
                    off = rng.randrange(0, size)
                    data = os.pread(fd, rng.randrange(1, 3 * BLOCK), off)
                    hi = passes[0] + 1
                    bad = [b for b in set(data) if b == 0 or b > max(hi, 1) + 1]
                    if bad:
                        errors.append("reader %d: bytes %r at offset %d that no writer pass wrote" % (i, bad[:5], off))
                        return
                    if rng.random() < 0.2:
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        except Exception as e:  # noqa: BLE001
            errors.append("reader %d: %r" % (i, e))

    ts = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    for t in ts:
        t.start()
    for t in ts[1:]:
        t.join(120)
    stop.set()
    ts[0].join(120)
    assert not errors, errors[:5]
    final = passes[0]
    assert read_file(path) == bytes([final]) * size
    mvol.remount()
    assert read_file(path) == bytes([final]) * size


def test_o_trunc_o_excl_and_umask(mvol):
    p = mvol.p("ot")
    write_file(p, os.urandom(3 * BLOCK + 5))
    fd = os.open(p, os.O_RDWR | os.O_TRUNC)
    try:
        assert os.fstat(fd).st_size == 0
        assert os.pread(fd, 100, 0) == b""
        os.pwrite(fd, b"new", 5000)
    finally:
        os.close(fd)
    assert read_file(p) == b"\0" * 5000 + b"new", "O_TRUNC left old bytes behind"
    with pytest.raises(FileExistsError):
        os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    old = os.umask(0o027)
    try:
        fd = os.open(mvol.p("um"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        os.close(fd)
    finally:
        os.umask(old)
    assert os.stat(mvol.p("um")).st_mode & 0o777 == 0o640
    mvol.remount()
    assert read_file(p) == b"\0" * 5000 + b"new"


def test_replace_by_rename_while_reader_open(mvol):
    """The editor/atomic-save pattern: a reader's open fd keeps the old content after
    write-tmp + fsync + rename over the file; new opens see the new content."""
    target = mvol.p("doc.txt")
    old = os.urandom(3 * BLOCK + 10)
    new = os.urandom(2 * BLOCK + 99)
    write_file(target, old)
    with open(target, "rb") as reader:
        first = reader.read(100)
        tmp = mvol.p(".doc.txt.tmp")
        with open(tmp, "wb") as f:
            f.write(new)
            os.fsync(f.fileno())
        os.rename(tmp, target)
        rest = reader.read()
        assert first + rest == old, "an open fd must keep reading the replaced file's content"
    assert read_file(target) == new
    mvol.remount()
    assert read_file(target) == new
    assert sorted(os.listdir(mvol.mnt)) == ["doc.txt"]


def test_fsx_style_random_ops_with_remounts(mvol):
    """fsx-like: thousands of random write/read/truncate/punch/zero-range/mmap ops on one file,
    checked against a model, with cache drops and remounts along the way."""
    rng = random.Random(20260101)
    path = mvol.p("fsx.bin")
    model = bytearray()
    maxlen = 300 * 1024
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    log = []

    def check_read(off, ln, what):
        got = os.pread(fd, ln, off)
        want = bytes(model[off:off + ln])
        if got != want:
            raise AssertionError("%s: pread(%d, %d) differs at +%d; last ops: %s" % (
                what, off, ln, first_diff(got, want), log[-8:]))

    try:
        for step in range(2500):
            r = rng.random()
            if r < 0.30:
                off = rng.randrange(0, maxlen)
                ln = rng.randrange(1, 40000)
                data = rng.randbytes(ln)
                os.pwrite(fd, data, off)
                if off > len(model):
                    model.extend(b"\0" * (off - len(model)))
                model[off:off + ln] = data
                log.append(("write", off, ln))
            elif r < 0.55:
                off = rng.randrange(0, len(model) + 100)
                check_read(off, rng.randrange(1, 40000), "step %d" % step)
            elif r < 0.65:
                n = rng.randrange(0, maxlen)
                os.ftruncate(fd, n)
                model[n:] = b""
                model.extend(b"\0" * (n - len(model)))
                log.append(("truncate", n))
            elif r < 0.72 and len(model) > 0:
                off = rng.randrange(0, len(model))
                ln = rng.randrange(1, 30000)
                mode = rng.choice([kmsfs_it.FALLOC_FL_PUNCH_HOLE | kmsfs_it.FALLOC_FL_KEEP_SIZE,
                                   kmsfs_it.FALLOC_FL_ZERO_RANGE, kmsfs_it.FALLOC_FL_ZERO_RANGE | kmsfs_it.FALLOC_FL_KEEP_SIZE])
                _fallocate_or_fail(fd, mode, off, ln, "mode %#x" % mode)
                end = off + ln
                if not mode & kmsfs_it.FALLOC_FL_KEEP_SIZE and end > len(model):
                    model.extend(b"\0" * (end - len(model)))
                stop = min(end, len(model))
                model[off:stop] = b"\0" * (stop - off)
                log.append(("falloc", mode, off, ln))
            elif r < 0.80 and len(model) > 0:
                with mmap.mmap(fd, len(model), flags=mmap.MAP_SHARED,
                               prot=mmap.PROT_READ | mmap.PROT_WRITE) as m:
                    off = rng.randrange(0, len(model))
                    ln = min(rng.randrange(1, 20000), len(model) - off)
                    if rng.random() < 0.5:
                        data = rng.randbytes(ln)
                        m[off:off + ln] = data
                        model[off:off + ln] = data
                        m.flush()
                        log.append(("mmapwrite", off, ln))
                    else:
                        assert m[off:off + ln] == bytes(model[off:off + ln]), "mmap read at step %d" % step
            elif r < 0.93:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                log.append(("dropcache",))
            else:
                assert os.fstat(fd).st_size == len(model), "st_size at step %d" % step
            if step % 800 == 799:
                os.close(fd)
                fd = -1
                mvol.remount()
                fd = os.open(path, os.O_RDWR)
                log.append(("remount",))
                check_read(0, len(model) + 10, "after remount at step %d" % step)
    finally:
        if fd >= 0:
            os.close(fd)
    assert_same(read_file(path), bytes(model), "final content")


def test_offsets_beyond_4gib(mvol):
    """64-bit offsets: data at 5 GiB + 1 and at 4 GiB - 1 (a block straddling 2^32) reads back;
    the file stays sparse."""
    path = mvol.p("huge-sparse")
    spots = [((4 << 30) - 1, b"straddles-4GiB"), ((5 << 30) + 1, b"at-5GiB+1")]
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        for off, data in spots:
            os.pwrite(fd, data, off)
        os.fsync(fd)
        assert os.fstat(fd).st_size == (5 << 30) + 1 + len(b"at-5GiB+1")
    finally:
        os.close(fd)
    mvol.remount()
    fd = os.open(path, os.O_RDONLY)
    try:
        for off, data in spots:
            assert os.pread(fd, len(data) + 4, off - 2) == b"\0\0" + data + (b"\0\0" if off < (5 << 30) else b""), off
        assert os.pread(fd, 10, 3 << 30) == b"\0" * 10
    finally:
        os.close(fd)
    assert os.stat(mvol.b("huge-sparse")).st_blocks * 512 < (4 << 20), "backing of a sparse 5 GiB file is not sparse"


def test_o_direct_io(mvol):
    """O_DIRECT (databases, qemu cache=none): aligned direct reads and writes work and agree
    with buffered reads."""
    path = mvol.p("direct.bin")
    write_file(path, b"\xaa" * (4 * BLOCK))
    buf = mmap.mmap(-1, 2 * BLOCK)  # page aligned
    data = os.urandom(2 * BLOCK)
    buf[:] = data
    try:
        fd = os.open(path, os.O_RDWR | os.O_DIRECT)
    except OSError as e:
        pytest.fail("open(O_DIRECT) failed: %s" % e)
    try:
        assert os.pwritev(fd, [buf], BLOCK) == 2 * BLOCK
        rbuf = mmap.mmap(-1, 4 * BLOCK)
        assert os.preadv(fd, [rbuf], 0) == 4 * BLOCK
        assert rbuf[:] == b"\xaa" * BLOCK + data + b"\xaa" * BLOCK
    finally:
        os.close(fd)
    assert read_file(path) == b"\xaa" * BLOCK + data + b"\xaa" * BLOCK
    mvol.remount()
    assert read_file(path) == b"\xaa" * BLOCK + data + b"\xaa" * BLOCK


def test_st_blocks_and_sparse_copy(mvol):
    """du sees real usage (st_blocks covers the data), and cp --sparse=always keeps holes."""
    dense = mvol.p("dense")
    write_file(dense, os.urandom(MiB + 3))
    os.sync()
    assert os.stat(dense).st_blocks * 512 >= MiB, "st_blocks of a 1 MiB file: %d" % os.stat(dense).st_blocks
    sparse = mvol.p("sp")
    with open(sparse, "wb") as f:
        f.write(b"head")
        f.seek(20 * MiB)
        f.write(b"tail")
    r = __import__("subprocess").run(["cp", "--sparse=always", sparse, mvol.p("sp-copy")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert os.stat(mvol.p("sp-copy")).st_size == 20 * MiB + 4
    assert os.stat(mvol.b("sp-copy")).st_blocks * 512 < 2 * MiB, "cp --sparse=always produced a dense backing file"
    with open(mvol.p("sp-copy"), "rb") as f:
        assert f.read(4) == b"head"
        f.seek(20 * MiB - 2)
        assert f.read() == b"\0\0tail"


def test_parallel_first_opens_of_the_same_files(mvol):
    """After a remount (no key cached), 8 threads open and read the same files at the same
    moment: every read succeeds with the right content."""
    contents = {}
    for i in range(20):
        contents["p%02d" % i] = os.urandom(5000 + i * 777)
        write_file(mvol.p("p%02d" % i), contents["p%02d" % i])
    mvol.remount()
    errors = []
    barrier = threading.Barrier(8)

    def worker(t):
        try:
            for name, data in contents.items():
                barrier.wait(30)
                got = read_file(mvol.p(name))
                if got != data:
                    errors.append("thread %d: %s differs" % (t, name))
        except Exception as e:  # noqa: BLE001
            errors.append("thread %d: %r" % (t, e))
            barrier.abort()

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors[:5]


def test_racing_writes_truncates_never_corrupt_the_file(mvol):
    """Threads race writes, truncates, fallocates and reads on one file. The result is some
    interleaving, but no call fails with EIO and the file stays readable, also after a remount
    (every stored block still authenticates)."""
    path = mvol.p("chaos.bin")
    write_file(path, os.urandom(100000))
    errors = []
    stop = time.monotonic() + 4

    def worker(i):
        rng = random.Random(i)
        try:
            fd = os.open(path, os.O_RDWR)
            try:
                while time.monotonic() < stop:
                    r = rng.random()
                    if r < 0.45:
                        os.pwrite(fd, rng.randbytes(rng.randrange(1, 9000)), rng.randrange(0, 120000))
                    elif r < 0.6:
                        os.ftruncate(fd, rng.randrange(0, 120000))
                    elif r < 0.7:
                        kmsfs_it.fallocate(fd, kmsfs_it.FALLOC_FL_PUNCH_HOLE | kmsfs_it.FALLOC_FL_KEEP_SIZE,
                                           rng.randrange(0, 100000), rng.randrange(1, 9000))
                    elif r < 0.75:
                        os.fsync(fd)
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    else:
                        os.pread(fd, rng.randrange(1, 20000), rng.randrange(0, 120000))
            finally:
                os.close(fd)
        except OSError as e:
            errors.append("thread %d: %s" % (i, e))

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors[:5]
    size = os.stat(path).st_size
    assert len(read_file(path)) == size
    mvol.remount()
    assert os.stat(path).st_size == size
    try:
        data = read_file(path)
    except OSError as e:
        pytest.fail("after racing writes/truncates and a remount the file is unreadable: %s" % e)
    assert len(data) == size
