r"""Variational autoencoders (the VAE chapter).

A latent-variable model draws a code :math:`z \sim p(z) = \mathcal{N}(0, I)`
and then the data from a decoder, :math:`x \sim p_\theta(x \mid z)`: here
independent Bernoulli pixels whose logits the decoder network outputs. Its
likelihood :math:`p_\theta(x) = \int p_\theta(x \mid z)\, p(z)\, dz` has no
closed form. An encoder :math:`q_\phi(z \mid x) = \mathcal{N}(\mu, \sigma^2)`
gives the evidence lower bound (Kingma and Welling, 2014)

.. math:: \log p_\theta(x) \;\ge\; \mathrm{ELBO}(x) =
   \mathbb{E}_{q_\phi(z \mid x)}\big[\log p_\theta(x \mid z)\big]
   - \mathrm{KL}\big(q_\phi(z \mid x) \,\Vert\, p(z)\big),

which training maximises, and the importance-weighted bound (Burda et al.,
2016) that tightens it towards :math:`\log p_\theta(x)` as the number of
samples :math:`k` grows. Images are floats in [0, 1] (the Bernoulli targets);
models return decoder *logits*.

What runs in the training step (the networks, :func:`reparameterize`, and
:func:`elbo` and :func:`negative_elbo` with ``check_values=False``) checks types and
shapes but not values, which would wait for the device every step: NaN in, NaN out.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from genai_course.config import check_generator, check_positive_int, check_real
from genai_course.distributions import Normal
from genai_course.information import gaussian_kl

# -- the two models -----------------------------------------------------------------


class _VAEBase(nn.Module):
    """What both VAEs share: ``forward``, ``sample`` and ``interpolate``,
    built on the subclass's ``encode`` (x -> mu, logvar) and ``decode``
    (z -> logits)."""

    latent_dim: int

    def _per_example(self, x: torch.Tensor, expected: int) -> torch.Tensor:
        """``x`` as rows (B, expected), or a TypeError or ValueError that says why not."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError("x must be a floating-point torch.Tensor (images in [0, 1])")
        if x.ndim < 2 or len(x) == 0 or x[0].numel() != expected:
            per_example = x[0].numel() if x.ndim >= 2 and len(x) else x.numel()
            hint = ""
            if per_example == 3 * expected:
                hint = (
                    " Three-channel images must be made grey (or the model built for 3"
                    " channels); reshaping them to 784 values mixes channels and pixels."
                )
            elif x.numel() == expected:
                hint = " One example? Add a batch dimension: x[None]."
            raise ValueError(
                f"x must be a batch of examples with {expected} values each; got shape "
                f"{tuple(x.shape)} ({per_example} per example).{hint}"
            )
        return x.reshape(len(x), expected).to(next(self.parameters()).dtype)  # (B, expected)

    def _codes(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` as codes (B, latent_dim) of the weights' dtype, or an error that says why not."""
        if not isinstance(z, torch.Tensor) or not z.is_floating_point():
            raise TypeError(
                f"z must be a floating-point torch.Tensor of codes (B, {self.latent_dim})"
            )
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        return z.to(next(self.parameters()).dtype)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, draw one :math:`z` by :func:`reparameterize`, decode:
        returns the decoder logits, ``mu`` and ``logvar`` (B, latent_dim)."""
        mu, logvar = self.encode(x)
        return self.decode(reparameterize(mu, logvar, generator)), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of :math:`z \\sim \\mathcal{N}(0, I)`, decoded to pixel
        probabilities :math:`\\sigma(\\text{logits})` (the Bernoulli means, the
        images usually shown) in eval mode; ``torch.bernoulli`` of them gives
        binary samples."""
        check_positive_int("n", n)
        check_generator("generator", generator)
        weight = next(self.parameters())
        noise_device = generator.device if generator is not None else weight.device
        z = torch.randn(n, self.latent_dim, generator=generator, device=noise_device)
        return self._probabilities(z.to(weight.device, weight.dtype))

    @torch.no_grad()
    def interpolate(self, z0: torch.Tensor, z1: torch.Tensor, steps: int = 8) -> torch.Tensor:
        """Pixel probabilities decoded at ``steps`` evenly spaced points on the
        line from ``z0`` to ``z1`` (two codes of shape (latent_dim,)), ends included."""
        check_positive_int("steps", steps)
        for name, z in (("z0", z0), ("z1", z1)):
            if not isinstance(z, torch.Tensor) or tuple(z.shape) != (self.latent_dim,):
                raise ValueError(f"{name} must be a tensor of shape ({self.latent_dim},)")
            if not z.is_floating_point():
                raise TypeError(f"{name} must be a floating-point tensor, got {z.dtype}")
            if not torch.isfinite(z).all():
                raise ValueError(f"{name} contains NaN or infinite values")
        weight = next(self.parameters())
        t = torch.linspace(0, 1, steps, device=z0.device, dtype=z0.dtype)[:, None]  # (steps, 1)
        return self._probabilities(((1 - t) * z0 + t * z1).to(weight.device, weight.dtype))

    def _probabilities(self, z: torch.Tensor) -> torch.Tensor:
        was_training = self.training
        self.eval()
        try:
            return torch.sigmoid(self.decode(z))
        finally:
            self.train(was_training)


class VAE(_VAEBase):
    """The classic MLP VAE: encoder ``input_dim -> hidden_dim`` (ReLU) ->
    ``mu``, ``logvar`` (latent_dim each); decoder ``latent_dim -> hidden_dim``
    (ReLU) ``-> input_dim`` logits. Takes images (B, 28, 28), (B, 1, 28, 28)
    or rows (B, input_dim); ``decode`` returns rows (B, input_dim)."""

    def __init__(self, input_dim: int = 784, hidden_dim: int = 400, latent_dim: int = 20):
        super().__init__()
        for name, value in (
            ("input_dim", input_dim),
            ("hidden_dim", hidden_dim),
            ("latent_dim", latent_dim),
        ):
            check_positive_int(name, value)
        self.input_dim, self.latent_dim = input_dim, latent_dim
        self.encoder = nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.ReLU())
        self.to_mu = nn.Linear(hidden_dim, latent_dim)
        self.to_logvar = nn.Linear(hidden_dim, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, input_dim)
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's Gaussian: ``mu`` and ``logvar``, (B, latent_dim) each."""
        h = self.encoder(self._per_example(x, self.input_dim))  # (B, hidden)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of every pixel: (B, input_dim)."""
        return self.decoder(self._codes(z))


class ConvVAE(_VAEBase):
    """A convolutional VAE for 28 x 28 images. Encoder: (B, 1, 28, 28) ->
    (B, w, 14, 14) -> (B, 2w, 7, 7) by stride-2 convolutions, then linear maps
    to ``mu`` and ``logvar``; decoder: the mirror image with transposed
    convolutions, ending in logits (B, 1, 28, 28). ``w`` is ``width``."""

    def __init__(self, latent_dim: int = 20, width: int = 32):
        super().__init__()
        check_positive_int("latent_dim", latent_dim)
        check_positive_int("width", width)
        self.latent_dim = latent_dim
        flat = 2 * width * 7 * 7
        self.encoder = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1),  # (B, w, 14, 14)
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, 2, 1),  # (B, 2w, 7, 7)
            nn.ReLU(),
            nn.Flatten(),  # (B, 2w * 49)
        )
        self.to_mu = nn.Linear(flat, latent_dim)
        self.to_logvar = nn.Linear(flat, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, flat),
            nn.ReLU(),
            nn.Unflatten(1, (2 * width, 7, 7)),  # (B, 2w, 7, 7)
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1),  # (B, w, 14, 14)
            nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, 2, 1),  # (B, 1, 28, 28) logits
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's Gaussian: ``mu`` and ``logvar``, (B, latent_dim) each."""
        h = self.encoder(self._per_example(x, 784).reshape(-1, 1, 28, 28))
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of every pixel: (B, 1, 28, 28)."""
        return self.decoder(self._codes(z))


# -- the bound ---------------------------------------------------------------------


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    r""":math:`z = \mu + \sigma \odot \varepsilon` with
    :math:`\sigma = e^{\frac12 \log\sigma^2}` and :math:`\varepsilon \sim \mathcal{N}(0, I)`:
    a draw from :math:`\mathcal{N}(\mu, \sigma^2)` through which gradients
    reach ``mu`` and ``logvar``; the randomness is all in :math:`\varepsilon`."""
    for name, value in (("mu", mu), ("logvar", logvar)):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor")
    check_generator("generator", generator)
    if mu.shape != logvar.shape:
        raise ValueError(
            f"mu and logvar must have the same shape, got {tuple(mu.shape)} and "
            f"{tuple(logvar.shape)}"
        )
    noise_device = generator.device if generator is not None else mu.device
    eps = torch.randn(mu.shape, generator=generator, device=noise_device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps.to(mu.device)


class ELBO(NamedTuple):
    """The bound and its two terms, one value per example, in nats:
    ``elbo = reconstruction - kl``."""

    elbo: torch.Tensor
    reconstruction: torch.Tensor  # log p(x | z) at one z ~ q(z | x)
    kl: torch.Tensor  # KL(q(z | x) || N(0, I)), in closed form


def _check_targets(x: torch.Tensor, values: bool = True, **finite: torch.Tensor) -> None:
    """``x`` floating, and with ``values`` in [0, 1] and the ``finite`` tensors finite, all
    with one read-back from the device."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating-point torch.Tensor of pixel values in [0, 1]")
    if not (values and x.numel()):
        return
    low, high = torch.aminmax(x)  # one pass; NaN propagates to both
    flags = [torch.isfinite(t).all().to(low) for t in finite.values()]
    low, high, *good = torch.stack((low, high, *flags)).tolist()
    if math.isnan(low) or math.isnan(high):
        raise ValueError("x contains NaN")
    if low < 0 or high > 1:
        raise ValueError(
            f"x must be in [0, 1], the targets of the Bernoulli decoder; got values from "
            f"{low:.3g} to {high:.3g}. Images normalised to [-1, 1] "
            "(or standardised) give a 'binary cross-entropy' that is no log-likelihood: "
            "map them back with (x + 1) / 2"
        )
    for name, ok in zip(finite, good, strict=True):
        if not ok:
            raise ValueError(f"{name} contains NaN or infinite values")


def elbo(
    x: torch.Tensor, x_logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *,
    check_values: bool = True,
) -> ELBO:  # fmt: skip
    r"""The ELBO of each example, from one decoder output:

    .. math:: \mathrm{ELBO}(x) \approx \underbrace{\sum_d \big[x_d \log\sigma(\ell_d)
       + (1 - x_d) \log\sigma(-\ell_d)\big]}_{\text{reconstruction}}
       - \underbrace{\mathrm{KL}\big(\mathcal{N}(\mu, \sigma^2) \,\Vert\,
       \mathcal{N}(0, I)\big)}_{\text{closed form}},

    ``x`` (B, ...) in [0, 1]; ``x_logits`` the decoder's logits with as many
    values per example; ``mu``, ``logvar`` (B, latent_dim). The KL is
    :func:`genai_course.information.gaussian_kl`; the reconstruction term is
    PyTorch's one-kernel ``binary_cross_entropy_with_logits``, which the tests
    show equal to the book's :func:`genai_course.information.binary_cross_entropy_with_logits`.
    ``check_values=False`` skips the check that ``x`` is in [0, 1] and that ``x_logits``,
    ``mu`` and ``logvar`` are finite, which reads numbers back from the device: for a caller
    whose ``x`` is binary by construction (the recipe's batches, fresh from
    :func:`~genai_course.data.binarize`), so that a training step needs no read-back; NaN
    in then gives NaN out.
    """
    _check_bound(x, x_logits, mu, logvar, check_values)
    targets, logits = x.reshape(len(x), -1), x_logits.reshape(len(x), -1)
    reconstruction = -F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(-1)
    kl = gaussian_kl(mu, logvar)  # (B,)
    return ELBO(reconstruction - kl, reconstruction, kl)


def _check_bound(x, x_logits, mu, logvar, check_values: bool) -> None:
    """The checks of :func:`elbo`'s arguments, shared by :func:`gaussian_elbo`."""
    if not isinstance(check_values, bool):
        raise TypeError(f"check_values must be True or False, got {check_values!r}")
    _check_targets(x, values=False)
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch of examples, got shape {tuple(x.shape)}")
    for name, value in (("x_logits", x_logits), ("mu", mu), ("logvar", logvar)):
        if isinstance(value, torch.Tensor) and not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {value.dtype}")
    if not isinstance(x_logits, torch.Tensor) or x_logits.shape[:1] != x.shape[:1]:
        raise ValueError("x_logits must be a tensor with one row per example of x")
    if x_logits[0].numel() != x[0].numel():
        raise ValueError(
            f"x has {x[0].numel()} values per example but x_logits has {x_logits[0].numel()} "
            f"(shapes {tuple(x.shape)} and {tuple(x_logits.shape)})"
        )
    if not isinstance(mu, torch.Tensor) or mu.ndim != 2 or len(mu) != len(x):
        raise ValueError(f"mu must have shape (B, latent_dim) with B = {len(x)}")
    if not isinstance(logvar, torch.Tensor) or logvar.shape != mu.shape:
        raise ValueError(f"logvar must have the shape of mu, {tuple(mu.shape)}")
    _check_targets(x, check_values, x_logits=x_logits, mu=mu, logvar=logvar)


def negative_elbo(
    model: VAE | ConvVAE, x: torch.Tensor, generator: torch.Generator | None = None, *,
    beta: float | torch.Tensor = 1.0, check_values: bool = True,
) -> torch.Tensor:  # fmt: skip
    """The training loss: :math:`-\\mathrm{ELBO}` of each example of ``x``
    (B,), with one reparameterised sample of :math:`z` per example (``check_values``:
    see :func:`elbo`). With ``beta`` :math:`= \\beta \\ne 1`, the :math:`\\beta`-weighted
    loss :math:`-(\\text{reconstruction} - \\beta\\, \\mathrm{KL})` (Higgins et al., 2017),
    which bounds nothing unless :math:`\\beta = 1` (the chapter VAEs in practice); a 0-dim tensor
    ``beta`` (a warm-up's, computed on the device) is used as it is, its value unchecked."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a VAE (an nn.Module), got {type(model).__name__}")
    beta = _check_beta(beta)
    x_logits, mu, logvar = model(x, generator)
    bound = elbo(x, x_logits, mu, logvar, check_values=check_values)
    if isinstance(beta, float) and beta == 1.0:  # the bound itself, as it always was
        return -bound.elbo
    return -(bound.reconstruction - beta * bound.kl)


def _check_beta(beta) -> float | torch.Tensor:
    """``beta`` as a float >= 0, or a 0-dim floating tensor (unchecked: a warm-up's)."""
    if isinstance(beta, torch.Tensor) and beta.ndim == 0 and not beta.is_complex():
        return beta if beta.is_floating_point() else beta.float()
    if isinstance(beta, torch.Tensor):
        raise ValueError(f"beta must be a number >= 0 or a 0-dim tensor, got shape "
                         f"{tuple(beta.shape)} and dtype {beta.dtype}")  # fmt: skip
    return check_real("beta", beta, 0.0)


# -- the Gaussian decoder ----------------------------------------------------------------


def gaussian_log_likelihood(
    x: torch.Tensor, x_mean: torch.Tensor, sigma: float
) -> torch.Tensor:
    r"""The log-density of a Gaussian decoder with a fixed standard deviation, per example (B,):

    .. math:: \log \mathcal{N}(x; \bar x, \sigma^2 I)
       = -\frac{\lVert x - \bar x \rVert^2}{2\sigma^2} - \frac{D}{2} \log(2\pi\sigma^2),

    ``x`` and ``x_mean`` (:math:`\bar x`) with :math:`D` values per example each, ``sigma`` a
    number > 0. The squared error is the only term that depends on the decoder: minimising
    the mean-squared error is maximising this likelihood, for every :math:`\sigma`. Values are
    not checked (it runs in the training step): NaN in, NaN out."""
    for name, value in (("x", x), ("x_mean", x_mean)):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor")
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch of examples, got shape {tuple(x.shape)}")
    if x_mean.shape[:1] != x.shape[:1] or x_mean[0].numel() != x[0].numel():
        raise ValueError(
            f"x_mean must have one row of as many values per example as x; got shapes "
            f"{tuple(x_mean.shape)} and {tuple(x.shape)}"
        )
    sigma = check_real("sigma", sigma, 0.0, low_open=True)
    diff = (x.reshape(len(x), -1) - x_mean.reshape(len(x), -1)).to(x_mean.dtype)  # (B, D)
    d = diff.shape[1]
    # -||x - x_bar||^2 / (2 sigma^2) - D/2 log(2 pi sigma^2)
    return -(diff**2).sum(-1) / (2 * sigma**2) - 0.5 * d * math.log(2 * math.pi * sigma**2)


def gaussian_elbo(
    x: torch.Tensor, x_logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *,
    sigma: float, check_values: bool = True,
) -> ELBO:  # fmt: skip
    r"""The ELBO of each example under a Gaussian decoder
    :math:`p_\theta(x \mid z) = \mathcal{N}(\bar x, \sigma^2 I)` with mean
    :math:`\bar x = \sigma(a)`, the sigmoid of the decoder's outputs ``x_logits`` (so that
    the same networks serve both decoders, and their ``sample`` shows :math:`\bar x`):
    :func:`gaussian_log_likelihood` at one code minus the closed-form KL. ``x``: grey levels
    in [0, 1]; ``check_values``: as in :func:`elbo`. A density on the continuous
    :math:`[0, 1]^D`, in nats: it can be positive, and it cannot be compared with a Bernoulli
    decoder's log-probabilities of binary images."""
    _check_bound(x, x_logits, mu, logvar, check_values)
    reconstruction = gaussian_log_likelihood(x, torch.sigmoid(x_logits), sigma)  # (B,)
    kl = gaussian_kl(mu, logvar)  # (B,)
    return ELBO(reconstruction - kl, reconstruction, kl)


def gaussian_negative_elbo(
    model: VAE | ConvVAE, x: torch.Tensor, sigma: float,
    generator: torch.Generator | None = None, *, beta: float | torch.Tensor = 1.0,
    check_values: bool = True,
) -> torch.Tensor:  # fmt: skip
    r"""The Gaussian decoder's training loss, per example (B,):
    :math:`\frac{\lVert x - \bar x \rVert^2}{2\sigma^2} + \frac{D}{2}\log(2\pi\sigma^2)
    + \beta\, \mathrm{KL}`, with one reparameterised code (:func:`gaussian_elbo`;
    ``beta`` and ``check_values`` as in :func:`negative_elbo`). Multiplied by
    :math:`2\sigma^2` it is the squared error plus :math:`2\sigma^2 \beta\, \mathrm{KL}`
    and a constant: a fixed :math:`\sigma` acts as a :math:`\beta` of :math:`2\sigma^2`."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a VAE (an nn.Module), got {type(model).__name__}")
    beta = _check_beta(beta)
    sigma = check_real("sigma", sigma, 0.0, low_open=True)
    x_logits, mu, logvar = model(x, generator)
    bound = gaussian_elbo(x, x_logits, mu, logvar, sigma=sigma, check_values=check_values)
    return -(bound.reconstruction - beta * bound.kl)


# -- how much of the code is used ----------------------------------------------------------


class LatentUsage(NamedTuple):
    """Per latent dimension (J,): how much the encoder uses it, over a set of images."""

    kl: torch.Tensor  # mean over the images of KL(q(z_j | x) || N(0, 1)), nats
    mean_variance: torch.Tensor  # variance over the images of the posterior mean mu_j(x)
    active: torch.Tensor  # bool: mean_variance above the threshold


@torch.no_grad()
def latent_usage(model: VAE | ConvVAE, x: torch.Tensor, threshold: float = 0.01) -> LatentUsage:
    r"""Which latent dimensions carry information about ``x`` (B, ...) in [0, 1], in eval mode.

    A dimension :math:`j` is *active* when its posterior mean moves with the image:
    :math:`\mathrm{Var}_x\big(\mathbb{E}_{q(z \mid x)}[z_j]\big)` exceeds ``threshold``
    (Burda et al., 2016). A collapsed one has :math:`q(z_j \mid x) \approx \mathcal{N}(0, 1)`
    for every :math:`x`: its share of the KL term is near 0, and so is what it tells the decoder.
    """
    if not isinstance(model, _VAEBase):
        raise TypeError(f"model must be a VAE or ConvVAE, got {type(model).__name__}")
    _check_targets(x)
    if x.ndim < 2 or len(x) < 2:
        raise ValueError(f"x must hold at least 2 images to have a variance, got shape "
                         f"{tuple(x.shape)}")  # fmt: skip
    if not (isinstance(threshold, int | float) and not isinstance(threshold, bool)
            and threshold >= 0):  # fmt: skip
        raise ValueError(f"threshold must be a number >= 0, got {threshold!r}")
    was_training = model.training
    model.eval()
    mu, logvar = model.encode(x)  # (B, J) each
    model.train(was_training)
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar)  # (B, J): gaussian_kl before its sum
    variance = mu.var(dim=0, unbiased=False)  # (J,)
    return LatentUsage(kl.mean(0), variance, variance > threshold)


# -- the likelihood ----------------------------------------------------------------


@torch.no_grad()
def iwae_log_likelihood(
    model: VAE | ConvVAE,
    x: torch.Tensor,
    k: int,
    *,
    chunk_size: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""The importance-weighted estimate of :math:`\log p_\theta(x)` (Burda et
    al., 2016), one per example (B,):

    .. math:: \log p_\theta(x) \approx \log \frac1k \sum_{i=1}^k
       \frac{p_\theta(x \mid z_i)\, p(z_i)}{q_\phi(z_i \mid x)},
       \qquad z_i \sim q_\phi(z \mid x),

    computed with ``logsumexp`` over the :math:`k` log-weights. Its expectation
    is a lower bound on :math:`\log p_\theta(x)` that never decreases with
    :math:`k` (:math:`k = 1`: the ELBO) and reaches it as :math:`k \to \infty`.
    The decoder sees at most ``chunk_size`` codes at a time, so :math:`k` in
    the thousands fits in memory (default: 1,024 on the CPU, where a pass that fits
    the cache runs fastest, 16,384 on a GPU); the chunking changes which draw goes to
    which image, not the estimate's distribution. ``x``: binary images, for which this is a
    log-likelihood (grey levels in [0, 1] are accepted, but their Bernoulli
    "likelihood" is not one; see the chapter). Runs in eval mode.
    """
    if not isinstance(model, _VAEBase):
        raise TypeError(f"model must be a VAE or ConvVAE, got {type(model).__name__}")
    check_positive_int("k", k)
    if chunk_size is None:
        cpu = next(model.parameters()).device.type == "cpu"
        chunk_size = 1024 if cpu else 16_384
    check_positive_int("chunk_size", chunk_size)
    check_generator("generator", generator)
    _check_targets(x)
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch of examples, got shape {tuple(x.shape)}")
    was_training = model.training
    model.eval()
    try:
        return _iwae(model, x, k, chunk_size, generator)
    finally:
        model.train(was_training)


def _iwae(model, x, k, chunk_size, generator) -> torch.Tensor:
    """The estimate itself, block by block of examples and chunk by chunk of codes."""
    weight = next(model.parameters())
    per_block = max(1, chunk_size // k)  # examples per block
    estimates = []
    for block in x.to(weight.device, weight.dtype).split(per_block):
        mu, logvar = model.encode(block)  # (b, J) each
        q = Normal(mu, torch.exp(0.5 * logvar))
        targets = block.reshape(len(block), -1)  # (b, D)
        draws = max(1, chunk_size // len(block))  # samples of z per decoder pass
        log_w = []  # (m, b) blocks of log-weights
        for start in range(0, k, draws):
            m = min(k - start, draws)
            z = reparameterize(mu.expand(m, *mu.shape), logvar.expand(m, *logvar.shape), generator)
            logits = model.decode(z.reshape(-1, model.latent_dim)).reshape(m, len(block), -1)
            bce = F.binary_cross_entropy_with_logits(
                logits, targets.expand_as(logits), reduction="none"
            )
            log_px_z = -bce.sum(-1)  # (m, b)
            log_pz = Normal(0.0, 1.0).log_prob(z).sum(-1)  # (m, b)
            log_w.append(log_px_z + log_pz - q.log_prob(z).sum(-1))
        estimates.append(torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k))  # (b,)
    return torch.cat(estimates)


# -- the amortisation gap ------------------------------------------------------------------


def _posterior_arguments(model, x, mu, logvar, generator, **counts) -> None:
    """The checks of :func:`elbo_estimate` and :func:`optimize_posterior`."""
    if not isinstance(model, _VAEBase):
        raise TypeError(f"model must be a VAE or ConvVAE, got {type(model).__name__}")
    _check_targets(x)
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch of examples, got shape {tuple(x.shape)}")
    model._per_example(x, getattr(model, "input_dim", 784))  # as many values as the decoder's
    for name, value in counts.items():
        check_positive_int(name, value)
    check_generator("generator", generator)
    for name, value in (("mu", mu), ("logvar", logvar)):
        if value is None:
            continue
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor (B, latent_dim)")
        if tuple(value.shape) != (len(x), model.latent_dim):
            raise ValueError(f"{name} must have shape ({len(x)}, {model.latent_dim}), "
                             f"one code per image of x; got {tuple(value.shape)}")  # fmt: skip
        if not torch.isfinite(value).all():
            raise ValueError(f"{name} contains NaN or infinite values")


def _mean_elbo(model, targets, mu, logvar, samples, generator) -> torch.Tensor:
    """The ELBO of q = N(mu, exp(logvar)) per image (b,), by ``samples`` codes each."""
    z = reparameterize(mu.expand(samples, *mu.shape), logvar.expand(samples, *mu.shape),
                       generator)  # (S, b, J)  # fmt: skip
    logits = model.decode(z.reshape(-1, model.latent_dim)).reshape(samples, len(mu), -1)
    bce = F.binary_cross_entropy_with_logits(logits, targets.expand_as(logits), reduction="none")
    # E_q[log p(x | z)] - KL(q || N(0, I))
    return -bce.sum(-1).mean(0) - gaussian_kl(mu, logvar)  # (b,)


def elbo_estimate(
    model: VAE | ConvVAE, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *,
    samples: int = 1000, generator: torch.Generator | None = None,
) -> torch.Tensor:  # fmt: skip
    r"""The ELBO of any diagonal Gaussian :math:`q = \mathcal{N}(\mu, \operatorname{diag}
    e^{\log\sigma^2})` for each image of ``x`` (B,), with the model's Bernoulli decoder:

    .. math:: \mathrm{ELBO}(x; q) \approx \frac1S \sum_{s=1}^{S} \log p_\theta(x \mid z_s)
       - \mathrm{KL}\big(q \,\Vert\, \mathcal{N}(0, I)\big), \qquad z_s \sim q,

    the reconstruction averaged over ``samples`` :math:`= S` codes, the KL in closed form.
    ``mu``, ``logvar``: (B, latent_dim), one Gaussian per image, whether the encoder's or
    :func:`optimize_posterior`'s. In eval mode, without gradients."""
    _posterior_arguments(model, x, mu, logvar, generator, samples=samples)
    weight = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            targets = x.reshape(len(x), -1).to(weight.device, weight.dtype)  # (B, D)
            mu, logvar = (t.to(weight.device, weight.dtype) for t in (mu, logvar))
            return _mean_elbo(model, targets, mu, logvar, samples, generator)
    finally:
        model.train(was_training)


def optimize_posterior(
    model: VAE | ConvVAE, x: torch.Tensor, *, steps: int = 300, lr: float = 0.01,
    samples: int = 16, generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    r"""The best Gaussian for each image on its own: ``mu``, ``logvar`` (B, latent_dim) that
    maximise :math:`\mathrm{ELBO}(x; q)` with the decoder fixed, found by ``steps`` steps of
    Adam (learning rate ``lr``) on the ELBO estimated with ``samples`` reparameterised codes
    per image, starting from the encoder's output (Cremer et al., 2018).

    The encoder is *amortised*: one network gives every image its :math:`q_\phi(z \mid x)`.
    The ELBO of the best :math:`q^*` per image, minus that of :math:`q_\phi`, is the
    *amortisation gap*; :math:`\log p_\theta(x) - \mathrm{ELBO}(x; q^*)` the *approximation gap*,
    the price of a Gaussian :math:`q`. The images' own Gaussians are independent, so one Adam
    on the sum of their bounds optimises each. In eval mode; the model is not changed."""
    _posterior_arguments(model, x, None, None, generator, steps=steps, samples=samples)
    lr = check_real("lr", lr, 0.0, low_open=True)
    weight = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        targets = x.reshape(len(x), -1).to(weight.device, weight.dtype)  # (B, D)
        with torch.no_grad():
            mu, logvar = model.encode(x)  # (B, J) each: the start
        mu, logvar = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
        optimizer = torch.optim.Adam([mu, logvar], lr=lr)
        for _ in range(steps):
            # -sum_x ELBO(x; q_x): each image's q gets the gradient of its own bound
            loss = -_mean_elbo(model, targets, mu, logvar, samples, generator).sum()
            mu.grad, logvar.grad = torch.autograd.grad(loss, (mu, logvar))  # the decoder fixed
            optimizer.step()
    finally:
        model.train(was_training)
    return mu.detach(), logvar.detach()
