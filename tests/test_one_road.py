"""Issue 19: the six places where convert, check, push and run forked for a user, each through
the real CLI (and the entrypoint) against the loopback Hub."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import repo_files, run_cli
from tests.loopback_hub.fixtures import TEST_USER
from tests.test_hostile_io import ENTRYPOINT, action_env, assert_one_clean_error

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM = "qwen-team/Qwen3-Reranker-tiny"
LICENSED = b"---\nlicense: apache-2.0\n---\n# tiny upstream reranker\n"


@pytest.fixture
def upstream(hub_server, tiny_model) -> str:
    files = repo_files(tiny_model("qwen3", tied=False))
    files["README.md"] = LICENSED
    return hub_server.seed_repo(UPSTREAM, files)


def _card(hub_server, repo: str):
    from huggingface_hub import ModelCard

    return ModelCard(hub_server.read_file(repo, "README.md").decode())


# --------------------------------------------------------------------------- forks 1 and 2


def test_fork1_check_records_its_verdict_in_converted_and_push_publishes_it(
    hub_server, hub_env, upstream, tmp_path
) -> None:
    """The README's order: convert, check --report elsewhere, push: the card has the table."""
    converted = tmp_path / "converted"
    assert run_cli("convert", UPSTREAM, converted, env=hub_env).returncode == 0
    elsewhere = tmp_path / "parity.json"
    checked = run_cli("check", UPSTREAM, converted, "--report", elsewhere, env=hub_env)
    assert checked.returncode == 0, checked.stderr
    recorded = json.loads((converted / "parity_report.json").read_text())
    assert recorded == json.loads(elsewhere.read_text())
    assert recorded["passed"] is True
    assert {"score.safetensors", "config.json", "tokenizer.json"} <= set(recorded["checked_files"])
    assert "README.md" not in recorded["checked_files"]

    target = f"{TEST_USER}/checked"
    pushed = run_cli("push", converted, target, env=hub_env)
    assert pushed.returncode == 0, pushed.stderr
    card = _card(hub_server, target)
    assert "**PASS**" in card.text and "| converted (batched) |" in card.text
    assert "not checked" not in card.text.lower()


def test_fork2_push_refuses_a_directory_without_a_passing_verdict_for_its_files(
    hub_server, hub_env, tiny_model, tmp_path
) -> None:
    source = tiny_model("qwen3")
    converted = tmp_path / "converted"
    assert run_cli("convert", source, converted, "--preset", "qwen3-reranker").returncode == 0
    target = f"{TEST_USER}/refused"

    never_checked = run_cli("push", converted, target, env=hub_env)
    line = assert_one_clean_error(never_checked, 2, "has no parity verdict")
    assert "reranker-seqcls check" in line and "--allow-unchecked" in line
    assert not hub_server.repo_exists(target)

    assert run_cli("check", source, converted).returncode == 0
    score = converted / "score.safetensors"
    data = bytearray(score.read_bytes())
    data[-1] ^= 1  # one bit of the score head, after the check passed
    score.write_bytes(bytes(data))
    stale = run_cli("push", converted, target, env=hub_env)
    assert_one_clean_error(stale, 2, "score.safetensors changed since its parity check passed")
    (converted / "extra.safetensors").write_bytes(b"x")
    score.write_bytes(bytes(data[:-1]) + bytes([data[-1] ^ 1]))  # the checked bytes again
    added = run_cli("push", converted, target, env=hub_env)
    assert_one_clean_error(added, 2, "extra.safetensors was added")
    assert not hub_server.repo_exists(target)

    anyway = run_cli("push", converted, target, "--allow-unchecked", env=hub_env)
    assert anyway.returncode == 0, anyway.stderr
    assert "pushing it as not checked (--allow-unchecked)" in anyway.stderr
    card = _card(hub_server, target)
    assert "**Not checked.**" in card.text and "--allow-unchecked" in card.text
    assert "| converted (batched) |" not in card.text
    commit = hub_server.list_commits(target)[0]
    assert "Parity: not checked" in commit.message


