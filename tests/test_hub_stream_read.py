"""The GGUF second pass's read of a source shard (``hub/stream_read.stream_verified``) against
the loopback Hub, through the real huggingface_hub client: every byte of the commit's file in
one GET, resumed by a Range request after a connection dropped mid-body; other bytes under the
same listing (sha256) or another header than the planned one are refused in a fetch's words
(exit 3). One small LFS file, no model: a few seconds."""

from __future__ import annotations

import json

from reranker_seqcls.hub.reads import CHUNK
from tests.loopback_hub.fixtures import run_python

REPO = "qwen-team/stream-read"
NAME = "model.safetensors"
MAKE_DATA = 'b"H" * 64 + bytes(range(256)) * 12288'  # 3 MB; its "header": the first 64 bytes
DATA = eval(MAKE_DATA)  # the literal above, built in the subprocess too

READ = """
import json, sys
from reranker_seqcls.errors import HubError
from reranker_seqcls.hub.reads import head_commit
from reranker_seqcls.hub.stream_fetch import list_source
from reranker_seqcls.hub.stream_read import stream_verified
listing = list_source({repo!r}, head_commit({repo!r}, None, None), None)
out = bytearray()
try:
    for chunk in stream_verified(listing, {name!r}, None, {header!r}):
        out += chunk
    print(json.dumps({{"ok": bytes(out) == {data}, "size": len(out)}}))
except HubError as exc:
    print(json.dumps({{"error": str(exc), "size": len(out)}}))
"""


def _read(hub_env: dict[str, str], header: bytes = DATA[:64]) -> dict[str, object]:
    done = run_python(READ.format(repo=REPO, name=NAME, header=header, data=MAKE_DATA), hub_env)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_dropped_stream_is_resumed_by_range_and_proven_whole(hub_server, hub_env) -> None:
    hub_server.seed_repo(REPO, {NAME: DATA, "config.json": b"{}"})
    hub_server.drop_nth(1, path_contains=NAME, method="GET", during="response",
                        after_bytes=1_500_000)  # fmt: skip
    assert _read(hub_env) == {"ok": True, "size": len(DATA)}
    gets = [r for r in hub_server.requests if r.method == "GET" and NAME in r.path]
    assert len(gets) == 2 and gets[0].fault == "drop"
    # the rest only, by Range: from the first byte the reader had not been given (its 1 MB reads)
    assert gets[1].bytes_out == len(DATA) - CHUNK


def test_other_bytes_or_another_header_are_refused(hub_server, hub_env) -> None:
    hub_server.seed_repo(REPO, {NAME: DATA, "config.json": b"{}"})
    wrong = _read(hub_env, header=b"X" * 64)
    assert "another header than its range request answered" in str(wrong["error"]), wrong
    assert wrong["size"] < len(DATA)  # refused as soon as the header passed
    hub_server.serve_instead(REPO, NAME, DATA[:-1] + b"\x00")
    other = _read(hub_env)
    assert "has sha256" in str(other["error"]) and "not the commit's" in str(other["error"])
    assert "nothing was pushed" in str(other["error"]) and other["size"] == len(DATA)


def test_a_longer_or_shorter_stream_is_refused_by_its_size(hub_server, hub_env) -> None:
    """A server that sends more bytes than the listing's size is cut off before the reader is
    handed more than that size; one that sends fewer is refused at the end. Both in a fetch's
    words (exit 3 at the run)."""
    hub_server.seed_repo(REPO, {NAME: DATA, "config.json": b"{}"})
    hub_server.serve_instead(REPO, NAME, DATA + b"\x00" * (2 * CHUNK))
    longer = _read(hub_env)
    assert f"but the Hub lists {len(DATA)}" in str(longer["error"]), longer
    assert "nothing was pushed" in str(longer["error"])
    assert int(str(longer["size"])) <= len(DATA)  # never handed a byte past the listed size
    hub_server.serve_instead(REPO, NAME, DATA[: -CHUNK // 2])
    shorter = _read(hub_env)
    assert f"arrived with {len(DATA) - CHUNK // 2} bytes, but the Hub lists {len(DATA)}" in str(
        shorter["error"]
    ), shorter
