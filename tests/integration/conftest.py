"""pytest fixtures for the kmsfs FUSE integration tests.

Run by hand:
    /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration --kmsfs=build/tools/kmsfs
Needs root and /dev/fuse. Work files live under /var/tmp (a real disk, not tmpfs).
"""
import glob
import os
import re
import shutil
import sys
import tempfile
import threading

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmsfs_it  # noqa: E402

DEFAULT_BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "tools", "kmsfs")
DEFAULT_TIMEOUT = 150
SLOW_TIMEOUT = 420


def pytest_addoption(parser):
    parser.addoption("--kmsfs", action="store",
                     default=os.environ.get("KMSFS_BIN", DEFAULT_BIN),
                     help="path to the kmsfs CLI binary (default: $KMSFS_BIN or build/tools/kmsfs)")
    parser.addoption("--kmsfs-workdir", action="store", default=os.environ.get("KMSFS_IT_WORKDIR", "/var/tmp"),
                     help="directory (on a real disk) for key stores, cipher dirs and mount points")
    parser.addoption("--kmsfs-keep", action="store_true", default=False,
                     help="keep the work directory after the run (for debugging)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: real-project workloads (git, cmake) taking up to a few minutes")
    config.addinivalue_line("markers", "timeout(seconds): per-test watchdog limit")


@pytest.fixture(scope="session")
def kmsfs(request):
    binary = os.path.abspath(request.config.getoption("--kmsfs"))
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        pytest.fail("kmsfs binary not found or not executable: %s (pass --kmsfs PATH or set KMSFS_BIN)" % binary)
    if os.geteuid() != 0:
        pytest.skip("the kmsfs integration tests need root (FUSE mounts, allow_other, setuid children)")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("/dev/fuse does not exist on this machine")
    workdir = request.config.getoption("--kmsfs-workdir")
    base = tempfile.mkdtemp(prefix="kmsfs-it-", dir=workdir)
    os.chmod(base, 0o755)  # other uids must be able to reach the mount points
    san = os.path.join(base, "sanitizer")
    os.makedirs(san)
    env = dict(os.environ)
    for v in ("KMSFS_PASSPHRASE", "KMSFS_KEYSTORE", "KMSFS_AUDIT_LOG"):
        env.pop(v, None)
    env["PATH"] = os.path.dirname(binary) + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env["KMSFS_ARGON2_OPSLIMIT"] = "1"
    env["KMSFS_ARGON2_MEMLIMIT"] = str(8192 * 1024)
    # LeakSanitizer watches the daemon too (a leak fails the test); KMSFS_IT_DETECT_LEAKS=0 turns it off
    env["ASAN_OPTIONS"] = "log_path=%s/asan:detect_leaks=%s" % (san, "0" if os.environ.get("KMSFS_IT_DETECT_LEAKS") == "0" else "1")
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:log_path=%s/ubsan" % san
    env["LC_ALL"] = "C"
    ctx = kmsfs_it.Kmsfs(binary, base, env)
    ctx.sanitizer_dir = san
    with open(ctx.passfile, "w") as f:
        f.write(kmsfs_it.PASSPHRASE + "\n")
    os.chmod(ctx.passfile, 0o600)
    try:
        # First init creates the key store (and a key for the bootstrap volume).
        ctx.bootstrap = ctx.new_volume("bootstrap")
        assert os.path.isdir(ctx.keystore), "kmsfs init did not create the key store at %s" % ctx.keystore
        yield ctx
    finally:
        for mnt in list(ctx.mounts):
            ctx.unmount(mnt)
        if not request.config.getoption("--kmsfs-keep"):
            # never rm -rf through a mount that is still there
            if not any(kmsfs_it.is_mounted(m) for m in glob.glob(os.path.join(base, "vols", "*", "mnt"))):
                shutil.rmtree(base, ignore_errors=True)
        else:
            print("\nkmsfs integration work dir kept: %s" % base)


def _sanitizer_files(ctx):
    return set(glob.glob(os.path.join(ctx.sanitizer_dir, "*")))


@pytest.fixture(autouse=True)
def _guard(request, kmsfs):
    """Per test: a watchdog (SIGKILLs our daemons so a hung FUSE call fails instead of
    hanging the run), unmounts whatever the test left mounted, and fails the test if a
    sanitizer report appeared."""
    before = _sanitizer_files(kmsfs)
    limit = DEFAULT_TIMEOUT
    m = request.node.get_closest_marker("timeout")
    if m:
        limit = m.args[0]
    elif request.node.get_closest_marker("slow"):
        limit = SLOW_TIMEOUT
    fired = []

    def fire():
        fired.append(True)
        sys.stderr.write("\nWATCHDOG: %s exceeded %d s; killing kmsfs daemons\n" % (request.node.nodeid, limit))
        kmsfs.kill_daemons()

    t = threading.Timer(limit, fire)
    t.daemon = True
    t.start()
    mounts_before = set(kmsfs.mounts)
    yield
    problems = []
    for mnt in list(kmsfs.mounts - mounts_before):
        problems += kmsfs.unmount(mnt)
    t.cancel()  # only now: the watchdog also covers the unmounts above
    new = sorted(_sanitizer_files(kmsfs) - before)
    reports = []
    for f in new:
        try:
            with open(f, errors="replace") as fh:
                reports.append("==== %s ====\n%s" % (f, fh.read()[-20000:]))
        except OSError:
            pass
    if fired:
        pytest.fail("test exceeded its %d s watchdog; kmsfs daemons were killed (hung FUSE request?)" % limit)
    if reports:
        pytest.fail("sanitizer report(s) from kmsfs:\n" + "\n".join(reports), pytrace=False)
    if problems:
        pytest.fail("unclean unmount: " + "; ".join(problems), pytrace=False)


def _safe_name(request):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:60]


@pytest.fixture
def vol(kmsfs, request):
    """A fresh, initialised but not mounted volume (default cipher, new key)."""
    v = kmsfs.new_volume(_safe_name(request))
    yield v
    if kmsfs_it.is_mounted(v.mnt):
        v.unmount()


@pytest.fixture(params=["writeback", "no_writeback"])
def mvol(vol, request):
    """A fresh volume, mounted with default options (kernel writeback cache on), and again
    with -o no_writeback_cache, where every write(2) reaches kmsfs as it is."""
    if request.param == "writeback":
        vol.mount()
    else:
        vol.mount("-o", "no_writeback_cache")
    yield vol
    if kmsfs_it.is_mounted(vol.mnt):
        vol.unmount()


@pytest.fixture
def audit(kmsfs):
    """The key store's default audit log, marked at the start of the test."""
    return kmsfs_it.AuditLog(os.path.join(kmsfs.keystore, "audit.log"))
