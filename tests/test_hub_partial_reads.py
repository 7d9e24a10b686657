"""The one partial read (``hub.reads.read_file_bytes``) behind a shard's header by Range
requests and a target's bounded record: the asked-for bytes whether the server honours the
Range header (206) or ignores it (200, the whole file, its first bytes skipped), never more
than the bound, and resumed where it broke when the connection drops mid-body (huggingface_hub
2.4.0's own retry of a streamed body ended in "generator didn't stop after throw()", exit 4). A
local HTTP server in a thread, no Hub, no model: about two seconds (one retry's wait)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from reranker_seqcls.hub.reads import read_file_bytes

BODY = bytes(range(256)) * 40  # 10,240 bytes
BIG = bytes(range(251)) * 12_000  # 3 MB: more than one CHUNK of the client's reads


class _Handler(BaseHTTPRequestHandler):
    honours_range = True
    body = BODY
    drops: ClassVar[list[int]] = []  # the next answers' bodies are cut after these many bytes
    ranges: ClassVar[list[str | None]] = []  # the Range header of each request

    def do_GET(self) -> None:
        spec = self.headers.get("range")
        self.ranges.append(spec)
        if spec and self.honours_range:
            first, last = spec.removeprefix("bytes=").split("-")
            start, end = int(first), int(last) if last else len(self.body) - 1
            self.send_response(206)
            body = self.body[start : end + 1]
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(self.body)}")
        else:
            self.send_response(200)
            body = self.body
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.drops:
            self.wfile.write(body[: self.drops.pop(0)])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=[True, False], ids=["honours-range", "ignores-range"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _serve(honours_range=request.param)


def _serve(**attributes: object) -> Iterator[str]:
    handler = type("Handler", (_Handler,), {"drops": [], "ranges": [], **attributes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/file.safetensors"
    finally:
        server.shutdown()
        server.server_close()


def test_a_range_reads_exactly_its_bytes(url: str) -> None:
    got = read_file_bytes(url, {"range": "bytes=3000-3099"}, limit=100, start=3000)
    assert got == BODY[3000:3100]


def test_a_bounded_read_stops_at_its_bound(url: str) -> None:
    assert read_file_bytes(url, {}, limit=11) == BODY[:11]
    assert read_file_bytes(url, {}, limit=len(BODY) + 1) == BODY  # the whole file fits


@pytest.mark.parametrize("honours_range", [True, False], ids=["honours-range", "ignores-range"])
def test_a_read_dropped_mid_body_resumes_where_it_broke(
    honours_range: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard's header read whose connection drops after 1.5 MB: the first MB (one chunk)
    was taken, the rest is asked for by Range from there (a server that ignores the Range
    sends the whole file again, its first MB skipped); the bytes are the file's."""
    from reranker_seqcls.hub import reads

    monkeypatch.setattr(reads.time, "sleep", lambda _: None)
    ranges: list[str | None] = []
    served = _serve(honours_range=honours_range, body=BIG, drops=[1_500_000], ranges=ranges)
    url = next(served)
    try:
        got = read_file_bytes(url, {"range": f"bytes=100-{len(BIG) - 1}"}, limit=len(BIG) - 100,
                              start=100)  # fmt: skip
        assert got == BIG[100:]
        # the first chunk: CHUNK bytes from byte 100, or the whole file's first CHUNK bytes
        resumed_at = 100 + reads.CHUNK if honours_range else reads.CHUNK
        assert ranges == [f"bytes=100-{len(BIG) - 1}", f"bytes={resumed_at}-"]
    finally:
        served.close()


def test_a_read_that_keeps_dropping_raises_the_network_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After MAX_RETRIES resumptions the connection's own error is raised (the callers' Hub
    error mapping names it: exit 3), not a RuntimeError of the retry machinery (exit 4)."""
    from reranker_seqcls.hub import reads
    from reranker_seqcls.hub.errors import is_network_exception

    monkeypatch.setattr(reads.time, "sleep", lambda _: None)
    ranges: list[str | None] = []
    served = _serve(body=BIG, drops=[10] * (reads.MAX_RETRIES + 1), ranges=ranges)
    url = next(served)
    try:
        with pytest.raises(Exception) as raised:
            read_file_bytes(url, {}, limit=len(BIG))
        assert is_network_exception(raised.value), repr(raised.value)
        assert len(ranges) == reads.MAX_RETRIES + 1
    finally:
        served.close()