# --------------------------------------------------------------------------- fork 3


def test_fork3_push_and_run_write_the_same_card_and_commit_message(
    hub_server, hub_env, upstream, tmp_path
) -> None:
    by_run = f"{TEST_USER}/by-run"
    ran = run_cli("run", "--model", UPSTREAM, "--target", by_run, env=hub_env)
    assert ran.returncode == 0, ran.stderr
    converted = tmp_path / "converted"
    assert run_cli("convert", UPSTREAM, converted, env=hub_env).returncode == 0
    assert run_cli("check", UPSTREAM, converted, env=hub_env).returncode == 0
    by_push = f"{TEST_USER}/by-push"
    pushed = run_cli("push", converted, by_push, env=hub_env)
    assert pushed.returncode == 0, pushed.stderr

    run_card, push_card = _card(hub_server, by_run), _card(hub_server, by_push)
    assert push_card.data.license == run_card.data.license == "apache-2.0"
    assert push_card.data.to_dict() == run_card.data.to_dict()
    headings = [
        [line.replace(name, "TARGET") for line in c.text.splitlines() if line.startswith("#")]
        for c, name in ((run_card, "by-run"), (push_card, "by-push"))
    ]
    assert headings[0] == headings[1]
    run_commit = hub_server.list_commits(by_run)[0]
    push_commit = hub_server.list_commits(by_push)[0]
    assert push_commit.title == run_commit.title
    assert (
        push_commit.title
        == f"Convert {UPSTREAM}@{upstream[:12]} with reranker-seqcls "
        + (run_commit.title.rsplit(" ", 1)[-1])
    )
    assert [line.split(":")[0] for line in push_commit.message.splitlines()] == [
        line.split(":")[0] for line in run_commit.message.splitlines()
    ]
    assert "Parity: PASS" in push_commit.message and "Parity: PASS" in run_commit.message


# --------------------------------------------------------------------------- fork 4


def test_fork4_run_resolves_a_hub_source_recipe_from_its_st_files_like_convert(
    hub_server, hub_env, tiny_model, tmp_path_factory, tmp_path
) -> None:
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer

    from tests.test_families import IDENTITY, ST_TEMPLATE, _set_st_files

    saved = tmp_path_factory.mktemp("st") / "saved"
    CrossEncoder(str(tiny_model("qwen3", tied=False))).save_pretrained(str(saved))
    (saved / "chat_template.jinja").write_text(ST_TEMPLATE)
    yes = AutoTokenizer.from_pretrained(saved).convert_tokens_to_ids("yes")
    _set_st_files(saved, yes, None, IDENTITY)
    repo = "acme/my-logit-reranker"  # a name that names no family
    hub_server.seed_repo(repo, repo_files(saved))

    converted = tmp_path / "converted"
    convert = run_cli("convert", repo, converted, env=hub_env)
    assert convert.returncode == 0, convert.stderr
    target = f"{TEST_USER}/my-logit-reranker-seq-cls"
    ran = run_cli("run", "--model", repo, "--target", target, env=hub_env)
    assert ran.returncode == 0, ran.stderr
    assert "recipe from the source's sentence-transformers files" in ran.stderr
    by_run = json.loads(hub_server.read_file(target, "reranker_seqcls.json"))
    by_convert = json.loads((converted / "reranker_seqcls.json").read_text())
    assert by_run["recipe"] == by_convert["recipe"]
    assert by_run["classifier"]["token_ids"] == [yes]


# --------------------------------------------------------------------------- fork 5


def _run_option_names() -> set[str]:
    from reranker_seqcls.cli import cli

    return {opt for param in cli.commands["run"].params for opt in param.opts}


