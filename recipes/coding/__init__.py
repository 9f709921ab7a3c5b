"""Rate recipes: entropy-coded code files (compress, decompress) and rate–distortion reports (rd)."""
