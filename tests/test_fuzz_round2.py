"""Issue 20: property-based fuzzing of what round two bounds: configs (layer counts, sizes, head
counts, rope types) through the plan and the check's model proofs, sentence-transformers files
through the recipe reader, and chat templates through the bounded renderer.

Each generated case must end in a result or a one-line :class:`BadInput` (exit 2), never another
exception (exit 4), within a time bound; templates also within the output bound. Profiles as in
tests/test_fuzz_sources.py (``HYPOTHESIS_PROFILE``: ``ci`` or ``deep``, ten times the examples).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reranker_seqcls.errors import BadInput
from tests.test_families import ST_TEMPLATE, _set_st_files, st_saved  # noqa: F401 (fixture)
from tests.test_fuzz_sources import PROFILE

SCALE = 10 if PROFILE == "deep" else 1


def fuzz(examples: int) -> Any:
    """The ci profile's count (ten times in the deep profile), fixtures reused across cases."""
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


# --------------------------------------------------------------------------- configs

NUMBERS = st.one_of(
    st.integers(-4, 8),
    st.sampled_from([16, 32, 64, 128, 705, 2**14, 2**16, 2**20, 2**31, 2**40, 10**30]),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.none(),
    st.lists(st.integers(0, 4), max_size=2),
)
SHAPE_KEYS = [
    "num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim",
    "intermediate_size", "max_position_embeddings", "vocab_size",
]  # fmt: skip
ROPE = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "rope_type": st.sampled_from(
                [
                    "default",
                    "linear",
                    "dynamic",
                    "yarn",
                    "llama3",
                    "longrope",
                    "hyperbolic",
                    "",
                    "YARN",
                ]
            ),
            "factor": st.one_of(st.floats(-2, 64), st.text(max_size=3)),
        },
    ),
    st.lists(st.integers(), max_size=2),
    st.text(max_size=5),
)


@pytest.fixture(scope="module")
def config_work(tiny_model, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("fuzz-configs") / "source"
    shutil.copytree(tiny_model("qwen3", tied=False, num_shards=2), work)
    return work


@fuzz(60)
@given(
    changes=st.dictionaries(st.sampled_from(SHAPE_KEYS), NUMBERS, max_size=3),
    layers=st.one_of(st.none(), st.integers(0, 5), st.sampled_from([20_000, 10**6])),
    rope=ROPE,
)
def test_fuzz_configs_are_proven_or_refused_in_one_line(config_work, changes, layers, rope):
    """The plan (convert's and the streamed run's) and the check's proofs from the headers
    (layer count, shapes, meta-built buffers, drivable architecture) accept a config or
    refuse it with BadInput; nothing else escapes, and nothing takes long."""
    from reranker_seqcls.check.layerwise import LayerwiseScorer, LayerwiseUnsupported
    from reranker_seqcls.check.streamed import prove_source
    from reranker_seqcls.convert.plan import plan_conversion
    from reranker_seqcls.recipes.presets import PRESETS

    original = json.loads((config_work / "config.json").read_text())
    config = {**original, **changes}
    if layers is not None:
        config["num_hidden_layers"] = layers
    if rope is not None:
        config["rope_scaling"] = rope
    (config_work / "config.json").write_text(json.dumps(config))
    started = time.monotonic()
    try:
        plan_conversion(config_work, PRESETS["qwen3-reranker"])
        headers = prove_source(config_work, config)
        scorer = LayerwiseScorer(config, [[1, 2, 3]], pad_id=0)
        scorer.prove_shapes(headers)
    except LayerwiseUnsupported:
        pass
    except BadInput as exc:
        assert str(exc), exc  # the CLI prints it as one line (console.py)
    finally:
        (config_work / "config.json").write_text(json.dumps(original))
    assert time.monotonic() - started < 30


# --------------------------------------------------------------------------- ST files

JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 2**41), st.text(max_size=6), st.floats(-1, 1)
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
ST_FILES = ("sentence_bert_config.json", "1_LogitScore/config.json", "modules.json",
            "config_sentence_transformers.json")  # fmt: skip
