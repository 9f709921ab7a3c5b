"""Classification Accuracy Score and classifier-based rejection sampling (Razavi et al. 2019, VQ-VAE-2).

Dimension legend: ``n`` images, ``c`` channels, ``h``/``w`` image size, ``C`` classes.

CAS trains a classifier on class-conditional *samples only* and tests it on *real* held-out
images; the same classifier trained on real images gives the reference accuracy. A model whose
samples carry the class (and the variety of each class) scores close to the reference.
Rejection sampling keeps only samples that a classifier trained on real data assigns to the
requested class with probability above a threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tokenizers_vq.progress import progress


@dataclass
class ClassifierConfig:
    """The small CNN classifier of CAS and its training (Adam, seeded; minutes on a CPU)."""

    channels: int = 32  # width of the first conv block; the next blocks double it
    steps: int = 1500
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0
    flip: bool = False  # augment with random horizontal flips (clothes: yes; digits: no)

    def __post_init__(self) -> None:
        for name in ("channels", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"classifier.{name} must be positive; got {getattr(self, name)}.")
        if not self.lr > 0:
            raise ValueError(f"classifier.lr must be positive; got {self.lr}.")


class ImageClassifier(nn.Module):
    """Three conv blocks, global average pooling and a linear layer: images ``(n, c, h, w)`` in [0, 1] → logits ``(n, C)``."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 32) -> None:
        super().__init__()
        c = channels

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())

        self.features = nn.Sequential(
            block(in_channels, c), nn.MaxPool2d(2), block(c, 2 * c), nn.MaxPool2d(2), block(2 * c, 4 * c)
        )
        self.dropout = nn.Dropout(0.3)
        self.classify = nn.Linear(4 * c, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.features(images).mean(dim=(2, 3))  # (n, 4c)
        return self.classify(self.dropout(x))


def as_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` or float ``[0, 1]`` images ``(n, c, h, w)`` → float32 in ``[0, 1]``."""
    if images.ndim != 4:
        raise ValueError(f"images must have shape (n, c, h, w); got {tuple(images.shape)}.")
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


def train_classifier(
    images: torch.Tensor, labels: torch.Tensor, num_classes: int, config: ClassifierConfig | None = None
) -> ImageClassifier:
    """Fit an :class:`ImageClassifier` on ``images`` ``(n, c, h, w)`` and ``labels`` ``(n,)``; returned in eval mode.

    Runs on the device of ``images``, with its own seeded generator for the weights and batch order
    (the global RNG is left as it was). With ``config.flip``, random horizontal flips augment the images.
    """
    config = config or ClassifierConfig()
    if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise ValueError(
            f"need as many labels as images (and at least one); got {images.shape[0]} and {labels.shape[0]}."
        )
    x_all, y_all = as_float_images(images), labels.long().to(images.device)
    devices = [images.device] if images.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.seed)
        model = ImageClassifier(images.shape[1], num_classes, config.channels).to(images.device).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=config.steps)
        batch = min(config.batch_size, x_all.shape[0])
        for _ in progress(range(config.steps), desc="training the CAS classifier", unit="step"):
            idx = torch.randint(0, x_all.shape[0], (batch,), device=images.device)
            x = x_all[idx]
            if config.flip:
                flip = torch.rand(batch, device=images.device) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            loss = F.cross_entropy(model(x), y_all[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


@torch.no_grad()
def class_probabilities(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Softmax probabilities ``(n, C)`` of ``model`` on ``images`` ``(n, c, h, w)``, in eval mode."""
    was_training = model.training
    model.eval()
    try:
        x = as_float_images(images)
        return torch.cat([model(x[i : i + batch_size]).softmax(-1) for i in range(0, x.shape[0], batch_size)])
    finally:
        model.train(was_training)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` whose most probable class is their label."""
    predicted = class_probabilities(model, images).argmax(-1)
    return float((predicted == labels.to(predicted.device)).float().mean())


def rejection_mask(probabilities: torch.Tensor, labels: torch.Tensor, threshold: float) -> torch.Tensor:
    """``(n,)`` bool: keep the samples whose requested class has probability above ``threshold``.

    ``probabilities`` ``(n, C)`` come from a classifier trained on real data; ``labels`` ``(n,)`` are the
    classes the samples were drawn for.
    """
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"the rejection threshold must be in [0, 1); got {threshold}.")
    return probabilities.gather(1, labels.long().to(probabilities.device)[:, None])[:, 0] > threshold


@dataclass
class CASResult:
    """CAS beside the real-data reference; ``cas_ratio`` = ``cas / real_accuracy``."""

    cas: float  # accuracy on real test images of the classifier trained on samples
    real_accuracy: float  # the same classifier trained on real training images
    cas_ratio: float | None  # None when real_accuracy is 0: there is nothing to compare with (not NaN: JSON has none)
    num_samples: int
    num_real_train: int
    num_test: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def classification_accuracy_score(
    samples: torch.Tensor,
    sample_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    real_accuracy: float,
    num_real_train: int,
    config: ClassifierConfig | None = None,
) -> CASResult:
    """Train on ``samples`` (with the labels they were drawn for), test on real ``test_images``.

    ``real_accuracy`` is the reference: the same classifier (same ``config``) trained on
    ``num_real_train`` real images and tested on the same test images.
    """
    model = train_classifier(samples, sample_labels, num_classes, config)
    score = accuracy(model, test_images.to(samples.device), test_labels)
    return CASResult(
        cas=score,
        real_accuracy=real_accuracy,
        cas_ratio=score / real_accuracy if real_accuracy > 0 else None,
        num_samples=int(samples.shape[0]),
        num_real_train=num_real_train,
        num_test=int(test_images.shape[0]),
    )
