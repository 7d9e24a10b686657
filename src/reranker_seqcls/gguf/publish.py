"""``push`` of GGUFs: the files of a GGUF directory that ``check --gguf-file`` scored, pushed to
their own target in one commit with their card, only while each has a passing ``llama.cpp``
row for its exact bytes in the converted directory's verdict (``checked_ggufs``,
:mod:`reranker_seqcls.check.record`). Anything else is refused before the Hub is asked
anything: exit 2, one line, nothing pushed (not the seq-cls checkpoint either)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.errors import BadInput
from reranker_seqcls.log import Log
from reranker_seqcls.names import PARITY_REPORT_FILE, README_FILE

if TYPE_CHECKING:
    from reranker_seqcls.check.report import ParityReport
    from reranker_seqcls.commands.options import HubOptions
    from reranker_seqcls.hub.push import PushResult
    from reranker_seqcls.provenance import Provenance
    from reranker_seqcls.recipes.recipe import Recipe


@dataclass(frozen=True)
class CheckedGguf:
    path: Path
    gguf_type: str
    scored_pairs: int


def checked_ggufs(converted: Path, gguf_dir: Path) -> list[CheckedGguf]:
    """The GGUFs of ``gguf_dir``, each bound by name and sha256 to a passing llama.cpp row of
    ``converted``'s verdict; exit 2 for one that is not (or for a directory with none)."""
    from reranker_seqcls.check.record import CHECKED_GGUFS
    from reranker_seqcls.provenance import read_json_record
    from reranker_seqcls.source import file_sha256

    if not gguf_dir.is_dir():
        raise BadInput(f"--gguf-dir {gguf_dir} is not a directory: give the GGUFs' directory")
    inside = gguf_dir.resolve()
    if inside == converted.resolve() or converted.resolve() in inside.parents:
        raise BadInput(
            f"--gguf-dir {gguf_dir} is inside {converted}: the GGUFs are a repository of their "
            "own (convert writes them to CONVERTED-GGUF)"
        )
    files = sorted(p for p in gguf_dir.glob("*.gguf") if p.is_file())
    if not files:
        raise BadInput(f"--gguf-dir {gguf_dir} holds no .gguf file: give the GGUFs' directory")
    verdict = converted / PARITY_REPORT_FILE
    data = read_json_record(verdict) if verdict.is_file() else {}
    recorded = data.get(CHECKED_GGUFS)
    by_name: dict[str, dict[str, Any]] = {}
    if isinstance(recorded, list):
        by_name = {str(e.get("name")): e for e in recorded if isinstance(e, dict)}
    fix = (
        f"run `reranker-seqcls check SOURCE {converted} --gguf-file FILE` for each GGUF; "
        "nothing was pushed"
    )
    out = []
    for path in files:
        entry = by_name.get(path.name)
        if entry is None:
            raise BadInput(f"{path.name} has no llama.cpp row in {verdict}: {fix}")
        if entry.get("passed") is not True:
            raise BadInput(f"{path.name} failed its llama.cpp row in {verdict}: {fix}")
        if entry.get("sha256") != file_sha256(path):
            raise BadInput(f"{path.name} changed since llama-server scored it: {fix}")
        kind = str(entry.get("type"))
        scored = sum(
            1
            for row in data.get("scores") or []
            if isinstance(row, dict) and isinstance(row.get("llama"), dict) and kind in row["llama"]
        )
        out.append(CheckedGguf(path, kind, scored))
    return out


def push_checked_ggufs(
    ggufs: list[CheckedGguf],
    hub: HubOptions,
    *,
    seqcls_repo: str,
    provenance: Provenance,
    provenance_file: Path,
    report: ParityReport,
    commit_message: str,
    log: Log,
) -> PushResult:
    """One commit of the GGUFs (linked into a staging folder, not copied), the conversion's
    provenance record and their card, to ``hub.target`` (the GGUF target)."""
    from reranker_seqcls.gguf.card import gguf_card
    from reranker_seqcls.gguf.row import PATHS, LlamaRow
    from reranker_seqcls.gguf.writer import WrittenGguf

    written = [WrittenGguf(g.path, g.gguf_type, g.path.stat().st_size, 0.0, "") for g in ggufs]
    rows = [
        LlamaRow(g.gguf_type, g.path, True, report.metrics.get(PATHS[g.gguf_type]),
                 g.scored_pairs, 0.0)
        for g in ggufs
    ]  # fmt: skip
    recipe = _card_recipe(provenance)
    with tempfile.TemporaryDirectory(prefix="reranker-seqcls-gguf-push-") as tmp:
        folder = Path(tmp)
        for g in ggufs:
            _link(g.path, folder / g.path.name)
        _link(provenance_file, folder / provenance_file.name)  # what run's is_current reads
        card = gguf_card(
            gguf_repo=hub.target, seqcls_repo=seqcls_repo, source=provenance.source.label,
            recipe=recipe, written=written, rows=rows, report=report,
        )  # fmt: skip
        return push_gguf_folder(
            folder, hub, card=card, types=[g.gguf_type for g in ggufs], report=report,
            commit_message=commit_message, log=log,
        )  # fmt: skip


def push_gguf_folder(
    folder: Path,
    hub: HubOptions,
    *,
    card: str,
    types: list[str],
    report: ParityReport,
    commit_message: str,
    log: Log,
) -> PushResult:
    """``folder`` (the GGUFs and the provenance record) with ``card`` as its README, in one
    commit to ``hub.target`` (the GGUF target) against its head: what ``run --gguf`` and
    ``push`` both do."""
    from reranker_seqcls.hub.push import push
    from reranker_seqcls.hub.target import target_state

    (folder / README_FILE).write_text(card, "utf-8")
    state = target_state(hub.target, hub.token)
    return push(
        folder, hub.target, token=hub.token, private=hub.private, create_pr=hub.create_pr,
        parent_commit=state.head, commit_message=f"{commit_message} (GGUF: {', '.join(types)})",
        commit_description=report.markdown(), dry_run=hub.dry_run, log=log,
    )  # fmt: skip


def _link(source: Path, link: Path) -> None:
    try:
        os.link(source, link)
    except OSError:
        link.symlink_to(source.resolve())


def _card_recipe(provenance: Provenance) -> Recipe:
    """The recipe the card describes: the registry's when the recorded one is a preset's,
    else the recorded fields."""
    from reranker_seqcls.recipes.presets import PRESETS
    from reranker_seqcls.recipes.recipe import Recipe

    recorded = provenance.recipe
    name = str(recorded.get("name"))
    preset = PRESETS.get(name)
    if preset is not None:
        return preset
    instruction = recorded.get("default_instruction")
    scale = recorded.get("scale", 1.0)
    return Recipe(
        name=name,
        tokens=tuple(str(t) for t in recorded.get("tokens") or ()),  # type: ignore[attr-defined]
        method=recorded.get("method"),  # type: ignore[arg-type]
        template=None,
        prepend_bos=bool(recorded.get("prepend_bos")),
        prompt_style=str(recorded.get("prompt_style")),
        default_instruction=instruction if isinstance(instruction, str) else None,
        scale=float(scale) if isinstance(scale, int | float) else 1.0,
    )
