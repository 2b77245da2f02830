"""Helpers for the kmsd integration tests: start and stop a kmsd, talk to it with the AWS CLI,
boto3 or raw (optionally SigV4-signed) HTTP, and read its audit trail.

Everything here is usable from any test file in tests/kmsd through the fixtures in conftest.py;
import it directly (`import kmsd_it`) for the helpers themselves.
"""
import base64
import contextlib
import datetime
import glob
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import string
import subprocess
import time
import types
import unittest.mock

REGION = "us-east-1"
ACCOUNT = "111122223333"
PASSPHRASE = "kmsd integration passphrase"
START_TIMEOUT = 60      # seconds; ASan builds start slowly
STOP_TIMEOUT = 60
SANITIZER_PATTERNS = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|WARNING: ThreadSanitizer|"
    r"AddressSanitizer:DEADLYSIGNAL|SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer|"
    r"LeakSanitizer has encountered a fatal error")
LISTENING = re.compile(r"kmsd: listening on (\S+):(\d+)")


class User:
    """An IAM user of the kmsd under test: name, random access key id and secret, allow list."""

    def __init__(self, name, allow=None):
        self.name = name
        self.allow = allow
        self.access_key_id = "AKIA" + "".join(secrets.choice(string.ascii_uppercase + string.digits)
                                              for _ in range(16))
        self.secret_access_key = base64.b64encode(secrets.token_bytes(30)).decode()
        self.arn = "arn:aws:iam::%s:user/%s" % (ACCOUNT, name)

    def config_section(self):
        lines = ["[user %s]" % self.name,
                 "access_key_id = %s" % self.access_key_id,
                 "secret_access_key = %s" % self.secret_access_key]
        if self.allow:
            lines.append("allow = %s" % self.allow)
        return "\n".join(lines) + "\n"


def default_users():
    """admin may do everything (allow = kms:*); bob has no identity policy at all."""
    return {"admin": User("admin", "kms:*"), "bob": User("bob")}


class KmsdError(Exception):
    pass


