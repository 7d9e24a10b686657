"""Check: score the source and the converted checkpoint on the same pairs and judge parity."""
