"""Which files of a source checkpoint a conversion reads, copies or drops.

One list serves both the Hub download (``allow_patterns``) and the copy into the output, so the
two cannot drift apart.
"""

from __future__ import annotations

CONFIG_FILE = "config.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
PROVENANCE_FILE = "reranker_seqcls.json"

WEIGHT_PATTERNS = ("*.safetensors", "model.safetensors.index.json")
PICKLE_PATTERNS = ("*.bin", "pytorch_model.bin.index.json")

# Copied byte-for-byte: re-saving a tokenizer through transformers changes class names between
# major versions and breaks older readers.
TOKENIZER_PATTERNS = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "*.tiktoken",
    "chat_template.jinja",
    "chat_template.json",
    "additional_chat_templates/*",
)
LICENSE_PATTERNS = ("LICENSE*", "LICENCE*", "NOTICE*", "COPYING*", "USE_POLICY*", "license*")


def download_patterns(*, include_pickle: bool) -> list[str]:
    """What a conversion needs from the Hub. ``.bin`` only when no safetensors exist."""
    patterns = [CONFIG_FILE, *WEIGHT_PATTERNS, *TOKENIZER_PATTERNS, *LICENSE_PATTERNS]
    if include_pickle:
        patterns += PICKLE_PATTERNS
    return patterns
