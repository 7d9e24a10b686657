"""The quick parity check (issue 21): a few short pairs on the real weights, every pair on the
twin; ``--full-check`` scores every pair on the real weights; what ran where is in the report,
the log and the card. The causes it must still catch are the ones of
``tests/test_streamed_check.py`` (its broken conversions run the quick check) and
``tests/test_parity.py``."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from reranker_seqcls.check.pairs import BUILTIN_PAIRS, Pair, builtin_pairs
from reranker_seqcls.check.report import ParityReport
from reranker_seqcls.check.scope import (
    CHEAP_BACKBONE_PARAMS,
    QUICK_GROUPS,
    backbone_params,
    real_pairs,
    whole_on_real,
)
from reranker_seqcls.stream.overlap import Background, overlap_budget
from tests.conftest import run_cli
from tests.loopback_hub.fixtures import TEST_USER

LAYERS = 4  # more than the twin's 2


def test_quick_pairs_are_the_short_plain_groups_and_full_is_every_pair():
    pairs = builtin_pairs(takes_instruction=True)
    quick = real_pairs(pairs, full=False)
    chosen = quick.of(pairs)
    assert not quick.full and len(chosen) == 3
    assert {p.group for p in chosen} == set(QUICK_GROUPS)
    # the tokenization-sensitive and long pairs stay on the twin
    assert all(p.group not in ("eiffel-edges", "sushi-edges", "vaccines-long") for p in chosen)
    assert max(len(p.document) for p in chosen) < 80
    full = real_pairs(pairs, full=True)
    assert full.full and full.of(pairs) == pairs

    # Pairs of the user's own: the three shortest, in their order.
    own = [Pair(f"q{i}", "d" * (10 * (9 - i)), group=f"g{i % 3}") for i in range(9)]
    assert real_pairs(own, full=False).indices == [6, 7, 8]
    assert real_pairs(own[:3], full=False).full  # nothing to leave out


def test_whole_check_on_the_real_model_only_where_it_is_cheap_or_asked_for():
    from bench.synthetic import SHAPES

    tiny = {"hidden_size": 64, "vocab_size": 151_669, "num_hidden_layers": 4,
            "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 16}  # fmt: skip
    assert backbone_params(tiny) < CHEAP_BACKBONE_PARAMS
    assert whole_on_real(tiny, 1_500_000_000, full=False)
    assert not whole_on_real(tiny, 1_000_000, full=True)  # does not fit: layerwise either way

    qwen06 = SHAPES["0.6b"].config(None, 0)
    assert 400e6 < backbone_params(qwen06) < 500e6  # 0.6B less its 155M embedding
    assert not whole_on_real(qwen06, 8_000_000_000, full=False)  # fits, but costs minutes
    assert whole_on_real(qwen06, 8_000_000_000, full=True)
    assert not whole_on_real(qwen06, 1_500_000_000, full=True)


def _model(tmp_path: Path) -> Path:
    from testkit.tiny import build_model

    return build_model(
        "qwen3", tmp_path / "qwen3", tied=True, num_shards=2,
        config_overrides={"num_hidden_layers": LAYERS},
    )  # fmt: skip


def test_cli_quick_check_scores_three_pairs_on_the_real_model_and_all_on_the_twin(
    tmp_path, hub_server, hub_env
):
    source = _model(tmp_path)
    out = tmp_path / "converted"
    assert run_cli("convert", source, out, "--preset", "qwen3-reranker").returncode == 0
    every = len(builtin_pairs(takes_instruction=True))

    quick = run_cli("check", source, out, "--preset", "qwen3-reranker", "--check-memory", "1MB")
    assert quick.returncode == 0, quick.stderr
    assert f"layerwise pass over qwen3 in float32 (source dtype float32), 3 of {every}" in (
        quick.stderr
    )
    assert f"real model scored 3 short pairs of {every} (quick check" in quick.stdout
    data = json.loads((out / "parity_report.json").read_text())
    assert data["real_pass"] == {"pairs": 3, "groups": 1, "tokens": data["real_pass"]["tokens"],
                                 "of_pairs": every, "full": False}  # fmt: skip
    assert 3 * 20 < data["real_pass"]["tokens"] < 3 * 200
    assert data["num_pairs"] == 3
    assert len(data["scores"]) == 3
    # every real row carries the twin's row of the same pair
    assert [row["twin"]["document"] for row in data["scores"]] == [
        row["document"] for row in data["scores"]
    ]
    # the over-length pairs of this 4096-token model are left to the full check's twin
    assert data["long_inputs"]["measured"] is False
    assert "--full-check measures them on the twin" in data["long_inputs"]["why_not"]
    card = ParityReport.from_json(data).markdown()
    assert f"Real model: 3 short pairs of the {every} (1 query group," in card
    assert "`--full-check` scores every pair on the real model" in card
    # the README's order, check then push: the quick verdict is the one published
    target = f"{TEST_USER}/quick"
    pushed = run_cli("push", out, target, env=hub_env)
    assert pushed.returncode == 0, pushed.stderr
    published = hub_server.read_file(target, "README.md").decode()
    assert f"Real model: 3 short pairs of the {every}" in published
    assert "not checked" not in published.lower()

    full = run_cli("check", source, out, "--preset", "qwen3-reranker", "--check-memory", "1MB",
                   "--full-check")  # fmt: skip
    assert full.returncode == 0, full.stderr
    data = json.loads((out / "parity_report.json").read_text())
    assert data["real_pass"]["pairs"] == data["real_pass"]["of_pairs"] == every
    assert data["real_pass"]["full"] is True and data["num_pairs"] == every
    assert data["long_inputs"]["measured"] is True  # on the twin
    assert {c["pair"] for c in data["long_inputs"]["consumers"]} >= {"long-document"}
    assert f"Real model: all {every} pairs" in ParityReport.from_json(data).markdown()
    assert "full-check" in run_cli("check", "--help").stdout


def test_background_job_gives_its_result_or_its_error_in_the_caller():
    worker: Background[int] = Background("test")
    assert worker.wait() is None and not worker.pending
    seen: list[str] = []

    def job() -> int:
        seen.append(threading.current_thread().name)
        return 7

    worker.start(job)
    assert worker.pending
    with pytest.raises(RuntimeError, match="previous job"):
        worker.start(lambda: 8)
    assert worker.wait() == 7 and seen == ["test"] and not worker.pending

    def fail() -> int:
        raise ValueError("bad shard")

    worker.start(fail)
    with pytest.raises(ValueError, match="bad shard"):
        worker.wait()
    assert not worker.pending


def test_fetch_ahead_budget_is_two_shards_and_the_small_files_within_max_disk():
    gb = 10**9
    assert overlap_budget([5 * gb, 3 * gb], 10**6, None) == 10 * gb + 10**6
    assert overlap_budget([5 * gb, 3 * gb], 10**6, 7 * gb) == 7 * gb
    assert len(BUILTIN_PAIRS) == 27  # the full check's cost in --help is for these


def test_an_architecture_not_driven_layer_by_layer_gets_the_whole_check_where_it_fits(
    tmp_path, monkeypatch, tiny_model
):
    """OPT (layers under ``decoder.``) cannot be scored layer by layer. Where the quick check
    would go layerwise but the model fits --check-memory (here: a tiny OPT, made to count as
    costly), it gets the whole check on the real model instead of a refusal; where it does not
    fit, the refusal names the fix."""
    from reranker_seqcls.check import scope
    from reranker_seqcls.check.streamed import streamed_check
    from reranker_seqcls.errors import BadInput
    from reranker_seqcls.recipes.presets import PRESETS
    from reranker_seqcls.steps import load_check_pairs, resolve_token_ids
    from tests.test_hostile_round2 import QWEN, _tiny_causal

    source = _tiny_causal("opt", tiny_model("qwen3", tied=False), tmp_path / "opt")
    out = tmp_path / "converted"
    assert run_cli("convert", source, out, *QWEN).returncode == 0
    monkeypatch.setattr(scope, "CHEAP_BACKBONE_PARAMS", 0)
    recipe = PRESETS["qwen3-reranker"]

    def check(memory: int) -> ParityReport:
        return streamed_check(
            source, out, recipe, load_check_pairs(recipe, None),
            token_ids=resolve_token_ids(source, recipe), check_memory=memory,
            log=lambda _m: None,
        )  # fmt: skip

    report = check(1_500_000_000)
    assert report.consumers_proven_on == "real" and report.real_pass is None
    assert "converted (batched)" in {p.value for p in report.metrics}
    with pytest.raises(BadInput, match="cannot run OPTModel"):
        check(1000)


@pytest.mark.parametrize(
    "real_pass",
    [{"pairs": "three"}, {"pairs": 3, "groups": 1, "tokens": None, "of_pairs": 27, "full": 0},
     ["pairs", 3], "3 of 27"],
)  # fmt: skip
def test_a_hand_edited_real_pass_is_refused_in_one_line(real_pass, tmp_path):
    """``real_pass`` is read back from ``parity_report.json`` (push publishes it): a value of the
    wrong shape or type is no report of ours, exit 2 naming the file, never a traceback."""
    from reranker_seqcls.check.metrics import PathMetrics, ScoringPath
    from reranker_seqcls.check.verdict import TOLERANCES
    from reranker_seqcls.errors import BadInput

    report = ParityReport(
        True, "float32", TOLERANCES["float32"], "qwen3-reranker", 3, 1,
        {ScoringPath.LAYERWISE: PathMetrics(1e-4, 1e-5, 1.0, 1.0)},
    )  # fmt: skip
    data = json.loads(json.dumps(report.to_json()))
    assert ParityReport.from_json(data).real_pass is None  # a report without one reads back
    data["real_pass"] = real_pass
    with pytest.raises(BadInput, match="is not a parity report written by reranker-seqcls"):
        ParityReport.from_json(data, tmp_path / "parity_report.json")


@pytest.mark.parametrize("family", ["qwen3", "qwen2", "gemma", "llama", "mistral"])
def test_packed_prompts_give_each_prompt_its_own_hidden_states(family, tiny_model):
    """The quick pairs' shared prefix computed once (:mod:`check.packing`): one row, each tail
    seeing the prefix and itself. Every family packing serves gives the hidden states of the
    prompts scored apart (float rounding aside), on fewer positions; a tail that saw another
    tail would not."""
    import torch

    from reranker_seqcls.check.layerwise import LayerwiseScorer
    from reranker_seqcls.check.packing import PACKABLE, can_pack
    from reranker_seqcls.check.source_proof import source_shards

    source = tiny_model(family, tied=True, num_shards=2)
    config = json.loads((source / "config.json").read_text())
    assert config["model_type"] in PACKABLE
    shared = [5, 9, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43]
    prompts = [[*shared, 50, 51, 52], [*shared, 60], [*shared, 70, 71, 72, 73, 74]]
    hidden = {}
    for pack in (False, True):
        scorer = LayerwiseScorer(config, prompts, pad_id=0, pack=pack)
        for shard in source_shards(source):
            scorer.feed(shard)
        hidden[pack] = scorer.final_hidden()
        assert scorer.positions == (len(shared) + 3 + 1 + 5 if pack else 3 * len(prompts[2]))
    assert torch.allclose(hidden[True], hidden[False], atol=1e-5), hidden[True] - hidden[False]
    assert hidden[False][0].sub(hidden[False][1]).abs().max() > 1e-3  # the rows are distinct
    # Not packed: learned positions, prompts beyond a sliding window, no shared prefix.
    assert not can_pack(config, prompts, learned_positions=True)
    assert not can_pack({**config, "sliding_window": 8, "use_sliding_window": True}, prompts, False)
    assert not can_pack(config, [[1, 2, 3], [4, 5, 6]], False)
    assert not can_pack({**config, "model_type": "gpt2"}, prompts, False)


def test_a_hard_linked_shard_of_known_sha256_is_not_read_again(tiny_model, tmp_path):
    """A fetched shard verified by its sha256 whose output is a hard link of it: its tensor
    digests come from that sha256 (no read), its link matches them; a copy is hashed, and a
    changed copy would never match the known file's digests."""
    import hashlib
    import os
    import shutil

    from reranker_seqcls.check.file_digests import FileDigests
    from reranker_seqcls.check.kept_rows import tensor_digests
    from reranker_seqcls.safetensors_io.header import SafetensorsFile

    shard = sorted(tiny_model("qwen3", tied=True, num_shards=2).glob("*.safetensors"))[0]
    source, link, copy = tmp_path / "source", tmp_path / "link", tmp_path / "copy"
    shutil.copyfile(shard, source)
    os.link(source, link)
    shutil.copyfile(source, copy)
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    digests = FileDigests()
    known = digests.of(SafetensorsFile(source), set(), sha)
    assert digests.read == 0 and set(known) == set(SafetensorsFile(source).tensors)
    assert digests.of(SafetensorsFile(link), set()) == known and digests.read == 0
    copied = digests.of(SafetensorsFile(copy), set())
    assert digests.read == 1 and copied == tensor_digests(SafetensorsFile(copy), set())
    assert all(copied[n] != known[n] for n in known)  # another form: a copy is no proof


