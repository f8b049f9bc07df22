"""A sweep of bad inputs through the public API of ``distributions``, ``markov``
and ``lstm``.

Each case feeds one argument a generated value: NaN and infinities, negative
numbers, complex numbers, wrong shapes and dtypes, empty tensors, NumPy arrays
and NumPy scalars, things that are not numbers at all. The rule: the call
either refuses with a ``ValueError`` or ``TypeError`` whose message names the
argument, or returns what an independent reference (``scipy.stats``,
``torch.nn``, a few lines of NumPy) returns for that value. An input the
reference cannot make sense of must be refused; any other exception, a
warning, or a number that differs from the reference fails the sweep.
"""

from __future__ import annotations

import math
import numbers
import operator
import re
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from torch import nn

from genai_course.distributions import (
    Bernoulli,
    Binomial,
    Categorical,
    Multinomial,
    MultivariateNormal,
    Normal,
)
from genai_course.lstm import (
    LSTM,
    CharLSTM,
    LSTMCell,
    RNNCell,
    bits_per_char,
    generate,
    tbptt_step,
    text_chunks,
)
from genai_course.markov import CharVocab, NGramModel, stationary_distribution


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors only: one thread spares every call the wake-up of a thread pool."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Refuse(Exception):
    """Raised by a reference: the input is invalid, the package must refuse it."""


class NoAnswer(Exception):
    """Raised by a reference for an input with no single right answer: skipped."""


# -- the bad values ----------------------------------------------------------------------

NOT_NUMBERS = [None, "abc", "", [1, "a"], [[1.0, 2.0], [3.0]], object(), {"a": 1}, b"\x00"]
PYTHON_NUMBERS = [math.nan, math.inf, -math.inf, -1, -0.5, 0, 0.0, 0.5, 1, 2, 2.5, 1e300]
PYTHON_NUMBERS += [True, False, 1 + 2j, 1 + 1e-12]
NUMPY_SCALARS = [np.float32(np.nan), np.float64(np.inf), np.float64(-np.inf), np.float32(0.5)]
NUMPY_SCALARS += [np.float64(2.0), np.int64(-3), np.int64(2), np.int8(1), np.uint8(3)]
NUMPY_SCALARS += [np.float16(0.25), np.bool_(True), np.complex128(1 + 1j)]
_g = torch.Generator().manual_seed(0)
TENSORS = [
    torch.tensor(math.nan),
    torch.tensor([0.25, 0.75]),
    torch.tensor([[0.5, 0.5], [0.25, 0.75]]),
    torch.tensor([1 + 1j, 0.5]),
    torch.randn(3, dtype=torch.complex64, generator=_g),
    torch.empty(0),
    torch.empty(0, 3),
    torch.empty(2, 0),
    torch.ones(5),
    torch.ones(2, 3, 4),
    torch.tensor([True, False]),
    torch.tensor([1, 0], dtype=torch.int8),
    torch.tensor([0.5, 0.5], dtype=torch.float16),
    torch.tensor([1.0, 1.0], dtype=torch.float64),
    torch.tensor([[0, 1, 2], [3, 4, 0]]),
    torch.tensor([[0, 1, 7]]),
    torch.randn(2, 3, generator=_g),
    torch.randn(2, 4, generator=_g),
    torch.randn(1, 2, 3, generator=_g),
    torch.randn(2, 0, 3, generator=_g),
    torch.arange(40),
    torch.arange(40.0),
    np.eye(2),
    np.array([[0.5, 0.5], [0.25, 0.75]]),
    np.array([0, 1, 3]),
]
FIXED = NOT_NUMBERS + PYTHON_NUMBERS + NUMPY_SCALARS + TENSORS

ARRAY_DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int32, np.uint8, np.bool_]
ARRAY_DTYPES += [np.complex128]


def arrays() -> st.SearchStrategy:
    """NumPy arrays of many dtypes and shapes (empty ones too), with NaN, infinities,
    huge and negative values, or plausible values; the same as torch tensors."""
    shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
    anything = hnp.arrays(st.sampled_from(ARRAY_DTYPES), shapes)
    plausible = st.one_of(
        hnp.arrays(np.float64, shapes, elements=st.floats(0, 1)),
        hnp.arrays(np.int64, shapes, elements=st.integers(-1, 5)),
        hnp.arrays(np.float32, shapes, elements=st.floats(-3, 3, width=32)),
    )
    tensor = st.builds(torch.from_numpy, st.one_of(anything, plausible))
    return st.one_of(anything, plausible, tensor)


