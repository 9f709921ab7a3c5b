"""Unit-BPE recipes: sentencepiece over code streams, and what it does to a prior (``vqtok bpe``)."""
