"""keyclient's remote transport (kc_remote_open) against a real kmsd, and against a scripted HTTP
server for what kmsd does not do on demand (5xx, throttling, a silent peer).

The transport is driven through tests/unit/remote_driver.c (kc_remote_driver): one JSON command a
line on its stdin, one JSON answer a line on its stdout, so kmsd can be stopped and restarted
under a keyclient that stays open. The driver is found next to the kmsd under test
(<build>/tests/unit/kc_remote_driver) or at $KC_REMOTE_DRIVER.

Principals the driver signs for: "alice" with admin's keys (allow = kms:*), "bob" with bob's (no
identity policy), "nobody" with none at all (unsigned requests).
"""
import base64
import http.server
import json
import os
import select
import shutil
import subprocess
import threading
import time

import pytest

import kmsd_it

REGION = kmsd_it.REGION
CTX = {"kmsfs:volume": "vol-1", "kmsfs:file": "file-1"}
ANSWER_TIMEOUT = 120     # seconds for one driver command (ASan builds are slow)


# ---- the driver ------------------------------------------------------------------------------

def driver_binary(kmsd_binary):
    path = os.environ.get("KC_REMOTE_DRIVER") or os.path.join(
        os.path.dirname(kmsd_binary), "..", "..", "tests", "unit", "kc_remote_driver")
    if not os.access(path, os.X_OK):
        pytest.fail("kc_remote_driver not found at %s (build it, or set KC_REMOTE_DRIVER)" % path)
    return os.path.abspath(path)


class Driver:
    """One kc_remote_driver process; driver("gdk", principal=..., ...) -> the answer dict."""

    def __init__(self, binary, workdir):
        self.stderr_path = os.path.join(workdir, "driver.stderr")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, env=kmsd_it.kmsd_env(), text=True)

    def __call__(self, op, **fields):
        fields["op"] = op
        self.proc.stdin.write(json.dumps(fields) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], ANSWER_TIMEOUT)
        assert ready, "driver gave no answer to %s within %d s" % (op, ANSWER_TIMEOUT)
        line = self.proc.stdout.readline()
        assert line, "driver exited during %s:\n%s" % (op, self.stderr()[-5000:])
        return json.loads(line)

    def ok(self, op, **fields):
        answer = self(op, **fields)
        assert answer["status"] == "OK", "%s: %s" % (op, answer)
        return answer

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def close(self):
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=60)
        self._stderr.close()
        report = kmsd_it.SANITIZER_PATTERNS.search(self.stderr())
        assert not report, "sanitizer report from the driver:\n" + self.stderr()[-20000:]
        assert rc == 0, "driver exited %d:\n%s" % (rc, self.stderr()[-5000:])


@pytest.fixture
def driver(kmsd_binary, tmp_path):
    d = Driver(driver_binary(kmsd_binary), str(tmp_path))
    yield d
    d.close()


def open_remote(driver, endpoint, server=None, **options):
    """Open the driver's keyclient on endpoint; alice and bob get server's users' keys."""
    driver.ok("open", endpoint=endpoint, region=REGION, **options)
    if server is not None:
        for principal, user in (("alice", server.user("admin")), ("bob", server.user("bob"))):
            driver.ok("principal", principal=principal, access_key_id=user.access_key_id,
                      secret_access_key=user.secret_access_key)


def new_key(driver, description="remote backend test"):
    return driver.ok("create_key", principal="alice", description=description)["key"]


def b64(data):
    return base64.b64encode(data).decode()


# ---- against kmsd ------------------------------------------------------------------------------