bad_values = st.one_of(st.sampled_from(FIXED), arrays())


# -- helpers for the references ------------------------------------------------------------


def real(value) -> np.ndarray:
    """``value`` as a float64 array, or ``Refuse`` for what is not real numbers."""
    if isinstance(value, torch.Tensor):
        value = value.numpy()
    if isinstance(value, str | bytes) or value is None:
        raise Refuse
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise Refuse
    return array.astype(np.float64)


def param(value) -> np.ndarray:
    """A parameter as the distributions hold it: float64 arrays and tensors stay
    float64, everything else (Python numbers too) is rounded to float32."""
    x = real(value)
    if isinstance(value, np.ndarray | torch.Tensor) and str(value.dtype).endswith("float64"):
        return x
    with np.errstate(over="ignore"):
        return x.astype(np.float32).astype(np.float64)


def is_real_number(value) -> bool:
    """A Python or NumPy real number, not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def positive_finite(value) -> float:
    if not is_real_number(value) or not 0 < value < math.inf:
        raise Refuse
    return float(value)


def positive_int(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise Refuse
    return value


def probabilities(value, last_axis: int | None = None) -> np.ndarray:
    """A valid probability vector (or batch of them) on the last axis, or ``Refuse``."""
    p = real(value)
    if p.ndim == 0 or p.shape[-1] == 0 or (last_axis and p.shape[-1] != last_axis):
        raise Refuse
    if not np.isfinite(p).all() or (p < 0).any() or not np.allclose(p.sum(-1), 1, atol=1e-6):
        raise Refuse
    return p


def integer_tensor(value) -> torch.Tensor:
    """An integer torch tensor (not bool), or ``Refuse``."""
    if not isinstance(value, torch.Tensor) or value.is_floating_point() or value.is_complex():
        raise Refuse
    if value.dtype == torch.bool:
        raise Refuse
    return value


def float32_tensor(value, shape: Callable[[tuple], bool]) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dtype != torch.float32:
        raise Refuse
    if not shape(tuple(value.shape)):
        raise Refuse
    return value


def seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)


# -- the cases -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    argument: str  # the name a refusal must mention
    call: Callable
    reference: Callable  # the right answer for the value, or raises Refuse

    def __repr__(self) -> str:
        return self.name


P32 = 0.25  # exact in every float dtype, so a reference needs no rounding


def bernoulli_reference(x, p) -> np.ndarray:
    log_p = np.where(x == 1, np.log(p), np.where(x == 0, np.log1p(-p), -np.inf))
    return np.where(np.isnan(x), np.nan, log_p)


def categorical_reference(x, probs) -> np.ndarray:
    inside = np.isfinite(x) & (x == np.floor(x)) & (x >= 0) & (x < len(probs))
    index = np.where(inside, x, 0).astype(int)
    log_p = np.where(inside, np.log(np.asarray(probs))[index], -np.inf)
    return np.where(np.isnan(x), np.nan, log_p)


def multinomial_reference(x, n, probs) -> np.ndarray:
    if x.ndim == 0 or x.shape[-1] != len(probs):
        raise Refuse
    inside = (np.isfinite(x) & (x == np.floor(x)) & (x >= 0)).all(-1) & (x.sum(-1) == n)
    counts = np.where(inside[..., None], x, 0)
    log_p = stats.multinomial.logpmf(counts.reshape(-1, len(probs)), n, probs)
    log_p = np.where(inside, np.reshape(log_p, inside.shape), -np.inf)
    return np.where(np.isnan(x).any(-1), np.nan, log_p)


def count(value) -> np.ndarray:
    n = real(value)
    if not np.isfinite(n).all() or (n < 0).any() or (n != np.floor(n)).any():
        raise Refuse
    return n


def multinomial_n(value) -> int:
    if isinstance(value, bool | np.bool_):
        raise Refuse
    try:
        n = operator.index(value)
    except TypeError:
        raise Refuse from None
    if n < 0:
        raise Refuse
    return n


def mvn_reference(x) -> np.ndarray:
    """log N(x; 0, I) in two dimensions."""
    if x.ndim == 0 or x.shape[-1] != 2:
        raise Refuse
    with np.errstate(over="ignore", invalid="ignore"):
        return -0.5 * (x**2).sum(-1) - math.log(2 * math.pi)


def mvn_loc_reference(value) -> np.ndarray:
    loc = param(value)
    if loc.ndim == 0 or loc.shape[-1] != 2 or not np.isfinite(loc).all():
        raise Refuse
    return mvn_reference(-loc)


def mvn_cov_reference(value) -> np.ndarray:
    cov = param(value)
    if cov.ndim < 2 or cov.shape[-2:] != (2, 2) or not np.isfinite(cov).all():
        raise Refuse
    if not np.allclose(cov, np.swapaxes(cov, -1, -2)) or (np.linalg.eigvalsh(cov) <= 0).any():
        raise Refuse
    return np.array(
        [stats.multivariate_normal([0, 0], c).logpdf([0, 0]) for c in cov.reshape(-1, 2, 2)]
    ).reshape(cov.shape[:-2])


def sample_shape(value) -> tuple[int, ...]:
    """What ``sample(shape)`` must accept: an int or a sequence of ints >= 0."""
    if isinstance(value, torch.Tensor | np.ndarray) and value.ndim == 0:
        value = value.item()  # then an int, float, bool or complex
    dims = (value,) if isinstance(value, numbers.Integral) else value
    if isinstance(dims, str | bytes | dict) or not hasattr(dims, "__iter__"):
        raise Refuse
    if isinstance(dims, np.ndarray | torch.Tensor) and dims.ndim != 1:
        raise Refuse
    out = []
    for d in dims:
        if isinstance(d, bool | np.bool_) or (
            isinstance(d, torch.Tensor) and d.dtype == torch.bool
        ):
            raise Refuse
        try:
            out.append(operator.index(d))
        except TypeError:
            raise Refuse from None
    if any(d < 0 for d in out):
        raise Refuse
    if math.prod(max(d, 1) for d in out) > 10_000:
        raise NoAnswer  # a huge sample is a memory problem, not a bad input
    return tuple(out)


def probability(value) -> np.ndarray:
    p = real(value)
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise Refuse
    return p


def finite(value) -> np.ndarray:
    x = real(value)
    if not np.isfinite(x).all():
        raise Refuse
    return x


def positive(value) -> np.ndarray:
    x = finite(value)
    if (x <= 0).any():
        raise Refuse
    return x


def refuse():
    raise Refuse


def no_generator(value):
    """``generator=None`` is valid (torch's global generator), with no fixed answer."""
    raise NoAnswer if value is None else Refuse


def categorical_draws(shape: tuple[int, ...]) -> torch.Tensor:
    n = math.prod(shape)
    if n == 0:
        return torch.zeros(shape)
    probs = torch.tensor([[0.25, 0.75]])
    return torch.multinomial(probs, n, replacement=True, generator=seeded())[0].reshape(shape)


DISTRIBUTION_CASES = [
    Case(
        "Bernoulli(p)",
        "p",
        lambda v: Bernoulli(v).log_prob(1.0),
        lambda v: np.log(probability(param(v))),
    ),
    Case(
        "Bernoulli.log_prob(x)",
        "x",
        lambda v: Bernoulli(P32).log_prob(v),
        lambda v: bernoulli_reference(real(v), P32),
    ),
    Case(
        "Binomial(n)",
        "n",
        lambda v: Binomial(v, P32).log_prob(2.0),
        lambda v: stats.binom.logpmf(2, count(param(v)), P32),
    ),
    Case(
        "Binomial(p)",
        "p",
        lambda v: Binomial(10, v).log_prob(3.0),
        lambda v: stats.binom.logpmf(3, 10, probability(param(v))),
    ),
    Case(
        "Binomial.log_prob(k)",
        "k",
        lambda v: Binomial(10, P32).log_prob(v),
        lambda v: stats.binom.logpmf(real(v), 10, P32),
    ),
    Case(
        "Categorical(probs)",
        "probs",
        lambda v: Categorical(v).log_prob(0.0),
        lambda v: np.log(probabilities(param(v))[..., 0]),
    ),
    Case(
        "Categorical.log_prob(x)",
        "x",
        lambda v: Categorical([0.25, 0.75]).log_prob(v),
        lambda v: categorical_reference(real(v), [0.25, 0.75]),
    ),
    Case(
        "Multinomial(n)",
        "n",
        lambda v: Multinomial(v, [0.25, 0.75]).log_prob([1.0, 1.0]),
        lambda v: stats.multinomial.logpmf([1, 1], multinomial_n(v), [0.25, 0.75]),
    ),
    Case(
        "Multinomial(probs)",
        "probs",
        lambda v: Multinomial(1, v).entropy(),
        lambda v: stats.entropy(probabilities(param(v)), axis=-1),
    ),
    Case(
        "Multinomial.log_prob(x)",
        "x",
        lambda v: Multinomial(2, [0.25, 0.75]).log_prob(v),
        lambda v: multinomial_reference(real(v), 2, [0.25, 0.75]),
    ),
    Case(
        "Normal(loc)",
        "loc",
        lambda v: Normal(v, 1.0).log_prob(0.5),
        lambda v: stats.norm.logpdf(0.5, finite(param(v)), 1.0),
    ),
    Case(
        "Normal(scale)",
        "scale",
        lambda v: Normal(0.0, v).log_prob(0.5),
        lambda v: stats.norm.logpdf(0.5, 0.0, positive(param(v))),
    ),
    Case(
        "Normal.log_prob(x)",
        "x",
        lambda v: Normal(0.0, 1.0).log_prob(v),
        lambda v: stats.norm.logpdf(param(v)),
    ),
    Case(
        "MultivariateNormal(loc)",
        "loc",
        lambda v: MultivariateNormal(v, torch.eye(2)).log_prob([0.0, 0.0]),
        mvn_loc_reference,
    ),
    Case(
        "MultivariateNormal(cov)",
        "cov",
        lambda v: MultivariateNormal([0.0, 0.0], v).log_prob([0.0, 0.0]),
        mvn_cov_reference,
    ),
    Case(
        "MultivariateNormal.log_prob(x)",
        "x",
        lambda v: MultivariateNormal([0.0, 0.0], torch.eye(2)).log_prob(v),
        lambda v: mvn_reference(param(v)),
    ),
    Case(
        "Normal.sample(shape)",
        "shape",
        lambda v: Normal(0.0, 1.0).sample(v, seeded()),
        lambda v: torch.randn(sample_shape(v), generator=seeded()),
    ),
    Case(
        "Categorical.sample(shape)",
        "shape",
        lambda v: Categorical([0.25, 0.75]).sample(v, seeded()),
        lambda v: categorical_draws(sample_shape(v)),
    ),
    Case(
        "Binomial.sample(generator)",
        "generator",
        lambda v: Binomial(10, P32).sample((3,), v),
        no_generator,
    ),
]


# the markov module: a small fitted model and its reference counts
TEXT = "abcabcabdab"
HELD_OUT = "abcabdabcaba"  # longer than TEXT: every order that TEXT allows can score it


def ngram_log_prob(order: int, smoothing: float, text: str) -> np.ndarray:
    """The add-alpha estimate of the module's docstring, counted with a Counter."""
    size = len(set(TEXT))
    grams = Counter(TEXT[i : i + order + 1] for i in range(len(TEXT) - order))
    contexts = Counter()
    for gram, n in grams.items():
        contexts[gram[:order]] += n
    return np.array(
        [
            math.log(
                (grams[text[i - order : i + 1]] + smoothing)
                / (contexts[text[i - order : i]] + smoothing * size)
            )
            for i in range(order, len(text))
        ]
    )


def order_reference(value) -> np.ndarray:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool | np.bool_) or value < 0:
        raise Refuse
    if value >= len(TEXT):
        raise Refuse
    return ngram_log_prob(int(value), 1.0, HELD_OUT)


