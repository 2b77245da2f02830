"""The ways users start, stop and administer kmsfs: mount(8) with -t fuse.kmsfs and fstab,
SIGTERM, `kmsfs umount`, passphrase sources, -o ro, audit log location, key CLI, --help."""
import errno
import os
import shutil
import signal
import time
import subprocess

import pytest

import kmsfs_it
from kmsfs_it import read_file, write_file
from kmsfs_it import AuditLog, rec_mentions_file


def sh(argv, env, timeout=60):
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    return kmsfs_it.CmdResult(argv, p.returncode, p.stdout, p.stderr)


STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _check_mounted_volume(vol, kmsfs, name):
    assert kmsfs_it.is_mounted(vol.mnt)
    assert (kmsfs_it.mount_fstype(vol.mnt) or "").startswith("fuse"), kmsfs_it.mount_fstype(vol.mnt)
    write_file(vol.p(name), b"hello from " + name.encode())
    assert read_file(vol.p(name)) == b"hello from " + name.encode()


def _kmsfs_umount(vol, kmsfs):
    pids = vol.daemon_pids()
    r = kmsfs.run("umount", vol.mnt, check=False)
    assert r.rc == 0, "kmsfs umount failed: %r" % r
    assert not kmsfs_it.is_mounted(vol.mnt)
    kmsfs.mounts.discard(os.path.abspath(vol.mnt))
    for pid in pids:
        assert kmsfs_it.wait_for(lambda: not kmsfs_it.pid_alive(pid), 10), "daemon %d did not exit after umount" % pid


def test_mount_t_fuse_kmsfs_and_kmsfs_umount(vol, kmsfs):
    """`mount -t fuse.kmsfs CIPHERDIR MNT -o keystore=,passfile=,audit_log=,key_cache_ttl=`.
    mount(8) resets PATH to the standard one before running /sbin/mount.fuse3, which runs
    `kmsfs CIPHERDIR MNT -o ...` through /bin/sh. When kmsfs is installed on the standard PATH the
    test goes through mount(8); otherwise it runs /sbin/mount.fuse3 itself (the exact command
    mount(8) would run) with the build directory first in PATH."""
    audit_file = os.path.join(vol.root, "custom-audit.jsonl")
    opts = "keystore=%s,passfile=%s,audit_log=%s,key_cache_ttl=0" % (kmsfs.keystore, kmsfs.passfile, audit_file)
    installed = shutil.which("kmsfs", path=STD_PATH)
    if installed and os.path.realpath(installed) == os.path.realpath(kmsfs.bin):
        argv = ["mount", "-t", "fuse.kmsfs", vol.cipherdir, vol.mnt, "-o", opts]
    else:
        argv = ["/sbin/mount.fuse3", vol.cipherdir, vol.mnt, "-t", "fuse.kmsfs", "-o", "rw," + opts]
    r = sh(argv, kmsfs.env)
    assert r.rc == 0, "%s failed: %r" % (argv[0], r)
    kmsfs.track_mount(vol.mnt)
    assert kmsfs_it.mount_fstype(vol.mnt) == "fuse.kmsfs", kmsfs_it.mount_fstype(vol.mnt)
    _check_mounted_volume(vol, kmsfs, "via-mount8")
    log = AuditLog(audit_file)
    log.offset = 0
    recs = log.wait(lambda x: x.get("eventName") == "GenerateDataKey"
                    and rec_mentions_file(x, "via-mount8", vol.file_id("via-mount8")))
    assert recs, "-o audit_log=FILE: no GenerateDataKey record in %s:\n%s" % (audit_file, log.dump())
    _kmsfs_umount(vol, kmsfs)
    assert os.path.exists(vol.b("via-mount8"))
    r = kmsfs.run("umount", vol.mnt, check=False)
    assert r.rc != 0, "kmsfs umount of a directory that is not mounted should fail: %r" % r


