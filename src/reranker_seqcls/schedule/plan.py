"""``plan``: which entries of a fleet need a ``run``, from Hub metadata alone.

Per entry: the upstream commit (``model_info``) and the target's head and recorded provenance
(``model_info`` + the small ``reranker_seqcls.json``), compared by :mod:`.staleness` exactly as
``run`` compares them before it downloads anything. No weights, no torch, no tokenizer. Entries
are looked up concurrently (the calls wait on the network, not the CPU), and a Hub error on one
entry is recorded for that entry only.

The output is a GitHub Actions matrix (``{"include": [...]}``, for ``fromJSON``) and a Markdown
table of every entry (for the job summary).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from reranker_seqcls.errors import SeqClsError
from reranker_seqcls.schedule.fleet import Fleet, FleetEntry

# Entries looked up at once: each makes two to four metadata calls of ~0.05-0.3 s on the real
# Hub, which wait on the network; 16 halves the time of 8 for 100 entries (bench/PLAN_RESULTS.md).
MAX_WORKERS = 16
_SHA = re.compile(r"[0-9a-f]{40}")

Status = Literal["stale", "current", "error"]


@dataclass
class EntryPlan:
    entry: FleetEntry
    status: Status
    reasons: list[str] = field(default_factory=list)
    source_sha: str | None = None
    error: str | None = None
    exit_code: int = 0

    def matrix_item(self) -> dict[str, Any]:
        """The Action inputs of the ``run`` this entry needs, plus why and what was planned.

        ``source_sha`` is the upstream commit the plan saw: passing it as the revision makes the
        conversion convert exactly that commit even if upstream moves meanwhile.
        """
        return {
            **self.entry.run_options(),
            "source_sha": self.source_sha or "",
            "status": self.status,
            "reason": "; ".join(self.reasons) if self.reasons else "current",
        }


def plan_fleet(fleet: Fleet, token: str | None) -> list[EntryPlan]:
    """One :class:`EntryPlan` per entry, in the file's order."""
    workers = max(1, min(MAX_WORKERS, len(fleet.entries)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="plan") as pool:
        return list(pool.map(lambda entry: plan_entry(entry, token), fleet.entries))


def plan_entry(entry: FleetEntry, token: str | None) -> EntryPlan:
    from reranker_seqcls.hub.fetch import resolve_commit
    from reranker_seqcls.hub.target import target_state
    from reranker_seqcls.schedule.staleness import expected_identity, why_stale

    try:
        sha = resolve_commit(entry.model, entry.revision, token)
        if not isinstance(sha, str) or not _SHA.fullmatch(sha):
            return EntryPlan(
                entry, "error", error=f"source {entry.model}: the Hub gave no commit", exit_code=3
            )
        state = target_state(entry.target, token)
    except SeqClsError as exc:
        return EntryPlan(entry, "error", error=str(exc), exit_code=exc.exit_code)
    reasons = why_stale(state, expected_identity(entry.model, sha, entry.recipe))
    return EntryPlan(entry, "stale" if reasons else "current", reasons, source_sha=sha)


def matrix(plans: list[EntryPlan], *, include_current: bool = False) -> dict[str, Any]:
    """The ``strategy.matrix`` of the runs to start: stale entries (every plannable one with
    ``include_current``). Entries whose lookup failed cannot run and are left out."""
    wanted = ("stale", "current") if include_current else ("stale",)
    return {"include": [p.matrix_item() for p in plans if p.status in wanted]}


def exit_code(plans: list[EntryPlan]) -> int:
    """As for ``run``: 0 when every entry was planned, else the largest code among the failed
    entries (2 bad input such as a missing source, 3 Hub or network error)."""
    return max((p.exit_code for p in plans), default=0)


def summary_markdown(plans: list[EntryPlan], endpoint: str) -> str:
    """A table of every entry: current, stale (and why) or error (and the message)."""
    from reranker_seqcls.safe_text import md_link

    stale = sum(p.status == "stale" for p in plans)
    errors = sum(p.status == "error" for p in plans)
    headline = f"{stale} of {len(plans)} need a run" if stale else "every target is current"
    if errors:
        headline += f", {errors} could not be planned"
    if errors == len(plans):
        headline = "no entry could be planned"
    lines = [
        f"## reranker-seqcls plan: {headline}",
        "",
        "| # | target | source | status | why |",
        "|---|---|---|---|---|",
    ]
    for plan in plans:
        entry = plan.entry
        source = f"{entry.model}@{plan.source_sha[:12]}" if plan.source_sha else entry.model
        if entry.revision and not plan.source_sha:
            source += f"@{entry.revision}"
        why = plan.error if plan.status == "error" else "; ".join(plan.reasons) or "-"
        # The link targets too are built from names (and the endpoint), never pasted raw:
        # md_link percent-encodes what would end a link or a cell, and drops a non-http(s) one.
        target_link = md_link(entry.target, f"{endpoint}/{entry.target}")
        source_link = md_link(source, f"{endpoint}/{entry.model}")
        lines.append(
            f"| {entry.index} | {target_link} | {source_link} | {plan.status} "
            f"| {_cell(why or '')} |"
        )
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text (partly from the Hub: a provenance repo id, an error quoting upstream names) as one
    inert table cell: no link, image, HTML or cell break (:func:`safe_text.md_text`)."""
    from reranker_seqcls.safe_text import md_text

    return md_text(text)
