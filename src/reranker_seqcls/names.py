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
# Read (a sentence-transformers LogitScore recipe, st_recipe.py), never copied: the output gets
# its own sentence-transformers files.
ST_READ_PATTERNS = (
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "*/config.json",
)


def download_patterns(*, include_pickle: bool) -> list[str]:
    """What a conversion needs from the Hub. ``.bin`` only when no safetensors exist."""
    patterns = [
        CONFIG_FILE, *WEIGHT_PATTERNS, *TOKENIZER_PATTERNS, *LICENSE_PATTERNS, *ST_READ_PATTERNS
    ]  # fmt: skip
    if include_pickle:
        patterns += PICKLE_PATTERNS
    return patterns
