"""The parity report's records and the verdict, without models: JSON both ways, the failure
exception, and which reasons and allowances the judgement gives for given evidence."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from reranker_seqcls.check.metrics import PathMetrics, ScoringPath, TokenizationGap
from reranker_seqcls.check.report import PairScores, ParityReport
from reranker_seqcls.check.verdict import TOLERANCES, Evidence, judge
from reranker_seqcls.errors import BadInput, ParityFailed

EXACT = PathMetrics(max_abs_logit=1e-6, max_abs_prob=2e-7, spearman=1.0, top1=1.0)
FAR = PathMetrics(max_abs_logit=0.8, max_abs_prob=0.2, spearman=0.5, top1=0.5)


def _report() -> ParityReport:
    gap = TokenizationGap(
        pairs=[1], num_pairs=2, merges={"?\n": 1}, max_abs_logit=0.01, max_abs_prob=0.002,
        consumer_max_abs_prob=1e-7,
    )  # fmt: skip
    report = ParityReport(
        passed=False,
        dtype="float32",
        tolerance=TOLERANCES["float32"],
        recipe="qwen3-reranker",
        num_pairs=2,
        num_groups=1,
        metrics={
            ScoringPath.CONVERTED_BATCHED: EXACT,
            ScoringPath.SENTENCE_TRANSFORMERS: PathMetrics(None, 3e-7, 1.0, 1.0),
            ScoringPath.VLLM: PathMetrics(None, 4e-7, 1.0, 1.0),
        },
        notes=["vllm: a note"],
        tokenization_gap=gap,
    )
    report.scores = [
        PairScores("g", "q", "d", None, [0.5], [0.5], [0.5], [0.62]),
        PairScores("g", "q?", "e", "i", [1.5], [1.5], [1.5], [0.82], [1.49], ["?\n"], [0.82]),
    ]
    report.fail("first reason")
    report.fail("second reason")
    return report


def test_report_json_reads_back_to_the_same_table_and_markdown():
    report = _report()
    data = json.loads(json.dumps(report.to_json()))
    assert list(data["metrics"]) == ["converted (batched)", "sentence-transformers", "vllm"]
    assert data["scores"][0] == {
        "group": "g", "query": "q", "document": "d", "instruction": None, "reference": [0.5],
        "converted_batched": [0.5], "converted_single": [0.5], "sentence_transformers": [0.62],
    }  # fmt: skip
    assert data["scores"][1]["merged_tokens"] == ["?\n"] and data["scores"][1]["vllm"] == [0.82]
    parsed = ParityReport.from_json(data)
    assert parsed.markdown() == report.markdown()
    assert parsed.table_rows() == report.table_rows()
    assert parsed.to_json() == {**data, "scores": []}
    assert "| vllm | – | 4.00e-07 |" in report.markdown()
    assert "- Failed because: first reason" in report.markdown()


def test_a_report_with_an_unknown_path_is_refused_with_its_cause():
    data = _report().to_json()
    data["metrics"]["my own path"] = data["metrics"].pop("vllm")
    with pytest.raises(BadInput, match="is not a parity report written by reranker-seqcls") as err:
        ParityReport.from_json(data, "x/parity_report.json")
    assert str(err.value).startswith("x/parity_report.json ")
    assert isinstance(err.value.__cause__, ValueError)


def test_a_failed_report_raises_parity_failed_with_its_first_reason():
    report = _report()
    with pytest.raises(ParityFailed) as err:
        report.require_passed()
    assert str(err.value) == "parity failed: first reason" and err.value.exit_code == 1
    passed = ParityReport(True, "float32", TOLERANCES["float32"], "r", 2, 1, {})
    passed.require_passed()  # no exception
    assert passed.spearman == 0.0 and passed.max_abs_diff == 0.0


def _evidence(**changes) -> Evidence:
    fields = dict(
        tolerance=TOLERANCES["float32"],
        dtype="float32",
        metrics={ScoringPath.CONVERTED_BATCHED: EXACT, ScoringPath.CONVERTED_SINGLE: EXACT},
        consumer_exact=EXACT,
        gap=None,
        structural=[],
        loading_problems=[],
        pad_token_id=0,
        prompts=[[5, 6], [5, 7]],
        reference=[[1.0], [-1.0]],
        batched=[[1.0], [-1.0]],
        single=[[1.0], [-1.0]],
        softcap=None,
        allow_softcapping=False,
    )
    return Evidence(**{**fields, **changes})


def test_judge_passes_exact_evidence_and_blames_only_what_is_unexplained():
    assert judge(_evidence()).reasons == []
    far = {ScoringPath.CONVERTED_BATCHED: FAR, ScoringPath.CONVERTED_SINGLE: FAR}
    # a structural reason explains the scores: no numeric reason is added to it
    explained = judge(_evidence(metrics=far, structural=["head rows differ"]))
    assert explained.reasons == ["head rows differ"]
    unexplained = judge(_evidence(metrics=far, single=[[0.5], [0.5]], batched=[[0.5], [0.5]]))
    assert len(unexplained.reasons) == 1
    assert "converted scores differ from the original by up to 0.8" in unexplained.reasons[0]
    swapped = judge(_evidence(metrics=far, single=[[-1.0], [1.0]], batched=[[-1.0], [1.0]]))
    assert "tokens are swapped" in swapped.reasons[0]
    consumer = judge(_evidence(consumer_exact=FAR)).reasons
    assert len(consumer) == 1 and "sentence-transformers scores differ" in consumer[0]


def test_judge_allows_softcapping_only_when_asked_and_the_ranks_agree():
    capped = PathMetrics(max_abs_logit=0.8, max_abs_prob=0.2, spearman=1.0, top1=1.0)
    metrics = {ScoringPath.CONVERTED_BATCHED: capped, ScoringPath.CONVERTED_SINGLE: capped}
    scores = [[0.7], [-0.5]]  # no constant ratio, no negation: no other cause than the tanh
    evidence = _evidence(metrics=metrics, single=scores, batched=scores, softcap=30.0,
                         consumer_exact=capped)  # fmt: skip
    refused = judge(evidence)
    assert "pass --allow-softcapping" in refused.reasons[0] and refused.allowances == []
    allowed = judge(replace(evidence, allow_softcapping=True))
    assert allowed.reasons == [] and "final_logit_softcapping=30.0" in allowed.allowances[0]
