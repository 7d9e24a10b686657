"""The streaming conversion: causal-LM reranker directory → seq-cls checkpoint directory.

No model is ever instantiated and torch is not imported (except to read a pickle checkpoint the
user explicitly allowed). Only the classifier rows of the head are read; shards that do not hold
``lm_head.weight`` are placed by reflink/hard link/copy; the shard that does is rewritten by
copying byte ranges; ``score.weight`` goes into a small shard of its own.

Everything is validated and decided before the first byte is written (:mod:`.plan`), output goes
to a temporary directory beside OUTPUT and is renamed into place at the end (:mod:`.atomic`), so
an error or Ctrl-C leaves no half-written OUTPUT. :func:`convert` strings the steps together.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from reranker_seqcls import __version__
from reranker_seqcls.convert.atomic import atomic_directory, check_output
from reranker_seqcls.convert.output_config import (
    served_score,
    write_config_files,
    write_local_readme,
)
from reranker_seqcls.convert.plan import Plan, plan_conversion
from reranker_seqcls.convert.progress import progress_bar
from reranker_seqcls.convert.rules import SCALED_LOGITS as SCALED_LOGITS  # patched by tests
from reranker_seqcls.convert.write import (
    stage_pickle_weights,
    write_output_index,
    write_output_shard,
    write_score_shard,
)
from reranker_seqcls.log import Log, log_to_stderr
from reranker_seqcls.names import PROVENANCE_FILE, SCORE_SHARD_FILE
from reranker_seqcls.provenance import ClassifierRecord, Provenance, SourceRef
from reranker_seqcls.recipes.recipe import Recipe
from reranker_seqcls.safetensors_io.place import Placement
from reranker_seqcls.safetensors_io.shards import TensorBytes
from reranker_seqcls.source import Source


@dataclass(frozen=True)
class ConversionResult:
    output: Path
    plan: Plan  # with the weights planned (a pickle source's after staging)
    dtype: str
    placed: dict[str, Placement]  # output file name → how it got there
    provenance: Provenance


def convert(
    source: Path,
    output: Path,
    recipe: Recipe,
    *,
    source_ref: SourceRef | None = None,
    force: bool = False,
    copy: bool = False,
    allow_pickle: bool = False,
    allow_softcapping: bool = False,
    log: Log = log_to_stderr,
) -> ConversionResult:
    """Convert ``source`` into ``output``; see the module docstring for the guarantees."""
    source = Path(source)
    output = Path(os.path.abspath(output))  # "." and "dir/.." get a real name to rename onto
    check_output(Source(source), output, force)
    plan = plan_conversion(
        source, recipe, allow_pickle=allow_pickle, allow_softcapping=allow_softcapping
    )
    log_plan(plan, log)
    ref = source_ref or SourceRef.local(source)
    with atomic_directory(output) as tmp:
        plan, placed, staging = _write_shards(plan, tmp, copy=copy, log=log)
        provenance = finish_output(plan, tmp, ref, output=output, log=log)
        if staging is not None:  # read until the score rows were
            shutil.rmtree(staging)
    placed[SCORE_SHARD_FILE] = Placement.WRITTEN
    rewritten = sorted(n for n, how in placed.items() if how is Placement.REWRITTEN)
    dtype = plan.planned_weights.dtype
    log(
        f"wrote {output} ({plan.architecture}, {recipe.num_labels} label(s), {dtype}); "
        f"rewritten shards: {', '.join(rewritten) or 'none'}"
    )
    return ConversionResult(output, plan, dtype, placed, provenance)


def log_plan(plan: Plan, log: Log) -> None:
    """What the conversion will do, before it does it."""
    recipe = plan.recipe
    log(f"recipe: {recipe.name} ({recipe.method}, {recipe.describe_classifier()})")
    for token in plan.tokens:
        log(f"classifier token {token.describe()}")
    if plan.logit_factor != 1.0:
        log(f"source scales its logits by {plan.logit_factor:g} after the head: folded in")
    if plan.scale != 1.0:
        log(f"score.weight = head rows x {plan.scale:g} (computed in float64, rounded once)")
    log(f"served score (vLLM, sentence-transformers): {served_score(recipe)}")


def _write_shards(
    plan: Plan, out: Path, *, copy: bool, log: Log
) -> tuple[Plan, dict[str, Placement], Path | None]:
    """Every planned shard; a pickle source's weights are staged (and planned) first. Returns
    the plan with its weights planned, how each output shard got there, and the staging
    directory of a pickle source."""
    staging = None
    if plan.weights is None:
        plan, staging = stage_pickle_weights(plan, out, log)
        copy = False  # the staged files are ours: linking them is a move
    weights = plan.planned_weights
    placed: dict[str, Placement] = {}
    shard_files = weights.checkpoint.shards
    progress = progress_bar(sum(shard_files[s.source_name].path.stat().st_size
                                for s in weights.shards))  # fmt: skip
    for shard in weights.shards:
        path = shard_files[shard.source_name].path
        progress.update(path.stat().st_size)
        placed[shard.name] = write_output_shard(plan, shard, path, out, copy=copy)
        if placed[shard.name] is not Placement.DROPPED_HEAD_ONLY:
            log(f"{shard.name}: {placed[shard.name]}")
    progress.close()
    return plan, placed, staging


def finish_output(
    plan: Plan,
    out: Path,
    ref: SourceRef,
    *,
    score: TensorBytes | None = None,
    output: Path | None = None,
    log: Log = log_to_stderr,
) -> Provenance:
    """Everything but the model shards, once each went through :func:`write_output_shard`:
    score.safetensors (``score``, when read while the head's shard was present, else read
    now), the index, config and tokenizer files, consumer files, provenance and the local
    README (naming ``output``, the directory ``out`` becomes; default ``out``)."""
    write_score_shard(plan, out, score)
    write_output_index(plan, out)
    write_config_files(plan, out, log)
    provenance = build_provenance(plan, ref)
    provenance.write(out / PROVENANCE_FILE)
    write_local_readme(out, output or out, provenance, plan.recipe)
    return provenance


def build_provenance(plan: Plan, ref: SourceRef) -> Provenance:
    recipe = plan.recipe
    weights = plan.planned_weights
    classifier = ClassifierRecord(
        tokens=tuple(t.text for t in plan.tokens),
        token_ids=tuple(t.id for t in plan.tokens),
        pieces=tuple(t.piece for t in plan.tokens),
        method=recipe.method,
        num_labels=recipe.num_labels,
        score_from=weights.head_name,
        dtype=weights.dtype,
        scale=plan.scale,
        source_logit_factor=plan.logit_factor,
        served_score=served_score(recipe),
        score_formula=recipe.score_formula or None,
    )
    from reranker_seqcls.hub.card import source_license

    found = source_license(plan.source)
    extra = {key: str(value) for key, value in found.extra.items()}
    license_ = None if found.license is None else {"license": found.license, **extra}
    return Provenance(
        tool_version=__version__,
        source=ref,
        recipe=recipe.to_json(),
        classifier=classifier,
        architecture=plan.architecture,
        pad_token_id=plan.pad_token_id,
        license=license_,
    )
