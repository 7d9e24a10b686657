"""The streamed run's parts: the scorer fed shard by shard (:mod:`.scorers`), the disk forecast
(:mod:`.disk`), the progress line (:mod:`.progress`), the worker threads (:mod:`.overlap`) and
the shard loop (:mod:`.transfer`); the run's steps are :mod:`reranker_seqcls.run.streamed`."""
