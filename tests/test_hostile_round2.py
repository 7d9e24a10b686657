"""Issue 20, hostile sources round two: the streamed run, plan, recipes from sentence-transformers
files, the card and the summaries. One test (or one parametrized test) per numbered item, each
through the real CLI (against the loopback Hub where the item is about a Hub source), asserting
the exit code, the one-line message and the bound that item is about (peak RSS, time, disk,
"nothing pushed, nothing left")."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import repo_files
from tests.hostile import copy_source, edit_json
from tests.loopback_hub.fixtures import TEST_TOKEN, TEST_USER
from tests.test_families import ST_TEMPLATE, _set_st_files, st_saved  # noqa: F401 (fixture)

UPSTREAM = "hostile/Qwen3-Reranker-tiny"
TARGET = f"{TEST_USER}/Qwen3-Reranker-tiny-seq-cls"
QWEN = ("--preset", "qwen3-reranker")
MB = 1_000_000


# --------------------------------------------------------------------------- helpers

_MEASURE = """
import resource, subprocess, sys, time
start = time.monotonic()
done = subprocess.run(sys.argv[1:], capture_output=True)
sys.stdout.buffer.write(done.stdout)
sys.stderr.buffer.write(done.stderr)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
sys.stderr.write(f"\\n@measured {peak} {time.monotonic() - start:.3f}\\n")
sys.exit(done.returncode)
"""


class Measured:
    """A CLI run with the peak RSS of the CLI process alone and its wall time."""

    def __init__(self, done: subprocess.CompletedProcess[str]) -> None:
        *lines, last = done.stderr.rstrip("\n").split("\n")
        _, peak, seconds = last.split()
        self.returncode, self.stdout = done.returncode, done.stdout
        self.stderr = "\n".join(lines).rstrip("\n") + "\n"
        self.peak_rss, self.seconds = int(peak), float(seconds)


def measured_cli(*args: str | Path, env: dict[str, str] | None = None, timeout: int = 300):
    command = [sys.executable, "-c", _MEASURE, sys.executable, "-m", "reranker_seqcls"]
    done = subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    return Measured(done)


def one_line(result: Any, code: int, fragment: str) -> str:
    """Exit ``code``, the last stderr line an ``error:`` holding ``fragment``, the only error
    line, no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error")]
    assert errors == [lines[-1]], result.stderr[-3000:]
    assert fragment in lines[-1], lines[-1]
    assert "internal error" not in lines[-1]
    return lines[-1]


def _env(hub_env: dict[str, str], tmp_path: Path) -> tuple[dict[str, str], Path]:
    tmp = tmp_path / "run-tmp"
    tmp.mkdir()
    return {**hub_env, "TMPDIR": str(tmp)}, tmp


