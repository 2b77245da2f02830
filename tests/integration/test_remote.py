"""kmsfs on a remote key service, end to end (issue 4): kmsd on loopback, a volume made with
`kmsfs init --key-service`, mounted as root with allow_other, and three users:

  root    the mounting user: the `default` profile (kmsd user admin, identity policy kms:*);
  65534   mapped with --map-uid to the `bob` profile (kmsd user bob: no identity policy);
  65533   not mapped: unsigned.

The mapped user reads and writes; the unsigned uid and bob get EACCES (whatever the Unix modes
say) until a grant lets bob read; revoking the grant or disabling the key denies again within
key_cache_ttl; every case is in the audit log with its errorCode. Stopping kmsd makes new opens
fail with EIO within the request timeout (no hang), and restarting it heals the mount.
"""
import os
import socket
import sys
import tempfile
import time

import boto3
import kmsfs_it
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kmsd"))
import kmsd_it  # noqa: E402  (tests/kmsd's harness: starts a real kmsd)

BOB_UID = 65534
STRANGER_UID = 65533
TTL = 2            # key_cache_ttl: the revocation latency under test
TIMEOUT_MS = 1500  # one key-service request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kmsd_binary(kmsfs_bin):
    path = os.path.join(os.path.dirname(kmsfs_bin), "kmsd", "kmsd")
    if not os.access(path, os.X_OK):
        pytest.fail("kmsd not built next to kmsfs: %s" % path)
    return path


@pytest.fixture
def remote(kmsfs):
    base = tempfile.mkdtemp(prefix="remote-", dir=kmsfs.base)
    # A fixed port: the volume records the endpoint, and kmsd must come back on it.
    server = kmsd_it.Kmsd(kmsd_binary(kmsfs.bin), os.path.join(base, "kmsd"),
                          listen="127.0.0.1:%d" % free_port())
    server.start()
    admin, bob = server.user("admin"), server.user("bob")
    creds = os.path.join(base, "aws-credentials")
    with open(creds, "w") as f:
        f.write("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                "[bob]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                % (admin.access_key_id, admin.secret_access_key,
                   bob.access_key_id, bob.secret_access_key))
    os.chmod(creds, 0o600)
    env = dict(kmsfs.env, AWS_SHARED_CREDENTIALS_FILE=creds, AWS_CONFIG_FILE="/dev/null",
               AWS_REGION=kmsd_it.REGION)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.pop(name, None)
    kms = server.client("admin")
    key_arn = kms.create_key(Description="remote volume")["KeyMetadata"]["Arn"]
    cipherdir, mnt = os.path.join(base, "cipher"), os.path.join(base, "mnt")
    os.makedirs(mnt)
    os.chmod(base, 0o755)
    os.chmod(mnt, 0o777)
    kmsfs.run("init", "--key-service", server.endpoint, "--key", key_arn, cipherdir, env=env)
    audit = os.path.join(base, "audit.log")
    ctx = type("Remote", (), {})()
    ctx.server, ctx.kms, ctx.key_arn, ctx.env = server, kms, key_arn, env
    ctx.cipherdir, ctx.mnt, ctx.audit = cipherdir, mnt, kmsfs_it.AuditLog(audit)

    def mount():
        kmsfs.run("mount", "-o", "allow_other", "--map-uid", "%d=bob" % BOB_UID,
                  "--audit-log", audit, "--key-cache-ttl", str(TTL),
                  "--key-service-timeout", str(TIMEOUT_MS), cipherdir, mnt, env=env)
        kmsfs.track_mount(mnt)
    ctx.mount = mount
    mount()
    try:
        yield ctx
    finally:
        problems = kmsfs.unmount(mnt)
        if server.alive():
            server.stop()
        assert not problems, problems


def as_user(uid, script):
    return kmsfs_it.run_as(uid, uid, kmsfs_it.CHILD_PRELUDE + script + "\nprint(json.dumps(res))\n")


def records_for(audit, principal=None, event=None, error=None, path_part=None):
    out = []
    for rec in audit.records(since_mark=False):
        if principal is not None and kmsfs_it.rec_get(rec, "userIdentity", "arn") != principal:
            continue
        if event is not None and rec.get("eventName") != event:
            continue
        if error is not None and rec.get("errorCode") != error:
            continue
        if path_part is not None and path_part not in (kmsfs_it.rec_path(rec) or ""):
            continue
        out.append(rec)
    return out


