"""README's first command, run as a new user would: a fresh checkout, a fresh home directory.

The command is read from README.md (between the quickstart markers) and run verbatim with /bin/sh,
so the README cannot drift from what works. The passphrase comes from KMSFS_PASSPHRASE because CI
has no terminal; everything else is the new user's defaults (key store in ~/.local/share/kmsfs).
"""
import os
import re
import shutil
import subprocess
import tempfile

import pytest

import kmsfs_it

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def quickstart_command():
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    m = re.search(r"<!-- quickstart -->\s*```sh\n(.*?)\n```\s*<!-- /quickstart -->", text, re.S)
    assert m, "README.md has no quickstart block between <!-- quickstart --> markers"
    return m.group(1).strip()


def fresh_checkout(dest):
    files = subprocess.run(["git", "-C", REPO, "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], check=True, capture_output=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = os.path.join(REPO, rel)
        if not os.path.isfile(src):
            continue
        os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, rel))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_readme_quickstart_mounts_an_encrypted_directory(kmsfs):
    base = tempfile.mkdtemp(prefix="kmsfs-readme-", dir="/var/tmp")
    home, src = os.path.join(base, "home"), os.path.join(base, "kmsfs")
    os.makedirs(home)
    fresh_checkout(src)
    env = {"HOME": home, "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "KMSFS_PASSPHRASE": "readme quickstart passphrase", "LANG": "C.UTF-8"}
    plain, cipher = os.path.join(home, "Private"), os.path.join(home, "Private.kmsfs")
    try:
        r = subprocess.run(["/bin/sh", "-c", quickstart_command()], cwd=src, env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=540)
        assert r.returncode == 0, "README quickstart failed (rc %d):\n%s\n%s" % (
            r.returncode, r.stdout.decode()[-3000:], r.stderr.decode()[-3000:])
        assert kmsfs_it.is_mounted(plain), "quickstart left nothing mounted at ~/Private"
        assert os.path.isdir(os.path.join(home, ".local", "share", "kmsfs")), \
            "key store not in the default place"
        secret = b"quickstart secret text " * 100
        with open(os.path.join(plain, "note.txt"), "wb") as f:
            f.write(secret)
        with open(os.path.join(plain, "note.txt"), "rb") as f:
            assert f.read() == secret
        with open(os.path.join(cipher, "note.txt"), "rb") as f:
            stored = f.read()
        assert stored[:4] == b"KMFS" and b"quickstart secret" not in stored
        assert sorted(os.listdir(plain)) == ["note.txt"], "kmsfs.conf must not show in the mount"
    finally:
        if kmsfs_it.is_mounted(plain):
            subprocess.run(["fusermount3", "-u", plain])
        if not kmsfs_it.is_mounted(plain):
            shutil.rmtree(base, ignore_errors=True)