def _entrypoint_tables() -> dict[str, object]:
    """The entrypoint's input tables, read from the script itself (it is no importable module)."""
    namespace: dict[str, object] = {"__name__": "entrypoint_tables"}
    exec(compile(ENTRYPOINT.read_text("utf-8"), str(ENTRYPOINT), "exec"), namespace)
    return namespace


def test_fork5_every_run_option_has_an_action_input_or_a_reason() -> None:
    tables = _entrypoint_tables()
    pairs = [*tables["REQUIRED_INPUTS"], *tables["VALUE_OPTIONS"], *tables["FLAG_OPTIONS"]]
    mapped = {option for _, option in pairs}
    reasons = tables["NOT_INPUTS"]
    long_options = {o for o in _run_option_names() if o.startswith("--")}
    assert long_options - mapped - set(reasons) == set(), "run options with no Action input"
    assert set(reasons) <= long_options and all(reasons.values())
    spec = yaml.safe_load((ROOT / "action.yml").read_text("utf-8"))
    inputs = set(spec["inputs"]) - {tables["TOKEN_INPUT"]}
    assert {name for name, _ in pairs} == inputs
    for name in ("token_ids", "scale", "max_disk", "check_memory", "vllm_python"):
        assert name in inputs


def test_fork5_action_description_and_preset_input_name_the_registry() -> None:
    from reranker_seqcls.recipes.presets import PRESETS

    spec = yaml.safe_load((ROOT / "action.yml").read_text("utf-8"))
    listed = re.search(r"`reranker-seqcls presets`: ([^;]+);", spec["description"])
    assert listed is not None
    assert [n.strip() for n in listed.group(1).replace("\n", " ").split(",")] == list(PRESETS)
    preset_help = spec["inputs"]["preset"]["description"]
    named = re.search(r"one of: ([^(]+) \(", preset_help)
    assert named is not None
    assert [n.strip() for n in named.group(1).replace("\n", " ").split(",")] == list(PRESETS)


def test_fork5_new_action_inputs_reach_the_real_cli(hub_server, hub_env, upstream, tmp_path):
    """max_disk and check_memory through the entrypoint and the real CLI: the run refuses."""
    target = f"{TEST_USER}/action-inputs"
    env = action_env(hub_env, tmp_path, model=UPSTREAM, target_repo=target, max_disk="1KB")
    proc = subprocess.run(
        [sys.executable, str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "more than --max-disk" in proc.stdout + proc.stderr
    env = action_env(hub_env, tmp_path, model=UPSTREAM, target_repo=target, check_memory="lots")
    proc = subprocess.run(
        [sys.executable, str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2 and "--check-memory" in proc.stdout + proc.stderr
    assert not hub_server.repo_exists(target)


# --------------------------------------------------------------------------- fork 6


def test_fork6_zerank2_with_a_custom_recipe_is_checked_as_zerank2(
    hub_server, hub_env, real_vocab_model, tmp_path
) -> None:
    source = real_vocab_model("qwen3", tied=True, name="zerank-2", preset="zerank-2")
    repo = "zeroentropy/zerank-2"
    hub_server.seed_repo(repo, repo_files(source))
    converted = tmp_path / "converted"
    wrong = ["--tokens", '["yes"]', "--method", "no_post_processing"]
    convert = run_cli("convert", repo, converted, *wrong, env=hub_env)
    assert convert.returncode == 0, convert.stderr
    checked = run_cli("check", repo, converted, env=hub_env)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "recipe zerank-2" in checked.stdout
    last = checked.stderr.strip().splitlines()[-1]
    assert "'yes' (id" in last and "'Yes' (id" in last and "case differs" in last, last
    assert json.loads((converted / "parity_report.json").read_text())["passed"] is False
    refused = run_cli("push", converted, f"{TEST_USER}/zerank", "--allow-unchecked", env=hub_env)
    assert_one_clean_error(refused, 2, "failed its parity check")
    shutil.rmtree(converted)
