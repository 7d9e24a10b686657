"""The steps the commands share: choosing the recipe and pairs of a check, and the full
download → convert → check → push run."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BadInput
from .files import PROVENANCE_FILE
from .pairs import Pair, builtin_pairs, load_pairs
from .recipes import Recipe, recipe_from_provenance, resolve_recipe

if TYPE_CHECKING:
    from .convert import SourceRef
    from .hub import PushResult
    from .parity import ParityReport

Log = Callable[[str], None]


def check_recipe(
    source: Path,
    converted: Path,
    preset: str | None,
    tokens: str | None,
    method: str | None,
    template: Path | None,
) -> Recipe:
    """The recipe the original is scored with: explicit options, else the one the conversion
    recorded, else the family detected from the source's name."""
    if preset or tokens or method or template:
        return resolve_recipe(
            source_name=source.resolve().name,
            preset=preset,
            tokens_json=tokens,
            method=method,
            template_path=template,
        )
    provenance_path = converted / PROVENANCE_FILE
    if provenance_path.is_file():
        from .consumer_files import TEMPLATE_FILE_NAME

        recorded = recipe_from_provenance(
            json.loads(provenance_path.read_text()), converted / TEMPLATE_FILE_NAME
        )
        if recorded is not None:
            return recorded
    return resolve_recipe(source_name=source.resolve().name)


def load_check_pairs(recipe: Recipe, pairs_file: Path | None) -> list[Pair]:
    if pairs_file is not None:
        return load_pairs(pairs_file)
    takes_instruction = recipe.prompt_style in ("qwen3-reranker", "mxbai-rerank-v2", "template")
    return builtin_pairs(takes_instruction=takes_instruction)


def resolve_token_ids(source: Path, recipe: Recipe) -> list[int]:
    from .tokens import TokenizerFiles, resolve_tokens

    if not (source / "config.json").is_file():
        raise BadInput(f"{source} has no config.json: give the original checkpoint")
    return [t.id for t in resolve_tokens(TokenizerFiles(source), recipe.tokens)]


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
        self.status = "dry_run" if dry_run else "pushed"
        self.commit_sha = pushed.commit_sha
        self.pr_url = pushed.pr_url
        self.message = (
            f"dry run: would commit {len(pushed.added)} file(s) to {self.target_repo}"
            if dry_run
            else f"pushed {label} to {self.target_repo} (commit {(pushed.commit_sha or '')[:12]})"
        )

    def to_json(self) -> dict[str, Any]:
        from .hub import repo_url

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


def locate_source(
    source: str, revision: str | None, token: str | None, log: Log
) -> tuple[Path, SourceRef]:
    """A local checkpoint directory as is, or a Hub repo id downloaded at an exact commit."""
    from .convert import SourceRef
    from .hub import fetch, looks_like_repo_id

    path = Path(source)
    if path.is_dir():
        if revision is not None:
            raise BadInput(f"--revision applies to Hub repos, but {source} is a local directory")
        return path, SourceRef.local(path)
    if not looks_like_repo_id(source):
        raise BadInput(
            f"source {source} is neither a directory nor a Hub repo id: give a checkpoint "
            "directory or owner/name"
        )
    fetched = fetch(source, revision, token=token, log=log)
    ref = SourceRef(name=source, repo_id=source, revision=revision, commit_sha=fetched.commit_sha)
    return fetched.path, ref


