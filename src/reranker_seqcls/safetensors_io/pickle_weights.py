"""Pickle (``.bin``) checkpoints turned into safetensors shards, only when the user allows it.

``torch.load(weights_only=True)`` refuses pickles that would construct arbitrary objects. This is
the one place the conversion imports torch, and it holds one ``.bin`` shard in memory at a time.
"""

from __future__ import annotations

from pathlib import Path

from reranker_seqcls.errors import BadInput
from reranker_seqcls.log import Log


def stage_pickle_weights(files: list[Path], staging: Path, *, log: Log) -> None:
    import pickle

    import torch
    from safetensors.torch import save_file

    for path in files:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
            first = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
            raise BadInput(
                f"{path.name} is not a plain weights pickle ({first}): convert it to safetensors "
                "with its authors' tools"
            ) from exc
        if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()
        ):
            raise BadInput(f"{path.name} does not hold a state dict of tensors")
        seen: set[int] = set()
        tensors = {}
        for name, tensor in state.items():
            # save_file refuses tensors sharing storage (tied weights saved twice): clone repeats
            ptr = tensor.untyped_storage().data_ptr()
            tensors[name] = tensor.clone().contiguous() if ptr in seen else tensor.contiguous()
            seen.add(ptr)
        name = path.name.replace("pytorch_model", "model").removesuffix(".bin") + ".safetensors"
        save_file(tensors, str(staging / name), metadata={"format": "pt"})
        log(f"{path.name}: read with weights_only=True, staged as {name}")
        del state, tensors
