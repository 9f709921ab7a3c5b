"""The tokenizer recipes, written once for every modality: train-tokenizer, tokenize, reconstruct, evaluate."""
