"""The conversion's stages used directly: a frozen plan made from headers, output shards written
one at a time from wherever the source shard lies, the provenance record read back strictly."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from reranker_seqcls.convert.atomic import atomic_directory
from reranker_seqcls.convert.converter import convert
from reranker_seqcls.convert.plan import ShardAction, plan_conversion
from reranker_seqcls.convert.write import (
    score_weight,
    write_output_index,
    write_output_shard,
    write_score_shard,
)
from reranker_seqcls.errors import BadInput
from reranker_seqcls.names import INDEX_FILE, PROVENANCE_FILE, SCORE_SHARD_FILE
from reranker_seqcls.provenance import Identity, Provenance
from reranker_seqcls.recipes.presets import PRESETS
from reranker_seqcls.safetensors_io.place import Placement
from tests.conftest import run_cli

QWEN3 = PRESETS["qwen3-reranker"]


def _weight_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.glob("*.safetensors*")}


def test_plan_is_frozen_and_decides_every_shard(tiny_model, tmp_path):
    source = tiny_model("qwen3", tied=False, num_shards=3)
    plan = plan_conversion(source, QWEN3)
    weights = plan.planned_weights
    assert weights.untied_head and weights.head_name == "lm_head.weight"
    actions = {s.name: s.action for s in weights.shards}
    index = json.loads((source / INDEX_FILE).read_text())
    head_shard = index["weight_map"]["lm_head.weight"]
    assert actions.pop(head_shard) is ShardAction.REWRITE
    assert set(actions.values()) == {ShardAction.PLACE} and len(actions) == 2
    assert weights.score_shape == (1, plan.config["hidden_size"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.scale = 2.0  # type: ignore[misc]
    # The planned index is the one a conversion writes: nothing in it is decided while writing.
    out = convert(source, tmp_path / "out", QWEN3, log=lambda _: None).output
    written = json.loads((out / INDEX_FILE).read_text())
    assert written == {
        "metadata": {"total_size": weights.total_size()},
        "weight_map": dict(sorted(weights.weight_map().items())),
    }


def test_output_shards_written_one_at_a_time_match_convert(tiny_model, tmp_path):
    """A caller that has each source shard somewhere else (a streamed download) writes the same
    OUTPUT weights, shard by shard, as ``convert``."""
    source = tiny_model("qwen3", tied=False, num_shards=3)
    expected = _weight_files(convert(source, tmp_path / "whole", QWEN3, log=lambda _: None).output)
    plan = plan_conversion(source, QWEN3)
    fetched = tmp_path / "fetched"
    out = tmp_path / "streamed"
    fetched.mkdir()
    out.mkdir()
    placed = {}
    score = None
    for shard in plan.planned_weights.shards:  # one source shard on disk at a time
        downloaded = fetched / shard.source_name
        shutil.copyfile(source / shard.source_name, downloaded)
        placed[shard.name] = write_output_shard(plan, shard, downloaded, out)
        if shard.source_name == plan.planned_weights.head_shard:
            score = score_weight(plan, downloaded)
        downloaded.unlink()
    assert list(placed.values()).count(Placement.REWRITTEN) == 1 and score is not None
    assert write_score_shard(plan, out, score) is Placement.WRITTEN
    write_output_index(plan, out)
    assert _weight_files(out) == expected
    assert set(expected) == {*placed, SCORE_SHARD_FILE, INDEX_FILE}


def test_write_output_shard_refuses_a_file_unlike_the_planned_header(tiny_model, tmp_path):
    source = tiny_model("qwen3", tied=False, num_shards=2)
    plan = plan_conversion(source, QWEN3)
    head = next(s for s in plan.planned_weights.shards if s.action is ShardAction.REWRITE)
    other = next(s for s in plan.planned_weights.shards if s is not head)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BadInput, match="differs from the header the conversion was planned from"):
        write_output_shard(plan, head, source / other.source_name, out)
    assert not any(out.iterdir())


def test_atomic_directory_leaves_nothing_on_error(tmp_path):
    output = tmp_path / "new" / "parents" / "out"
    with pytest.raises(RuntimeError, match="stop"), atomic_directory(output) as tmp:
        (tmp / "half-written").write_text("x")
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(output) as tmp:
        (tmp / "done").write_text("x")
    assert [p.name for p in output.iterdir()] == ["done"]
    assert sorted(p.name for p in output.parent.iterdir()) == ["out"]


def test_provenance_round_trips_byte_for_byte(tiny_model, tmp_path):
    result = convert(tiny_model("qwen3"), tmp_path / "out", QWEN3, log=lambda _: None)
    path = result.output / PROVENANCE_FILE
    record = Provenance.read(path)
    assert record == result.provenance
    assert json.dumps(record.to_json(), indent=2) + "\n" == path.read_text()
    assert record.identity() == Identity.of_recorded(json.loads(path.read_text()))
    assert record.classifier.token_ids == tuple(t.id for t in result.plan.tokens)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda r: r.pop("classifier"), "'classifier' is not an object"),
        (lambda r: r["classifier"].update(token_ids=["1"]), "'classifier.token_ids'"),
        (lambda r: r["classifier"].update(token_ids=[1]), "token_ids and pieces do not match"),
        (lambda r: r["classifier"].update(scale=True), "'classifier.scale' is missing"),
        (lambda r: r["recipe"].pop("name"), "'recipe.name' is missing"),
        (lambda r: r["tool"].update(version=3), "'tool.version' is missing"),
        (lambda r: r["source"].update(name=None), "'source' is not a map of names"),
        (lambda r: r.update(pad_token_id=False), "'pad_token_id' is missing or not an integer"),
    ],
)
def test_provenance_read_names_the_file_and_the_field(tiny_model, tmp_path, edit, problem):
    result = convert(tiny_model("qwen3"), tmp_path / "out", QWEN3, log=lambda _: None)
    path = result.output / PROVENANCE_FILE
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))
    with pytest.raises(BadInput) as raised:
        Provenance.read(path)
    message = str(raised.value)
    assert message.startswith(f"{path} is no provenance record of reranker-seqcls (")
    assert problem in message and message.endswith("convert the checkpoint again")


def test_identity_of_a_partial_target_record_is_lenient():
    """A target's record is Hub text: any shape only makes the target stale, never an error."""
    assert Identity.of_recorded({"source": ["a list"], "tool": "x"}) == Identity(
        None, None, None, None
    )
    assert Identity.of_recorded({"tool": {"version": "0.1"}, "recipe": {"name": "n"}}) == (
        Identity("0.1", None, None, {"name": "n"})
    )


def test_check_with_an_unreadable_provenance_is_one_clean_error(tiny_model, tmp_path):
    """``check`` reads the recorded recipe: a record that is no JSON is exit 2, one line."""
    source = tmp_path / "Qwen3-Reranker-tiny"
    shutil.copytree(tiny_model("qwen3"), source)
    out = convert(source, tmp_path / "out", QWEN3, log=lambda _: None).output
    (out / PROVENANCE_FILE).write_text("{not json")
    result = run_cli("check", source, out)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "reranker_seqcls.json is not readable JSON" in lines[0], lines
    assert "Traceback" not in result.stderr
