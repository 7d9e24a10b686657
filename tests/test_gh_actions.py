"""``reranker_seqcls.gh_actions``, the Actions plumbing the image's ``entrypoint`` and the plan
action's ``plan/plan_step.py`` share: standard library only, and the same input reading in both
(issue 19: the two copies differed, the hyphenated ``INPUT_HF-TOKEN`` was read by one only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_ghActionsTestToken0123456789"


def _bare_python(script: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Run with ``-S`` (no site-packages: no click, huggingface_hub, torch) and only ``src`` on
    the path: what runs is the package's standard-library part and nothing else."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_", "HF_"))}
    return subprocess.run(
        [sys.executable, "-S", *script],
        env={**base, "PYTHONPATH": str(ROOT / "src"), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_helper_needs_the_standard_library_only(tmp_path: Path) -> None:
    code = "import json, sys, reranker_seqcls.gh_actions; print(json.dumps(list(sys.modules)))"
    done = _bare_python(["-c", code], {}, tmp_path)
    assert done.returncode == 0, done.stderr
    loaded = {name.split(".")[0] for name in json.loads(done.stdout)}
    assert loaded - set(sys.stdlib_module_names) == {"__main__", "reranker_seqcls"}


@pytest.mark.parametrize("script", ["entrypoint", "plan/plan_step.py"])
def test_both_scripts_read_the_hyphenated_token_input_and_mask_it_first(
    tmp_path: Path, script: str
) -> None:
    """A bad input (exit 2 before any CLI runs) with the token as ``INPUT_HF-TOKEN``: both
    scripts run without site-packages, mask the token as their first line, and write the same
    outputs format."""
    outputs = tmp_path / "github_output"
    outputs.write_text("")
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "INPUT_HF-TOKEN": TOKEN,
        "INPUT_ALL": "maybe",  # the plan step's bad input; the entrypoint lacks model/target_repo
        "RERANKER_SEQCLS_CLI": "false",  # never reached
    }
    done = _bare_python([str(ROOT / script)], env, tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"::add-mask::{TOKEN}", lines
    assert TOKEN not in "\n".join(lines[1:]) + done.stderr
    errors = [line for line in lines if line.startswith("::error ")]
    assert len(errors) == 1 and "bad input (exit 2)" in errors[0], lines
    assert "exit_code=2\n" in outputs.read_text()
