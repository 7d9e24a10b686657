"""The one partial read (``hub.reads.read_file_bytes``) behind a shard's header by Range
requests and a target's bounded record: the asked-for bytes whether the server honours the
Range header (206) or ignores it (200, the whole file, its first bytes skipped), never more
than the bound. A local HTTP server in a thread, no Hub, no model: well under a second."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reranker_seqcls.hub.reads import read_file_bytes

BODY = bytes(range(256)) * 40  # 10,240 bytes


class _Handler(BaseHTTPRequestHandler):
    honours_range = True

    def do_GET(self) -> None:
        spec = self.headers.get("range")
        if spec and self.honours_range:
            start, end = (int(x) for x in spec.removeprefix("bytes=").split("-"))
            self.send_response(206)
            body = BODY[start : end + 1]
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(BODY)}")
        else:
            self.send_response(200)
            body = BODY
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=[True, False], ids=["honours-range", "ignores-range"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    handler = type("Handler", (_Handler,), {"honours_range": request.param})
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
