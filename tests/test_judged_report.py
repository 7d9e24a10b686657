"""One builder of the judged report (``check/judged.py``) for both checks: a converted model
whose label count is not the recipe's fails there in either, with nothing measured, the
storage note left out and the plain tolerance kept. The whole check (through the real CLI)
names the label counts; the layerwise half (``StreamedCheck.report``) names the head's shape,
from the structural check on the rows it kept.

Both through the real CLI: the layerwise road (``--check-memory`` below the model) gives the
real half's verdict, exit 1, and builds no twin (the twin would refuse the same head in its own
words, exit 2). A tiny Qwen3: one ``convert``, two ``check``s."""

from __future__ import annotations

import json
from pathlib import Path

from reranker_seqcls.check.verdict import TOLERANCES
from tests.conftest import run_cli


def test_a_label_count_mismatch_fails_alike_in_the_whole_and_the_layerwise_check(
    tiny_model, tmp_path: Path
) -> None:
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

    layerwise_file = tmp_path / "layerwise.json"
    result = run_cli(
        "check", source, out, "--preset", "qwen3-reranker", "--check-memory", "1KB",
        "--report", layerwise_file,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("error:") == 1 and "Traceback" not in result.stderr
    assert "twin" not in result.stderr  # the verdict came before any twin was built
    layerwise = json.loads(layerwise_file.read_text())
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: parity failed: {layerwise['reasons'][0]}"
    )
    assert not layerwise["passed"] and layerwise["scores"] == []
    shape = "score.weight has shape [2, 64], the recipe gives [1,"
    assert layerwise["reasons"][0].startswith(shape)
    for report in (layerwise, whole):
        assert report["notes"] == [] and report["metrics"] == {}
    assert layerwise["tolerance"]["logit"] == TOLERANCES["float32"].logit  # the plain one
    assert whole["recipe"] == layerwise["recipe"] == "qwen3-reranker"
