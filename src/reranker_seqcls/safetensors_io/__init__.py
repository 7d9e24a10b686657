"""safetensors I/O: read and validate headers, rewrite shards, place files (no torch)."""
