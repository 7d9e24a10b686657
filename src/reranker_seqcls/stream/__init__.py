"""``run`` of a Hub source in one streamed pass: the model is never on disk whole (see
:mod:`.run`)."""
