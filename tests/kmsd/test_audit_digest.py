"""kmsd's audit trail sealed by signed digests (digest_period = 2 s), checked with
`kmsfs audit verify`: a clean trail verifies; each way of tampering with a copy of it - an
edited, deleted or swapped line, a deleted or renamed log file, a record moved to another file,
a deleted, truncated or forged digest - is reported for the right file with the right reason
and a non-zero exit. `kmsfs audit show` filters records.

kmsfs is found beside kmsd in the build tree (build/tools/kmsfs for build/tools/kmsd/kmsd).
"""
import json
import os
import re
import shutil
import stat
import subprocess
import time

import pytest

import kmsd_it

PERIOD = 2


@pytest.fixture
def kmsfs_bin(kmsd_binary):
    path = os.path.normpath(os.path.join(os.path.dirname(kmsd_binary), "..", "kmsfs"))
    if not os.access(path, os.X_OK):
        pytest.fail("no kmsfs binary beside kmsd at %s" % path)
    return path


def audit(kmsfs_bin, *args):
    p = subprocess.run([kmsfs_bin, "audit"] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=60)
    assert "Sanitizer" not in p.stderr, p.stderr
    return p


def verdicts(out):
    """{file: (status, detail)} from verify's "FILE: STATUS - detail" lines."""
    found = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+): (valid|modified|missing|out of order|invalid signature|"
                     r"not in any digest|not yet digested|chain problem)(?: - (.*))?$", line)
        if m:
            found[m.group(1)] = (m.group(2), m.group(3) or "")
    return found


def wait_next_period():
    now = time.time()
    time.sleep(PERIOD - now % PERIOD + 0.3)


@pytest.fixture(scope="module")
def trail(kmsd_binary, kmsd_workdir):
    """A stopped kmsd's audit dir with records written in three periods, and what was asked."""
    server = kmsd_it.Kmsd(kmsd_binary, os.path.join(kmsd_workdir, "digest-trail"),
                          extra="digest_period = %d" % PERIOD)
    server.start()
    try:
        admin, bob = server.client("admin"), server.client("bob")
        wait_next_period()
        key_id = admin.create_key(Description="digested")["KeyMetadata"]["KeyId"]
        admin.encrypt(KeyId=key_id, Plaintext=b"one")
        wait_next_period()
        admin.generate_data_key(KeyId=key_id, NumberOfBytes=32)
        admin.list_keys()
        try:
            bob.create_key()
        except Exception:
            pass
        wait_next_period()
        admin.describe_key(KeyId=key_id)
        admin.list_aliases()
        records = server.audit_records()
    finally:
        server.stop()
    return {"server": server, "dir": server.audit_dir, "key_id": key_id, "records": records}


def logs_of(d):
    return sorted(f for f in os.listdir(d) if f.startswith("kmsd-") and f.endswith(".jsonl"))


def digests_of(d):
    return sorted(f for f in os.listdir(os.path.join(d, "digests")) if f.endswith(".json"))


def with_files(d):
    """Digests that name log files, oldest first, and the files each names."""
    out = []
    for name in digests_of(d):
        doc = json.load(open(os.path.join(d, "digests", name)))
        if doc["logFiles"]:
            out.append((name, [f["fileName"] for f in doc["logFiles"]]))
    return out


def tampered(trail, tmp_path, name):
    d = str(tmp_path / name)
    shutil.copytree(trail["dir"], d, symlinks=True)
    for f in logs_of(d):
        os.chmod(os.path.join(d, f), 0o600)   # the copy is ours to edit
    return d


