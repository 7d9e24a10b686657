"""GGUF files of a converted Qwen3-architecture reranker that llama.cpp's ``llama-server
--reranking`` scores like the original (``/v1/rerank``).

* :mod:`.types` — the GGUF types offered (``f16``, ``q8_0``, ``f32``) and ``--gguf`` parsing;
* :mod:`.refusal` — which architectures llama.cpp gives a classifier head (only ``qwen3`` here);
* :mod:`.writer` — the GGUF itself, written with the ``gguf`` package (llama.cpp's own writer and
  quantizers) from the converted ``*ForSequenceClassification`` checkpoint;
* :mod:`.server` — the real ``llama-server`` started on a loopback port, pairs POSTed to
  ``/v1/rerank``;
* :mod:`.row` — the ``llama.cpp`` rows of the parity check, judged per type;
* :mod:`.card` — the card of the GGUF target repository.

Nothing here imports torch at module level.
"""
