"""Graded coding exercises: the registry, and ``check`` for students.

Every chapter has coding exercises in which the reader writes one function (a
log-density, a KL term, an optimiser step, an LSTM cell). ``check(exercise_id,
function)`` runs it on fresh random inputs, and on a few fixed inputs that catch
the usual slips (a tail where a naive formula overflows, a probability of zero),
against a reference implementation: a library's, or the package's own tested one.
It prints whether every case passed and, at the first that did not, what differed
(the type or shape of the result, non-finite values, wrong values) and the input
it failed on, but never the expected output. The grading cells of the chapter
notebooks call it, so nbgrader's autograder and ``make grade`` score the same tests.

    >>> from genai_course.exercises import check
    >>> check("ch6.gaussian_kl", my_kl)
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from genai_course.config import check_positive_int
from genai_course.gan import discriminator_loss, generator_loss
from genai_course.information import entropy, gaussian_kl, kl_divergence
from genai_course.metrics import _kth_neighbour_distance, bits_per_dim, frechet_distance

Inputs = tuple[Any, ...]


@dataclass(frozen=True)
class Exercise:
    """One graded exercise: what to write, and how to test it."""

    id: str  # "ch6.gaussian_kl": chapter, then the function's name
    task: str  # the signature and what it returns, as the notebook states it
    reference: Callable[..., Any]
    draw: Callable[[torch.Generator], Inputs]  # one random case
    fixed: Sequence[Inputs] = ()  # cases every check runs: edge cases that catch slips
    hint: str = ""  # where to look when values differ (never the answer)
    tolerance: float = 1e-5  # relative, and absolute for values near zero


# -- drawing inputs ------------------------------------------------------------------


def _int(gen: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (), generator=gen))


def _normal(gen: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=gen, dtype=torch.float64)


def _simplex(gen: torch.Generator, k: int, zeros: bool = False) -> torch.Tensor:
    weights = torch.rand(k, generator=gen, dtype=torch.float64) + 0.05
    if zeros:
        weights[torch.randperm(k, generator=gen)[: k // 3]] = 0.0
    return weights / weights.sum()


def _spd(gen: torch.Generator, d: int) -> torch.Tensor:
    a = _normal(gen, d, d)
    return a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64)


# -- references that a library provides in another form ---------------------------------


def _image_log_likelihood(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.distributions.Bernoulli(probs=theta).log_prob(x).sum(-1)


def _gaussian_log_pdf(x, mu, sigma) -> torch.Tensor:
    return torch.as_tensor(stats.norm.logpdf(x.numpy(), mu.numpy(), sigma.numpy()))


def _inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    index = torch.searchsorted(torch.cumsum(probs, 0), u, right=True)
    return index.clamp(max=len(probs) - 1)


def _gaussian_mle(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.mean(0), x.var(0, correction=0)


def _momentum_step(theta, grad, velocity, lr, momentum):
    p = theta.clone().requires_grad_()
    p.grad = grad.clone()
    optimizer = torch.optim.SGD([p], lr=lr, momentum=momentum)
    optimizer.state[p]["momentum_buffer"] = velocity.clone()
    optimizer.step()
    return p.detach(), optimizer.state[p]["momentum_buffer"]


def _adam_step(theta, grad, m, v, t, lr, beta1, beta2, eps):
    p = theta.clone().requires_grad_()
    p.grad = grad.clone()
    optimizer = torch.optim.Adam([p], lr=lr, betas=(beta1, beta2), eps=eps, foreach=False)
    optimizer.state[p].update(
        step=torch.tensor(float(t - 1)), exp_avg=m.clone(), exp_avg_sq=v.clone()
    )
    optimizer.step()
    state = optimizer.state[p]
    return p.detach(), state["exp_avg"], state["exp_avg_sq"]


def _lstm_cell(x, h, c, w_ih, w_hh, b):
    cell = nn.LSTMCell(x.shape[1], h.shape[1]).to(torch.float64)
    with torch.no_grad():
        cell.weight_ih.copy_(w_ih)
        cell.weight_hh.copy_(w_hh)
        cell.bias_ih.copy_(b)
        cell.bias_hh.zero_()
        return cell(x, (h, c))


def _multinomial_log_pmf(x: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(stats.multinomial.logpmf(x.numpy(), int(x.sum()), probs.numpy()))


# -- random cases, one function per exercise ------------------------------------------------


def _draw_image_log_likelihood(g):
    d, n = _int(g, 2, 12), _int(g, 1, 5)
    theta = torch.rand(d, generator=g, dtype=torch.float64) * 0.98 + 0.01
    return theta, torch.randint(0, 2, (n, d), generator=g).to(torch.float64)


def _draw_bits_per_dim(g):
    return _uniform(g, 1.0, 600.0), _int(g, 1, 3072)


def _draw_gaussian_log_pdf(g):
    n = _int(g, 1, 10)
    return _normal(g, n, scale=3), _normal(g, n), _normal(g, n).abs() + 0.1


def _draw_inverse_cdf(g):
    return _simplex(g, _int(g, 2, 8)), torch.rand(_int(g, 1, 20), generator=g, dtype=torch.float64)


def _draw_gaussian_mle(g):
    return (_normal(g, _int(g, 2, 30), _int(g, 1, 4), scale=2) + 5,)


def _draw_categorical_mle(g):
    k = _int(g, 2, 6)
    return torch.randint(0, k, (_int(g, 1, 40),), generator=g), k


def _draw_entropy(g):
    return (_simplex(g, _int(g, 2, 10), zeros=True),)


def _draw_kl(g):
    k = _int(g, 2, 10)
    return _simplex(g, k, zeros=True), _simplex(g, k)


def _uniform(g, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=g))


def _draw_momentum_step(g):
    n = _int(g, 1, 6)
    return _normal(g, n), _normal(g, n), _normal(g, n), _uniform(g, 1e-3, 0.1), _uniform(g, 0, 0.99)


def _draw_adam_step(g):
    n = _int(g, 1, 6)
    m, v = _normal(g, n, scale=0.1), _normal(g, n).abs() * 0.01
    return (
        _normal(g, n),
        _normal(g, n),
        m,
        v,
        _int(g, 1, 50),
        _uniform(g, 1e-4, 1e-2),
        0.9,
        0.999,
        1e-8,
    )


def _draw_logit_pairs(g):
    b = _int(g, 1, 12)
    return _normal(g, b, scale=4), _normal(g, b, scale=4)


def _draw_logits(g):
    return (_normal(g, _int(g, 1, 12), scale=4),)


def _draw_gaussian_kl(g):
    b, latent = _int(g, 1, 8), _int(g, 1, 6)
    return _normal(g, b, latent), _normal(g, b, latent)


def _draw_reparameterize(g):
    shape = (_int(g, 1, 5), _int(g, 1, 5))
    return _normal(g, *shape), _normal(g, *shape), _normal(g, *shape)


def _draw_lstm_cell(g):
    b, i, h = _int(g, 1, 4), _int(g, 1, 5), _int(g, 1, 5)
    weights = (_normal(g, 4 * h, i, scale=0.5), _normal(g, 4 * h, h, scale=0.5))
    return _normal(g, b, i), _normal(g, b, h), _normal(g, b, h), *weights, _normal(g, 4 * h)


def _draw_bits_per_char(g):
    n, v = _int(g, 1, 20), _int(g, 2, 10)
    return _normal(g, n, v, scale=3), torch.randint(0, v, (n,), generator=g)


def _draw_frechet(g):
    d = _int(g, 1, 5)
    return _normal(g, d), _spd(g, d), _normal(g, d), _spd(g, d)


def _draw_kth_neighbour(g):
    n = _int(g, 2, 30)
    return _normal(g, n, _int(g, 1, 4)), _int(g, 1, n - 1)


def _draw_log_sum_exp(g):
    return (_normal(g, _int(g, 1, 20), scale=5),)


def _draw_multinomial(g):
    k = _int(g, 2, 6)
    return torch.randint(0, 6, (k,), generator=g).to(torch.float64), _simplex(g, k)


def _f64(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# -- the exercises ---------------------------------------------------------------------

_EXERCISES = [
    Exercise(
        "ch0.image_log_likelihood",
        "image_log_likelihood(theta, x): theta (D,) pixel probabilities, x (N, D) binary "
        "images -> (N,) log p(x) in nats under independent Bernoulli pixels",
        _image_log_likelihood,
        _draw_image_log_likelihood,
        fixed=[(_f64(1e-12, 1 - 1e-12), _f64(0.0, 1.0)[None])],
        hint="each pixel contributes x log(theta) + (1 - x) log(1 - theta); sum over pixels, "
        "one value per image.",
    ),
    Exercise(
        "ch0.bits_per_dim",
        "bits_per_dim(nll_nats, num_dims): a negative log-likelihood in nats per example "
        "-> bits per dimension (a float)",
        bits_per_dim,
        _draw_bits_per_dim,
        hint="divide by the number of dimensions, and convert nats to bits (one bit is ln 2 nats).",
    ),
    Exercise(
        "ch1.gaussian_log_pdf",
        "gaussian_log_pdf(x, mu, sigma): tensors of one shape -> log N(x; mu, sigma^2), "
        "elementwise",
        _gaussian_log_pdf,
        _draw_gaussian_log_pdf,
        fixed=[(_f64(40.0, -60.0), _f64(0.0, 0.0), _f64(1.0, 1.0))],
        hint="-log(sigma) - log(2 pi) / 2 - (x - mu)^2 / (2 sigma^2); in the far tails the "
        "density underflows to 0, so take the log of the formula by hand, not log(pdf).",
    ),
    Exercise(
        "ch1.categorical_inverse_cdf",
        "categorical_inverse_cdf(probs, u): probs (K,) summing to 1, u (N,) uniforms in "
        "[0, 1) -> (N,) int64 categories, the first k whose cumulative probability exceeds u",
        _inverse_cdf,
        _draw_inverse_cdf,
        fixed=[(_f64(0.5, 0.0, 0.5), _f64(0.0, 0.5, 0.25, 0.75))],
        hint="compare u with the running sum of probs; a category of probability 0 is never "
        "drawn, and u exactly on a boundary belongs to the category above it.",
    ),
    Exercise(
        "ch2.gaussian_mle",
        "gaussian_mle(x): x (N, D) -> (mean (D,), variance (D,)), the maximum-likelihood "
        "estimates of an independent Gaussian per column",
        _gaussian_mle,
        _draw_gaussian_mle,
        hint="the maximum-likelihood variance divides by N, not N - 1; average over the rows.",
    ),
    Exercise(
        "ch2.categorical_mle",
        "categorical_mle(x, num_classes): x (N,) int64 labels in 0..num_classes-1 -> "
        "(num_classes,) maximum-likelihood probabilities",
        lambda x, k: torch.bincount(x, minlength=k).to(torch.float64) / len(x),
        _draw_categorical_mle,
        hint="each class's share of the data; a class never seen gets 0, and the result has "
        "num_classes entries.",
    ),
    Exercise(
        "ch3.entropy",
        "entropy(p): p (K,) a probability vector -> its entropy in nats (a 0-dim tensor)",
        entropy,
        _draw_entropy,
        fixed=[(_f64(1.0, 0.0, 0.0),)],
        hint="-sum p log p, with 0 log 0 = 0 (the limit), never 0 * log 0 = nan.",
    ),
    Exercise(
        "ch3.kl_divergence",
        "kl_divergence(p, q): probability vectors (K,), p possibly with zeros (0 log 0 = 0) "
        "-> KL(p || q) in nats (0-dim tensor)",
        kl_divergence,
        _draw_kl,
        fixed=[(_f64(0.5, 0.5, 0.0), _f64(0.25, 0.25, 0.5))],
        hint="sum over the support of p of p log(p / q); the order of p and q matters.",
    ),
    Exercise(
        "ch4.momentum_step",
        "momentum_step(theta, grad, velocity, lr, momentum): tensors theta, grad, velocity "
        "of one shape, floats lr, momentum -> (new theta, new velocity), one step of "
        "heavy-ball momentum in torch.optim.SGD's form: velocity = momentum * velocity + grad, "
        "then theta - lr * velocity",
        _momentum_step,
        _draw_momentum_step,
        hint="update the velocity first, b = momentum * b + grad, then step against it: "
        "theta - lr * b.",
    ),
    Exercise(
        "ch4.adam_step",
        "adam_step(theta, grad, m, v, t, lr, beta1, beta2, eps): tensors theta, grad and "
        "Adam's running averages m, v; t the number of this step (1 for the first); floats "
        "lr, beta1, beta2, eps -> (new theta, new m, new v), as torch.optim.Adam computes them: "
        "the step uses the bias-corrected averages and adds eps outside the square root, and "
        "the m and v returned are the uncorrected ones",
        _adam_step,
        _draw_adam_step,
        fixed=[
            (
                _f64(1.0, 1.0, 1.0),
                _f64(1.0, -2.0, 1e-3),
                _f64(0, 0, 0),
                _f64(0, 0, 0),
                1,
                0.1,
                0.9,
                0.999,
                1e-8,
            )
        ],  # fmt: skip
        hint="update m and v first; for the step, divide m by 1 - beta1^t and v by "
        "1 - beta2^t (the bias correction) and add eps outside the square root; return the "
        "uncorrected m and v.",
    ),
    Exercise(
        "ch5.discriminator_loss",
        "discriminator_loss(real_logits, fake_logits): (B,) logits of D on real and fake "
        "examples -> (B,) -log D(real) - log(1 - D(fake)), finite for any logits",
        discriminator_loss,
        _draw_logit_pairs,
        fixed=[(_f64(100.0, -100.0), _f64(-100.0, 100.0))],
        hint="-log sigmoid(l) is softplus(-l) and -log(1 - sigmoid(l)) is softplus(l); a "
        "sigmoid followed by a log loses everything for large logits.",
    ),
    Exercise(
        "ch5.generator_loss",
        "generator_loss(fake_logits): (B,) logits of D on generated examples -> (B,) the "
        "non-saturating loss -log D(G(z)), finite for any logits",
        lambda logits: generator_loss(logits, non_saturating=True),
        _draw_logits,
        fixed=[(_f64(-100.0, 100.0, 0.0),)],
        hint="the non-saturating loss is -log sigmoid(l), not log(1 - sigmoid(l)) (the "
        "minimax one); write it with softplus.",
    ),
    Exercise(
        "ch6.gaussian_kl",
        "gaussian_kl(mu, logvar): (B, L) -> (B,) KL(N(mu, exp(logvar)) || N(0, I)) in nats",
        gaussian_kl,
        _draw_gaussian_kl,
        fixed=[(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64))],
        hint="per dimension (mu^2 + sigma^2 - 1 - log sigma^2) / 2 with sigma^2 = exp(logvar), "
        "not logvar squared; sum over the last axis. It is 0 at mu = 0, logvar = 0.",
    ),
    Exercise(
        "ch6.reparameterize",
        "reparameterize(mu, logvar, eps): tensors of one shape -> z = mu + sigma * eps, "
        "a draw from N(mu, exp(logvar)) made from standard-normal noise eps",
        lambda mu, logvar, eps: mu + torch.exp(0.5 * logvar) * eps,
        _draw_reparameterize,
        hint="sigma is the standard deviation, exp(logvar / 2), not the variance exp(logvar).",
    ),
    Exercise(
        "ch7.lstm_cell",
        "lstm_cell(x, h, c, w_ih, w_hh, b): x (B, I), h and c (B, H), w_ih (4H, I), "
        "w_hh (4H, H), b (4H,) (the two biases of torch.nn.LSTMCell, added) -> (new h, new c), "
        "gates in PyTorch's order i, f, g, o",
        _lstm_cell,
        _draw_lstm_cell,
        hint="check the order of the four blocks of pre-activations (input, forget, cell, "
        "output), which nonlinearity each gate takes, and that the new h uses the new c.",
    ),
    Exercise(
        "ch7.bits_per_char",
        "bits_per_char(logits, targets): logits (N, V), targets (N,) int64 -> the average "
        "cross-entropy in bits per character (a float)",
        lambda logits, targets: F.cross_entropy(logits, targets).item() / math.log(2),
        _draw_bits_per_char,
        fixed=[
            (
                torch.tensor([[1000.0, -1000.0], [-1000.0, 1000.0]], dtype=torch.float64),
                torch.tensor([1, 1]),
            )
        ],
        hint="a softmax of large logits overflows; work with the log-softmax, and convert "
        "nats to bits at the end.",
    ),
    Exercise(
        "ch8.frechet_distance",
        "frechet_distance(mu1, cov1, mu2, cov2): means (D,) and covariances (D, D) of two "
        "Gaussians -> their squared Fréchet distance d^2, the number FID reports (a float)",
        frechet_distance,
        _draw_frechet,
        hint="|mu1 - mu2|^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2)); the matrix square root "
        "is not the elementwise one (scipy.linalg.sqrtm computes it).",
        tolerance=1e-4,
    ),
    Exercise(
        "ch8.kth_neighbour_radius",
        "kth_neighbour_radius(points, k): points (N, D), an int k >= 1 -> (N,) the distance "
        "from each point to its k-th nearest other point (k = 1: the nearest)",
        _kth_neighbour_distance,  # what chapter 8's precision and recall use
        _draw_kth_neighbour,
        hint="Euclidean distances to every point, sorted; the nearest is the point itself, at "
        "distance 0, and it does not count.",
    ),
    Exercise(
        "A.log_sum_exp",
        "log_sum_exp(x): x (N,) -> log(sum(exp(x))) as a 0-dim tensor, finite for any finite x",
        lambda x: torch.logsumexp(x, 0),
        _draw_log_sum_exp,
        fixed=[(_f64(1000.0, 1000.0),), (_f64(-1000.0, -1001.0),)],
        hint="factor out the largest entry m: log sum exp(x) = m + log sum exp(x - m).",
    ),
    Exercise(
        "A.multinomial_log_pmf",
        "multinomial_log_pmf(x, probs): counts x (K,) as a float tensor and positive "
        "probabilities probs (K,) -> the log of the multinomial pmf (a 0-dim tensor)",
        _multinomial_log_pmf,
        _draw_multinomial,
        hint="every category has a factorial in the coefficient's denominator, not only the "
        "first two; torch.lgamma(x + 1) is log x!.",
    ),
]
EXERCISES: dict[str, Exercise] = {exercise.id: exercise for exercise in _EXERCISES}


# -- checking a student's function ---------------------------------------------------------


def _describe(value: Any) -> str:
    """An input as a reader can retype it: small tensors in full, large ones by shape."""
    if isinstance(value, torch.Tensor):
        if value.numel() <= 12:
            shown = value.round(decimals=4) if value.is_floating_point() else value
            return f"tensor({shown.tolist()}, dtype={value.dtype})"
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return repr(value)


def _as_tensors(value: Any) -> tuple[torch.Tensor, ...]:
    """A result as a tuple of tensors: a tuple of results, or one result (a list is one
    result, a vector written as a list)."""
    items = value if isinstance(value, tuple) else (value,)
    return tuple(torch.as_tensor(item) for item in items)


def _compare(got: Any, expected: Any, exercise: Exercise) -> str | None:
    """None if ``got`` matches ``expected``, else a sentence saying what differs."""
    want = _as_tensors(expected)
    try:
        have = _as_tensors(got)
    except (TypeError, ValueError, RuntimeError):
        return f"returned {type(got).__name__}, which is not a tensor or a number"
    if len(have) != len(want):
        return f"returned {len(have)} value(s), but the exercise asks for {len(want)}"
    for position, (h, w) in enumerate(zip(have, want, strict=True)):
        which = f"value {position + 1} of the result" if len(want) > 1 else "the result"
        if h.shape != w.shape:
            return f"{which} has shape {tuple(h.shape)}, but should have shape {tuple(w.shape)}"
        if w.is_floating_point() != h.is_floating_point():
            kind = "floating-point" if w.is_floating_point() else "integer"
            return f"{which} has dtype {h.dtype}, but should be {kind}"
        h64, w64 = h.detach().to(torch.float64), w.detach().to(torch.float64)
        if not torch.isfinite(h64[torch.isfinite(w64)]).all():
            return (
                f"{which} has non-finite values (nan or inf) where the answer is finite: "
                "a log of 0, or an exp that overflowed?"
            )
        close = torch.isclose(h64, w64, rtol=exercise.tolerance, atol=exercise.tolerance)
        if not close.all():  # what is wrong and where, but never by how much
            where = ""
            if w.ndim:
                index = [int(i) for i in torch.nonzero(~close)[0]]
                shown = index[0] if len(index) == 1 else tuple(index)
                where = f" (the first wrong entry is at index {shown})"
            near = torch.isclose(h64, w64, rtol=1e-2, atol=1e-2).all()
            kind = (
                "values close to the answer, but not within the tolerance"
                if near
                else "wrong values"
            )
            return f"{which} has {kind}{where}"
    return None


def check(
    exercise_id: str, student_function: Callable[..., Any], *, cases: int = 25, seed=None
) -> bool:
    """Test ``student_function`` for the exercise ``exercise_id``; print the verdict.

    Runs the exercise's fixed cases and ``cases`` random ones (fresh each call;
    ``seed`` makes them repeatable) against the reference implementation. At
    the first failure it prints what differed, the input, a hint and the seed
    that reproduces it. Returns True if every case passed; a grading cell
    asserts it.

    Raises:
        ValueError: ``exercise_id`` is not an exercise (the message lists them).
        TypeError: ``student_function`` is not callable.
    """
    if exercise_id not in EXERCISES:
        raise ValueError(
            f"exercise_id {exercise_id!r} is not an exercise; the exercises are "
            f"{', '.join(EXERCISES)}"
        )
    if not callable(student_function):
        raise TypeError(
            f"student_function must be the function you wrote (callable), got "
            f"{type(student_function).__name__} {student_function!r}"
        )
    check_positive_int("cases", cases)
    exercise = EXERCISES[exercise_id]
    seed = secrets.randbits(48) if seed is None else seed
    generator = torch.Generator().manual_seed(seed)
    all_cases = [*exercise.fixed, *(exercise.draw(generator) for _ in range(cases))]
    for inputs in all_cases:
        given = tuple(x.clone() if isinstance(x, torch.Tensor) else x for x in inputs)
        try:
            got = student_function(*given)
        except NotImplementedError:
            print(f"✗ {exercise_id}: not implemented yet (replace `raise NotImplementedError`).")
            return False
        except Exception as error:  # the student's code: any error is a finding
            verdict = f"raised {type(error).__name__}: {error}"
        else:
            changed = any(isinstance(a, torch.Tensor) and not torch.equal(a, b)
                          for a, b in zip(given, inputs, strict=True))  # fmt: skip
            verdict = "changed its input tensors in place" if changed else None
            verdict = verdict or _compare(got, exercise.reference(*inputs), exercise)
        if verdict is not None:
            shown = ", ".join(_describe(x) for x in inputs)
            print(f"✗ {exercise_id}: {verdict}{'' if verdict.endswith('?') else '.'}")
            print(f"  input: {exercise_id.split('.')[1]}({shown})")
            if exercise.hint:
                print(f"  hint: {exercise.hint}")
            print(f"  (this case again: check({exercise_id!r}, ..., seed={seed}))")
            return False
    print(f"✓ {exercise_id}: all {len(all_cases)} cases agree with the reference.")
    return True


# -- self-check quizzes ------------------------------------------------------------------------


def quiz(chapter: str) -> list[dict]:
    """The multiple-choice questions of ``chapter`` (a notebook's name, e.g.
    ``"06_vae"``), in ``jupyterquiz``'s format: pass them to
    ``jupyterquiz.display_quiz``."""
    folder = resources.files("genai_course") / "quizzes"
    path = folder / f"{chapter}.json"
    if not path.is_file():
        names = sorted(
            p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json")
        )
        raise ValueError(f"chapter {chapter!r} has no quiz; the quizzes are {', '.join(names)}")
    return json.loads(path.read_text(encoding="utf-8"))
