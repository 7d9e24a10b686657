"""Hub: fetch the source, read the target's state, push the converted checkpoint, write its card."""
