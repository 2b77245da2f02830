"""kmsfs snapshot copy across key services (issue 5), like an EBS snapshot copied to another
region: two kmsd instances stand for two regions. A volume on kmsd #1 (key A) is copied to a
volume on kmsd #2 (key B); then key A is disabled and kmsd #1 stopped, and the copy, mounted
with kmsd #2 alone, reads back the same bytes, links and symlinks.

Across services there is no ReEncrypt: each data key is decrypted by kmsd #1 and encrypted by
kmsd #2 through the copying process (the summary counts them), and both services' audit trails,
as well as the copying process's own log, name every file. Within one kmsd the same copy moves
every key by ReEncrypt alone.

kmsfs is found beside kmsd in the build tree (build/tools/kmsfs for build/tools/kmsd/kmsd); the
mounts need root and /dev/fuse.
"""
import json
import os
import re
import subprocess

import pytest

import kmsd_it

MiB = 1 << 20


@pytest.fixture
def kmsfs_bin(kmsd_binary):
    path = os.path.normpath(os.path.join(os.path.dirname(kmsd_binary), "..", "kmsfs"))
    if not os.access(path, os.X_OK):
        pytest.fail("no kmsfs binary beside kmsd at %s" % path)
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.fail("kmsfs mounts need root and /dev/fuse")
    return path


