"""Speech units: HuBERT-style self-supervised units (masked prediction of cluster targets, then k-means codes)
with a decoder on the frozen units, as a speech tokenizer of kind ``speech-units-tokenizer``.

>>> import torch
>>> from modalities.speech.units import UnitsTokenizer, UnitsTokenizerConfig
>>> tok = UnitsTokenizer(UnitsTokenizerConfig(code_dim=32, num_layers=2, num_heads=2, code_layer=1, target_layer=1,
...                                           codebook_size=16, hidden_channels=16, num_res_blocks=1, speakers=["ann"])).eval()
>>> codes = tok.encode(0.1 * torch.randn(16000), sample_rate=16000)   # untrained: a codebook of random vectors
>>> codes.codes.shape, codes.frame_rate
(torch.Size([1, 51]), 50.0)
>>> tok.decode(codes, speaker="ann").shape
torch.Size([1, 16160])
"""

from modalities.speech.units.config import UnitsSchedule, UnitsTokenizerConfig
from modalities.speech.units.encoder import UnitsEncoder, UnitsEncoderOutput, span_mask, utterance_norm
from modalities.speech.units.tokenizer import UnitsTokenizer

__all__ = [
    "UnitsEncoder",
    "UnitsEncoderOutput",
    "UnitsSchedule",
    "UnitsTokenizer",
    "UnitsTokenizerConfig",
    "span_mask",
    "utterance_norm",
]
