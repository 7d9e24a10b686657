"""The streamed run's parts: the scorer fed shard by shard (:mod:`.scorers`), the disk forecast
(:mod:`.disk`) and the progress line (:mod:`.progress`); the run itself is
:mod:`reranker_seqcls.run.streamed`."""
