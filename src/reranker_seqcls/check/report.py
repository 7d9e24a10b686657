"""The parity report: what was measured and judged, as a table for the log, as Markdown for the
model card, and as ``parity_report.json`` (written by ``check``/``run``, read back by ``push``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reranker_seqcls.check.metrics import PathMetrics, ScoringPath, TokenizationGap
from reranker_seqcls.check.scope import RealPass, real_pass_from_json, real_pass_markdown
from reranker_seqcls.check.verdict import Tolerance
from reranker_seqcls.errors import BadInput, ParityFailed
from reranker_seqcls.safe_text import md_text


@dataclass
class PairScores:
    """One checked pair and its score row on every path (the report's ``scores``)."""

    group: str
    query: str  # the first 80 characters
    document: str  # the first 80 characters
    instruction: str | None
    reference: list[float]
    # None in a streamed report, whose consumer paths ran on the twin (``twin``)
    converted_batched: list[float] | None
    converted_single: list[float] | None
    sentence_transformers: list[float] | None
    # on tokenization-gap pairs: the converted model fed the template's ids, and the tokens
    # that span the family's piece boundaries
    converted_template_ids: list[float] | None = None
    merged_tokens: list[str] | None = None
    vllm: list[float] | None = None  # when vLLM scored the pairs
    converted_layerwise: list[float] | None = None  # the streamed check's real-weights score
    twin: PairScores | None = None  # the same pair scored on the structural twin
    llama: dict[str, float] | None = None  # llama-server's score per GGUF type

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k == "instruction" or v is not None}
        if self.twin is not None:
            data["twin"] = self.twin.to_json()
        return data


