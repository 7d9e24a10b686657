"""The steps the commands share: choosing the recipe and pairs of a check, and the full
download → convert → check → push run."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.check.pairs import Pair, builtin_pairs, load_pairs
from reranker_seqcls.errors import BadInput, ParityFailed
from reranker_seqcls.log import Log
from reranker_seqcls.names import CONFIG_FILE, PARITY_REPORT_FILE, PROVENANCE_FILE, README_FILE
from reranker_seqcls.provenance import Provenance, SourceRef, read_json_record
from reranker_seqcls.recipes.recipe import Recipe
from reranker_seqcls.recipes.resolve import recipe_from_provenance, resolve_recipe

if TYPE_CHECKING:
    from reranker_seqcls.check.report import ParityReport
    from reranker_seqcls.hub.push import PushResult


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

    ``source_name`` is what the user named (see :func:`source_name`), never the directory a Hub
    snapshot was downloaded to (a commit sha), so ``check`` detects what ``convert`` detects."""
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
        if recorded is not None:
            return recorded
    return resolve_recipe(source_name=source_name, source_dir=source_dir)


def source_name(source: str) -> str:
    """The name a recipe is detected from: a local directory's own name, else the repo id."""
    path = Path(source)
    return path.resolve().name if path.is_dir() else source


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


@dataclass
class RunOutcome:
    """What a run did; the CLI prints it and writes it as ``--result-json``."""

    status: str  # "pushed" | "skipped" | "dry_run" | "failed"
    target_repo: str
    source_repo: str
    source_sha: str | None = None
    commit_sha: str | None = None
    pr_url: str | None = None
    parity: ParityReport | None = None
    message: str = ""
    output_dir: Path | None = None

    def record_push(self, pushed: PushResult, label: str, *, dry_run: bool) -> None:
        self.commit_sha = pushed.commit_sha
        self.pr_url = pushed.pr_url
        sha = (pushed.commit_sha or "")[:12]
        if dry_run:
            self.status = "dry_run"
            self.message = (
                f"dry run: would commit {len(pushed.added)} file(s) to {self.target_repo}"
            )
        elif not pushed.committed:  # the target holds this conversion: the push's aim is met
            self.status = "pushed"
            self.message = (
                f"{self.target_repo} already holds {label} (commit {sha}): no commit was made"
            )
        else:
            self.status = "pushed"
            self.message = f"pushed {label} to {self.target_repo} (commit {sha})"

    def to_json(self) -> dict[str, Any]:
        from reranker_seqcls.hub.repo_ids import repo_url

        parity = None
        if self.parity is not None:
            parity = {
                "passed": self.parity.passed,
                "verdict": self.parity.verdict,
                "max_abs_diff": self.parity.max_abs_diff,
                "spearman": self.parity.spearman,
                "tokenization_gap": self.parity.to_json()["tokenization_gap"],
                "table_markdown": self.parity.markdown(),
            }
        return {
            "status": self.status,
            "skipped": self.status == "skipped",
            "target_repo": self.target_repo,
            "target_url": repo_url(self.target_repo),
            "commit_sha": self.commit_sha,
            "pr_url": self.pr_url,
            "source_repo": self.source_repo,
            "source_sha": self.source_sha,
            "parity": parity,
            "message": self.message,
        }


