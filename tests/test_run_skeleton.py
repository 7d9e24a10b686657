"""Issue 19's run skeleton: both transports (and the GGUF road's subclass) have the four steps
of :class:`reranker_seqcls.run.transport.Transport` with its exact signatures, so the pipeline
drives either the same way; and the run modules stay the skeleton's steps (the shard loop lives
in ``stream/transfer.py``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest

from reranker_seqcls.gguf.streamed_run import _GgufStreamedRun
from reranker_seqcls.run.streamed import _StreamedRun
from reranker_seqcls.run.transport import Transport
from reranker_seqcls.run.whole import WholeSnapshot

STEPS = ("prepare", "transfer", "finish", "publish")


def _shape(function: Callable[..., object]) -> list[tuple[str, object, object]]:
    """Each parameter's name, kind and annotation, and the return annotation."""
    signature = inspect.signature(function)
    parameters = [(p.name, p.kind, p.annotation) for p in signature.parameters.values()]
    return [*parameters, ("return", None, signature.return_annotation)]


@pytest.mark.parametrize("transport", [WholeSnapshot, _StreamedRun, _GgufStreamedRun])
def test_each_transport_has_the_skeletons_four_steps(transport: type) -> None:
    for step in STEPS:
        assert _shape(getattr(transport, step)) == _shape(getattr(Transport, step)), step


def test_the_shard_loop_is_not_in_the_run_module() -> None:
    import reranker_seqcls.run.streamed as streamed

    source = inspect.getsource(streamed)
    for loop_part in ("def _one_shard", "def _collect", "def _await_upload", "Background("):
        assert loop_part not in source, loop_part
