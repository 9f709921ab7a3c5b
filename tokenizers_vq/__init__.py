"""tokenizers_vq: the modality-agnostic vector-quantizer core.

>>> import torch
>>> from tokenizers_vq import VectorQuantizer, VQConfig
>>> vq = VectorQuantizer(VQConfig(dim=8, codebook_size=16))
>>> out = vq(torch.randn(2, 10, 8))
>>> out.codes.shape, out.quantized.shape
(torch.Size([2, 10]), torch.Size([2, 10, 8]))
"""

from tokenizers_vq.base import IdentityQuantizer, Quantizer, QuantizerOutput, check_codes, check_vectors
from tokenizers_vq.residual import ResidualVectorQuantizer, RVQConfig
from tokenizers_vq.vq import VectorQuantizer, VQConfig

__version__ = "0.1.0"

__all__ = [
    "IdentityQuantizer",
    "Quantizer",
    "QuantizerOutput",
    "RVQConfig",
    "ResidualVectorQuantizer",
    "VQConfig",
    "VectorQuantizer",
    "check_codes",
    "check_vectors",
]
