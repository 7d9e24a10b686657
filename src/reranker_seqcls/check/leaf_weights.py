"""Each leaf module's weights materialized in the compute dtype just before it runs and freed
right after (forward pre/post hooks), read with plain file reads of the tensor's byte range into
buffers reused from leaf to leaf (:class:`.weight_reads.WeightArena`); and
modules built with their parameters on the meta device. Used by
:class:`.layerwise.LayerwiseScorer`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.check.weight_reads import (
    WeightArena,
    WeightLedger,
    check_shape,
    read_tensor,
    return_freed_memory,
)
from reranker_seqcls.safetensors_io.header import TensorInfo

if TYPE_CHECKING:
    import torch


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Build modules with every parameter on the meta device and every buffer real (what
    accelerate's ``init_empty_weights(include_buffers=False)`` does)."""
    import torch

    original = torch.nn.Module.register_parameter

    def register(module: torch.nn.Module, name: str, param: torch.nn.Parameter | None) -> None:
        original(module, name, param)
        if param is not None:
            module._parameters[name] = torch.nn.Parameter(param.to("meta"), requires_grad=False)

    torch.nn.Module.register_parameter = register  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original  # type: ignore[method-assign]


class LeafWeights:
    """The weight hooks of a layerwise scorer (a mixin: the scorer sets these attributes)."""

    layers: list[Any]
    norm: Any
    model: Any
    dtype: Any
    ledger: WeightLedger
    arena: WeightArena  # the reused buffers the weights are read into
    _hooked: list[Any]
    _param_of: dict[str, tuple[Any, str]]
    _where: dict[str, tuple[Path, TensorInfo]]

    def _hook_leaves(self) -> None:
        """Pre/post forward hooks on every module owning parameters (layers and final norm)."""
        self.arena = WeightArena()
        modules = [*self.layers, self.norm]
        for module in modules:
            for leaf in module.modules():
                if not leaf._parameters:
                    continue
                self._hooked.append(leaf.register_forward_pre_hook(self._materialize))
                self._hooked.append(leaf.register_forward_hook(self._dematerialize))

    def _leaf_names(self, module: Any) -> list[tuple[str, str]]:
        """(checkpoint name, attribute) of ``module``'s own parameters."""
        cached = getattr(module, "_layerwise_names", None)
        if cached is None:
            cached = [
                (name, leaf) for name, (owner, leaf) in self._param_of.items() if owner is module
            ]
            module._layerwise_names = cached
        return cached

    def _materialize(self, module: Any, _inputs: Any) -> None:
        module._layerwise_mark = self.arena.mark()
        for name, attr in self._leaf_names(module):
            path, info = self._where[name]
            check_shape(info, tuple(module._parameters[attr].shape))
            tensor = read_tensor(path, info, self.dtype, self.arena)
            self.ledger.read += info.nbytes
            self.ledger.add(tensor.numel() * tensor.element_size())
            self._set_param(module, attr, tensor)

    def _dematerialize(self, module: Any, _inputs: Any, _output: Any) -> None:
        for _name, attr in self._leaf_names(module):
            param = module._parameters[attr]
            self._unset_param(module, attr, param.numel() * param.element_size())
        self.arena.release(module._layerwise_mark)
        return_freed_memory()

    @staticmethod
    def _set_param(module: Any, attr: str, tensor: Any) -> None:
        import torch

        module._parameters[attr] = torch.nn.Parameter(tensor, requires_grad=False)

    def _unset_param(self, module: Any, attr: str, nbytes: int) -> None:
        import torch

        shape = module._parameters[attr].shape
        module._parameters[attr] = torch.nn.Parameter(
            torch.empty(shape, device="meta", dtype=self.dtype), requires_grad=False
        )
        self.ledger.remove(nbytes)

    def largest_layer_bytes(self) -> int:
        """Bytes (compute dtype) of the largest decoder layer: the bound on what is held."""
        size = self.dtype.itemsize if hasattr(self.dtype, "itemsize") else 4
        return max(
            int(sum(math.prod(p.shape) for p in layer.parameters()) * size) for layer in self.layers
        )
