"""Every bad input: exit code 2, one line on stderr naming problem and fix, nothing written."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from reranker_seqcls.convert.architectures import _auto_mappings
from tests.conftest import run_cli


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def _no_seqcls_model_type() -> str:
    maps = _auto_mappings()
    seq = maps["MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES"]
    causal = maps["MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"]
    return sorted(t for t, cls in causal.items() if t not in seq and cls.endswith("ForCausalLM"))[0]


def _mutations() -> dict[str, tuple[Callable[[Path], list[str]], str]]:
    """name → (mutate source dir and return extra CLI args, expected message fragment)."""
    qwen = ["--preset", "qwen3-reranker"]

    def args(*extra: str) -> Callable[[Path], list[str]]:
        return lambda src: list(extra)

    def config(extra: list[str], **changes) -> Callable[[Path], list[str]]:
        def mutate(src: Path) -> list[str]:
            _edit_json(src / "config.json", **changes)
            return extra

        return mutate

    def remove(name: str, extra: list[str]) -> Callable[[Path], list[str]]:
        def mutate(src: Path) -> list[str]:
            (src / name).unlink()
            return extra

        return mutate

    def pickle_only(src: Path) -> list[str]:
        for shard in src.glob("*.safetensors"):
            shard.unlink()
        (src / "model.safetensors.index.json").unlink(missing_ok=True)
        (src / "pytorch_model.bin").write_bytes(b"not really a pickle")
        return qwen

    def no_pad(src: Path) -> list[str]:
        _edit_json(src / "tokenizer_config.json", pad_token=None)
        special = src / "special_tokens_map.json"
        if special.exists():
            _edit_json(special, pad_token=None)
        return qwen

    def corrupt_shard(src: Path) -> list[str]:
        shard = sorted(src.glob("*.safetensors"))[0]
        shard.write_bytes(b"\xff" * 16)
        return qwen

    def missing_template(src: Path) -> list[str]:
        return [
            "--tokens",
            '["no","yes"]',
            "--method",
            "from_2_way_softmax",
            "--template",
            str(src / "nope.jinja"),
        ]

    no_seqcls = _no_seqcls_model_type()
    return {
        "unknown preset": (args("--preset", "nope"), "unknown preset 'nope'"),
        "undetectable family": (args(), "pass --preset (qwen3-reranker, mxbai-rerank-v2"),
        "tokens not json": (args("--tokens", "[no", "--method", "no_post_processing"),
                            "not a JSON list of strings"),
        "empty tokens": (args("--tokens", "[]", "--method", "no_post_processing"), "empty list"),
        "duplicate tokens": (args("--tokens", '["yes","yes"]', "--method", "no_post_processing"),
                             "'yes' twice"),
        "wrong token count": (args("--tokens", '["yes"]', "--method", "from_2_way_softmax"),
                              "needs exactly 2 tokens"),
        "tokens without method": (args("--tokens", '["yes"]'), "needs both --tokens and --method"),
        "preset and tokens": (args("--preset", "qwen3-reranker", "--tokens", '["yes"]',
                                   "--method", "no_post_processing"), "not both"),
        "token not in vocab": (args("--tokens", '["no","\u2603\u2603"]', "--method",
                                    "from_2_way_softmax"), "is not"),
        "token of several pieces": (args("--tokens", '["no","yes yes no"]', "--method",
                                         "from_2_way_softmax"), "pieces"),
        "softcapping": (config(qwen, final_logit_softcapping=30.0), "final_logit_softcapping"),
        "logit_scale": (config(qwen, logit_scale=0.0625), "logit_scale"),
        "logits_scaling": (config(qwen, logits_scaling=8.0), "logits_scaling"),
        "not a causal LM": (config(qwen, architectures=["BertModel"], model_type="bert"),
                            "not a causal LM"),
        "no seq-cls class": (config(qwen, model_type=no_seqcls,
                                    architectures=[_auto_mappings()[
                                        "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"][no_seqcls]]),
                             "no sequence-classification class"),
        "remote code": (config(qwen, model_type="my_custom_lm", auto_map={"AutoModel": "x.Y"},
                               architectures=["MyCustomForCausalLM"]), "trust_remote_code"),
        "already seq-cls": (config(qwen, architectures=["Qwen3ForSequenceClassification"]),
                            "already a sequence classifier"),
        "pickle only": (pickle_only, "--allow-pickle"),
        "no config": (remove("config.json", qwen), "no config.json"),
        "no pad token": (no_pad, "no pad_token"),
        "corrupt shard": (corrupt_shard, "not a readable safetensors file"),
        "missing template": (missing_template, "does not exist"),
    }  # fmt: skip


MUTATIONS = _mutations()


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_bad_input(tiny_model, tmp_path, case):
    mutate, fragment = MUTATIONS[case]
    source = tmp_path / "some-model"
    shutil.copytree(tiny_model("qwen3", tied=True, num_shards=2), source)
    extra = mutate(source)
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "out"
    result = run_cli("convert", source, out, *extra)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and ": " in lines[0][7:]
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_non_empty_output_refused(tiny_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_cli("convert", tiny_model("qwen3"), out, "--preset", "qwen3-reranker")
    assert result.returncode == 2
    assert "not empty: pass --force" in result.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_output_is_a_file(tiny_model, tmp_path):
    out = tmp_path / "out"
    out.write_text("x")
    result = run_cli("convert", tiny_model("qwen3"), out, "--preset", "qwen3-reranker")
    assert result.returncode == 2 and "is a file" in result.stderr
    assert out.read_text() == "x"


def test_missing_source(tmp_path):
    result = run_cli("convert", tmp_path / "nope", tmp_path / "out", "--preset", "qwen3-reranker")
    assert result.returncode == 2 and "neither a directory nor a Hub repo id" in result.stderr
    assert not (tmp_path / "out").exists()


def test_nested_output_parents_removed_on_error(tiny_model, tmp_path):
    out = tmp_path / "a" / "b" / "out"
    result = run_cli(
        "convert",
        tiny_model("qwen3"),
        out,
        "--tokens",
        '["zz\u2603"]',
        "--method",
        "no_post_processing",
    )
    assert result.returncode == 2
    assert not (tmp_path / "a").exists()


def test_debug_shows_traceback(tiny_model, tmp_path):
    result = run_cli("--debug", "convert", tiny_model("qwen3"), tmp_path / "o", "--preset", "nope")
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_debug_shows_the_cause_of_a_translated_error(tiny_model, tmp_path):
    """A library error translated into a one-line BadInput keeps it as its cause: --debug shows
    both; without --debug the line alone is printed."""
    source = tmp_path / "src"
    shutil.copytree(tiny_model("qwen3"), source)
    (source / "config.json").write_text('{"model_type": "qwen3",')
    plain = run_cli("convert", source, tmp_path / "o1", "--preset", "qwen3-reranker")
    debug = run_cli("--debug", "convert", source, tmp_path / "o2", "--preset", "qwen3-reranker")
    assert plain.returncode == debug.returncode == 2
    assert plain.stderr.count("\n") == 1 and "config.json is not valid JSON" in plain.stderr
    assert "JSONDecodeError" in debug.stderr
    assert "The above exception was the direct cause of the following exception" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1] == plain.stderr.rstrip()


def test_ctrl_c_leaves_nothing(tiny_model, tmp_path):
    """SIGINT in the middle of a shard rewrite: exit 130, no OUTPUT, no temporary directory."""
    import signal
    import subprocess
    import sys
    import time

    from reranker_seqcls.safetensors_io.header import SafetensorsFile
    from reranker_seqcls.safetensors_io.header import header_bytes as _header_bytes

    source = tmp_path / "big-model"
    shutil.copytree(tiny_model("qwen3", tied=False, num_shards=2), source)
    index = json.loads((source / "model.safetensors.index.json").read_text())
    head_shard = source / index["weight_map"]["lm_head.weight"]
    # Grow the lm_head shard by a 3 GB all-zero tensor (sparse on disk, slow to copy).
    shard = SafetensorsFile(head_shard)
    raw = head_shard.read_bytes()
    body = raw[min(t.start for t in shard.tensors.values()) :]
    extra = 3 * 1024**3
    entries = [
        (t.name, t.dtype, t.shape, t.nbytes)
        for t in sorted(shard.tensors.values(), key=lambda t: t.start)
    ]
    entries.append(("model.padding.weight", "F32", (extra // 4,), extra))
    with head_shard.open("wb") as fh:
        fh.write(_header_bytes(entries, shard.metadata))
        fh.write(body)
        fh.truncate(fh.tell() + extra)
    index["weight_map"]["model.padding.weight"] = head_shard.name
    (source / "model.safetensors.index.json").write_text(json.dumps(index))

    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "reranker_seqcls", "convert", str(source), str(out),
         "--preset", "qwen3-reranker"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(tmp_path.glob(".out.tmp-*")):
        time.sleep(0.005)
    assert list(tmp_path.glob(".out.tmp-*")), "the conversion never started writing"
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted; nothing was written"
    assert "Traceback" not in stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big-model"]