def test_data_key_round_trip(kmsd, driver):
    open_remote(driver, kmsd.endpoint, kmsd)
    key = new_key(driver)
    assert key["arn"].endswith(":key/" + key["key_id"]) and key["state"] == "Enabled"
    made = driver.ok("gdk", principal="alice", key=key["arn"], context=CTX, bytes=32)
    assert made["arn"] == key["arn"]
    assert len(base64.b64decode(made["plaintext"])) == 32
    # Decrypt without a key id (the blob names it), and with it
    for key_id in (None, key["arn"], key["key_id"]):
        back = driver.ok("decrypt", principal="alice", key=key_id, blob=made["blob"], context=CTX)
        assert back["plaintext"] == made["plaintext"] and back["arn"] == key["arn"]
    # the same blob through boto3: the transport spoke the real protocol
    kms = kmsd.client("admin")
    assert b64(kms.decrypt(CiphertextBlob=base64.b64decode(made["blob"]),
                           EncryptionContext=CTX)["Plaintext"]) == made["plaintext"]
    # the context binds the blob
    wrong = driver("decrypt", principal="alice", blob=made["blob"], context={"kmsfs:volume": "vol-2"})
    assert wrong["status"] == "InvalidCiphertextException", wrong
    assert driver("decrypt", principal="alice", blob=made["blob"])["status"] == "InvalidCiphertextException"
    other = new_key(driver)
    wrong_key = driver("decrypt", principal="alice", key=other["arn"], blob=made["blob"], context=CTX)
    assert wrong_key["status"] == "IncorrectKeyException", wrong_key


def test_encrypt_and_re_encrypt(kmsd, driver):
    open_remote(driver, kmsd.endpoint, kmsd)
    first, second = new_key(driver), new_key(driver)
    secret = os.urandom(100)
    blob = driver.ok("encrypt", principal="alice", key=first["key_id"], plaintext=b64(secret),
                     context=CTX)["blob"]
    assert driver.ok("decrypt", principal="alice", blob=blob, context=CTX)["plaintext"] == b64(secret)
    moved = driver.ok("re_encrypt", principal="alice", blob=blob, context=CTX, dst_key=second["arn"],
                      dst_context={"kmsfs:volume": "vol-9"})
    assert moved["arn"] == second["arn"]
    back = driver.ok("decrypt", principal="alice", blob=moved["blob"], context={"kmsfs:volume": "vol-9"})
    assert back["plaintext"] == b64(secret) and back["arn"] == second["arn"]
    # an empty context and no context are the same request
    blob = driver.ok("encrypt", principal="alice", key=first["arn"], plaintext=b64(b"x"))["blob"]
    assert driver.ok("decrypt", principal="alice", blob=blob, context={})["plaintext"] == b64(b"x")


def test_key_management(kmsd, driver):
    open_remote(driver, kmsd.endpoint, kmsd)
    key = new_key(driver, "managed remotely")
    alias = "alias/remote-%d" % os.getpid()
    driver.ok("create_alias", principal="alice", alias=alias, target=key["key_id"])
    assert driver("create_alias", principal="alice", alias=alias,
                  target=key["key_id"])["status"] == "AlreadyExistsException"
    info = driver.ok("describe", principal="alice", key=alias)["key"]
    assert info["arn"] == key["arn"] and info["aliases"] == [alias]
    assert info["description"] == "managed remotely" and info["material_versions"] == 1
    assert info["creation_date"] > 1600000000
    # set_alias re-points an existing alias, and deletes it with no target
    other = new_key(driver)
    driver.ok("alias", principal="alice", alias=alias, target=other["arn"])
    assert driver.ok("describe", principal="alice", key=alias)["key"]["key_id"] == other["key_id"]
    driver.ok("alias", principal="alice", alias=alias, target=None)
    assert driver("describe", principal="alice", key=alias)["status"] == "NotFoundException"
    # disabled keys refuse data keys; rotation adds a material version
    driver.ok("enable", principal="alice", key=key["arn"], enabled=False)
    assert driver.ok("describe", principal="alice", key=key["arn"])["key"]["state"] == "Disabled"
    assert driver("gdk", principal="alice", key=key["arn"], context=CTX)["status"] == "DisabledException"
    driver.ok("enable", principal="alice", key=key["arn"], enabled=True)
    driver.ok("rotate", principal="alice", key=key["arn"])
    assert driver.ok("describe", principal="alice", key=key["arn"])["key"]["material_versions"] == 2
    listed = driver.ok("list", principal="alice")["keys"]
    assert {key["arn"], other["arn"]} <= {k["arn"] for k in listed}
    refused = driver("set_principal", principal="alice", key=key["arn"], principal_name="bob")
    assert refused["status"] == "UnsupportedOperationException"


