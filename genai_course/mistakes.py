"""Wrong code, kept so that its symptoms can be run and tested (the appendix of common mistakes).

Each function here is a mistake that circulates in tutorials and copied
code. It runs without an error, which is why it survives. The appendix runs
each one, measures the symptom and explains it with the book's mathematics,
and ``tests/test_mistakes.py`` keeps each symptom true. Nothing else in the
package imports this module: the right versions are
:func:`genai_course.information.gaussian_kl`,
:class:`genai_course.distributions.Multinomial`,
:func:`genai_course.lstm.generate` and :func:`genai_course.train.gradient_step`.
"""

from __future__ import annotations

import math

import torch

from genai_course.vae import elbo


def tutorial_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """WRONG: ``0.5*(mu**2 + logvar**2 - 1) - logvar``, summed over the last
    axis, offered as KL(N(mu, sigma^2) || N(0, I)). It squares the
    log-variance where the variance belongs and doubles the log-variance
    term: it is -1/2 per dimension at q = p, where a divergence is 0."""
    return (0.5 * (mu**2 + logvar**2 - 1) - logvar).sum(-1)


def negative_elbo_with_tutorial_kl(model, x: torch.Tensor, generator=None) -> torch.Tensor:
    """WRONG: the VAE loss of ``genai_course.vae.negative_elbo`` with
    ``tutorial_kl`` in place of the KL term, (B,)."""
    x_logits, mu, logvar = model(x, generator)
    return -elbo(x, x_logits, mu, logvar).reconstruction + tutorial_kl(mu, logvar)


def two_factorial_multinomial_pmf(counts, probs) -> float:
    """WRONG: n! / (x_1! x_2!) * prod_k pi_k^x_k, the binomial coefficient
    written for two categories and used for any number; right only when
    there are two."""
    x = [int(c) for c in counts]
    coefficient = math.factorial(sum(x)) / (math.factorial(x[0]) * math.factorial(x[1]))
    return coefficient * math.prod(float(p) ** k for p, k in zip(probs, x, strict=True))


def sample_from_shifted_logits(
    logits: torch.Tensor, num_samples: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """WRONG: logits shifted to be non-negative, so that ``torch.multinomial``
    stops refusing them, and then used as if they were probabilities. Draws
    from (l - min l) / sum(l - min l) instead of softmax(l); the least
    likely category is never drawn."""
    weights = logits - logits.min()
    return torch.multinomial(weights, num_samples, replacement=True, generator=generator)


def gradient_step_without_zero_grad(loss_fn, optimizer: torch.optim.Optimizer):
    """WRONG: the step of :func:`genai_course.train.gradient_step` without
    ``optimizer.zero_grad()``. ``backward`` adds each new gradient to ``.grad``,
    so every step moves the parameters by the sum of all the gradients so far:
    a heavy ball with no friction, which oscillates and never settles."""

    def step(*batch: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = loss_fn(*batch).mean()
        loss.backward()  # WRONG: adds to the gradients of all earlier steps
        optimizer.step()
        return {"loss": loss}

    return step
