"""`plan` against the loopback Hub: the real CLI in a subprocess, real `run`s of what it lists."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.loopback_hub.fixtures import TEST_TOKEN, TEST_USER, run_python

UPSTREAM = "qwen-team/Qwen3-Reranker-tiny"
UPSTREAM_B = "qwen-team/Qwen3-Reranker-tiny-b"
MISSING = "nobody/Qwen3-Reranker-missing"
HEAVY_MODULES = (
    "torch",
    "numpy",
    "transformers",
    "tokenizers",
    "safetensors",
    "sentence_transformers",
)


def _target(name: str) -> str:
    return f"{TEST_USER}/{name}"


def _files(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in directory.rglob("*")
        if p.is_file()
    }


def _plan(hub_env, fleet: Path, *args: str | Path) -> tuple[Any, dict[str, Any] | None, str]:
    result = run_cli("plan", fleet, *args, env=hub_env, cwd=fleet.parent)
    assert TEST_TOKEN not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.strip().splitlines()
    data = json.loads(lines[-1]) if lines else None
    return result, data, result.stderr


def _by_target(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["target_repo"]: item for item in data["include"]}


def _run_item(hub_env, item: dict[str, Any], cwd: Path):
    """`run` with the options the matrix item carries, as the convert job passes them."""
    args = ["run", "--model", item["model"], "--target", item["target_repo"]]
    args += ["--revision", item["source_sha"]]
    for key in ("preset", "tokens", "method", "template"):
        if item[key]:
            args += [f"--{key}", item[key]]
    if item["private"]:
        args.append("--private")
    if item["create_pr"]:
        args.append("--create-pr")
    return run_cli(*args, env=hub_env, cwd=cwd)


def _write_fleet(path: Path, entries: list[dict[str, Any]]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"rerankers": entries}, sort_keys=False))
    return path


@pytest.mark.slow  # five real conversions
def test_plan_lists_exactly_the_stale_entries_and_runs_make_it_empty(
    hub_server, hub_env, tiny_model, tmp_path
):
    files = _files(tiny_model("qwen3", tied=False))
    hub_server.seed_repo(UPSTREAM, files)
    old_b = hub_server.seed_repo(UPSTREAM_B, files)
    current, new_commit, missing, tool, recipe, no_source = (
        _target(n)
        for n in ("current-seq-cls", "b-seq-cls", "missing-seq-cls", "tool-seq-cls",
                  "recipe-seq-cls", "no-source-seq-cls")
    )  # fmt: skip
    fleet = _write_fleet(
        tmp_path / "rerankers.yml",
        [
            {"model": UPSTREAM, "target": current},
            {"model": UPSTREAM_B, "target": new_commit, "preset": "qwen3-reranker"},
            {"model": UPSTREAM, "target": missing, "private": True},
            {"model": UPSTREAM, "target": tool},
            {"model": UPSTREAM, "target": recipe},
            {"model": MISSING, "target": no_source},
        ],
    )

    # A real conversion makes `current` current; the other targets record what an earlier
    # conversion would have: the upstream's previous commit, an older tool, another recipe.
    first = run_cli("run", "--model", UPSTREAM, "--target", current, env=hub_env)
    assert first.returncode == 0, first.stderr
    provenance = json.loads(hub_server.read_file(current, "reranker_seqcls.json"))

    def seeded(change) -> bytes:
        record = json.loads(json.dumps(provenance))
        change(record)
        return json.dumps(record).encode()

    def older_b(record):
        record["source"].update(repo_id=UPSTREAM_B, commit_sha=old_b)

    def older_tool(record):
        record["tool"]["version"] = "0.0.1"

    def other_recipe(record):
        record["recipe"]["default_instruction"] = "an instruction of an earlier release"

    hub_server.seed_repo(new_commit, {"reranker_seqcls.json": seeded(older_b)})
    hub_server.seed_repo(tool, {"reranker_seqcls.json": seeded(older_tool)})
    hub_server.seed_repo(recipe, {"reranker_seqcls.json": seeded(other_recipe)})
    new_b = hub_server.commit_files(UPSTREAM_B, {"NOTICE": b"new\n"}, message="upstream update")
    hub_server.clear_requests()

    summary = tmp_path / "summary.md"
    result, data, stderr = _plan(hub_env, fleet, "--summary", summary)
    assert result.returncode == 2, stderr  # the missing source, as `run` exits for it
    planned = _by_target(data)
    assert set(planned) == {new_commit, missing, tool, recipe}
    assert planned[new_commit]["source_sha"] == new_b
    assert planned[new_commit]["reason"] == (
        f"new upstream commit {new_b[:12]} (target has {old_b[:12]})"
    )
    assert planned[missing]["reason"] == "target does not exist yet"
    assert planned[missing]["private"] is True and planned[missing]["create_pr"] is False
    assert planned[tool]["reason"] == "tool version 0.0.1 -> 0.1.0"
    assert planned[recipe]["reason"] == "recipe changed (default_instruction)"
    assert all(item["status"] == "stale" for item in data["include"])
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: entry 6 ({no_source}): source {MISSING}: repository not found")
    # Metadata only: no weights or tokenizer downloaded, nothing written.
    assert hub_server.downloaded_files(UPSTREAM) == {}
    assert hub_server.downloaded_files(UPSTREAM_B) == {}
    assert hub_server.request_count(method="POST") == 0

    table = summary.read_text()
    assert table == stderr[: len(table)]  # the same table on stderr
    rows = {line.split(" | ")[1].split("]")[0][1:]: line for line in table.splitlines()[4:]}
    assert len(rows) == 6
    assert "| current |" in rows[current] and "| stale |" in rows[tool]
    assert "| error |" in rows[no_source] and "repository not found" in rows[no_source]
    assert table.startswith("## reranker-seqcls plan: 4 of 6 need a run, 1 could not be planned")

    _, everything, _ = _plan(hub_env, fleet, "--all")
    statuses = {t: item["status"] for t, item in _by_target(everything).items()}
    assert statuses == {current: "current", new_commit: "stale", missing: "stale",
                        tool: "stale", recipe: "stale"}  # fmt: skip

    for item in data["include"]:
        ran = _run_item(hub_env, item, tmp_path)
        assert ran.returncode == 0, (item, ran.stderr)
        assert "converting: " + item["reason"] in ran.stderr  # run saw what plan saw
        assert "pushed" in ran.stdout
    assert hub_server.is_private(missing)

    result, data, stderr = _plan(hub_env, fleet)
    assert data == {"include": []}
    assert result.returncode == 2
    assert [line for line in stderr.splitlines() if line.startswith("error: ")] == [
        stderr.strip().splitlines()[-1]
    ]
    assert "every target is current, 1 could not be planned" in stderr


def test_hub_failure_on_one_entry_hides_no_other(hub_server, hub_env, tmp_path):
    hub_server.seed_repo(UPSTREAM, {"config.json": b"{}"})
    hub_server.seed_repo(UPSTREAM_B, {"config.json": b"{}"})
    fleet = _write_fleet(
        tmp_path / "rerankers.yml",
        [
            {"model": UPSTREAM, "target": _target("a-seq-cls")},
            {"model": UPSTREAM_B, "target": _target("b-seq-cls")},
        ],
    )
    # Every try of entry 2's upstream lookup fails: the retries give up, exit 3.
    hub_server.fail_nth(1, 503, path_contains=f"/api/models/{UPSTREAM_B}", times=None)
    result, data, stderr = _plan(hub_env, fleet)
    assert result.returncode == 3, stderr
    assert [item["target_repo"] for item in data["include"]] == [_target("a-seq-cls")]
    assert "error: entry 2" in stderr and "the Hub failed after retries" in stderr


def test_plan_of_twenty_entries_is_fast_and_imports_no_torch(hub_server, hub_env, tmp_path):
    from reranker_seqcls import __version__
    from reranker_seqcls.recipes.presets import PRESETS

    recipe = PRESETS["qwen3-reranker"].to_json()
    entries, expected_stale = [], set()
    for i in range(20):
        source, target = f"qwen-team/Qwen3-Reranker-tiny-{i}", _target(f"fleet-{i}-seq-cls")
        sha = hub_server.seed_repo(source, {"config.json": b"{}"})
        entries.append({"model": source, "target": target})
        if i % 4 == 3:  # missing target
            expected_stale.add(target)
            continue
        recorded_sha = sha if i % 4 else "0" * 40  # every fourth from i=0: an older commit
        if not i % 4:
            expected_stale.add(target)
        record = {
            "tool": {"name": "reranker-seqcls", "version": __version__},
            "source": {"repo_id": source, "commit_sha": recorded_sha},
            "recipe": recipe,
        }
        hub_server.seed_repo(target, {"reranker_seqcls.json": json.dumps(record)})
    fleet = _write_fleet(tmp_path / "rerankers.yml", entries)

    started = time.monotonic()
    result = run_cli("plan", fleet, env={**hub_env, "PYTHONPROFILEIMPORTTIME": "1"})
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {item["target_repo"] for item in data["include"]} == expected_stale
    assert len(expected_stale) == 10
    imported = _imports(result.stderr) - _imports(
        run_python("pass", {**hub_env, "PYTHONPROFILEIMPORTTIME": "1"}).stderr
    )  # less what the interpreter's startup imports (site hooks)
    assert "reranker_seqcls.schedule.plan" in imported and "huggingface_hub" in imported
    heavy = {m for m in imported if m.split(".")[0] in HEAVY_MODULES}
    assert not heavy, sorted(heavy)[:5]
    # Everything it imports comes with click, huggingface_hub and PyYAML: the plan action's
    # `pip install --no-deps` of the package plus those three is enough.
    lean = _dependency_closure(["click", "huggingface_hub", "PyYAML"]) | {"reranker-seqcls"}
    owners = importlib.metadata.packages_distributions()
    outside = {
        (module, dist)
        for module in {m.split(".")[0] for m in imported}
        for dist in owners.get(module, [])
        if _canonical(dist) not in lean
    }
    assert not outside, sorted(outside)
    assert elapsed < 5, f"plan of 20 entries took {elapsed:.2f} s"


def _imports(importtime_log: str) -> set[str]:
    return set(re.findall(r"^import time:.*\|\s+([\w.]+)$", importtime_log, re.M))


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dependency_closure(names: list[str]) -> set[str]:
    """The installed distributions ``pip install NAMES`` brings (no extras), canonical names."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if _canonical(name) in seen:
            continue
        seen.add(_canonical(name))
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


