r"""Probability distributions, written from their formulas (the distributions chapter).

Each distribution is an object with the same small interface, mirroring the
mathematics: ``log_prob(x)`` (computed in log space, so it stays finite far
into the tails), ``prob(x)`` (its exponential: the pmf or pdf),
``sample(shape, generator)``, ``mean``, ``variance`` and ``entropy()``.
Parameters broadcast against each other and against ``x``, keep their dtype
(float64 in, float64 out) and stay on their device. Values outside the
support get ``log_prob = -inf``, exactly where ``scipy.stats`` gives it.
"""

from __future__ import annotations

import functools
import math
import operator

import numpy as np
import torch


def _param(value, name: str) -> torch.Tensor:
    """A parameter as a floating tensor (float64 stays float64)."""
    tensor = torch.as_tensor(value)
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.get_default_dtype())
    if torch.isnan(tensor).any():
        raise ValueError(f"{name} contains NaN")
    return tensor


def _check_broadcast(**named: torch.Tensor) -> None:
    """Raise ``ValueError`` naming the parameters unless their shapes broadcast."""
    (a, x), (b, y) = named.items()
    try:
        torch.broadcast_shapes(x.shape, y.shape)
    except RuntimeError:
        raise ValueError(
            f"{a} and {b} must broadcast; got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        ) from None


def _params(**named) -> tuple[torch.Tensor, ...]:
    """Parameters as tensors of one floating dtype on one device. Tensors and
    arrays decide both (float64 if any is float64, the device of the first);
    Python numbers and lists follow them, as in ``Normal(0.0, sigma64)``."""
    given = [torch.as_tensor(v) for v in named.values() if isinstance(v, torch.Tensor | np.ndarray)]
    floating = [t.dtype for t in given if t.is_floating_point()]
    dtype = (
        functools.reduce(torch.promote_types, floating) if floating else torch.get_default_dtype()
    )
    device = given[0].device if given else None
    return tuple(
        _param(torch.as_tensor(value, dtype=dtype, device=device), name)
        for name, value in named.items()
    )


def _value(x, like: torch.Tensor) -> torch.Tensor:
    """An argument of log_prob as a tensor of the parameters' dtype and device."""
    return torch.as_tensor(x, dtype=like.dtype, device=like.device)


def _check_probability(p: torch.Tensor, name: str) -> None:
    if ((p < 0) | (p > 1)).any():
        raise ValueError(
            f"{name} must be a probability in [0, 1]; got values from "
            f"{p.min().item():.4g} to {p.max().item():.4g}"
        )


def _check_simplex(probs: torch.Tensor, name: str) -> None:
    if probs.ndim == 0:
        raise ValueError(f"{name} must be a vector of probabilities, got a scalar")
    if (probs < 0).any():
        raise ValueError(f"{name} must be non-negative; got {probs.min().item():.4g}")
    total = probs.sum(-1)
    if not torch.allclose(total, torch.ones_like(total), atol=1e-6, rtol=0):
        raise ValueError(f"{name} must sum to 1 along its last axis; got sums {total.tolist()}")


def _check_count(n: torch.Tensor, name: str) -> None:
    if (n < 0).any() or (n != torch.floor(n)).any() or not torch.isfinite(n).all():
        raise ValueError(f"{name} must be a non-negative integer; got {n.tolist()}")


def _is_integer(x: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(x) & (x == torch.floor(x))


def _log_factorial(k: torch.Tensor) -> torch.Tensor:
    """log k! = log Gamma(k + 1)."""
    return torch.lgamma(k + 1)


class Distribution:
    """What every distribution of the book offers."""

    def log_prob(self, x) -> torch.Tensor:
        raise NotImplementedError

    def prob(self, x) -> torch.Tensor:
        """The pmf (discrete) or pdf (continuous): ``exp(log_prob(x))``."""
        return self.log_prob(x).exp()

    def sample(self, shape=(), generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def entropy(self) -> torch.Tensor:
        raise NotImplementedError


class Bernoulli(Distribution):
    r"""One binary variable: :math:`p(x) = p^x (1 - p)^{1 - x}`, :math:`x \in \{0, 1\}`."""

    def __init__(self, p):
        self.p = _param(p, "p")
        _check_probability(self.p, "p")

    @property
    def mean(self) -> torch.Tensor:
        return self.p

    @property
    def variance(self) -> torch.Tensor:
        return self.p * (1 - self.p)

    def log_prob(self, x) -> torch.Tensor:
        x = _value(x, self.p)
        # log p if x = 1, log(1 - p) if x = 0; log1p keeps small p accurate
        log_p = torch.where(x == 1, torch.log(self.p), torch.log1p(-self.p))
        return torch.where((x == 0) | (x == 1), log_p, -math.inf)

    def sample(self, shape=(), generator=None) -> torch.Tensor:
        size = (*torch.Size(shape), *self.p.shape)
        u = torch.rand(size, generator=generator, dtype=self.p.dtype, device=self.p.device)
        return (u < self.p).to(self.p.dtype)

    def entropy(self) -> torch.Tensor:
        # H = -p log p - (1 - p) log(1 - p), with 0 log 0 = 0
        return -torch.xlogy(self.p, self.p) - torch.special.xlog1py(1 - self.p, -self.p)


class Binomial(Distribution):
    r"""Successes in ``n`` independent trials:
    :math:`p(k) = \binom{n}{k} p^k (1 - p)^{n - k}`, :math:`k = 0, \dots, n`."""

    def __init__(self, n, p):
        self.n, self.p = _params(n=n, p=p)
        _check_probability(self.p, "p")
        _check_count(self.n, "n")
        _check_broadcast(n=self.n, p=self.p)

    @property
    def mean(self) -> torch.Tensor:
        return self.n * self.p

    @property
    def variance(self) -> torch.Tensor:
        return self.n * self.p * (1 - self.p)

    def log_prob(self, k) -> torch.Tensor:
        k = _value(k, self.p)
        n, p = self.n, self.p
        inside = _is_integer(k) & (k >= 0) & (k <= n)
        k_in = torch.where(inside, k, torch.zeros_like(k))  # keeps lgamma finite outside
        # log C(n, k) = log n! - log k! - log (n - k)!
        log_choose = _log_factorial(n) - _log_factorial(k_in) - _log_factorial(n - k_in)
        # k log p + (n - k) log(1 - p), with 0 log 0 = 0
        log_p = torch.xlogy(k_in, p) + torch.special.xlog1py(n - k_in, -p)
        return torch.where(inside, log_choose + log_p, -math.inf)

    def sample(self, shape=(), generator=None) -> torch.Tensor:
        n, p = torch.broadcast_tensors(self.n, self.p)
        size = (*torch.Size(shape), *n.shape)
        return torch.binomial(
            n.expand(size).contiguous(), p.expand(size).contiguous(), generator=generator
        )

    def entropy(self) -> torch.Tensor:
        # H = -sum_k p(k) log p(k), summed exactly over k = 0..max(n)
        batch = torch.broadcast_shapes(self.n.shape, self.p.shape)
        k = torch.arange(int(self.n.max().item()) + 1, dtype=self.p.dtype, device=self.p.device)
        log_pmf = self.log_prob(k.reshape(-1, *[1] * len(batch)))  # (K, *batch)
        return torch.special.entr(log_pmf.exp()).sum(0)  # entr(q) = -q log q


class Categorical(Distribution):
    r"""One of :math:`K` categories: :math:`p(x = k) = \pi_k`, probabilities on the last axis.

    ``mean`` and ``variance`` are those of the one-hot vector of ``x``:
    :math:`\pi_k` and :math:`\pi_k (1 - \pi_k)`.
    """

    def __init__(self, probs):
        self.probs = _param(probs, "probs")
        _check_simplex(self.probs, "probs")

    @property
    def variance(self) -> torch.Tensor:
        # component k of the one-hot vector is a Bernoulli(pi_k) variable
        return Bernoulli(self.probs).variance

    @property
    def mean(self) -> torch.Tensor:
        return self.probs

    def log_prob(self, x) -> torch.Tensor:
        x = _value(x, self.probs)
        num_classes = self.probs.shape[-1]
        inside = _is_integer(x) & (x >= 0) & (x < num_classes)
        index = torch.where(inside, x, torch.zeros_like(x)).long()
        batch = torch.broadcast_shapes(index.shape, self.probs.shape[:-1])
        probs = self.probs.expand(*batch, num_classes)
        log_pi = torch.log(probs.gather(-1, index.expand(batch)[..., None]))[..., 0]
        return torch.where(inside, log_pi, -math.inf)

    def sample(self, shape=(), generator=None) -> torch.Tensor:
        shape = torch.Size(shape)
        flat = self.probs.reshape(-1, self.probs.shape[-1])  # (batch, K)
        draws = torch.multinomial(
            flat, max(shape.numel(), 1), replacement=True, generator=generator
        )  # (batch, S)
        draws = draws[:, : shape.numel()].T.reshape(*shape, *self.probs.shape[:-1])
        return draws.to(self.probs.dtype)

    def entropy(self) -> torch.Tensor:
        # H = -sum_k pi_k log pi_k
        return torch.special.entr(self.probs).sum(-1)


class Multinomial(Distribution):
    r"""Counts of :math:`K` categories in ``n`` independent draws:

    .. math:: p(x) = \frac{n!}{x_1! \cdots x_K!} \prod_k \pi_k^{x_k},
       \qquad \textstyle\sum_k x_k = n.

    (With :math:`K = 2` it is the binomial; the "multinomial" formula with
    only two factorials in the denominator that some tutorials give is that
    special case, not this distribution.)
    """

    def __init__(self, n: int, probs):
        self.probs = _param(probs, "probs")
        _check_simplex(self.probs, "probs")
        try:
            count = operator.index(n)  # an int, a NumPy integer, a 0-d integer tensor
        except TypeError:
            count = -1
        if isinstance(n, bool) or count < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        self.n = count

    @property
    def variance(self) -> torch.Tensor:
        # count k alone is a Binomial(n, pi_k) variable
        return Binomial(self.n, self.probs).variance

    @property
    def mean(self) -> torch.Tensor:
        return self.n * self.probs

    def log_prob(self, x) -> torch.Tensor:
        x = _value(x, self.probs)
        if x.ndim == 0 or x.shape[-1] != self.probs.shape[-1]:
            raise ValueError(
                f"x must hold counts for the {self.probs.shape[-1]} categories on its last axis, "
                f"got shape {tuple(x.shape)}"
            )
        inside = (_is_integer(x) & (x >= 0)).all(-1) & (x.sum(-1) == self.n)
        x_in = torch.where(inside[..., None], x, torch.zeros_like(x))
        n = torch.tensor(float(self.n), dtype=x.dtype, device=x.device)
        # log n! - sum_k log x_k! + sum_k x_k log pi_k
        log_p = (
            _log_factorial(n) - _log_factorial(x_in).sum(-1) + torch.xlogy(x_in, self.probs).sum(-1)
        )
        return torch.where(inside, log_p, -math.inf)

    def sample(self, shape=(), generator=None) -> torch.Tensor:
        draws = Categorical(self.probs).sample((self.n, *torch.Size(shape)), generator)
        counts = torch.nn.functional.one_hot(draws.long(), self.probs.shape[-1])
        return counts.sum(0).to(self.probs.dtype)  # (*shape, *batch, K)

    def entropy(self) -> torch.Tensor:
        # H = -log n! - n sum_k pi_k log pi_k + sum_k E[log x_k!], x_k ~ Binomial(n, pi_k)
        k = torch.arange(self.n + 1, dtype=self.probs.dtype, device=self.probs.device)
        k = k.reshape(-1, *[1] * self.probs.ndim)  # (n + 1, *batch, K)
        marginal = Binomial(self.n, self.probs).prob(k)
        expected_log_fact = (marginal * _log_factorial(k)).sum(0).sum(-1)
        n = torch.tensor(float(self.n), dtype=self.probs.dtype, device=self.probs.device)
        return (
            -_log_factorial(n) + self.n * torch.special.entr(self.probs).sum(-1) + expected_log_fact
        )


class Normal(Distribution):
    r"""The Gaussian :math:`\mathcal{N}(\mu, \sigma^2)`:
    :math:`\log p(x) = -\frac{(x - \mu)^2}{2\sigma^2} - \log \sigma - \frac12 \log 2\pi`."""

    def __init__(self, loc, scale):
        self.loc, self.scale = _params(loc=loc, scale=scale)
        if not torch.isfinite(self.loc).all():
            raise ValueError("loc must be finite")
        if (self.scale <= 0).any() or not torch.isfinite(self.scale).all():
            raise ValueError(
                f"scale must be finite and > 0; got values from {self.scale.min().item():.4g} "
                f"to {self.scale.max().item():.4g}"
            )
        _check_broadcast(loc=self.loc, scale=self.scale)

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        return self.scale**2

    def log_prob(self, x) -> torch.Tensor:
        x = _value(x, self.loc)
        z = (x - self.loc) / self.scale
        return -0.5 * z**2 - torch.log(self.scale) - 0.5 * math.log(2 * math.pi)

    def sample(self, shape=(), generator=None) -> torch.Tensor:
        loc, scale = torch.broadcast_tensors(self.loc, self.scale)
        size = (*torch.Size(shape), *loc.shape)
        eps = torch.randn(size, generator=generator, dtype=loc.dtype, device=loc.device)
        return loc + scale * eps

    def entropy(self) -> torch.Tensor:
        # H = 1/2 log(2 pi e sigma^2)
        return 0.5 * math.log(2 * math.pi * math.e) + torch.log(self.scale)


class MultivariateNormal(Distribution):
    r"""The Gaussian :math:`\mathcal{N}(\mu, \Sigma)` in :math:`D` dimensions:

    .. math:: \log p(x) = -\tfrac12 (x - \mu)^\top \Sigma^{-1} (x - \mu)
       - \tfrac12 \log\det \Sigma - \tfrac{D}{2} \log 2\pi,

    computed with the Cholesky factor :math:`\Sigma = L L^\top`: the quadratic
    form is :math:`\lVert L^{-1}(x - \mu) \rVert^2` and
    :math:`\log\det\Sigma = 2 \sum_d \log L_{dd}`.
    """

    def __init__(self, loc, cov):
        self.loc, self.covariance = _params(loc=loc, cov=cov)
        if self.loc.ndim == 0:
            raise ValueError("loc must be a vector (..., D)")
        dim = self.loc.shape[-1]
        if self.covariance.shape[-2:] != (dim, dim):
            raise ValueError(
                f"cov must have shape (..., {dim}, {dim}) to match loc {tuple(self.loc.shape)}, "
                f"got {tuple(self.covariance.shape)}"
            )
        try:
            torch.broadcast_shapes(self.loc.shape[:-1], self.covariance.shape[:-2])
        except RuntimeError:
            raise ValueError(
                f"the batch shapes of loc {tuple(self.loc.shape)} and cov "
                f"{tuple(self.covariance.shape)} must broadcast"
            ) from None
        # symmetric up to the round-off of the dtype (a float32 A A^T is not exactly)
        tolerance = torch.finfo(self.covariance.dtype).eps ** 0.5
        size = self.covariance.abs().amax().item()
        if not torch.allclose(self.covariance, self.covariance.mT, rtol=0, atol=tolerance * size):
            raise ValueError("cov must be symmetric")
        self.scale_tril, info = torch.linalg.cholesky_ex(self.covariance)
        if (info != 0).any():
            raise ValueError("cov must be positive definite (its Cholesky factorisation failed)")

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        return self.covariance.diagonal(dim1=-2, dim2=-1)

    def _half_log_det(self) -> torch.Tensor:
        # 1/2 log det Sigma = sum_d log L_dd
        return torch.log(self.scale_tril.diagonal(dim1=-2, dim2=-1)).sum(-1)

    def log_prob(self, x) -> torch.Tensor:
        x = _value(x, self.loc)
        diff = x - self.loc  # (..., D)
        dim = self.loc.shape[-1]
        tril = self.scale_tril
        if tril.ndim == 2:
            # one Sigma for every x: solve for all of them at once, (D, M)
            z = torch.linalg.solve_triangular(tril, diff.reshape(-1, dim).T, upper=False)
            z = z.T.reshape(diff.shape)
        else:
            batch = torch.broadcast_shapes(diff.shape[:-1], tril.shape[:-2])
            z = torch.linalg.solve_triangular(
                tril.expand(*batch, dim, dim), diff.expand(*batch, dim)[..., None], upper=False
            )[..., 0]
        # z = L^{-1} (x - mu), so that |z|^2 = (x - mu)^T Sigma^{-1} (x - mu)
        return -0.5 * (z**2).sum(-1) - self._half_log_det() - 0.5 * dim * math.log(2 * math.pi)

    def sample(self, shape=(), generator=None) -> torch.Tensor:
        batch = torch.broadcast_shapes(self.loc.shape[:-1], self.scale_tril.shape[:-2])
        size = (*torch.Size(shape), *batch, self.loc.shape[-1])
        eps = torch.randn(size, generator=generator, dtype=self.loc.dtype, device=self.loc.device)
        # x = mu + L eps has covariance L L^T = Sigma
        return self.loc + (self.scale_tril @ eps[..., None])[..., 0]

    def entropy(self) -> torch.Tensor:
        # H = D/2 (1 + log 2 pi) + 1/2 log det Sigma
        dim = self.loc.shape[-1]
        return 0.5 * dim * (1 + math.log(2 * math.pi)) + self._half_log_det()