class Kmsd:
    """One kmsd process with its own directory: config, passphrase file, key store, audit dir.

    kmsd = Kmsd(binary, workdir); kmsd.start(); ...; kmsd.stop()  (stop checks exit 0 and that
    stderr has no sanitizer report). kmsd.endpoint is "http://127.0.0.1:PORT".
    """

    def __init__(self, binary, workdir, users=None, extra=None, env=None, verbose=True,
                 listen="127.0.0.1:0", config_mode=0o600, root_key="passphrase-file:./kmsd.pass"):
        self.binary = binary
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.users = users if users is not None else default_users()
        self.config_path = os.path.join(workdir, "kmsd.conf")
        self.passfile = os.path.join(workdir, "kmsd.pass")
        self.audit_dir = os.path.join(workdir, "audit")
        self.data_dir = os.path.join(workdir, "data")
        self.stderr_path = os.path.join(workdir, "kmsd.stderr")
        self.verbose = verbose
        self.env = dict(env if env is not None else kmsd_env())
        self.proc = None
        self.host = None
        self.port = None
        self._stderr = None
        self.root_key = root_key
        self.clock_offset = None
        self.write_config(listen=listen, extra=extra, mode=config_mode)
        with open(self.passfile, "w") as f:
            f.write(PASSPHRASE + "\n")
        os.chmod(self.passfile, 0o600)

    # ---- configuration ----------------------------------------------------------------------
    def config_text(self, listen="127.0.0.1:0", extra=None):
        text = ("[kmsd]\n"
                "listen = %s\n"
                "region = %s\n"
                "account = %s\n"
                "data_dir = ./data            ; relative to this file\n"
                "root_key = %s\n"
                "audit_dir = ./audit\n"
                "threads = 2\n" % (listen, REGION, ACCOUNT, self.root_key))
        if extra:
            text += extra.rstrip("\n") + "\n"
        text += "\n" + "\n".join(u.config_section() for u in self.users.values())
        return text

    def write_config(self, listen="127.0.0.1:0", extra=None, mode=0o600, text=None):
        with open(self.config_path, "w") as f:
            f.write(text if text is not None else self.config_text(listen, extra))
        os.chmod(self.config_path, mode)

    def set_clock(self, offset):
        """From its next start, kmsd's clock runs offset (a timedelta) ahead of the real one, through
        libfaketime (faketime_library() must not be None); None: the real clock again. post() and
        api() sign as of kmsd's time, so SigV4's 15-minute window still holds; boto3 clients and
        the AWS CLI sign with the real clock and are refused meanwhile."""
        self.clock_offset = offset
        for name in ("LD_PRELOAD", "FAKETIME", "FAKETIME_DONT_FAKE_MONOTONIC", "FAKETIME_NO_CACHE"):
            self.env.pop(name, None)
        self.env["ASAN_OPTIONS"] = self.env.get("ASAN_OPTIONS", "").replace(":verify_asan_link_order=0", "")
        if offset is None:
            return
        library = faketime_library()
        if library is None:
            raise KmsdError("libfaketime is not installed (apt-get install faketime)")
        self.env.update({"LD_PRELOAD": library, "FAKETIME": "%+d" % int(offset.total_seconds()),
                         "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_NO_CACHE": "1"})
        # a sanitizer runtime wants to be first among the libraries; libfaketime is preloaded before it
        self.env["ASAN_OPTIONS"] += ":verify_asan_link_order=0"

    def now(self):
        """kmsd's idea of the current UTC time (naive datetime), see set_clock."""
        return datetime.datetime.utcnow() + (self.clock_offset or datetime.timedelta(0))

    # ---- process ------------------------------------------------------------------------------
    def run(self, *args, timeout=60):
        """Run kmsd to completion (--check-config, --help ...): CompletedProcess with text output."""
        return subprocess.run([self.binary] + list(args), capture_output=True, text=True,
                              env=self.env, timeout=timeout, cwd=self.dir)

    def start(self, *args):
        """Start kmsd and wait for its "listening on" line (in what this run wrote to stderr)."""
        offset = len(self.stderr())
        self._stderr = open(self.stderr_path, "ab")
        cmd = [self.binary, "--config", self.config_path] + (["--verbose"] if self.verbose else []) + list(args)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self._stderr, env=self.env, cwd=self.dir)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            m = LISTENING.search(self.stderr()[offset:])
            if m:
                self.host = m.group(1).strip("[]")
                self.port = int(m.group(2))
                return self
            if self.proc.poll() is not None:
                raise KmsdError("kmsd exited with %s before listening:\n%s" % (self.proc.returncode, self.stderr()))
            time.sleep(0.05)
        self.proc.kill()
        raise KmsdError("kmsd did not print 'listening on' within %d s:\n%s" % (START_TIMEOUT, self.stderr()))

    def stderr(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def sanitizer_report(self):
        """The stderr text from the first sanitizer report on, or None."""
        text = self.stderr()
        m = SANITIZER_PATTERNS.search(text)
        return text[max(0, m.start() - 2000):][:30000] if m else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        """Signal kmsd, wait, and insist on exit status 0 and a clean stderr."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise KmsdError("kmsd did not stop within %d s of signal %d:\n%s" % (STOP_TIMEOUT, sig, self.stderr()[-5000:]))
        finally:
            self._stderr.close()
        self.proc = None
        report = self.sanitizer_report()
        if report:
            raise KmsdError("sanitizer report from kmsd:\n" + report)
        if rc != 0:
            raise KmsdError("kmsd exited with %d after signal %d:\n%s" % (rc, sig, self.stderr()[-5000:]))
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._stderr:
            self._stderr.close()
        self.proc = None

    # ---- talking to it ------------------------------------------------------------------------
    @property
    def endpoint(self):
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "http://%s:%d" % (host, self.port)

    def user(self, name="admin"):
        return self.users[name]

    def client(self, user="admin", validate=True, unsigned=False, **kwargs):
        """A boto3 KMS client signing as user (name or User); no retries, so errors surface.

        validate=False: botocore sends what it is given (no client-side parameter checks), so
        kmsd's own validation answers. unsigned=True: requests go out without SigV4.
        """
        import boto3
        import botocore
        import botocore.config
        u = self.users[user] if isinstance(user, str) else user
        extra = {"signature_version": botocore.UNSIGNED} if unsigned else {}
        cfg = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"},
                                     connect_timeout=10, read_timeout=60,
                                     parameter_validation=validate, **extra)
        return boto3.client("kms", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=u.access_key_id,
                            aws_secret_access_key=u.secret_access_key, config=cfg, **kwargs)

    def aws(self, *args, user="admin", check=True, timeout=120):
        """Run `aws --endpoint-url ... kms ARGS --output json` as user.

        check=True: parsed JSON (None for empty output); raises AwsCliError on failure.
        check=False: the CompletedProcess.
        """
        return run_aws_cli(self.endpoint, self.users[user] if isinstance(user, str) else user,
                           args, check=check, timeout=timeout)

    def api(self, operation, user="admin", **params):
        """A signed JSON 1.1 request for what this machine's botocore does not model yet (Debian
        12's botocore 1.29 lacks RotateKeyOnDemand, ListKeyRotations, RotationPeriodInDays ...):
        the parsed reply on 200, else botocore's ClientError with the reply's __type and message,
        so client_error() checks it like a boto3 call. bytes in params are sent base64.
        """
        import botocore.exceptions
        body = {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in params.items()}
        r = self.post(operation, body, user=user)
        if r.status == 200:
            return r.json
        error = {"Code": r.error_type, "Message": (r.json or {}).get("message", r.body[:300].decode("latin-1"))}
        raise botocore.exceptions.ClientError({"Error": error, "ResponseMetadata": {
            "HTTPStatusCode": r.status, "RequestId": r.request_id}}, operation)

    def aws_error(self, code, *args, user="admin", timeout=120):
        """Run `aws kms ARGS`, which must fail with AWS error type code: the AwsCliError."""
        proc = self.aws(*args, user=user, check=False, timeout=timeout)
        assert proc.returncode != 0, "aws kms %s: expected %s, but it succeeded: %s" % (
            " ".join(map(str, args)), code, proc.stdout[:500])
        e = AwsCliError(proc)
        assert e.code == code, "aws kms %s: expected %s, got %s: %s" % (
            " ".join(map(str, args)), code, e.code, proc.stderr.strip()[-1000:])
        return e

    def connection(self, timeout=30):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def post(self, operation=None, body=b"{}", user="admin", sign=True, headers=None, when=None,
             target=None, content_type="application/x-amz-json-1.1", conn=None, secret=None,
             access_key_id=None):
        """One raw POST / (see post_raw), by default a correctly signed TrentService.<operation>."""
        u = self.users[user] if isinstance(user, str) else user
        h = {}
        if content_type is not None:
            h["Content-Type"] = content_type
        if target is not None:
            h["X-Amz-Target"] = target
        elif operation is not None:
            h["X-Amz-Target"] = "TrentService." + operation
        h.update(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        if sign:
            if when is None and self.clock_offset is not None:
                when = self.now()
            h = sigv4_sign(self.endpoint, h, body, access_key_id or u.access_key_id,
                           secret or u.secret_access_key, when=when)
        return post_raw(self, body, h, conn=conn)

    # ---- audit trail --------------------------------------------------------------------------
    def audit_files(self):
        return sorted(glob.glob(os.path.join(self.audit_dir, "kmsd-*.jsonl")))

    def audit_text(self):
        return "".join(open(f, errors="replace").read() for f in self.audit_files())

    def audit_records(self):
        """Every record, parsed (each line must be one JSON object)."""
        records = []
        for f in self.audit_files():
            with open(f) as fh:
                for n, line in enumerate(fh, 1):
                    assert line.endswith("\n"), "%s:%d: record not terminated by a newline" % (f, n)
                    records.append(json.loads(line))
        return records

    def audit_for(self, request_id, wait=5.0):
        """The records whose requestID is request_id (normally exactly one)."""
        deadline = time.monotonic() + wait
        while True:
            found = [r for r in self.audit_records() if r.get("requestID") == request_id]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


class Response:
    """What post_raw got back: status, headers (lower-case names), body bytes, parsed JSON or None."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    @property
    def request_id(self):
        return self.headers.get("x-amzn-requestid")

    @property
    def error_type(self):
        return (self.json or {}).get("__type")

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:300])


