"""Wrong code, kept so that its symptoms can be run and tested (the appendix of common mistakes).

Each function here is a mistake that circulates in tutorials and copied
code. It runs without an error, which is why it survives. The appendix runs
each one, measures the symptom and explains it with the book's mathematics,
and ``tests/test_mistakes.py`` keeps each symptom true. Nothing else in the
package imports this module: the right versions are
:func:`genai_course.information.gaussian_kl`,
:class:`genai_course.distributions.Multinomial`,
:func:`genai_course.lstm.generate`, :func:`genai_course.train.gradient_step`,
:func:`genai_course.vae.negative_elbo` and, for a GAN's quality,
:func:`genai_course.metrics.mode_coverage` and :func:`genai_course.metrics.fid`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

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


def vae_loss_with_mean_bce(model, x: torch.Tensor, generator=None) -> torch.Tensor:
    r"""WRONG: the VAE loss as tutorials write it, with ``nn.BCELoss()``'s default
    reduction, a mean over all :math:`B D` pixel values of the batch, plus the KL summed
    over the batch and the :math:`J` latent dimensions; one number (0-dim), not one per
    image. With :math:`z_i \sim q_\phi(z \mid x_i)` and :math:`\mathrm{KL}_i` the KL term
    of image :math:`i`,

    .. math:: \frac{1}{BD} \sum_{i=1}^B -\log p_\theta(x_i \mid z_i)
       + \sum_{i=1}^B \mathrm{KL}_i
       = \frac1D \cdot \frac1B \sum_{i=1}^B
       \big(-\log p_\theta(x_i \mid z_i) + B D\, \mathrm{KL}_i\big):

    the mean negative ELBO of a :math:`\beta`-VAE with :math:`\beta = BD` (100,352 for
    batches of 128 images of 784 pixels), scaled by :math:`1/D`, which Adam ignores. A nat
    of KL costs as much as :math:`BD` nats of reconstruction, and the code collapses. (The
    cross-entropy is taken from the logits, as the book's models output them;
    ``nn.BCELoss()`` of their sigmoid computes the same mean.)"""
    x_logits, mu, logvar = model(x, generator)  # (B, D), (B, J), (B, J)
    # WRONG: the default reduction="mean" divides the sum over B x D pixel values by B * D
    bce = F.binary_cross_entropy_with_logits(x_logits, x.reshape(x_logits.shape))
    # the KL of every image, summed over the batch and the J dimensions
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp())
    return bce + kl


def _as_logits(value, name: str) -> torch.Tensor:
    """Logits (N,) from (N,) or (N, 1), floating, non-empty and finite; or an error naming
    ``name``."""
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of logits")
    if value.ndim == 2 and value.shape[1] == 1:
        value = value[:, 0]  # (N, 1) -> (N,)
    if value.ndim != 1 or len(value) == 0:
        raise ValueError(
            f"{name} must have shape (N,) or (N, 1), one logit per example, N >= 1; got "
            f"{tuple(value.shape)}"
        )
    if not torch.isfinite(value).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return value


def discriminator_accuracy(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> float:
    r"""The discriminator's accuracy at telling real from fake, as GAN tutorials print it
    after every step (a Keras GAN's ``D acc.``), and WRONG as a measure of the generator's
    quality: a two-class classifier's accuracy, the mean of its accuracy on each class,

    .. math:: \tfrac12 \Big( \tfrac{1}{N_r}\textstyle\sum_i [a^{\text{real}}_i > 0]
       + \tfrac{1}{N_f}\sum_i [a^{\text{fake}}_i \le 0] \Big),

    with "real" predicted where :math:`C(x) = \sigma(a) > \frac12` (Keras's threshold).
    It is :math:`\frac12` exactly when the fakes are the real points themselves, for any
    discriminator; near :math:`\frac12` it says only that *this* discriminator cannot
    separate the two sets, which a collapsed generator against a weak or stalled
    discriminator achieves too (the appendix of common mistakes). ``real_logits`` (N_r,)
    and ``fake_logits`` (N_f,), or (N, 1); the two sizes may differ."""
    real = _as_logits(real_logits, "real_logits")
    fake = _as_logits(fake_logits, "fake_logits")
    correct_real = (real > 0).double().mean()  # predicted real: sigma(a) > 1/2
    correct_fake = (fake <= 0).double().mean()
    return (0.5 * (correct_real + correct_fake)).item()
