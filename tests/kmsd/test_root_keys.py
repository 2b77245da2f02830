"""kmsd's root key sources: a passphrase file, a key file, and a PKCS#11 token (SoftHSM), each
creating a key store on first start and reopening it - with the keys still working - on the next.
"""
import os
import shutil
import subprocess

import pytest

import kmsd_it

SOFTHSM_MODULES = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]


def _round_trip_across_restart(server):
    kms = server.client()
    key_id = kms.create_key(Description="root key test")["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"sealed under the root key")["CiphertextBlob"]
    server.stop()
    server.start()
    assert server.client().decrypt(CiphertextBlob=blob)["Plaintext"] == b"sealed under the root key"


def test_passphrase_file_root_key(kmsd_factory):
    import boto3  # noqa: F401
    _round_trip_across_restart(kmsd_factory())


def test_key_file_root_key(kmsd_factory):
    import boto3  # noqa: F401
    server = kmsd_factory(start=False, root_key="keyfile:./root.key")
    keyfile = os.path.join(server.dir, "root.key")
    with open(keyfile, "wb") as f:
        f.write(os.urandom(32))
    os.chmod(keyfile, 0o644)
    proc = server.run("--config", server.config_path, "--check-config")
    assert proc.returncode == 1 and "key file" in proc.stderr and keyfile in proc.stderr
    os.chmod(keyfile, 0o600)
    server.start()
    _round_trip_across_restart(server)


def test_pkcs11_root_key_softhsm(kmsd_factory):
    import boto3  # noqa: F401
    util = shutil.which("softhsm2-util")
    module = next((m for m in SOFTHSM_MODULES if os.path.exists(m)), None)
    if not util or not module:
        pytest.fail("SoftHSM is not installed (apt-get install softhsm2)")
    env = kmsd_it.kmsd_env()
    server = kmsd_factory(start=False, env=env)
    hsm = os.path.join(server.dir, "softhsm")
    os.makedirs(os.path.join(hsm, "tokens"))
    conf = os.path.join(hsm, "softhsm2.conf")
    with open(conf, "w") as f:
        f.write("directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n" % hsm)
    server.env["SOFTHSM2_CONF"] = conf
    subprocess.run([util, "--init-token", "--free", "--label", "kmsd", "--pin", "1234", "--so-pin", "5678"],
                   check=True, capture_output=True, env=server.env)
    pin = os.path.join(hsm, "pin")
    with open(pin, "w") as f:
        f.write("1234")
    os.chmod(pin, 0o600)
    server.root_key = "pkcs11:token=kmsd;object=kmsd-root?pin-source=file:%s" % pin
    server.write_config(extra="pkcs11_module = %s" % module)
    server.start()
    _round_trip_across_restart(server)
    # the store without the token's key is useless: a wrong PIN cannot open it
    server.stop()
    with open(pin, "w") as f:
        f.write("9999")
    proc = server.run("--config", server.config_path)
    assert proc.returncode == 1 and "listening" not in proc.stderr
    assert "9999" not in proc.stderr
