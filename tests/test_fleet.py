"""The fleet file: what it accepts, and a one-line exit-2 error for everything it does not.

Bad files go through the real CLI (``plan`` validates the whole file before any Hub call, so no
server is needed); the accepted forms are checked on the parsed entries.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reranker_seqcls.errors import BadInput
from reranker_seqcls.recipes.presets import PRESETS
from reranker_seqcls.schedule.fleet import MAX_ENTRIES, load_fleet
from tests.conftest import run_cli

QWEN = "Qwen/Qwen3-Reranker-0.6B"


def _entry(**extra: object) -> str:
    fields = {"model": QWEN, "target": "me/q-seq-cls", **extra}
    return "rerankers:\n  - " + "\n    ".join(f"{k}: {json.dumps(v)}" for k, v in fields.items())


BAD_FILES: list[tuple[str, str | bytes, str]] = [
    ("empty", "", "is empty"),
    ("scalar", "hello\n", "must hold a `rerankers:` list, not text"),
    ("no entries", "rerankers: []\n", "rerankers: must be a non-empty list"),
    ("no rerankers key", "defaults: {private: true}\n", "no `rerankers:` list"),
    (
        "top-level typo",
        "reranker:\n  - model: a/b\n",
        "unknown key 'reranker': did you mean rerankers?",
    ),
    (
        "entry not a mapping",
        "rerankers: [Qwen/Qwen3-Reranker-0.6B]\n",
        "entry 1: must be a mapping",
    ),
    ("missing target", f"rerankers:\n  - model: {QWEN}\n", "entry 1: target: missing"),
    ("missing model", "rerankers:\n  - target: me/x\n", "entry 1 (me/x): model: missing"),
    (
        "entry typo",
        _entry(presett="qwen3-reranker"),
        "entry 1 (me/q-seq-cls): unknown key 'presett': did you mean preset?",
    ),
    ("model is a number", _entry(model=123), "model: 123 is not a Hub repo id"),
    ("model is a path", _entry(model="./local-dir"), "model: './local-dir' is not a Hub repo id"),
    (
        "model with injected command",
        _entry(model="a/b\n::error::pwned"),
        "model: 'a/b?::error::pwned' is not a Hub repo id",
    ),
    (
        "target with command",
        _entry(target="::add-mask::x"),
        "entry 1: target: '::add-mask::x' is not a Hub repo id",
    ),
    ("target traversal", _entry(target="me/../x"), "is not a Hub repo id"),
    ("target is the model", _entry(target=QWEN.lower()), "target: is the model itself"),
    (
        "revision is a number",
        "rerankers:\n  - {model: " + QWEN + ", target: me/x, revision: 2024}\n",
        "revision: 2024 is not a branch, tag or commit (quote it)",
    ),
    (
        "revision with newline",
        _entry(revision="main\n::add-mask::x"),
        "revision: 'main?::add-mask::x' is not a branch",
    ),
    (
        "private as text",
        _entry(private="yes please"),
        "private: must be true or false, not 'yes please'",
    ),
    ("create_pr as number", _entry(create_pr=1), "create_pr: must be true or false, not 1"),
    ("unknown preset", _entry(preset="qwen4"), "preset: 'qwen4' is not one of qwen3-reranker"),
    (
        "unknown method",
        _entry(tokens=["no", "yes"], method="softmax"),
        "method: 'softmax' is not one of",
    ),
    (
        "tokens as text",
        _entry(tokens="yes", method="no_post_processing"),
        "tokens: must be a list of 1 to 64 strings",
    ),
    (
        "token not text",
        _entry(tokens=[1, 2], method="from_2_way_softmax"),
        "tokens: 1 is not a token",
    ),
    (
        "token twice",
        _entry(tokens=["y", "y"], method="from_2_way_softmax"),
        "tokens: a token is listed twice",
    ),
    (
        "tokens without method",
        _entry(tokens=["no", "yes"]),
        "method: a custom recipe needs both tokens and method",
    ),
    (
        "preset and tokens",
        _entry(preset="qwen3-reranker", tokens=["no", "yes"], method="from_2_way_softmax"),
        "preset: give either preset or tokens and method",
    ),
    (
        "two-way with one token",
        _entry(tokens=["Yes"], method="from_2_way_softmax"),
        "tokens: from_2_way_softmax needs exactly 2 tokens",
    ),
    (
        "family unknown",
        _entry(model="org/some-model"),
        "preset: the family cannot be told from the model name",
    ),
    (
        "absolute template",
        _entry(template="/etc/passwd"),
        "template: '/etc/passwd' is not a relative file path",
    ),
    (
        "missing template",
        _entry(template="nope.jinja"),
        "template: 'nope.jinja' is not a file next to the fleet file",
    ),
    ("defaults not a mapping", "defaults: [1]\nrerankers: []\n", "defaults: must be a mapping"),
    ("bad default", "defaults: {private: maybe}\nrerankers: []\n", "defaults: private: must be"),
    (
        "defaults with model",
        f"defaults: {{model: {QWEN}}}\nrerankers: []\n",
        "defaults: unknown key 'model'",
    ),
    (
        "key twice",
        f"rerankers:\n  - model: {QWEN}\n    target: me/a\n    target: me/b\n",
        "not valid YAML: key 'target' given twice at line 4",
    ),
    (
        "duplicate targets",
        f"rerankers:\n  - {{model: {QWEN}, target: Me/X}}\n  - {{model: {QWEN}, target: me/x}}\n",
        "entry 2 (me/x): target: me/x is also the target of entry 1",
    ),
    ("bad yaml", "rerankers: [\n", "is not valid YAML"),
    (
        "python tag",
        "rerankers: !!python/object/apply:os.system [echo pwned]\n",
        "is not valid YAML",
    ),
    ("not utf-8", b"rerankers:\n  - model: \xff\xfe\n", "is not UTF-8 text"),
    ("too large", "# " + "x" * (1 << 20) + "\n", "a fleet file is at most 1048576 bytes"),
    (
        "too many entries",
        "rerankers:\n"
        + "".join(f"  - {{model: {QWEN}, target: me/t{i}}}\n" for i in range(MAX_ENTRIES + 1)),
        "more than the 256 jobs",
    ),
    ("deep nesting", "rerankers: " + "[" * 50_000 + "]" * 50_000 + "\n", "rerankers.yml"),
    (
        "alias bomb",
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n",
        "unknown key 'a'",
    ),
]


@pytest.mark.parametrize(
    ("content", "fragment"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES]
)
def test_bad_fleet_file_is_one_line_exit_2(tmp_path: Path, content: str | bytes, fragment: str):
    fleet = tmp_path / "rerankers.yml"
    if isinstance(content, bytes):
        fleet.write_bytes(content)
    else:
        fleet.write_text(content)
    result = run_cli("plan", fleet, env={"HF_ENDPOINT": "http://127.0.0.1:9"}, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""  # no matrix from a bad file
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {fleet}"), lines[0]
    assert fragment in lines[0], lines[0]
    assert len(lines[0]) < 400


def test_missing_and_directory_fleet_file(tmp_path: Path):
    for path, fragment in ((tmp_path / "none.yml", "does not exist"), (tmp_path, "is a directory")):
        result = run_cli("plan", path, cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.strip() == f"error: {path} {fragment}: give the path of the fleet file"


def test_accepted_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "fleet" / "templates").mkdir(parents=True)
    template = "{{ messages[0]['content'] }} {{ messages[1]['content'] }}"
    (tmp_path / "fleet" / "templates" / "custom.jinja").write_text(template)
    fleet = tmp_path / "fleet" / "rerankers.yml"
    fleet.write_text(
        "defaults:\n  private: true\n"
        "rerankers:\n"
        f"  - model: {QWEN}\n    target: me/q-seq-cls\n"
        "  - model: mixedbread-ai/mxbai-rerank-base-v2\n    target: me/m-seq-cls\n"
        "    revision: refs/pr/3\n    private: false\n    create_pr: yes\n"
        "  - model: org/custom\n    target: org/custom-seq-cls\n"
        '    tokens: ["no", "yes"]\n    method: from_2_way_softmax\n'
        "    template: templates/custom.jinja\n"
    )
    monkeypatch.chdir(tmp_path)
    qwen, mxbai, custom = load_fleet(Path("fleet/rerankers.yml")).entries
    assert qwen.recipe == PRESETS["qwen3-reranker"] and qwen.private is True
    assert qwen.run_options() == {
        "model": QWEN, "revision": "", "target_repo": "me/q-seq-cls", "preset": "",
        "tokens": "", "method": "", "template": "", "private": True, "create_pr": False,
    }  # fmt: skip
    assert mxbai.recipe.name == "mxbai-rerank-v2"
    assert (mxbai.revision, mxbai.private, mxbai.create_pr) == ("refs/pr/3", False, True)
    assert custom.recipe.name == "custom" and custom.recipe.template == template
    assert custom.label == "entry 3 (org/custom-seq-cls)"
    # Paths in the file are relative to it; the matrix gives them relative to the working
    # directory, where run (and the Action's convert step) open them.
    options = custom.run_options()
    assert options["template"] == "fleet/templates/custom.jinja"
    assert json.loads(str(options["tokens"])) == ["no", "yes"]
    assert options["method"] == "from_2_way_softmax"

    listed = tmp_path / "list.yml"
    listed.write_text(f"- model: {QWEN}\n  target: me/q-seq-cls\n")
    (entry,) = load_fleet(listed).entries
    assert entry.target == "me/q-seq-cls" and entry.index == 1


def test_bad_input_is_the_project_error_type(tmp_path: Path):
    fleet = tmp_path / "f.yml"
    fleet.write_text("rerankers: [1]\n")
    with pytest.raises(BadInput, match=r"entry 1: must be a mapping with model and target"):
        load_fleet(fleet)
