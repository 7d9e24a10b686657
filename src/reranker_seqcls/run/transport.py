"""``run``'s one skeleton: **prepare → transfer → finish → publish**, driven once by
:func:`drive` for whichever transport :mod:`.pipeline` chose.

- :mod:`.whole` (:class:`.whole.WholeSnapshot`): the source on disk whole (a local source, a
  pickle-only Hub source, ``--output-dir``, a seq-cls target already current);
- :mod:`.streamed` (:class:`.streamed._StreamedRun`): a Hub source shard by shard, the model
  never on disk whole (its shard loop is :mod:`reranker_seqcls.stream.transfer`).

What both do alike is written once: the finish's tail here (:func:`conclude`: the verdict bound
to the files, the table rows logged, a failed check raising :class:`.outcome.RunParityFailed`
with "...; nothing was pushed"), and the publication, which ``push`` shares
(:func:`reranker_seqcls.publish.push.publish_checkpoint`: the card from the typed
:class:`Provenance` and :class:`ParityReport`, the commit message and description,
:meth:`.outcome.RunOutcome.record_push`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from reranker_seqcls.errors import ParityFailed
from reranker_seqcls.log import Log
from reranker_seqcls.run.outcome import RunOutcome, RunParityFailed

if TYPE_CHECKING:
    from reranker_seqcls.check.report import ParityReport
    from reranker_seqcls.provenance import Provenance


class Transport(Protocol):
    """One run's four steps. ``prepare`` locates or plans (``--max-disk`` and
    ``--check-memory`` refuse here); ``transfer`` moves the bytes and writes the converted
    checkpoint against the target's ``head``; ``finish`` checks it and judges the report (a
    failure raises :class:`.outcome.RunParityFailed`: nothing is pushed); ``publish`` commits."""

    def prepare(self, *, check_memory: int, max_disk: int | None) -> None: ...

    def transfer(self, head: str | None) -> None: ...

    def finish(self, outcome: RunOutcome) -> tuple[Provenance, ParityReport]: ...

    def publish(
        self, provenance: Provenance, report: ParityReport, outcome: RunOutcome
    ) -> None: ...


def drive(
    opened: AbstractContextManager[Transport],
    outcome: RunOutcome,
    head: str | None,
    *,
    check_memory: int,
    max_disk: int | None,
) -> RunOutcome:
    """The four steps, once, inside the transport's work space (``opened``: removed at the
    end, also on an error or a stop signal)."""
    with opened as transport:
        transport.prepare(check_memory=check_memory, max_disk=max_disk)
        transport.transfer(head)
        provenance, report = transport.finish(outcome)
        transport.publish(provenance, report, outcome)
    return outcome


def conclude(
    report: ParityReport,
    out: Path,
    outcome: RunOutcome,
    log: Log,
    *,
    bound: bool = True,
    gone: dict[str, str] | None = None,
    notes: Sequence[str] = (),
) -> None:
    """The finish's tail: the report written into ``out`` (``bound``: as the verdict bound to
    its files, ``gone`` the sha256 of those uploaded and deleted already; else the plain report,
    for a streamed dry run whose shards went nowhere), its table rows and ``notes`` logged, and
    a failed check raised as :class:`.outcome.RunParityFailed` ("...; nothing was pushed")."""
    from reranker_seqcls.check.record import write_verdict
    from reranker_seqcls.check.report import write_report
    from reranker_seqcls.names import PARITY_REPORT_FILE

    outcome.parity = report
    if bound:
        write_verdict(report, out, gone=gone)
    else:
        write_report(report, out / PARITY_REPORT_FILE)
    for line in [*report.table_rows(), *notes]:
        log(line)
    try:
        report.require_passed()
    except ParityFailed as exc:
        outcome.message = f"{exc}; nothing was pushed"
        raise RunParityFailed(outcome) from exc
