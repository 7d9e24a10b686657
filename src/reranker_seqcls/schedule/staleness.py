"""Is a converted target current? One answer for ``run`` (skip or convert) and ``plan`` (which
fleet entries need a run, and why).

A target is current when its recorded provenance has the identity a conversion made now would
record: same source repo and commit, same recipe, same tool version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reranker_seqcls.hub.target import TargetState
from reranker_seqcls.provenance import Identity

if TYPE_CHECKING:
    from reranker_seqcls.recipes.recipe import Recipe


def expected_identity(source_repo: str, source_sha: str, recipe: Recipe) -> Identity:
    """The :class:`~reranker_seqcls.provenance.Identity` a conversion of ``source_repo`` at
    ``source_sha`` with ``recipe`` by this version of the tool records."""
    from reranker_seqcls import __version__

    return Identity(__version__, source_repo, source_sha, recipe.to_json())


def why_stale(state: TargetState, expected: Identity) -> list[str]:
    """Why the target needs a (re-)conversion; empty when it is current.

    Empty exactly when the target records a provenance whose identity equals ``expected``.
    Recorded values come from the target repo, so they are shown shortened and printable only.
    """
    if not state.exists:
        return ["target does not exist yet"]
    if state.provenance is None:
        return ["target holds no reranker_seqcls.json provenance"]
    recorded = Identity.of_recorded(state.provenance)
    if recorded == expected:
        return []
    reasons = []
    if recorded.source_repo != expected.source_repo:
        reasons.append(f"target was converted from {_shown(recorded.source_repo)}")
    elif recorded.source_sha != expected.source_sha:
        reasons.append(
            f"new upstream commit {str(expected.source_sha)[:12]} "
            f"(target has {_shown(recorded.source_sha)[:12]})"
        )
    if recorded.recipe != expected.recipe:
        reasons.append(_recipe_change(recorded.recipe, expected.recipe))
    if recorded.tool_version != expected.tool_version:
        reasons.append(f"tool version {_shown(recorded.tool_version)} -> {expected.tool_version}")
    return reasons or ["recorded provenance differs"]


def _recipe_change(recorded: object, expected: object) -> str:
    if not isinstance(recorded, dict) or not isinstance(expected, dict):
        return "recipe changed (none recorded)"
    named = sorted(k for k in expected if recorded.get(k) != expected[k])
    return f"recipe changed ({', '.join(named)})" if named else "recipe changed"


def _shown(value: object, limit: int = 40) -> str:
    """A recorded value as short, printable text (it came from the Hub)."""
    if value is None:
        return "none"
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"