def _run_until_delayed(hub_server, env: dict[str, str], result_json: Path) -> subprocess.Popen[str]:
    """``run`` in its own process, returned (still running) once the request the loopback Hub
    was told to delay is being held."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reranker_seqcls", "run", "--model", UPSTREAM, "--target", TARGET,
         "--result-json", str(result_json)],
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not hub_server.delayed:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return proc


def _nothing_pushed_nothing_left(hub_server, hub_env, tmp: Path, result) -> None:
    assert not hub_server.repo_exists(TARGET)
    assert list(tmp.iterdir()) == []
    assert TEST_TOKEN not in result.stdout + result.stderr
    home = Path(hub_env["HF_HOME"])
    assert not [p for p in home.rglob("*") if p.name.endswith(".safetensors")]


def _header_ranges_only(hub_server, files: dict[str, bytes]) -> None:
    """No shard was fetched beyond its header (the range requests)."""
    for name, served in hub_server.downloaded_files(UPSTREAM).items():
        if name.endswith(".safetensors"):
            assert served <= 100_000 < len(files[name]) or served < len(files[name]), name


@pytest.fixture
def qwen_files(tiny_model) -> dict[str, bytes]:
    files = repo_files(tiny_model("qwen3", tied=False, num_shards=2))
    files["README.md"] = b"---\nlicense: apache-2.0\n---\n# tiny upstream reranker\n"
    return files


def _with_config(files: dict[str, bytes], **changes: Any) -> dict[str, bytes]:
    config = json.loads(files["config.json"])
    config.update(changes)
    return {**files, "config.json": json.dumps(config).encode()}


# --------------------------------------------------------------------------- item 1


LAYER_COUNTS = {
    # over any real model: refused by value before the headers are even read
    20_000: "config.json num_hidden_layers is 20000, expected a whole number from 1 to 16384",
    1_000_000: "config.json num_hidden_layers is 1000000, expected a whole number from 1 to",
    # in range, but not what the headers hold
    3: "config.json num_hidden_layers is 3, but the shards hold layer stacks model.layers.0-1 "
    "(2): the config does not match the weights",
    9_000: "config.json num_hidden_layers is 9000, but the shards hold layer stacks",
}


@pytest.mark.parametrize("layers", sorted(LAYER_COUNTS))
def test_item1_layer_count_the_headers_do_not_hold_is_refused_before_any_model(
    hub_server, hub_env, qwen_files, tmp_path, layers
):
    """num_hidden_layers 20,000 (1.7 GB and a minute before) and 10^6 (an OOM kill): refused
    from the config and the headers, before any model object, shard fetch or target; flat
    memory and time."""
    files = _with_config(qwen_files, num_hidden_layers=layers)
    hub_server.seed_repo(UPSTREAM, files)
    env, tmp = _env(hub_env, tmp_path)
    result = measured_cli("run", "--model", UPSTREAM, "--target", TARGET, env=env)
    one_line(result, 2, LAYER_COUNTS[layers])
    assert result.peak_rss < 400 * MB, result.peak_rss
    assert result.seconds < 60, result.seconds
    _header_ranges_only(hub_server, files)
    _nothing_pushed_nothing_left(hub_server, hub_env, tmp, result)


def test_item1_check_of_a_local_source_proves_the_layer_count_first(tiny_model, tmp_path):
    source = copy_source(tiny_model("qwen3", tied=False, num_shards=2), tmp_path / "source")
    out = tmp_path / "converted"
    assert measured_cli("convert", source, out, *QWEN).returncode == 0
    edit_json(source / "config.json", num_hidden_layers=6_000)
    for memory in ("1.5GB", "1KB"):  # the full check and the layerwise one
        result = measured_cli("check", source, out, *QWEN, "--check-memory", memory)
        one_line(result, 2, "config.json num_hidden_layers is 6000, but the shards hold")
        assert result.peak_rss < 700 * MB, (memory, result.peak_rss)
        assert result.seconds < 60


# --------------------------------------------------------------------------- item 2


def _tiny_causal(kind: str, tokenizer_from: Path, out: Path, **config: Any) -> Path:
    """A tiny GPT-2 / GPT-Neo / OPT causal LM on the tiny Qwen vocabulary (705 ids), saved as
    safetensors with the tokenizer files beside it."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    vocab = json.loads((tokenizer_from / "config.json").read_text())["vocab_size"]
    shape: dict[str, Any] = {
        "gpt2": {"n_embd": 64, "n_layer": 2, "n_head": 2, "n_positions": 2048},
        "opt": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                "ffn_dim": 128, "word_embed_proj_dim": 64, "max_position_embeddings": 2048},
        "gpt_neo": {"hidden_size": 64, "num_layers": 2, "num_heads": 2,
                    "attention_types": [[["global", "local"], 1]], "window_size": 16,
                    "max_position_embeddings": 2048},
    }[kind]  # fmt: skip
    hf = AutoConfig.for_model(
        kind, vocab_size=vocab, bos_token_id=None, eos_token_id=None, **{**shape, **config}
    )
    model = AutoModelForCausalLM.from_config(hf)
    model.save_pretrained(out, safe_serialization=True)
    for name in tokenizer_from.iterdir():
        if name.name.startswith(("tokenizer", "special_tokens", "vocab", "merges", "LICENSE")):
            shutil.copy(name, out / name.name)
    return out


def test_item2_position_sized_buffers_are_refused_before_they_are_built(tiny_model, tmp_path):
    """GPT-Neo with max_position_embeddings 24,576: a positions² mask per layer (2.8 GB then
    exit 4). The model is built on the meta device first; its buffers are refused by size."""
    base = tiny_model("qwen3", tied=False)
    source = _tiny_causal("gpt_neo", base, tmp_path / "neo")
    out = tmp_path / "converted"
    assert measured_cli("convert", source, out, *QWEN).returncode == 0
    edit_json(source / "config.json", max_position_embeddings=24_576)
    for memory in ("1.5GB", "1KB"):
        result = measured_cli("check", source, out, *QWEN, "--check-memory", memory)
        one_line(result, 2, "of buffers (largest h.0.attn.attention.bias [1, 1, 24576, 24576]")
        assert result.peak_rss < 800 * MB, (memory, result.peak_rss)


