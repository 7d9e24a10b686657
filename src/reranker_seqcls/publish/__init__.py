"""Publishing a converted checkpoint: the model card and commit that ``run`` (both transports)
and ``push`` write alike (:mod:`.card`), and ``push`` of a checked directory (:mod:`.push`)."""