def decode_reference(value) -> str:
    if isinstance(value, str | bytes | dict) or value is None:
        raise Refuse
    try:
        ids = np.asarray(value.numpy() if isinstance(value, torch.Tensor) else value)
    except (TypeError, ValueError):
        raise Refuse from None
    if ids.ndim == 1 and ids.size == 0 and ids.dtype.kind in "biufc":
        return ""
    if ids.ndim != 1 or ids.dtype.kind not in "iu" or (ids < 0).any() or (ids >= 4).any():
        raise Refuse
    return "".join("abcd"[i] for i in ids)


def stationary_reference(value) -> np.ndarray:
    p = real(value)
    if p.ndim != 2 or p.shape[0] != p.shape[1] or p.size == 0 or not np.isfinite(p).all():
        raise Refuse
    if (p < 0).any() or not np.allclose(p.sum(1), 1, rtol=1e-5, atol=1e-8):
        raise Refuse
    values, vectors = np.linalg.eig(p.T)
    ones = np.isclose(values, 1)
    if ones.sum() != 1:
        raise NoAnswer  # several stationary distributions
    v = np.real(vectors[:, ones][:, 0])
    return v / v.sum()


def fitted(order: int = 2) -> NGramModel:
    return NGramModel(order, smoothing=0.5).fit(TEXT)


