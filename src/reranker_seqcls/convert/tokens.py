"""Classifier token → vocabulary id, strictly; and the pad id a classifier needs.

``tokenizer.convert_tokens_to_ids`` silently returns the unknown id (or None) for a string that is
not one vocabulary entry. Here a token must be exactly one real id: the exact vocabulary entry
first, else the string encodes to exactly one non-unknown id. The id used is always reported.

Reads ``tokenizer.json`` with the ``tokenizers`` library (no torch; once per distinct file per
process, :func:`reranker_seqcls.tokenizer_loads.fast_tokenizer`); only a tokenizer without
``tokenizer.json`` falls back to transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from reranker_seqcls.errors import BadInput
from reranker_seqcls.names import SPECIAL_TOKENS_MAP_FILE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE
from reranker_seqcls.source import Source, read_json_file

# The largest real tokenizer.json files are ~35 MB; the bound keeps a hostile one from being read
# into memory whole.
MAX_TOKENIZER_BYTES = 1 << 30


# How a classifier token was found in the vocabulary (shown in the conversion log).
TokenMatch = Literal["exact vocabulary entry", "encodes to one piece", "given by id"]


@dataclass(frozen=True)
class ResolvedToken:
    text: str
    id: int
    piece: str  # the vocabulary entry the id stands for
    how: TokenMatch

    def describe(self) -> str:
        via = "" if self.piece == self.text else f" (piece {self.piece!r})"
        return f"{self.text!r} -> id {self.id}{via}, {self.how}"


class _Vocab(Protocol):
    def token_to_id(self, text: str) -> int | None: ...
    def encode(self, text: str) -> list[int]: ...
    def id_to_token(self, token_id: int) -> str | None: ...


class TokenizerFiles:
    """The tokenizer of a checkpoint directory, read from its files."""

    def __init__(self, directory: Path | Source) -> None:
        source = directory if isinstance(directory, Source) else Source(directory)
        self.directory = directory = source.directory
        self.config: dict[str, Any] = _read_json(source, TOKENIZER_CONFIG_FILE)
        self.special_map: dict[str, Any] = _read_json(source, SPECIAL_TOKENS_MAP_FILE)
        tokenizer_json = source.file(TOKENIZER_FILE)
        if tokenizer_json is not None:
            from reranker_seqcls.tokenizer_loads import fast_tokenizer

            if tokenizer_json.stat().st_size > MAX_TOKENIZER_BYTES:
                raise BadInput(
                    f"tokenizer.json is larger than {MAX_TOKENIZER_BYTES >> 30} GiB: it is not a "
                    "tokenizer, re-download the checkpoint"
                )
            try:
                self._backend: _Vocab = _FastVocab(fast_tokenizer(tokenizer_json))
            except Exception as exc:  # the Rust error types are not importable
                first = (str(exc).splitlines() or [exc.__class__.__name__])[0][:120]
                raise BadInput(
                    f"tokenizer.json cannot be loaded ({first}): re-download the checkpoint"
                ) from exc
        elif self.config or source.listing(["*.model", "vocab.json"]):
            source.listing(["*"])  # transformers reads more files: none may leave the source
            self._backend = _TransformersVocab(directory)
        else:
            raise BadInput(
                f"no tokenizer files in {directory}: the source must carry tokenizer.json or "
                "tokenizer_config.json"
            )

    def special_token(self, name: str) -> str | None:
        """A special token's text from tokenizer_config.json or special_tokens_map.json."""
        for source in (self.config, self.special_map):
            value = source.get(name)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str) and value:
                return value
        return None

    def special_token_id(self, name: str) -> int | None:
        text = self.special_token(name)
        return None if text is None else self._backend.token_to_id(text)

    def resolve(self, text: str) -> ResolvedToken:
        unk_id = self.special_token_id("unk_token")
        exact = self._backend.token_to_id(text)
        if exact is not None and exact != unk_id:
            return ResolvedToken(text, exact, text, "exact vocabulary entry")
        ids = self._backend.encode(text)
        if len(ids) == 1 and ids[0] != unk_id:
            piece = self._backend.id_to_token(ids[0]) or text
            return ResolvedToken(text, ids[0], piece, "encodes to one piece")
        near = self._near_misses(text)
        hint = f"; vocabulary has {', '.join(repr(n) for n in near)}" if near else ""
        if not ids or all(i == unk_id for i in ids):
            problem = "is not in the vocabulary (it maps to the unknown token)"
        else:
            problem = f"is not one token (it encodes to {len(ids)} pieces)"
        raise BadInput(
            f"classifier token {text!r} {problem}{hint}: "
            "pass the exact vocabulary entry in --tokens"
        )

    def entry_id(self, text: str) -> int | None:
        """The id of the exact vocabulary entry ``text``, or None."""
        return self._backend.token_to_id(text)

    def piece(self, token_id: int) -> str | None:
        """The vocabulary entry of ``token_id``, or None outside the vocabulary."""
        return self._backend.id_to_token(token_id)

    def resolve_id(self, token_id: int) -> ResolvedToken:
        """A classifier token given by vocabulary id: it must name a vocabulary entry."""
        piece = self.piece(token_id)
        if piece is None:
            raise BadInput(
                f"classifier token id {token_id} is outside the vocabulary: give an id the "
                "tokenizer has in --token-ids"
            )
        return ResolvedToken(piece, token_id, piece, "given by id")

    def _near_misses(self, text: str) -> list[str]:
        stripped = text.strip()
        candidates = [
            f"▁{stripped}", f"Ġ{stripped}", stripped, stripped.lower(), stripped.capitalize(),
        ]  # fmt: skip
        seen: list[str] = []
        for cand in candidates:
            if cand != text and self._backend.token_to_id(cand) is not None and cand not in seen:
                seen.append(cand)
        return seen[:3]


