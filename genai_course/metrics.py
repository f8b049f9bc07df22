r"""Measures of generative models (chapter 8 builds on these).

Negative log-likelihoods in the book are in nats per example. Dividing by
the number of dimensions :math:`D` and by :math:`\ln 2` gives *bits per
dimension*, which compares models across image sizes (Theis et al., 2016).
"""

from __future__ import annotations

import math

import torch


def bits_per_dim(nll_nats: float | torch.Tensor, dims: int) -> float | torch.Tensor:
    r"""Bits per dimension of an NLL in nats: :math:`\mathrm{NLL} / (D \ln 2)`."""
    if not isinstance(dims, int) or isinstance(dims, bool) or dims < 1:
        raise ValueError(f"dims must be a positive int, got {dims!r}")
    return nll_nats / (dims * math.log(2))
