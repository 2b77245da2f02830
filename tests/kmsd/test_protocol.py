"""kmsd's side of the AWS JSON 1.1 protocol, spoken raw over http.client: SigV4 failures, routing,
serialization errors, body limits, keep-alive, and the shape of every reply.
"""
import datetime
import http.client
import json
import re
import socket

import kmsd_it

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def assert_aws_error(r, status, error_type):
    """An AWS JSON 1.1 error: status, {"__type", "message"}, X-Amzn-ErrorType, a request id."""
    assert r.status == status, r
    assert r.headers.get("content-type") == "application/x-amz-json-1.1", r.headers
    assert r.json is not None and r.json.get("__type") == error_type, r
    assert isinstance(r.json.get("message"), str) and r.json["message"], r
    assert r.headers.get("x-amzn-errortype") == error_type, r.headers
    assert UUID.match(r.request_id or ""), r.headers


def test_signed_request_works(kmsd):
    r = kmsd.post("ListKeys", {})
    assert r.status == 200, r
    assert "Keys" in r.json
    assert UUID.match(r.request_id)
    assert r.headers["content-type"] == "application/x-amz-json-1.1"


def test_unsigned_request(kmsd):
    r = kmsd.post("ListKeys", {}, sign=False)
    assert_aws_error(r, 403, "MissingAuthenticationTokenException")


def test_unknown_access_key(kmsd):
    stranger = kmsd_it.User("stranger")
    r = kmsd.post("ListKeys", {}, user=stranger)
    assert_aws_error(r, 400, "UnrecognizedClientException")


def test_wrong_secret(kmsd):
    r = kmsd.post("ListKeys", {}, secret="x" * 40)
    assert_aws_error(r, 403, "InvalidSignatureException")


def test_old_date(kmsd):
    when = datetime.datetime.utcnow() - datetime.timedelta(minutes=20)
    r = kmsd.post("ListKeys", {}, when=when)
    assert_aws_error(r, 403, "InvalidSignatureException")


def test_date_within_skew(kmsd):
    when = datetime.datetime.utcnow() - datetime.timedelta(minutes=10)
    r = kmsd.post("ListKeys", {}, when=when)
    assert r.status == 200, r


def test_body_changed_after_signing(kmsd):
    u = kmsd.user()
    h = kmsd_it.sigv4_sign(kmsd.endpoint, {"Content-Type": "application/x-amz-json-1.1",
                                           "X-Amz-Target": "TrentService.ListKeys"},
                           b"{}", u.access_key_id, u.secret_access_key)
    r = kmsd_it.post_raw(kmsd, b'{"Limit":1}', h)
    assert_aws_error(r, 403, "InvalidSignatureException")


def test_malformed_authorization(kmsd):
    r = kmsd.post("ListKeys", {}, sign=False,
                  headers={"Authorization": "AWS4-HMAC-SHA256 Credential=garbage",
                           "X-Amz-Date": "20240101T000000Z"})
    assert_aws_error(r, 403, "IncompleteSignatureException")


def test_unknown_target(kmsd):
    r = kmsd.post("NoSuchOperation", {})
    assert_aws_error(r, 400, "UnknownOperationException")


def test_target_without_service_prefix(kmsd):
    r = kmsd.post(target="SomethingElse.ListKeys", body={})
    assert_aws_error(r, 400, "UnknownOperationException")


def test_missing_target(kmsd):
    r = kmsd.post(body={})
    assert_aws_error(r, 400, "UnknownOperationException")


def test_wrong_content_type(kmsd):
    r = kmsd.post("ListKeys", {}, content_type="application/json")
    assert_aws_error(r, 404, "UnknownOperationException")


def test_get_and_other_paths(kmsd):
    r = kmsd_it.post_raw(kmsd, None, {}, method="GET")
    assert_aws_error(r, 404, "UnknownOperationException")
    r = kmsd_it.post_raw(kmsd, b"{}", {"Content-Type": "application/x-amz-json-1.1",
                                       "X-Amz-Target": "TrentService.ListKeys"}, path="/other")
    assert_aws_error(r, 404, "UnknownOperationException")


def test_bad_json(kmsd):
    r = kmsd.post("ListKeys", b'{"Limit": ')
    assert_aws_error(r, 400, "SerializationException")