MARKOV_CASES = [
    Case(
        "CharVocab(text)",
        "text",
        lambda v: CharVocab(v).chars,
        lambda v: sorted(set(v)) if isinstance(v, str) and v else refuse(),
    ),
    Case(
        "CharVocab.encode(text)",
        "text",
        lambda v: CharVocab("abcd").encode(v),
        lambda v: (
            torch.tensor(["abcd".index(c) for c in v], dtype=torch.int64)
            if isinstance(v, str) and set(v) <= set("abcd")
            else refuse()
        ),
    ),
    Case("CharVocab.decode(ids)", "ids", lambda v: CharVocab("abcd").decode(v), decode_reference),
    Case(
        "NGramModel(order)",
        "order",
        lambda v: NGramModel(v).fit(TEXT).log_prob(HELD_OUT),
        order_reference,
    ),
    Case(
        "NGramModel(smoothing)",
        "smoothing",
        lambda v: NGramModel(1, v).fit(TEXT).log_prob("abcd"),
        lambda v: ngram_log_prob(1, positive_finite(v), "abcd"),
    ),
    Case(
        "NGramModel.probs(context)",
        "context",
        lambda v: fitted().probs(v),
        lambda v: (
            np.exp([ngram_log_prob(2, 0.5, v[-2:] + c)[0] for c in "abcd"])
            if isinstance(v, str) and len(v) >= 2
            else refuse()
        ),
    ),
    Case(
        "NGramModel.log_prob(text)",
        "text",
        lambda v: fitted().log_prob(v),
        lambda v: (
            ngram_log_prob(2, 0.5, v)
            if isinstance(v, str) and len(v) > 2 and set(v) <= set("abcd")
            else refuse()
        ),
    ),
    Case(
        "NGramModel.sample(length)",
        "length",
        lambda v: len(fitted().sample(v, "ab", generator=seeded())),
        lambda v: 2 + positive_int(v),
    ),
    Case(
        "NGramModel.sample(prompt)",
        "prompt",
        lambda v: fitted().sample(3, v, generator=seeded())[: len(v)],
        lambda v: v if isinstance(v, str) and len(v) >= 2 and set(v) <= set("abcd") else refuse(),
    ),
    Case(
        "NGramModel.sample(temperature)",
        "temperature",
        lambda v: fitted().sample(5, "ab", temperature=v, generator=seeded()),
        lambda v: fitted().sample(5, "ab", temperature=positive_finite(v), generator=seeded()),
    ),
    Case(
        "NGramModel.sample(generator)",
        "generator",
        lambda v: fitted().sample(5, "ab", generator=v),
        no_generator,
    ),
    Case(
        "stationary_distribution(matrix)", "matrix", stationary_distribution, stationary_reference
    ),
]