class Regions:
    """Two kmsd instances, an AWS profile for each (one, two), and a kmsfs runner."""

    def __init__(self, kmsfs_bin, factory, base):
        self.bin, self.base = kmsfs_bin, base
        self.one, self.two = factory(), factory()
        creds = os.path.join(base, "aws-credentials")
        with open(creds, "w") as f:
            for name, server in (("one", self.one), ("two", self.two)):
                u = server.user("admin")
                f.write("[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                        % (name, u.access_key_id, u.secret_access_key))
        os.chmod(creds, 0o600)
        self.env = dict(kmsd_it.kmsd_env(), AWS_SHARED_CREDENTIALS_FILE=creds,
                        AWS_CONFIG_FILE="/dev/null", AWS_REGION=kmsd_it.REGION)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            self.env.pop(name, None)
        self.audit = os.path.join(base, "kmsfs-audit.log")
        self.store = os.path.join(base, "kmsfs-data")
        self.mounts = []

    def run(self, *args, check=True):
        p = subprocess.run([self.bin] + [str(a) for a in args], capture_output=True, text=True,
                           env=self.env, timeout=300)
        assert "Sanitizer" not in p.stderr, p.stderr
        if check:
            assert p.returncode == 0, "kmsfs %s: rc %d\n%s\n%s" % (args[0], p.returncode,
                                                                    p.stdout, p.stderr)
        return p

    def mount(self, cipherdir, mnt, profile):
        os.makedirs(mnt, exist_ok=True)
        self.run("mount", "--profile", profile, "--audit-log", self.audit, "--keystore", self.store,
                 cipherdir, mnt)
        self.mounts.append(mnt)

    def unmount(self, mnt):
        subprocess.run(["fusermount3", "-u", mnt], check=True)
        self.mounts.remove(mnt)

    def records(self):
        with open(self.audit) as f:
            return [json.loads(line) for line in f if line.strip()]


@pytest.fixture
def regions(kmsfs_bin, kmsd_factory, tmp_path):
    r = Regions(kmsfs_bin, kmsd_factory, str(tmp_path))
    try:
        yield r
    finally:
        for mnt in list(r.mounts):
            subprocess.run(["fusermount3", "-u", mnt])


def make_source(regions, key_arn):
    """A volume on kmsd #1 with files, a hole, a hard link and a symlink; {rel: bytes}."""
    src, mnt = os.path.join(regions.base, "src"), os.path.join(regions.base, "src-mnt")
    regions.run("init", "--key-service", regions.one.endpoint, "--key", key_arn,
                "--profile", "one", src)
    regions.mount(src, mnt, "one")
    want = {"empty": b"", "small": b"across regions\n", "big": os.urandom(MiB + 7)}
    for rel, data in want.items():
        with open(os.path.join(mnt, rel), "wb") as f:
            f.write(data)
    with open(os.path.join(mnt, "sparse.img"), "wb") as f:
        f.truncate(64 * MiB)
        f.seek(40 * MiB)
        f.write(b"data in the middle")
    os.link(os.path.join(mnt, "small"), os.path.join(mnt, "small-link"))
    os.symlink("big", os.path.join(mnt, "to-big"))
    regions.unmount(mnt)
    want["sparse.img"] = bytes(40 * MiB) + b"data in the middle" + bytes(24 * MiB - 18)
    return src, want


def read_tree(mnt):
    got = {}
    for name in ("empty", "small", "big", "sparse.img"):
        with open(os.path.join(mnt, name), "rb") as f:
            got[name] = f.read()
    return got


def file_events(server, event):
    """Successful records of event in kmsd's trail for a kmsfs file's data key (its request
    names a kmsfs:file encryption context, whatever the field: ReEncrypt has two)."""
    return [r for r in server.audit_records() if r.get("eventName") == event and
            not r.get("errorCode") and "kmsfs:file" in json.dumps(r.get("requestParameters"))]


def test_copy_to_another_key_service(regions):
    kms1, kms2 = regions.one.client("admin"), regions.two.client("admin")
    key_a = kms1.create_key(Description="region one")["KeyMetadata"]["Arn"]
    key_b = kms2.create_key(Description="region two")["KeyMetadata"]["Arn"]
    src, want = make_source(regions, key_a)
    dst = os.path.join(regions.base, "dst")
    r = regions.run("snapshot", "copy", "--profile", "one", "--audit-log", regions.audit,
                    "--keystore", regions.store, "--key-service", regions.two.endpoint,
                    "--key", key_b, "--dst-profile", "two", "--verify", "--no-progress", src, dst)
    # four files with a data key, none by ReEncrypt: each went through the copying process
    assert re.search(r"(?<![0-9])4 files \(", r.stdout), r.stdout
    assert "0 rewrapped by the key service" in r.stdout and " 4 through this process" in r.stdout, \
        r.stdout
    assert "verified 4 files" in r.stdout, r.stdout
    with open(os.path.join(dst, "kmsfs.conf")) as f:
        conf = f.read()
    assert ("key_service = %s\n" % regions.two.endpoint) in conf and key_b in conf, conf
    # kmsd #1 decrypted each file's data key, kmsd #2 encrypted it for the new volume
    decrypted, encrypted = file_events(regions.one, "Decrypt"), file_events(regions.two, "Encrypt")
    assert len({json.dumps(e["requestParameters"]["encryptionContext"]) for e in decrypted}) >= 4
    assert len(encrypted) == 4, [e["requestParameters"] for e in encrypted]
    # and the copying process's own log names each file on both sides
    recs = regions.records()
    for name in ("empty", "big", "sparse.img"):
        for event, key in (("Decrypt", key_a), ("Encrypt", key_b)):
            assert any(rec.get("eventName") == event and
                       rec.get("additionalEventData", {}).get("path") == name and
                       rec["requestParameters"].get("keyId", key) == key and not rec.get("errorCode")
                       for rec in recs), "no %s record for %s" % (event, name)
    # region one goes away: key A disabled, kmsd #1 stopped
    kms1.disable_key(KeyId=key_a)
    regions.one.stop()
    mnt = os.path.join(regions.base, "dst-mnt")
    regions.mount(dst, mnt, "two")
    try:
        assert read_tree(mnt) == want
        small, link = os.stat(os.path.join(mnt, "small")), os.stat(os.path.join(mnt, "small-link"))
        assert small.st_ino == link.st_ino
        assert os.stat(os.path.join(mnt, "small")).st_nlink == 2
        assert os.readlink(os.path.join(mnt, "to-big")) == "big"
    finally:
        regions.unmount(mnt)
    assert os.stat(os.path.join(dst, "sparse.img")).st_blocks * 512 < MiB
    assert sorted(os.listdir(dst)) == sorted(os.listdir(src))


def test_copy_within_one_kmsd_uses_reencrypt(regions):
    kms1 = regions.one.client("admin")
    key_a = kms1.create_key(Description="old key")["KeyMetadata"]["Arn"]
    key_c = kms1.create_key(Description="new key")["KeyMetadata"]["Arn"]
    src, want = make_source(regions, key_a)
    before = len(file_events(regions.one, "ReEncrypt"))
    dst = os.path.join(regions.base, "dst")
    r = regions.run("snapshot", "copy", "--profile", "one", "--audit-log", regions.audit,
                    "--keystore", regions.store, "--key", key_c, "--no-progress", src, dst)
    assert " 4 rewrapped by the key service (ReEncrypt" in r.stdout, r.stdout
    assert " 0 through this process" in r.stdout, r.stdout
    assert len(file_events(regions.one, "ReEncrypt")) - before == 4
    kms1.disable_key(KeyId=key_a)
    mnt = os.path.join(regions.base, "dst-mnt")
    regions.mount(dst, mnt, "one")
    try:
        assert read_tree(mnt) == want
    finally:
        regions.unmount(mnt)