def test_clean_trail_verifies(trail, kmsfs_bin):
    d, server = trail["dir"], trail["server"]
    logs = logs_of(d)
    assert len(logs) >= 3, logs
    assert all(re.match(r"^kmsd-\d{8}T\d{6}Z(\.\d+)?\.jsonl$", f) for f in logs)
    for f in logs:
        assert stat.S_IMODE(os.stat(os.path.join(d, f)).st_mode) == 0o400, f   # sealed
    # the signing key is beside the key store, readable by kmsd alone; only the public key is here
    key = os.path.join(server.data_dir, "audit-digest.key")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600 and os.path.getsize(key) == 32
    assert not [f for f in os.listdir(d) if f.endswith(".key")]
    pem = open(os.path.join(d, "digest-public-key.pem")).read()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n")

    # every digest names the one before it; the first names none
    docs = {n: json.load(open(os.path.join(d, "digests", n))) for n in digests_of(d)}
    names = sorted(docs)
    assert docs[names[0]]["previousDigestFileName"] is None
    for earlier, later in zip(names, names[1:]):
        assert docs[later]["previousDigestFileName"] == earlier
        sig = open(os.path.join(d, "digests", earlier + ".sig")).read().strip()
        assert docs[later]["previousDigestSignature"] == sig
        assert docs[later]["digestStartTime"] == docs[earlier]["digestEndTime"]
    for doc in docs.values():
        assert doc["digestSignatureAlgorithm"] == "Ed25519"
    listed = [f for doc in docs.values() for f in doc["logFiles"]]
    assert sorted(f["fileName"] for f in listed) == logs
    assert sum(f["recordCount"] for f in listed) == len(trail["records"])

    p = audit(kmsfs_bin, "verify", d)
    assert p.returncode == 0, p.stdout + p.stderr
    found = verdicts(p.stdout)
    for f in logs:
        assert found[f][0] == "valid"
    for n in names:
        assert found["digests/" + n][0] == "valid"
    assert re.search(r" 0 findings$", p.stdout.strip())


def test_signature_checks_with_openssl(trail, tmp_path):
    """The format is plain enough to check without kmsfs: Ed25519 over the documented message."""
    d = trail["dir"]
    names = digests_of(d)
    earlier, later = names[-2], names[-1]
    prev_sig = open(os.path.join(d, "digests", earlier + ".sig")).read().strip()
    import hashlib
    body = open(os.path.join(d, "digests", later), "rb").read()
    message = ("kmsfs-audit-digest-1\n%s\n%s\n%s\n" % (later, hashlib.sha256(body).hexdigest(),
                                                        prev_sig)).encode()
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    key = load_pem_public_key(open(os.path.join(d, "digest-public-key.pem"), "rb").read())
    sig = bytes.fromhex(open(os.path.join(d, "digests", later + ".sig")).read().strip())
    key.verify(sig, message)          # raises InvalidSignature if not
    import cryptography.exceptions
    with pytest.raises(cryptography.exceptions.InvalidSignature):
        key.verify(sig, message.replace(later.encode(), earlier.encode()))


def expect(kmsfs_bin, d, want, *args):
    """verify fails, and reports each file in want with its status (and nothing else)."""
    p = audit(kmsfs_bin, "verify", d, "--quiet", *args)
    assert p.returncode == 1, p.stdout + p.stderr
    found = verdicts(p.stdout)
    for f, status in want.items():
        assert f in found and found[f][0] == status, "%s: want %s in\n%s" % (f, status, p.stdout)
    return found


def lines(path):
    return open(path).read().splitlines(True)


def write_lines(path, ls):
    with open(path, "w") as f:
        f.writelines(ls)


def test_edited_line(trail, tmp_path, kmsfs_bin):
    d = tampered(trail, tmp_path, "edited")
    f = with_files(d)[1][1][0]
    ls = lines(os.path.join(d, f))
    ls[0] = ls[0].replace('"eventName":"GenerateDataKey"', '"eventName":"GenerateDataKeX"', 1) \
        if "GenerateDataKey" in ls[0] else ls[0].replace('"readOnly":', '"readOnly" :', 1)
    write_lines(os.path.join(d, f), ls)
    found = expect(kmsfs_bin, d, {f: "modified"})
    assert len(found) == 1


def test_deleted_line(trail, tmp_path, kmsfs_bin):
    d = tampered(trail, tmp_path, "line-deleted")
    f = with_files(d)[1][1][0]
    ls = lines(os.path.join(d, f))
    assert len(ls) >= 2
    write_lines(os.path.join(d, f), ls[1:])
    found = expect(kmsfs_bin, d, {f: "modified"})
    assert len(found) == 1 and "records" in found[f][1]


def test_swapped_lines(trail, tmp_path, kmsfs_bin):
    d = tampered(trail, tmp_path, "lines-swapped")
    f = with_files(d)[1][1][0]
    ls = lines(os.path.join(d, f))
    ls[0], ls[1] = ls[1], ls[0]
    write_lines(os.path.join(d, f), ls)
    assert len(expect(kmsfs_bin, d, {f: "modified"})) == 1


