"""pytest fixtures for the kmsd integration tests (tests/kmsd).

Run by hand:
    /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/kmsd --kmsd=build/tools/kmsd/kmsd

Fixtures:
    kmsd          a running kmsd shared by the whole session (users admin with allow = kms:*
                  and bob with no identity policy), listening on a free port. Its teardown
                  SIGTERMs it and fails if it does not exit 0 or printed a sanitizer report.
    kms           a boto3 KMS client signing as admin (kmsd.client("bob") for bob)
    aws           kmsd.aws: run `aws kms ...` against it, parsed JSON back
    kmsd_factory  start more kmsd instances with their own config (kmsd_factory(extra=...,
                  users=..., start=False)); each is stopped and checked the same way
    kmsd_binary   the path of the binary under test
Each test also fails if the shared kmsd died or printed a sanitizer report during it.
"""
import os
import re
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmsd_it  # noqa: E402

DEFAULT_BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "tools", "kmsd", "kmsd")


def pytest_addoption(parser):
    parser.addoption("--kmsd", action="store", default=os.environ.get("KMSD_BIN", DEFAULT_BIN),
                     help="path to the kmsd binary (default: $KMSD_BIN or build/tools/kmsd/kmsd)")
    parser.addoption("--kmsd-workdir", action="store", default=os.environ.get("KMSD_IT_WORKDIR", "/var/tmp"),
                     help="directory for key stores, configs and audit trails")
    parser.addoption("--kmsd-keep", action="store_true", default=False,
                     help="keep the work directory after the run (for debugging)")


@pytest.fixture(scope="session")
def kmsd_binary(request):
    binary = os.path.abspath(request.config.getoption("--kmsd"))
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        pytest.fail("kmsd binary not found or not executable: %s (pass --kmsd PATH or set KMSD_BIN)" % binary)
    return binary


@pytest.fixture(scope="session")
def kmsd_workdir(request):
    base = tempfile.mkdtemp(prefix="kmsd-it-", dir=request.config.getoption("--kmsd-workdir"))
    yield base
    if request.config.getoption("--kmsd-keep"):
        print("\nkmsd integration work dir kept: %s" % base)
    else:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def kmsd(kmsd_binary, kmsd_workdir):
    server = kmsd_it.Kmsd(kmsd_binary, os.path.join(kmsd_workdir, "shared"))
    server.start()
    try:
        yield server
    finally:
        if server.alive():
            server.stop()
        else:
            server.kill()


@pytest.fixture(autouse=True)
def _kmsd_guard(request):
    """Fail a test after which the shared kmsd is dead or has printed a sanitizer report."""
    yield
    if "kmsd" not in request.fixturenames:
        return
    server = request.getfixturevalue("kmsd")
    report = server.sanitizer_report()
    if report:
        pytest.fail("sanitizer report from the shared kmsd:\n" + report, pytrace=False)
    if not server.alive():
        pytest.fail("the shared kmsd is no longer running:\n" + server.stderr()[-5000:], pytrace=False)


@pytest.fixture
def kms(kmsd):
    import boto3  # noqa: F401
    return kmsd.client("admin")


@pytest.fixture
def aws(kmsd):
    if kmsd_it.aws_cli_binary() is None:
        pytest.fail("no AWS CLI (apt-get install awscli, or set KMSD_AWS_CLI)")
    return kmsd.aws


@pytest.fixture
def kmsd_factory(kmsd_binary, kmsd_workdir, request):
    """kmsd_factory(start=True, **Kmsd kwargs): a kmsd of the test's own; stopped and checked after."""
    made = []

    def make(start=True, **kwargs):
        name = "%s-%d" % (re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:60], len(made))
        server = kmsd_it.Kmsd(kmsd_binary, os.path.join(kmsd_workdir, name), **kwargs)
        made.append(server)
        if start:
            server.start()
        return server

    yield make
    problems = []
    for server in made:
        if server.alive():
            try:
                server.stop()
            except kmsd_it.KmsdError as e:
                problems.append(str(e))
        elif server.proc is not None:
            server.kill()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
