"""Helpers for the kmsfs integration tests (imported by conftest.py and the tests).

Everything here drives the real `kmsfs` binary: init, mount, key management, unmount,
and reads the backing directory and the audit log the way a user or an auditor would.
Only the Python standard library is used.
"""
import ctypes
import ctypes.util
import errno
import json
import os
import re
import signal
import struct
import subprocess
import time

PASSPHRASE = "correct horse battery staple (kmsfs integration)"
HEADER_SIZE = 32
BLOCK = 4096
TAG = 16
NONCE = {"aes-256-gcm": 12, "xchacha20-poly1305": 24}
CIPHER_ID = {"aes-256-gcm": 1, "xchacha20-poly1305": 2}
ARN_RE = re.compile(r"arn:aws:kms:[a-z0-9-]+:\d{12}:key/[0-9a-fA-F-]{36}")
UUID_RE = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]

AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10


def write_file(path, data):
    """Write a whole file through the mount (or anywhere)."""
    with open(path, "wb") as f:
        f.write(data)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def renameat2(old, new, flags):
    if _libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), old)


def fallocate(fd, mode, offset, length):
    if _libc.fallocate(fd, mode, offset, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def stored_size(plain_size, cipher="aes-256-gcm"):
    """Backing-file size for a plaintext size, per DESIGN.md section 3 (format 1)."""
    ov = NONCE[cipher] + TAG
    full, rem = divmod(plain_size, BLOCK)
    return HEADER_SIZE + full * (BLOCK + ov) + ((rem + ov) if rem else 0)


def stored_block_offset(index, cipher="aes-256-gcm"):
    return HEADER_SIZE + index * (BLOCK + NONCE[cipher] + TAG)


def parse_header(raw):
    assert len(raw) >= HEADER_SIZE, "backing header shorter than 32 bytes: %r" % raw
    magic, version, cipher, bsize, reserved = struct.unpack(">4sHHII", raw[:16])
    return {"magic": magic, "version": version, "cipher": cipher, "block_size": bsize,
            "reserved": reserved, "file_id": raw[16:32]}


def read_header(path):
    with open(path, "rb") as f:
        return parse_header(f.read(HEADER_SIZE))


def norm_id(s):
    return str(s).replace("-", "").lower()


# Mount point paths are compared as strings (os.path.abspath): realpath() would lstat the mount
# point, i.e. send a FUSE request, and hang on a hung daemon (the watchdog relies on this).
def is_mounted(path):
    path = os.path.abspath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            mp = parts[4].replace("\\040", " ")
            if mp == path:
                return True
    return False


def mount_fstype(path):
    path = os.path.abspath(path)
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4] == path:
                sep = parts.index("-")
                found = parts[sep + 1]
    return found


def wait_for(pred, timeout=10.0, interval=0.05):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            return v
        time.sleep(interval)


def daemon_pids(kmsfs_bin, mountpoint):
    """Pids of kmsfs processes that have MOUNTPOINT on their command line."""
    real_bin = os.path.realpath(kmsfs_bin)
    mp = os.path.abspath(mountpoint)
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            exe = os.readlink("/proc/%s/exe" % d)
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if exe.endswith(" (deleted)"):
            exe = exe[: -len(" (deleted)")]
        if exe != real_bin:
            continue
        if any(os.path.normpath(a) == mp for a in argv if a.startswith("/")):
            pids.append(int(d))
    return pids


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read().rsplit(")", 1)[1].split()[0]
        return st != "Z"
    except OSError:
        return False


def sha256_file(path, chunk=1 << 20):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def xattr_or_none(path, name):
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError as e:
        if e.errno == errno.ENODATA:
            return None
        raise


class CmdResult:
    def __init__(self, args, rc, out, err):
        self.args, self.rc, self.out, self.err = args, rc, out, err

    def __repr__(self):
        return "CmdResult(args=%r, rc=%r,\n stdout=%r,\n stderr=%r)" % (self.args, self.rc, self.out[-3000:], self.err[-3000:])


