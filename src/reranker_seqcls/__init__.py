"""reranker-seqcls: causal-LM rerankers → *ForSequenceClassification checkpoints."""

__version__ = "0.1.0"