class _FastVocab:
    def __init__(self, tokenizer: Any) -> None:
        self._tok = tokenizer

    def token_to_id(self, text: str) -> int | None:
        found: int | None = self._tok.token_to_id(text)  # the exact entry (added tokens too)
        return found

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def id_to_token(self, token_id: int) -> str | None:
        token: str | None = self._tok.id_to_token(token_id)
        return token


class _TransformersVocab:
    """Fallback for tokenizers shipped only as SentencePiece/vocab files (imports transformers)."""

    def __init__(self, directory: Path) -> None:
        from transformers import AutoTokenizer

        try:
            self._tok = AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False)
        except Exception as exc:
            raise BadInput(
                f"the tokenizer in {directory} cannot be loaded ({exc.__class__.__name__}): "
                "the source must carry a tokenizer transformers can read"
            ) from exc

    def token_to_id(self, text: str) -> int | None:
        return self._tok.get_vocab().get(text)

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False))

    def id_to_token(self, token_id: int) -> str | None:
        token = self._tok.convert_ids_to_tokens(token_id)
        return token if isinstance(token, str) else None


def resolve_tokens(
    tokenizer: TokenizerFiles, tokens: tuple[str, ...] | tuple[int, ...]
) -> list[ResolvedToken]:
    """Classifier tokens (strings, or ints for vocabulary ids) → one distinct real id each."""
    resolved = [
        tokenizer.resolve_id(t) if isinstance(t, int) else tokenizer.resolve(t) for t in tokens
    ]
    ids = [r.id for r in resolved]
    if len(set(ids)) != len(ids):
        pairs = ", ".join(r.describe() for r in resolved)
        raise BadInput(f"classifier tokens share an id ({pairs}): give distinct tokens")
    return resolved


def resolve_pad_id(tokenizer: TokenizerFiles) -> int:
    """The pad id for the classifier's config: the tokenizer's pad token.

    transformers' seq-cls models pool the last non-pad token and refuse batches without one.
    """
    pad_id = tokenizer.special_token_id("pad_token")
    if pad_id is not None:
        return pad_id
    raise BadInput(
        "the tokenizer has no pad_token (tokenizer_config.json / special_tokens_map.json): "
        "add one that is not used in prompts (e.g. the eos token) to the source tokenizer"
    )


def _read_json(source: Source, name: str) -> dict[str, Any]:
    path = source.file(name)
    value = None if path is None else read_json_file(path, name)
    return value if isinstance(value, dict) else {}
