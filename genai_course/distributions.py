r"""Probability distributions, written from their formulas (the distributions chapter).

Each distribution is an object with the same small interface, mirroring the
mathematics: ``log_prob(x)`` (computed in log space, so it stays finite far
into the tails), ``prob(x)`` (its exponential: the pmf or pdf),
``sample(shape, generator)``, ``mean``, ``variance`` and ``entropy()``.
Parameters broadcast against each other and against ``x``, keep their dtype
(float64 in, float64 out; integers, bools and half-precision floats become the
default float32) and stay on their device. Values outside the
support get ``log_prob = -inf``, exactly where ``scipy.stats`` gives it; a
NaN value gets NaN, as in ``scipy.stats``.

The binomial and multinomial compute in float64 whatever their dtype, with
Loader's saddle-point form of the pmf (below), and return their dtype: a
float32 ``log_prob`` or ``entropy`` is then exact to float32 round-off even
at :math:`n = 10^6`, where :math:`\log n! - \log k! - \log (n-k)!` in float32
loses every digit. With Stirling's series :math:`\log m! = m \log m - m +
\tau(m)`, :math:`\tau(m) = \tfrac12 \log 2\pi m + \tfrac{1}{12m} - \dots`,
the multinomial pmf (the binomial is :math:`K = 2`) is

.. math:: \log p(x) = \tau(n) - \sum_k \tau(x_k) - \sum_k D(x_k, n\pi_k),
   \qquad D(x, \mu) = x \log\frac{x}{\mu} + \mu - x \ \ge 0,

a sum of terms of the size of the result: nothing large cancels (Loader,
2000, *Fast and accurate computation of binomial probabilities*).
"""

from __future__ import annotations

import functools
import math
import numbers
import operator

import numpy as np
import torch

# -- reading arguments -----------------------------------------------------------------


