"""The baseline of ``check``'s memory target: one causal LM resident in a process.

Loads the source as ``reranker-seqcls check`` does (transformers, the checkpoint's own dtype) and
runs one 4-token forward pass, computing the logits of the last position only, so that every
weight matrix is read (and so resident) once while activations stay negligible. Its peak RSS is
the least any process that holds one model needs: interpreter, torch, transformers and weights.
"""

from __future__ import annotations

import sys

import torch
import transformers


def main() -> None:
    model = transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
    with torch.inference_mode():
        model(input_ids=torch.tensor([[1, 2, 3, 4]]), logits_to_keep=1)


if __name__ == "__main__":
    main()