def test_json_not_an_object(kmsd):
    for body in (b"[]", b'"text"', b"42", b"null"):
        r = kmsd.post("ListKeys", body)
        assert_aws_error(r, 400, "SerializationException")


def test_json_duplicate_member(kmsd):
    r = kmsd.post("ListKeys", b'{"Limit": 1, "Limit": 2}')
    assert_aws_error(r, 400, "SerializationException")


def test_bad_json_message_does_not_echo_the_body(kmsd):
    r = kmsd.post("Encrypt", b'{"KeyId": "alias/x", "Plaintext": "c2VjcmV0c2VjcmV0" zzz-secret-zzz}')
    assert_aws_error(r, 400, "SerializationException")
    assert "zzz-secret-zzz" not in r.json["message"]
    assert "c2VjcmV0c2VjcmV0" not in r.json["message"]


def test_empty_body_is_an_empty_object(kmsd):
    r = kmsd.post("ListKeys", b"")
    assert r.status == 200, r


def test_oversize_body_with_content_length(kmsd):
    body = json.dumps({"Description": "x" * 70000}).encode()  # max_body defaults to 65536
    r = kmsd.post("CreateKey", body)
    assert r.status == 413, r
    assert r.json["__type"] == "ValidationException"
    assert kmsd.alive()
    assert kmsd.post("ListKeys", {}).status == 200


def test_oversize_body_chunked(kmsd):
    """No Content-Length: kmsd counts as it reads and answers once the upload ends."""
    conn = kmsd.connection()
    conn.putrequest("POST", "/")
    conn.putheader("Content-Type", "application/x-amz-json-1.1")
    conn.putheader("X-Amz-Target", "TrentService.CreateKey")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = b"x" * 16384
    for _ in range(8):
        conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    conn.send(b"0\r\n\r\n")
    r = conn.getresponse()
    data = r.read()
    conn.close()
    assert r.status == 413, data
    assert json.loads(data)["__type"] == "ValidationException"
    assert kmsd.post("ListKeys", {}).status == 200


def test_huge_content_length_is_refused_before_reading(kmsd):
    """A client announcing 1 GiB gets its error without kmsd waiting for (or buffering) the body."""
    s = socket.create_connection((kmsd.host, kmsd.port), timeout=10)
    try:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n"
                  b"X-Amz-Target: TrentService.ListKeys\r\nContent-Length: 1073741824\r\n\r\n")
        reply = s.recv(65536)
    finally:
        s.close()
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"ValidationException" in reply
    assert kmsd.alive()


def test_keep_alive(kmsd):
    conn = kmsd.connection()
    try:
        ids = set()
        for i in range(5):
            r = kmsd.post("ListKeys", {}, conn=conn)
            assert r.status == 200, r
            ids.add(r.request_id)
            if i == 0:
                sock = conn.sock
            assert conn.sock is sock, "the connection was not kept alive"
        # an error reply does not end the connection either
        r = kmsd.post("NoSuchOperation", {}, conn=conn)
        assert r.status == 400
        ids.add(r.request_id)
        r = kmsd.post("ListKeys", {}, conn=conn)
        assert r.status == 200
        assert conn.sock is sock
        ids.add(r.request_id)
        assert len(ids) == 7, "request ids must be unique"
    finally:
        conn.close()


def test_many_clients_at_once(kmsd):
    import concurrent.futures

    def one(_):
        return kmsd.post("ListKeys", {}).status

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one, range(64)))
    assert statuses == [200] * 64


def test_garbage_request_line(kmsd):
    s = socket.create_connection((kmsd.host, kmsd.port), timeout=10)
    try:
        s.sendall(b"\x16\x03\x01\x02\x00garbage that is not http\r\n\r\n")
        s.recv(4096)
    except (ConnectionResetError, socket.timeout):
        pass
    finally:
        s.close()
    assert kmsd.post("ListKeys", {}).status == 200


def test_http10_without_host(kmsd):
    conn = http.client.HTTPConnection(kmsd.host, kmsd.port, timeout=10)
    conn._http_vsn, conn._http_vsn_str = 10, "HTTP/1.0"
    conn.request("POST", "/", body=b"{}", headers={"Content-Type": "application/x-amz-json-1.1",
                                                    "X-Amz-Target": "TrentService.ListKeys"})
    r = conn.getresponse()
    body = json.loads(r.read())
    conn.close()
    assert r.status == 403 and body["__type"] == "MissingAuthenticationTokenException"