class Kmsfs:
    """Session context: the binary, the environment, one key store."""

    def __init__(self, binary, base, env):
        self.bin = binary
        self.base = base
        self.env = env
        self.keystore = os.path.join(base, "keystore")
        self.passfile = os.path.join(base, "passphrase")
        self.mounts = set()      # mountpoints we mounted and have not unmounted yet
        self.daemons = set()     # daemon pids we saw

    # -- running the CLI ------------------------------------------------------------
    def run(self, *args, check=True, timeout=120, env=None, input=None, binary=None):
        argv = [binary or self.bin] + [str(a) for a in args]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                               env=env or self.env, input=input if input is not None else "")
            r = CmdResult(argv, p.returncode, p.stdout, p.stderr)
        except subprocess.TimeoutExpired as e:
            def s(x):
                return x.decode(errors="replace") if isinstance(x, bytes) else (x or "")
            r = CmdResult(argv, None, s(e.stdout),
                          s(e.stderr) + "\n[test harness: command did not finish within %d s; "
                          "for `mount`: did the daemon keep stdout/stderr open?]" % timeout)
        if check and r.rc != 0:
            raise AssertionError("command failed: %r" % r)
        return r

    def store_args(self):
        return ["--keystore", self.keystore, "--passfile", self.passfile]

    def key(self, *args, check=True):
        return self.run("key", *args, *self.store_args(), check=check)

    def create_key(self, description="kmsfs-it", alias=None):
        args = ["create", "--description", description]
        if alias:
            args += ["--alias", alias]
        r = self.key(*args)
        m = ARN_RE.search(r.out) or UUID_RE.search(r.out)
        assert m, "`kmsfs key create` printed no key id/ARN: %r" % r
        return m.group(0)

    def describe(self, key):
        return self.key("describe", key).out

    def key_state(self, key):
        """KeyState from `kmsfs key describe` (AWS-shaped JSON, or a KeyState: line)."""
        out = self.describe(key)
        try:
            doc = json.loads(out)
            md = doc.get("KeyMetadata", doc)
            if "KeyState" in md:
                return md["KeyState"]
        except ValueError:
            pass
        m = re.search(r"(?i)\bstate\W+(Enabled|Disabled|PendingDeletion)\b", out)
        assert m, "cannot find the key state in `kmsfs key describe` output: %r" % out
        return m.group(1)

    # -- volumes ----------------------------------------------------------------------
    def new_volume(self, name, cipher=None, key=None):
        root = os.path.join(self.base, "vols", name)
        n = 0
        while os.path.exists(root + ("" if n == 0 else "-%d" % n)):
            n += 1
        root = root + ("" if n == 0 else "-%d" % n)
        cipherdir = os.path.join(root, "cipher")
        mnt = os.path.join(root, "mnt")
        os.makedirs(cipherdir)
        os.makedirs(mnt)
        args = ["init"] + self.store_args()
        if cipher:
            args += ["--cipher", cipher]
        if key:
            args += ["--key", key]
        args.append(cipherdir)
        r = self.run(*args)
        assert os.path.isfile(os.path.join(cipherdir, "kmsfs.conf")), \
            "init did not write kmsfs.conf: %r" % r
        return Volume(self, root, cipherdir, mnt, cipher or "aes-256-gcm", key)

    def track_mount(self, mnt):
        mnt = os.path.abspath(mnt)
        self.mounts.add(mnt)
        for pid in daemon_pids(self.bin, mnt):
            self.daemons.add(pid)

    def unmount(self, mnt, wait_daemon=True):
        """fusermount3 -u with retries, lazy unmount as the last resort. Returns a list of
        problems (empty when the unmount was clean)."""
        mnt = os.path.abspath(mnt)
        problems = []
        pids = daemon_pids(self.bin, mnt)
        if is_mounted(mnt):
            ok = False
            last = None
            for _ in range(20):
                p = subprocess.run(["fusermount3", "-u", mnt], capture_output=True, text=True)
                if p.returncode == 0 or not is_mounted(mnt):
                    ok = True
                    break
                last = p.stderr
                time.sleep(0.25)
            if not ok:
                problems.append("fusermount3 -u %s kept failing (%s); used lazy unmount" % (mnt, last))
                subprocess.run(["fusermount3", "-u", "-z", mnt], capture_output=True)
        self.mounts.discard(mnt)
        if wait_daemon:
            for pid in pids:
                if not wait_for(lambda: not pid_alive(pid), timeout=15):
                    problems.append("daemon pid %d still running 15 s after unmount; killed" % pid)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                self.daemons.discard(pid)
        return problems

    def kill_daemons(self):
        """Watchdog: SIGKILL the daemons we started, so a hung FUSE request returns ENOTCONN."""
        for mnt in list(self.mounts):
            for pid in daemon_pids(self.bin, mnt):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


