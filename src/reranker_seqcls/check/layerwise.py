"""Hidden states of a causal LM computed layer by layer, as its shards arrive.

The parity check needs, for each prompt, the backbone's final hidden state at the pooled (last)
token: the reference logits are the source head's rows times it, the converted ones
``score.weight`` times it (the backbones are byte-identical, see :mod:`.streamed`). This
module computes those hidden states without ever holding the model:

- the model is transformers' own base model class (``AutoModel``), built from ``config.json``
  with its **parameters on the meta device** (buffers such as rotary frequencies and Gemma's
  embedding scale stay real, as the class computes them);
- the **embedding** holds only the rows of the token ids the prompts use: ids are remapped to
  compact ids and the model's own embedding module (with any scaling) does the lookup;
- one **dry pass** of the model's own ``forward`` records what it hands each decoder layer
  (masks, position embeddings, position ids: built by the model's code, per layer type), with
  every layer replaced by a pass-through that records its arguments;
- then each decoder layer runs on the carried hidden states of every batch once all of its
  tensors have arrived, each **leaf module's weights materialized in the compute dtype just before
  it runs and freed right after** (forward pre/post hooks), read with plain file reads of the
  tensor's byte range (no mmap: mapped pages would count in RSS);
- the final norm runs on the last position only.

:meth:`LayerwiseScorer.feed` takes one shard at a time and returns the shard files no longer
needed, so a caller can delete each shard once it has been used. Each leaf module's weights
come and go through :class:`.leaf_weights.LeafWeights`.

Over 300 lines: one class whose setup (skeleton, compact embedding, dry pass) and layer runs
share its state; the weight hooks already live in :mod:`.leaf_weights`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.errors import BadInput, SeqClsError
from reranker_seqcls.safetensors_io.header import SafetensorsFile, TensorInfo

if TYPE_CHECKING:
    import torch

from reranker_seqcls.check.leaf_weights import LeafWeights, parameters_on_meta
from reranker_seqcls.check.learned_positions import LearnedPositions
from reranker_seqcls.check.meta_model import (
    LayerwiseUnsupported as LayerwiseUnsupported,  # raised here; callers catch it by this name
)
from reranker_seqcls.check.meta_model import meta_model, prove_buffers_of, prove_drivable
from reranker_seqcls.check.packing import batch_inputs, can_pack
from reranker_seqcls.check.release_schedule import Stages
from reranker_seqcls.check.weight_reads import (
    WeightLedger,
    check_shape,
    read_rows,
    return_freed_memory,
)


class _Stop(Exception):
    """Raised by the last recording layer: the dry pass has what it needs."""


@dataclass
class _Shard:
    path: Path
    header: SafetensorsFile
    pending: set[str] = field(default_factory=set)  # tensors not used yet


class LayerwiseScorer(LeafWeights):
    """Final hidden states of ``sequences`` at their last token, computed shard by shard.

    ``config`` is the source's ``config.json`` (a dict). ``sequences`` are token-id prompts,
    scored in left-padded batches exactly as :func:`parity.reference_scores` scores them.
    Call :meth:`feed` with each shard file as it arrives (any order); it runs every layer whose
    tensors are all there, in order, and returns the shard files it no longer needs. After the
    last shard, :meth:`final_hidden` gives ``[len(sequences), hidden]`` in the compute dtype.
    """

    # Over 60 lines: the skeleton, compact embedding, dry pass and hooks are set up in the
    # order they depend on each other; each step is a few lines.
    def __init__(
        self,
        config: dict[str, Any],
        sequences: list[list[int]],
        *,
        pad_id: int,
        dtype: str = "float32",
        pack: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        import torch
        from transformers import AutoModel
        from transformers.initialization import no_init_weights

        if not sequences or any(not s for s in sequences):
            raise BadInput("the layerwise check needs at least one non-empty prompt")
        self._log = log or (lambda _m: None)
        self.dtype = getattr(torch, dtype)
        hf_config, probe = meta_model(config, dtype)
        prove_buffers_of(probe)
        skeleton = prove_drivable(probe, hf_config)
        del probe
        with parameters_on_meta(), no_init_weights():
            self.model = AutoModel.from_config(hf_config, dtype=self.dtype)
        self.model.eval()
        self.config = hf_config
        prefix = getattr(self.model, "base_model_prefix", "model")
        self.prefix = f"{prefix}." if prefix else ""
        self.layers = list(getattr(self.model, skeleton.layers))
        self.norm = getattr(self.model, skeleton.norm)
        self.ledger = WeightLedger()

        # Parameter names (checkpoint spelling) of each stage: embedding, layers, final norm.
        self._embedding = self.model.get_input_embeddings()
        params = dict(self.model.named_parameters(remove_duplicate=False))
        self._param_of: dict[str, tuple[torch.nn.Module, str]] = {}
        for name in params:
            owner, _, leaf = name.rpartition(".")
            self._param_of[self.prefix + name] = (self.model.get_submodule(owner), leaf)
        embedding_name = next(n for n, p in params.items() if p is self._embedding.weight)
        self._embedding_name = self.prefix + embedding_name
        self._layer_names = [
            {self.prefix + f"{skeleton.layers}.{i}.{n}" for n, _ in layer.named_parameters()}
            for i, layer in enumerate(self.layers)
        ]
        # A learned position table (GPT-2's wpe) is added right before the first layer, from
        # the rows the prompts' positions use: it belongs to the first layer's stage.
        self._positions: LearnedPositions | None = None
        if skeleton.positions:
            table = getattr(self.model, skeleton.positions)
            self._positions = LearnedPositions(f"{self.prefix}{skeleton.positions}.weight", table)
            self._layer_names[0].add(self._positions.name)
        staged = {self._embedding_name, *(n for names in self._layer_names for n in names)}
        self._final_names = {n for n in self._param_of if n not in staged}  # the final norm

        # Compact embedding: the ids the prompts use (and the pad id), in sorted order.
        self._vocab = sorted({pad_id, *(t for s in sequences for t in s)})
        compact = {token: i for i, token in enumerate(self._vocab)}
        pack = pack and can_pack(config, sequences, self._positions is not None)
        compacted = [[compact[t] for t in s] for s in sequences]
        self._inputs = batch_inputs(compacted, compact[pad_id], self.dtype, pack=pack)
        self.positions = sum(int(b.ids.numel()) for b in self._inputs)  # what the pass computes
        self.num_sequences = len(sequences)

        self._where: dict[str, tuple[Path, TensorInfo]] = {}  # tensor → its shard
        self._shards: dict[Path, _Shard] = {}
        self._hidden: list[torch.Tensor] | None = None  # per batch, carried between layers
        self._calls: list[list[tuple[tuple[Any, ...], dict[str, Any]]]] = []
        self._next_layer = 0
        self._final: torch.Tensor | None = None
        self._hooked: list[Any] = []
        self._hook_leaves()

    def prove_shapes(self, tensors: dict[str, TensorInfo]) -> None:
        """Every parameter the model will read must be a tensor of the headers with the
        model's shape: checked before any shard arrives, so a config whose shapes the weights
        do not back (``intermediate_size`` 2^40) is refused before anything is fetched."""
        for name, (owner, leaf) in self._param_of.items():
            info = tensors.get(name)
            if info is None:
                raise BadInput(
                    f"the shards do not hold {name!r}, which config.json's model needs: the "
                    "checkpoint does not match its config, re-download it"
                )
            param = owner._parameters[leaf]
            assert param is not None
            check_shape(info, tuple(param.shape))

    # ------------------------------------------------------------------ feeding

    @property
    def stages(self) -> Stages:
        """The tensor names of each stage (for :func:`release_schedule.release_schedule`)."""
        return Stages(
            self._embedding_name,
            tuple(frozenset(names) for names in self._layer_names),
            frozenset(self._final_names),
        )

    @property
    def needed(self) -> set[str]:
        """Checkpoint tensor names not yet used."""
        if self._final is not None:
            return set()
        names = set(self._final_names)
        if self._hidden is None:
            names.add(self._embedding_name)
        for layer in range(self._next_layer, len(self.layers)):
            names |= self._layer_names[layer]
        return names

    @property
    def done(self) -> bool:
        return self._final is not None

    def feed(self, shard_path: Path, tensor_names: Iterable[str] | None = None) -> list[Path]:
        """Make the tensors of ``shard_path`` available (``tensor_names`` limits which; default
        every tensor in its header), run as far as the available tensors allow, and return the
        shard files (this one or earlier ones) that are no longer needed."""
        path = Path(shard_path)
        header = SafetensorsFile(path)
        names = set(header.tensors) if tensor_names is None else set(tensor_names)
        missing = names - set(header.tensors)
        if missing:
            raise BadInput(f"{path.name} does not hold {sorted(missing)[0]!r}: re-download it")
        shard = _Shard(path, header)
        needed = self.needed
        for name in names:
            if name in needed:
                self._where[name] = (path, header.tensors[name])
                shard.pending.add(name)
        self._shards[path] = shard
        self._advance()
        return self._release()

    def _release(self) -> list[Path]:
        needed = self.needed
        released = []
        for path, shard in list(self._shards.items()):
            shard.pending &= needed
            if not shard.pending:
                released.append(path)
                del self._shards[path]
        for name in [n for n in self._where if n not in needed]:
            del self._where[name]
        return released

    def _have(self, names: Iterable[str]) -> bool:
        return all(n in self._where for n in names)

    def _advance(self) -> None:
        import torch

        with torch.inference_mode():
            if self._hidden is None:
                if not self._have([self._embedding_name]):
                    return
                self._dry_pass()
            while self._next_layer < len(self.layers) and self._have(
                self._layer_names[self._next_layer]
            ):
                self._run_layer(self._next_layer)
                self._next_layer += 1
            finished = self._next_layer == len(self.layers) and self._final is None
            if finished and self._have(self._final_names):
                self._run_final()

    # ------------------------------------------------------------------ stages

    def _dry_pass(self) -> None:
        """Embed the prompts and record each decoder layer's arguments, from the model's own
        forward (masks, rotary embeddings, per-layer-type masks), with the layers skipped."""
        path, info = self._where[self._embedding_name]
        check_shape(info, tuple(self._embedding.weight.shape))
        rows = read_rows(path, info, self._vocab, self.dtype)
        nbytes = rows.numel() * rows.element_size()
        self.ledger.add(nbytes)
        self.ledger.read += len(self._vocab) * (info.nbytes // max(info.shape[0], 1))
        self.ledger.embedding_rows = len(self._vocab)
        self._set_param(self._embedding, "weight", rows)
        hidden: list[Any] = []
        for batch in self._inputs:
            ids, mask, positions = batch.ids, batch.mask, batch.positions
            calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
            learned = self._positions.zeros(self.dtype) if self._positions else nullcontext()
            with self._recording_layers(calls, hidden), suppress(_Stop), learned:
                self.model(
                    input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False
                )
            if len(calls) != len(self.layers):
                raise SeqClsError(
                    f"the model's forward called {len(calls)} of {len(self.layers)} layers"
                )
            self._calls.append(calls)
        self._unset_param(self._embedding, "weight", nbytes)
        self._hidden = hidden
        packed = " (the shared prefix once)" if self._inputs[0].packed else ""
        self._log(f"layerwise: embedded {self.num_sequences} prompts ({len(self._vocab)} rows), "
                  f"{self.positions} positions{packed}")  # fmt: skip

    @contextmanager
    def _recording_layers(
        self, calls: list[tuple[tuple[Any, ...], dict[str, Any]]], hidden: list[Any]
    ) -> Iterator[None]:
        last = len(self.layers) - 1

        def recorder(index: int) -> Callable[..., Any]:
            def forward(hidden_states: Any, *args: Any, **kwargs: Any) -> Any:
                if index == 0:
                    hidden.append(hidden_states)
                calls.append((args, kwargs))
                if index == last:
                    raise _Stop
                return hidden_states

            return forward

        for index, layer in enumerate(self.layers):
            layer.forward = recorder(index)
        try:
            yield
        finally:
            for layer in self.layers:
                del layer.forward

    def _run_layer(self, index: int) -> None:
        assert self._hidden is not None
        layer = self.layers[index]
        last = index == len(self.layers) - 1
        if index == 0 and self._positions is not None:
            where = self._where[self._positions.name]
            self._positions.add(self._hidden, where, self.dtype, self.ledger)
        for b, hidden in enumerate(self._hidden):
            args, kwargs = self._calls[b][index]
            out = layer(hidden, *args, **kwargs)
            out = out[0] if isinstance(out, tuple) else out
            # After the last layer only the pooled (last) positions matter.
            self._hidden[b] = out[:, self._inputs[b].keep].clone() if last else out
            self._calls[b][index] = ((), {})
            del out
            return_freed_memory()
        self._log(f"layerwise: layer {index + 1}/{len(self.layers)}")

    def _run_final(self) -> None:
        import torch

        assert self._hidden is not None
        rows = [self.norm(h).reshape(-1, h.shape[-1]) for h in self._hidden]
        final = torch.empty((self.num_sequences, rows[0].shape[-1]), dtype=self.dtype)
        for batch, values in zip(self._inputs, rows, strict=True):
            final[batch.indices] = values
        self._final = final
        self._hidden = []
        self._calls = []
        self.arena.free()
        gc.collect()

    def final_hidden(self) -> torch.Tensor:
        """The final (normed) hidden state of each sequence at its last token."""
        if self._final is None:
            missing = sorted(self.needed)
            raise BadInput(
                f"the checkpoint's shards do not hold {missing[0]!r} (and {len(missing) - 1} "
                "more tensors): it is incomplete, re-download it"
            )
        return self._final
