"""Issue 9, hostile inputs and Hub faults: each numbered item of the issue that concerns text,
signals, exit codes and pushes, with the real CLI in a subprocess, the real client against the
loopback Hub, and the real CLI behind the image's entrypoint (as the Actions runner starts it).

* item 4: text from an input or an upstream repo cannot forge a workflow command or reach the
  terminal with control characters;
* item 5: SIGTERM, SIGHUP and SIGINT leave nothing behind in ``convert``, ``run`` and the Action;
* item 7: repo ids the Hub client refuses exit 2, a 5xx storm on LFS upload exits 3;
* item 8: a failed push leaves no new repo, a lost commit answer gives one consistent outcome;
* item 10: ``push`` renders the parity table from ``parity_report.json``, ``check`` detects
  the family like ``convert``, a missing upstream repo is reported as missing.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reranker_seqcls.safe_text import one_line
from tests.conftest import repo_files, run_cli
from tests.loopback_hub.fixtures import TEST_TOKEN, TEST_USER

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "entrypoint"
UPSTREAM = "qwen-team/Qwen3-Reranker-tiny"
TARGET = f"{TEST_USER}/Qwen3-Reranker-tiny-seq-cls"
CLI = [sys.executable, "-m", "reranker_seqcls"]
STOP_SIGNALS = [signal.SIGTERM, signal.SIGHUP, signal.SIGINT]
FORGED = "\n::warning::forged\r::add-mask::forged\x1b[2J\u2028::error::forged"


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def upstream(hub_server, tiny_model) -> str:
    files = repo_files(tiny_model("qwen3", tied=False, num_shards=2))
    files["README.md"] = b"---\nlicense: apache-2.0\n---\n# tiny upstream reranker\n"
    return hub_server.seed_repo(UPSTREAM, files)


def runner_commands(text: str) -> list[str]:
    """The workflow commands the Actions runner would execute in a step's log: every line that
    starts with ``::`` (after blanks) or holds the legacy ``##[``, outside the
    ``::stop-commands::TOKEN`` … ``::TOKEN::`` windows. Lines split as .NET's ReadLine does."""
    commands: list[str] = []
    resume: str | None = None
    for line in re.split(r"\r\n|\r|\n", text):
        stripped = line.lstrip()
        if resume is not None:
            if stripped == resume:
                resume = None
            continue
        if stripped.startswith("::stop-commands::"):
            resume = f"::{stripped.removeprefix('::stop-commands::')}::"
        elif stripped.startswith("::") or "##[" in line:
            commands.append(stripped)
    return commands


def assert_one_clean_error(result: subprocess.CompletedProcess[str], code: int, fragment: str):
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


def action_env(hub_env: dict[str, str], tmp_path: Path, **inputs: str) -> dict[str, str]:
    """The environment the runner gives the container: inputs, GITHUB_* files, the real CLI."""
    env = {k: v for k, v in hub_env.items() if not k.startswith(("INPUT_", "GITHUB_"))}
    (tmp_path / "github_output").write_text("")
    (tmp_path / "step_summary").write_text("")
    env.update(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_OUTPUT": str(tmp_path / "github_output"),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "step_summary"),
            "RERANKER_SEQCLS_CLI": shlex.join(CLI),
        }
    )
    for name, value in inputs.items():
        env[f"INPUT_{name.upper()}"] = value
    return env


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"exited {proc.returncode} first: {proc.communicate()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def interrupted_line(sig: signal.Signals) -> str:
    """The CLI's last line when ``sig`` stopped it (Ctrl-C keeps its historical wording)."""
    by = "" if sig == signal.SIGINT else f" by {sig.name}"
    return f"error: interrupted{by}; nothing was written"