def _real(value, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``value`` (a number, sequence, array or tensor) as a real tensor, of ``dtype``
    if given; ``TypeError`` naming ``name`` for anything else, complex numbers included."""
    if (
        isinstance(value, torch.Tensor)
        and value.is_complex()
        or (isinstance(value, np.ndarray | np.generic) and np.iscomplexobj(value))
    ):
        raise TypeError(f"{name} must be real, got complex values")
    try:
        tensor = torch.as_tensor(value, dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(
            f"{name} must be a real number, sequence, array or tensor, got "
            f"{type(value).__name__} ({error})"
        ) from None
    if tensor.is_complex():
        raise TypeError(f"{name} must be real, got complex values")
    return tensor


def _floating(dtype: torch.dtype) -> torch.dtype:
    """``dtype`` if a float of 32 bits or more, else the default (float32): integers,
    bools and half-precision floats (too coarse for these formulas) are promoted."""
    if dtype.is_floating_point and torch.finfo(dtype).bits >= 32:
        return dtype
    return torch.get_default_dtype()


def _param(value, name: str) -> torch.Tensor:
    """A parameter as a floating tensor (float64 stays float64)."""
    tensor = _real(value, name)
    tensor = tensor.to(_floating(tensor.dtype))
    if torch.isnan(tensor).any():
        raise ValueError(f"{name} contains NaN")
    return tensor


def _check_broadcast(**named) -> None:
    """Raise ``ValueError`` naming the two arguments unless their shapes broadcast."""
    (a, x), (b, y) = ((key, torch.Size(getattr(v, "shape", v))) for key, v in named.items())
    try:
        torch.broadcast_shapes(x, y)
    except RuntimeError:
        raise ValueError(
            f"{a} and {b} must broadcast; got shapes {tuple(x)} and {tuple(y)}"
        ) from None


def _params(**named) -> tuple[torch.Tensor, ...]:
    """Parameters as tensors of one floating dtype on one device. Tensors and
    arrays decide both (float64 if any is float64, the device of the first);
    Python numbers and lists follow them, as in ``Normal(0.0, sigma64)``."""
    given = [_real(v, k) for k, v in named.items() if isinstance(v, torch.Tensor | np.ndarray)]
    floating = [t.dtype for t in given if t.is_floating_point()]
    dtype = _floating(functools.reduce(torch.promote_types, floating, torch.float16))
    device = given[0].device if given else None
    return tuple(
        _param(_real(value, name, dtype).to(device=device), name) for name, value in named.items()
    )


def _value(x, like: torch.Tensor, name: str = "x") -> torch.Tensor:
    """An argument of log_prob as a tensor of the parameters' dtype and device."""
    return _real(x, name, like.dtype).to(device=like.device)


def _float64(t: torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
    """``t`` in float64 on the device of ``like`` (default: its own), where the
    discrete distributions compute; on the CPU for a device without float64 (MPS)."""
    device = (t if like is None else like).device
    return t.to(device="cpu" if device.type == "mps" else device, dtype=torch.float64)


def _value64(x, like: torch.Tensor, name: str) -> torch.Tensor:
    """An argument of a discrete ``log_prob`` in float64, where ``like`` computes
    (a Python float keeps its float64 value; a float32 count above 2**24 would round)."""
    given = isinstance(x, torch.Tensor | np.ndarray)
    return _float64(_real(x, name, None if given else torch.float64), like)


def _check_held_exactly(given, held: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if the count ``given`` rounded when stored
    in ``held``'s dtype (float32 holds every integer only up to 2**24)."""
    exact = torch.as_tensor(given).detach().cpu()
    if exact.is_floating_point() and not isinstance(given, torch.Tensor | np.ndarray):
        exact = torch.as_tensor(given, dtype=torch.float64)  # a Python float is a double
    # compared as Python ints and floats, which compare exactly (2**63 - 1 != 2.0**63)
    if exact.flatten().tolist() != held.detach().cpu().flatten().tolist():
        bits = 1 - round(math.log2(torch.finfo(held.dtype).eps))  # 24 for float32
        raise ValueError(
            f"{name} = {given if isinstance(given, numbers.Number) else exact.tolist()} rounds to "
            f"{held.tolist()} in {held.dtype}, which holds "
            f"integers exactly only up to 2**{bits}; give {name} or the probabilities as float64"
        )


def _sample_shape(shape) -> torch.Size:
    """The ``shape`` argument of ``sample``: an int, or a sequence (a tuple, list,
    1-D array or tensor) of ints >= 0."""
    array = isinstance(shape, torch.Tensor | np.ndarray)
    dims = (shape,) if isinstance(shape, numbers.Integral) or array and shape.ndim == 0 else shape
    wrong = TypeError(f"shape must be an int or a tuple of ints, got {shape!r}")
    if isinstance(dims, str | bytes | dict) or array and shape.ndim > 1:
        raise wrong
    try:
        dims = list(dims)
        if any(
            isinstance(d, bool | np.bool_) or getattr(d, "dtype", None) == torch.bool for d in dims
        ):
            raise wrong
        size = torch.Size(operator.index(d) for d in dims)
    except TypeError:
        raise wrong from None
    if any(d < 0 for d in size):
        raise ValueError(f"shape must not be negative, got {tuple(size)}")
    if math.prod(max(d, 1) for d in size) >= 2**62:
        raise ValueError(f"shape is too large to hold in memory, got {tuple(size)}")
    return size


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )


# -- checks of parameters ------------------------------------------------------------


def _check_probability(p: torch.Tensor, name: str) -> None:
    if ((p < 0) | (p > 1)).any():
        raise ValueError(
            f"{name} must be a probability in [0, 1]; got values from "
            f"{p.min().item():.4g} to {p.max().item():.4g}"
        )


def _check_simplex(probs: torch.Tensor, name: str) -> None:
    if probs.ndim == 0 or probs.shape[-1] == 0:
        raise ValueError(
            f"{name} must be a vector of probabilities (at least one category on the last "
            f"axis), got shape {tuple(probs.shape)}"
        )
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


# -- Loader's form of the binomial and multinomial pmf --------------------------------

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _stirling_gap(m: torch.Tensor) -> torch.Tensor:
    r""":math:`\tau(m) = \log m! - (m \log m - m)`, with :math:`\tau(0) = 0`, for counts
    :math:`m \ge 0`: directly for :math:`m \le 15` (no large term to cancel),
    by Stirling's series above,
    :math:`\tau(m) = \tfrac12 \log 2\pi m + \frac{1}{12m} - \frac{1}{360m^3}
    + \frac{1}{1260m^5} - \frac{1}{1680m^7} + \frac{1}{1188m^9}`
    (the next term is below :math:`10^{-16}`)."""
    small = m <= 15
    m_small = torch.where(small, m, 0.0)
    direct = torch.lgamma(m_small + 1) - torch.xlogy(m_small, m_small) + m_small
    m_large = torch.where(small, 16.0, m)
    r = 1 / m_large
    r2 = r * r
    series = r * (1 / 12 - r2 * (1 / 360 - r2 * (1 / 1260 - r2 * (1 / 1680 - r2 / 1188))))
    return torch.where(small, direct, 0.5 * torch.log(m_large) + HALF_LOG_2PI + series)


def _deviance(x: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    r""":math:`D(x, \mu) = x \log(x / \mu) + \mu - x \ge 0` (:math:`D(0, \mu) = \mu`).
    Near :math:`x = \mu` the two sides nearly cancel; there, with
    :math:`v = (x - \mu)/(x + \mu)`, it is the series
    :math:`D = (x - \mu) v + 2x \sum_{j \ge 1} v^{2j+1} / (2j+1)`."""
    x, mu = torch.broadcast_tensors(x, mu)
    # every branch computed on safe values, so that no NaN reaches a gradient
    x_safe, mu_safe = torch.where(x > 0, x, 1.0), torch.where(mu > 0, mu, 1.0)
    direct = x * (torch.log(x_safe) - torch.log(mu_safe)) + mu - x
    direct = torch.where((mu == 0) & (x > 0), math.inf, direct)
    v = (x - mu) / torch.where(x + mu > 0, x + mu, 1.0)
    near = v.abs() < 0.1
    v = torch.where(near, v, 0.0)
    power, tail = v, torch.zeros_like(v)
    for j in range(1, 12):  # |v| < 0.1: the 11th term is below 1e-22 of the first
        power = power * v * v
        tail = tail + power / (2 * j + 1)
    return torch.where(near, (x - mu) * v + 2 * x * tail, direct)


def _log_multinomial(x: torch.Tensor, n: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
    r""":math:`\log p(x) = \tau(n) - \sum_k \tau(x_k) - \sum_k D(x_k, n \pi_k)`: counts
    ``x`` (..., K) summing to ``n`` (...), probabilities ``pi`` (..., K) summing to 1."""
    return _stirling_gap(n) - _stirling_gap(x).sum(-1) - _deviance(x, n[..., None] * pi).sum(-1)


# above this variance n pi (1 - pi), a binomial's entropy terms take their series
SERIES_VARIANCE = 1e5


def _expected_log_terms(n: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
    r""":math:`f(n, \pi) = E[\tau(x) + D(x, n\pi)]` for :math:`x \sim
    \mathrm{Binomial}(n, \pi)`, so that a multinomial's entropy is
    :math:`H = -\tau(n) + \sum_k f(n, \pi_k)` (and a binomial's, :math:`K = 2`).

    Summed exactly over :math:`|x - n\pi| \le 12\sigma + 40`, which holds all but
    :math:`2e^{-60}` of the mass by Bernstein's inequality
    (:math:`\sigma^2 = n\pi(1-\pi)`); above :math:`\sigma^2 = 10^5` (a sum of
    thousands of terms), by its expansion in :math:`1/\mu`, :math:`\mu = n\pi`,

    .. math:: f \approx \tfrac12 \log 2\pi\mu + \tfrac{1-\pi}{2}
       + \Big(\tfrac{1}{12} - \tfrac{1-\pi}{4} + \tfrac{(1-\pi)^2}{4}
       - \tfrac{(1-\pi)(1-2\pi)}{6}\Big) \frac{1}{\mu},

    whose error is below :math:`0.1/\sigma^4 = 10^{-11}` there (tested)."""
    n, pi = torch.broadcast_tensors(n, pi)
    q, mu = 1 - pi, n * pi
    variance = mu * q
    series = variance > SERIES_VARIANCE
    mu_safe = torch.where(series, mu, 1.0)
    expansion = (
        0.5 * torch.log(2 * math.pi * mu_safe)
        + q / 2
        + (1 / 12 - q / 4 + q * q / 4 - q * (1 - 2 * pi) / 6) / mu_safe
    )
    # the window of likely counts, start + 0, 1, ..., L - 1 (one count where the series is used)
    half = 12 * torch.where(series, 0.0, variance).sqrt() + 40
    start = torch.where(series, 0.0, torch.clamp(torch.floor(mu - half), min=0))
    stop = torch.where(series, 0.0, torch.minimum(torch.ceil(mu + half), n))
    length = int((stop - start).max().item()) + 1 if n.numel() else 1
    x = start + torch.arange(length, dtype=n.dtype, device=n.device).reshape(-1, *[1] * n.ndim)
    inside = x <= n
    x = torch.where(inside, x, n)  # (L, ...)
    counts = torch.stack(torch.broadcast_tensors(x, n - x), -1)  # (L, ..., 2)
    log_pmf = _log_multinomial(counts, n.expand_as(x), torch.stack([pi, q], -1))
    pmf = torch.where(inside, log_pmf.exp(), 0.0)
    terms = _stirling_gap(x) + _deviance(x, mu)
    exact = torch.where(pmf > 0, pmf * terms, 0.0).sum(0)  # 0 * inf = 0 off the support
    return torch.where(series, expansion, exact)


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
        x = _value64(x, self.p, "x")  # 1 + 1e-12 is not 1, as it would be in float32
        _check_broadcast(x=x, p=self.p)
        one, zero, nan = (mask.to(self.p.device) for mask in (x == 1, x == 0, torch.isnan(x)))
        # log p if x = 1, log(1 - p) if x = 0; log1p keeps small p accurate
        log_p = torch.where(one, torch.log(self.p), torch.log1p(-self.p))
        log_p = torch.where(one | zero, log_p, -math.inf)
        return torch.where(nan, math.nan, log_p)

    def sample(self, shape=(), generator=None) -> torch.Tensor:
        _check_generator(generator)
        size = (*_sample_shape(shape), *self.p.shape)
        u = torch.rand(size, generator=generator, dtype=self.p.dtype, device=self.p.device)
        return (u < self.p).to(self.p.dtype)

    def entropy(self) -> torch.Tensor:
        # H = -p log p - (1 - p) log(1 - p), with 0 log 0 = 0
        return -torch.xlogy(self.p, self.p) - torch.special.xlog1py(1 - self.p, -self.p)


class Binomial(Distribution):
    r"""Successes in ``n`` independent trials:
    :math:`p(k) = \binom{n}{k} p^k (1 - p)^{n - k}`, :math:`k = 0, \dots, n`,
    computed in float64 in Loader's form (see the module):
    :math:`\log p(k) = \tau(n) - \tau(k) - \tau(n-k) - D(k, np) - D(n-k, n(1-p))`."""

    def __init__(self, n, p):
        self.n, self.p = _params(n=n, p=p)
        _check_probability(self.p, "p")
        _check_count(self.n, "n")
        _check_held_exactly(n, self.n, "n")
        _check_broadcast(n=self.n, p=self.p)

    @property
    def mean(self) -> torch.Tensor:
        return self.n * self.p

    @property
    def variance(self) -> torch.Tensor:
        return self.n * self.p * (1 - self.p)

    def log_prob(self, k) -> torch.Tensor:
        k = _value64(k, self.p, "k")
        _check_broadcast(k=k, parameters=torch.broadcast_shapes(self.n.shape, self.p.shape))
        n, p = _float64(self.n), _float64(self.p)
        inside = _is_integer(k) & (k >= 0) & (k <= n)
        k_in = torch.where(inside, k, 0.0)  # keeps every term finite outside
        counts = torch.stack(torch.broadcast_tensors(k_in, n - k_in), -1)  # (..., 2)
        pi = torch.stack(torch.broadcast_tensors(p, 1 - p), -1)  # (..., 2)
        log_p = torch.where(inside, _log_multinomial(counts, n, pi), -math.inf)
        log_p = torch.where(torch.isnan(k), math.nan, log_p)
        return log_p.to(device=self.p.device, dtype=self.p.dtype)

    def sample(self, shape=(), generator=None) -> torch.Tensor:
        _check_generator(generator)
        n, p = torch.broadcast_tensors(self.n, self.p)
        size = (*_sample_shape(shape), *n.shape)
        return torch.binomial(
            n.expand(size).contiguous(), p.expand(size).contiguous(), generator=generator
        )

    def entropy(self) -> torch.Tensor:
        r""":math:`H = -\sum_k p(k) \log p(k) = -\tau(n) + f(n, p) + f(n, 1 - p)`, in
        float64: summed exactly over the likely :math:`k` while the variance
        :math:`np(1-p) \le 10^5`; above, the normal approximation
        :math:`\tfrac12 \log 2\pi e\, np(1-p)` with its :math:`1/n` correction,
        :math:`-\frac{1 - 4p(1-p)}{12 np(1-p)}`, whose error is below
        :math:`0.1 / (np(1-p))^2 \le 10^{-11}` there (see ``_expected_log_terms``)."""
        n, p = torch.broadcast_tensors(_float64(self.n), _float64(self.p))
        entropy = -_stirling_gap(n) + _expected_log_terms(n, p) + _expected_log_terms(n, 1 - p)
        return entropy.to(device=self.p.device, dtype=self.p.dtype)


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
        x = _value64(x, self.probs, "x")  # 1 + 1e-12 is not 1, as it would be in float32
        _check_broadcast(x=x, probs=self.probs.shape[:-1])
        num_classes = self.probs.shape[-1]
        inside = _is_integer(x) & (x >= 0) & (x < num_classes)
        index = torch.where(inside, x, 0.0).long().to(self.probs.device)
        inside, nan = inside.to(self.probs.device), torch.isnan(x).to(self.probs.device)
        batch = torch.broadcast_shapes(index.shape, self.probs.shape[:-1])
        probs = self.probs.expand(*batch, num_classes)
        log_pi = torch.log(probs.gather(-1, index.expand(batch)[..., None]))[..., 0]
        log_pi = torch.where(inside, log_pi, -math.inf)
        return torch.where(nan, math.nan, log_pi)

    def sample(self, shape=(), generator=None) -> torch.Tensor:
        """Draws of shape (*shape, *batch); the default, one draw per distribution."""
        _check_generator(generator)
        shape = _sample_shape(shape)
        batch, num_classes = self.probs.shape[:-1], self.probs.shape[-1]
        if shape.numel() == 0 or batch.numel() == 0:
            return self.probs.new_zeros((*shape, *batch))
        flat = self.probs.reshape(-1, num_classes)  # (batch, K)
        draws = torch.multinomial(flat, shape.numel(), replacement=True, generator=generator)
        return draws.T.reshape((*shape, *batch)).to(self.probs.dtype)  # (*shape, *batch)

    def entropy(self) -> torch.Tensor:
        # H = -sum_k pi_k log pi_k
        return torch.special.entr(self.probs).sum(-1)


class Multinomial(Distribution):
    r"""Counts of :math:`K` categories in ``n`` independent draws:

    .. math:: p(x) = \frac{n!}{x_1! \cdots x_K!} \prod_k \pi_k^{x_k},
       \qquad \textstyle\sum_k x_k = n.

    (With :math:`K = 2` it is the binomial; the "multinomial" formula with
    only two factorials in the denominator that some tutorials give is that
    special case, not this distribution.) ``log_prob`` and ``entropy`` compute
    in float64, in Loader's form (see the module), with the probabilities
    renormalised to sum to 1 there: the round-off of float32 probabilities,
    multiplied by a large ``n``, would otherwise shift the result.
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
        if count > 2**53:
            raise ValueError(f"n must be at most 2**53 (float64 counts exactly), got {count}")
        self.n = count

    @property
    def variance(self) -> torch.Tensor:
        # count k alone is a Binomial(n, pi_k) variable
        return self.n * self.probs * (1 - self.probs)

    @property
    def mean(self) -> torch.Tensor:
        return self.n * self.probs

    def _pi(self) -> torch.Tensor:
        """The probabilities in float64, renormalised: (..., K)."""
        pi = _float64(self.probs)
        return pi / pi.sum(-1, keepdim=True)

    def log_prob(self, x) -> torch.Tensor:
        x = _value64(x, self.probs, "x")
        if x.ndim == 0 or x.shape[-1] != self.probs.shape[-1]:
            raise ValueError(
                f"x must hold counts for the {self.probs.shape[-1]} categories on its last axis, "
                f"got shape {tuple(x.shape)}"
            )
        _check_broadcast(x=x.shape[:-1], probs=self.probs.shape[:-1])
        inside = (_is_integer(x) & (x >= 0)).all(-1) & (x.sum(-1) == self.n)
        x_in = torch.where(inside[..., None], x, 0.0)
        n = torch.tensor(float(self.n), dtype=x.dtype, device=x.device)
        # log n! - sum_k log x_k! + sum_k x_k log pi_k = tau(n) - sum_k [tau(x_k) + D(x_k, n pi_k)]
        log_p = torch.where(inside, _log_multinomial(x_in, n, self._pi()), -math.inf)
        log_p = torch.where(torch.isnan(x).any(-1), math.nan, log_p)
        return log_p.to(device=self.probs.device, dtype=self.probs.dtype)

    def sample(self, shape=(), generator=None) -> torch.Tensor:
        shape = _sample_shape(shape)
        draws = Categorical(self.probs).sample((self.n, *shape), generator)
        counts = torch.nn.functional.one_hot(draws.long(), self.probs.shape[-1])
        return counts.sum(0).to(self.probs.dtype)  # (*shape, *batch, K)

    def entropy(self) -> torch.Tensor:
        r""":math:`H = -\tau(n) + \sum_k f(n, \pi_k)`, where :math:`f(n, \pi_k)`
        averages :math:`\tau(x_k) + D(x_k, n\pi_k)` over :math:`x_k \sim
        \mathrm{Binomial}(n, \pi_k)`: exact while :math:`n\pi_k(1-\pi_k) \le 10^5`,
        a series with error below :math:`10^{-11}` above (see ``_expected_log_terms``)."""
        pi = self._pi()
        n = torch.tensor(float(self.n), dtype=pi.dtype, device=pi.device)
        entropy = -_stirling_gap(n) + _expected_log_terms(n, pi).sum(-1)
        return entropy.to(device=self.probs.device, dtype=self.probs.dtype)


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
        _check_broadcast(x=x, parameters=torch.broadcast_shapes(self.loc.shape, self.scale.shape))
        z = (x - self.loc) / self.scale
        return -0.5 * z**2 - torch.log(self.scale) - 0.5 * math.log(2 * math.pi)

    def sample(self, shape=(), generator=None) -> torch.Tensor:
        _check_generator(generator)
        loc, scale = torch.broadcast_tensors(self.loc, self.scale)
        size = (*_sample_shape(shape), *loc.shape)
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
        if self.loc.ndim == 0 or self.loc.shape[-1] == 0:
            raise ValueError(
                f"loc must be a vector (..., D) with D >= 1, got {tuple(self.loc.shape)}"
            )
        for name, value in (("loc", self.loc), ("cov", self.covariance)):
            if not torch.isfinite(value).all():
                raise ValueError(f"{name} must be finite")
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
        size = self.covariance.abs().amax().item() if self.covariance.numel() else 0.0
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
        dim = self.loc.shape[-1]
        if x.ndim == 0 or x.shape[-1] != dim:
            raise ValueError(f"x must have shape (..., {dim}), got {tuple(x.shape)}")
        batch = torch.broadcast_shapes(self.loc.shape[:-1], self.scale_tril.shape[:-2])
        _check_broadcast(x=x.shape[:-1], parameters=batch)
        diff = x - self.loc  # (..., D)
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
        _check_generator(generator)
        batch = torch.broadcast_shapes(self.loc.shape[:-1], self.scale_tril.shape[:-2])
        size = (*_sample_shape(shape), *batch, self.loc.shape[-1])
        eps = torch.randn(size, generator=generator, dtype=self.loc.dtype, device=self.loc.device)
        # x = mu + L eps has covariance L L^T = Sigma
        return self.loc + (self.scale_tril @ eps[..., None])[..., 0]

    def entropy(self) -> torch.Tensor:
        # H = D/2 (1 + log 2 pi) + 1/2 log det Sigma
        dim = self.loc.shape[-1]
        return 0.5 * dim * (1 + math.log(2 * math.pi)) + self._half_log_det()
