"""One tokenizer load per distinct tokenizer (``tokenizer_loads.py``), for transformers and for
``tokenizers``: a byte-identical copy (the twin's, the converted directory's) shares its
original's object, a changed file or another ``model_type`` is loaded again, and only the last
two are kept. Tiny tokenizers: about a second."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from reranker_seqcls import tokenizer_loads
from reranker_seqcls.tokenizer_loads import auto_tokenizer, fast_tokenizer
from testkit.tiny import build_tokenizer


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_a_copy_shares_the_load_and_a_change_is_loaded_again(tmp_path: Path) -> None:
    original = build_tokenizer("qwen3", tmp_path / "original")
    (original / "config.json").write_text(json.dumps({"model_type": "qwen3"}))
    twin = _copy(original, tmp_path / "twin")
    (twin / "README.md").write_text("not a tokenizer file")
    first = auto_tokenizer(original)
    assert auto_tokenizer(twin) is first  # the twin's byte-identical copy
    assert auto_tokenizer(str(original)) is first

    changed = _copy(original, tmp_path / "changed")
    config = json.loads((changed / "tokenizer_config.json").read_text())
    config["model_max_length"] = 77
    (changed / "tokenizer_config.json").write_text(json.dumps(config))
    other = auto_tokenizer(changed)
    assert other is not first and other.model_max_length == 77

    retyped = _copy(original, tmp_path / "retyped")
    (retyped / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    assert auto_tokenizer(retyped) is not first


def test_only_the_last_two_are_kept(tmp_path: Path) -> None:
    dirs = []
    for i in range(3):
        directory = build_tokenizer("qwen3", tmp_path / str(i))
        config = json.loads((directory / "tokenizer_config.json").read_text())
        config["model_max_length"] = 100 + i
        (directory / "tokenizer_config.json").write_text(json.dumps(config))
        dirs.append(directory)
    first = auto_tokenizer(dirs[0])
    second = auto_tokenizer(dirs[1])
    assert auto_tokenizer(dirs[0]) is first  # a use moves it to the end
    auto_tokenizer(dirs[2])  # drops the least recently used: the second
    assert len(tokenizer_loads.AUTO.loaded) == tokenizer_loads.KEEP
    assert auto_tokenizer(dirs[0]) is first
    assert auto_tokenizer(dirs[1]) is not second


def test_a_tokenizer_file_linked_out_of_its_directory_is_refused(tmp_path: Path) -> None:
    """The key reads the files as every source file is read (``source.Source``): a symlink to
    a file outside the directory is refused in one line, not hashed or loaded."""
    import pytest

    from reranker_seqcls.errors import BadInput

    outside = build_tokenizer("qwen3", tmp_path / "outside")
    inside = tmp_path / "inside"
    inside.mkdir()
    shutil.copyfile(outside / "tokenizer_config.json", inside / "tokenizer_config.json")
    (inside / "tokenizer.json").symlink_to(outside / "tokenizer.json")
    with pytest.raises(BadInput, match="symlink to a file outside"):
        auto_tokenizer(inside)


def test_the_tokenizer_json_of_a_conversion_is_parsed_once(tmp_path: Path) -> None:
    """The conversion plan's token lookups (``convert/tokens.py``) and the scoring length
    (``convert/lengths.py``) read the source's and the converted directory's ``tokenizer.json``,
    the same bytes: one ``Tokenizer.from_file`` between them. A changed file is parsed again,
    and a file that does not parse is refused in one line and not kept."""
    import pytest

    from reranker_seqcls.convert.lengths import checkpoint_scoring_length
    from reranker_seqcls.convert.tokens import TokenizerFiles
    from reranker_seqcls.errors import BadInput
    from reranker_seqcls.recipes.presets import PRESETS

    source = build_tokenizer("qwen3", tmp_path / "source")
    converted = _copy(source, tmp_path / "converted")
    tokenizer_loads.FAST.loaded.clear()
    yes = TokenizerFiles(source).resolve("yes")
    config = {"max_position_embeddings": 40960}
    assert checkpoint_scoring_length(PRESETS["qwen3-reranker"], config, converted) == 8192
    assert len(tokenizer_loads.FAST.loaded) == 1
    shared = fast_tokenizer(converted / "tokenizer.json")
    assert shared is fast_tokenizer(source / "tokenizer.json")
    assert shared.token_to_id("yes") == yes.id

    changed = _copy(source, tmp_path / "changed")
    loaded = json.loads((changed / "tokenizer.json").read_text())
    loaded["added_tokens"].append(
        {"id": 705, "content": "<|bench|>", "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": True}
    )  # fmt: skip
    (changed / "tokenizer.json").write_text(json.dumps(loaded))
    other = fast_tokenizer(changed / "tokenizer.json")
    assert other is not shared and other.token_to_id("<|bench|>") == 705
    assert shared.token_to_id("<|bench|>") is None

    broken = _copy(source, tmp_path / "broken")
    (broken / "tokenizer.json").write_text('{"model": 1}')
    with pytest.raises(BadInput, match=r"tokenizer\.json cannot be loaded"):
        TokenizerFiles(broken)
    assert len(tokenizer_loads.FAST.loaded) == 2  # the failed parse was not kept