def test_deleted_log_file(trail, tmp_path, kmsfs_bin):
    d = tampered(trail, tmp_path, "file-deleted")
    f = with_files(d)[0][1][0]
    os.unlink(os.path.join(d, f))
    found = expect(kmsfs_bin, d, {f: "missing"})
    assert len(found) == 1


def test_renamed_log_files(trail, tmp_path, kmsfs_bin):
    d = tampered(trail, tmp_path, "files-renamed")
    a, b = with_files(d)[0][1][0], with_files(d)[1][1][0]
    pa, pb = os.path.join(d, a), os.path.join(d, b)
    os.rename(pa, pa + ".tmp")
    os.rename(pb, pa)
    os.rename(pa + ".tmp", pb)
    found = expect(kmsfs_bin, d, {a: "out of order", b: "out of order"})
    assert len(found) == 2 and "renamed" in found[a][1]


def test_record_moved_between_files(trail, tmp_path, kmsfs_bin):
    d = tampered(trail, tmp_path, "record-moved")
    a, b = with_files(d)[1][1][0], with_files(d)[2][1][0]
    la = lines(os.path.join(d, a))
    write_lines(os.path.join(d, a), la[:-1])
    write_lines(os.path.join(d, b), lines(os.path.join(d, b)) + la[-1:])
    found = expect(kmsfs_bin, d, {a: "modified", b: "out of order"})
    assert len(found) == 2 and "moved" in found[b][1]


def test_deleted_digest(trail, tmp_path, kmsfs_bin):
    d = tampered(trail, tmp_path, "digest-deleted")
    name, files = with_files(d)[1]
    os.unlink(os.path.join(d, "digests", name))
    os.unlink(os.path.join(d, "digests", name + ".sig"))
    found = expect(kmsfs_bin, d, {"digests/" + name: "missing", files[0]: "not in any digest"})
    assert "named as the previous digest" in found["digests/" + name][1]


def test_truncated_digest(trail, tmp_path, kmsfs_bin):
    d = tampered(trail, tmp_path, "digest-truncated")
    name, files = with_files(d)[1]
    os.truncate(os.path.join(d, "digests", name), 50)
    expect(kmsfs_bin, d, {"digests/" + name: "invalid signature", files[0]: "not in any digest"})