def post_raw(kmsd, body, headers, conn=None, path="/", method="POST"):
    """Send one request (on conn to keep the connection alive, else a new one) and read the reply."""
    own = conn is None
    if own:
        conn = kmsd.connection()
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        if own:
            conn.close()


def sigv4_sign(endpoint, headers, body, access_key_id, secret, when=None, region=REGION):
    """headers plus X-Amz-Date and Authorization, signed by botocore's SigV4 signer.

    when (a naive UTC datetime) signs as of that moment, e.g. to test clock skew.
    """
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    req = botocore.awsrequest.AWSRequest(method="POST", url=endpoint + "/", data=body,
                                         headers=dict(headers))
    signer = botocore.auth.SigV4Auth(botocore.credentials.Credentials(access_key_id, secret),
                                     "kms", region)
    if when is None:
        signer.add_auth(req)
    else:
        frozen = type("FrozenDatetime", (datetime.datetime,), {"utcnow": classmethod(lambda cls: when)})
        fake = types.SimpleNamespace(datetime=frozen)
        with unittest.mock.patch.object(botocore.auth, "datetime", fake):
            signer.add_auth(req)
    return dict(req.headers.items())


class ClientErrorInfo:
    """What client_error caught: code, message and the whole botocore response."""
    code = None
    message = ""
    response = None


