"""Convert: plan the sequence-classification checkpoint and write it (no torch)."""
