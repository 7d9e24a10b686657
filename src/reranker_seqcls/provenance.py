"""``reranker_seqcls.json``: the record a conversion writes of what it converted and how.

Written by ``convert`` into OUTPUT, read back by ``push`` (the card), ``check`` (the recorded
recipe) and, from a target repo on the Hub, by ``run``/``plan`` (its :class:`Identity`: is the
target current?). A record read back is untrusted text: a local one is parsed strictly
(:meth:`Provenance.read`, a one-line :class:`BadInput` naming the file), a target's leniently
(:meth:`Identity.of_recorded`, whatever it holds only makes the target stale).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reranker_seqcls.errors import BadInput
from reranker_seqcls.recipes.methods import known_method

TOOL_NAME = "reranker-seqcls"


@dataclass(frozen=True)
class SourceRef:
    """Where the source came from."""

    name: str  # repo id or directory name; also used to detect the preset
    repo_id: str | None = None
    revision: str | None = None
    commit_sha: str | None = None

    @classmethod
    def local(cls, path: Path) -> SourceRef:
        return cls(name=path.resolve().name)

    @property
    def label(self) -> str:
        """``repo@commit`` (12 hex digits) for a Hub source, the name for a local one."""
        name = self.repo_id or self.name or "checkpoint"
        return f"{name}@{self.commit_sha[:12]}" if self.commit_sha else name

    def to_json(self) -> dict[str, str | None]:
        return {
            "name": self.name,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "commit_sha": self.commit_sha,
        }


@dataclass(frozen=True)
class ClassifierRecord:
    """The classifier a conversion built: which tokens, how their head rows became score.weight."""

    tokens: tuple[str, ...]
    token_ids: tuple[int, ...]
    pieces: tuple[str, ...]
    method: str
    num_labels: int
    score_from: str  # the source tensor whose rows were read
    dtype: str  # score.weight's storage dtype (the head's own)
    scale: float
    source_logit_factor: float
    served_score: str
    score_formula: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "tokens": list(self.tokens),
            "token_ids": list(self.token_ids),
            "pieces": list(self.pieces),
            "method": self.method,
            "num_labels": self.num_labels,
            "score_from": self.score_from,
            "dtype": self.dtype,
            "scale": self.scale,
            "source_logit_factor": self.source_logit_factor,
            "served_score": self.served_score,
            "score_formula": self.score_formula,
        }


@dataclass(frozen=True)
class Identity:
    """What decides whether a re-conversion would change a target: equal identities, same files.

    Values recorded by a target come from the Hub and may be anything; they are only compared
    and shown (shortened, printable), never trusted."""

    tool_version: object
    source_repo: object
    source_sha: object
    recipe: object

    @classmethod
    def of_recorded(cls, record: Mapping[str, Any]) -> Identity:
        """The identity a (possibly partial or hand-made) recorded provenance claims."""
        source = record.get("source")
        tool = record.get("tool")
        source = source if isinstance(source, Mapping) else {}
        return cls(
            tool_version=tool.get("version") if isinstance(tool, Mapping) else None,
            source_repo=source.get("repo_id"),
            source_sha=source.get("commit_sha"),
            recipe=record.get("recipe"),
        )


@dataclass(frozen=True)
class Provenance:
    """The contents of ``reranker_seqcls.json``."""

    tool_version: str
    source: SourceRef
    recipe: dict[str, object]  # Recipe.to_json() of the recipe converted with
    classifier: ClassifierRecord
    architecture: str
    pad_token_id: int
    # The source card's license metadata (``license`` and, for "other", ``license_name`` and
    # ``license_link``), recorded by ``convert`` so that ``push`` writes the card ``run`` writes.
    license: Mapping[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": {"name": TOOL_NAME, "version": self.tool_version},
            "source": self.source.to_json(),
            "recipe": self.recipe,
            "classifier": self.classifier.to_json(),
            "architecture": self.architecture,
            "pad_token_id": self.pad_token_id,
            "license": None if self.license is None else dict(self.license),
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def identity(self) -> Identity:
        return Identity(self.tool_version, self.source.repo_id, self.source.commit_sha, self.recipe)

    @classmethod
    def read(cls, path: Path) -> Provenance:
        """Parse a local record strictly: one :class:`BadInput` naming ``path`` and the problem."""
        return cls.from_json(read_json_record(path), path)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], path: Path) -> Provenance:
        source = data.get("source")
        if (
            not isinstance(source, dict)
            or not all(
                isinstance(source.get(key), str | None)
                for key in ("repo_id", "revision", "commit_sha")
            )
            or not isinstance(source.get("name"), str)
        ):
            raise _not_a_record(path, "'source' is not a map of names")
        tool = _object(data, "tool", path)
        classifier = _object(data, "classifier", path)
        recipe = _object(data, "recipe", path)
        _typed(recipe, "name", str, "recipe", path)
        return cls(
            tool_version=_typed(tool, "version", str, "tool", path),
            source=SourceRef(
                source["name"],
                source.get("repo_id"),
                source.get("revision"),
                source.get("commit_sha"),
            ),
            recipe=recipe,
            classifier=_classifier(classifier, path),
            architecture=_typed(data, "architecture", str, None, path),
            pad_token_id=_typed(data, "pad_token_id", int, None, path),
            license=_license(data.get("license")),
        )


def _license(value: object) -> dict[str, str] | None:
    """The recorded license metadata; None when absent or not a map of strings (an older
    record, or one edited by hand: the card then names no license)."""
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return None
    known = {k: v for k, v in value.items() if k in ("license", "license_name", "license_link")}
    return known if "license" in known else None


def _classifier(data: dict[str, Any], path: Path) -> ClassifierRecord:
    def strings(key: str) -> tuple[str, ...]:
        values = data.get(key)
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _not_a_record(path, f"'classifier.{key}' is not a list of strings")
        return tuple(values)

    ids = data.get("token_ids")
    if not isinstance(ids, list) or not all(_is_int(i) for i in ids):
        raise _not_a_record(path, "'classifier.token_ids' is not a list of integers")
    formula = data.get("score_formula")
    if not isinstance(formula, str | None):
        raise _not_a_record(path, "'classifier.score_formula' is not a string")
    tokens, pieces = strings("tokens"), strings("pieces")
    method = known_method(data.get("method"))
    fits = method is None or method.fits(len(tokens))
    if not len(tokens) == len(ids) == len(pieces) or not tokens or not fits:
        raise _not_a_record(path, "'classifier' tokens, token_ids and pieces do not match")
    return ClassifierRecord(
        tokens=tokens,
        token_ids=tuple(ids),
        pieces=pieces,
        method=_typed(data, "method", str, "classifier", path),
        num_labels=_typed(data, "num_labels", int, "classifier", path),
        score_from=_typed(data, "score_from", str, "classifier", path),
        dtype=_typed(data, "dtype", str, "classifier", path),
        scale=float(_typed(data, "scale", float, "classifier", path)),
        source_logit_factor=float(_typed(data, "source_logit_factor", float, "classifier", path)),
        served_score=_typed(data, "served_score", str, "classifier", path),
        score_formula=formula,
    )


def read_json_record(path: Path) -> dict[str, Any]:
    """A JSON object file the tool wrote (exit 2, one line, when it is not one)."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadInput(
            f"{path} is not readable JSON ({exc}): convert the checkpoint again"
        ) from exc
    if not isinstance(data, dict):
        raise BadInput(f"{path} holds no JSON object: convert the checkpoint again")
    return data


def _not_a_record(path: Path, problem: str) -> BadInput:
    return BadInput(
        f"{path} is no provenance record of reranker-seqcls ({problem}): "
        "convert the checkpoint again"
    )


def _object(data: Mapping[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise _not_a_record(path, f"{key!r} is not an object")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_KIND_NAMES = {str: "a string", int: "an integer", float: "a number"}


def _typed(data: Mapping[str, Any], key: str, kind: type, scope: str | None, path: Path) -> Any:
    """``data[key]`` if it is a ``kind`` (a float may be any JSON number, never a bool)."""
    value = data.get(key)
    ok = _is_int(value) if kind is int else isinstance(value, kind)
    if kind is float:
        ok = _is_int(value) or isinstance(value, float)
    if not ok:
        where = f"{scope}.{key}" if scope else key
        raise _not_a_record(path, f"{where!r} is missing or not {_KIND_NAMES[kind]}")
    return value