def test_mount8_with_program_path_source(vol, kmsfs):
    """`mount -t fuse 'ABS/kmsfs#CIPHERDIR' MNT -o ...`: real mount(8) → mount.fuse3 → kmsfs,
    with the options mount(8) adds (rw,dev,suid)."""
    src = "%s#%s" % (kmsfs.bin, vol.cipherdir)
    r = sh(["mount", "-t", "fuse", src, vol.mnt, "-o", "keystore=%s,passfile=%s" % (kmsfs.keystore, kmsfs.passfile)],
           kmsfs.env)
    assert r.rc == 0, "mount -t fuse PROG#CIPHERDIR failed: %r" % r
    kmsfs.track_mount(vol.mnt)
    _check_mounted_volume(vol, kmsfs, "via-prog-source")
    _kmsfs_umount(vol, kmsfs)


def test_fstab_line_with_mount_T(vol, kmsfs):
    """An fstab line, mounted with `mount -T FSTAB MNT` (mount(8) fills in the rest)."""
    fstab = os.path.join(vol.root, "fstab")
    installed = shutil.which("kmsfs", path=STD_PATH)
    if installed and os.path.realpath(installed) == os.path.realpath(kmsfs.bin):
        line = "%s %s fuse.kmsfs keystore=%s,passfile=%s,noauto 0 0\n"
        line = line % (vol.cipherdir, vol.mnt, kmsfs.keystore, kmsfs.passfile)
    else:  # kmsfs not installed on mount(8)'s PATH: name the program in the source field
        line = "%s#%s %s fuse keystore=%s,passfile=%s,noauto 0 0\n"
        line = line % (kmsfs.bin, vol.cipherdir, vol.mnt, kmsfs.keystore, kmsfs.passfile)
    with open(fstab, "w") as f:
        f.write("# kmsfs test fstab\n" + line)
    r = sh(["mount", "-T", fstab, vol.mnt], kmsfs.env)
    assert r.rc == 0, "mount -T fstab MNT failed (%s): %r" % (line.strip(), r)
    kmsfs.track_mount(vol.mnt)
    _check_mounted_volume(vol, kmsfs, "fstab-file")
    r = sh(["fusermount3", "-u", vol.mnt], kmsfs.env)
    assert r.rc == 0, r
    kmsfs.mounts.discard(os.path.abspath(vol.mnt))
    assert not kmsfs_it.is_mounted(vol.mnt)


def test_sigterm_to_daemon_unmounts_cleanly(vol, kmsfs):
    vol.mount()
    data = os.urandom(200000)
    write_file(vol.p("before-term"), data)  # no fsync: the daemon must flush on SIGTERM
    pids = vol.daemon_pids()
    assert len(pids) == 1, "expected one kmsfs daemon for %s, found %r" % (vol.mnt, pids)
    os.kill(pids[0], signal.SIGTERM)
    assert kmsfs_it.wait_for(lambda: not kmsfs_it.pid_alive(pids[0]), 15), "daemon ignored SIGTERM"
    assert kmsfs_it.wait_for(lambda: not kmsfs_it.is_mounted(vol.mnt), 5), "SIGTERM left the mount point mounted"
    kmsfs.mounts.discard(os.path.abspath(vol.mnt))
    vol.mount()
    assert read_file(vol.p("before-term")) == data
    vol.unmount()


def test_foreground_mount_and_sigterm(vol, kmsfs):
    p = subprocess.Popen([kmsfs.bin, "mount", "-f"] + kmsfs.store_args() + [vol.cipherdir, vol.mnt],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=kmsfs.env, text=True)
    try:
        kmsfs_it.wait_for(lambda: kmsfs_it.is_mounted(vol.mnt) or p.poll() is not None, 20)
        assert kmsfs_it.is_mounted(vol.mnt), "kmsfs mount -f did not mount (rc=%r, stderr=%r)" % (
            p.poll(), p.stderr.read() if p.poll() is not None else "")
        kmsfs.track_mount(vol.mnt)
        assert p.poll() is None, "kmsfs mount -f must stay in the foreground"
        write_file(vol.p("fg"), b"foreground")
        assert read_file(vol.p("fg")) == b"foreground"
        p.send_signal(signal.SIGTERM)
        rc = p.wait(20)
        assert rc == 0, "foreground daemon exited %d on SIGTERM; stderr: %s" % (rc, p.stderr.read())
        assert not kmsfs_it.is_mounted(vol.mnt)
        kmsfs.mounts.discard(os.path.abspath(vol.mnt))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()