def run_pipeline(opts: RunOptions, log: Log) -> RunOutcome:
    """download → convert → check → card → push, skipping when the target is already current."""
    from . import __version__
    from .card import render_card, source_license, write_card
    from .consumer_files import TEMPLATE_FILE_NAME
    from .convert import SourceRef, convert
    from .hub import fetch, identity, looks_like_repo_id, push, resolve_commit, target_state
    from .parity import check_parity, write_report

    if not looks_like_repo_id(opts.target):
        raise BadInput(f"target {opts.target!r} is not a Hub repo id: give owner/name")
    local = Path(opts.model).is_dir()
    recipe = resolve_recipe(
        source_name=Path(opts.model).resolve().name if local else opts.model,
        preset=opts.preset,
        tokens_json=opts.tokens,
        method=opts.method,
        template_path=opts.template,
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
        sha = resolve_commit(opts.model, opts.revision, opts.token)
        outcome.source_sha = sha
        expected = {
            "tool_version": __version__,
            "source_repo": opts.model,
            "source_sha": sha,
            "recipe": recipe.to_json(),
        }
        if state.provenance is not None and identity(state.provenance) == expected:
            if not opts.force:
                outcome.status = "skipped"
                outcome.message = (
                    f"already current: {opts.target} holds {opts.model}@{sha[:12]} converted "
                    f"with the same recipe by reranker-seqcls {__version__}"
                )
                log(outcome.message)
                return outcome
            log("target is current, converting anyway (--force)")
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
        report = check_parity(
            source_dir,
            out,
            recipe,
            load_check_pairs(recipe, opts.pairs_file),
            token_ids=[t.id for t in result.plan.tokens],
            dtype=opts.dtype,
            allow_softcapping=opts.allow_softcapping,
            log=log,
        )
        outcome.parity = report
        write_report(report, out / PARITY_REPORT_FILE)
        log(report.table())
        if not report.passed:
            outcome.message = f"parity failed: {report.reasons[0]}; nothing was pushed"
            return outcome

        license_, license_extra = source_license(source_dir)
        card = render_card(
            target_repo=opts.target,
            provenance=result.provenance,
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


PARITY_REPORT_FILE = "parity_report.json"


def _commit_description(ref: SourceRef, recipe: Recipe, report: ParityReport) -> str:
    return (
        f"Source: {ref.repo_id or ref.name} at commit {ref.commit_sha or '(local)'}\n"
        f"Recipe: {recipe.name} ({recipe.method}, tokens {list(recipe.tokens)})\n"
        f"Parity: {report.verdict}, max |Δ logit| {report.max_abs_diff:.3g}, "
        f"Spearman {report.spearman:.4f}"
    )


@contextmanager
def _output_dir(requested: Path | None) -> Iterator[Path]:
    """``--output-dir`` (kept afterwards), or a temporary directory removed at the end."""
    if requested is not None:
        holds_other = requested.exists() and any(requested.iterdir())
        if holds_other and not (requested / PROVENANCE_FILE).is_file():
            raise BadInput(
                f"--output-dir {requested} is not empty and holds no earlier conversion: "
                "give an empty or new directory"
            )
        yield requested
        return
    with tempfile.TemporaryDirectory(prefix="reranker-seqcls-") as tmp:
        yield Path(tmp) / "converted"


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
    from .card import render_card, write_card
    from .consumer_files import TEMPLATE_FILE_NAME
    from .hub import looks_like_repo_id, push, target_state

    if not looks_like_repo_id(target):
        raise BadInput(f"target {target!r} is not a Hub repo id: give owner/name")
    provenance_path = converted / PROVENANCE_FILE
    if not provenance_path.is_file():
        raise BadInput(
            f"{converted} has no {PROVENANCE_FILE}: push a directory written by "
            "reranker-seqcls convert"
        )
    provenance = json.loads(provenance_path.read_text())
    parity_md = None
    gap = None
    report_path = converted / PARITY_REPORT_FILE
    if report_path.is_file():
        report = json.loads(report_path.read_text())
        if not report.get("passed"):
            reasons = report.get("reasons") or ["see the report"]
            raise BadInput(
                f"{converted} failed its parity check ({reasons[0]}): nothing was pushed"
            )
    else:
        log(f"warning: {converted} has no {PARITY_REPORT_FILE}; run `reranker-seqcls check` first")
    if not (converted / "README.md").is_file():
        if report_path.is_file():
            from .parity import report_markdown_from_json

            recorded = json.loads(report_path.read_text())
            parity_md = report_markdown_from_json(recorded)
            gap = recorded.get("tokenization_gap")
        write_card(
            converted,
            render_card(
                target_repo=target,
                provenance=provenance,
                parity_markdown=parity_md,
                tokenization_gap=gap,
                license_=None,
                license_extra={},
                template_file=(
                    TEMPLATE_FILE_NAME if (converted / TEMPLATE_FILE_NAME).is_file() else None
                ),
            ),
        )
    state = target_state(target, token)
    source = provenance.get("source") or {}
    label = source.get("repo_id") or source.get("name") or "checkpoint"
    if source.get("commit_sha"):
        label += f"@{source['commit_sha'][:12]}"
    from . import __version__

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
    outcome = RunOutcome("failed", target, label, source.get("commit_sha"))
    outcome.record_push(pushed, label, dry_run=dry_run)
    return outcome