def test_a_real_half_without_rows_combines_into_its_failure():
    """The real half stops before scoring when the converted model has another label count
    than the recipe: no rows. combine keeps its reason instead of failing to pair rows (exit 4)."""
    from reranker_seqcls.check.consumers import combine
    from reranker_seqcls.check.report import PairScores
    from reranker_seqcls.check.scope import RealPairs
    from reranker_seqcls.check.verdict import TOLERANCES

    real = ParityReport(True, "float32", TOLERANCES["float32"], "qwen3-reranker", 3, 1, {})
    real.fail("the converted model has 2 label(s), the recipe gives 1: convert again")
    twin = ParityReport(True, "float32", TOLERANCES["float32"], "qwen3-reranker", 5, 2, {})
    twin.scores = [
        PairScores(group="g", query="q", document=f"d{i}", instruction=None, reference=[0.0],
                   converted_batched=[0.0], converted_single=[0.0], sentence_transformers=None)
        for i in range(5)
    ]  # fmt: skip
    report = combine(real, twin, "twin (2 of 4 layers)", RealPairs([0, 1, 2], full=False))
    assert not report.passed and report.scores == []
    assert report.reasons == [real.reasons[0]]


def test_the_users_cut_pairs_are_noted_on_the_layerwise_path(tmp_path):
    """Given pairs the family's code would cut are left out of both halves; the layerwise path
    says so in a note, as the whole check does."""
    source = _model(tmp_path)
    out = tmp_path / "converted"
    assert run_cli("convert", source, out, "--preset", "qwen3-reranker").returncode == 0
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"query": f"what is {w}?", "document": f"{w} is a word.", "group": w}
            for w in ("paris", "rome", "oslo", "bern")]  # fmt: skip
    rows.append({"query": "long", "document": "word " * 9000, "group": "too-long"})
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run_cli("check", source, out, "--preset", "qwen3-reranker", "--check-memory", "1MB",
                     "--pairs", pairs)  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "parity_report.json").read_text())
    assert data["real_pass"]["of_pairs"] == 4 and data["real_pass"]["pairs"] == 3
    assert any(
        n.startswith("long inputs: 1 given pair(s) exceed the family's scoring length")
        and "too-long" in n
        for n in data["notes"]
    ), data["notes"]