PLAN_STEP = Path(__file__).resolve().parents[1] / "plan" / "plan_step.py"


def _plan_step(hub_env, tmp_path: Path, **inputs: str) -> tuple[int, list[str], dict[str, str]]:
    """Run the plan action's step as the runner does; its exit code, its log (stdout and stderr
    in one stream, in order) and what it wrote to $GITHUB_OUTPUT."""
    outputs = tmp_path / "github_output"
    outputs.write_text("")
    env = {
        **hub_env,
        "HF_TOKEN": "",
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        **{f"INPUT_{name.upper()}": value for name, value in inputs.items()},
    }
    done = subprocess.run(
        [sys.executable, str(PLAN_STEP)], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=120, check=False,
    )  # fmt: skip
    written = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    return done.returncode, done.stdout.splitlines(), written


def _outside_window(log: list[str]) -> list[str]:
    """The log lines the runner would act on: all but those inside ::stop-commands::."""
    outside, resume = [], None
    for line in log:
        if resume is None and line.startswith("::stop-commands::"):
            resume = f"::{line.removeprefix('::stop-commands::')}::"
        elif line == resume:
            resume = None
        elif resume is None:
            outside.append(line)
    assert resume is None, "the window was never closed"
    return outside


def test_plan_action_step_writes_outputs_and_summary(hub_server, hub_env, tmp_path):
    """The composite action's plan step: matrix and count outputs, the table in the summary,
    the token masked, every line the fleet or Hub could shape inside a stop-commands window."""
    hub_server.seed_repo(UPSTREAM, {"config.json": b"{}"})
    sha = hub_server.seed_repo(UPSTREAM_B, {"config.json": b"{}"})
    hostile = {  # a target's provenance is Hub text: whoever can write the repo shapes it
        "tool": {"version": "1\n::add-mask::injected"},
        "source": {"repo_id": UPSTREAM_B, "commit_sha": sha},
    }
    hub_server.seed_repo(_target("c-seq-cls"), {"reranker_seqcls.json": json.dumps(hostile)})
    fleet = _write_fleet(
        tmp_path / "rerankers.yml",
        [
            {"model": UPSTREAM, "target": _target("a-seq-cls")},
            {"model": MISSING, "target": _target("b-seq-cls")},
            {"model": UPSTREAM_B, "target": _target("c-seq-cls")},
        ],
    )
    code, log, written = _plan_step(
        hub_env, tmp_path, fleet=fleet.name, all="false", hf_token=TEST_TOKEN
    )
    assert code == 2, log
    assert written["count"] == "2" and written["exit_code"] == "2"
    matrix = json.loads(written["matrix"])["include"]
    assert [i["target_repo"] for i in matrix] == [_target("a-seq-cls"), _target("c-seq-cls")]
    assert "tool version 1?::add-mask::injected -> " in matrix[1]["reason"]
    summary = (tmp_path / "summary.md").read_text()
    assert summary.count("| error |") == 1 and summary.count("| stale |") == 2
    assert log[0] == f"::add-mask::{TEST_TOKEN}"
    assert TEST_TOKEN not in "\n".join(log[1:])
    assert any("injected" in line for line in log)  # shown, inside the window only:
    assert not any(line.startswith("::add-mask::injected") for line in log)
    outside = _outside_window(log[1:])
    assert not any("injected" in line for line in outside)
    assert outside[0] == "2 fleet entries to convert"
    assert outside[1].startswith("::error title=reranker-seqcls plan%3A bad input (exit 2)::")
    assert len(outside) == 2


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ({"fleet": "missing.yml"}, "missing.yml does not exist"),
        ({"fleet": "--help"}, "--help does not exist"),  # a path, never an option
        ({"all": "maybe"}, None),
    ],
)
def test_plan_action_step_bad_input(hub_env, tmp_path, inputs, fragment):
    code, log, written = _plan_step(hub_env, tmp_path, **inputs)
    assert code == 2
    assert written == {"matrix": '{"include":[]}', "count": "0", "exit_code": "2"}
    outside = _outside_window(log)
    assert outside[-1].startswith("::error title=reranker-seqcls plan%3A bad input")
    if fragment is not None:
        assert any(fragment in line for line in log if line not in outside)