def test_unsigned_and_unauthorized(kmsd, driver):
    open_remote(driver, kmsd.endpoint, kmsd)
    key = new_key(driver)
    unsigned = driver("gdk", principal="nobody", key=key["arn"], context=CTX)
    assert unsigned["status"] == "MissingAuthenticationTokenException", unsigned
    assert driver("gdk", key=key["arn"], context=CTX)["status"] == "MissingAuthenticationTokenException"
    denied = driver("gdk", principal="bob", key=key["arn"], context=CTX)
    assert denied["status"] == "AccessDeniedException", denied
    assert "bob" in denied["message"]
    blob = driver.ok("gdk", principal="alice", key=key["arn"], context=CTX)["blob"]
    assert driver("decrypt", principal="bob", blob=blob, context=CTX)["status"] == "AccessDeniedException"
    # credentials a service does not know
    driver.ok("principal", principal="mallory", access_key_id="AKIAUNKNOWN000000000",
              secret_access_key="not a secret")
    assert driver("gdk", principal="mallory", key=key["arn"])["status"] == "UnrecognizedClientException"
    # a principal's credentials can be replaced while the keyclient is open
    admin = kmsd.user("admin")
    driver.ok("principal", principal="bob", access_key_id=admin.access_key_id,
              secret_access_key=admin.secret_access_key)
    driver.ok("gdk", principal="bob", key=key["arn"], context=CTX)


def test_audit_names_the_remote_arn(kmsd, driver, tmp_path):
    log = str(tmp_path / "fs-audit.jsonl")
    open_remote(driver, kmsd.endpoint, kmsd, audit=log)
    key = new_key(driver)
    driver.ok("create_alias", principal="alice", alias="alias/audit-%d" % os.getpid(), target=key["arn"])
    made = driver.ok("gdk", principal="alice", key="alias/audit-%d" % os.getpid(), context=CTX,
                     path="/dir/file")
    driver.ok("decrypt", principal="alice", blob=made["blob"], context=CTX)
    assert driver("decrypt", principal="bob", blob=made["blob"], context=CTX)["status"] == "AccessDeniedException"
    records = [json.loads(line) for line in open(log)]
    assert [r["eventName"] for r in records] == ["GenerateDataKey", "Decrypt", "Decrypt"]
    for r in records[:2]:
        assert [res["ARN"] for res in r["resources"]] == [key["arn"]], r
        assert r["requestParameters"]["encryptionContext"] == CTX
        assert "errorCode" not in r
    assert records[0]["additionalEventData"]["path"] == "/dir/file"
    assert records[2]["errorCode"] == "AccessDeniedException"
    assert made["plaintext"] not in open(log).read()


def test_service_down_and_back(kmsd_factory, driver):
    """kmsd stopped: DependencyTimeoutException within the bound; restarted on the same port: the
    same keyclient works again, its kept-alive connections replaced without an error."""
    server = kmsd_factory()
    port = server.port
    server.stop()
    server.write_config(listen="127.0.0.1:%d" % port)
    server.start()
    connect_ms, request_ms, retries, base_ms, max_ms = 500, 1500, 2, 50, 200
    open_remote(driver, server.endpoint, server, connect_timeout_ms=connect_ms,
                request_timeout_ms=request_ms, retries=retries, backoff_base_ms=base_ms,
                backoff_max_ms=max_ms)
    key = new_key(driver)
    driver.ok("bench", principal="alice", key=key["arn"], threads=4, calls=5)   # 4 kept connections
    # restarted between two calls: the kept connections are dead, the next call must not fail
    server.stop()
    server.start()
    for _ in range(6):
        driver.ok("gdk", principal="alice", key=key["arn"], context=CTX)
    server.stop()
    down = driver("gdk", principal="alice", key=key["arn"], context=CTX)
    assert down["status"] == "DependencyTimeoutException", down
    assert server.endpoint in down["message"] and "unreachable" in down["message"]
    assert "%d attempts" % (retries + 1) in down["message"]
    bound_ms = request_ms * (retries + 1) + sum(min(max_ms, base_ms << i) for i in range(retries))
    print("\nkmsd down: DependencyTimeoutException after %.0f ms (bound %d ms): %s"
          % (down["elapsed_ms"], bound_ms, down["message"]))
    assert down["elapsed_ms"] < bound_ms
    server.start()
    back = driver.ok("gdk", principal="alice", key=key["arn"], context=CTX)
    assert driver.ok("decrypt", principal="alice", blob=back["blob"], context=CTX)["plaintext"] == back["plaintext"]