@contextlib.contextmanager
def client_error(code, *needles):
    """with client_error("NotFoundException", "part of the message"): boto3 call(s) that must fail.

    Fails unless the block raises botocore's ClientError with exactly this AWS error code and a
    message containing every needle; yields a ClientErrorInfo filled in afterwards.
    """
    import botocore.exceptions
    info = ClientErrorInfo()
    try:
        yield info
    except botocore.exceptions.ClientError as e:
        info.response = e.response
        info.code = e.response.get("Error", {}).get("Code")
        info.message = e.response.get("Error", {}).get("Message") or ""
    else:
        raise AssertionError("expected %s, but the call succeeded" % code)
    assert info.code == code, "expected %s, got %s: %s" % (code, info.code, info.message)
    for needle in needles:
        assert needle in info.message, "%s message %r lacks %r" % (code, info.message, needle)


class AwsCliError(Exception):
    def __init__(self, proc):
        self.proc = proc
        self.stderr = proc.stderr
        m = re.search(r"\((\w+)\) when calling", proc.stderr)
        self.code = m.group(1) if m else None
        super().__init__("aws exited %d: %s" % (proc.returncode, proc.stderr.strip()[-2000:]))


def aws_cli_binary():
    """The AWS CLI to use: $KMSD_AWS_CLI, Debian's /usr/bin/aws, or aws on PATH (None: none)."""
    for candidate in (os.environ.get("KMSD_AWS_CLI"), "/usr/bin/aws", shutil.which("aws")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def aws_cli_env(endpoint_user):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_ACCESS_KEY_ID": endpoint_user.access_key_id,
        "AWS_SECRET_ACCESS_KEY": endpoint_user.secret_access_key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
    })
    return env


def run_aws_cli(endpoint, user, args, check=True, timeout=120):
    cli = aws_cli_binary()
    if cli is None:
        raise RuntimeError("no AWS CLI found (install awscli or set KMSD_AWS_CLI)")
    cmd = [cli, "--endpoint-url", endpoint, "--output", "json", "kms"] + [str(a) for a in args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=aws_cli_env(user), timeout=timeout)
    if not check:
        return proc
    if proc.returncode != 0:
        raise AwsCliError(proc)
    return json.loads(proc.stdout) if proc.stdout.strip() else None


FAKETIME_LIBRARIES = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                      "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
                      "/usr/lib/faketime/libfaketimeMT.so.1"]


def faketime_library():
    """Debian's libfaketime (package faketime) for moving kmsd's clock, or None."""
    for path in [os.environ.get("KMSD_FAKETIME_LIB")] + FAKETIME_LIBRARIES:
        if path and os.path.exists(path):
            return path
    return None


def kmsd_env():
    """Environment for kmsd: cheap Argon2 for new stores, sanitizers reporting on stderr."""
    env = dict(os.environ)
    for v in ("KMSFS_PASSPHRASE", "KMSFS_KEYSTORE", "KMSFS_AUDIT_LOG"):
        env.pop(v, None)
    env["KMSFS_ARGON2_OPSLIMIT"] = "1"
    env["KMSFS_ARGON2_MEMLIMIT"] = str(8192 * 1024)
    env["ASAN_OPTIONS"] = "detect_leaks=%s:abort_on_error=0" % ("0" if os.environ.get("KMSFS_IT_DETECT_LEAKS") == "0" else "1")
    env["UBSAN_OPTIONS"] = "print_stacktrace=1"
    env["LC_ALL"] = "C"
    return env