def test_forged_digest(trail, tmp_path, kmsfs_bin):
    """An edited file, its digest rewritten to match and signed with a key of the forger's own
    (and that key published in place of kmsd's): the recorded public key catches it."""
    d = tampered(trail, tmp_path, "forged")
    real_key = str(tmp_path / "recorded-public-key.pem")
    shutil.copy(os.path.join(d, "digest-public-key.pem"), real_key)
    name, files = with_files(d)[1]
    f = os.path.join(d, files[0])
    ls = lines(f)
    write_lines(f, ls[1:])
    import hashlib
    path = os.path.join(d, "digests", name)
    doc = json.load(open(path))
    doc["logFiles"][0]["hashValue"] = hashlib.sha256(open(f, "rb").read()).hexdigest()
    doc["logFiles"][0]["recordCount"] -= 1
    body = json.dumps(doc, indent=2).encode()
    open(path, "wb").write(body)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives import serialization
    forger = Ed25519PrivateKey.generate()
    message = ("kmsfs-audit-digest-1\n%s\n%s\n%s\n" % (name, hashlib.sha256(body).hexdigest(),
                                                        doc["previousDigestSignature"] or "")).encode()
    open(path + ".sig", "w").write(forger.sign(message).hex() + "\n")

    expect(kmsfs_bin, d, {"digests/" + name: "invalid signature"})
    open(os.path.join(d, "digest-public-key.pem"), "wb").write(forger.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    p = audit(kmsfs_bin, "verify", d)
    found = verdicts(p.stdout)
    assert p.returncode == 1 and found["digests/" + name][0] == "valid"   # the forger's key...
    assert found["digests/" + with_files(d)[0][0]][0] == "invalid signature"   # ...fails kmsd's
    found = expect(kmsfs_bin, d, {"digests/" + name: "invalid signature"}, "--public-key", real_key)


def test_newest_cut_off_needs_an_anchor(trail, tmp_path, kmsfs_bin):
    """Deleting the newest digests with their files leaves a chain that verifies: only a
    signature recorded elsewhere (--anchor) shows the cut."""
    d = tampered(trail, tmp_path, "cut-short")
    names = digests_of(d)
    anchor = open(os.path.join(d, "digests", names[-1] + ".sig")).read().strip()
    assert audit(kmsfs_bin, "verify", d, "--anchor", anchor).returncode == 0
    last_name, last_files = with_files(d)[-1]
    for n in names:
        if n >= last_name:
            os.unlink(os.path.join(d, "digests", n))
            os.unlink(os.path.join(d, "digests", n + ".sig"))
    for f in last_files:
        os.unlink(os.path.join(d, f))
    assert audit(kmsfs_bin, "verify", d).returncode == 0
    p = audit(kmsfs_bin, "verify", d, "--anchor", anchor)
    assert p.returncode == 1 and "chain problem" in p.stdout


def test_show_filters(trail, kmsfs_bin):
    d, records = trail["dir"], trail["records"]
    p = audit(kmsfs_bin, "show", d)
    assert p.returncode == 0 and len(p.stdout.splitlines()) == len(records), p.stdout
    bob_arn = trail["server"].user("bob").arn
    p = audit(kmsfs_bin, "show", d, "--principal", "bob")
    out = p.stdout.splitlines()
    assert len(out) == 1 and bob_arn in out[0] and "CreateKey" in out[0] and \
        "error=AccessDeniedException" in out[0]
    assert audit(kmsfs_bin, "show", d, "--principal", bob_arn).stdout.splitlines() == out
    assert audit(kmsfs_bin, "show", d, "--errors").stdout.splitlines() == out
    gdk = audit(kmsfs_bin, "show", d, "--event", "GenerateDataKey").stdout.splitlines()
    assert len(gdk) == 1 and "key=%s" % trail["key_id"] in gdk[0]
    times = sorted(r["eventTime"] for r in records)
    later = audit(kmsfs_bin, "show", d, "--since", times[-1]).stdout.splitlines()
    assert len(later) == sum(1 for t in times if t >= times[-1]) and later
    earlier = audit(kmsfs_bin, "show", d, "--until", times[-1]).stdout.splitlines()
    assert len(earlier) + len(later) == len(records)
    assert audit(kmsfs_bin, "show", d, "--since", "1d").stdout.splitlines() != []
    assert audit(kmsfs_bin, "show", d, "--since", "2999-01-01").stdout == ""
    assert audit(kmsfs_bin, "show", d, "--since", "yesterday").returncode == 2


def test_restart_seals_and_continues(kmsd_factory, kmsfs_bin):
    """A clean stop seals what was written (the shutdown digest); a restart in the same period
    goes on in kmsd-STAMP.2.jsonl, and the chain goes on across the restart."""
    server = kmsd_factory(extra="digest_period = 3600")
    server.post("ListKeys", {})
    server.stop()
    first = logs_of(server.audit_dir)
    assert len(first) == 1
    server.start()
    server.post("ListKeys", {})
    server.stop()
    logs = logs_of(server.audit_dir)
    if len(logs) == 2 and not logs[0].endswith(".2.jsonl") and not logs[1].endswith(".2.jsonl"):
        pass   # the hour turned between the two runs: a new period's file
    else:
        assert len(logs) == 2 and any(f.endswith(".2.jsonl") for f in logs), logs
    p = audit(kmsfs_bin, "verify", server.audit_dir)
    assert p.returncode == 0, p.stdout
    # the trail's first digest (written when it began), then one at each stop
    docs = [json.load(open(os.path.join(server.audit_dir, "digests", n)))
            for n in digests_of(server.audit_dir)]
    assert len(docs) == 3 and docs[0]["logFiles"] == []
    assert [len(doc["logFiles"]) for doc in docs[1:]] == [1, 1]
    assert all(doc["logFilePeriodSeconds"] == 3600 for doc in docs)


def test_digest_period_config(kmsd_factory):
    server = kmsd_factory(start=False, extra="digest_period = 0")
    p = server.run("--config", server.config_path)
    assert p.returncode != 0 and "digest_period" in p.stderr