def test_threads_share_nothing_but_the_service(kmsd, driver):
    open_remote(driver, kmsd.endpoint, kmsd)
    key = new_key(driver)
    result = driver.ok("bench", principal="alice", key=key["arn"], context=CTX, threads=8, calls=200,
                       verify=True)
    assert (result["ok"], result["failed"]) == (1600, 0), result
    print("\n8 threads x 200 GenerateDataKey+Decrypt: %.1f s" % result["seconds"])
    # credentials refreshed (kc_remote_add_principal) while 4 threads sign with them
    admin = kmsd.user("admin")
    result = driver.ok("bench", principal="alice", key=key["arn"], context=CTX, threads=4, calls=200,
                       refresh=True, access_key_id=admin.access_key_id,
                       secret_access_key=admin.secret_access_key)
    assert (result["ok"], result["failed"]) == (800, 0), result
    assert result["refreshes"] > 0


def test_calls_per_second(kmsd, driver):
    """The FS makes one GenerateDataKey per created file: how many a second over loopback."""
    open_remote(driver, kmsd.endpoint, kmsd)
    key = new_key(driver)
    driver.ok("bench", principal="alice", key=key["arn"], context=CTX, threads=1, calls=20)  # warm
    lines = []
    for threads, calls in ((1, 1000), (8, 250)):
        r = driver.ok("bench", principal="alice", key=key["arn"], context=CTX, threads=threads,
                      calls=calls)
        assert r["failed"] == 0, r
        lines.append("%d thread(s) x %d GenerateDataKey: %.0f calls/s" % (threads, calls, r["calls_per_s"]))
    print("\nremote transport over loopback to kmsd: " + "; ".join(lines))