class RunParityFailed(ParityFailed):
    """``run`` stopped by its parity check: nothing was pushed. ``outcome`` is what
    ``--result-json`` records (status "failed", with the parity summary)."""

    def __init__(self, outcome: RunOutcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


@dataclass
class RunOptions:
    model: str
    target: str
    revision: str | None = None
    preset: str | None = None
    tokens: str | None = None
    method: str | None = None
    template: Path | None = None
    private: bool = False
    create_pr: bool = False
    dry_run: bool = False
    force: bool = False
    output_dir: Path | None = None
    token: str | None = None
    allow_pickle: bool = False
    allow_softcapping: bool = False
    pairs_file: Path | None = None
    dtype: str | None = None
    token_ids: str | None = None
    scale: str | None = None
    vllm_python: Path | None = None
    check_memory: str = "1.5GB"


def source_commit(source: str, revision: str | None, token: str | None) -> str | None:
    """None for a local checkpoint directory; for a Hub repo id, the exact commit ``revision``
    names. Called before the recipe is chosen, so a missing repo is reported as missing (not
    as a name the family cannot be told from) and nothing is downloaded for a bad recipe."""
    from reranker_seqcls.hub.fetch import resolve_commit
    from reranker_seqcls.hub.repo_ids import require_repo_id

    if Path(source).is_dir():
        if revision is not None:
            raise BadInput(f"--revision applies to Hub repos, but {source} is a local directory")
        return None
    require_repo_id(source, "source", or_directory=True)
    return resolve_commit(source, revision, token)


def locate_source(
    source: str, revision: str | None, token: str | None, log: Log, commit_sha: str | None = None
) -> tuple[Path, SourceRef]:
    """A local checkpoint directory as is, or a Hub repo id downloaded at an exact commit
    (``commit_sha`` when :func:`source_commit` resolved it already)."""
    from reranker_seqcls.hub.fetch import fetch

    if commit_sha is None:
        commit_sha = source_commit(source, revision, token)
    if commit_sha is None:
        path = Path(source)
        return path, SourceRef.local(path)
    fetched = fetch(source, revision, token=token, log=log, commit_sha=commit_sha)
    ref = SourceRef(name=source, repo_id=source, revision=revision, commit_sha=fetched.commit_sha)
    return fetched.path, ref


def run_pipeline(opts: RunOptions, log: Log) -> RunOutcome:
    """download → convert → check → card → push, skipping when the target is already current."""
    from reranker_seqcls import __version__
    from reranker_seqcls.check.report import write_report
    from reranker_seqcls.check.streamed import streamed_check
    from reranker_seqcls.check.twin import parse_memory
    from reranker_seqcls.convert.consumer_files import TEMPLATE_FILE_NAME
    from reranker_seqcls.convert.converter import convert
    from reranker_seqcls.hub.card import render_card, source_license, write_card
    from reranker_seqcls.hub.fetch import fetch
    from reranker_seqcls.hub.push import push
    from reranker_seqcls.hub.repo_ids import require_repo_id
    from reranker_seqcls.hub.target import target_state
    from reranker_seqcls.schedule.staleness import expected_identity, why_stale

    require_repo_id(opts.target, "target")
    parse_memory(opts.check_memory)  # a bad size fails before anything is downloaded
    local = Path(opts.model).is_dir()
    sha = source_commit(opts.model, opts.revision, opts.token)
    recipe = resolve_recipe(
        source_name=source_name(opts.model),
        preset=opts.preset,
        tokens_json=opts.tokens,
        method=opts.method,
        template_path=opts.template,
        token_ids_json=opts.token_ids,
        scale=opts.scale,
        source_dir=Path(opts.model) if local else None,
        log=log,
    )
    outcome = RunOutcome("failed", opts.target, opts.model)
    state = target_state(opts.target, opts.token)
    log(
        f"target {opts.target}: "
        + (f"head {state.head[:12]}" if state.head else "does not exist yet")
    )

    if local:
        source_dir, ref = locate_source(opts.model, opts.revision, opts.token, log)
    else:
        assert sha is not None
        outcome.source_sha = sha
        stale = why_stale(state, expected_identity(opts.model, sha, recipe))
        if not stale:
            if not opts.force:
                outcome.status = "skipped"
                outcome.message = (
                    f"already current: {opts.target} holds {opts.model}@{sha[:12]} converted "
                    f"with the same recipe by reranker-seqcls {__version__}"
                )
                log(outcome.message)
                return outcome
            log("target is current, converting anyway (--force)")
        else:
            log(f"converting: {'; '.join(stale)}")
        fetched = fetch(opts.model, opts.revision, token=opts.token, log=log, commit_sha=sha)
        source_dir = fetched.path
        ref = SourceRef(opts.model, opts.model, opts.revision, sha)

    with _output_dir(opts.output_dir) as out:
        result = convert(
            source_dir,
            out,
            recipe,
            source_ref=ref,
            force=True,
            allow_pickle=opts.allow_pickle,
            allow_softcapping=opts.allow_softcapping,
            log=log,
        )
        outcome.output_dir = out
        report = streamed_check(
            source_dir,
            out,
            recipe,
            load_check_pairs(recipe, opts.pairs_file),
            token_ids=[t.id for t in result.plan.tokens],
            dtype=opts.dtype,
            allow_softcapping=opts.allow_softcapping,
            vllm_python=opts.vllm_python,
            check_memory=parse_memory(opts.check_memory),
            log=log,
        )
        outcome.parity = report
        write_report(report, out / PARITY_REPORT_FILE)
        for row in report.table_rows():
            log(row)
        try:
            report.require_passed()
        except ParityFailed as exc:
            outcome.message = f"{exc}; nothing was pushed"
            raise RunParityFailed(outcome) from exc

        license_, license_extra = source_license(source_dir)
        card = render_card(
            target_repo=opts.target,
            provenance=result.provenance.to_json(),
            parity_markdown=report.markdown(),
            tokenization_gap=report.to_json()["tokenization_gap"],
            license_=license_,
            license_extra=license_extra,
            template_file=TEMPLATE_FILE_NAME if recipe.template is not None else None,
        )
        write_card(out, card)
        source_label = f"{opts.model}@{ref.commit_sha[:12]}" if ref.commit_sha else opts.model
        pushed = push(
            out,
            opts.target,
            token=opts.token,
            private=opts.private,
            create_pr=opts.create_pr,
            parent_commit=state.head,
            commit_message=f"Convert {source_label} with reranker-seqcls {__version__}",
            commit_description=_commit_description(ref, recipe, report),
            dry_run=opts.dry_run,
            log=log,
        )
    outcome.record_push(pushed, source_label, dry_run=opts.dry_run)
    return outcome


def _commit_description(ref: SourceRef, recipe: Recipe, report: ParityReport) -> str:
    return (
        f"Source: {ref.repo_id or ref.name} at commit {ref.commit_sha or '(local)'}\n"
        f"Recipe: {recipe.name} ({recipe.method}, {recipe.describe_classifier()})\n"
        f"Parity: {report.verdict}, max |Δ logit| {report.max_abs_diff:.3g}, "
        f"Spearman {report.spearman:.4f}"
    )


@contextmanager
def _output_dir(requested: Path | None) -> Iterator[Path]:
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
        created = _outermost_missing(requested)
        try:
            yield requested
        except Interrupted:
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)
            raise
        return
    with tempfile.TemporaryDirectory(prefix="reranker-seqcls-") as tmp:
        yield Path(tmp) / "converted"


