"""The student server under bad requests: fuzzed bodies (hypothesis, and a mutation barrage), bodies over the
size limit with and without a Content-Length, and clients that hang up mid-request. Always a 4xx in the
API's error shape (or a served reply for a body that happens to be valid), never a 5xx; the server keeps
serving and its memory stays bounded."""
from __future__ import annotations

import http.client
import json
import random
import socket
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill.serving.serve import ServerThread, make_app
from tests.test_malformed_output import json_values
from tests.test_serve import GOOD, engine, server  # noqa: F401  (module fixtures: the untrained student served)

PATHS = ["/v1/messages", "/v1/messages/count_tokens", "/workbench/ask"]
BARRAGE = 400  # mutated bodies in the barrage test; the README's reliability section quotes it
FIELDS = {"model": st.text(max_size=8) | json_values, "max_tokens": st.integers(-3, 3) | json_values,
          "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "x"]),
                                                      "content": st.text(max_size=20) | json_values}), max_size=3)
          | json_values,
          "stream": st.booleans() | json_values, "tools": json_values, "tool_choice": json_values,
          "system": st.text(max_size=10) | json_values, "temperature": json_values}
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({}, optional=FIELDS).map(lambda d: json.dumps(d).encode()),
)


def send(url: str, path: str, body: bytes, headers: dict | None = None) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        conn.request("POST", path, body=body, headers={"content-type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def assert_api_shape(status: int, body: bytes) -> None:
    assert status < 500, (status, body[:300])
    if status >= 400:
        error = json.loads(body)
        assert error["type"] == "error" and error["error"]["type"] and error["error"]["message"], body[:300]


def still_serving(url: str) -> None:
    status, body = send(url, "/v1/messages", json.dumps(GOOD).encode())
    assert status == 200 and json.loads(body)["type"] == "message"


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), body=bodies)
def test_any_body_is_a_4xx_in_the_api_shape_or_a_reply(server, path, body) -> None:  # noqa: F811
    assert_api_shape(*send(server.url, path, body))


def mutate(rng: random.Random, body: bytes) -> bytes:
    """One random corruption of a valid body: bytes flipped, cut, duplicated, or a field's type swapped."""
    kind = rng.randrange(4)
    if kind == 0:
        data = bytearray(body)
        for _ in range(rng.randint(1, 5)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if kind == 1:
        return body[: rng.randrange(len(body))]
    if kind == 2:
        cut = rng.randrange(len(body))
        return body[:cut] + body[cut // 2:]
    request = json.loads(body)
    key = rng.choice(list(request))
    request[key] = rng.choice([None, -1, 10**12, "x" * rng.randint(0, 5000), [], {}, [{"role": "user"}], True, 1.5])
    return json.dumps(request).encode()


def test_a_barrage_of_mutated_bodies_leaves_the_server_serving_with_bounded_memory(server) -> None:  # noqa: F811
    rng = random.Random(7)
    valid = json.dumps({**GOOD, "max_tokens": 2, "system": "s", "tools": [], "stream": False}).encode()
    statuses: dict[int, int] = {}
    still_serving(server.url)  # the first generation's one-time allocations (~0.5 GB) are not growth
    for i in range(BARRAGE):
        if i == BARRAGE // 4:
            start = rss_mb()  # after warm-up: allocator pools and the decoder caches are full by then
        status, body = send(server.url, rng.choice(PATHS), mutate(rng, valid))
        assert_api_shape(status, body)
        statuses[status] = statuses.get(status, 0) + 1
    assert rss_mb() - start < 150, f"memory grew {rss_mb() - start:.0f} MB over {BARRAGE * 3 // 4} bad requests"
    assert statuses.get(400, 0) > BARRAGE // 4, statuses  # most mutations are refused, not served
    still_serving(server.url)


def test_a_body_over_the_limit_is_refused_before_it_is_read(engine) -> None:  # noqa: F811
    with ServerThread(make_app(engine, max_request_mb=0.01)) as small:  # 10 KiB
        status, body = send(small.url, "/v1/messages", b"x" * 200_000)
        assert status == 413 and json.loads(body)["error"]["type"] == "request_too_large"
        assert "serve.max_request_mb" in json.loads(body)["error"]["message"]
        # without a Content-Length (chunked): refused once the limit is passed
        parts = urllib.parse.urlsplit(small.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        conn.request("POST", "/v1/messages", body=iter([b"{" + b" " * 4096] * 4),
                     headers={"content-type": "application/json"}, encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 413 and json.loads(response.read())["error"]["type"] == "request_too_large"
        conn.close()
        still_serving(small.url)


@pytest.mark.parametrize("cut", ["mid-headers", "mid-body", "after-request"])
def test_a_client_that_hangs_up_leaves_the_server_serving(server, cut) -> None:  # noqa: F811
    parts = urllib.parse.urlsplit(server.url)
    body = json.dumps({**GOOD, "max_tokens": 200}).encode()
    request = (f"POST /v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
               f"content-length: {len(body)}\r\n\r\n").encode() + body
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall({"mid-headers": request[:30], "mid-body": request[: len(request) - len(body) // 2],
                      "after-request": request}[cut])
    still_serving(server.url)
