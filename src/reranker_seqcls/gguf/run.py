"""``run --gguf TYPES``: the GGUFs written from the converted checkpoint, checked by llama-server
in the same parity report (a failed llama.cpp row fails the run: nothing is pushed), and pushed
after the seq-cls checkpoint to a second target (``--gguf-target``, default ``TARGET-GGUF``) in
one commit with their card.

A Hub source with safetensors and no ``--output-dir`` takes the streamed road with GGUF splits
(:mod:`.streamed`); the whole-snapshot road (disk about twice the model plus the GGUFs) is for
a local source, ``--output-dir``, or a seq-cls target already current.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from reranker_seqcls.gguf.produce import GGUF_DIR_SUFFIX, write_ggufs
from reranker_seqcls.gguf.refusal import refuse_gguf_by_config, refuse_gguf_by_recipe
from reranker_seqcls.gguf.types import GgufType, parse_gguf_types
from reranker_seqcls.log import Log
from reranker_seqcls.names import CONFIG_FILE, PROVENANCE_FILE

if TYPE_CHECKING:
    from reranker_seqcls.check.pairs import Pair
    from reranker_seqcls.check.report import ParityReport
    from reranker_seqcls.commands.options import HubOptions
    from reranker_seqcls.gguf.row import LlamaRow
    from reranker_seqcls.gguf.writer import WrittenGguf
    from reranker_seqcls.hub.push import PushResult
    from reranker_seqcls.provenance import Identity, SourceRef
    from reranker_seqcls.recipes.recipe import Recipe


@dataclass
class GgufRun:
    types: list[GgufType]
    target: str
    binary: Path
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rsq-gguf-")))
    written: list[WrittenGguf] = field(default_factory=list)
    rows: list[LlamaRow] = field(default_factory=list)

    def refuse_source(self, source_dir: Path, name: str) -> None:
        try:
            config = json.loads((source_dir / CONFIG_FILE).read_text("utf-8"))
        except (OSError, ValueError):
            config = {}
        refuse_gguf_by_config(config if isinstance(config, dict) else {}, name)

    def write_and_check(
        self,
        converted: Path,
        recipe: Recipe,
        report: ParityReport,
        pairs: list[Pair],
        stem: str,
        log: Log,
    ) -> None:
        """Write every type and add its llama.cpp row to ``report``."""
        from reranker_seqcls.gguf.row import add_llama_rows

        out = self.directory / "files"
        self.written = write_ggufs(converted, out, self.types, recipe, stem=stem, log=log)
        # the conversion's provenance goes along: it tells a later run that this target holds
        # this source, recipe and tool version (is_current)
        shutil.copyfile(converted / PROVENANCE_FILE, out / PROVENANCE_FILE)
        self.rows = add_llama_rows(
            report, [w.path for w in self.written], converted, pairs,
            recipe.default_instruction, self.binary, log,
        )  # fmt: skip

    def is_current(self, expected: Identity, stem: str, token: str | None, log: Log) -> bool:
        """Whether the GGUF target records ``expected`` (source, recipe, tool version) and
        holds a GGUF of every type asked for: a run whose seq-cls target is current still
        writes and pushes the GGUFs when not."""
        from reranker_seqcls.hub.errors import hub_errors
        from reranker_seqcls.hub.reads import hub_api
        from reranker_seqcls.hub.target import target_state
        from reranker_seqcls.schedule.staleness import why_stale

        state = target_state(self.target, token)
        stale = why_stale(state, expected)
        if not stale:
            with hub_errors(f"GGUF target {self.target}"):
                files = set(hub_api(token).list_repo_files(self.target, revision=state.head))
            missing = [t.name for t in self.types if not _holds(files, stem, t)]
            if missing:
                stale = [f"it has no {', '.join(missing)} GGUF"]
        if stale:
            log(f"GGUF target {self.target}: {'; '.join(stale)}")
        return not stale

    def push(
        self,
        hub: HubOptions,
        *,
        source: str,
        recipe: Recipe,
        report: ParityReport,
        commit_message: str,
        log: Log,
    ) -> PushResult:
        """One commit of the GGUFs and their card to the GGUF target (``hub`` is the run's:
        its target is the seq-cls one the card links to)."""
        from reranker_seqcls.gguf.card import gguf_card
        from reranker_seqcls.gguf.publish import push_gguf_folder

        card = gguf_card(
            gguf_repo=self.target, seqcls_repo=hub.target, source=source, recipe=recipe,
            written=self.written, rows=self.rows, report=report,
        )  # fmt: skip
        return push_gguf_folder(
            self.directory / "files", replace(hub, target=self.target), card=card,
            types=[t.name for t in self.types], report=report, commit_message=commit_message,
            log=log,
        )  # fmt: skip

    def cleanup(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _holds(files: set[str], stem: str, gguf_type: GgufType) -> bool:
    """Whether ``files`` hold a GGUF of ``gguf_type``: one file, or the first of its splits
    (a streamed run's, :mod:`.streamed`)."""
    from reranker_seqcls.gguf.writer import gguf_file_name

    first = f"{stem}-{gguf_type.name}-00001-of-"
    return gguf_file_name(stem, gguf_type) in files or any(f.startswith(first) for f in files)


def gguf_stem(ref: SourceRef) -> str:
    """The GGUF files' name stem: the source's name."""
    return ref.name.rstrip("/").split("/")[-1]


def prepare_gguf_run(
    value: str | None, gguf_target: str | None, target: str, recipe: Recipe
) -> GgufRun | None:
    """Parse ``--gguf``, refuse a family llama.cpp gives no head, find llama-server: all before
    anything is downloaded (exit 2)."""
    from reranker_seqcls.errors import BadInput
    from reranker_seqcls.gguf.server import require_llama_server
    from reranker_seqcls.hub.repo_ids import require_repo_id

    types = parse_gguf_types(value)
    if not types:
        if gguf_target is not None:
            raise BadInput("--gguf-target needs --gguf TYPES: give both, or neither")
        return None
    refuse_gguf_by_recipe(recipe.name)
    gguf_repo = gguf_target or target + GGUF_DIR_SUFFIX
    require_repo_id(gguf_repo, "GGUF target")
    if gguf_repo == target:
        raise BadInput("--gguf-target must differ from --target: the GGUFs are a repo of their own")
    return GgufRun(types, gguf_repo, require_llama_server())
