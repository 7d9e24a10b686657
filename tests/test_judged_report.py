"""One builder of the judged report (``check/judged.py``) for both checks: a converted model
whose label count is not the recipe's fails there in either, with nothing measured, the
storage note left out and the plain tolerance kept. The whole check (through the real CLI)
names the label counts; the layerwise half (``StreamedCheck.report``, driven as a streamed run
drives it) names the head's shape, from the structural check on the rows it kept.

Through the CLI the layerwise road does not reach this verdict: the consumer check on the twin
refuses the twin's own 2-row head against the 1-label recipe first (exit 2, a known leftover of
``check/consumers.py``, see the report). A tiny Qwen3: one ``convert``, one ``check``, one
layerwise pass over three pairs."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli


def test_a_label_count_mismatch_fails_alike_in_the_whole_and_the_layerwise_check(
    tiny_model, tmp_path: Path
) -> None:
    from reranker_seqcls.check.scope import real_pairs
    from reranker_seqcls.check.streamed import StreamedCheck, source_shards
    from reranker_seqcls.check.verdict import TOLERANCES
    from reranker_seqcls.recipes.presets import PRESETS
    from reranker_seqcls.steps import load_check_pairs, resolve_token_ids

    source = tiny_model("qwen3", tied=True)
    out = tmp_path / "two-labels"
    converted = run_cli(
        "convert", source, out, "--tokens", '["no", "yes"]', "--method", "no_post_processing"
    )
    assert converted.returncode == 0, converted.stderr
    report_file = tmp_path / "whole.json"
    result = run_cli("check", source, out, "--preset", "qwen3-reranker", "--report", report_file)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("error:") == 1 and "Traceback" not in result.stderr
    whole = json.loads(report_file.read_text())
    assert result.stderr.strip().splitlines()[-1] == f"error: parity failed: {whole['reasons'][0]}"
    assert whole["reasons"][0].startswith("the converted model has 2 label(s), the recipe gives 1")

    recipe = PRESETS["qwen3-reranker"]
    pairs = load_check_pairs(recipe, None)
    chosen = real_pairs(pairs, full=False)
    check = StreamedCheck(
        source, out, recipe, chosen.of(pairs), token_ids=resolve_token_ids(source, recipe)
    )
    for shard in source_shards(source):
        check.feed_source(shard)
    for shard in source_shards(out):
        check.feed_converted(shard)
    layerwise = check.report()
    assert not layerwise.passed and layerwise.metrics == {} and layerwise.scores == []
    assert layerwise.reasons[0].startswith("score.weight has shape [2, 64], the recipe gives [1,")
    for report in (layerwise.to_json(), whole):
        assert report["notes"] == [] and report["metrics"] == {}
    assert layerwise.tolerance == TOLERANCES["float32"]
    assert whole["recipe"] == layerwise.recipe == "qwen3-reranker"
