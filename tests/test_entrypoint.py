"""The image's ``entrypoint`` script, without Docker: it runs as a subprocess the way the Actions
runner starts it (``GITHUB_ACTIONS=true``, ``INPUT_*`` variables, ``GITHUB_OUTPUT`` and
``GITHUB_STEP_SUMMARY`` files), with a stand-in CLI (``RERANKER_SEQCLS_CLI``) that records how it
was called and writes the result JSON it is told to."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "entrypoint"
TOKEN = "hf_entrypointTestToken0123456789"

FAKE_CLI = r"""
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_CLI_RECORD"], "w", encoding="utf-8") as f:
    json.dump({
        "argv": args,
        "hf_token": os.environ.get("HF_TOKEN"),
        "token_inputs": sorted(k for k in os.environ if k.upper().startswith("INPUT_HF")),
        "progress_bars_off": os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS"),
    }, f)
sys.stdout.write(os.environ.get("FAKE_CLI_STDOUT", "converting...\n"))
sys.stdout.flush()
sys.stderr.write(os.environ.get("FAKE_CLI_STDERR", ""))
result = os.environ.get("FAKE_CLI_RESULT")
if result is not None and "--result-json" in args:
    with open(args[args.index("--result-json") + 1], "w", encoding="utf-8") as f:
        f.write(result)
sys.exit(int(os.environ.get("FAKE_CLI_EXIT", "0")))
"""

PARITY_TABLE = (
    "| pair | original | converted | abs diff |\n"
    "|---|---|---|---|\n"
    "| 1 | 0.91 | 0.91 | 1.2e-07 |\n"
    "| 2 | 0.12 | 0.12 | 3.0e-08 |\n"
)


def result_json(**overrides: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "status": "pushed",
        "skipped": False,
        "target_repo": "acme/tiny-seq-cls",
        "target_url": "https://huggingface.co/acme/tiny-seq-cls",
        "commit_sha": "c0ffee" + "0" * 34,
        "pr_url": None,
        "source_repo": "acme/tiny-reranker",
        "source_sha": "5ca1ab1e" + "0" * 32,
        "parity": {
            "passed": True,
            "max_abs_diff": 1.2e-07,
            "spearman": 1.0,
            "table_markdown": PARITY_TABLE,
        },
        "message": "pushed acme/tiny-seq-cls",
    }
    result.update(overrides)
    return result


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    record: dict[str, Any] | None
    outputs_text: str
    summary: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    @property
    def outputs(self) -> dict[str, str]:
        return parse_github_output(self.outputs_text)


def parse_github_output(text: str) -> dict[str, str]:
    """Parse a ``$GITHUB_OUTPUT`` file as the runner does (``name=value`` and heredocs)."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        heredoc = re.fullmatch(r"([^=<]+)<<(.+)", line)
        if heredoc and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = heredoc.groups()
            body: list[str] = []
            while lines[i] != delimiter:
                body.append(lines[i])
                i += 1
            i += 1
            out[name] = "\n".join(body)
        else:
            name, _, value = line.partition("=")
            out[name] = value
    return out


