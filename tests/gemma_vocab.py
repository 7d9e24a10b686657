"""A real Gemma-family vocabulary for the test fixtures: Gemma 4's SentencePiece-style BPE.

llama.cpp ships ``models/ggml-vocab-gemma-4.gguf`` (262,144 pieces, 514,906 merges, byte
fallback) with ``.inp``/``.out`` files of expected tokenizations; ``make llama-src`` extracts it
from the llama-cpp-python sdist into ``.cache/``. This module reads the GGUF with llama.cpp's own
``gguf-py`` (vendored in the same sdist; pure Python) and writes a transformers
``tokenizer.json``: spaces become ``▁`` (the normalizer), BPE runs over newline-free runs and
newline runs apart (llama.cpp's ``LLAMA_VOCAB_PRE_TYPE_GEMMA4`` split ``[^\\n]+|[\\n]+``), byte
fallback for unknown characters, ``<bos>`` first when special tokens are added.

The vocabulary is the algorithm of the Gemma family (SentencePiece pieces with ``▁``, no
byte-level alphabet), not the exact Gemma-1 vocabulary bge-reranker-v2-gemma ships (256,000
pieces): piece ids differ, merge behaviour at the prompt's ``"\\n"`` boundaries is of the same
kind. ``verify`` checks the built tokenizer against every ``.inp``/``.out`` case.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LLAMA_CPP = ROOT / ".cache" / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp"
GGUF = LLAMA_CPP / "models" / "ggml-vocab-gemma-4.gguf"
_CONTROL, _USER_DEFINED, _BYTE = 3, 4, 6  # llama.cpp token types


def _read_gguf(path: Path) -> dict[str, Any]:
    sys.path.insert(0, str(LLAMA_CPP / "gguf-py"))
    try:
        from gguf import GGUFReader
    finally:
        sys.path.pop(0)
    reader = GGUFReader(str(path))
    keys = ("tokens", "token_type", "merges", "bos_token_id", "eos_token_id",
            "unknown_token_id", "padding_token_id")  # fmt: skip
    return {key: reader.fields[f"tokenizer.ggml.{key}"].contents() for key in keys}


def build_gemma_tokenizer(out_dir: Path) -> Path:
    """Write ``tokenizer.json`` and ``tokenizer_config.json`` of the Gemma 4 vocabulary into
    ``out_dir`` (needs ``make llama-src``)."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    if not GGUF.is_file():
        raise FileNotFoundError(f"{GGUF} is missing: run `make llama-src`")
    data = _read_gguf(GGUF)
    tokens: list[str] = data["tokens"]
    vocab = {token: index for index, token in enumerate(tokens)}
    merges = [tuple(m.split(" ", 1)) for m in data["merges"]]
    unk = tokens[data["unknown_token_id"]]
    model = models.BPE(vocab=vocab, merges=merges, unk_token=unk, byte_fallback=True)
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[^\n]+|[\n]+"), behavior="isolated")
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    special = [
        AddedToken(tokens[i], special=True, normalized=False)
        for i, kind in enumerate(data["token_type"])
        if kind == _CONTROL
    ]
    tokenizer.add_special_tokens(special)
    bos = tokens[data["bos_token_id"]]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, data["bos_token_id"])]
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    config = {
        "tokenizer_class": "GemmaTokenizerFast",
        "bos_token": bos,
        "eos_token": tokens[data["eos_token_id"]],
        "unk_token": unk,
        "pad_token": tokens[data["padding_token_id"]],
        "add_bos_token": True,
        "add_eos_token": False,
        "model_max_length": 1000000000000000019884624838656,
        "padding_side": "left",
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return out_dir


def cases() -> list[tuple[str, list[int]]]:
    """llama.cpp's expected tokenizations: (text, ids without special tokens)."""
    inputs = GGUF.with_suffix(".gguf.inp").read_text("utf-8").split("\n__ggml_vocab_test__\n")
    outputs = GGUF.with_suffix(".gguf.out").read_text("utf-8").split("\n")[: len(inputs)]
    return [
        (text, [int(i) for i in line.split()]) for text, line in zip(inputs, outputs, strict=True)
    ]
