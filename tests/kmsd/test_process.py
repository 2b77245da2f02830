"""kmsd as a process: command line, configuration checks (it refuses to start on anything
doubtful, with a message naming the file and the problem), signals, restarts on the same store,
IPv6 and TLS listeners.
"""
import os
import shutil
import http.client
import signal
import subprocess

import pytest

import kmsd_it


def _refused(server, *needles):
    """kmsd --check-config and a real start both exit 1 with a message containing needles."""
    for args in (("--config", server.config_path, "--check-config"), ("--config", server.config_path)):
        proc = server.run(*args)
        assert proc.returncode == 1, "kmsd %s: expected exit 1, got %d\n%s" % (args, proc.returncode, proc.stderr)
        for needle in needles:
            assert needle in proc.stderr, "message %r lacks %r" % (proc.stderr, needle)
        assert "listening" not in proc.stderr
        assert "Sanitizer" not in proc.stderr
    return proc.stderr


def test_help_and_version(kmsd_binary):
    proc = subprocess.run([kmsd_binary, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--config" in proc.stdout and "--check-config" in proc.stdout
    proc = subprocess.run([kmsd_binary, "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("kmsd ")
    proc = subprocess.run([kmsd_binary], capture_output=True, text=True)
    assert proc.returncode == 2 and "--config" in proc.stderr
    proc = subprocess.run([kmsd_binary, "--no-such-option"], capture_output=True, text=True)
    assert proc.returncode == 2


def test_check_config_ok(kmsd_factory):
    server = kmsd_factory(start=False)
    proc = server.run("--config", server.config_path, "--check-config")
    assert proc.returncode == 0, proc.stderr
    assert "configuration OK" in proc.stdout and "2 users" in proc.stdout
    assert not os.path.exists(server.data_dir), "--check-config must not create the key store"


def test_config_readable_by_others_is_refused(kmsd_factory):
    server = kmsd_factory(start=False, config_mode=0o644)
    msg = _refused(server, server.config_path, "0644", "chmod 600")
    assert "group or others" in msg
    os.chmod(server.config_path, 0o640)
    _refused(server, server.config_path, "0640")


def test_passphrase_file_readable_by_others_is_refused(kmsd_factory):
    server = kmsd_factory(start=False)
    os.chmod(server.passfile, 0o644)
    _refused(server, "passphrase file", server.passfile, "0644")


@pytest.mark.parametrize("extra, needles", [
    ("colour = blue", ['unknown key "colour"', "kmsd.conf:"]),
    ("connection_timeout = 0", ["connection_timeout = 0", "1 to 3600"]),
    ("max_connections = many", ["max_connections = many"]),
    ("threads = 4", ["threads given twice"]),
    ("max_body = 10", ["max_body"]),
    ("listen = 127.0.0.1:1", ["listen given twice"]),
    ("tls_cert = ./cert.pem", ["tls_cert and tls_key"]),
    ("create_store = perhaps", ["create_store"]),
    ("pkcs11_module = /usr/lib/softhsm/libsofthsm2.so", ["pkcs11_module"]),
])
def test_bad_kmsd_settings_are_refused(kmsd_factory, extra, needles):
    server = kmsd_factory(start=False, extra=extra)
    _refused(server, server.config_path, *needles)


@pytest.mark.parametrize("listen", ["localhost:4599", "127.0.0.1", "127.0.0.1:99999", "::1:4599",
                                    "[::1]4599", "300.1.1.1:80", ":4599"])
def test_bad_listen_is_refused(kmsd_factory, listen):
    server = kmsd_factory(start=False, listen=listen)
    _refused(server, "listen = %s" % listen)


def _rewrite(server, old, new):
    text = open(server.config_path).read()
    assert old in text
    server.write_config(text=text.replace(old, new, 1))


def test_unknown_section_is_refused(kmsd_factory):
    server = kmsd_factory(start=False)
    with open(server.config_path, "a") as f:
        f.write("\n[group admins]\nmembers = admin\n")
    _refused(server, "unknown section [group admins]")


def test_missing_required_key_is_refused(kmsd_factory):
    server = kmsd_factory(start=False)
    _rewrite(server, "region = us-east-1\n", "")
    _refused(server, "needs region")


def test_duplicate_access_key_ids_are_refused(kmsd_factory):
    users = kmsd_it.default_users()
    users["bob"].access_key_id = users["admin"].access_key_id
    server = kmsd_factory(start=False, users=users)
    _refused(server, "admin", "bob", "same access_key_id")


def test_user_problems_are_refused(kmsd_factory):
    server = kmsd_factory(start=False)
    _rewrite(server, "allow = kms:*", "allow = s3:GetObject")
    _refused(server, "s3:GetObject", "user admin")
    server = kmsd_factory(start=False)
    with open(server.config_path, "a") as f:
        f.write("\n[user carol]\naccess_key_id = AKIACAROL00000000001\n")
    _refused(server, "carol", "secret_access_key")
    server = kmsd_factory(start=False)
    with open(server.config_path, "a") as f:
        f.write("\n[user admin]\naccess_key_id = AKIAOTHER00000000001\n")
    _refused(server, "[user admin] appears twice")


def test_secret_is_never_echoed(kmsd_factory):
    server = kmsd_factory(start=False)
    secret = server.user("admin").secret_access_key
    _rewrite(server, secret, secret + " with spaces")
    msg = _refused(server, "secret_access_key")
    assert secret not in msg


def test_no_users_is_refused(kmsd_factory):
    server = kmsd_factory(start=False, users={})
    _refused(server, "no [user NAME] sections")


def test_missing_config_file(kmsd_binary, tmp_path):
    proc = subprocess.run([kmsd_binary, "--config", str(tmp_path / "nope.conf")], capture_output=True, text=True)
    assert proc.returncode == 1 and "nope.conf" in proc.stderr


def test_max_body_setting(kmsd_factory):
    server = kmsd_factory(extra="max_body = 2048")
    r = server.post("CreateKey", {"Description": "d" * 3000})
    assert r.status == 413 and "2048" in r.json["message"]
    r = server.post("CreateKey", {"Description": "d" * 100})
    assert r.status == 200, r


def test_idle_connections_time_out(kmsd_factory):
    import socket
    import time
    server = kmsd_factory(extra="connection_timeout = 1")
    s = socket.create_connection((server.host, server.port), timeout=10)
    try:
        time.sleep(3)
        assert s.recv(1) == b"", "an idle connection must be closed after connection_timeout"
    except ConnectionResetError:
        pass
    finally:
        s.close()


def test_sigterm_and_sigint_stop_cleanly(kmsd_factory):
    for sig in (signal.SIGTERM, signal.SIGINT):
        server = kmsd_factory()
        assert server.post("ListKeys", {}).status == 200
        server.stop(sig)   # raises unless exit 0 and no sanitizer report
        assert "stopped" in server.stderr()


def test_stop_with_an_idle_keepalive_connection_open(kmsd_factory):
    server = kmsd_factory()
    conn = server.connection()
    assert server.post("ListKeys", {}, conn=conn).status == 200
    server.stop()
    conn.close()


def test_restart_keeps_keys_and_wrong_passphrase_is_refused(kmsd_factory):
    server = kmsd_factory()
    assert "created a new key store" in server.stderr()
    kms = server.client()
    key_id = kms.create_key(Description="survives")["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"persist")["CiphertextBlob"]
    server.stop()

    server.start()
    kms = server.client()
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "survives"
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"persist"
    server.stop()

    with open(server.passfile, "w") as f:
        f.write("not the passphrase\n")
    proc = server.run("--config", server.config_path)
    assert proc.returncode == 1
    assert server.data_dir in proc.stderr


def test_create_store_no(kmsd_factory):
    server = kmsd_factory(start=False, extra="create_store = no")
    proc = server.run("--config", server.config_path)
    assert proc.returncode == 1 and "create_store = no" in proc.stderr
    assert not os.path.exists(os.path.join(server.data_dir, "keystore.db"))


def test_ipv6_listener(kmsd_factory):
    if not os.path.exists("/proc/net/if_inet6"):
        pytest.fail("no IPv6 on this machine")
    server = kmsd_factory(listen="[::1]:0")
    assert server.host == "::1"
    assert server.post("ListKeys", {}).status == 200


def test_tls_listener(kmsd_factory, tmp_path):
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.fail("no openssl command to make a test certificate")
    server = kmsd_factory(start=False)
    cert, key = os.path.join(server.dir, "cert.pem"), os.path.join(server.dir, "key.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    os.chmod(key, 0o644)
    server.write_config(extra="tls_cert = ./cert.pem\ntls_key = ./key.pem")
    _refused(server, "TLS private key", "0644")
    os.chmod(key, 0o600)
    server.start()
    assert "(TLS)" in server.stderr()
    endpoint = "https://127.0.0.1:%d" % server.port
    import boto3
    kms = boto3.client("kms", endpoint_url=endpoint, region_name=kmsd_it.REGION, verify=cert,
                       aws_access_key_id=server.user().access_key_id,
                       aws_secret_access_key=server.user().secret_access_key)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    assert kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=key_id, Plaintext=b"tls")["CiphertextBlob"])["Plaintext"] == b"tls"
    # plain HTTP on the TLS port is an error for that client, not a problem for kmsd
    r = kmsd_it.Response(0, {}, b"")
    try:
        r = kmsd_it.post_raw(server, b"{}", {"X-Amz-Target": "TrentService.ListKeys"})
    except (ConnectionError, http.client.HTTPException):
        pass
    assert r.status != 200
    assert server.alive()
    assert kms.list_keys()["ResponseMetadata"]["HTTPStatusCode"] == 200