@pytest.fixture
def run_entrypoint(tmp_path: Path):
    fake = tmp_path / "fake_cli.py"
    fake.write_text(FAKE_CLI, encoding="utf-8")
    record = tmp_path / "record.json"
    outputs = tmp_path / "github_output"
    summary = tmp_path / "step_summary"

    def run(
        inputs: Mapping[str, str] | None = None,
        *,
        args: list[str] | None = None,
        result: dict[str, Any] | str | None = None,
        exit_code: int = 0,
        actions: bool = True,
        extra_env: Mapping[str, str] | None = None,
    ) -> Run:
        outputs.write_text("earlier_step=kept\n", encoding="utf-8")
        summary.write_text("", encoding="utf-8")
        record.unlink(missing_ok=True)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("INPUT_", "GITHUB_", "HF_", "HUGGING_FACE_"))
        }
        env.update(
            {
                "RERANKER_SEQCLS_CLI": f"{shlex.quote(sys.executable)} {shlex.quote(str(fake))}",
                "FAKE_CLI_RECORD": str(record),
                "FAKE_CLI_EXIT": str(exit_code),
                "GITHUB_OUTPUT": str(outputs),
                "GITHUB_STEP_SUMMARY": str(summary),
            }
        )
        if actions:
            env["GITHUB_ACTIONS"] = "true"
        if result is not None:
            env["FAKE_CLI_RESULT"] = result if isinstance(result, str) else json.dumps(result)
        for name, value in (inputs or {}).items():
            env[f"INPUT_{name.upper()}"] = value
        env.update(extra_env or {})
        proc = subprocess.run(
            [sys.executable, str(ENTRYPOINT), *(args or [])],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Run(
            returncode=proc.returncode,
            stdout=proc.stdout,
            stderr=proc.stderr,
            record=json.loads(record.read_text("utf-8")) if record.exists() else None,
            outputs_text=outputs.read_text("utf-8"),
            summary=summary.read_text("utf-8"),
        )

    return run


def action_inputs(**given: str) -> dict[str, str]:
    """Every input of action.yml with its default, as the runner passes them, plus ``given``."""
    spec = yaml.safe_load((ROOT / "action.yml").read_text("utf-8"))
    inputs = {name: str(meta.get("default", "")) for name, meta in spec["inputs"].items()}
    unknown = set(given) - set(inputs)
    assert not unknown, f"not inputs of action.yml: {unknown}"
    inputs.update(given)
    return inputs


BASIC = {"model": "acme/tiny-reranker", "target_repo": "acme/tiny-seq-cls", "hf_token": TOKEN}


def test_action_builds_the_run_command_from_the_inputs(run_entrypoint) -> None:
    run = run_entrypoint(
        action_inputs(
            **BASIC,
            revision="v1",
            preset="qwen3-reranker",
            output_dir="out dir",
            private="true",
            dry_run="True",
            force="false",
        ),
        result=result_json(),
    )
    assert run.returncode == 0, run.stderr
    assert run.record is not None
    argv = run.record["argv"]
    assert argv[:-2] == [
        "run",
        "--model", "acme/tiny-reranker",
        "--target", "acme/tiny-seq-cls",
        "--revision", "v1",
        "--preset", "qwen3-reranker",
        "--output-dir", "out dir",
        "--private",
        "--dry-run",
    ]  # fmt: skip
    assert argv[-2] == "--result-json"
    # The token reaches the CLI through HF_TOKEN only: not as an argument, not as an input.
    assert run.record["hf_token"] == TOKEN
    assert TOKEN not in argv
    assert run.record["token_inputs"] == []
    assert run.record["progress_bars_off"] == "1"


def test_custom_recipe_inputs_and_hyphenated_spellings(run_entrypoint, tmp_path: Path) -> None:
    inputs = {
        "MODEL": "acme/custom",
        "TARGET-REPO": "acme/custom-seq-cls",
        "TOKENS": '["no", "yes"]',
        "METHOD": "from_2_way_softmax",
        "TEMPLATE": "templates/custom.jinja",
        "CREATE-PR": "yes",
        "DRY-RUN": "false",
        "HF-TOKEN": TOKEN,
    }
    run = run_entrypoint(inputs, result=result_json(pr_url="https://hf.co/acme/x/discussions/1"))
    assert run.returncode == 0, run.stderr
    assert run.record is not None
    assert run.record["argv"][:-2] == [
        "run",
        "--model", "acme/custom",
        "--target", "acme/custom-seq-cls",
        "--tokens", '["no", "yes"]',
        "--method", "from_2_way_softmax",
        "--template", "templates/custom.jinja",
        "--create-pr",
    ]  # fmt: skip
    assert run.record["hf_token"] == TOKEN
    assert run.record["token_inputs"] == []


def test_token_is_masked_before_anything_else_and_scrubbed(run_entrypoint) -> None:
    run = run_entrypoint(
        action_inputs(**BASIC),
        result=result_json(message=f"pushed with {TOKEN}"),
        extra_env={
            "FAKE_CLI_STDOUT": f"debug: token is {TOKEN}\n",
            "FAKE_CLI_STDERR": f"warning: Authorization: Bearer {TOKEN}\n",
        },
    )
    assert run.returncode == 0, run.stderr
    assert run.lines[0] == f"::add-mask::{TOKEN}"
    rest = "\n".join(run.lines[1:]) + run.stderr + run.outputs_text + run.summary
    assert TOKEN not in rest
    assert "debug: token is ***" in run.stdout
    assert "Bearer ***" in run.stderr


def test_token_from_the_environment_is_masked_too(run_entrypoint) -> None:
    inputs = action_inputs(model="acme/tiny-reranker", target_repo="acme/tiny-seq-cls")
    run = run_entrypoint(inputs, result=result_json(), extra_env={"HF_TOKEN": TOKEN})
    assert run.returncode == 0, run.stderr
    assert run.lines[0] == f"::add-mask::{TOKEN}"
    assert run.record is not None and run.record["hf_token"] == TOKEN


def test_phases_are_grouped_and_cli_output_cannot_issue_commands(run_entrypoint) -> None:
    run = run_entrypoint(
        action_inputs(**BASIC),
        result=result_json(),
        extra_env={"FAKE_CLI_STDOUT": "::set-output name=target_url::https://evil.example\n"},
    )
    assert run.returncode == 0, run.stderr
    groups = [line for line in run.lines if line.startswith("::group::")]
    assert groups == [
        "::group::Inputs",
        "::group::Convert acme/tiny-reranker to acme/tiny-seq-cls",
        "::group::Outputs",
    ]
    assert sum(line == "::endgroup::" for line in run.lines) == 3
    # The CLI's output sits between ::stop-commands::T and ::T::, so the runner ignores the
    # workflow command it printed.
    stop = next(i for i, line in enumerate(run.lines) if line.startswith("::stop-commands::"))
    token = run.lines[stop].removeprefix("::stop-commands::")
    resume = run.lines.index(f"::{token}::")
    injected = run.lines.index("::set-output name=target_url::https://evil.example")
    assert stop < injected < resume
    assert len(token) >= 16
    assert run.outputs["target_url"] == "https://huggingface.co/acme/tiny-seq-cls"


def test_outputs_file_is_appended_in_the_multiline_safe_format(run_entrypoint) -> None:
    run = run_entrypoint(action_inputs(**BASIC), result=result_json())
    assert run.returncode == 0, run.stderr
    assert run.outputs_text.startswith("earlier_step=kept\n")
    outputs = run.outputs
    assert outputs["earlier_step"] == "kept"
    assert outputs["status"] == "pushed"
    assert outputs["skipped"] == "false"
    assert outputs["exit_code"] == "0"
    assert outputs["target_url"] == "https://huggingface.co/acme/tiny-seq-cls"
    assert outputs["commit_sha"] == "c0ffee" + "0" * 34
    assert outputs["source_sha"] == "5ca1ab1e" + "0" * 32
    assert outputs["pr_url"] == ""
    assert outputs["parity_passed"] == "true"
    assert float(outputs["parity_max_abs_diff"]) == pytest.approx(1.2e-07)
    assert float(outputs["parity_spearman"]) == 1.0
    assert outputs["parity_table"] == PARITY_TABLE
    # The multi-line value is a heredoc with a random delimiter; single-line values are plain.
    assert re.search(r"^parity_table<<(ghadelimiter_[0-9a-f-]{36})$", run.outputs_text, re.M)
    assert "\nstatus=pushed\n" in run.outputs_text
    # Every output action.yml declares is written.
    spec = yaml.safe_load((ROOT / "action.yml").read_text("utf-8"))
    assert set(spec["outputs"]) <= set(outputs)


def test_summary_has_links_and_the_parity_table(run_entrypoint) -> None:
    run = run_entrypoint(
        action_inputs(**BASIC),
        result=result_json(),
        extra_env={"HF_ENDPOINT": "http://127.0.0.1:9999/"},
    )
    assert run.returncode == 0, run.stderr
    summary = run.summary
    assert summary.startswith("## reranker-seqcls: pushed\n")
    sha = "5ca1ab1e" + "0" * 32
    assert (
        f"| Source | [acme/tiny-reranker](http://127.0.0.1:9999/acme/tiny-reranker/tree/{sha}) |"
        in summary
    )
    target = "https://huggingface.co/acme/tiny-seq-cls"
    assert f"| Target | [acme/tiny-seq-cls]({target}) |" in summary
    commit = "c0ffee" + "0" * 34
    assert f"| Commit | [`{commit[:12]}`]({target}/commit/{commit}) |" in summary
    assert "| Parity max abs diff | `1.2e-07` |" in summary
    assert "| Parity Spearman | `1` |" in summary
    assert "### Parity: passed\n\n" + PARITY_TABLE in summary


EVIL = "https://evil.example"
HOSTILE_HUB_VALUES = {
    # what the Hub answered to create_repo / create_commit, as the CLI's result carries it
    "target_url": f"https://hub.example/acme/x) [re-auth]({EVIL}/login) <img src={EVIL}/t>",
    "pr_url": f"https://hub.example/acme/x/discussions/1\n# pwned [a]({EVIL}/pr)|<b>x</b>",
    "commit_sha": f"`|![c]({EVIL}/c.png)<img src={EVIL}/c>",
    "target_repo": f"acme/x]({EVIL}/repo) <img src={EVIL}/r>",
    "source_sha": f"5ca1ab1e` <img src={EVIL}/s> [s]({EVIL}/s)",
}


def _table_rows(markdown: str) -> list[list[str]]:
    """The rendered table's rows, each the text of its cells (as GitHub's renderer splits
    them)."""
    from markdown_it import MarkdownIt

    rows: list[list[str]] = []
    tokens = MarkdownIt("commonmark", {"html": True}).enable("table").parse(markdown)
    for token in tokens:
        if token.type == "tr_open":
            rows.append([])
        elif token.type == "inline" and rows:
            rows[-1].append(token.content)
    return rows


@pytest.mark.parametrize("hostile", sorted(HOSTILE_HUB_VALUES))
def test_summary_links_hold_hub_values_as_text(run_entrypoint, hostile: str) -> None:
    """A URL, repo name or commit id the Hub returned went into the summary's links unescaped:
    ``)`` ended the link and the rest became live links and HTML, ``|`` split the table row.
    Now each stays inside its own cell, as text or as one link destination."""
    from tests.test_hostile_round2 import live_markup

    values = {"pr_url": "https://hub.example/acme/x/discussions/1"}
    values[hostile] = HOSTILE_HUB_VALUES[hostile]
    result = result_json(**values)
    run = run_entrypoint(action_inputs(**BASIC), result=result)
    assert run.returncode == 0, run.stderr
    summary = run.summary
    assert "evil.example" in summary  # shown ...
    live = live_markup(summary)
    links = [m for m in live if m.startswith("link_open")]
    others = [m for m in live if m not in links]
    assert others == ["heading_open  ''"] * 2, summary  # its own two: no image, HTML or more
    assert len(links) == 4, links  # source, target, commit, pull request: no more
    own = (
        "link_open {'href': 'https://huggingface.co/",
        "link_open {'href': 'https://hub.example/",
    )
    assert all(link.startswith(own) for link in links), links  # each one whole destination
    rows = _table_rows(summary.split("### Parity")[0])
    assert [len(row) for row in rows] == [2] * 9, rows  # header + 8 rows, none split
    assert [row[0] for row in rows[1:4]] == ["Source", "Source revision", "Target"]


def test_skipped_run_reports_skipped(run_entrypoint) -> None:
    result = result_json(
        status="skipped",
        skipped=True,
        commit_sha=None,
        parity=None,
        message="already current: acme/tiny-seq-cls records acme/tiny-reranker@5ca1ab1e",
    )
    run = run_entrypoint(action_inputs(**BASIC), result=result)
    assert run.returncode == 0, run.stderr
    assert run.outputs["skipped"] == "true"
    assert run.outputs["status"] == "skipped"
    assert run.outputs["commit_sha"] == ""
    assert run.outputs["parity_table"] == ""
    assert "::notice title=reranker-seqcls::already current" in run.stdout
    assert run.summary.startswith("## reranker-seqcls: skipped: already current\n")
    assert "### Parity" not in run.summary


def test_failure_becomes_an_error_annotation_and_the_exit_code_passes_through(
    run_entrypoint,
) -> None:
    result = result_json(
        status="failed",
        commit_sha=None,
        target_url="",
        parity={"passed": False, "max_abs_diff": 0.5, "spearman": 0.2, "table_markdown": "| x |"},
        message="parity failed: max abs diff 0.5 > 1e-3; nothing was pushed",
    )
    run = run_entrypoint(
        action_inputs(**BASIC),
        result=result,
        exit_code=1,
        extra_env={"FAKE_CLI_STDERR": "error: parity failed\n"},
    )
    assert run.returncode == 1
    errors = [line for line in run.lines if line.startswith("::error")]
    assert errors == [
        "::error title=reranker-seqcls%3A parity check failed (exit 1)::"
        "parity failed: max abs diff 0.5 > 1e-3; nothing was pushed"
    ]
    assert run.outputs["status"] == "failed"
    assert run.outputs["exit_code"] == "1"
    assert run.outputs["parity_passed"] == "false"
    assert "### Parity: failed" in run.summary


def test_failure_without_result_uses_the_last_stderr_line(run_entrypoint) -> None:
    run = run_entrypoint(
        action_inputs(**BASIC),
        exit_code=3,
        extra_env={"FAKE_CLI_STDERR": "retrying...\nerror: Hub unreachable: connection refused\n"},
    )
    assert run.returncode == 3
    assert (
        "::error title=reranker-seqcls%3A Hub or network error (exit 3)::"
        "error: Hub unreachable: connection refused"
    ) in run.lines
    assert run.outputs["status"] == "failed"
    assert run.outputs["message"] == "error: Hub unreachable: connection refused"
    assert run.summary.startswith("## reranker-seqcls: failed\n")


def test_multiline_error_message_is_escaped(run_entrypoint) -> None:
    result = result_json(status="failed", message="first line\nsecond 100%")
    run = run_entrypoint(action_inputs(**BASIC), result=result, exit_code=4)
    assert run.returncode == 4
    assert "::error title=reranker-seqcls%3A failed (exit 4)::first line%0Asecond 100%25" in (
        run.lines
    )
    assert run.outputs["message"] == "first line\nsecond 100%"


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"target_repo": "acme/x"}, "missing required input(s): model"),
        ({"model": "acme/x"}, "missing required input(s): target_repo"),
        ({"model": "a/b", "target_repo": "a/c", "private": "maybe"}, "'private' must be true"),
    ],
)
def test_bad_inputs_exit_2_without_running_the_cli(
    run_entrypoint, inputs: dict[str, str], expected: str
) -> None:
    run = run_entrypoint(action_inputs(**inputs, hf_token=TOKEN))
    assert run.returncode == 2
    assert run.record is None
    assert run.lines[0] == f"::add-mask::{TOKEN}"
    errors = [line for line in run.lines if line.startswith("::error")]
    assert len(errors) == 1
    assert errors[0].startswith("::error title=reranker-seqcls%3A bad input (exit 2)::")
    assert expected in errors[0]
    assert run.outputs["status"] == "failed"
    assert run.outputs["exit_code"] == "2"


