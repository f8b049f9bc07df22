r"""Maximum likelihood by gradient descent, with the book's loop (the likelihood chapter).

Where no closed form exists, minimise the mean negative log-likelihood
:math:`-\frac1N \ell(\theta) = -\frac1N \sum_i \log p_\theta(x_i)` by
gradient steps over the unconstrained parameters of a distribution.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from genai_course.config import check_positive_int
from genai_course.distributions import Distribution
from genai_course.likelihood import observations
from genai_course.optim import Adam
from genai_course.train.history import History
from genai_course.train.loop import fit


def fit_by_gradient(
    build: Callable[..., Distribution],
    init: dict[str, float | torch.Tensor],
    data,
    *,
    lr: float = 0.05,
    steps: int = 500,
) -> tuple[Distribution, History]:
    r"""Maximum likelihood by gradient descent: minimise :math:`-\frac1N \ell(\theta)`.

    ``build(**params)`` turns unconstrained parameters into a distribution
    (e.g. ``lambda loc, log_scale: Normal(loc, log_scale.exp())``), ``init``
    gives their starting values. Runs ``steps`` full-batch steps of the
    book's :class:`~genai_course.optim.Adam` through ``genai_course.train.fit``
    and returns the fitted distribution and the history of the loss.
    """
    check_positive_int("steps", steps)
    data = observations(data)
    data = data if data.is_floating_point() else data.to(torch.get_default_dtype())
    params = nn.ParameterDict(
        {
            name: nn.Parameter(torch.as_tensor(value, dtype=data.dtype).clone())
            for name, value in init.items()
        }
    )
    optimizer = Adam(params.parameters(), lr=lr)
    history = fit(
        params,
        optimizer,
        data,
        lambda x: -build(**params).log_prob(x),
        epochs=steps,
        batch_size=len(data),
        log_every=max(steps, 1),
    )
    with torch.no_grad():
        return build(**{name: p.detach() for name, p in params.items()}), history