def tree(directory: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``directory`` with its size and mtime (directories included)."""
    return {
        p.relative_to(directory).as_posix(): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in directory.rglob("*")
    }


# --------------------------------------------------------------------------- item 4


def test_item4_sanitizer_escapes_every_control_character() -> None:
    text = "a\nb\rc\td\x00e\x1b[31mf\x7fg\x85h\x9bi\u2028j\u2029k\u202el\u2066m ##[error]n"
    line = one_line(text)
    assert line == (
        "a\\nb\\rc\\td\\x00e\\x1b[31mf\\x7fg\\x85h\\x9bi\\u2028j\\u2029k\\u202el\\u2066m "
        "#\\x23[error]n"
    )
    assert line.isprintable() and len(line.splitlines()) == 1
    assert one_line("Qwen3-Reranker-0.6B | ü 中 ✓") == "Qwen3-Reranker-0.6B | ü 中 ✓"


def test_item4_hostile_names_cannot_forge_commands_cli_hub_and_action(
    hub_server, hub_env, tiny_model, tmp_path
) -> None:
    # A hostile upstream repo: its index names a shard whose name carries a newline and
    # workflow commands; the error that names it must stay one inert line.
    files = repo_files(tiny_model("qwen3", tied=False, num_shards=2))
    index = json.loads(files["model.safetensors.index.json"])
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = "model-00001-of-00002.safetensors" + FORGED
    files["model.safetensors.index.json"] = json.dumps(index).encode()
    hostile = "qwen-team/Qwen3-Reranker-hostile"
    hub_server.seed_repo(hostile, files)
    local = tmp_path / "Qwen3-Reranker-hostile"
    shutil.copytree(tiny_model("qwen3", tied=False, num_shards=2), local)
    (local / "model.safetensors.index.json").write_bytes(files["model.safetensors.index.json"])

    runs = {
        "local source": run_cli("convert", local, tmp_path / "out1", "--preset", "qwen3-reranker"),
        "hub source": run_cli("convert", hostile, tmp_path / "out2", env=hub_env),
        "argument": run_cli("convert", f"acme/Qwen3-Reranker{FORGED}", tmp_path / "out3"),
        "run --target": run_cli("run", "--model", str(local), "--target", f"a/b{FORGED}"),
    }
    for case, result in runs.items():
        assert result.returncode == 2, (case, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) <= 2 and lines[-1].startswith("error: "), (case, result.stderr)
        assert runner_commands(result.stdout + result.stderr) == [], case
        assert "\x1b" not in result.stderr and "\u2028" not in result.stderr, case
        assert "forged" in result.stderr, case  # named (escaped), not dropped
    assert not any((tmp_path / name).exists() for name in ("out1", "out2", "out3"))

    # The Action: the real CLI behind the entrypoint, with a hostile input and the hostile repo.
    for model, target in ((hostile, TARGET), (UPSTREAM, f"{TARGET}{FORGED}")):
        env = action_env(hub_env, tmp_path, model=model, target_repo=target)
        proc = subprocess.run(
            [sys.executable, str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 2, proc.stderr
        commands = runner_commands(proc.stdout + proc.stderr)
        names = [re.match(r"::([a-z-]+)", command).group(1) for command in commands]
        assert names == [
            "add-mask", "group", "endgroup", "group", "endgroup", "group", "endgroup", "error"
        ], commands  # fmt: skip
        assert commands[0] == f"::add-mask::{TEST_TOKEN}"
        assert "forged" not in commands[0] + commands[-2]
        assert "\x1b" not in proc.stdout + proc.stderr
        outputs = (tmp_path / "github_output").read_text()
        assert "exit_code=2" in outputs.splitlines() and "\x1b" not in outputs
        assert not hub_server.repo_exists(TARGET)


# --------------------------------------------------------------------------- item 5


@pytest.fixture(scope="module")
def big_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real multi-shard Qwen3 checkpoint big enough (650 MB in 3 shards, untied) that
    ``convert --copy`` writes for most of a second after its temporary directory appears."""
    sys.path.insert(0, str(ROOT))
    from bench.synthetic import Shape, build_checkpoint

    shape = Shape("signals", "signal test", 1024, 2, 1024, 8, 4, 128, 151669, tied=False)
    out = tmp_path_factory.mktemp("big") / "Qwen3-Reranker-big"
    build_checkpoint(shape, out, max_shard_bytes=160 * 10**6)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sig", STOP_SIGNALS, ids=lambda s: s.name)
def test_item5_signal_during_convert_leaves_nothing(big_model, tmp_path, sig) -> None:
    assert len(list(big_model.glob("model-*.safetensors"))) == 3
    before = tree(big_model)
    parent = tmp_path / "new" / "parents"
    output = parent / "out"
    command = [*CLI, "convert", str(big_model), str(output), "--preset", "qwen3-reranker", "--copy"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: parent.is_dir() and any(parent.glob(".out.tmp-*")), proc, timeout=120)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, stderr
    assert stderr.strip().splitlines()[-1] == interrupted_line(sig)
    assert "Traceback" not in stderr
    assert not (tmp_path / "new").exists()  # no temporary directory, no created parent
    assert tree(big_model) == before


def _run_until_converted(
    env: dict[str, str], tmp: Path, command: list[str], sig: signal.Signals
) -> tuple[int, str, str]:
    """Start ``command``, send ``sig`` once a converted checkpoint exists (the parity check is
    then running), and return its exit code and output."""
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for(lambda: any(tmp.glob("reranker-seqcls-*/converted/config.json")) or any(
        tmp.glob("kept/out/config.json")), proc, timeout=300)  # fmt: skip
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=300)
    return proc.returncode, stdout, stderr


