"""How gradients pass the snap from an input vector to its code: straight-through copy or the rotation trick.

Dimension legend: ``...`` leading shape, ``d`` vector dimension.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def straight_through(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``q`` in the forward pass, identity gradient to ``x`` (VQ-VAE, van den Oord et al. 2017)."""
    return x + (q - x).detach()


def rotation_trick(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``q`` in the forward pass; the gradient reaches ``x`` through a fixed rotation and rescaling.

    The rotation trick (Fifty et al. 2024, "Restructuring Vector Quantization with the Rotation
    Trick"): ``q̃ = sg(‖q‖/‖x‖ · R) x`` with ``R`` the rotation that takes ``x/‖x‖`` onto ``q/‖q‖``
    in the plane they span, so ``q̃ = q`` and ``∂q̃/∂x = ‖q‖/‖x‖ · R``. A gradient that would move
    ``q`` moves ``x`` by the same rotation: inputs whose code lies in another direction get gradients
    in another direction, which the straight-through copy gives all alike.

    With ``u = x/‖x‖``, ``v = q/‖q‖`` and ``w = (u + v)/‖u + v‖``,
    ``R e = e − 2 (e·w) w + 2 (e·u) v`` (the paper's section 4.2), O(d) per vector, no d × d matrix.
    Shapes: ``x`` and ``q`` ``(..., d)``; returns ``(..., d)``. A zero ``x`` or ``q`` falls back to
    the straight-through copy for that vector (no direction to rotate).
    """
    norm_x = x.norm(dim=-1, keepdim=True)
    norm_q = q.norm(dim=-1, keepdim=True)
    u = (x / norm_x.clamp_min(1e-12)).detach()
    v = (q / norm_q.clamp_min(1e-12)).detach()
    w = F.normalize(u + v, dim=-1).detach()  # u = −v: w = 0 and R e = e + 2 (e·u) v still maps u to v
    rotated = x - 2 * (x * w).sum(-1, keepdim=True) * w + 2 * (x * u).sum(-1, keepdim=True) * v
    scaled = rotated * (norm_q / norm_x.clamp_min(1e-12)).detach()
    scaled = scaled + (q - scaled).detach()  # exactly q forward (the rotation's rounding removed), same gradient
    degenerate = (norm_x == 0) | (norm_q == 0)
    return torch.where(degenerate, straight_through(x, q), scaled)


#: The gradient estimators by the name a quantizer config gives (``gradient=...``).
GRADIENTS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "straight_through": straight_through,
    "rotation": rotation_trick,
}


def check_gradient(value: str, owner: str) -> None:
    """Raise ``ValueError`` unless ``value`` names a gradient estimator; ``owner`` names the field."""
    if value not in GRADIENTS:
        raise ValueError(
            f"{owner} must be one of {tuple(GRADIENTS)} (how gradients pass the snap to a code); got {value!r}."
        )
