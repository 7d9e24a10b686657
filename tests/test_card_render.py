"""The model card and the ``convert`` README render byte-identically for fixed inputs.

The expected files under ``tests/card_fixtures/`` were rendered by the f-string card of before
the template (``hub/card_template.md``) replaced it; a change to the card's text is a change to
those files, made on purpose and reviewed as such.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import ModelCard

from reranker_seqcls.hub.card import render_card, render_local_readme

FIXTURES = Path(__file__).parent / "card_fixtures"

_QWEN3_PROVENANCE: dict[str, Any] = {
    "tool": {"name": "reranker-seqcls", "version": "0.1.0"},
    "source": {
        "name": "Qwen/Qwen3-Reranker-0.6B",
        "repo_id": "Qwen/Qwen3-Reranker-0.6B",
        "revision": None,
        "commit_sha": "6e9e69830b95c52b5fd889b7690dda3329508de3",
    },
    "recipe": {"name": "qwen3-reranker", "method": "from_2_way_softmax"},
    "classifier": {
        "tokens": ["no", "yes"],
        "token_ids": [2152, 9693],
        "pieces": ["no", "yes"],
        "method": "from_2_way_softmax",
        "num_labels": 1,
        "score_from": "lm_head",
        "dtype": "F32",
        "scale": 1.0,
        "source_logit_factor": 1.0,
        "served_score": "sigmoid(score logit) = softmax(l(no), l(yes))[yes]",
        "score_formula": "softmax(l(no), l(yes))[yes]",
    },
    "architecture": "Qwen3ForSequenceClassification",
    "pad_token_id": 151643,
}

_LOCAL_PROVENANCE: dict[str, Any] = {
    "tool": {"name": "reranker-seqcls", "version": "0.1.0"},
    "source": {"name": "my-reranker", "repo_id": None, "revision": None, "commit_sha": None},
    "recipe": {"name": "custom", "method": "from_classifier_tokens"},
    "classifier": {
        "tokens": ["Yes"],
        "token_ids": [7],
        "pieces": ["Yes"],
        "method": "from_classifier_tokens",
        "num_labels": 1,
        "score_from": "lm_head",
        "dtype": "BF16",
        "scale": 0.2,
        "source_logit_factor": 1.0,
        "served_score": "the raw score logit",
        "score_formula": None,
    },
    "architecture": "LlamaForSequenceClassification",
    "pad_token_id": 0,
}

_PARITY_MARKDOWN = (
    "| consumer | max abs diff | Spearman |\n|---|---|---|\n| transformers | 1.2e-06 | 1.0000 |"
)

_GAP: dict[str, Any] = {
    "merges": {"?\n": 3, ".\n": 5, " \n": 1, "!\n": 2, ":\n": 1},
    "pairs": [0, 3, 4],
    "num_pairs": 12,
    "max_abs_logit": 0.0421,
    "max_abs_prob": 0.00731,
    "consumer_max_abs_prob": 2.4e-07,
}


def _qwen3_card() -> str:
    return render_card(
        target_repo="me/Qwen3-Reranker-0.6B-seq-cls",
        provenance=_QWEN3_PROVENANCE,
        parity_markdown=_PARITY_MARKDOWN,
        tokenization_gap=_GAP,
        license_="apache-2.0",
        license_extra={},
        template_file="chat_template.jinja",
    )


def _local_card() -> str:
    return render_card(
        target_repo="me/my-reranker-seq-cls",
        provenance=_LOCAL_PROVENANCE,
        parity_markdown=None,
        license_="other",
        license_extra={"license_name": "my-license", "license_link": "LICENSE"},
        template_file=None,
    )


RENDERED = {
    "card_qwen3.md": _qwen3_card,
    "card_local.md": _local_card,
    "readme_qwen3.md": lambda: render_local_readme(
        Path("converted/qwen3-seq-cls"), _QWEN3_PROVENANCE, "chat_template.jinja"
    ),
    "readme_local.md": lambda: render_local_readme(
        Path("converted/my-reranker-seq-cls"), _LOCAL_PROVENANCE, None
    ),
}


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_rendering_is_byte_identical_to_the_fixture(name: str) -> None:
    expected = (FIXTURES / name).read_bytes().decode("utf-8")
    assert RENDERED[name]() == expected


def test_card_metadata_reads_back_through_the_hub_parser() -> None:
    data = ModelCard(_qwen3_card()).data.to_dict()
    assert data["base_model"] == "Qwen/Qwen3-Reranker-0.6B"
    assert data["pipeline_tag"] == "text-ranking" and data["library_name"] == "transformers"
    assert data["license"] == "apache-2.0"
    local = ModelCard(_local_card()).data.to_dict()
    assert "base_model" not in local
    assert (local["license"], local["license_name"]) == ("other", "my-license")