class Volume:
    def __init__(self, ctx, root, cipherdir, mnt, cipher, key):
        self.ctx = ctx
        self.root = root
        self.cipherdir = cipherdir
        self.mnt = mnt
        self.cipher = cipher
        self.key = key
        self.mount_args = []

    def p(self, *parts):
        return os.path.join(self.mnt, *parts)

    def b(self, *parts):
        return os.path.join(self.cipherdir, *parts)

    @property
    def conf_text(self):
        with open(self.b("kmsfs.conf")) as f:
            return f.read()

    def mount(self, *extra, check=True, store_args=True):
        args = ["mount"] + (self.ctx.store_args() if store_args else []) + [str(a) for a in extra]
        args += [self.cipherdir, self.mnt]
        r = self.ctx.run(*args, check=False, timeout=60)
        if r.rc == 0 or is_mounted(self.mnt):
            self.ctx.track_mount(self.mnt)
            self.mount_args = list(extra)
        if check:
            assert r.rc == 0, "kmsfs mount failed: %r" % r
            assert is_mounted(self.mnt), "kmsfs mount returned 0 but %s is not a mount point: %r" % (self.mnt, r)
        return r

    def unmount(self):
        problems = self.ctx.unmount(self.mnt)
        assert not problems, "; ".join(problems)

    def remount(self, *extra):
        self.unmount()
        self.mount(*(extra or self.mount_args))

    def daemon_pids(self):
        return daemon_pids(self.ctx.bin, self.mnt)

    def file_id(self, rel):
        return read_header(self.b(rel))["file_id"].hex()

    def volume_id_in_conf(self, vid):
        return norm_id(vid) in norm_id(self.conf_text)


class AuditLog:
    """JSON Lines audit log reader that only looks at records written after mark()."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.mark()

    def mark(self):
        try:
            self.offset = os.path.getsize(self.path)
        except OSError:
            self.offset = 0

    def records(self, since_mark=True):
        try:
            with open(self.path, "rb") as f:
                if since_mark:
                    f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        out = []
        for ln in data.decode("utf-8", errors="replace").splitlines():
            if not ln.strip():
                continue
            try:
                out.append(json.loads(ln))
            except ValueError:
                raise AssertionError("audit log %s has a line that is not JSON: %r" % (self.path, ln[:500]))
        return out

    def wait(self, pred, timeout=5.0):
        """Records (since mark) that satisfy pred, waiting up to timeout for one to appear."""
        found = []
        end = time.monotonic() + timeout
        while True:
            found = [r for r in self.records() if pred(r)]
            if found or time.monotonic() > end:
                return found
            time.sleep(0.1)

    def dump(self, n=30):
        recs = self.records()
        return "\n".join(json.dumps(r, sort_keys=True) for r in recs[-n:]) or "(no records since mark)"


def rec_get(rec, *path, default=None):
    cur = rec
    for k in path:
        if not isinstance(cur, dict) or k not in cur:
            return default
        cur = cur[k]
    return cur


def rec_path(rec):
    return rec_get(rec, "additionalEventData", "path")


def rec_mentions_file(rec, rel, file_id_hex=None):
    """True if the record names the file by path (additionalEventData.path) or file id."""
    p = rec_path(rec)
    if isinstance(p, str) and (p == rel or p.rstrip("/").endswith("/" + rel.lstrip("/")) or p == "/" + rel.lstrip("/")):
        return True
    if file_id_hex:
        ctx = rec_get(rec, "requestParameters", "encryptionContext") or {}
        if norm_id(ctx.get("kmsfs:file", "")) == norm_id(file_id_hex):
            return True
    return False


def run_as(uid, gid, script, env=None, timeout=60):
    """Run a Python snippet as another uid (no supplementary groups); returns parsed JSON
    printed by the snippet on its last stdout line."""
    p = subprocess.run(["/usr/bin/python3", "-c", script], capture_output=True, text=True,
                       user=uid, group=gid, extra_groups=[], timeout=timeout, env=env,
                       cwd="/")
    assert p.returncode == 0, "child as uid %d failed: rc=%d\n%s\n%s" % (uid, p.returncode, p.stdout, p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


CHILD_PRELUDE = r'''
import errno, json, os, sys
res = {}
def attempt(name, fn):
    try:
        v = fn()
        res[name] = ["ok", v]
    except OSError as e:
        res[name] = ["err", errno.errorcode.get(e.errno, str(e.errno))]
def rd(p):
    with open(p, "rb") as f:
        return f.read().decode("latin-1")
def wr(p, data, mode="r+b"):
    with open(p, mode) as f:
        f.write(data.encode())
    return True
'''
