"""tokenizers_vq: the modality-agnostic vector-quantizer core.

>>> import torch
>>> from tokenizers_vq import VectorQuantizer, VQConfig
>>> vq = VectorQuantizer(VQConfig(dim=8, codebook_size=16))
>>> out = vq(torch.randn(2, 10, 8))
>>> out.codes.shape, out.quantized.shape
(torch.Size([2, 10]), torch.Size([2, 10, 8]))
"""

from tokenizers_vq.base import IdentityQuantizer, Quantizer, QuantizerOutput, check_codes, check_vectors
from tokenizers_vq.fsq import FiniteScalarQuantizer, FSQConfig
from tokenizers_vq.kinds import build_quantizer
from tokenizers_vq.lfq import LFQConfig, LookupFreeQuantizer
from tokenizers_vq.residual import ResidualVectorQuantizer, RVQConfig
from tokenizers_vq.simvq import SimVQ, SimVQConfig
from tokenizers_vq.vq import VectorQuantizer, VQConfig

__version__ = "0.1.0"

__all__ = [
    "FSQConfig",
    "FiniteScalarQuantizer",
    "IdentityQuantizer",
    "LFQConfig",
    "LookupFreeQuantizer",
    "Quantizer",
    "QuantizerOutput",
    "RVQConfig",
    "ResidualVectorQuantizer",
    "SimVQ",
    "SimVQConfig",
    "VQConfig",
    "VectorQuantizer",
    "build_quantizer",
    "check_codes",
    "check_vectors",
]
