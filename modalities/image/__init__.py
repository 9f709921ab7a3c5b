"""Image tokenizers (VQ-VAE, VQ-VAE-2), image data sets and reconstruction metrics.

>>> import torch
>>> from modalities.image import ImageTokenizer, ImageTokenizerConfig
>>> tok = ImageTokenizer(ImageTokenizerConfig(kind="vqvae2", in_channels=3, num_levels=2,
...                                           hidden_channels=16, res_channels=8, codebook_size=32, code_dim=8))
>>> codes = tok.encode(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
>>> codes.shapes
[(4, 4), (8, 8)]
>>> tok.decode(codes).shape
torch.Size([2, 3, 32, 32])
"""

from modalities.image.codes import ImageCodes
from modalities.image.config import ImageTokenizerConfig
from modalities.image.data import DATASETS, ImageArrays, load_image_dataset
from modalities.image.metrics import (
    LevelEvaluation,
    ReconstructionMetrics,
    TokenizerEvaluation,
    evaluate_tokenizer,
    reconstruction_metrics,
)
from modalities.image.preprocess import to_uint8
from modalities.image.tokenizer import ImageTokenizer, ImageTokenizerOutput

__all__ = [
    "DATASETS",
    "ImageArrays",
    "ImageCodes",
    "ImageTokenizer",
    "ImageTokenizerConfig",
    "ImageTokenizerOutput",
    "LevelEvaluation",
    "ReconstructionMetrics",
    "TokenizerEvaluation",
    "evaluate_tokenizer",
    "load_image_dataset",
    "reconstruction_metrics",
    "to_uint8",
]