@pytest.mark.parametrize("kind", ["gpt2", "gpt_neo"])
def test_item2_gpt2_is_checked_layer_by_layer(tiny_model, tmp_path, kind):
    """GPT-2 and GPT-Neo (an embedding, a learned position table ``wpe``, layers ``h``, final
    norm ``ln_f``) were whole-checked or refused; the layer-by-layer pass now drives them, the
    position rows added before the first layer: its scores are the full model's (1e-5), each
    shard released once used, the position table never read whole."""
    from reranker_seqcls.check.parity import converted_scores, reference_scores
    from reranker_seqcls.check.streamed import StreamedCheck, source_shards
    from reranker_seqcls.recipes.presets import PRESETS
    from reranker_seqcls.steps import load_check_pairs, resolve_token_ids

    three_layers: dict[str, Any] = {
        "gpt2": {"n_layer": 3},
        "gpt_neo": {
            "num_layers": 3,
            "attention_types": [[["global", "local"], 1], [["global"], 1]],
        },
    }
    source = _tiny_causal(
        kind, tiny_model("qwen3", tied=False), tmp_path / kind, **three_layers[kind]
    )
    out = tmp_path / "converted"
    assert measured_cli("convert", source, out, *QWEN).returncode == 0
    recipe = PRESETS["qwen3-reranker"]
    pairs = load_check_pairs(recipe, None)
    token_ids = resolve_token_ids(source, recipe)
    check = StreamedCheck(source, out, recipe, pairs, token_ids=token_ids)
    held = set()
    for shard in source_shards(source):
        held |= {shard} - set(check.feed_source(shard))
    assert not held
    for shard in source_shards(out):
        check.feed_converted(shard)
    report = check.report()
    official, reference = reference_scores(source, recipe, pairs, token_ids, "float32")
    full = converted_scores(out, [o.ids for o in official], "float32")
    worst_ref = max(
        abs(x - y) for row, ref in zip(report.scores, reference, strict=True)
        for x, y in zip(row.reference, ref, strict=True)
    )  # fmt: skip
    worst_conv = max(
        abs(x - y) for row, conv in zip(report.scores, full.batched, strict=True)
        for x, y in zip(row.converted_layerwise, conv, strict=True)
    )  # fmt: skip
    assert worst_ref <= 1e-5 and worst_conv <= 1e-5, (worst_ref, worst_conv)
    assert report.backbone_hash == "identical"
    table = check.scorer.model.wpe.weight  # meta: its shape only
    ledger = check.scorer.ledger
    assert ledger.held == 0
    assert ledger.peak < table.shape[0] * table.shape[1] * 4  # never the whole table (2048 rows)


def test_item2_layerwise_prompt_longer_than_the_position_table_is_one_line(tiny_model, tmp_path):
    """The layer-by-layer pass adds GPT-2's position rows itself: a prompt longer than the
    table is refused naming the fix, not read past the table as a "token id"."""
    from reranker_seqcls.check.layerwise import LayerwiseScorer
    from reranker_seqcls.check.streamed import source_shards
    from reranker_seqcls.errors import BadInput

    source = _tiny_causal("gpt2", tiny_model("qwen3", tied=False), tmp_path / "g", n_positions=64)
    scorer = LayerwiseScorer(json.loads((source / "config.json").read_text()), [[5] * 80], pad_id=0)
    refusal = r"has 80 tokens, more than the 64 positions of .*wpe\.weight: give --pairs"
    with pytest.raises(BadInput, match=refusal):
        for shard in source_shards(source):
            scorer.feed(shard)


@pytest.mark.parametrize("kind", ["gpt2", "gpt_neo", "opt"])
def test_item2_streamed_run_of_a_model_without_layers(
    hub_server, hub_env, tiny_model, tmp_path, kind
):
    """GPT-2 and GPT-Neo (no `.layers`): crashed the streamed run with exit 4, then were checked
    whole or refused. Now, below --check-memory, they are checked layer by layer (consumers on
    the twin) with the whole model's verdict. OPT (its layers under `decoder.`) still cannot
    be: a one-line refusal names the fix, before any shard is fetched or the target created."""
    source = _tiny_causal(kind, tiny_model("qwen3", tied=False), tmp_path / kind)
    files = repo_files(source)
    files["README.md"] = b"---\nlicense: apache-2.0\n---\n# tiny\n"
    hub_server.seed_repo(UPSTREAM, files)
    env, tmp = _env(hub_env, tmp_path)
    small = measured_cli(
        "run", "--model", UPSTREAM, "--target", TARGET, *QWEN, "--check-memory", "1KB",
        "--dry-run", env=env,
    )  # fmt: skip
    if kind == "opt":
        one_line(small, 2, "the layer-by-layer check cannot run OPTModel")
        assert "raise --check-memory" in small.stderr
        _header_ranges_only(hub_server, files)
        _nothing_pushed_nothing_left(hub_server, hub_env, tmp, small)
        return

    # The same verdict as the whole-snapshot path (GPT-2's absolute positions under the
    # consumers' padding may fail parity; what matters is a verdict, not exit 4).
    whole = measured_cli(
        "run", "--model", UPSTREAM, "--target", TARGET, *QWEN, "--dry-run",
        "--output-dir", tmp_path / "whole", env=env,
    )  # fmt: skip
    done = measured_cli("run", "--model", UPSTREAM, "--target", TARGET, *QWEN, env=env)
    assert whole.returncode in (0, 1), whole.stderr[-3000:]
    assert done.returncode == whole.returncode, done.stderr[-3000:]
    assert "consumers proven on: real" in done.stderr
    verdict = [line for line in done.stderr.splitlines() if line.startswith("  why:")]
    assert verdict == [line for line in whole.stderr.splitlines() if line.startswith("  why:")]
    assert hub_server.repo_exists(TARGET) == (done.returncode == 0)
    assert small.returncode == whole.returncode, small.stderr[-3000:]
    assert "converted (layerwise)" in small.stderr
    assert "consumers proven on: twin" in small.stderr


# --------------------------------------------------------------------------- item 3


