"""Prior recipes: train-prior, sample, evaluate (bits/dim) and cas over code corpora from ``vqtok tokenize``."""