ST_KEYS = {
    "sentence_bert_config.json": ["modality_config", "processing_kwargs", "transformer_task"],
    "1_LogitScore/config.json": ["true_token_id", "false_token_id"],
    "modules.json": [],
    "config_sentence_transformers.json": ["activation_fn"],
}


@pytest.fixture(scope="module")
def st_work(st_saved, tmp_path_factory) -> Path:  # noqa: F811
    from transformers import AutoTokenizer

    work = tmp_path_factory.mktemp("fuzz-st") / "source"
    shutil.copytree(st_saved, work)
    yes, no = AutoTokenizer.from_pretrained(work).convert_tokens_to_ids(["yes", "no"])
    _set_st_files(work, yes, no, "torch.nn.modules.activation.Sigmoid")
    (work / "chat_template.jinja").write_text(ST_TEMPLATE)
    return work


@fuzz(200)
@given(data=st.data())
def test_fuzz_sentence_transformers_files_give_a_recipe_or_one_line(st_work, data):
    from reranker_seqcls.recipes.sentence_transformers import st_recipe

    name = data.draw(st.sampled_from(ST_FILES))
    path = st_work / name
    original = path.read_bytes()
    loaded: Any = json.loads(original)
    if ST_KEYS[name] and isinstance(loaded, dict) and data.draw(st.booleans()):
        loaded[data.draw(st.sampled_from(ST_KEYS[name]))] = data.draw(JSON_VALUE)
        if name == "sentence_bert_config.json" and data.draw(st.booleans()):
            loaded["modality_config"] = {"message": data.draw(JSON_VALUE)}
    else:
        loaded = data.draw(JSON_VALUE)
    path.write_text(json.dumps(loaded))
    try:
        st_recipe(st_work)
    except BadInput as exc:
        assert str(exc), exc  # the CLI prints it as one line (console.py)
    finally:
        path.write_bytes(original)


# --------------------------------------------------------------------------- templates

PIECES = st.sampled_from([
    "{{ messages[0].content }}", "{{ messages[1]['content'] }}", "{{ 'x' * N }}",
    "{{ 'ab'|center(N) }}", "{{ 'x'|indent(N) }}", "{{ ('x' * 100)|replace('x', 'yy' * N) }}",
    "{{ '%0Nd'|format(1) }}", "{{ 'x'.ljust(N) }}", "{{ N ** N }}", "{{ [1] * N }}",
    "{% for i in range(N) %}{{ i }}{% endfor %}",
    "{% for i in range(N) %}{% for j in range(N) %}{% endfor %}{% endfor %}",
    "{% set ns = namespace(s='xy') %}{% for i in range(N) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s|length }}",
    "{% set a = 'x' * N %}{% set b = a ~ a ~ a ~ a %}{{ b|length }}",
    "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(N) }}",
    "{{ (messages|map(attribute='content')|list|join(' ' * N)) }}",
    "{{ raise_exception('no') }}", "{{ undefined_thing.attr }}", "{% if %}",
    "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}",
])  # fmt: skip
SIZES = st.sampled_from([0, 1, 7, 100, 9999, 99999, 10**6, 10**9])


@fuzz(150)
@given(pieces=st.lists(st.tuples(PIECES, SIZES), min_size=1, max_size=3))
def test_fuzz_templates_render_bounded_or_one_line(pieces, monkeypatch):
    """Any template renders within the time bound (shortened here) and the output bound, or
    is refused with BadInput; memory stays bounded because no single value passes the bound."""
    from reranker_seqcls.recipes import bounded_jinja
    from reranker_seqcls.recipes.render import render_scoring_prompt

    monkeypatch.setattr(bounded_jinja, "MAX_RENDER_SECONDS", 0.3)
    template = "".join(piece.replace("N", str(size)) for piece, size in pieces)
    started = time.monotonic()
    try:
        text = render_scoring_prompt(template, "q?", "d.")
    except BadInput as exc:
        assert str(exc), exc  # the CLI prints it as one line (console.py)
    else:
        assert len(text) <= bounded_jinja.MAX_RENDER_CHARS
    assert time.monotonic() - started < 5
