"""Steps the commands share: the recipe, pairs and token ids of a check, where the source is,
and the output directory of a run."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reranker_seqcls.check.pairs import Pair, builtin_pairs, load_pairs
from reranker_seqcls.errors import BadInput
from reranker_seqcls.log import Log
from reranker_seqcls.names import CONFIG_FILE, PROVENANCE_FILE
from reranker_seqcls.provenance import SourceRef, read_json_record
from reranker_seqcls.recipes.recipe import Recipe
from reranker_seqcls.recipes.resolve import recipe_from_provenance, resolve_recipe


def check_recipe(
    source_name: str,
    converted: Path,
    preset: str | None,
    tokens: str | None,
    method: str | None,
    template: Path | None,
    *,
    token_ids: str | None = None,
    scale: str | None = None,
    source_dir: Path | None = None,
) -> Recipe:
    """The recipe the original is scored with: explicit options, else the one the conversion
    recorded, else the family detected from the source's name or its sentence-transformers
    files (in ``source_dir``).

    ``source_name`` is what the user named (see :attr:`SourceSpec.name`), never the directory a
    Hub snapshot was downloaded to (a commit sha), so ``check`` detects what ``convert`` detects."""
    if preset or tokens or method or template or token_ids or scale is not None:
        return resolve_recipe(
            source_name=source_name,
            preset=preset,
            tokens_json=tokens,
            method=method,
            template_path=template,
            token_ids_json=token_ids,
            scale=scale,
        )
    provenance_path = converted / PROVENANCE_FILE
    if provenance_path.is_file():
        from reranker_seqcls.convert.consumer_files import TEMPLATE_FILE_NAME

        recorded = recipe_from_provenance(
            read_json_record(provenance_path).get("recipe"), converted / TEMPLATE_FILE_NAME
        )
        if recorded is not None and not _unscorable(recorded):
            return recorded
        if recorded is not None:  # a custom recipe with no prompt: score as the source's family
            try:
                return resolve_recipe(source_name=source_name, source_dir=source_dir)
            except BadInput:
                return recorded  # no family either: its own error names the missing template
    return resolve_recipe(source_name=source_name, source_dir=source_dir)


def _unscorable(recipe: Recipe) -> bool:
    """A custom recipe converted without a template: the original cannot be prompted with it."""
    return recipe.prompt_style == "template" and recipe.template is None


def load_check_pairs(recipe: Recipe, pairs_file: Path | None) -> list[Pair]:
    if pairs_file is not None:
        return load_pairs(pairs_file)
    takes_instruction = recipe.prompt_style in (
        "qwen3-reranker", "mxbai-rerank-v2", "zerank-2", "ctxl-rerank-v2", "template",
        "sentence-transformers",
    )  # fmt: skip
    return builtin_pairs(takes_instruction=takes_instruction)


def resolve_token_ids(source: Path, recipe: Recipe) -> list[int]:
    from reranker_seqcls.convert.tokens import TokenizerFiles, resolve_tokens

    if not (source / CONFIG_FILE).is_file():
        raise BadInput(f"{source} has no config.json: give the original checkpoint")
    return [t.id for t in resolve_tokens(TokenizerFiles(source), recipe.classifier)]


# --------------------------------------------------------------------------- the full run


@dataclass(frozen=True)
class SourceSpec:
    """Where SOURCE is, decided once (:func:`find_source`): the directory given (``local``),
    or, when None, the Hub repo that ``ref`` names at an exact commit."""

    ref: SourceRef
    local: Path | None

    @property
    def name(self) -> str:
        """The name a recipe is detected from: a local directory's own name, else the repo id
        (never the directory a Hub snapshot lands in, a commit sha)."""
        return self.ref.name


def find_source(source: str, revision: str | None, token: str | None) -> SourceSpec:
    """The one place that decides whether SOURCE is a local checkpoint directory or a Hub repo
    id; for a repo, the exact commit ``revision`` names. Called before the recipe is chosen, so
    a missing repo is reported as missing (not as a name the family cannot be told from) and
    nothing is downloaded for a bad recipe."""
    from reranker_seqcls.hub.fetch import resolve_commit
    from reranker_seqcls.hub.repo_ids import require_repo_id

    path = Path(source)
    if path.is_dir():
        if revision is not None:
            raise BadInput(f"--revision applies to Hub repos, but {source} is a local directory")
        return SourceSpec(SourceRef.local(path), path)
    require_repo_id(source, "source", or_directory=True)
    sha = resolve_commit(source, revision, token)
    return SourceSpec(
        SourceRef(name=source, repo_id=source, revision=revision, commit_sha=sha), None
    )


def locate_source(spec: SourceSpec, token: str | None, log: Log) -> tuple[Path, SourceRef]:
    """The source's checkpoint directory: a local one as is, a Hub repo downloaded at the
    commit :func:`find_source` resolved."""
    from reranker_seqcls.hub.fetch import fetch

    if spec.local is not None:
        return spec.local, spec.ref
    ref = spec.ref
    assert ref.repo_id is not None and ref.commit_sha is not None  # find_source's Hub repo
    fetched = fetch(ref.repo_id, ref.revision, token=token, log=log, commit_sha=ref.commit_sha)
    return fetched.path, ref


@contextmanager
def output_dir(requested: Path | None) -> Iterator[Path]:
    """``--output-dir`` (kept afterwards), or a temporary directory removed at the end.

    A run stopped by a signal removes the ``--output-dir`` it created (with any parents it
    created): what a stopped run leaves there is no finished, checked conversion."""
    from reranker_seqcls.interrupt import Interrupted

    if requested is not None:
        holds_other = requested.exists() and any(requested.iterdir())
        if holds_other and not (requested / PROVENANCE_FILE).is_file():
            raise BadInput(
                f"--output-dir {requested} is not empty and holds no earlier conversion: "
                "give an empty or new directory"
            )
        created = outermost_missing(requested)
        try:
            yield requested
        except Interrupted:
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)
            raise
        return
    with tempfile.TemporaryDirectory(prefix="reranker-seqcls-") as tmp:
        yield Path(tmp) / "converted"


def outermost_missing(path: Path) -> Path | None:
    """The outermost of ``path`` and its parents that does not exist yet (None: ``path`` does)."""
    missing = None
    for directory in [path, *path.absolute().parents]:
        if directory.exists():
            return missing
        missing = directory
    return missing
