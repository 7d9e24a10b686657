"""Every file name the tool reads or writes, and which files of a source a conversion reads,
copies or drops.

One list serves both the Hub download (``allow_patterns``) and the copy into the output, so the
two cannot drift apart.
"""

from __future__ import annotations

# A transformers checkpoint (source and output).
CONFIG_FILE = "config.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
TOKENIZER_FILE = "tokenizer.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
INDEX_FILE = "model.safetensors.index.json"
SINGLE_WEIGHTS_FILE = "model.safetensors"
PICKLE_INDEX_FILE = "pytorch_model.bin.index.json"
README_FILE = "README.md"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
# sentence-transformers' files (read from a source, written for the output).
ST_MODULES_FILE = "modules.json"
ST_MODULE_CONFIG_FILE = "sentence_bert_config.json"
ST_MODEL_CONFIG_FILE = "config_sentence_transformers.json"

# What a conversion writes beside the source's files.
PROVENANCE_FILE = "reranker_seqcls.json"
PARITY_REPORT_FILE = "parity_report.json"
SCORE_SHARD_FILE = "score.safetensors"
# transformers loads a lone model.safetensors and ignores the index beside it, so a single-file
# source is placed under a sharded name once score.safetensors joins it.
SINGLE_WEIGHTS_RENAMED = "model-00001-of-00001.safetensors"

WEIGHT_PATTERNS = ("*.safetensors", INDEX_FILE)
PICKLE_PATTERNS = ("*.bin", PICKLE_INDEX_FILE)

# Copied byte-for-byte: re-saving a tokenizer through transformers changes class names between
# major versions and breaks older readers.
TOKENIZER_PATTERNS = (
    TOKENIZER_FILE,
    TOKENIZER_CONFIG_FILE,
    SPECIAL_TOKENS_MAP_FILE,
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "*.tiktoken",
    CHAT_TEMPLATE_FILE,
    "chat_template.json",
    "additional_chat_templates/*",
)
LICENSE_PATTERNS = ("LICENSE*", "LICENCE*", "NOTICE*", "COPYING*", "USE_POLICY*", "license*")
# Read (a sentence-transformers LogitScore recipe, recipes/sentence_transformers.py), never
# copied: the output gets its own sentence-transformers files.
ST_READ_PATTERNS = (
    ST_MODULES_FILE,
    ST_MODULE_CONFIG_FILE,
    ST_MODEL_CONFIG_FILE,
    f"*/{CONFIG_FILE}",
)


def download_patterns(*, include_pickle: bool) -> list[str]:
    """What a conversion needs from the Hub. ``.bin`` only when no safetensors exist."""
    patterns = [
        CONFIG_FILE, *WEIGHT_PATTERNS, *TOKENIZER_PATTERNS, *LICENSE_PATTERNS, *ST_READ_PATTERNS
    ]  # fmt: skip
    if include_pickle:
        patterns += PICKLE_PATTERNS
    return patterns
