"""The commands of the ``reranker-seqcls`` group, one module each (:mod:`reranker_seqcls.cli`
assembles them), and their options declared once (:mod:`.options`). Imports inside the commands
stay lazy so that ``--help`` does not pay for numpy, tokenizers or torch."""