BOMBS = {
    "nested range loops": (
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
        "ran for more than 5 s",
    ),
    "a 200 MB string": ("{{ 'x' * 200000000 }}", "would hold 200000000 items"),
    "a padded string": ("{{ 'x'|center(1000000000) }}", "a center() result would hold"),
    "replace growth": (
        "{% set s = 'x' * 1000 %}{{ s|replace('x', s)|replace('x', s) }}",
        "a replace() result would hold",
    ),
    "a long loop output": (
        "{% for i in range(99999) %}{{ 'y' * 1000 }}{% endfor %}",
        "rendered more than 4000000 characters",
    ),
}


@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_item3_template_of_a_sentence_transformers_source_is_rendered_bounded(
    st_saved,  # noqa: F811
    tmp_path,
    bomb,
):
    """A source's chat_template.jinja rendered with no bound ran for hours or rendered 400 MB
    (then the tokenizer aborted the process, SIGABRT). Now: exit 2, one line, within the render
    bound (5 s), the RSS of an ordinary run."""
    from transformers import AutoTokenizer

    template, fragment = BOMBS[bomb]
    source = tmp_path / "st-source"
    shutil.copytree(st_saved, source)
    tokenizer = AutoTokenizer.from_pretrained(source)
    yes, no = tokenizer.convert_tokens_to_ids(["yes", "no"])
    _set_st_files(source, yes, no, "torch.nn.modules.activation.Sigmoid")
    out = tmp_path / "out"
    assert measured_cli("convert", source, out).returncode == 0  # convert renders nothing
    # The source's template as the check's consumers render it from the converted directory.
    (out / "chat_template.jinja").write_text(template)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    result = measured_cli("check", source, out)
    one_line(result, 2, fragment)
    assert "the prompt template cannot be rendered" in result.stderr
    assert result.seconds < 60, result.seconds
    assert result.peak_rss < 800 * MB, result.peak_rss
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


# --------------------------------------------------------------------------- item 10


CONFIG_VALUES = {
    "hidden_size a string": ({"hidden_size": "64"}, 'config.json hidden_size is "64"'),
    "no attention heads": ({"num_attention_heads": 0}, "num_attention_heads is 0"),
    "negative head_dim": ({"head_dim": -16}, "head_dim is -16"),
    "unknown rope type": (
        {"rope_scaling": {"rope_type": "hyperbolic", "factor": 2.0}},
        'rope type "hyperbolic"',
    ),
    "intermediate_size 2^40": ({"intermediate_size": 2**40}, "intermediate_size is 1099511627776"),
    "no layers": ({"num_hidden_layers": 0}, "num_hidden_layers is 0"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_VALUES))
def test_item10_config_values_are_one_line_exit_2_in_the_streamed_run(
    hub_server, hub_env, qwen_files, tmp_path, case
):
    changes, fragment = CONFIG_VALUES[case]
    files = _with_config(qwen_files, **changes)
    hub_server.seed_repo(UPSTREAM, files)
    env, tmp = _env(hub_env, tmp_path)
    result = measured_cli("run", "--model", UPSTREAM, "--target", TARGET, env=env)
    one_line(result, 2, fragment)
    _header_ranges_only(hub_server, files)
    _nothing_pushed_nothing_left(hub_server, hub_env, tmp, result)


def test_item10_sizes_and_sentence_transformers_values_are_one_line_exit_2(
    st_saved,  # noqa: F811
    tmp_path,
):
    huge = "9" * 400
    for option in ("--max-disk", "--check-memory"):
        result = measured_cli("run", "--model", "a/b", "--target", "c/d", option, huge)
        one_line(result, 2, f"{option} '99999")
        assert "is not a size" in result.stderr
    big = measured_cli("run", "--model", "a/b", "--target", "c/d", "--max-disk", "9" * 25 + "GB")
    one_line(big, 2, "is larger than any disk or memory")

    from transformers import AutoTokenizer

    yes, no = AutoTokenizer.from_pretrained(st_saved).convert_tokens_to_ids(["yes", "no"])
    listed = tmp_path / "listed"
    shutil.copytree(st_saved, listed)
    _set_st_files(listed, yes, no, "torch.nn.modules.activation.Sigmoid")
    edit_json(listed / "sentence_bert_config.json", modality_config=[{"message": {}}])
    one_line(measured_cli("convert", listed, tmp_path / "o1"), 2, "modality_config is not a JSON")
    huge_id = tmp_path / "huge-id"
    shutil.copytree(st_saved, huge_id)
    _set_st_files(huge_id, 2**40, no, "torch.nn.modules.activation.Sigmoid")
    edit_json(huge_id / "config.json", vocab_size=None)
    one_line(measured_cli("convert", huge_id, tmp_path / "o2"), 2, "true_token_id 1099511627776")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_measure_helper_reports_the_child_alone() -> None:
    """The peak RSS reported is the CLI's own (a child of a fresh wrapper), not this test
    process's: a --help run stays far below what pytest holds."""
    result = measured_cli("--help")
    assert result.returncode == 0
    assert result.peak_rss < resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 + MB
    assert 0 < result.seconds < 60


