"""What a run did and how it was asked: its options (the ``run`` command's record, made of the
option groups' records), its outcome (printed, and written as ``--result-json``), and the parity
failure that stops it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.errors import ParityFailed
from reranker_seqcls.provenance import SourceRef

if TYPE_CHECKING:
    from reranker_seqcls.check.report import ParityReport
    from reranker_seqcls.commands.options import CheckOptions, HubOptions, RecipeOptions
    from reranker_seqcls.hub.push import PushResult


def source_label(model: str, ref: SourceRef) -> str:
    """``repo@commit12`` (a local source: its name)."""
    return f"{model}@{ref.commit_sha[:12]}" if ref.commit_sha else model


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
    gguf_target_repo: str | None = None  # run --gguf: the second target and its commit
    gguf_commit_sha: str | None = None

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

    def record_gguf_push(self, pushed: PushResult, gguf_target: str, *, dry_run: bool) -> None:
        """The GGUF target's commit (after the seq-cls one): its repo, its commit and the
        message's GGUF part, with the pull request's URL where there is one."""
        self.gguf_target_repo = gguf_target
        self.gguf_commit_sha = pushed.commit_sha
        verb = "would commit" if dry_run else "pushed"
        self.message += f"; GGUF: {verb} {len(pushed.added)} file(s) to {gguf_target}"
        if pushed.pr_url:
            self.message += f" ({pushed.pr_url})"

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
            **(
                {"gguf_target_repo": self.gguf_target_repo, "gguf_commit_sha": self.gguf_commit_sha}
                if self.gguf_target_repo
                else {}
            ),
        }


class RunParityFailed(ParityFailed):
    """``run`` stopped by its parity check: nothing was pushed. ``outcome`` is what
    ``--result-json`` records (status "failed", with the parity summary)."""

    def __init__(self, outcome: RunOutcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


@dataclass(frozen=True)
class RunOptions:
    """``run``'s options: the groups it shares with other commands as their records
    (:mod:`reranker_seqcls.commands.options`), and its own."""

    model: str
    hub: HubOptions  # target, private, create_pr, dry_run, token
    recipe: RecipeOptions
    check: CheckOptions  # pairs_file, dtype, allow_softcapping, vllm_python, check_memory
    revision: str | None = None
    force: bool = False
    output_dir: Path | None = None
    allow_pickle: bool = False
    max_disk: int | None = None  # --max-disk: the most a streamed run may use
    gguf: str | None = None  # --gguf TYPES (gguf/run.py)
    gguf_target: str | None = None
