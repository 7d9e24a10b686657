"""The verdict ``check`` records inside the converted directory, bound to the files it checked.

``check`` writes ``CONVERTED/parity_report.json`` whatever ``--report`` says: the report, plus
``checked_files``, the sha256 of every file a push would upload except the model card (which
``push`` writes) and the report itself. ``push`` publishes a directory only while that verdict
passed and the files are still the ones it names (:func:`recorded_verdict`); a weight, config or
tokenizer file changed, added or removed since makes the verdict stale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reranker_seqcls.check.report import ParityReport
from reranker_seqcls.errors import BadInput
from reranker_seqcls.names import PARITY_REPORT_FILE, README_FILE
from reranker_seqcls.provenance import read_json_record
from reranker_seqcls.source import file_sha256

CHECKED_FILES = "checked_files"
# check --gguf-file: each GGUF's name, sha256, type and whether its llama.cpp row passed, so
# that push publishes a GGUF only while its bytes are the ones llama-server scored.
CHECKED_GGUFS = "checked_ggufs"
_NOT_BOUND = {README_FILE, PARITY_REPORT_FILE}


def checked_files(converted: Path, *, leave_out: tuple[Path, ...] = ()) -> dict[str, str]:
    """sha256 of every file a push of ``converted`` uploads, but the card and the report
    (and ``leave_out``: a ``--report`` written into the directory)."""
    from reranker_seqcls.hub.push import folder_files

    skipped = {p.resolve() for p in leave_out}
    hashes = {}
    for name in folder_files(converted):
        path = converted / name
        if name in _NOT_BOUND or path.resolve() in skipped:
            continue
        hashes[name] = file_sha256(path)
    return hashes


def write_verdict(
    report: ParityReport,
    converted: Path,
    also: Path | None = None,
    *,
    gone: dict[str, str] | None = None,
    ggufs: list[tuple[Path, str, bool]] | None = None,
) -> None:
    """The report bound to the files of ``converted``, written into it (and to ``also``);
    ``gone``: the sha256 of files checked and uploaded already, no longer on disk (the
    streamed run's shards); ``ggufs`` (path, type, row passed) are bound by name and sha256
    too."""
    extra = () if also is None else (also,)
    hashes = {**(gone or {}), **checked_files(converted, leave_out=extra)}
    data: dict[str, Any] = {**report.to_json(), CHECKED_FILES: hashes}
    if ggufs:
        data[CHECKED_GGUFS] = [
            {"name": path.name, "sha256": file_sha256(path), "type": kind, "passed": passed}
            for path, kind, passed in ggufs
        ]
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    (converted / PARITY_REPORT_FILE).write_text(text)
    if also is not None and also.resolve() != (converted / PARITY_REPORT_FILE).resolve():
        also.write_text(text)


@dataclass(frozen=True)
class RecordedVerdict:
    """What ``push`` finds: the passing report bound to the current files, or why there is
    none (``unchecked``; the report is then None)."""

    report: ParityReport | None
    unchecked: str | None


def recorded_verdict(converted: Path) -> RecordedVerdict:
    """The verdict ``check`` recorded in ``converted``; a failed one is refused (exit 2)."""
    path = converted / PARITY_REPORT_FILE
    if not path.is_file():
        return RecordedVerdict(None, f"{converted} has no parity verdict (no {PARITY_REPORT_FILE})")
    data = read_json_record(path)
    if not data.get("passed"):
        reasons = data.get("reasons")
        reason = reasons[0] if isinstance(reasons, list) and reasons else "see the report"
        raise BadInput(f"{converted} failed its parity check ({reason}): nothing was pushed")
    report = ParityReport.from_json(data, path)
    bound = data.get(CHECKED_FILES)
    if not isinstance(bound, dict) or not all(isinstance(v, str) for v in bound.values()):
        why = f"the parity verdict in {converted} names no checked files (an older report)"
        return RecordedVerdict(None, why)
    stale = _stale(bound, checked_files(converted))
    if stale:
        return RecordedVerdict(None, f"{stale} since its parity check passed")
    return RecordedVerdict(report, None)


def _stale(bound: dict[str, Any], current: dict[str, str]) -> str | None:
    """The first difference between the checked files and the current ones, in words."""
    for name in sorted(bound.keys() | current.keys()):
        if name not in current:
            return f"{name} was removed"
        if name not in bound:
            return f"{name} was added"
        if bound[name] != current[name]:
            return f"{name} changed"
    return None
