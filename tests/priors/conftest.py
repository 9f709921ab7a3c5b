"""The ``any_prior`` fixture: each kind of prior in turn (helpers live in prior_factories, a unique module name)."""

from __future__ import annotations

import pytest
import torch
from prior_factories import MAKERS

from priors.base import CodePrior

# Tiny models gain nothing from a second thread, and on a shared machine spare threads only spin.
torch.set_num_threads(1)


@pytest.fixture(params=sorted(MAKERS))
def any_prior(request) -> CodePrior:
    """Each kind of prior in turn (double precision, eval mode)."""
    return MAKERS[request.param]()