def test_passphrase_sources(vol, kmsfs):
    """--extpass CMD, env KMSFS_PASSPHRASE, and -o keystore=,passfile= all unlock the store."""
    r = kmsfs.run("mount", "--keystore", kmsfs.keystore, "--extpass", "cat " + kmsfs.passfile,
                  vol.cipherdir, vol.mnt, check=False, timeout=60)
    assert r.rc == 0 and kmsfs_it.is_mounted(vol.mnt), "--extpass: %r" % r
    kmsfs.track_mount(vol.mnt)
    write_file(vol.p("x"), b"x")
    vol.unmount()
    env = dict(kmsfs.env, KMSFS_PASSPHRASE=kmsfs_it.PASSPHRASE)
    r = kmsfs.run("mount", "--keystore", kmsfs.keystore, vol.cipherdir, vol.mnt, check=False, env=env, timeout=60)
    assert r.rc == 0 and kmsfs_it.is_mounted(vol.mnt), "KMSFS_PASSPHRASE: %r" % r
    kmsfs.track_mount(vol.mnt)
    assert read_file(vol.p("x")) == b"x"
    vol.unmount()
    r = kmsfs.run("mount", "-o", "keystore=%s,passfile=%s" % (kmsfs.keystore, kmsfs.passfile),
                  vol.cipherdir, vol.mnt, check=False, timeout=60)
    assert r.rc == 0 and kmsfs_it.is_mounted(vol.mnt), "-o keystore=,passfile=: %r" % r
    kmsfs.track_mount(vol.mnt)
    assert read_file(vol.p("x")) == b"x"
    vol.unmount()


def test_read_only_mount(vol):
    vol.mount()
    write_file(vol.p("ro-file"), b"readable")
    vol.unmount()
    vol.mount("-o", "ro")
    assert read_file(vol.p("ro-file")) == b"readable"
    for fn in (lambda: open(vol.p("ro-file"), "r+b"), lambda: open(vol.p("new"), "wb"),
               lambda: os.mkdir(vol.p("d")), lambda: os.unlink(vol.p("ro-file"))):
        with pytest.raises(OSError) as ei:
            fn()
        assert ei.value.errno == errno.EROFS, ei.value
    vol.unmount()


def test_audit_log_option_and_default(vol, kmsfs, audit):
    custom = os.path.join(vol.root, "audit-opt.jsonl")
    vol.mount("--audit-log", custom)
    write_file(vol.p("a"), b"a")
    vol.unmount()
    vol.mount("--audit-log", custom)
    assert read_file(vol.p("a")) == b"a"
    log = AuditLog(custom)
    log.offset = 0
    assert log.wait(lambda r: r.get("eventName") == "Decrypt" and rec_mentions_file(r, "a", vol.file_id("a"))), \
        "--audit-log FILE has no Decrypt record:\n" + log.dump()
    vol.unmount()
    vol.mount()
    audit.mark()
    assert read_file(vol.p("a")) == b"a"
    assert audit.wait(lambda r: r.get("eventName") == "Decrypt" and rec_mentions_file(r, "a", vol.file_id("a"))), \
        "default audit log KEYSTORE/audit.log has no Decrypt record:\n" + audit.dump()
    vol.unmount()


def test_mount_errors(vol, kmsfs):
    empty = os.path.join(vol.root, "not-a-volume")
    os.makedirs(empty)
    r = kmsfs.run("mount", *kmsfs.store_args(), empty, vol.mnt, check=False, timeout=60)
    assert r.rc != 0 and r.err.strip(), "mount of a directory without kmsfs.conf: %r" % r
    assert not kmsfs_it.is_mounted(vol.mnt)
    r = kmsfs.run("mount", *kmsfs.store_args(), vol.cipherdir, os.path.join(vol.root, "no-such-mnt"),
                  check=False, timeout=60)
    assert r.rc != 0 and r.err.strip(), "mount on a missing mount point: %r" % r