@pytest.mark.parametrize("actions", [False, True])
def test_arguments_pass_through_unchanged(run_entrypoint, actions: bool) -> None:
    args = ["run", "--model", "acme/a b", "--target", "acme/t", "--tokens", '["no", "yes"]']
    run = run_entrypoint(
        {"model": "ignored/when-args-given"},
        args=args,
        exit_code=5,
        actions=actions,
        extra_env={"FAKE_CLI_STDOUT": "plain output\n"},
    )
    assert run.returncode == 5
    assert run.record is not None
    assert run.record["argv"] == args
    assert run.stdout.endswith("plain output\n")
    assert "::group::" not in run.stdout
    assert run.outputs_text == "earlier_step=kept\n"  # no outputs, no summary
    assert run.summary == ""


def test_pass_through_masks_the_token_inside_a_workflow(run_entrypoint) -> None:
    run = run_entrypoint(args=["presets"], extra_env={"HF_TOKEN": TOKEN})
    assert run.returncode == 0
    assert run.lines[0] == f"::add-mask::{TOKEN}"


def test_no_arguments_outside_actions_runs_the_cli_bare(run_entrypoint) -> None:
    run = run_entrypoint(action_inputs(**BASIC), actions=False, args=[])
    assert run.record is not None
    assert run.record["argv"] == []
    assert "::add-mask::" not in run.stdout


def test_default_cli_is_the_installed_reranker_seqcls() -> None:
    """Without the override the entrypoint runs the real CLI (here: the project's venv)."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("RERANKER_SEQCLS_CLI", "GITHUB_ACTIONS")
    }
    proc = subprocess.run(
        [sys.executable, str(ENTRYPOINT), "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage: reranker-seqcls" in proc.stdout


def test_entrypoint_is_an_executable_script_for_the_image_python() -> None:
    assert os.access(ENTRYPOINT, os.X_OK)
    assert ENTRYPOINT.read_text("utf-8").splitlines()[0] == "#!/opt/venv/bin/python"