@pytest.mark.slow
@pytest.mark.parametrize("sig", STOP_SIGNALS, ids=lambda s: s.name)
def test_item5_signal_during_run_leaves_nothing(hub_server, hub_env, upstream, tmp_path, sig):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**hub_env, "TMPDIR": str(tmp)}
    result_json = tmp_path / "result.json"
    command = [
        *CLI,
        "run",
        "--model",
        UPSTREAM,
        "--target",
        TARGET,
        "--result-json",
        str(result_json),
    ]
    if sig == signal.SIGHUP:  # the kept --output-dir, created by this run, goes too
        command += ["--output-dir", str(tmp / "kept" / "out")]
    code, _, stderr = _run_until_converted(env, tmp, command, sig)
    assert code == 128 + sig, stderr
    assert stderr.strip().splitlines()[-1] == interrupted_line(sig)
    assert list(tmp.iterdir()) == []
    assert not hub_server.repo_exists(TARGET)
    result = json.loads(result_json.read_text())
    assert result["status"] == "failed" and sig.name in result["message"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", STOP_SIGNALS, ids=lambda s: s.name)
def test_item5_action_passes_signals_on_and_leaves_nothing(
    hub_server, hub_env, upstream, tmp_path, sig
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**action_env(hub_env, tmp_path, model=UPSTREAM, target_repo=TARGET), "TMPDIR": str(tmp)}
    code, stdout, stderr = _run_until_converted(env, tmp, [sys.executable, str(ENTRYPOINT)], sig)
    assert code == 128 + sig, stderr
    assert list(tmp.iterdir()) == []  # the CLI's temporary directory and the entrypoint's
    assert not hub_server.repo_exists(TARGET)
    assert interrupted_line(sig) in stderr.splitlines()
    errors = [c for c in runner_commands(stdout) if c.startswith("::error")]
    assert len(errors) == 1 and f"interrupted by {sig.name}" in errors[0], errors
    outputs = (tmp_path / "github_output").read_text().splitlines()
    assert f"exit_code={128 + sig}" in outputs and "status=failed" in outputs


def test_a_check_leaves_nothing_in_tmpdir_and_keeps_a_chosen_torch_cache(tiny_model, tmp_path):
    """Importing sentence-transformers makes torch create $TMPDIR/torchinductor_$USER; the CLI
    gives torch a cache directory of its own instead and removes it at exit. A cache directory
    the user set is used as set."""
    source = tiny_model("qwen3")
    converted = tmp_path / "converted"
    assert run_cli("convert", source, converted, "--preset", "qwen3-reranker").returncode == 0
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    # torch sets the variable in the process that imports it (this one): the CLI gets none
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    env["TMPDIR"] = str(tmp)
    check = [*CLI, "check", str(source), str(converted), "--preset", "qwen3-reranker"]
    result = subprocess.run(check, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert list(tmp.iterdir()) == []
    chosen = tmp_path / "my-inductor-cache"
    env["TORCHINDUCTOR_CACHE_DIR"] = str(chosen)
    result = subprocess.run(check, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert chosen.is_dir() and list(tmp.iterdir()) == []


# --------------------------------------------------------------------------- item 7

CLIENT_REFUSES = [
    pytest.param(f"{TEST_USER}/name\n", id="trailing-newline"),
    pytest.param(f"{TEST_USER}/{'x' * 97}", id="over-96"),
    pytest.param("ｌｏｏｐｂａｃｋ-user/ｎａｍｅ", id="full-width"),
]


@pytest.mark.parametrize("repo_id", CLIENT_REFUSES)
def test_item7_repo_ids_the_client_refuses_exit_2(
    hub_server, hub_env, tiny_model, repo_id, tmp_path
):
    converted = tmp_path / "converted"
    assert (
        run_cli("convert", tiny_model("qwen3"), converted, "--preset", "qwen3-reranker").returncode
        == 0
    )
    hub_server.clear_requests()
    runs = {
        "--target": run_cli("run", "--model", UPSTREAM, "--target", repo_id, env=hub_env),
        "--model": run_cli("run", "--model", repo_id, "--target", TARGET, env=hub_env),
        "push TARGET": run_cli("push", converted, repo_id, env=hub_env),
        "convert HUB_ID": run_cli("convert", repo_id, tmp_path / "out", env=hub_env),
    }
    for role, result in runs.items():
        line = assert_one_clean_error(result, 2, "a Hub repo id")
        assert one_line(repo_id) in line, (role, line)
    assert hub_server.requests == []  # refused before any request
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_item7_lfs_upload_5xx_storm_exits_3(hub_server, hub_env, upstream, tmp_path) -> None:
    fault = hub_server.fail_nth(1, 503, path_contains="/_lfs/", times=None)
    result_json = tmp_path / "result.json"
    result = run_cli(
        "run", "--model", UPSTREAM, "--target", TARGET, "--result-json", result_json, env=hub_env
    )
    assert fault.triggered > 1  # the client retried
    assert result.returncode == 3, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: push to {TARGET}: the Hub failed after retries"), last
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert json.loads(result_json.read_text())["status"] == "failed"
    assert not hub_server.repo_exists(TARGET)  # item 8: the repo it created is gone again


# --------------------------------------------------------------------------- item 8


def _run(hub_env, tmp_path: Path, *args: str | Path, name: str = "result.json"):
    result_path = tmp_path / name
    result = run_cli("run", *args, "--result-json", result_path, env=hub_env)
    return result, json.loads(result_path.read_text())


def test_item8_failed_push_to_a_new_target_leaves_no_repo(hub_server, hub_env, upstream, tmp_path):
    fault = hub_server.drop_nth(1, path_contains="/commit/", method="POST", during="request")
    result, data = _run(hub_env, tmp_path, "--model", UPSTREAM, "--target", TARGET)
    assert fault.triggered == 1
    assert result.returncode == 3, result.stderr
    assert f"removed {TARGET}: this run created it, and the push failed" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: push to {TARGET}: ")
    assert data["status"] == "failed"
    assert not hub_server.repo_exists(TARGET)

    # An existing target is never deleted: it keeps its head.
    head = hub_server.seed_repo(TARGET, {"README.md": b"# placeholder\n"})
    hub_server.drop_nth(1, path_contains="/commit/", method="POST", during="request")
    result, _ = _run(hub_env, tmp_path, "--model", UPSTREAM, "--target", TARGET)
    assert result.returncode == 3, result.stderr
    assert hub_server.head_sha(TARGET) == head


def test_item8_lost_commit_answer_gives_one_outcome(hub_server, hub_env, upstream, tmp_path):
    fault = hub_server.drop_nth(1, path_contains="/commit/", method="POST", during="response")
    result, data = _run(hub_env, tmp_path, "--model", UPSTREAM, "--target", TARGET)
    assert fault.triggered == 1
    assert result.returncode == 0, result.stderr
    head = hub_server.head_sha(TARGET)
    assert data["status"] == "pushed" and data["commit_sha"] == head
    assert (
        result.stdout.strip()
        == f"pushed {UPSTREAM}@{upstream[:12]} to {TARGET} (commit {head[:12]})"
    )
    assert f"answer to the commit was lost, but {TARGET} now holds it" in result.stderr
    assert "score.safetensors" in hub_server.list_files(TARGET)

    rerun, data = _run(hub_env, tmp_path, "--model", UPSTREAM, "--target", TARGET, name="r2.json")
    assert rerun.returncode == 0, rerun.stderr
    assert data["status"] == "skipped" and rerun.stdout.startswith("already current")
    assert hub_server.head_sha(TARGET) == head


def test_item8_push_of_identical_files_says_so_on_both_streams(
    hub_server, hub_env, tiny_model, tmp_path
) -> None:
    converted = tmp_path / "converted"
    assert (
        run_cli("convert", tiny_model("qwen3"), converted, "--preset", "qwen3-reranker").returncode
        == 0
    )
    target = f"{TEST_USER}/pushed"
    hub_server.drop_nth(1, path_contains="/commit/", method="POST", during="response")
    first = run_cli("push", converted, target, "--allow-unchecked", env=hub_env)
    assert first.returncode == 0, first.stderr
    head = hub_server.head_sha(target)
    assert first.stdout.startswith("pushed ") and head[:12] in first.stdout

    again = run_cli("push", converted, target, "--allow-unchecked", env=hub_env)
    assert again.returncode == 0, again.stderr
    assert "no commit was made" in again.stderr
    label = tiny_model("qwen3").name
    assert again.stdout.strip() == (
        f"{target} already holds {label} (commit {head[:12]}): no commit was made"
    )
    assert not again.stdout.startswith("pushed")
    assert hub_server.head_sha(target) == head


# --------------------------------------------------------------------------- item 10


@pytest.mark.slow
def test_item10_push_renders_the_parity_table_from_the_json_report(
    hub_server, hub_env, tiny_model, tmp_path
) -> None:
    source = tiny_model("qwen3")
    converted = tmp_path / "converted"
    assert run_cli("convert", source, converted, "--preset", "qwen3-reranker").returncode == 0
    checked = run_cli("check", source, converted, "--report", converted / "parity_report.json")
    assert checked.returncode == 0, checked.stderr
    (converted / "README.md").unlink()  # convert's short README: push a directory without one
    assert not (converted / "README.md").exists()
    target = f"{TEST_USER}/pushed"
    result = run_cli("push", converted, target, env=hub_env)
    assert result.returncode == 0, result.stderr
    card = hub_server.read_file(target, "README.md").decode()
    assert "**PASS**" in card and "| converted (batched) |" in card and "| tolerance |" in card

    broken = tmp_path / "broken"
    shutil.copytree(converted, broken)
    (broken / "README.md").unlink()
    (broken / "parity_report.json").write_text(json.dumps({"passed": True, "metrics": []}))
    result = run_cli("push", broken, f"{TEST_USER}/broken", env=hub_env)
    assert_one_clean_error(result, 2, "is not a parity report written by reranker-seqcls")
    (broken / "parity_report.json").write_text(json.dumps({"passed": False, "reasons": {}}))
    result = run_cli("push", broken, f"{TEST_USER}/broken", env=hub_env)
    assert_one_clean_error(result, 2, "failed its parity check (see the report)")
    (broken / "parity_report.json").unlink()
    provenance = json.loads((broken / "reranker_seqcls.json").read_text())
    for bad_source in (["a list"], {"repo_id": 7}):
        provenance["source"] = bad_source
        (broken / "reranker_seqcls.json").write_text(json.dumps(provenance))
        result = run_cli("push", broken, f"{TEST_USER}/broken", env=hub_env)
        assert_one_clean_error(result, 2, "is no provenance record of reranker-seqcls")
    assert not hub_server.repo_exists(f"{TEST_USER}/broken")


@pytest.mark.slow
def test_item10_check_detects_the_family_of_a_hub_source_like_convert(
    hub_server, hub_env, upstream, tmp_path
) -> None:
    custom = ["--tokens", '["no", "yes"]', "--method", "from_2_way_softmax"]
    converted = tmp_path / "converted"
    result = run_cli("convert", UPSTREAM, converted, *custom, env=hub_env)
    assert result.returncode == 0, result.stderr
    assert json.loads((converted / "reranker_seqcls.json").read_text())["recipe"]["name"] == (
        "qwen3-reranker"
    )
    result = run_cli("check", UPSTREAM, converted, *custom, env=hub_env)
    assert result.returncode == 0, result.stderr
    assert "parity: PASS" in result.stdout and "recipe qwen3-reranker" in result.stdout


def test_item10_missing_upstream_is_reported_as_missing(hub_server, hub_env, tmp_path) -> None:
    missing = "nobody/some-model"  # no family can be told from this name
    for result in (
        run_cli("convert", missing, tmp_path / "out", env=hub_env),
        run_cli("run", "--model", missing, "--target", TARGET, env=hub_env),
    ):
        assert_one_clean_error(result, 2, "repository not found")
    assert not (tmp_path / "out").exists()
    assert not hub_server.repo_exists(TARGET)


def test_item5_a_signal_ignored_at_start_stays_ignored() -> None:
    """``nohup`` (SIGHUP ignored) keeps SIGHUP ignored: the CLI does not take it back."""
    code = (
        "import signal, sys; from reranker_seqcls.interrupt import raise_on_stop_signals; "
        "signal.signal(signal.SIGHUP, signal.SIG_IGN); raise_on_stop_signals(); "
        "print(signal.getsignal(signal.SIGHUP) is signal.SIG_IGN, "
        "signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