def test_init_refuses_existing_volume_and_bad_cipher(vol, kmsfs):
    before = read_file(vol.b("kmsfs.conf"))
    r = kmsfs.run("init", *kmsfs.store_args(), vol.cipherdir, check=False)
    assert r.rc != 0, "init over an existing volume must refuse: %r" % r
    assert read_file(vol.b("kmsfs.conf")) == before, "re-init changed kmsfs.conf"
    d = os.path.join(vol.root, "badcipher")
    os.makedirs(d)
    r = kmsfs.run("init", *kmsfs.store_args(), "--cipher", "rot13", d, check=False)
    assert r.rc != 0 and not os.path.exists(os.path.join(d, "kmsfs.conf")), r


def test_init_refuses_fs_without_user_xattrs(kmsfs):
    d = os.path.join(kmsfs.base, "ramfs-cipher")
    os.makedirs(d)
    p = subprocess.run(["mount", "-t", "ramfs", "kmsfs-it-ramfs", d], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("cannot mount a ramfs (a filesystem without user xattrs) here: " + p.stderr.strip())
    try:
        probe = os.path.join(d, "probe")
        open(probe, "w").close()
        try:
            os.setxattr(probe, "user.probe", b"1")
            pytest.skip("this kernel's ramfs supports user xattrs; no xattr-less filesystem available")
        except OSError:
            pass
        os.unlink(probe)
        r = kmsfs.run("init", *kmsfs.store_args(), d, check=False)
        assert r.rc != 0, "init on a filesystem without user xattrs succeeded: %r" % r
        msg = (r.err + r.out).lower()
        assert "xattr" in msg or "extended attribute" in msg, "message should say why (xattrs): %r" % r
        assert not os.path.exists(os.path.join(d, "kmsfs.conf"))
    finally:
        subprocess.run(["umount", d], capture_output=True)


def test_key_cli_lifecycle(kmsfs):
    name = "alias/it-life-%d" % os.getpid()
    key = kmsfs.create_key("lifecycle description", alias=name)
    uuid = kmsfs_it.UUID_RE.search(key).group(0).lower()
    listing = kmsfs.key("list").out.lower()
    assert uuid in listing, "key list does not show the new key:\n" + listing
    d = kmsfs.describe(name)
    assert uuid in d.lower() and "lifecycle description" in d, d
    assert kmsfs.key_state(name) == "Enabled"
    second = name + "-second"
    kmsfs.key("alias", second, key)
    assert uuid in kmsfs.describe(second).lower()
    kmsfs.key("disable", key)
    assert kmsfs.key_state(key) == "Disabled"
    kmsfs.key("enable", name)
    assert kmsfs.key_state(key) == "Enabled"
    kmsfs.key("rotate", key)
    assert kmsfs.key("describe", "alias/does-not-exist-%d" % os.getpid(), check=False).rc != 0
    assert kmsfs.key("describe", "00000000-0000-4000-8000-000000000000", check=False).rc != 0
    assert kmsfs.key("disable", "alias/nope-%d" % os.getpid(), check=False).rc != 0
    arn = "arn:aws:kms:local:000000000000:key/" + uuid
    assert uuid in kmsfs.describe(arn).lower()
    r = kmsfs.key("create", "--alias", name, check=False)
    assert r.rc != 0, "`key create --alias` with an alias that already exists succeeded: %r" % r
    assert uuid in kmsfs.describe(name).lower(), "the existing alias was moved to another key"


def test_rotation_keeps_old_files_readable(kmsfs):
    key = kmsfs.create_key("rotate-test")
    v = kmsfs.new_volume("rotate", key=key)
    v.mount("--key-cache-ttl", "0")
    write_file(v.p("old"), b"before rotation")
    kmsfs.key("rotate", key)
    write_file(v.p("new"), b"after rotation")
    v.remount()
    assert read_file(v.p("old")) == b"before rotation"
    assert read_file(v.p("new")) == b"after rotation"
    kmsfs.key("rotate", key)
    v.remount()
    assert read_file(v.p("old")) == b"before rotation"
    assert read_file(v.p("new")) == b"after rotation"
    v.unmount()


@pytest.mark.parametrize("sub", ["init", "mount", "umount", "key", "key create", "key list", "key describe",
                                 "key alias", "key enable", "key disable", "key rotate", "key allow",
                                 "key disallow"])
def test_help_on_each_subcommand(kmsfs, sub):
    r = kmsfs.run(*sub.split(), "--help", check=False, timeout=20)
    assert r.rc == 0, "kmsfs %s --help: %r" % (sub, r)
    assert "usage" in (r.out + r.err).lower(), "kmsfs %s --help prints no usage: %r" % (sub, r)


def test_top_level_help_and_unknown_subcommand(kmsfs):
    r = kmsfs.run("--help", check=False, timeout=20)
    assert r.rc == 0 and "usage" in (r.out + r.err).lower(), r
    for sub in ("init", "mount", "umount", "key"):
        assert sub in r.out + r.err, "kmsfs --help does not mention %s: %r" % (sub, r)
    r = kmsfs.run("frobnicate", check=False, timeout=20)
    assert r.rc != 0 and r.err.strip(), "unknown subcommand: %r" % r
    r = kmsfs.run("key", "frobnicate", check=False, timeout=20)
    assert r.rc != 0 and r.err.strip(), "unknown key subcommand: %r" % r
    r = kmsfs.run(check=False, timeout=20)
    assert r.rc != 0, "kmsfs without arguments should exit non-zero: %r" % r


def test_umount_busy_keeps_mount(vol, kmsfs):
    vol.mount()
    write_file(vol.p("busy"), b"busy")
    f = open(vol.p("busy"), "rb")
    try:
        r = kmsfs.run("umount", vol.mnt, check=False)
        assert r.rc != 0, "kmsfs umount succeeded while a file was open: %r" % r
        assert kmsfs_it.is_mounted(vol.mnt)
        assert f.read() == b"busy"
    finally:
        f.close()
    r = kmsfs.run("umount", vol.mnt, check=False)
    assert r.rc == 0, r
    kmsfs.mounts.discard(os.path.abspath(vol.mnt))
    assert not kmsfs_it.is_mounted(vol.mnt)


def test_passfile_without_trailing_newline(vol, kmsfs):
    pf = os.path.join(vol.root, "pass-no-newline")
    with open(pf, "w") as f:
        f.write(kmsfs_it.PASSPHRASE)
    os.chmod(pf, 0o600)
    r = kmsfs.run("mount", "--keystore", kmsfs.keystore, "--passfile", pf, vol.cipherdir, vol.mnt,
                  check=False, timeout=60)
    assert r.rc == 0 and kmsfs_it.is_mounted(vol.mnt), "passfile without a trailing newline: %r" % r
    kmsfs.track_mount(vol.mnt)
    vol.unmount()


def test_passphrase_prompt_on_a_terminal(vol, kmsfs):
    """No --passfile/--extpass/KMSFS_PASSPHRASE: kmsfs prompts on the terminal, without echo."""
    import pty
    import select
    pid, master = pty.fork()
    if pid == 0:  # child: the terminal is the pty
        try:
            os.execve(kmsfs.bin, [kmsfs.bin, "mount", "--keystore", kmsfs.keystore, vol.cipherdir, vol.mnt],
                      kmsfs.env)
        finally:
            os._exit(127)
    out = b""
    sent = False
    deadline = time.monotonic() + 60
    status = None
    try:
        while time.monotonic() < deadline:
            rl, _, _ = select.select([master], [], [], 0.2)
            if rl:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                out += chunk
            if not sent and b"assphrase" in out:
                os.write(master, kmsfs_it.PASSPHRASE.encode() + b"\n")
                sent = True
            wpid, st = os.waitpid(pid, os.WNOHANG)
            if wpid:
                status = st
                break
        while status is None and time.monotonic() < deadline:  # pty closed: collect the exit status
            wpid, st = os.waitpid(pid, os.WNOHANG)
            if wpid:
                status = st
            else:
                time.sleep(0.05)
    finally:
        os.close(master)
    if status is None:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
        os.waitpid(pid, 0)
    assert sent, "kmsfs printed no passphrase prompt on the terminal: %r" % out
    assert status is not None and os.waitstatus_to_exitcode(status) == 0, \
        "mount after typing the passphrase: status %r, output %r" % (status, out)
    assert kmsfs_it.is_mounted(vol.mnt)
    kmsfs.track_mount(vol.mnt)
    assert kmsfs_it.PASSPHRASE.encode() not in out, "the passphrase was echoed on the terminal"
    vol.unmount()