@dataclass
class ParityReport:
    passed: bool
    dtype: str
    tolerance: Tolerance
    recipe: str
    num_pairs: int
    num_groups: int
    metrics: dict[ScoringPath, PathMetrics]
    reasons: list[str] = field(default_factory=list)
    allowances: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how the tolerance was set, when not plain
    scores: list[PairScores] = field(default_factory=list)
    tokenization_gap: TokenizationGap | None = None
    # The streamed check (:mod:`.streamed`): which checkpoint the consumers ran on ("real", or
    # "twin (...)" with its shape), and the source/converted backbone comparison.
    consumers_proven_on: str | None = None
    backbone_hash: str | None = None
    # Over-length pairs, per consumer (:mod:`.long_inputs`, its ``LongInputs.to_json()``)
    long_inputs: dict[str, Any] | None = None
    # The streamed check: what the real model scored (None when the whole check ran on it)
    real_pass: RealPass | None = None

    def fail(self, reason: str) -> None:
        self.reasons.append(reason)
        self.passed = False

    def require_passed(self) -> None:
        """Raise :class:`ParityFailed` with the first reason when the check failed."""
        if not self.passed:
            raise ParityFailed(
                f"parity failed: {self.reasons[0] if self.reasons else 'see the report'}"
            )

    @property
    def verdict(self) -> str:
        if not self.passed:
            return "FAIL"
        return "PASS (with allowances)" if self.allowances else "PASS"

    @property
    def max_abs_diff(self) -> float:
        """The largest logit difference of any path (0.0 when no path was scored)."""
        values = [m.max_abs_logit for m in self.metrics.values() if m.max_abs_logit is not None]
        return max(values) if values else 0.0

    @property
    def spearman(self) -> float:
        """The lowest rank correlation of any path (0.0 when no path was scored: a converted
        model with another label count than the recipe's fails before any comparison)."""
        return min((m.spearman for m in self.metrics.values()), default=0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "passed": self.passed,
            "dtype": self.dtype,
            "tolerance": asdict(self.tolerance),
            "recipe": self.recipe,
            "num_pairs": self.num_pairs,
            "num_groups": self.num_groups,
            "max_abs_diff": self.max_abs_diff,
            "spearman": self.spearman,
            "metrics": {path.value: asdict(m) for path, m in self.metrics.items()},
            "reasons": self.reasons,
            "allowances": self.allowances,
            "notes": self.notes,
            "tokenization_gap": (
                None if self.tokenization_gap is None else asdict(self.tokenization_gap)
            ),
            "consumers_proven_on": self.consumers_proven_on,
            "backbone_hash": self.backbone_hash,
            "long_inputs": self.long_inputs,
            "real_pass": None if self.real_pass is None else asdict(self.real_pass),
            "scores": [row.to_json() for row in self.scores],
        }

    @classmethod
    def from_json(cls, data: Any, path: Path | str = "parity report") -> ParityReport:
        """The report :meth:`to_json` wrote (``parity_report.json``), for its Markdown; the
        per-pair scores are not read back. Exit 2 when ``data`` is no such report (it may have
        been edited by hand)."""
        try:
            return cls._from_json(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadInput(
                f"{path} is not a parity report written by reranker-seqcls ({exc!r}): run "
                "`reranker-seqcls check` again"
            ) from exc

    @classmethod
    def _from_json(cls, data: Any) -> ParityReport:
        tolerance = _tolerance_from_json(data["tolerance"])
        metrics = {
            ScoringPath(str(name)): _metrics_from_json(m) for name, m in data["metrics"].items()
        }
        if not metrics:
            raise ValueError("no metrics")
        return cls(
            passed=data["passed"] is True,
            dtype=str(data["dtype"]),
            tolerance=tolerance,
            recipe=str(data["recipe"]),
            num_pairs=int(data["num_pairs"]),
            num_groups=int(data["num_groups"]),
            metrics=metrics,
            reasons=[str(r) for r in data.get("reasons") or []],
            allowances=[str(a) for a in data.get("allowances") or []],
            notes=[str(n) for n in data.get("notes") or []],
            tokenization_gap=_gap_from_json(data.get("tokenization_gap")),
            consumers_proven_on=_optional_str(data.get("consumers_proven_on")),
            backbone_hash=_optional_str(data.get("backbone_hash")),
            long_inputs=long if isinstance(long := data.get("long_inputs"), dict) else None,
            real_pass=real_pass_from_json(data.get("real_pass")),
        )

    def table_rows(self) -> list[str]:
        """A compact human table, one row a line (a log prints and escapes each on its own)."""
        t = self.tolerance
        gap = self.tokenization_gap
        gap_name = None if gap is None else f"one-string ids ({len(gap.pairs)})"
        labels = [p.value for p in self.metrics] + ([gap_name] if gap_name else [])
        w = max([24, *(len(label) + 2 for label in labels)])  # the path column
        rows = [
            f"parity: {self.verdict}  ({self.dtype}, recipe {self.recipe}, "
            f"{self.num_pairs} pairs in {self.num_groups} groups)",
            f"  {'path':<{w}}{'max|Δlogit|':>12}{'max|Δprob|':>12}{'spearman':>10}{'top-1':>8}",
        ]
        for path, m in self.metrics.items():
            logit = "-" if m.max_abs_logit is None else f"{m.max_abs_logit:.2e}"
            rows.append(
                f"  {path.value:<{w}}{logit:>12}{m.max_abs_prob:>12.2e}{m.spearman:>10.4f}"
                f"{m.top1:>8.0%}"
            )
        if gap is not None:
            rows.append(
                f"  {gap_name:<{w}}{gap.max_abs_logit:>12.2e}{gap.max_abs_prob:>12.2e}"
                f"{'-':>10}{'-':>8}"
            )
        rows.append(
            f"  {'tolerance':<{w}}{t.logit:>12.3g}{t.prob:>12.3g}{t.spearman:>10.3f}{t.top1:>8.0%}"
        )
        if self.consumers_proven_on is not None:
            rows.append(f"  consumers proven on: {self.consumers_proven_on}")
        if self.real_pass is not None:
            rows.append(f"  {self.real_pass.describe()}")
        if self.backbone_hash is not None:
            rows.append(f"  backbone hash: {self.backbone_hash}")
        rows += [f"  note: {note}" for note in self.notes]
        rows += [f"  why: {reason}" for reason in self.reasons]
        rows += [f"  allowed: {allowance}" for allowance in self.allowances]
        long = self.long_inputs or {}
        for consumer in long.get("consumers") or []:
            rows.append(
                f"  long inputs: {consumer.get('consumer')}, {consumer.get('pair')}: "
                f"{consumer.get('behaviour')} ({consumer.get('detail')})"
            )
        if long and not long.get("measured"):
            rows.append(f"  long inputs: not measured: {long.get('why_not')}")
        return rows

    def markdown(self) -> str:
        """The report as Markdown: the model card's parity section."""
        t = self.tolerance
        lines = [
            f"**{self.verdict}** — {self.num_pairs} (query, document) pairs in "
            f"{self.num_groups} query groups, computed in `{self.dtype}`.",
            "",
            "| compared with the original causal LM | max abs Δ logit | max abs Δ probability "
            "| Spearman | top-1 agreement |",
            "|---|---|---|---|---|",
        ]
        for path, m in self.metrics.items():
            logit = "–" if m.max_abs_logit is None else f"{m.max_abs_logit:.2e}"
            lines.append(
                f"| {path.value} | {logit} | {m.max_abs_prob:.2e} | {m.spearman:.4f} "
                f"| {m.top1:.0%} |"
            )
        if gap := self.tokenization_gap:
            lines.append(
                f"| converted model, one-string template ids instead of the family's "
                f"({len(gap.pairs)} of {self.num_pairs} pairs: tokenization gap) "
                f"| {gap.max_abs_logit:.2e} | {gap.max_abs_prob:.2e} | – | – |"
            )
        lines.append(
            f"| tolerance | {t.logit:.3g} | {t.prob:.3g} | ≥ {t.spearman} | ≥ {t.top1:.0%} |"
        )
        # Notes and reasons quote upstream names (token pieces, shard names): inert text.
        if self.consumers_proven_on:
            lines.append(f"\n- Consumers proven on: {md_text(self.consumers_proven_on)}")
        if (real := self.real_pass) is not None:
            lines.append(f"\n- {real_pass_markdown(real)}")
        if self.backbone_hash:
            lines.append(f"\n- Backbone hash (sha256 per tensor): {md_text(self.backbone_hash)}")
        lines += [f"\n- Note: {md_text(n)}" for n in self.notes]
        lines += [f"\n- Failed because: {md_text(r)}" for r in self.reasons]
        lines += [f"\n- Allowed: {md_text(a)}" for a in self.allowances]
        from reranker_seqcls.check.long_inputs_card import long_inputs_markdown

        if (long := long_inputs_markdown(self.long_inputs)) is not None:
            lines.append(f"\n{long}")
        return "\n".join(lines)


def write_report(report: ParityReport, path: Path) -> None:
    path.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _tolerance_from_json(bounds: Any) -> Tolerance:
    return Tolerance(
        logit=float(bounds["logit"]),
        prob=float(bounds["prob"]),
        spearman=float(bounds["spearman"]),
        top1=float(bounds["top1"]),
        ranks_follow_values=bool(bounds.get("ranks_follow_values", False)),
    )


def _metrics_from_json(m: Any) -> PathMetrics:
    return PathMetrics(
        max_abs_logit=None if m["max_abs_logit"] is None else float(m["max_abs_logit"]),
        max_abs_prob=float(m["max_abs_prob"]),
        spearman=float(m["spearman"]),
        top1=float(m["top1"]),
    )


def _gap_from_json(data: Any) -> TokenizationGap | None:
    if data is None:
        return None
    return TokenizationGap(
        pairs=[int(i) for i in data["pairs"]],
        num_pairs=int(data["num_pairs"]),
        merges={str(k): int(v) for k, v in data["merges"].items()},
        max_abs_logit=float(data["max_abs_logit"]),
        max_abs_prob=float(data["max_abs_prob"]),
        consumer_max_abs_prob=float(data["consumer_max_abs_prob"]),
    )
