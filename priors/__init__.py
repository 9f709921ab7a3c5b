"""Priors over code streams: gated PixelCNN (2-D and 1-D) and transformer priors, sampling, bits/dim, CAS.

>>> import torch
>>> from priors import CodeLayout, ConvNetConfig, PixelCNNPrior, SamplingConfig
>>> prior = PixelCNNPrior(CodeLayout(shapes=[(4, 4)], codebook_sizes=[16], num_classes=10),
...                       ConvNetConfig(channels=16, num_layers=2, kernel_size=3))
>>> out = prior([torch.randint(0, 16, (2, 4, 4))], labels=torch.tensor([3, 7]))
>>> out.logits[0].shape, out.nll.shape
(torch.Size([2, 4, 4, 16]), torch.Size([2, 16]))
>>> prior.sample(labels=torch.tensor([3, 7]), sampling=SamplingConfig(seed=0)).levels[0].shape
torch.Size([2, 4, 4])
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from priors.base import CodeLayout, CodePrior, PriorOutput, SampleResult, nll_from_logits
from priors.cas import (
    CASResult,
    ClassifierConfig,
    ImageClassifier,
    accuracy,
    class_probabilities,
    classification_accuracy_score,
    rejection_mask,
    train_classifier,
)
from priors.conv_prior import PixelCNNPrior
from priors.likelihood import LikelihoodResult, discretized_gaussian_bits, evaluate_likelihood
from priors.pixelcnn import ConvNetConfig, GatedPixelCNN, WaveNetPrior
from priors.sampling import SamplingConfig, draw, filter_logits
from priors.transformer import TokenLayout, TransformerConfig, TransformerPrior, ValidCodesLogitsProcessor
from tokenizers_vq.hub import resolve_model


def load_prior(
    directory: str | os.PathLike[str], map_location: str | torch.device = "cpu", revision: str | None = None
) -> CodePrior:
    """Load any prior (a folder, or a Hub repo id at ``revision``): a :class:`PixelCNNPrior` or a
    :class:`TransformerPrior` (told apart by config.json)."""
    directory = resolve_model(directory, revision)
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no prior at {directory}: config.json is missing. Pass the 'prior' folder that train-prior wrote."
        )
    meta = json.loads(path.read_text(encoding="utf-8"))
    if "model_type" in meta:
        return TransformerPrior.from_pretrained(directory, map_location)
    return PixelCNNPrior.from_pretrained(directory, map_location)


__all__ = [
    "CASResult",
    "ClassifierConfig",
    "CodeLayout",
    "CodePrior",
    "ConvNetConfig",
    "GatedPixelCNN",
    "ImageClassifier",
    "LikelihoodResult",
    "PixelCNNPrior",
    "PriorOutput",
    "SampleResult",
    "SamplingConfig",
    "TokenLayout",
    "TransformerConfig",
    "TransformerPrior",
    "ValidCodesLogitsProcessor",
    "WaveNetPrior",
    "accuracy",
    "class_probabilities",
    "classification_accuracy_score",
    "discretized_gaussian_bits",
    "draw",
    "evaluate_likelihood",
    "filter_logits",
    "load_prior",
    "nll_from_logits",
    "rejection_mask",
    "train_classifier",
]
