"""Scale: many files, many open files at once; the daemon's file descriptors and locked memory
stay bounded (no leak per file)."""
import os
import resource
import subprocess

import pytest

import kmsfs_it
from kmsfs_it import read_file, write_file


def daemon_status(vol):
    pids = vol.daemon_pids()
    assert len(pids) == 1, pids
    pid = pids[0]
    nfd = len(os.listdir("/proc/%d/fd" % pid))
    st = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            st[k] = v.strip()
    with open("/proc/%d/maps" % pid) as f:
        nmaps = sum(1 for _ in f)
    return nfd, st, nmaps


def test_many_files_bounded_daemon_resources(mvol):
    n_dirs, per_dir = 20, 600
    nfd0, _, _ = daemon_status(mvol)
    for d in range(n_dirs):
        os.mkdir(mvol.p("d%02d" % d))
        for i in range(per_dir):
            write_file(mvol.p("d%02d" % d, "f%04d" % i), b"%d/%d\n" % (d, i) * (1 + i % 7))
    nfd, st, nmaps = daemon_status(mvol)
    assert nfd < nfd0 + 256, "daemon holds %d fds after writing and closing %d files (was %d)" % (
        nfd, n_dirs * per_dir, nfd0)
    assert nmaps < 20000, "daemon has %d memory mappings after %d files" % (nmaps, n_dirs * per_dir)
    mvol.remount()
    for d in range(n_dirs):
        names = sorted(os.listdir(mvol.p("d%02d" % d)))
        assert names == ["f%04d" % i for i in range(per_dir)]
        for i in range(per_dir):
            assert read_file(mvol.p("d%02d" % d, "f%04d" % i)) == b"%d/%d\n" % (d, i) * (1 + i % 7)
    nfd, st, nmaps = daemon_status(mvol)
    assert nfd < nfd0 + 256, "daemon holds %d fds after reading %d files" % (nfd, n_dirs * per_dir)
    vmlck_kb = int(st.get("VmLck", "0 kB").split()[0])
    assert vmlck_kb < 64 * 1024, "daemon has %d kB locked after %d files were closed" % (vmlck_kb, n_dirs * per_dir)


def test_thousands_of_files_open_at_once(vol, kmsfs):
    """2500 files open at the same time (a database keeping its table files open), with the
    daemon started under the usual desktop limits (soft RLIMIT_NOFILE 1024, higher hard limit):
    the daemon has to cope (e.g. raise its soft limit), not fail with EMFILE."""
    mvol = vol
    _, hard0 = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft_for_daemon = 1024 if hard0 == resource.RLIM_INFINITY or hard0 > 1024 else hard0
    argv = [kmsfs.bin, "mount"] + kmsfs.store_args() + [vol.cipherdir, vol.mnt]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=kmsfs.env,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft_for_daemon, hard0)))
    assert p.returncode == 0, p.stderr
    kmsfs.track_mount(vol.mnt)
    n = 2500
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < n + 200:
        n = hard - 200  # this process cannot hold more; still well past the usual 1024
        if n < 1100:
            pytest.skip("RLIMIT_NOFILE hard limit %d is too low to hold 1100 files open" % hard)
    if soft < n + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n + 200, hard))
    os.mkdir(mvol.p("many"))
    fds = []
    try:
        for i in range(n):
            try:
                fds.append(os.open(mvol.p("many", "t%05d" % i), os.O_RDWR | os.O_CREAT, 0o644))
            except OSError as e:
                raise AssertionError("open of file #%d while %d are open: %s" % (i, len(fds), e))
        for i, fd in enumerate(fds):
            os.pwrite(fd, b"table %d\n" % i, 0)
        for i, fd in enumerate(fds):
            assert os.pread(fd, 100, 0) == b"table %d\n" % i
    finally:
        for fd in fds:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    mvol.unmount()
    mvol.mount()
    for i in range(0, n, 97):
        assert read_file(mvol.p("many", "t%05d" % i)) == b"table %d\n" % i
    assert kmsfs_it.is_mounted(mvol.mnt)