def _outermost_missing(path: Path) -> Path | None:
    """The outermost of ``path`` and its parents that does not exist yet (None: ``path`` does)."""
    missing = None
    for directory in [path, *path.absolute().parents]:
        if directory.exists():
            return missing
        missing = directory
    return missing


def push_converted(
    converted: Path,
    target: str,
    *,
    private: bool,
    create_pr: bool,
    dry_run: bool,
    token: str | None,
    log: Log,
) -> RunOutcome:
    """``push``: one commit of a converted directory, refusing a failed parity report."""
    from reranker_seqcls.convert.consumer_files import TEMPLATE_FILE_NAME
    from reranker_seqcls.hub.card import render_card, write_card
    from reranker_seqcls.hub.push import push
    from reranker_seqcls.hub.repo_ids import require_repo_id
    from reranker_seqcls.hub.target import target_state

    require_repo_id(target, "target")
    provenance_path = converted / PROVENANCE_FILE
    if not provenance_path.is_file():
        raise BadInput(
            f"{converted} has no {PROVENANCE_FILE}: push a directory written by "
            "reranker-seqcls convert"
        )
    provenance = Provenance.read(provenance_path)
    parity_md = None
    gap = None
    report_path = converted / PARITY_REPORT_FILE
    report: dict[str, Any] = {}
    if report_path.is_file():
        report = read_json_record(report_path)
        if not report.get("passed"):
            reasons = report.get("reasons")
            reason = reasons[0] if isinstance(reasons, list) and reasons else "see the report"
            raise BadInput(f"{converted} failed its parity check ({reason}): nothing was pushed")
    else:
        log(f"warning: {converted} has no {PARITY_REPORT_FILE}; run `reranker-seqcls check` first")
    from reranker_seqcls.hub.card import is_local_readme

    readme = converted / README_FILE
    if not readme.is_file() or is_local_readme(readme):  # no card yet, or convert's short README
        if report:
            from reranker_seqcls.check.report import ParityReport

            parsed = ParityReport.from_json(report, report_path)
            parity_md = parsed.markdown()
            gap = parsed.to_json()["tokenization_gap"]
        card = render_card(
            target_repo=target,
            provenance=provenance.to_json(),
            parity_markdown=parity_md,
            tokenization_gap=gap,
            license_=None,
            license_extra={},
            template_file=(
                TEMPLATE_FILE_NAME if (converted / TEMPLATE_FILE_NAME).is_file() else None
            ),
        )
        write_card(converted, card)
    state = target_state(target, token)
    label = provenance.source.label
    from reranker_seqcls import __version__

    pushed = push(
        converted,
        target,
        token=token,
        private=private,
        create_pr=create_pr,
        parent_commit=state.head,
        commit_message=f"Convert {label} with reranker-seqcls {__version__}",
        commit_description=f"Pushed with `reranker-seqcls push` from {converted.name}",
        dry_run=dry_run,
        log=log,
    )
    outcome = RunOutcome("failed", target, label, provenance.source.commit_sha)
    outcome.record_push(pushed, label, dry_run=dry_run)
    return outcome