# --------------------------------------------------------------------------- items 4 and 5


def live_markup(markdown: str) -> list[str]:
    """The live elements a CommonMark renderer with HTML and tables (as GitHub's and the Hub's)
    makes of ``markdown``: links, images, raw HTML tags and headings."""
    from markdown_it import MarkdownIt

    found: list[str] = []
    tokens = MarkdownIt("commonmark", {"html": True}).enable("table").parse(markdown)
    for token in tokens:
        for child in [token, *(token.children or [])]:
            if child.type in ("link_open", "image", "html_inline", "html_block", "heading_open"):
                found.append(f"{child.type} {child.attrs or ''} {child.content[:40]!r}")
    return found


HOSTILE_PIECE = "x\n# pwned [re-auth](https://evil.example/login) <img src=https://evil.example/i>"


def test_item4_vocabulary_piece_and_card_fields_are_inert_in_the_card(
    hub_server, hub_env, tiny_model, tmp_path
):
    """An id-based recipe whose ids' upstream pieces hold a newline, a heading, a link and an
    <img>, and an upstream card with a ``javascript:`` license_link and a multi-line
    license_name: the pushed card holds them as text (or not at all), nothing live."""
    source = copy_source(tiny_model("qwen3", tied=False), tmp_path / "source")
    tokenizer = json.loads((source / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    [(old_piece, token_id)] = [(p, i) for p, i in vocab.items() if i == 300]
    vocab[HOSTILE_PIECE] = vocab.pop(old_piece)
    pairs = [m if isinstance(m, list) else m.split(" ") for m in tokenizer["model"]["merges"]]
    tokenizer["model"]["merges"] = [  # no merge makes or uses the renamed piece
        m for m, (a, b) in zip(tokenizer["model"]["merges"], pairs, strict=True)
        if old_piece not in (a, b, a + b)
    ]  # fmt: skip
    (source / "tokenizer.json").write_text(json.dumps(tokenizer))
    files = repo_files(source)
    files["README.md"] = (
        b'---\nlicense: other\nlicense_name: "evil\\n# heading <img src=x>"\n'
        b'license_link: "javascript:alert(1)"\n---\n# upstream\n'
    )
    hub_server.seed_repo(UPSTREAM, files)
    template = tmp_path / "scoring.jinja"
    template.write_text(
        "{% for m in messages %}{{ m.role }}: "
        "{{ m.content if m.content is string else m.content[0].text }}\n{% endfor %}answer:"
    )
    env, _ = _env(hub_env, tmp_path)
    result = measured_cli(
        "run", "--model", UPSTREAM, "--target", TARGET, "--token-ids", f"[{token_id}]",
        "--method", "no_post_processing", "--template", template, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    card = hub_server.read_file(TARGET, "README.md").decode()
    body = card.split("---", 2)[2]
    assert live_markup(body) == [
        item for item in live_markup(body) if "evil" not in item and "pwned" not in item
    ]
    assert "evil" not in " ".join(live_markup(body))
    assert not [line for line in body.splitlines() if line.startswith("# pwned")]
    assert "pwned" in body  # kept, as text
    front = card.split("---", 2)[1]
    assert "javascript" not in front and "heading" not in front
    assert "license: other" in front


def test_item5_plan_summary_renders_a_hostile_provenance_repo_id_as_text(
    hub_server, hub_env, tmp_path
):
    """A target's provenance ``repo_id`` of ``![x](https://…) [re-auth](https://…)``: plan's
    summary rendered a live image and link (only ``|<>\\`` were escaped)."""
    import yaml

    sha = hub_server.seed_repo(UPSTREAM, {"config.json": b"{}"})
    hostile = {
        "tool": {"version": "0"},
        "source": {
            "repo_id": "![x](https://evil.example/i.png) [re-auth](https://evil.example/login)",
            "commit_sha": sha,
        },
    }
    hub_server.seed_repo(TARGET, {"reranker_seqcls.json": json.dumps(hostile).encode()})
    fleet = tmp_path / "rerankers.yml"
    fleet.write_text(yaml.safe_dump({"rerankers": [{"model": UPSTREAM, "target": TARGET}]}))
    summary = tmp_path / "summary.md"
    result = measured_cli("plan", fleet, "--summary", summary, env=hub_env)
    assert result.returncode == 0, result.stderr[-3000:]
    text = summary.read_text()
    assert "evil.example" in text  # the reason is shown ...
    assert not [m for m in live_markup(text) if "evil" in m]  # ... as text only
    links = [m for m in live_markup(text) if m.startswith("link_open")]
    assert len(links) == 2  # the table's own target and source links


def test_item5_action_summary_quotes_an_upstream_name_as_text(tmp_path) -> None:
    """The entrypoint's summary quoted error messages carrying upstream names (a shard named
    like a Markdown image) with only ``|`` escaped."""
    import importlib.machinery
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "entrypoint"
    loader = importlib.machinery.SourceFileLoader("entrypoint_under_test", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    # The entrypoint's own outputs for a failed run, so the summary sees every key it reads.
    outputs = module.outputs_for(
        {"status": "failed", "source_repo": "./local <img src=x>"},
        2,
        "error: shard '![x](https://evil.example/i.png)<img src=x>.safetensors' is bad",
    )
    text = module.format_summary(outputs, "https://huggingface.co")
    assert "evil" in text and not [m for m in live_markup(text) if "evil" in m or "img" in m]


# --------------------------------------------------------------------------- items 9 and 6


@pytest.mark.parametrize("name", ["tokenizer.json", "config.json"])
def test_item9_small_file_with_other_bytes_than_listed_is_refused(
    hub_server, hub_env, qwen_files, tmp_path, name
):
    """A tokenizer.json (LFS: sha256 listed) or a config.json (in git: blob id listed) served
    with other bytes of the same size: was pushed as the target's tokenizer; now exit 3 like a
    shard, nothing pushed, no file left."""
    hub_server.seed_repo(UPSTREAM, qwen_files)
    data = bytearray(qwen_files[name])
    at = data.rindex(b"}") - 1
    data[at : at + 1] = b" " if data[at : at + 1] != b" " else b"\n"
    hub_server.serve_instead(UPSTREAM, name, bytes(data))
    env, tmp = _env(hub_env, tmp_path)
    result = measured_cli("run", "--model", UPSTREAM, "--target", TARGET, env=env)
    kind = "sha256" if hub_server.get_file(UPSTREAM, name).lfs else "git blob id"
    one_line(result, 3, f"{name} has {kind} ")
    assert "the bytes are not the commit's, nothing was pushed" in result.stderr
    _header_ranges_only(hub_server, qwen_files)
    _nothing_pushed_nothing_left(hub_server, hub_env, tmp, result)


@pytest.mark.parametrize("name", ["tokenizer.json", "config.json", "shard"])
def test_item9_whole_snapshot_files_with_other_bytes_than_listed_are_refused(
    hub_server, hub_env, qwen_files, tmp_path, name
):
    """The whole-snapshot road (``--output-dir``: the conversion is kept) took what
    snapshot_download served: a tokenizer.json, config.json or shard with other bytes of the
    same size than the listing's was converted, checked against itself and pushed. Now each
    fetched file is checked against the listing as on the streamed road: exit 3, nothing
    pushed, no OUTPUT, and the bad file gone from the cache (a retry fetches it anew)."""
    if name == "shard":
        name = min(n for n in qwen_files if n.endswith(".safetensors"))
    hub_server.seed_repo(UPSTREAM, qwen_files)
    data = bytearray(qwen_files[name])
    at = data.rindex(b"}") - 1 if not name.endswith(".safetensors") else len(data) - 1
    data[at] = data[at] ^ 1 if name.endswith(".safetensors") else 32 if data[at] != 32 else 10
    hub_server.serve_instead(UPSTREAM, name, bytes(data))
    env, tmp = _env(hub_env, tmp_path)
    out = tmp_path / "converted"
    result = measured_cli(
        "run", "--model", UPSTREAM, "--target", TARGET, "--output-dir", out, env=env
    )
    kind = "sha256" if hub_server.get_file(UPSTREAM, name).lfs else "git blob id"
    one_line(result, 3, f"{name} has {kind} ")
    assert "the bytes are not the commit's, nothing was pushed" in result.stderr
    assert not out.exists() and not hub_server.repo_exists(TARGET)
    assert list(tmp.iterdir()) == [] and TEST_TOKEN not in result.stdout + result.stderr
    cached = [p for p in Path(hub_env["HF_HOME"]).rglob(Path(name).name) if p.is_file()]
    assert all(p.read_bytes() != bytes(data) for p in cached), cached


def test_item6_small_files_count_in_max_disk_before_they_are_fetched(
    hub_server, hub_env, qwen_files, tmp_path
):
    """A 40 MB LICENSE on a run limited to 5 MB landed before the forecast was judged."""
    files = {**qwen_files, "LICENSE": b"license text\n" * 3_100_000}
    hub_server.seed_repo(UPSTREAM, files)
    env, tmp = _env(hub_env, tmp_path)
    result = measured_cli(
        "run", "--model", UPSTREAM, "--target", TARGET, "--max-disk", "5MB", env=env
    )
    one_line(result, 2, "largest LICENSE 40.3 MB) need 80.7 MB of disk, more than --max-disk")
    assert "nothing was fetched" in result.stderr
    assert "LICENSE" not in hub_server.downloaded_files(UPSTREAM)
    _header_ranges_only(hub_server, files)
    _nothing_pushed_nothing_left(hub_server, hub_env, tmp, result)


# --------------------------------------------------------------------------- item 7


def test_item7_target_provenance_is_read_bounded_by_run_and_plan(
    hub_server, hub_env, qwen_files, tmp_path
):
    """A target whose reranker_seqcls.json is 60 MB: read whole (655 MB RSS, 60 MB left in
    HF_HOME) by run and by plan. Now at most 64 KiB is read, into memory only; it is no record,
    so the target is stale (plan) and converted over (run)."""
    import yaml

    hub_server.seed_repo(UPSTREAM, qwen_files)
    record = b'{"pad": "' + b"x" * 60_000_000 + b'"}'
    hub_server.seed_repo(TARGET, {"reranker_seqcls.json": record})
    fleet = tmp_path / "rerankers.yml"
    fleet.write_text(yaml.safe_dump({"rerankers": [{"model": UPSTREAM, "target": TARGET}]}))
    planned = measured_cli("plan", fleet, env=hub_env)
    assert planned.returncode == 0, planned.stderr[-3000:]
    assert "holds no reranker_seqcls.json provenance" in planned.stdout + planned.stderr
    assert planned.peak_rss < 250 * MB, planned.peak_rss
    env, tmp = _env(hub_env, tmp_path)
    result = measured_cli("run", "--model", UPSTREAM, "--target", TARGET, "--dry-run", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.peak_rss < 1500 * MB, result.peak_rss  # the check's own, not the record's
    assert list(tmp.iterdir()) == []
    home = Path(hub_env["HF_HOME"])
    cached = sum(p.stat().st_size for p in home.rglob("*") if p.is_file())
    assert cached < 1 * MB, cached
    served = hub_server.downloaded_files(TARGET).get("reranker_seqcls.json", 0)
    assert served < 20 * MB, served  # the client stopped reading (socket buffers aside)


# --------------------------------------------------------------------------- item 12


def test_item12_fleet_template_stays_inside_the_fleet_files_repository(
    hub_server, hub_env, tmp_path
):
    """``template: ../outside-secret.jinja`` was accepted, and the convert job then pushed that
    file as the target's template. Paths (and links) leading out of the fleet file's git work
    tree are refused by name; one inside it, in another directory, is taken."""
    sha = hub_server.seed_repo(UPSTREAM, {"config.json": b"{}"})
    assert sha
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "fleet").mkdir()
    (repo / "templates").mkdir()
    (repo / "templates" / "ok.jinja").write_text("{{ messages[0]['content'] }}")
    (tmp_path / "outside-secret.jinja").write_text("secret")
    (repo / "fleet" / "sneaky.jinja").symlink_to(tmp_path / "outside-secret.jinja")
    fleet = repo / "fleet" / "rerankers.yml"

    def plan(template: str) -> Measured:
        fleet.write_text(
            f"rerankers:\n  - model: {UPSTREAM}\n    target: {TARGET}\n"
            f"    tokens: ['no', 'yes']\n    method: from_2_way_softmax\n"
            f"    template: {template}\n"
        )
        return measured_cli("plan", fleet, env=hub_env)

    for template in ("../../outside-secret.jinja", "sneaky.jinja"):
        one_line(plan(template), 2, f"template: '{template}' leads outside the fleet file's "
                 f"repository ({repo.resolve()}): keep the template inside it")  # fmt: skip
    taken = plan("../templates/ok.jinja")
    assert taken.returncode == 0, taken.stderr[-3000:]
    assert '"template": "' in taken.stdout and "ok.jinja" in taken.stdout


def test_item12_yaml_merge_keys_get_a_clear_message(tmp_path) -> None:
    fleet = tmp_path / "rerankers.yml"
    fleet.write_text(
        "base: &base\n  preset: qwen3-reranker\nrerankers:\n"
        "  - <<: *base\n    model: a/b\n    target: c/d\n"
    )
    one_line(measured_cli("plan", fleet), 2, "a merge key (<<) is not supported: write out each")


# --------------------------------------------------------------------------- item 8


def _empty_tensors_shard(path: Path, count: int) -> None:
    import struct

    header = {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(count)}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)


def test_item8_a_header_of_500k_empty_tensors_is_refused_at_its_parse(
    hub_server, hub_env, qwen_files, tmp_path
):
    """A 31 MB shard header of 500,000 empty tensors cost 104 s and 1.65 GB: now the header
    bound (16 MiB) refuses it from its length field, and 70,000 tensors in 5 MB are refused by
    count before the JSON parse."""
    for count, fragment in ((500_000, "declares a"), (70_000, "70000 tensors in one header")):
        _empty_tensors_shard(tmp_path / "extra.safetensors", count)
        files = {
            **qwen_files,
            "model-extra.safetensors": (tmp_path / "extra.safetensors").read_bytes(),
        }
        index = json.loads(files["model.safetensors.index.json"])
        index["weight_map"]["t0"] = "model-extra.safetensors"
        files["model.safetensors.index.json"] = json.dumps(index).encode()
        hub_server.reset()
        hub_server.seed_repo(UPSTREAM, files)
        (tmp_path / str(count)).mkdir()
        env, tmp = _env(hub_env, tmp_path / str(count))
        result = measured_cli("run", "--model", UPSTREAM, "--target", TARGET, env=env)
        one_line(result, 2, fragment)
        assert result.seconds < 60 and result.peak_rss < 600 * MB, (result.seconds, result.peak_rss)
        _nothing_pushed_nothing_left(hub_server, hub_env, tmp, result)


def test_item8_tokenizer_json_is_weighed_against_check_memory_before_it_is_fetched(
    hub_server, hub_env, qwen_files, tmp_path
):
    """A valid tokenizer.json of N MB costs ~28 N MB to load (50 MB: 1.4 GB): over
    --check-memory (never below the default 1.5 GB) it is refused from the listing's size,
    before it is fetched."""
    padded = qwen_files["tokenizer.json"].rstrip() + b" " * 60_000_000 + b"\n"
    hub_server.seed_repo(UPSTREAM, {**qwen_files, "tokenizer.json": padded})
    env, tmp = _env(hub_env, tmp_path)
    result = measured_cli("run", "--model", UPSTREAM, "--target", TARGET, env=env)
    one_line(result, 2, "tokenizer.json is 60 MB: loading it takes ~1.68 GB, more than")
    assert "more than --check-memory" in result.stderr
    assert hub_server.downloaded_files(UPSTREAM).get("tokenizer.json", 0) < 1 * MB, result.stderr
    _nothing_pushed_nothing_left(hub_server, hub_env, tmp, result)


# --------------------------------------------------------------------------- item 11


def test_item11_sigterm_while_the_final_commit_is_in_flight_is_reported_truthfully(
    hub_server, hub_env, qwen_files, tmp_path
):
    """SIGTERM while the streamed run's commit to an existing target is in flight: it said
    "nothing was written" (exit 143, result "failed") while the commit landed. Now the signal
    waits for the commit's answer: it landed, so the run reports the push (exit 0, result
    "pushed") and says the signal came too late; nothing is left in TMPDIR."""
    import signal

    hub_server.seed_repo(UPSTREAM, qwen_files)
    hub_server.seed_repo(TARGET, {"README.md": b"# an older target\n"})
    before = hub_server.head_sha(TARGET)
    hub_server.delay(3.0, path_contains=f"/api/models/{TARGET}/commit/", method="POST")
    env, tmp = _env(hub_env, tmp_path)
    result_json = tmp_path / "result.json"
    proc = _run_until_delayed(hub_server, env, result_json)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    assert "SIGTERM arrived while the commit was in flight; the commit landed" in stderr
    assert "nothing was written" not in stderr and "Traceback" not in stderr
    after = hub_server.head_sha(TARGET)
    assert after != before
    assert "score.safetensors" in hub_server.list_files(TARGET)
    outcome = json.loads(result_json.read_text())
    assert outcome["status"] == "pushed" and after in json.dumps(outcome)
    assert list(tmp.iterdir()) == []
    assert TEST_TOKEN not in stdout + stderr


def test_item11_sigterm_while_a_lost_commit_is_looked_up_waits_for_the_lookup(
    hub_server, hub_env, qwen_files, tmp_path
):
    """The commit lands but its answer is lost (the connection drops after the Hub applied
    it); the run then asks the target whether the commit is there. A SIGTERM during that lookup
    interrupted it (exit 143, "failed") while the commit had landed. Now the lookup is inside
    the deferral too: it finishes, the run reports the push (exit 0, "pushed") and says the
    signal came too late."""
    import signal

    hub_server.seed_repo(UPSTREAM, qwen_files)
    hub_server.seed_repo(TARGET, {"README.md": b"# an older target\n"})
    before = hub_server.head_sha(TARGET)
    dropped = hub_server.drop_nth(
        1, path_contains=f"/api/models/{TARGET}/commit/", method="POST", during="response"
    )
    hub_server.delay(3.0, path_contains=f"/api/models/{TARGET}/paths-info/", method="POST")
    env, tmp = _env(hub_env, tmp_path)
    result_json = tmp_path / "result.json"
    proc = _run_until_delayed(hub_server, env, result_json)
    assert dropped.triggered  # the lookup runs after the lost answer
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    assert f"the Hub's answer to the commit was lost, but {TARGET} now holds it" in stderr
    assert "SIGTERM arrived while the commit was in flight; the commit landed" in stderr
    assert "Traceback" not in stderr
    after = hub_server.head_sha(TARGET)
    assert after != before and "score.safetensors" in hub_server.list_files(TARGET)
    outcome = json.loads(result_json.read_text())
    assert outcome["status"] == "pushed" and after in json.dumps(outcome)
    assert list(tmp.iterdir()) == []
    assert TEST_TOKEN not in stdout + stderr


# --------------------------------------------------------------------------- found beyond


def test_prompts_longer_than_a_learned_position_table_are_one_line(tiny_model, tmp_path):
    """Found with item 2: a GPT-2 of 256 positions checked on the family's prompts (longer on
    the tiny vocabulary) crashed with IndexError inside the model (exit 4)."""
    source = _tiny_causal(
        "gpt2", tiny_model("qwen3", tied=False), tmp_path / "gpt2", n_positions=256
    )
    out = tmp_path / "converted"
    assert measured_cli("convert", source, out, *QWEN).returncode == 0
    result = measured_cli("check", source, out, *QWEN)
    one_line(result, 2, "than the 256 positions of transformer.wpe.weight: give --pairs with")