def test_remote_volume_access_control(remote):
    mnt = remote.mnt
    # The mounting user (profile default = kmsd admin) writes and reads.
    kmsfs_it.write_file(os.path.join(mnt, "shared.txt"), b"for the team\n")
    os.chmod(os.path.join(mnt, "shared.txt"), 0o666)
    os.chmod(mnt, 0o777)
    assert kmsfs_it.read_file(os.path.join(mnt, "shared.txt")) == b"for the team\n"
    assert records_for(remote.audit, principal="default", event="GenerateDataKey", path_part="shared.txt")

    # An unmapped uid is unsigned: EACCES on read and on create, whatever the modes say;
    # metadata still follows Unix permissions.
    r = as_user(STRANGER_UID, '''
attempt("read", lambda: rd("%(m)s/shared.txt"))
attempt("create", lambda: wr("%(m)s/stranger.txt", "x", "wb"))
attempt("stat", lambda: os.stat("%(m)s/shared.txt").st_size)
attempt("list", lambda: sorted(os.listdir("%(m)s")))
''' % {"m": mnt})
    assert r["read"] == ["err", "EACCES"], r
    assert r["create"] == ["err", "EACCES"], r
    assert r["stat"] == ["ok", len(b"for the team\n")], r
    assert "shared.txt" in r["list"][1], r
    assert records_for(remote.audit, event="Decrypt", error="MissingAuthenticationTokenException")

    # bob is signed but the key policy and his identity policy do not allow him.
    r = as_user(BOB_UID, 'attempt("read", lambda: rd("%s/shared.txt"))' % mnt)
    assert r["read"] == ["err", "EACCES"], r
    assert records_for(remote.audit, principal="bob", event="Decrypt", error="AccessDeniedException")

    # A grant lets bob read (and create: GenerateDataKey).
    grant = remote.kms.create_grant(KeyId=remote.key_arn,
                                    GranteePrincipal=remote.server.user("bob").arn,
                                    Operations=["Decrypt", "GenerateDataKey"])
    r = as_user(BOB_UID, '''
attempt("read", lambda: rd("%(m)s/shared.txt"))
attempt("create", lambda: wr("%(m)s/bob.txt", "from bob", "wb"))
''' % {"m": mnt})
    assert r["read"] == ["ok", "for the team\n"], r
    assert r["create"] == ["ok", True], r
    assert records_for(remote.audit, principal="bob", event="Decrypt", error=None, path_part="shared.txt")

    # Revoking the grant denies bob again within key_cache_ttl.
    remote.kms.revoke_grant(KeyId=remote.key_arn, GrantId=grant["GrantId"])
    time.sleep(TTL + 0.5)
    denied_before = len(records_for(remote.audit, principal="bob", event="Decrypt",
                                    error="AccessDeniedException"))
    r = as_user(BOB_UID, 'attempt("read", lambda: rd("%s/shared.txt"))' % mnt)
    assert r["read"] == ["err", "EACCES"], r
    assert len(records_for(remote.audit, principal="bob", event="Decrypt",
                           error="AccessDeniedException")) > denied_before

    # Disabling the key denies everyone's new opens within the same bound.
    remote.kms.disable_key(KeyId=remote.key_arn)
    time.sleep(TTL + 0.5)
    with pytest.raises(PermissionError):
        kmsfs_it.read_file(os.path.join(mnt, "shared.txt"))
    assert records_for(remote.audit, principal="default", event="Decrypt", error="DisabledException")
    remote.kms.enable_key(KeyId=remote.key_arn)
    time.sleep(TTL + 0.5)
    assert kmsfs_it.read_file(os.path.join(mnt, "shared.txt")) == b"for the team\n"


def test_key_service_outage(remote):
    mnt = remote.mnt
    kmsfs_it.write_file(os.path.join(mnt, "a.txt"), b"alpha")
    kmsfs_it.write_file(os.path.join(mnt, "b.txt"), b"beta")
    held = open(os.path.join(mnt, "a.txt"), "rb")
    try:
        time.sleep(TTL + 0.5)        # the unwrapped keys are no longer reusable
        remote.server.kill()         # kill -9: the service is gone
        started = time.monotonic()
        with pytest.raises(OSError) as e:
            kmsfs_it.read_file(os.path.join(mnt, "b.txt"))
        elapsed = time.monotonic() - started
        assert e.value.errno == 5, e.value            # EIO, not EACCES, not a hang
        # within the request timeout times the attempts, plus backoff: no hang
        assert elapsed < 4 * TIMEOUT_MS / 1000 + 5, elapsed
        assert records_for(remote.audit, event="Decrypt", error="DependencyTimeoutException")
        # A file already open keeps working.
        held.seek(0)
        assert held.read() == b"alpha"
        # The service comes back: the same mount heals by itself.
        remote.server.start()
        assert kmsfs_it.wait_for(lambda: _readable(os.path.join(mnt, "b.txt")), timeout=15)
        assert kmsfs_it.read_file(os.path.join(mnt, "b.txt")) == b"beta"
    finally:
        held.close()


def _readable(path):
    try:
        kmsfs_it.read_file(path)
        return True
    except OSError:
        return False