# the lstm module: small models with fixed weights, and torch.nn twins of them
def lstm_pair():
    torch.manual_seed(0)
    ours, theirs = LSTMCell(3, 4), nn.LSTMCell(3, 4)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ours, name).copy_(getattr(theirs, name))
    return ours, theirs


def rnn_pair():
    torch.manual_seed(0)
    ours, theirs = RNNCell(3, 4), nn.RNNCell(3, 4)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ours, name).copy_(getattr(theirs, name))
    return ours, theirs


def char_model() -> CharLSTM:
    torch.manual_seed(0)
    return CharLSTM(4, embed_dim=3, hidden_size=5, num_layers=1)


VOCAB = CharVocab("abcd")
X = torch.randn(2, 3, generator=torch.Generator().manual_seed(1))
H = torch.randn(2, 4, generator=torch.Generator().manual_seed(2))


def cell_input(value) -> torch.Tensor:
    return float32_tensor(value, lambda s: len(s) == 2 and s[1] == 3)


def state_part(value) -> torch.Tensor:
    return float32_tensor(value, lambda s: s == (2, 4))


def lstm_reference(value):
    x = float32_tensor(value, lambda s: len(s) == 3 and s[2] == 3 and s[1] >= 1)
    ours, _ = lstm_pair()
    theirs = nn.LSTM(3, 4, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(theirs, f"{name}_l0").copy_(getattr(ours, name))
    return theirs(x)[0]


def lstm_call(value):
    ours, _ = lstm_pair()
    model = LSTM(3, 4)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(model.cells[0], name).copy_(getattr(ours, name))
    return model(value)[0]


def char_ids(value, *, ndim: int, min_steps: int) -> torch.Tensor:
    ids = integer_tensor(value)
    if ids.ndim != ndim or (ids.shape[-1] if ids.ndim else 0) < min_steps:
        raise Refuse
    if ids.numel() and (ids.min() < 0 or ids.max() >= 4):
        raise Refuse
    return ids


def char_logits(ids: torch.Tensor) -> torch.Tensor:
    model = char_model()
    return model.head(model.lstm(model.embed(ids.long()))[0])


def chunks_reference(ids, batch_size: int, seq_len: int) -> torch.Tensor:
    ids = integer_tensor(ids)
    if ids.ndim != 1:
        raise Refuse
    stream = len(ids) // batch_size
    num_chunks = (stream - 1) // seq_len
    if num_chunks < 1:
        raise Refuse
    rows = ids[: stream * batch_size].reshape(batch_size, stream).tolist()
    return torch.tensor(
        [[row[s * seq_len : s * seq_len + seq_len + 1] for row in rows] for s in range(num_chunks)],
        dtype=ids.dtype,
    )


def tbptt_call(clip):
    torch.manual_seed(0)
    model = char_model()
    step = tbptt_step(model, torch.optim.SGD(model.parameters(), lr=0.5), clip=clip)
    step(text_chunks(torch.arange(40) % 4, 2, 5)[:1], torch.tensor([0]))
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def tbptt_reference(clip):
    clip = math.inf if clip is None else positive_finite(clip)  # None: no clipping
    model = char_model()
    chunk = text_chunks(torch.arange(40) % 4, 2, 5)[0]  # (B, T + 1)
    logits, _ = model(chunk[:, :-1])
    loss = nn.functional.cross_entropy(logits.reshape(-1, 4), chunk[:, 1:].reshape(-1))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    norm = torch.cat([g.flatten() for g in grads]).norm()
    scale = min(1.0, clip / (norm.item() + 1e-6))
    with torch.no_grad():
        return torch.cat(
            [
                (p - 0.5 * scale * g).flatten()
                for p, g in zip(model.parameters(), grads, strict=True)
            ]
        )


def bits_reference(value) -> float:
    ids = char_ids(value, ndim=1, min_steps=2)
    logits = char_logits(ids[None, :-1])[0]
    return nn.functional.cross_entropy(logits, ids[1:].long()).item() / math.log(2)


def pair(value):
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise Refuse
    return value


def top_k(value) -> int | None:
    if value is None:
        return None  # all the logits
    k = positive_int(value)
    if k > len(VOCAB):
        raise Refuse
    return k


LSTM_CASES = [
    Case(
        "LSTMCell(x)",
        "x",
        lambda v: lstm_pair()[0](v),
        lambda v: lstm_pair()[1](cell_input(v)),
    ),
    Case(
        "LSTMCell(state)",
        "state",
        lambda v: lstm_pair()[0](X, v),
        lambda v: lstm_pair()[1](X, None if v is None else tuple(state_part(s) for s in pair(v))),
    ),
    Case(
        "RNNCell(h)",
        "h",
        lambda v: rnn_pair()[0](X, v),
        lambda v: rnn_pair()[1](X, None if v is None else state_part(v)),
    ),
    Case("LSTM(x)", "x", lstm_call, lstm_reference),
    Case(
        "CharLSTM(ids)",
        "ids",
        lambda v: char_model()(v)[0],
        lambda v: char_logits(char_ids(v, ndim=2, min_steps=1)),
    ),
    Case(
        "text_chunks(ids)",
        "ids",
        lambda v: text_chunks(v, 2, 3),
        lambda v: chunks_reference(v, 2, 3),
    ),
    Case(
        "text_chunks(batch_size)",
        "batch_size",
        lambda v: text_chunks(torch.arange(40), v, 3),
        lambda v: chunks_reference(torch.arange(40), positive_int(v), 3),
    ),
    Case(
        "text_chunks(seq_len)",
        "seq_len",
        lambda v: text_chunks(torch.arange(40), 2, v),
        lambda v: chunks_reference(torch.arange(40), 2, positive_int(v)),
    ),
    Case("tbptt_step(clip)", "clip", tbptt_call, tbptt_reference),
    Case(
        "bits_per_char(ids)",
        "ids",
        lambda v: bits_per_char(char_model(), v),
        bits_reference,
    ),
    Case(
        "generate(temperature)",
        "temperature",
        lambda v: generate(char_model(), VOCAB, "ab", 4, temperature=v, generator=seeded()),
        lambda v: generate(
            char_model(), VOCAB, "ab", 4, temperature=positive_finite(v), generator=seeded()
        ),
    ),
    Case(
        "generate(top_k)",
        "top_k",
        lambda v: generate(char_model(), VOCAB, "ab", 4, top_k=v, generator=seeded()),
        lambda v: generate(char_model(), VOCAB, "ab", 4, top_k=top_k(v), generator=seeded()),
    ),
    Case(
        "generate(prompt)",
        "prompt",
        lambda v: generate(char_model(), VOCAB, v, 2, generator=seeded())[: len(v)],
        lambda v: v if isinstance(v, str) and v and set(v) <= set("abcd") else refuse(),
    ),
]


CASES = DISTRIBUTION_CASES + MARKOV_CASES + LSTM_CASES

# a state is a pair: bad pairs as well as bad single values
state_values = st.one_of(
    bad_values,
    st.tuples(bad_values, st.just(H)),
    st.tuples(st.just(H), bad_values),
    st.just((H, H)),
    st.just([H, H, H]),
)


# -- the rule ------------------------------------------------------------------------------


def same(ours, expected) -> None:
    """``ours`` equals ``expected``: exactly for strings and integers, to the
    round-off of ``ours``'s dtype for floats, NaN where NaN."""
    if isinstance(expected, str | list | int):
        assert ours == expected
        return
    if isinstance(expected, tuple):  # (h, c)
        assert isinstance(ours, tuple) and len(ours) == len(expected)
        for a, b in zip(ours, expected, strict=True):
            same(a, b)
        return
    ours = torch.as_tensor(ours).detach()
    if not ours.is_floating_point():
        np.testing.assert_array_equal(ours.numpy(), torch.as_tensor(expected).numpy())
        return
    expected = np.asarray(torch.as_tensor(expected).detach().numpy(), dtype=np.float64)
    expected = expected.astype(torch.empty(0, dtype=ours.dtype).numpy().dtype)  # rounds too
    assert ours.shape == expected.shape, f"shape {tuple(ours.shape)}, expected {expected.shape}"
    rtol = 1e-12 if ours.dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(ours.numpy(), expected, rtol=rtol, atol=rtol, equal_nan=True)


def check(case: Case, value) -> None:
    """Refused with the argument named, or the reference's answer; nothing else."""
    try:
        with np.errstate(all="ignore"):
            expected = case.reference(value)
    except Refuse:
        expected = Refuse
    except NoAnswer:
        return
    except (ValueError, TypeError, IndexError, OverflowError):
        expected = Refuse  # the reference cannot make sense of it either
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. a complex value cast to real, silently
        try:
            result = case.call(value)
        except (ValueError, TypeError) as error:
            named = re.search(rf"\b{re.escape(case.argument)}\b", str(error))
            assert named, f"{case}: {error!r} does not name {case.argument!r}"
            return
    assert expected is not Refuse, f"{case} accepted {value!r} and returned {result!r}"
    same(result, expected)


@pytest.mark.parametrize("case", CASES, ids=repr)
@settings(
    max_examples=20, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(data=st.data())
def test_bad_inputs_are_refused_by_name_or_answered_right(case, data):
    value = data.draw(state_values if case.argument == "state" else bad_values, label="value")
    check(case, value)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_every_fixed_bad_value(case):
    """The hand-picked values, all of them, for every case."""
    values = FIXED + ([(H, H), [H, H, H], (X, H), (H, "c")] if case.argument == "state" else [])
    for value in values:
        try:
            check(case, value)
        except AssertionError as error:
            raise AssertionError(f"value {value!r}: {error}") from None
