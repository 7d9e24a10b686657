"""The streaming conversion: outputs load cleanly and score exactly like the causal LM."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from tests.conftest import run_cli
from tests.scoring import causal_last_logits, seqcls_logits

PRESET_OF = {
    "qwen3": "qwen3-reranker",
    "qwen2": "mxbai-rerank-v2",
    "gemma": "bge-reranker-v2-gemma",
}
# (family, tied, dtype, shards, recipe args)
CASES = [
    ("qwen3", True, "float32", 1, ["--preset", "qwen3-reranker"]),
    ("qwen3", False, "float32", 3, ["--preset", "qwen3-reranker"]),
    ("qwen3", False, "bfloat16", 2, ["--preset", "qwen3-reranker"]),
    ("qwen2", False, "float32", 1, ["--preset", "mxbai-rerank-v2"]),
    ("gemma", True, "float32", 2, ["--preset", "bge-reranker-v2-gemma"]),
    ("llama", False, "float32", 1, ["--tokens", '["no", "yes"]', "--method", "from_2_way_softmax"]),
    ("llama", True, "bfloat16", 1, ["--tokens", '["no", "yes", "0", "1"]',
                                    "--method", "no_post_processing"]),
]  # fmt: skip


def _prompts(pad_id: int, vocab: int, n: int = 6, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    choices = [i for i in range(3, vocab) if i != pad_id]
    return [[rng.choice(choices) for _ in range(rng.randint(3, 24))] for _ in range(n)]


def _provenance(out: Path) -> dict:
    return json.loads((out / "reranker_seqcls.json").read_text())


@pytest.mark.parametrize(
    ("family", "tied", "dtype", "shards", "recipe"),
    CASES,
    ids=[f"{c[0]}-{'tied' if c[1] else 'untied'}-{c[2]}-{c[3]}sh" for c in CASES],
)
def test_converted_scores_equal_causal_lm(
    tiny_model, tmp_path, family, tied, dtype, shards, recipe
):
    source = tiny_model(family, tied=tied, dtype=dtype, num_shards=shards)
    out = tmp_path / "out"
    result = run_cli("convert", source, out, *recipe)
    assert result.returncode == 0, result.stderr
    assert "-> id" in result.stderr  # the ids used are reported

    config = json.loads((out / "config.json").read_text())
    prov = _provenance(out)
    token_ids = prov["classifier"]["token_ids"]
    pad_id = config["pad_token_id"]
    prompts = _prompts(pad_id, config["vocab_size"])

    for batched in (True, False):
        causal = causal_last_logits(source, prompts, token_ids, pad_id, batched=batched)
        converted = seqcls_logits(out, prompts, batched=batched)
        if prov["classifier"]["method"] == "from_2_way_softmax":
            expected = (causal[:, 1] - causal[:, 0]).unsqueeze(-1)
        else:
            expected = causal
        assert converted.shape == expected.shape
        # bfloat16 stores W_true - W_false rounded to 8 bits of mantissa.
        tol = 1e-4 if dtype == "float32" else 2e-2 * float(expected.abs().max()) + 1e-3
        assert torch.allclose(converted, expected, atol=tol, rtol=0), (converted, expected)
        assert float(expected.std()) > 0.05  # the scores really vary between prompts

    # batched (left padding) and one-by-one agree
    batched_scores = seqcls_logits(out, prompts, batched=True)
    single_scores = seqcls_logits(out, prompts, batched=False)
    assert torch.allclose(batched_scores, single_scores, atol=1e-4)


def test_output_config_and_files(tiny_model, tmp_path):
    source = tiny_model("qwen3", tied=False, dtype="bfloat16", num_shards=3)
    out = tmp_path / "out"
    assert run_cli("convert", source, out, "--preset", "qwen3-reranker").returncode == 0
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["Qwen3ForSequenceClassification"]
    assert config["num_labels"] == 1 and config["id2label"] == {"0": "yes-vs-no"}
    assert config["use_sep_token"] is False
    assert isinstance(config["pad_token_id"], int)
    for key in ("method", "classifier_from_token", "is_original_qwen3_reranker"):
        assert key not in config
    assert not (out / "generation_config.json").exists()
    for name in ("tokenizer.json", "tokenizer_config.json", "LICENSE"):
        if (source / name).exists():
            assert (out / name).read_bytes() == (source / name).read_bytes(), name

    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert "lm_head.weight" not in index["weight_map"]
    assert index["weight_map"]["score.weight"] == "score.safetensors"
    total = 0
    for shard in sorted(set(index["weight_map"].values())):
        with safe_open(out / shard, framework="pt") as fh:
            names = set(fh.keys())
            assert names == {k for k, v in index["weight_map"].items() if v == shard}
            for name in names:
                tensor = fh.get_tensor(name)
                assert tensor.dtype == torch.bfloat16
                total += tensor.numel() * tensor.element_size()
    assert index["metadata"]["total_size"] == total

    prov = _provenance(out)
    assert prov["recipe"]["name"] == "qwen3-reranker"
    assert prov["classifier"]["score_from"] == "lm_head.weight"
    assert prov["tool"]["name"] == "reranker-seqcls"


def test_score_weight_is_difference_of_head_rows(tiny_model, tmp_path):
    source = tiny_model("qwen3", tied=False, dtype="float32", num_shards=3)
    out = tmp_path / "out"
    assert run_cli("convert", source, out, "--preset", "qwen3-reranker").returncode == 0
    ids = _provenance(out)["classifier"]["token_ids"]
    index = json.loads((source / "model.safetensors.index.json").read_text())
    with safe_open(source / index["weight_map"]["lm_head.weight"], framework="pt") as fh:
        head = fh.get_tensor("lm_head.weight")
    with safe_open(out / "score.safetensors", framework="pt") as fh:
        score = fh.get_tensor("score.weight")
    assert score.shape == (1, head.shape[1])
    assert torch.equal(score[0], head[ids[1]] - head[ids[0]])


def test_only_the_head_shard_is_rewritten(tiny_model, tmp_path):
    source = tiny_model("qwen3", tied=False, dtype="float32", num_shards=3)
    src_index = json.loads((source / "model.safetensors.index.json").read_text())
    shards = sorted(set(src_index["weight_map"].values()))
    assert len(shards) >= 3
    head_shard = src_index["weight_map"]["lm_head.weight"]
    out = tmp_path / "out"
    result = run_cli("convert", source, out, "--preset", "qwen3-reranker")
    assert result.returncode == 0, result.stderr
    for shard in shards:
        src_stat, out_path = (source / shard).stat(), out / shard
        if shard == head_shard:
            if out_path.exists():
                assert out_path.stat().st_ino != src_stat.st_ino
                assert "rewritten" in result.stderr
        else:
            # placed without rewriting: same inode (hard link) or identical bytes (reflink/copy)
            assert out_path.read_bytes() == (source / shard).read_bytes()
            assert out_path.stat().st_ino == src_stat.st_ino or "reflinked" in result.stderr

    copied = tmp_path / "copied"
    assert (
        run_cli("convert", source, copied, "--preset", "qwen3-reranker", "--copy").returncode == 0
    )
    for shard in shards:
        if shard != head_shard:
            assert (copied / shard).stat().st_ino != (source / shard).stat().st_ino
            assert (copied / shard).read_bytes() == (source / shard).read_bytes()


def test_tied_model_rewrites_nothing(tiny_model, tmp_path):
    source = tiny_model("gemma", tied=True, dtype="float32", num_shards=2)
    out = tmp_path / "out"
    result = run_cli("convert", source, out, "--preset", "bge-reranker-v2-gemma")
    assert result.returncode == 0, result.stderr
    assert "rewritten shards: none" in result.stderr
    assert _provenance(out)["classifier"]["score_from"].endswith("embed_tokens.weight")


def test_preset_detected_from_directory_name(tiny_model, tmp_path):
    source = tiny_model("qwen3", tied=True, name="Qwen3-Reranker-tiny")
    out = tmp_path / "out"
    result = run_cli("convert", source, out)
    assert result.returncode == 0, result.stderr
    assert _provenance(out)["recipe"]["name"] == "qwen3-reranker"


def test_reference_script_flags(tiny_model, tmp_path):
    source = tiny_model("gemma", tied=True, name="bge-reranker-v2-gemma-tiny")
    explicit, dropin = tmp_path / "explicit", tmp_path / "dropin"
    args = ["--method", "no_post_processing"]
    assert run_cli("convert", source, explicit, "--tokens", '["Yes"]', *args).returncode == 0
    result = run_cli(
        "convert",
        "--model_name",
        source,
        "--classifier_from_tokens",
        '["Yes"]',
        *args,
        "--path",
        dropin,
    )
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in explicit.iterdir())
    assert names == sorted(p.name for p in dropin.iterdir())
    for name in names:
        assert _same_but_path(explicit, dropin, name), name
    # equal to the family's preset: the template travels even with the reference flags
    assert _provenance(dropin)["recipe"]["name"] == "bge-reranker-v2-gemma"


def test_force_replaces_output(tiny_model, tmp_path):
    source = tiny_model("qwen3", tied=True)
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    result = run_cli("convert", source, out, "--preset", "qwen3-reranker", "--force")
    assert result.returncode == 0, result.stderr
    assert not (out / "stale.txt").exists()
    assert (out / "config.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary directory left


def test_pickle_checkpoint_with_allow_pickle(tiny_model, tmp_path):
    from safetensors.torch import load_file

    source = tiny_model("qwen3", tied=False)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for path in source.iterdir():
        if path.suffix != ".safetensors" and path.name != "model.safetensors.index.json":
            (pickled / path.name).write_bytes(path.read_bytes())
    state = {}
    for shard in source.glob("*.safetensors"):
        state.update(load_file(shard))
    torch.save(state, pickled / "pytorch_model.bin")
    out = tmp_path / "out"
    result = run_cli("convert", pickled, out, "--preset", "qwen3-reranker", "--allow-pickle")
    assert result.returncode == 0, result.stderr
    assert not list(out.glob("*.bin"))
    prompts = _prompts(json.loads((out / "config.json").read_text())["pad_token_id"], 100)
    ids = _provenance(out)["classifier"]["token_ids"]
    pad = json.loads((out / "config.json").read_text())["pad_token_id"]
    causal = causal_last_logits(source, prompts, ids, pad, batched=True)
    converted = seqcls_logits(out, prompts, batched=True)
    assert torch.allclose(converted[:, 0], causal[:, 1] - causal[:, 0], atol=1e-4)


def _same_but_path(a: Path, b: Path, name: str) -> bool:
    """Files equal byte for byte, except that convert's README names its own directory."""

    def read(directory: Path) -> bytes:
        data = (directory / name).read_bytes()
        if name != "README.md":
            return data
        for spelling in (str(directory), f"# {directory.name}\n"):  # the paths, the title
            data = data.replace(spelling.encode(), b"OUT")
        return data

    return read(a) == read(b)
