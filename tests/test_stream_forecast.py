"""The streamed run's disk forecast: the release schedule replayed from shard headers, and the
peak it implies (pure functions; the runs that measure the real peak are in
test_streamed_run.py)."""

from __future__ import annotations

import pytest

from reranker_seqcls.check.release_schedule import FeedStep, Stages, release_schedule
from reranker_seqcls.errors import BadInput
from reranker_seqcls.sizes import human_size, parse_size
from reranker_seqcls.stream.disk import forecast

STAGES = Stages(
    "embed",
    (frozenset({"a0", "b0"}), frozenset({"a1", "b1"}), frozenset({"a2"})),
    frozenset({"norm"}),
)


def test_a_layer_split_across_shards_holds_the_earlier_shard_until_the_later_arrives():
    steps = release_schedule(STAGES, [["embed", "a0"], ["b0", "a1"], ["b1", "a2", "norm"]])
    assert steps == [
        FeedStep(0, on_disk=(0,), held_after=(0,), layers_done=0),
        FeedStep(1, on_disk=(0, 1), held_after=(1,), layers_done=1),
        FeedStep(2, on_disk=(1, 2), held_after=(), layers_done=3),
    ]


def test_an_embedding_in_the_last_shard_holds_every_shard_until_the_end():
    steps = release_schedule(STAGES, [["a0", "b0"], ["a1", "b1"], ["a2", "norm", "embed"]])
    assert [s.on_disk for s in steps] == [(0,), (0, 1), (0, 1, 2)]
    assert [s.held_after for s in steps] == [(0,), (0, 1), ()]
    assert [s.layers_done for s in steps] == [0, 0, 3]


def test_a_shard_of_tensors_the_pass_does_not_use_is_released_at_once():
    steps = release_schedule(
        STAGES, [["embed", "a0", "b0"], ["lm_head"], ["a1", "b1", "a2", "norm"]]
    )
    assert steps[1] == FeedStep(1, on_disk=(1,), held_after=(), layers_done=1)


def test_forecast_is_the_worst_step_plus_small_files_twice_or_the_twin():
    steps = release_schedule(STAGES, [["embed", "a0"], ["b0", "a1"], ["b1", "a2", "norm"]])
    sizes, rewritten = [100, 300, 200], [0, 0, 150]
    plan = forecast(small=10, small_files=2, sizes=sizes, rewritten=rewritten, steps=steps,
                    keeps_outputs=False, twin=50)  # fmt: skip
    slack = 4096 * (2 * 2 + 3 + 8)
    # feeding shard 1 holds shards 0 and 1 (400), feeding shard 2 shards 1 and 2 (500); then
    # shard 1 goes before shard 2's rewrite is written (350)
    assert plan.transfer == 500 + slack
    assert plan.total == 2 * 10 + 500 + slack
    big_twin = forecast(small=10, small_files=2, sizes=sizes, rewritten=rewritten, steps=steps,
                        keeps_outputs=False, twin=10**6)  # fmt: skip
    assert big_twin.total == 2 * 10 + 10**6
    keep_all = [FeedStep(k, tuple(range(k + 1)), tuple(range(k + 1)), 0) for k in range(3)]
    whole = forecast(small=10, small_files=2, sizes=sizes, rewritten=rewritten, steps=keep_all,
                     keeps_outputs=True, twin=0)  # fmt: skip
    assert whole.transfer == 600 + 150 + slack


@pytest.mark.parametrize(
    ("text", "value"),
    [("10GB", 10**10), ("1.5GB", 1_500_000_000), ("512MiB", 512 * 2**20), ("4096", 4096),
     (" 2 kb ", 2000), ("1TB", 10**12)],
)  # fmt: skip
def test_sizes_parse(text, value):
    assert parse_size(text, "--max-disk") == value


@pytest.mark.parametrize("text", ["lots", "-1GB", "10 GBs", "", "1e9"])
def test_a_bad_size_is_a_one_line_error_naming_the_option(text):
    with pytest.raises(BadInput, match=r"^--max-disk .* is not a size: write it like 1\.5GB"):
        parse_size(text, "--max-disk")


def test_sizes_print_in_the_unit_a_reader_expects():
    assert [human_size(n) for n in (512, 365_000, 2_200_000, 1.5e9)] == [
        "1 kB", "365 kB", "2.2 MB", "1.50 GB",
    ]  # fmt: skip
