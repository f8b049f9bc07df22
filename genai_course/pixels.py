r"""The pipeline chapter's generative model: every pixel an independent Bernoulli variable.

For a binary image :math:`x \in \{0, 1\}^D` with one parameter per pixel,

.. math:: p_\theta(x) = \prod_{d=1}^{D} \theta_d^{x_d} (1 - \theta_d)^{1 - x_d},
   \qquad \theta_d = \sigma(\eta_d),

so :math:`\log p_\theta(x) = \sum_d x_d \log\sigma(\eta_d) + (1 - x_d)\log\sigma(-\eta_d)`.
The model is trained through the logits :math:`\eta` (unconstrained), and its
maximum-likelihood estimate has a closed form, the pixel means.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _check_binary(x: torch.Tensor, shape: tuple[int, ...]) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if tuple(x.shape[-len(shape) :]) != shape:
        raise ValueError(
            f"x must have shape (..., {', '.join(map(str, shape))}), got {tuple(x.shape)}"
        )
    if not bool(((x == 0) | (x == 1)).all()):
        raise ValueError(
            "x must be binary (every value 0 or 1); binarize grey images first "
            "with genai_course.data.binarize"
        )


class IndependentBernoulli(nn.Module):
    """One Bernoulli variable per pixel, parameterised by its logit ``eta``.

    ``shape`` is the shape of one example, e.g. ``(28, 28)``. ``eta`` starts at
    0, i.e. every pixel on with probability 1/2.
    """

    def __init__(self, shape: tuple[int, ...] = (28, 28)):
        super().__init__()
        self.shape = tuple(shape)
        self.eta = nn.Parameter(torch.zeros(self.shape))  # (28, 28) logits

    @classmethod
    def from_data(cls, x: torch.Tensor, smoothing: float = 0.0) -> IndependentBernoulli:
        r"""The maximum-likelihood model, in closed form.

        :math:`\hat\theta_d = (\sum_i x_{id} + \alpha) / (N + 2\alpha)`: the
        pixel means, with add-:math:`\alpha` (Laplace) smoothing. With
        :math:`\alpha = 0` a pixel never on in training gets
        :math:`\hat\theta_d = 0`, and any test image with that pixel on has
        probability 0.
        """
        if smoothing < 0:
            raise ValueError(f"smoothing must be >= 0, got {smoothing!r}")
        model = cls(tuple(x.shape[1:]))
        _check_binary(x, model.shape)
        theta = (x.sum(0) + smoothing) / (len(x) + 2 * smoothing)  # (28, 28)
        with torch.no_grad():
            model.eta.copy_(torch.logit(theta.to(model.eta.dtype)))  # +-inf where theta is 1 or 0
        return model.to(x.device)

    @property
    def probs(self) -> torch.Tensor:
        r""":math:`\theta = \sigma(\eta)`, the probability that each pixel is on."""
        return torch.sigmoid(self.eta)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""log p_theta(x) in nats, one value per example: shape (B,)."""
        _check_binary(x, self.shape)
        # x_d log sigma(eta_d) + (1 - x_d) log sigma(-eta_d), one value
        # per pixel; `where` picks the term that x_d switches on, so that
        # theta_d = 0 with x_d = 0 gives log 1 = 0, not 0 * (-inf)
        log_on, log_off = F.logsigmoid(self.eta), F.logsigmoid(-self.eta)
        per_pixel = torch.where(x.bool(), log_on, log_off)  # (B, 28, 28)
        return per_pixel.flatten(-len(self.shape)).sum(-1)  # (B,)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images drawn from the model: shape ``(n, *shape)``, floats 0 or 1."""
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        uniform = torch.rand((n, *self.shape), generator=generator, device=self.eta.device)
        return (uniform < self.probs).float()


def categorical_bits_per_dim(train: torch.Tensor, test: torch.Tensor,
                             pseudocount: float = 1.0) -> float:  # fmt: skip
    r"""The 8-bit baseline of the flows chapter: every pixel an independent categorical over
    the 256 grey levels, fitted in closed form from its counts :math:`n_{d,k}` in the ``train``
    images (N of them), with ``pseudocount`` :math:`a` added to each level so that a level never
    seen keeps some probability,

    .. math:: \theta_{d,k} = \frac{n_{d,k} + a}{N + 256\,a},

    and scored on the ``test`` images in bits per dimension,
    :math:`-\frac{1}{M D}\sum_{m,d} \log_2 \theta_{d,\,x_{m,d}}`. Both uint8, (N, ...) and
    (M, ...) with the same image shape."""
    for name, x in (("train", train), ("test", test)):
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim < 2 or not len(x):
            got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"{name} must be a non-empty uint8 tensor of images (N, ...), got "
                            f"{got}")  # fmt: skip
    if train.shape[1:] != test.shape[1:]:
        raise ValueError(f"train and test must hold images of one shape, got "
                         f"{tuple(train.shape[1:])} and {tuple(test.shape[1:])}")  # fmt: skip
    if isinstance(pseudocount, bool) or not isinstance(pseudocount, int | float) or not (
            0 < pseudocount < float("inf")):  # fmt: skip
        raise ValueError(f"pseudocount must be a positive number, got {pseudocount!r}")
    levels = train.flatten(1).T.long()  # (D, N)
    counts = torch.zeros(len(levels), 256, dtype=torch.float64)
    counts.scatter_add_(1, levels, torch.ones_like(levels, dtype=torch.float64))  # (D, 256)
    log_theta = (counts + pseudocount).log() - math.log(len(train) + 256 * pseudocount)
    scored = log_theta.gather(1, test.flatten(1).T.long())  # (D, M)
    return -scored.mean().item() / math.log(2)
