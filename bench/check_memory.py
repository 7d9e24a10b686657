"""Time and memory of one parity check of a synthetic checkpoint: full model, layerwise, streamed.

    python bench/check_memory.py build 0.6b DIR [--shard-mb 100]   # source + converted
    /usr/bin/time -v python bench/check_memory.py full DIR         # today's check_parity
    /usr/bin/time -v python bench/check_memory.py layerwise DIR    # the real-weights half only
    /usr/bin/time -v python bench/check_memory.py streamed DIR     # layerwise + twin consumers

Each run prints one JSON line: mode, wall seconds, verdict, the layerwise path's max |Δ logit|,
and where the consumers ran. Run each mode in its own process so ``/usr/bin/time -v`` gives its
peak RSS alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import SHAPES, build_checkpoint


def _inputs(directory: Path) -> tuple[Path, Path, object, list, list[int]]:
    from reranker_seqcls.recipes.presets import PRESETS
    from reranker_seqcls.steps import load_check_pairs, resolve_token_ids

    source, converted = directory / "source", directory / "converted"
    recipe = PRESETS["qwen3-reranker"]
    return (
        source,
        converted,
        recipe,
        load_check_pairs(recipe, None),
        resolve_token_ids(source, recipe),
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("build", "full", "layerwise", "streamed"))
    parser.add_argument("shape_or_dir")
    parser.add_argument("dir", nargs="?", type=Path)
    parser.add_argument("--shard-mb", type=int, default=100)
    args = parser.parse_args(argv)
    if args.mode == "build":
        from reranker_seqcls.convert.converter import convert
        from reranker_seqcls.recipes.presets import PRESETS

        shape = SHAPES[args.shape_or_dir]
        build_checkpoint(shape, args.dir / "source", max_shard_bytes=args.shard_mb * 10**6)
        convert(args.dir / "source", args.dir / "converted", PRESETS["qwen3-reranker"])
        return 0
    directory = Path(args.shape_or_dir)
    source, converted, recipe, pairs, token_ids = _inputs(directory)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    started = time.perf_counter()
    result: dict[str, object] = {"mode": args.mode}
    if args.mode == "full":
        from reranker_seqcls.check.parity import check_parity

        report = check_parity(source, converted, recipe, pairs, token_ids=token_ids, log=log)
    elif args.mode == "layerwise":
        from reranker_seqcls.check.streamed import StreamedCheck, source_shards

        check = StreamedCheck(source, converted, recipe, pairs, token_ids=token_ids, log=log)
        for shard in source_shards(source):
            check.feed_source(shard)
        for shard in source_shards(converted):
            check.feed_converted(shard)
        report = check.report()
        result["peak_weight_bytes"] = check.scorer.ledger.peak
        result["largest_layer_bytes"] = check.scorer.largest_layer_bytes()
        result["embedding_rows"] = check.scorer.ledger.embedding_rows
    else:
        from reranker_seqcls.check.streamed import streamed_check

        report = streamed_check(source, converted, recipe, pairs, token_ids=token_ids, log=log)
    result |= {
        "wall_s": round(time.perf_counter() - started, 1),
        "verdict": report.verdict,
        "reasons": report.reasons,
        "max_abs_logit": {k: m.max_abs_logit for k, m in report.metrics.items()},
        "consumers_proven_on": report.consumers_proven_on,
        "backbone_hash": report.backbone_hash,
        "scores": [row.get("converted_layerwise") or row.get("converted_batched")
                   for row in report.scores],
    }  # fmt: skip
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
