"""The Hub reads a run makes itself (revision and head lookups) retry through huggingface_hub's
own backoff: rate limits wait as long as ``Retry-After`` says, and a limit that outlasts the
retries exits 3; a translated Hub error carries its cause for ``--debug``. The real CLI
(``plan``: revision + target lookups, no torch; ``convert`` of a Hub id) against the loopback
Hub."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from tests.loopback_hub.fixtures import TEST_TOKEN, TEST_USER

UPSTREAM = "qwen-team/Qwen3-Reranker-tiny"
TARGET = f"{TEST_USER}/Qwen3-Reranker-tiny-seq-cls"


def _plan(hub_env, tmp_path: Path):
    fleet = tmp_path / "rerankers.yml"
    fleet.write_text(yaml.safe_dump({"rerankers": [{"model": UPSTREAM, "target": TARGET}]}))
    started = time.monotonic()
    result = run_cli("plan", fleet, env=hub_env, cwd=tmp_path)
    return result, time.monotonic() - started


def test_rate_limit_with_retry_after_is_waited_out_and_retried(hub_server, hub_env, tmp_path):
    sha = hub_server.seed_repo(UPSTREAM, {"config.json": b"{}"})
    baseline, quick = _plan(hub_env, tmp_path)
    assert baseline.returncode == 0, baseline.stderr
    fault = hub_server.fail_nth(
        1, 429, path_contains=f"/api/models/{UPSTREAM}", method="GET", headers={"Retry-After": "3"}
    )
    result, slow = _plan(hub_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert fault.triggered == 1 and fault.seen >= 2  # the rate-limited lookup was sent again
    (item,) = json.loads(result.stdout.strip().splitlines()[-1])["include"]
    assert item["source_sha"] == sha and item["target_repo"] == TARGET
    # Retry-After: 3 is waited out (the plain backoff would wait 1 s).
    assert slow - quick >= 3, (slow, quick)


def test_rate_limit_that_never_ends_is_a_hub_failure(hub_server, hub_env, tmp_path):
    hub_server.seed_repo(UPSTREAM, {"config.json": b"{}"})
    fault = hub_server.fail_nth(
        1, 429, path_contains=f"/api/models/{UPSTREAM}", method="GET", times=None
    )
    result, _ = _plan(hub_env, tmp_path)
    assert fault.triggered == 4  # the first try and three retries
    assert result.returncode == 3, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "rate-limited" in last and "try again later" in last, last
    assert "Traceback" not in result.stderr


def test_debug_shows_the_hub_exception_behind_the_one_line_error(hub_server, hub_env, tmp_path):
    missing = "nobody/Qwen3-Reranker-missing"
    plain = run_cli("convert", missing, tmp_path / "out", env=hub_env)
    debug = run_cli("--debug", "convert", missing, tmp_path / "out", env=hub_env)
    assert plain.returncode == debug.returncode == 2
    line = plain.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: source {missing}: repository not found"), line
    assert "Traceback" not in plain.stderr
    assert debug.stderr.strip().splitlines()[-1] == line  # the same one line, after the cause
    assert "RepositoryNotFoundError" in debug.stderr
    assert "was the direct cause of the following exception" in debug.stderr
    assert TEST_TOKEN not in debug.stderr + debug.stdout
    assert not (tmp_path / "out").exists()


def test_a_translated_error_keeps_its_message_and_its_cause() -> None:
    from huggingface_hub.errors import HFValidationError

    from reranker_seqcls.errors import BadInput
    from reranker_seqcls.hub.errors import hub_errors

    refused = HFValidationError("Repo id must use alphanumeric chars")
    with pytest.raises(BadInput) as caught, hub_errors("push to me/x"), hub_errors("source a/b"):
        raise refused
    assert str(caught.value) == (
        "source a/b: the Hub client refused the name (Repo id must use alphanumeric chars)"
    )
    assert caught.value.__cause__ is refused
    with pytest.raises(KeyError), hub_errors("source a/b"):  # not the Hub's: an internal error
        raise KeyError("bug")