def make_cert(directory, name):
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.fail("no openssl command to make a test certificate")
    cert, key = os.path.join(directory, name + ".pem"), os.path.join(directory, name + "-key.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


def test_tls(kmsd_factory, driver, tmp_path):
    server = kmsd_factory(start=False)
    cert, key = make_cert(server.dir, "cert")
    stranger, _ = make_cert(str(tmp_path), "stranger")
    server.write_config(extra="tls_cert = %s\ntls_key = %s" % (cert, key))
    server.start()
    endpoint = "https://127.0.0.1:%d" % server.port
    open_remote(driver, endpoint, server, ca_file=cert, retries=-1)
    made = driver.ok("gdk", principal="alice", key=new_key(driver)["arn"], context=CTX)
    assert driver.ok("decrypt", principal="alice", blob=made["blob"], context=CTX)["plaintext"] == made["plaintext"]
    # the system's CAs do not know kmsd's certificate, nor does another CA
    for ca in (None, stranger):
        open_remote(driver, endpoint, server, ca_file=ca, retries=1)
        refused = driver("gdk", principal="alice", key=made["arn"], context=CTX)
        assert refused["status"] == "DependencyTimeoutException", refused
        assert "certificate" in refused["message"].lower(), refused
        assert "attempts" not in refused["message"], "a certificate failure is not retried: %s" % refused
    # plain HTTP to the TLS port is not an answer either
    open_remote(driver, "http://127.0.0.1:%d" % server.port, server, retries=-1, request_timeout_ms=2000)
    assert driver("gdk", principal="alice", key=made["arn"], context=CTX)["status"] != "OK"


def test_ipv6_endpoint(kmsd_factory, driver):
    if not os.path.exists("/proc/net/if_inet6"):
        pytest.fail("no IPv6 on this machine")
    server = kmsd_factory(listen="[::1]:0")
    open_remote(driver, "http://[::1]:%d" % server.port, server)    # Host: [::1]:port, signed
    made = driver.ok("gdk", principal="alice", key=new_key(driver)["arn"], context=CTX)
    assert driver.ok("decrypt", principal="alice", blob=made["blob"], context=CTX)["plaintext"] == made["plaintext"]


def test_open_refuses_bad_options(driver):
    for endpoint in ("", "ftp://127.0.0.1:1", "http://user:pw@127.0.0.1:1", "http://127.0.0.1:1/?a=b",
                     "not a url at all"):
        assert driver("open", endpoint=endpoint, region=REGION)["status"] == "ValidationException", endpoint
    assert driver("open", endpoint="http://127.0.0.1:1")["status"] == "ValidationException"
    assert driver("open", endpoint="http://127.0.0.1:1", region=REGION, retries=-2)["status"] == "ValidationException"
    driver.ok("open", endpoint="http://127.0.0.1:1", region=REGION)
    assert driver("principal", principal="alice", access_key_id="AKIA")["status"] == "ValidationException"
    assert driver("principal", principal="", access_key_id="AKIA",
                  secret_access_key="s")["status"] == "ValidationException"


# ---- against a scripted server -----------------------------------------------------------------

class Script:
    """What the scripted server answers, in order (the last answer repeats) or as a function of the
    request, and what it saw."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests = []
        self.lock = threading.Lock()

    def next(self, request):
        with self.lock:
            self.requests.append(request)
            if callable(self.answers[0]):
                return self.answers[0](request)
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def gdk_answer(plaintext=b"k" * 32, key_id="arn:aws:kms:us-east-1:111122223333:key/scripted"):
    return 200, {"CiphertextBlob": b64(b"blob:" + plaintext[:4]), "Plaintext": b64(plaintext),
                 "KeyId": key_id}


def error_answer(status, type_, message="scripted"):
    return status, {"__type": type_, "message": message}


class ScriptedHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"    # keep-alive, as kmsd and AWS

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        answer = self.server.script.next({"headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": body, "path": self.path,
                                          "client": self.client_address})
        if answer == "silence":
            time.sleep(self.server.silence)
            self.close_connection = True
            return
        status, doc = answer
        data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    """scripted(*answers) -> (endpoint, Script): a local server answering them."""
    servers = []

    def start(*answers, silence=10):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ScriptedHandler)
        server.daemon_threads = True
        server.script = Script(*answers)
        server.silence = silence
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return "http://127.0.0.1:%d" % server.server_address[1], server.script

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def open_scripted(driver, endpoint, **options):
    options.setdefault("backoff_base_ms", 10)
    options.setdefault("backoff_max_ms", 40)
    driver.ok("open", endpoint=endpoint, region=REGION, **options)
    driver.ok("principal", principal="alice", access_key_id="AKIDSCRIPTED", secret_access_key="secret",
              session_token="the-session-token")


def test_5xx_is_retried(scripted, driver):
    endpoint, script = scripted(error_answer(503, "DependencyTimeoutException"), (502, b"bad gateway"),
                                gdk_answer())
    open_scripted(driver, endpoint)
    made = driver.ok("gdk", principal="alice", key="alias/x", context=CTX, bytes=32)
    assert base64.b64decode(made["plaintext"]) == b"k" * 32
    assert len(script.requests) == 3


def test_throttling_is_retried(scripted, driver):
    endpoint, script = scripted(error_answer(400, "ThrottlingException", "Rate exceeded"),
                                error_answer(400, "com.amazonaws.kms#ThrottlingException"), gdk_answer())
    open_scripted(driver, endpoint)
    driver.ok("gdk", principal="alice", key="alias/x", context=CTX)
    assert len(script.requests) == 3


def test_4xx_is_not_retried(scripted, driver):
    endpoint, script = scripted(error_answer(400, "com.amazonaws.kms#NotFoundException:http://x/",
                                             "Alias arn:aws:kms:us-east-1:111122223333:alias/x is not found."))
    open_scripted(driver, endpoint)
    answer = driver("gdk", principal="alice", key="alias/x", context=CTX)
    assert answer["status"] == "NotFoundException" and "alias/x is not found" in answer["message"]
    assert len(script.requests) == 1
    endpoint, script = scripted(error_answer(400, "SomeNewException", "a type kmsfs does not know"))
    open_scripted(driver, endpoint)
    answer = driver("gdk", principal="alice", key="alias/x", context=CTX)
    assert (answer["status"], answer["message"]) == ("SomeNewException", "a type kmsfs does not know")
    assert len(script.requests) == 1


def test_5xx_until_the_retries_run_out(scripted, driver):
    endpoint, script = scripted(error_answer(500, "KMSInternalException", "scripted fault"))
    open_scripted(driver, endpoint, retries=3)
    answer = driver("gdk", principal="alice", key="alias/x", context=CTX)
    assert (answer["status"], answer["message"]) == ("KMSInternalException", "scripted fault")
    assert len(script.requests) == 4
    endpoint, script = scripted((503, b"<html>busy</html>"))
    open_scripted(driver, endpoint, retries=-1)
    answer = driver("gdk", principal="alice", key="alias/x", context=CTX)
    assert answer["status"] == "DependencyTimeoutException" and "HTTP 503" in answer["message"]
    assert len(script.requests) == 1


def test_silent_service_times_out(scripted, driver):
    endpoint, script = scripted("silence", silence=20)
    open_scripted(driver, endpoint, request_timeout_ms=400, retries=2)
    answer = driver("gdk", principal="alice", key="alias/x", context=CTX)
    assert answer["status"] == "DependencyTimeoutException", answer
    assert "3 attempts" in answer["message"]
    print("\nsilent service: %s after %.0f ms" % (answer["status"], answer["elapsed_ms"]))
    # 3 attempts of 400 ms and backoffs of at most 10 + 20 ms, with 500 ms for a loaded machine
    assert answer["elapsed_ms"] < 400 * 3 + 10 + 20 + 500, answer
    assert len(script.requests) == 3


def test_request_shape(scripted, driver):
    endpoint, script = scripted(gdk_answer())
    open_scripted(driver, endpoint)
    driver.ok("gdk", principal="alice", key="alias/x", context=CTX, bytes=32)
    driver("gdk", principal="nobody", key="alias/x", bytes=16)
    signed, unsigned = script.requests
    h = signed["headers"]
    assert h["x-amz-target"] == "TrentService.GenerateDataKey"
    assert h["content-type"] == "application/x-amz-json-1.1"
    assert h["host"] == endpoint[len("http://"):]
    assert h["x-amz-security-token"] == "the-session-token"
    assert h["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDSCRIPTED/")
    assert "/us-east-1/kms/aws4_request" in h["authorization"]
    assert "x-amz-security-token" in h["authorization"] and "x-amz-target" in h["authorization"]
    assert "expect" not in h
    assert json.loads(signed["body"]) == {"KeyId": "alias/x", "NumberOfBytes": 32, "EncryptionContext": CTX}
    assert "authorization" not in unsigned["headers"] and "x-amz-security-token" not in unsigned["headers"]
    assert json.loads(unsigned["body"]) == {"KeyId": "alias/x", "NumberOfBytes": 16}
    assert signed["path"] == "/"
    assert signed["client"] == unsigned["client"], "the second call did not reuse the connection"


def test_encrypt_body_carries_the_plaintext(scripted, driver):
    endpoint, script = scripted((200, {"CiphertextBlob": b64(b"c"), "KeyId": "arn:k"}))
    open_scripted(driver, endpoint)
    driver.ok("encrypt", principal="alice", key="alias/x", plaintext=b64(b"\x00secret\xff"), context=CTX)
    driver.ok("encrypt", principal="alice", key="alias/x", plaintext=b64(b"s"))
    assert json.loads(script.requests[0]["body"]) == {"Plaintext": b64(b"\x00secret\xff"), "KeyId": "alias/x",
                                                      "EncryptionContext": CTX}
    assert json.loads(script.requests[1]["body"]) == {"Plaintext": b64(b"s"), "KeyId": "alias/x"}


def test_malformed_answers(scripted, driver):
    bad = [(200, b"not json"), (200, b"[1,2]"), (200, {"CiphertextBlob": b64(b"c"), "KeyId": "k"}),
           (200, {"Plaintext": "!!!not base64", "CiphertextBlob": b64(b"c"), "KeyId": "k"}),
           gdk_answer(plaintext=b"short"), (200, {"Plaintext": b64(b"k" * 32), "KeyId": "k"}),
           (200, {"Plaintext": b64(b"k" * 32), "CiphertextBlob": b64(b"c")}),
           (404, b"no such thing")]
    for answer in bad:
        endpoint, script = scripted(answer)
        open_scripted(driver, endpoint)
        got = driver("gdk", principal="alice", key="alias/x", context=CTX, bytes=32)
        assert got["status"] == "KMSInternalException", (answer, got)
        assert len(script.requests) == 1


def test_escaped_plaintext_and_extra_fields(scripted, driver):
    plaintext = bytes([0xff] * 30 + [0xfb, 0xff])    # base64 full of '/' and '+'
    encoded = b64(plaintext).replace("/", "\\/")
    body = ('{"Nested": {"Plaintext": "AAAA"}, "KeyId": "arn:k", "Plaintext" : "%s", '
            '"CiphertextBlob": "%s", "Extra": ["Plaintext"]}' % (encoded, b64(b"c"))).encode()
    endpoint, _ = scripted((200, body))
    open_scripted(driver, endpoint)
    got = driver.ok("gdk", principal="alice", key="alias/x", context=CTX, bytes=32)
    assert base64.b64decode(got["plaintext"]) == plaintext and got["arn"] == "arn:k"


def test_list_keys_follows_markers(scripted, driver):
    arn = "arn:aws:kms:us-east-1:111122223333:key/"

    def answer(request):
        op = request["headers"]["x-amz-target"].split(".")[1]
        body = json.loads(request["body"])
        if op == "ListKeys" and "Marker" not in body:
            return 200, {"Keys": [{"KeyId": "k1", "KeyArn": arn + "k1"}], "Truncated": True, "NextMarker": "m1"}
        if op == "ListKeys":
            assert body["Marker"] == "m1"
            return 200, {"Keys": [{"KeyId": "k2", "KeyArn": arn + "k2"}], "Truncated": False}
        if op == "DescribeKey":
            key_id = body["KeyId"][len(arn):]
            return 200, {"KeyMetadata": {"KeyId": key_id, "Arn": body["KeyId"], "KeyState": "Enabled",
                                         "CreationDate": 1700000000.5, "Description": "d " + key_id}}
        if op == "ListAliases" and "Marker" not in body:
            return 200, {"Aliases": [{"AliasName": "alias/a-" + body["KeyId"]}], "Truncated": True,
                         "NextMarker": "a1"}
        if op == "ListAliases":
            return 200, {"Aliases": [{"AliasName": "alias/b-" + body["KeyId"]}], "Truncated": False}
        if op == "ListKeyRotations":
            return error_answer(400, "AccessDeniedException")
        return error_answer(400, "UnknownOperationException")

    endpoint, script = scripted(answer)
    open_scripted(driver, endpoint)
    keys = driver.ok("list", principal="alice")["keys"]
    assert [(k["key_id"], k["aliases"], k["description"], k["creation_date"], k["material_versions"])
            for k in keys] == [("k1", ["alias/a-k1", "alias/b-k1"], "d k1", 1700000000, 0),
                               ("k2", ["alias/a-k2", "alias/b-k2"], "d k2", 1700000000, 0)]


def test_marker_that_does_not_move(scripted, driver):
    endpoint, script = scripted((200, {"Keys": [], "Truncated": True, "NextMarker": "same"}))
    open_scripted(driver, endpoint)
    # the first page has no Marker, the second sends "same" and gets "same" back: refused
    assert driver("list", principal="alice")["status"] == "KMSInternalException"
    assert len(script.requests) == 2
