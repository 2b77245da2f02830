"""kmsfs's audit trail: -o audit_log=DIR/ writes kmsfs-STAMP.jsonl files sealed by signed
digests (audit_digest_period=2 here), which `kmsfs audit verify` checks and `kmsfs audit show`
reads; a plain audit_log=FILE is still one file without digests.
"""
import json
import os
import re
import shutil
import stat
import time

import kmsfs_it

PERIOD = 2


def wait_next_period():
    time.sleep(PERIOD - time.time() % PERIOD + 0.3)


def verdicts(out):
    found = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+): (valid|modified|missing|out of order|invalid signature|"
                     r"not in any digest|not yet digested|chain problem)(?: - .*)?$", line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def logs_of(d):
    return sorted(f for f in os.listdir(d) if f.startswith("kmsfs-") and f.endswith(".jsonl"))


def trail_dir(kmsfs, vol):
    return os.path.join(vol.root, "trail")


def mount_with_trail(vol, d):
    vol.mount("-o", "audit_log=%s/,audit_digest_period=%d" % (d, PERIOD))


def write_across_periods(vol):
    """Files made and read in three digest periods; returns their names."""
    names = []
    for n in range(3):
        wait_next_period()
        name = "f%d.txt" % n
        kmsfs_it.write_file(vol.p(name), b"period %d\n" % n)
        assert kmsfs_it.read_file(vol.p(name)) == b"period %d\n" % n
        names.append(name)
    return names


def test_trail_verifies_and_tampering_is_caught(kmsfs, vol, tmp_path):
    d = trail_dir(kmsfs, vol)
    mount_with_trail(vol, d)
    write_across_periods(vol)
    vol.unmount()                        # the shutdown digest seals the last file

    logs = logs_of(d)
    assert len(logs) >= 3, logs
    for f in logs:
        assert stat.S_IMODE(os.stat(os.path.join(d, f)).st_mode) == 0o400
    key = os.path.join(kmsfs.keystore, "audit-digest.key")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert os.path.isfile(os.path.join(d, "digest-public-key.pem"))
    r = kmsfs.run("audit", "verify", d)
    found = verdicts(r.out)
    assert all(found[f] == "valid" for f in logs), r.out
    assert re.search(r" 0 findings$", r.out.strip()), r.out

    # an edited record, a deleted log file, a deleted digest: each caught, exit 1
    copy = str(tmp_path / "edited")
    shutil.copytree(d, copy)
    victim = os.path.join(copy, logs[1])
    os.chmod(victim, 0o600)
    text = open(victim).read()
    assert '"readOnly":' in text
    open(victim, "w").write(text.replace('"readOnly":', '"readOnly" :', 1))
    r = kmsfs.run("audit", "verify", copy, check=False)
    assert r.rc == 1 and verdicts(r.out)[logs[1]] == "modified", r

    copy = str(tmp_path / "file-deleted")
    shutil.copytree(d, copy)
    os.unlink(os.path.join(copy, logs[0]))
    r = kmsfs.run("audit", "verify", copy, check=False)
    assert r.rc == 1 and verdicts(r.out)[logs[0]] == "missing", r

    copy = str(tmp_path / "digest-deleted")
    shutil.copytree(d, copy)
    digests = sorted(f for f in os.listdir(os.path.join(copy, "digests")) if f.endswith(".json"))
    middle = [n for n in digests
              if json.load(open(os.path.join(copy, "digests", n)))["logFiles"]][1]
    os.unlink(os.path.join(copy, "digests", middle))
    r = kmsfs.run("audit", "verify", copy, check=False)
    assert r.rc == 1 and verdicts(r.out)["digests/" + middle] == "missing", r


def test_show_filters_fs_records(kmsfs, vol):
    d = trail_dir(kmsfs, vol)
    mount_with_trail(vol, d)
    names = write_across_periods(vol)
    vol.unmount()
    everything = kmsfs.run("audit", "show", d).out.splitlines()
    created = kmsfs.run("audit", "show", d, "--event", "GenerateDataKey").out.splitlines()
    assert len(created) == len(names), created
    for name, line in zip(names, created):
        assert "file=%s" % name in line and "uid:0" in line and "error=-" in line
    one = kmsfs.run("audit", "show", d, "--file", names[1]).out.splitlines()
    assert one and all("file=%s" % names[1] in line for line in one)
    mine = kmsfs.run("audit", "show", d, "--principal", "uid:0").out.splitlines()
    assert mine == everything
    assert kmsfs.run("audit", "show", d, "--principal", "uid:4242").out == ""
    assert kmsfs.run("audit", "show", d, "--errors").out == ""


def test_key_command_appends_and_mount_digests(kmsfs, vol):
    """kmsfs key --audit-log DIR/ only appends (it holds no signing key): its record is
    "not yet digested" until the next mount seals it."""
    d = trail_dir(kmsfs, vol)
    mount_with_trail(vol, d)
    vol.unmount()
    kmsfs.run("key", "create", "--description", "audited", "--audit-log", d + "/",
              *kmsfs.store_args())
    r = kmsfs.run("audit", "verify", d)
    pending = [f for f, status in verdicts(r.out).items() if status == "not yet digested"]
    assert len(pending) == 1 and r.rc == 0, r
    wait_next_period()
    mount_with_trail(vol, d)
    vol.unmount()
    r = kmsfs.run("audit", "verify", d)
    assert verdicts(r.out)[pending[0]] == "valid", r.out
    assert "not yet digested" not in verdicts(r.out).values(), r.out
    created = kmsfs.run("audit", "show", d, "--event", "CreateKey").out.splitlines()
    assert len(created) == 1


def test_plain_file_log_is_unchanged(kmsfs, vol):
    log = os.path.join(vol.root, "plain-audit.log")
    vol.mount("-o", "audit_log=%s" % log)
    kmsfs_it.write_file(vol.p("x"), b"x")
    vol.unmount()
    assert os.path.isfile(log)
    assert not os.path.exists(os.path.join(vol.root, "digests"))
    shown = kmsfs.run("audit", "show", log, "--event", "GenerateDataKey").out.splitlines()
    assert len(shown) == 1 and "file=x" in shown[0]


def test_bad_digest_period_is_refused(kmsfs, vol):
    r = vol.mount("-o", "audit_log=%s/,audit_digest_period=0" % trail_dir(kmsfs, vol), check=False)
    assert r.rc != 0 and "audit digest period" in r.err
