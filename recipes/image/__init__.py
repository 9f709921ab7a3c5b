"""Image recipes: train-tokenizer, tokenize, reconstruct, evaluate and the quickstart, on one config schema."""
