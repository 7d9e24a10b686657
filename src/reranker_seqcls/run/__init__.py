"""``run``: download → convert → check → publish of one reranker, skipping a current target.

One skeleton (:mod:`.transport`: prepare → transfer → finish → publish, driven once) and two
transports that follow it: the whole snapshot (:mod:`.whole`: a local source, a pickle-only
source, ``--output-dir``) and the streamed run of a Hub source (:mod:`.streamed`, its shard loop
in :mod:`reranker_seqcls.stream.transfer`). :mod:`.pipeline` decides once where the source is
and which transport takes it; both end in the same finish tail (:func:`.transport.conclude`)
and the same publication (:func:`reranker_seqcls.publish.push.publish_checkpoint`)."""
