"""``run``: download → convert → check → publish of one reranker, skipping a current target.

:mod:`.pipeline` decides once where the source is and which transport takes it: the whole
snapshot (a local source, a pickle-only source, ``--output-dir``) or the streamed run of a Hub
source (:mod:`.streamed`); both end in the same finish (:mod:`.outcome`'s failure record) and
the same card and commit (:mod:`reranker_seqcls.publish.card`)."""
