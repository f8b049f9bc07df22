"""Bad inputs to every public function and class of ``information``, ``optim``, ``vae``,
``gan`` and ``metrics``.

Each row of ``CASES`` names a callable, a factory of valid arguments, one argument to
corrupt and what kind of value it is. Each corruption of that kind (NaN and infinities,
negatives, complex numbers, integer and bool tensors, the other float dtype, wrong
shapes, empty tensors, lists, NumPy arrays and scalars) must give EITHER

* the result of the same call with the equivalent valid value (``SAME``: a list, an
  array, an integer tensor holds the same numbers as some float tensor), or the result of
  an independent reference where the corrupted value is in fact valid (``ok``), OR
* a ``TypeError`` or ``ValueError`` whose message names the argument.

Anything else fails: a ``RuntimeError`` from deep inside torch, a warning (a complex
value cast to real), a different number. Functions of the training step do not look at
values (a check would read a number back from the device every step); for them NaN in
gives NaN out (``unchecked``), and their docstrings say so.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import scipy.linalg
import scipy.spatial
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from torch import nn

from genai_course import dirac_gan, gan, gan_stability, information, metrics, optim, vae

pytestmark = pytest.mark.filterwarnings("error")  # a complex value cast to real warns

SAME = "same"  # the result of the equivalent valid value, or a named error
REFUSE = "refuse"  # a named error (unless the case lists the label in ``ok``/``unchecked``)
EMPTY = "empty"  # a named error, or an empty result


# -- corruptions of a tensor --------------------------------------------------------------


def _set_first(value: torch.Tensor, x: float) -> torch.Tensor:
    bad = value.clone()
    bad.view(-1)[0] = x
    return bad


def _truncated(value: torch.Tensor, kind: str) -> torch.Tensor:
    short = value[..., :-1].clone()
    if kind == "simplex":  # still a probability vector, one class short
        short = short / short.sum(-1, keepdim=True)
    return short


def _other_float(value: torch.Tensor) -> torch.Tensor:
    return value.float() if value.dtype == torch.float64 else value.double()


def tensor_corruption(label: str, value: torch.Tensor, kind: str):
    """``(how, bad, equivalent)``: the corrupted value, and for ``SAME`` the valid
    tensor that holds the same numbers."""
    dtype = value.dtype
    if label == "list":
        return SAME, value.tolist(), value
    if label == "numpy":
        return SAME, value.numpy(), value
    if label == "numpy scalar":
        first = value.reshape(-1)[0]
        scalar = np.int64(first.item()) if kind == "index" else np.float64(first.item())
        return SAME, scalar, first.clone()
    if label == "int":
        rounded = value.round()
        return SAME, rounded.long(), rounded
    if label == "bool":
        flags = value > 0.25
        return SAME, flags, flags.to(dtype)
    if label == "other float":
        return SAME, _other_float(value), value
    if label == "float":  # of integer labels
        return SAME, value.to(torch.get_default_dtype()), value
    if label == "int32":
        return SAME, value.int(), value
    if label == "nan":
        return REFUSE, _set_first(value, math.nan), None
    if label == "inf":
        return REFUSE, _set_first(value, math.inf), None
    if label == "-inf":
        return REFUSE, _set_first(value, -math.inf), None
    if label == "negative":
        return REFUSE, _set_first(value, -1 if kind == "index" else -0.5), None
    if label == "above one":
        return REFUSE, _set_first(value, 1.5), None
    if label == "too large":  # a class index past the last class
        return REFUSE, _set_first(value, 99), None
    if label == "complex":
        return REFUSE, value.to(torch.complex128) + 0.5j, None
    if label == "empty":
        return EMPTY, value[:0] if value.ndim else value.reshape(-1)[:0], None
    if label == "truncated":
        return REFUSE, _truncated(value, kind), None
    if label == "scalar":
        return REFUSE, value.reshape(-1)[0].clone(), None
    if label == "two columns":  # (B,) logits as (B, 2): two logits per example
        return REFUSE, torch.stack((value, value), 1), None
    if label == "no channel axis":  # (B, 1, H, W) images as (B, H, W)
        return SAME, value[:, 0], value
    raise AssertionError(label)


_FLOATS = ["list", "numpy", "numpy scalar", "int", "bool", "other float"]
_SHAPES = ["empty", "truncated", "scalar"]
TENSOR_LABELS = {
    "real": [*_FLOATS, "nan", "inf", "-inf", "complex", *_SHAPES],
    "unit": [*_FLOATS, "nan", "inf", "-inf", "negative", "above one", "complex", *_SHAPES],
    "simplex": [*_FLOATS, "nan", "inf", "-inf", "negative", "above one", "complex", *_SHAPES],
    "index": ["list", "numpy", "numpy scalar", "float", "bool", "int32", "negative",
              "too large", "complex", *_SHAPES],
}  # fmt: skip

# -- corruptions of a number ----------------------------------------------------------------


def number_corruption(label: str, value):
    if label == "zero":
        return REFUSE, 0, None
    if label == "negative":
        return REFUSE, -1 if isinstance(value, int) else -0.5, None
    if label == "fraction":
        return REFUSE, value + 0.5, None
    if label == "above one":
        return REFUSE, 1.5, None
    if label == "one":
        return REFUSE, 1, None
    if label == "bool":
        return SAME, True, 1
    if label in ("nan", "inf", "-inf"):
        return REFUSE, float(label), None
    if label == "complex":
        return REFUSE, complex(value, 1), None
    if label == "numpy int":
        return SAME, np.int64(value), value
    if label == "numpy float32":
        return SAME, np.float32(value), float(np.float32(value))
    if label == "numpy array":
        return SAME, np.array(value), value
    if label == "tensor":
        return SAME, torch.tensor(value), value
    if label == "list":
        return REFUSE, [value], None
    raise AssertionError(label)


_NUMBERS = ["nan", "inf", "-inf", "complex", "bool", "list", "numpy array", "tensor"]
NUMBER_LABELS = {
    "size": ["zero", "negative", "fraction", "numpy int", *_NUMBERS],  # an int >= 1
    "count": ["negative", "fraction", "numpy int", *_NUMBERS],  # an int >= 0
    "positive": ["zero", "negative", "numpy float32", *_NUMBERS],
    "non-negative": ["negative", "numpy float32", *_NUMBERS],
    "fraction": ["negative", "above one", "numpy float32", *_NUMBERS],  # in [0, 1]
    "base": ["zero", "negative", "one", "numpy float32", *_NUMBERS],
}


# -- corruptions of anything else -------------------------------------------------------------


class NotAModule:
    latent_dim = 3  # looks like a generator, but is not a network


OTHER = {
    "flag": {
        "string": (REFUSE, "yes", None),
        "int": (SAME, 1, True),
        "numpy bool": (SAME, np.True_, True),
        "none": (REFUSE, None, None),
    },
    "generator": {
        "int": (REFUSE, 0, None),
        "numpy generator": (REFUSE, np.random.default_rng(0), None),
    },
    "module": {
        "none": (REFUSE, None, None),
        "function": (REFUSE, lambda *args: args, None),
        "other object": (REFUSE, NotAModule(), None),
    },
    "callable": {"not callable": (REFUSE, 3, None)},
    "optimizer": {"not an optimizer": (REFUSE, lambda *args: None, None)},
    "path": {"int": (REFUSE, 123, None)},
    "betas": {
        "one number": (REFUSE, 0.9, None),
        "three numbers": (REFUSE, (0.9, 0.99, 0.999), None),
        "nan": (REFUSE, (0.9, math.nan), None),
        "one": (REFUSE, (0.9, 1.0), None),
        "negative": (REFUSE, (-0.1, 0.999), None),
        "complex": (REFUSE, (0.9, 0.999j), None),
        "list": (SAME, [0.8, 0.99], (0.8, 0.99)),
        "numpy": (SAME, np.array([0.8, 0.99]), (0.8, 0.99)),
        "numpy float32": (SAME, (np.float32(0.75), 0.5), (0.75, 0.5)),
        "tensor": (SAME, torch.tensor([0.75, 0.5]), (0.75, 0.5)),
    },
    "params": {
        "tensor": (REFUSE, torch.zeros(2, requires_grad=True), None),
        "empty": (REFUSE, [], None),
        "int tensor": (REFUSE, [torch.zeros(2, dtype=torch.long)], None),
        "list of lists": (REFUSE, [[1.0, 2.0]], None),
    },
    "image shape": {
        "floats": (SAME, (2.0, 3.0), (2, 3)),
        "negative": (REFUSE, (-2, -3), None),
        "one number": (REFUSE, 6, None),
        "one axis": (REFUSE, (6,), None),
        "list": (SAME, [2, 3], (2, 3)),
        "numpy": (SAME, np.array([2, 3]), (2, 3)),
    },
}


def labels_of(kind: str) -> list[str]:
    return TENSOR_LABELS.get(kind) or NUMBER_LABELS.get(kind) or list(OTHER[kind])


EXTRA = {  # corruptions that only some arguments get
    "vector-valued": (REFUSE, lambda x: x**2, None),  # an f that is not a scalar function
    "wrong shape": (REFUSE, lambda x: x.reshape(-1)[:1], None),  # a gradient of one number
}


def corrupt(label: str, value, kind: str):
    if label in EXTRA:
        return EXTRA[label]
    if kind in TENSOR_LABELS:
        return tensor_corruption(label, value, kind)
    if kind in NUMBER_LABELS:
        return number_corruption(label, value)
    return OTHER[kind][label]


# -- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One argument of one callable, and how to corrupt it."""

    target: Callable  # the public function, class or method (its docstring, its name)
    call: Callable[..., object]  # call(**valid()) runs it
    valid: Callable[[], dict]  # fresh valid arguments (new modules, new generators)
    arg: str  # the argument to corrupt
    kind: str  # what it is: a key of TENSOR_LABELS, NUMBER_LABELS or OTHER
    ok: frozenset = frozenset()  # labels that are valid after all: compare with reference
    reference: Callable[..., object] | None = None  # independent, for the ``ok`` labels
    unchecked: frozenset = frozenset()  # labels the docstring says are not checked
    extra: tuple = ()  # labels beyond those of the kind
    skip: frozenset = frozenset()  # labels that do not apply
    name: str = ""  # the case's id, when the target's name alone is ambiguous
    rtol: float = 1e-5

    @property
    def labels(self) -> list[str]:
        return [x for x in labels_of(self.kind) if x not in self.skip] + list(self.extra)

    @property
    def id(self) -> str:
        module = self.target.__module__.split(".")[-1]
        return f"{module}.{self.name or self.target.__qualname__}[{self.arg}]"


def sweep(target, valid, kinds: dict[str, str], call=None, **options) -> list[Case]:
    """One case per argument of ``kinds`` (argument -> kind), with the same options."""
    return [
        Case(target, call or target, valid, arg, kind, **options) for arg, kind in kinds.items()
    ]


NAN = frozenset({"nan", "inf", "-inf"})  # what a function of the training step passes on
OUTSIDE = NAN | {"negative", "above one"}  # pixels that elbo(check_values=False) passes on


def seeded(make, *args, **kwargs):
    """``make(*args, **kwargs)`` after seeding torch: the same weights every time."""
    torch.manual_seed(0)
    return make(*args, **kwargs)


def f64(*rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def codes() -> torch.Tensor:
    return torch.tensor([[0.5, -1.0, 0.2], [1.0, 0.0, -0.3]])  # (2, 3)


def images(n: int, per_example: int) -> torch.Tensor:
    """``n`` examples of grey levels in [0, 1]: (n, per_example)."""
    return (torch.arange(n * per_example) % 7 / 6).reshape(n, per_example)


def noise() -> torch.Generator:
    return torch.Generator().manual_seed(1)


# information -----------------------------------------------------------------------------


def probabilities() -> dict:
    return dict(p=f64([0.2, 0.3, 0.5], [0.6, 0.4, 0.0]), q=f64([0.1, 0.1, 0.8], [0.5, 0.25, 0.25]))


def scipy_measure(p, q=None, base=None) -> torch.Tensor:
    """H(p) without q; with q, KL(p || q) (its cross-entropy: add H(p))."""
    p = np.asarray(p, dtype=np.float64)
    if q is None:
        return torch.as_tensor(stats.entropy(p, base=base, axis=-1))
    return torch.as_tensor(stats.entropy(p, np.asarray(q, np.float64), base=base, axis=-1))


def scipy_cross_entropy(p, q, base=None) -> torch.Tensor:
    return scipy_measure(p, q, base) + scipy_measure(p, base=base)


def gaussians() -> dict:
    return dict(
        mu_q=f64([0.5, -1.0, 0.0], [1.0, 0.2, -0.3]),
        logvar_q=f64([0.1, -0.5, 0.3], [0.0, 1.0, -1.0]),
        mu_p=f64([0.0, 0.4, 1.0], [-0.5, 0.0, 0.2]),
        logvar_p=f64([0.2, 0.0, -0.4], [0.5, -0.2, 0.1]),
    )


def torch_gaussian_kl(mu_q, logvar_q, mu_p=0.0, logvar_p=0.0) -> torch.Tensor:
    mu_q, logvar_q, mu_p, logvar_p = torch.broadcast_tensors(
        *(torch.as_tensor(t, dtype=torch.float64) for t in (mu_q, logvar_q, mu_p, logvar_p))
    )
    q = torch.distributions.Normal(mu_q, (0.5 * logvar_q).exp())
    p = torch.distributions.Normal(mu_p, (0.5 * logvar_p).exp())
    return torch.distributions.kl_divergence(q, p).sum(-1)


def logits_and_targets() -> dict:
    return dict(
        logits=torch.tensor([[0.5, -2.0, 3.0], [0.0, 1.0, -1.0]]),
        targets=torch.tensor([[1.0, 0.0, 0.3], [0.0, 1.0, 1.0]]),
    )


def torch_bce(logits, targets) -> torch.Tensor:
    logits = torch.as_tensor(logits, dtype=torch.float64)
    targets = torch.as_tensor(targets, dtype=torch.float64).expand_as(logits)
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")


def logits_and_labels() -> dict:
    return dict(
        logits=torch.tensor([[0.5, -2.0, 3.0], [0.0, 1.0, -1.0]]), labels=torch.tensor([2, 0])
    )


def information_cases() -> list[Case]:
    entropy, cross_entropy, kl = (
        information.entropy,
        information.cross_entropy,
        information.kl_divergence,
    )

    def of_p():
        return {"p": probabilities()["p"], "base": 2.0}

    def of_p_and_q():
        return {**probabilities(), "base": 2.0}

    fewer = frozenset({"truncated"})  # for H(p) alone, one class fewer is another distribution
    return [
        Case(entropy, entropy, of_p, "p", "simplex", ok=fewer, reference=scipy_measure),
        Case(entropy, entropy, of_p, "base", "base"),
        *sweep(cross_entropy, of_p_and_q, dict(p="simplex", q="simplex", base="base")),
        *sweep(kl, of_p_and_q, dict(p="simplex", q="simplex", base="base")),
        # a scalar broadcasts; NaN in gives NaN out (it runs in the VAE's training step)
        *sweep(information.gaussian_kl, gaussians, dict.fromkeys(gaussians(), "real"),
               ok=frozenset({"scalar"}), reference=torch_gaussian_kl, unchecked=NAN),
        Case(information.binary_cross_entropy_with_logits,
             information.binary_cross_entropy_with_logits, logits_and_targets, "logits", "real"),
        Case(information.binary_cross_entropy_with_logits,
             information.binary_cross_entropy_with_logits, logits_and_targets, "targets", "unit",
             ok=frozenset({"scalar"}), reference=torch_bce),  # a scalar target broadcasts
        *sweep(information.softmax_cross_entropy, logits_and_labels,
               dict(logits="real", labels="index")),
    ]  # fmt: skip


# optim -------------------------------------------------------------------------------------


def bowl(x: torch.Tensor) -> torch.Tensor:
    """A convex bowl, sum (x - 1)^2 + x_0 x_1, its minimum away from the start."""
    return ((x - 1) ** 2).sum() + x.reshape(-1)[0] * x.reshape(-1)[-1]


def run_optimizer(make, steps: int = 3, complex_start: bool = False, **hyper) -> torch.Tensor:
    """The parameter after ``steps`` steps of ``make([theta], **hyper)`` down the bowl."""
    start = torch.tensor([1.5, -0.5, 2.0], dtype=torch.float64)
    if complex_start:  # a complex parameter; the loss is |bowl|, real
        start = start.to(torch.complex128) * (1 + 0.5j)
    theta = start.clone().requires_grad_(True)
    optimizer = make([theta], **hyper)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = bowl(theta)
        (loss.abs() if complex_start else loss).backward()
        optimizer.step()
    return theta.detach()


def construct_or_run(cls):
    """``cls(params, **hyper)`` for a corrupted ``params``, else three steps of it."""

    def call(params=None, **hyper):
        return cls(params, **hyper) if params is not None else run_optimizer(cls, **hyper)

    return call


def one_step(cls, closure=None, grad=None) -> torch.Tensor:
    """The parameter after one step of ``cls`` with the given gradient."""
    theta = torch.tensor([1.0, 2.0], requires_grad=True)
    optimizer = cls([theta], lr=0.1)
    theta.grad = torch.tensor([0.5, -1.0]) if grad is None else grad
    optimizer.step(closure)
    return theta.detach()


def path_args() -> dict:
    return dict(f=bowl, x0=torch.tensor([1.5, -0.5]), lr=0.1, steps=3, grad=None)


def trajectory_args() -> dict:
    return dict(f=bowl, x0=torch.tensor([1.5, -0.5]), make_optimizer=adam, steps=3)


def adam(params):
    return optim.Adam(params, lr=0.1)


def sgd_hyper() -> dict:
    return dict(lr=0.1, momentum=0.5, dampening=0.1, weight_decay=0.01, params=None)


def adam_hyper() -> dict:
    return dict(lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01, params=None)


def optim_cases() -> list[Case]:
    gd, trajectory = optim.gradient_descent, optim.trajectory
    any_shape = frozenset({"truncated", "scalar", "empty"})  # f takes any shape
    cases = [
        Case(gd, gd, path_args, "x0", "real", skip=any_shape),
        *sweep(gd, path_args, dict(lr="non-negative", steps="count")),
        Case(gd, gd, path_args, "f", "callable", extra=("vector-valued",)),
        Case(gd, gd, lambda: {**path_args(), "grad": lambda x: 2 * (x - 1)}, "grad", "callable",
             extra=("wrong shape",)),
        Case(trajectory, trajectory, trajectory_args, "x0", "real", skip=any_shape),
        Case(trajectory, trajectory, trajectory_args, "steps", "count"),
        Case(trajectory, trajectory, trajectory_args, "f", "callable", extra=("vector-valued",)),
        *sweep(trajectory, trajectory_args, dict(make_optimizer="optimizer")),
        Case(trajectory, trajectory, trajectory_args, "make_optimizer", "callable",
             name="trajectory(a function)"),
        *sweep(optim.SGD, sgd_hyper, dict(lr="non-negative", momentum="non-negative",
               dampening="fraction", weight_decay="non-negative", params="params"),
               call=construct_or_run(optim.SGD)),
        Case(optim.SGD, construct_or_run(optim.SGD),
             lambda: dict(lr=0.1, momentum=0.5, nesterov=True), "nesterov", "flag"),
        *sweep(optim.Adam, adam_hyper, dict(lr="non-negative", betas="betas", eps="positive",
               weight_decay="non-negative", params="params"), call=construct_or_run(optim.Adam)),
    ]  # fmt: skip
    for cls in (optim.SGD, optim.Adam):
        step = functools.partial(one_step, cls)
        cases += [
            Case(cls.step, step, lambda: {"closure": lambda: torch.tensor(1.0)}, "closure",
                 "callable", name=f"{cls.__name__}.step"),
            # the training step: a NaN gradient gives a NaN parameter, as in torch.optim
            Case(cls.step, step, lambda: {"grad": torch.tensor([0.5, -1.0])}, "grad", "real",
                 name=f"{cls.__name__}.step", unchecked=NAN,
                 skip=frozenset(TENSOR_LABELS["real"]) - NAN),
        ]  # fmt: skip
    return cases


# vae --------------------------------------------------------------------------------------

VAES = (  # the two models, small, and the values of an example
    (vae.VAE, dict(input_dim=12, hidden_dim=8, latent_dim=3), 12),
    (vae.ConvVAE, dict(latent_dim=3, width=2), 784),
)


def method(name: str):
    """A call of ``model.name(**kwargs)``; ``forward`` for a call of the model itself."""

    def call(model, **kwargs):
        return model(**kwargs) if name == "forward" else getattr(model, name)(**kwargs)

    return call


def bound_args(check_values: bool = True) -> dict:
    return dict(
        x=images(2, 12),
        x_logits=torch.tensor([[0.5, -1.0, 2.0] * 4, [0.0, 1.0, -3.0] * 4]),
        mu=codes(),
        logvar=torch.tensor([[0.1, -0.5, 0.3], [0.0, 1.0, -1.0]]),
        check_values=check_values,
    )


def loss_args(check_values: bool = True) -> dict:
    model = seeded(vae.VAE, **VAES[0][1])
    return dict(model=model, x=images(2, 12), generator=noise(), check_values=check_values)


def iwae_args() -> dict:
    model = seeded(vae.VAE, **VAES[0][1])
    return dict(model=model, x=(images(2, 12) > 0.5).float(), k=3, chunk_size=4, generator=noise())


def reparameterize_args() -> dict:
    return dict(mu=codes(), logvar=codes().flip(0), generator=noise())


def gaussian_loss_args(check_values: bool = True) -> dict:
    model = seeded(vae.VAE, **VAES[0][1])
    return dict(model=model, x=images(2, 12), sigma=0.3, generator=noise(), beta=2.0,
                check_values=check_values)  # fmt: skip


def posterior_args() -> dict:
    model = seeded(vae.VAE, **VAES[0][1])
    x = (images(2, 12) > 0.5).float()
    with torch.no_grad():
        mu, logvar = model.encode(x)
    return dict(model=model, x=x, mu=mu, logvar=logvar, samples=3, generator=noise())


def optimize_args() -> dict:
    model = seeded(vae.VAE, **VAES[0][1])
    return dict(model=model, x=(images(2, 12) > 0.5).float(), steps=2, lr=0.01, samples=2,
                generator=noise())  # fmt: skip


def practice_cases() -> list[Case]:
    """The chapter VAEs in practice: the beta-weighted loss, the Gaussian decoder, the
    per-image Gaussians, latent usage."""
    gaussian, loss = vae.gaussian_elbo, vae.gaussian_negative_elbo
    tensors = dict(x="unit", x_logits="real", mu="real", logvar="real")
    return [
        *sweep(vae.gaussian_log_likelihood,
               lambda: dict(x=images(2, 12), x_mean=images(2, 12).flip(1), sigma=0.3),
               dict(x="real", x_mean="real", sigma="positive"), unchecked=NAN),
        *sweep(gaussian, lambda: {**bound_args(), "sigma": 0.3},
               {**tensors, "sigma": "positive", "check_values": "flag"}),
        *sweep(loss, gaussian_loss_args, dict(x="unit", model="module", sigma="positive",
               beta="non-negative", generator="generator"), rtol=1e-4),
        Case(vae.negative_elbo, vae.negative_elbo, lambda: {**loss_args(), "beta": 2.0}, "beta",
             "non-negative", rtol=1e-4, name="negative_elbo(beta)"),
        *sweep(vae.elbo_estimate, posterior_args, dict(model="module", x="unit", mu="real",
               logvar="real", samples="size", generator="generator"), rtol=1e-4),
        *sweep(vae.optimize_posterior, optimize_args, dict(model="module", x="unit",
               steps="size", lr="positive", samples="size", generator="generator"), rtol=1e-4),
        # an infinite threshold is a valid one: no unit is active
        *sweep(vae.latent_usage, lambda: dict(model=seeded(vae.VAE, **VAES[0][1]),
               x=images(4, 12), threshold=0.01), dict(model="module", x="unit",
               threshold="non-negative"), rtol=1e-4, skip=frozenset({"inf"})),
    ]  # fmt: skip


def vae_cases() -> list[Case]:
    cases = []
    for cls, sizes, per_example in VAES:
        name = cls.__name__

        def model(cls=cls, sizes=sizes, **kwargs):
            return {"model": seeded(cls, **sizes), **kwargs}

        def x(model=model, per_example=per_example):
            return model(x=images(2, per_example))

        options = dict(rtol=1e-4, unchecked=NAN)  # the networks pass NaN on
        cases += [
            *sweep(cls, lambda sizes=sizes: dict(sizes), dict.fromkeys(sizes, "size"),
                   call=functools.partial(seeded, cls)),
            Case(cls.encode, method("encode"), x, "x", "real", name=f"{name}.encode", **options),
            Case(cls.decode, method("decode"), lambda model=model: model(z=codes()), "z", "real",
                 name=f"{name}.decode", **options),
            Case(cls.forward, method("forward"), lambda x=x: {**x(), "generator": noise()},
                 "generator", "generator", name=f"{name}.forward"),
            *sweep(cls.sample, lambda model=model: model(n=2, generator=noise()),
                   dict(n="size", generator="generator"), call=method("sample"),
                   name=f"{name}.sample"),
            *sweep(cls.interpolate,
                   lambda model=model: model(z0=codes()[0], z1=codes()[1], steps=3),
                   dict(z0="real", z1="real", steps="size"), call=method("interpolate"),
                   name=f"{name}.interpolate", rtol=1e-4),
        ]  # fmt: skip
    tensors = dict(x="unit", x_logits="real", mu="real", logvar="real")
    elbo, loss = vae.elbo, vae.negative_elbo
    cases += [
        *sweep(vae.reparameterize, reparameterize_args, dict(mu="real", logvar="real"),
               unchecked=NAN),
        Case(vae.reparameterize, vae.reparameterize, reparameterize_args, "generator",
             "generator"),
        *sweep(elbo, bound_args, {**tensors, "check_values": "flag"}),
        *sweep(elbo, lambda: bound_args(False), tensors, name="elbo(check_values=False)",
               unchecked=OUTSIDE),
        *sweep(loss, loss_args, dict(x="unit", model="module", generator="generator"),
               rtol=1e-4),
        Case(loss, loss, lambda: loss_args(False), "x", "unit", rtol=1e-4, unchecked=OUTSIDE,
             name="negative_elbo(check_values=False)"),
        *sweep(vae.iwae_log_likelihood, iwae_args, dict(model="module", x="unit", k="size",
               chunk_size="size", generator="generator"), rtol=1e-4),
    ]  # fmt: skip
    return cases


# gan ----------------------------------------------------------------------------------------

NETWORKS = (  # each network, small, and an input of it
    (gan.MLPGenerator, dict(latent_dim=3, data_dim=6, hidden_dim=4, num_layers=1,
                            image_shape=(2, 3)), "z", codes),
    (gan.MLPDiscriminator, dict(data_dim=6, hidden_dim=4, num_layers=1), "x",
     lambda: codes().repeat(1, 2)),
    (gan.DCGANGenerator, dict(latent_dim=3, width=2), "z", codes),
    (gan.DCGANDiscriminator, dict(width=2), "x",
     lambda: (2 * images(2, 784) - 1).reshape(2, 1, 28, 28)),
)  # fmt: skip


def pair_of_logits() -> dict:
    return dict(real_logits=torch.tensor([0.5, -2.0, 3.0]), fake_logits=codes()[1])


def log_densities() -> dict:
    return dict(log_p=f64(-1.0, -2.5, 0.3), log_q=f64(-0.5, -3.0, -1.0))


def d_star(log_p, log_q) -> torch.Tensor:
    """p / (p + q), from the densities themselves."""
    p, q = (torch.as_tensor(t, dtype=torch.float64).exp() for t in (log_p, log_q))
    return p / (p + q)


def minus_log_d(fake_logits, non_saturating=True) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(
        fake_logits, torch.ones_like(fake_logits), reduction="none"
    )


def ring_gan() -> gan.GAN:
    G = seeded(gan.MLPGenerator, 3, 2, hidden_dim=4, num_layers=1)
    D = seeded(gan.MLPDiscriminator, 2, hidden_dim=4, num_layers=1)
    return gan.GAN(G, D, num_fixed=4)


def gan_args() -> dict:
    model = ring_gan()
    return dict(G=model.G, D=model.D, num_fixed=4, seed=0)


def step_args() -> dict:
    model = ring_gan()
    return dict(
        real=torch.tensor([[0.5, -1.0], [1.0, 0.0], [0.2, 0.3]]),
        gan=model,
        opt_d=torch.optim.SGD(model.D.parameters(), lr=0.1),
        opt_g=torch.optim.SGD(model.G.parameters(), lr=0.1),
        non_saturating=True,
    )


def one_round(real, **parts) -> dict:
    """One ``gan_step`` on the batch ``real``: the losses it reports."""
    torch.manual_seed(0)
    return gan.gan_step(**parts)(real)


def sample_args() -> dict:
    G = seeded(gan.MLPGenerator, 3, 6, hidden_dim=4, num_layers=1, image_shape=(2, 3))
    return dict(G=G, n=2, generator=noise())


def gan_cases() -> list[Case]:
    loss_d, loss_g, d_opt = gan.discriminator_loss, gan.generator_loss, gan.optimal_discriminator
    cases = [
        # the losses run in the training step: NaN in, NaN out
        *sweep(loss_d, pair_of_logits, dict(real_logits="real", fake_logits="real"),
               unchecked=NAN, extra=("two columns",)),
        Case(loss_g, loss_g, lambda: dict(fake_logits=codes()[0], non_saturating=True),
             "fake_logits", "real", unchecked=NAN, extra=("two columns",),
             ok=frozenset({"truncated"}), reference=minus_log_d),  # fewer examples: fine
        Case(loss_g, loss_g, lambda: dict(fake_logits=codes()[0], non_saturating=True),
             "non_saturating", "flag"),
        # a density of 0 has a log-density of -inf; a scalar broadcasts
        *sweep(d_opt, log_densities, dict(log_p="real", log_q="real"),
               ok=frozenset({"-inf", "scalar"}), reference=d_star),
    ]  # fmt: skip
    for cls, sizes, arg, value in NETWORKS:
        kinds = {name: "image shape" if name == "image_shape" else "size" for name in sizes}
        extra = ("no channel axis",) if cls is gan.DCGANDiscriminator else ()
        cases += [
            *sweep(cls, lambda sizes=sizes: dict(sizes), kinds,
                   call=functools.partial(seeded, cls)),
            Case(cls.forward, method("forward"),
                 lambda cls=cls, sizes=sizes, arg=arg, value=value: {
                     "model": seeded(cls, **sizes), arg: value()},
                 arg, "real", name=f"{cls.__name__}.forward", unchecked=NAN, extra=extra,
                 rtol=1e-4),
        ]  # fmt: skip
    return cases + [
        *sweep(gan.GAN, gan_args, dict(G="module", D="module", num_fixed="size", seed="count"),
               call=functools.partial(seeded, gan.GAN)),
        *sweep(gan.gan_step, step_args, dict(real="real", gan="module", opt_d="optimizer",
               opt_g="optimizer", non_saturating="flag"), call=one_round, rtol=1e-4,
               unchecked=NAN),
        Case(gan.to_gan_range, gan.to_gan_range, lambda: {"images": images(2, 16).reshape(2, 4, 4)},
             "images", "unit", ok=frozenset({"truncated"}),  # (N, H, W) of any H and W
             reference=lambda images: 2 * torch.as_tensor(images)[:, None] - 1),
        *sweep(gan.sample, sample_args, dict(G="module", n="size", generator="generator")),
    ]  # fmt: skip


# metrics -----------------------------------------------------------------------------------


def scipy_frechet(mu1, cov1, mu2, cov2) -> float:
    mu1, cov1, mu2, cov2 = (np.asarray(t, dtype=np.float64) for t in (mu1, cov1, mu2, cov2))
    root = scipy.linalg.sqrtm(cov1 @ cov2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1 + cov2 - 2 * root))


def formula_bits(nll_nats, num_dims):
    return torch.as_tensor(nll_nats, dtype=torch.float64) / (num_dims * math.log(2))


def numpy_moments(features, name="features"):
    x = np.asarray(features, dtype=np.float64)
    return torch.as_tensor(x.mean(0)), torch.as_tensor(np.cov(x.T).reshape(x.shape[1], -1))


def scipy_kth_neighbour(points, k, chunk):
    x = np.asarray(points, dtype=np.float64)
    return torch.as_tensor(np.sort(scipy.spatial.distance.cdist(x, x), axis=1)[:, k])


def grey(n: int = 4) -> torch.Tensor:
    return images(n, 784).reshape(n, 28, 28)


def classifier_args(**kwargs) -> dict:
    return {"model": seeded(metrics.FashionClassifier), "images": grey(), **kwargs}


def features() -> dict:
    return {"features": codes().repeat(2, 1) + torch.tensor([[0.0], [1.0], [0.5], [-2.0]])}


def two_gaussians() -> dict:
    return dict(
        mu1=f64(0.5, -1.0, 0.2),
        cov1=f64([2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]),
        mu2=f64(0.0, 0.4, 1.0),
        cov2=f64([1.0, -0.2, 0.1], [-0.2, 0.8, 0.0], [0.1, 0.0, 1.5]),
    )


def fid_args() -> dict:
    fake = grey(3).flip(0).roll(5, -1)
    return dict(real_images=grey(3), fake_images=fake, classifier=seeded(metrics.FashionClassifier))


def points(n: int = 5, shift: float = 0.0) -> torch.Tensor:
    cloud = f64([0.0, 0.0], [1.0, 0.5], [3.0, 1.0], [0.2, -2.0], [1.5, 1.5], [-1.0, 2.0])
    return cloud[:n] + shift


def metrics_cases() -> list[Case]:
    bits, frechet = metrics.bits_per_dim, metrics.frechet_distance
    classifier = metrics.FashionClassifier
    # an NLL of +inf (a probability of 0) is infinitely many bits; a negative one, of a density
    infinite = frozenset({"inf", "-inf"})
    return [
        Case(bits, bits, lambda: dict(nll_nats=f64(100.0, 250.0), num_dims=784), "nll_nats",
             "real", ok=infinite | {"empty", "scalar", "truncated"}, reference=formula_bits),
        Case(bits, bits, lambda: dict(nll_nats=100.0, num_dims=784), "num_dims", "size"),
        Case(bits, bits, lambda: dict(nll_nats=100.0, num_dims=784), "nll_nats",
             "non-negative", name="bits_per_dim(a float)", skip=frozenset({"negative"}),
             ok=infinite, reference=formula_bits),
        Case(metrics.as_images, metrics.as_images, lambda: {"images": grey()}, "images", "unit"),
        Case(classifier.forward, method("forward"), classifier_args, "images", "unit",
             name="FashionClassifier.forward", rtol=1e-4),
        *sweep(classifier.features, lambda: classifier_args(batch_size=3),
               dict(images="unit", batch_size="size"), call=method("features"),
               name="FashionClassifier.features", rtol=1e-4),
        *sweep(classifier.predict, lambda: classifier_args(batch_size=3),
               dict(images="unit", batch_size="size"), call=method("predict"),
               name="FashionClassifier.predict"),
        Case(metrics.load_classifier, metrics.load_classifier,
             lambda: dict(path=None, device="cpu"), "path", "path"),
        Case(metrics.feature_statistics, metrics.feature_statistics, features, "features", "real",
             ok=frozenset({"truncated"}), reference=numpy_moments),  # one column fewer: fine
        *sweep(frechet, two_gaussians, dict(mu1="real", mu2="real")),
        *sweep(frechet, two_gaussians, dict(cov1="real", cov2="real"), extra=("negative",)),
        *sweep(metrics.fid, fid_args, dict(real_images="unit", fake_images="unit",
               classifier="module"), skip=frozenset({"none"}), rtol=1e-4),  # None: the shipped
        Case(metrics.kth_neighbour_distance, metrics.kth_neighbour_distance,
             lambda: dict(points=points(), k=2, chunk=2), "points", "real",
             ok=frozenset({"truncated"}), reference=scipy_kth_neighbour),  # one column fewer
        *sweep(metrics.kth_neighbour_distance, lambda: dict(points=points(), k=2, chunk=2),
               dict(k="size", chunk="size")),
        *sweep(metrics.precision_recall,
               lambda: dict(real_features=points(), fake_features=points(shift=0.3), k=2),
               dict(real_features="real", fake_features="real", k="size")),
        *sweep(metrics.mode_coverage,
               lambda: dict(samples=points(4, shift=0.1), centres=points(3), scale=0.1),
               dict(samples="real", centres="real", scale="positive")),
        *sweep(metrics.memorisation,
               lambda: dict(fake=points(3, 0.1), train=points(), k=1, held_out=points(4, 0.2)),
               dict(fake="real", train="real", k="size", held_out="real")),
    ]  # fmt: skip


# gan_stability and dirac_gan ------------------------------------------------------------------


def pair_of_scores() -> dict:
    return dict(real_scores=torch.tensor([0.5, -2.0, 3.0]), fake_scores=codes()[1])


def power_args() -> dict:
    return dict(weight=f64([1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]), v=f64(0.3, -1.0, 0.5), steps=2)


def stability_cases() -> list[Case]:
    critic, critic_g = gan_stability.critic_loss, gan_stability.critic_generator_loss
    return [
        # the losses run in the training step: NaN in, NaN out
        *sweep(critic, pair_of_scores, dict(real_scores="real", fake_scores="real"),
               unchecked=NAN, extra=("two columns",)),
        Case(critic_g, critic_g, lambda: dict(fake_scores=codes()[0]), "fake_scores", "real",
             unchecked=NAN, extra=("two columns",), ok=frozenset({"truncated"}),
             reference=lambda fake_scores: -torch.as_tensor(fake_scores)),  # fewer: fine
        *sweep(gan_stability.power_iteration, power_args, dict(weight="real", v="real",
               steps="size"), unchecked=NAN),
        *sweep(dirac_gan.jacobian, lambda: dict(lr=0.2, mode="alternating", penalty=0.5),
               dict(lr="positive", penalty="non-negative")),
        Case(dirac_gan.trajectory, dirac_gan.trajectory,
             lambda: dict(theta=1.0, psi=0.5, lr=0.2, steps=3), "steps", "count"),
    ]  # fmt: skip


CASES = [*information_cases(), *optim_cases(), *vae_cases(), *gan_cases(), *metrics_cases(),
         *stability_cases(), *practice_cases()]  # fmt: skip


# -- the checks ---------------------------------------------------------------------------------


def attempt(case: Case, kwargs: dict):
    """``(True, result)``, or ``(False, error)`` for a TypeError/ValueError naming the
    argument; any other exception, or an error that does not name it, fails the test."""
    try:
        return True, case.call(**kwargs)
    except (TypeError, ValueError) as err:
        name = case.arg
        assert re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", str(err)), (
            f"{type(err).__name__} does not name {name}: {err}"
        )
        return False, err


def _as_tensor(value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    return torch.as_tensor(np.asarray(value))


def assert_same(got, want, rtol: float) -> None:
    """Equal results, within ``rtol``: tensors, numbers, tuples, dicts, modules."""
    if isinstance(want, nn.Module):
        assert isinstance(got, type(want))
        assert_same(dict(got.state_dict()), dict(want.state_dict()), rtol)
    elif isinstance(want, dict):
        assert got.keys() == want.keys()
        for key in want:
            assert_same(got[key], want[key], rtol)
    elif isinstance(want, tuple | list):
        assert isinstance(got, tuple | list) and len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            assert_same(a, b, rtol)
    else:
        a, b = _as_tensor(got), _as_tensor(want)
        assert a.shape == b.shape, f"shape {tuple(a.shape)}, expected {tuple(b.shape)}"
        assert not a.is_complex(), "a complex result"
        torch.testing.assert_close(a.double(), b.double(), rtol=rtol, atol=rtol, equal_nan=True)


def _tensors(result):
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, tuple | list):
        return [t for r in result for t in _tensors(r)]
    return [None]  # a number: of no examples, it is not one


def check(case: Case, label: str) -> None:
    kwargs = case.valid()
    how, bad, equivalent = corrupt(label, kwargs[case.arg], case.kind)
    kwargs[case.arg] = bad
    accepted, result = attempt(case, kwargs)
    if not accepted:
        return  # refused, naming the argument: always fine
    if label in case.unchecked:  # documented: NaN in, NaN out
        return
    if label in case.ok:
        assert_same(result, case.reference(**kwargs), case.rtol)
    elif how == SAME:
        valid = case.valid()
        valid[case.arg] = equivalent
        reference_accepted, reference = attempt(case, valid)
        assert reference_accepted, f"{label} accepted where the equivalent value is refused"
        rtol = 1e-3 if label == "other float" else case.rtol
        assert_same(result, reference, rtol)
    elif how == EMPTY:
        assert all(t is not None and t.numel() == 0 for t in _tensors(result)), (
            f"an empty {case.arg} gave {result!r}"
        )
    else:
        raise AssertionError(f"accepted, giving {result!r}")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input_is_refused_by_name_or_computed_right(case):
    """Every corruption of the case's argument; the failures all listed, one a line."""
    failures = []
    for label in case.labels:
        try:
            check(case, label)
        except Exception as err:  # an assertion, a warning, an error from inside torch
            failures.append(f"{label}: {type(err).__name__}: {str(err).splitlines()[0][:300]}")
    assert not failures, f"{case.id}:\n" + "\n".join(failures)


def test_every_public_callable_is_swept():
    def key(obj):
        return obj.__module__, obj.__qualname__

    covered = {key(case.target) for case in CASES}
    for module in (information, optim, vae, gan, metrics):
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isclass(obj) and not issubclass(obj, tuple):  # NamedTuples of results
                if inspect.signature(obj).parameters:  # a constructor with arguments
                    assert key(obj) in covered, f"{name} (its constructor) is not swept"
                for method in dir(obj):  # its own methods and those it inherits from the package
                    member = inspect.unwrap(getattr(obj, method))  # torch.optim wraps step
                    if method.startswith("_") or not inspect.isfunction(member):
                        continue
                    if (
                        member.__module__ == module.__name__
                        and len(inspect.signature(member).parameters) > 1
                    ):  # it takes arguments
                        assert key(member) in covered, f"{name}.{method} is not swept"
            elif inspect.isfunction(obj):
                assert key(obj) in covered, f"{module.__name__}.{name} is not swept"


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.unchecked & set(c.labels)], ids=lambda case: case.id
)
def test_what_is_not_checked_is_documented(case):
    """A function that passes NaN on says so, in its docstring or its module's."""
    doc = inspect.getdoc(case.target) or ""
    module_doc = inspect.getmodule(case.target).__doc__ or ""
    assert "NaN" in doc or "NaN" in module_doc, f"{case.id} passes NaN on without saying so"


# -- generated values ---------------------------------------------------------------------------

ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)
SOME_FLOAT = st.one_of(st.floats(-2, 2), st.sampled_from([0.0, math.nan, math.inf, -math.inf]))


def named_or(fn, name: str):
    """``fn()``, or None after a TypeError/ValueError naming ``name``."""
    try:
        return fn()
    except (TypeError, ValueError) as err:
        assert re.search(rf"\b{name}\b", str(err)), f"does not name {name}: {err}"
        return None


@settings(max_examples=150, deadline=None)
@given(
    p=hnp.arrays(np.float64, st.integers(1, 4), elements=SOME_FLOAT),
    q=hnp.arrays(np.float64, st.integers(1, 4), elements=SOME_FLOAT),
    normalise=st.booleans(),
)
def test_discrete_measures_on_any_floats(p, q, normalise):
    if normalise:  # often a probability vector, sometimes NaN or negative after all
        with np.errstate(all="ignore"):
            p, q = p / p.sum(), q / q.sum()
    got = named_or(lambda: information.entropy(torch.from_numpy(p)), "p")
    if got is not None:
        np.testing.assert_allclose(got, stats.entropy(p), rtol=1e-10, atol=1e-12)
    for fn in (information.kl_divergence, information.cross_entropy):
        try:
            got = fn(torch.from_numpy(p), torch.from_numpy(q))
        except (TypeError, ValueError) as err:
            assert re.search(r"\b[pq]\b", str(err)), str(err)
            continue
        expected = stats.entropy(p, q)
        if fn is information.cross_entropy:
            expected = expected + stats.entropy(p)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@settings(max_examples=150, deadline=None)
@given(
    logits=hnp.arrays(np.float64, 4, elements=ANY_FLOAT),
    targets=hnp.arrays(np.float64, 4, elements=ANY_FLOAT),
)
def test_binary_cross_entropy_on_any_floats(logits, targets):
    try:
        got = information.binary_cross_entropy_with_logits(
            torch.from_numpy(logits), torch.from_numpy(targets)
        )
    except (TypeError, ValueError) as err:
        assert re.search(r"\b(logits|targets)\b", str(err)), str(err)
        return
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, torch_bce(logits, targets), rtol=1e-10, atol=1e-10)


NUMBERS = st.one_of(
    ANY_FLOAT, st.integers(-3, 3), st.booleans(), st.complex_numbers(max_magnitude=2),
    st.none(), st.lists(st.floats(0, 1), max_size=2), st.floats(0, 1).map(np.float32),
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(["lr", "momentum", "dampening", "weight_decay"]), value=NUMBERS)
def test_sgd_hyperparameters_of_any_kind(name, value):
    hyper = {**dict(lr=0.1, momentum=0.5, dampening=0.1, weight_decay=0.01), name: value}
    got = named_or(lambda: run_optimizer(optim.SGD, **hyper), name)
    if got is not None:
        hyper[name] = float(value)
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, run_optimizer(torch.optim.SGD, **hyper))


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(["lr", "eps", "weight_decay"]), value=NUMBERS)
def test_adam_hyperparameters_of_any_kind(name, value):
    hyper = {**dict(lr=0.1, eps=1e-8, weight_decay=0.01), name: value}
    got = named_or(lambda: run_optimizer(optim.Adam, **hyper), name)
    if got is not None:
        hyper[name] = float(value)
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, run_optimizer(torch.optim.Adam, **hyper))


@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam])
def test_complex_parameters_follow_torch(cls):
    """torch.optim treats a complex parameter as its real and imaginary parts."""
    reference = getattr(torch.optim, cls.__name__)
    hyper = dict(lr=0.1, weight_decay=0.01)
    ours = run_optimizer(cls, complex_start=True, **hyper)
    torch.testing.assert_close(ours, run_optimizer(reference, complex_start=True, **hyper))


@settings(max_examples=100, deadline=None)
@given(
    mu=hnp.arrays(np.float64, 2, elements=SOME_FLOAT),
    scale=hnp.arrays(np.float64, 2, elements=SOME_FLOAT),
    arg=st.sampled_from(["mu1", "cov1"]),
)
def test_frechet_distance_on_any_floats(mu, scale, arg):
    args = dict(mu1=f64(0.5, -1.0), cov1=f64([2.0, 0.3], [0.3, 1.0]), mu2=f64(0.0, 0.4),
                cov2=f64([1.0, -0.2], [-0.2, 0.8]))  # fmt: skip
    if arg == "mu1":
        args["mu1"] = torch.from_numpy(mu)
    else:  # symmetric, with any diagonal
        args["cov1"] = torch.diag(torch.from_numpy(scale)) + 0.1 * (
            1 - torch.eye(2, dtype=torch.float64)
        )
    got = named_or(lambda: metrics.frechet_distance(**args), arg)
    if got is not None:
        assert got == pytest.approx(scipy_frechet(**args), rel=1e-6, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(nll=st.one_of(ANY_FLOAT, st.complex_numbers(), st.integers(-(10**6), 10**6)))
def test_bits_per_dim_on_any_number(nll):
    got = named_or(lambda: metrics.bits_per_dim(nll, 784), "nll_nats")
    if got is not None:
        assert isinstance(got, float)
        assert got == pytest.approx(float(nll) / (784 * math.log(2)), rel=1e-12)


def test_discriminator_logits_of_two_columns_are_refused():
    """(B, 2) logits for both real and fake: two logits per example, not one."""
    logits = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="real_logits"):
        gan.discriminator_loss(logits, logits)


# -- the training step stays free of read-backs ----------------------------------------------


@contextlib.contextmanager
def no_read_back():
    """Fail on any number read back from a tensor (``if tensor``, ``.item()``, ...): on a
    GPU, each would make the step wait for the device."""
    names = ["item", "tolist", "__bool__", "__float__", "__int__", "__index__"]
    saved = {name: getattr(torch.Tensor, name) for name in names}

    def refuse(name):
        def method(self, *args, **kwargs):
            raise AssertionError(f"the training step reads a number back: Tensor.{name}")

        return method

    try:
        for name in names:
            setattr(torch.Tensor, name, refuse(name))
        yield
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)


@pytest.mark.parametrize(("cls", "sizes", "per_example"), VAES, ids=["VAE", "ConvVAE"])
def test_the_vae_step_reads_nothing_back(cls, sizes, per_example):
    model = seeded(cls, **sizes)
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    x = (images(4, per_example) > 0.5).float()
    with no_read_back():  # the recipe's loss: negative_elbo without its value checks
        vae.negative_elbo(model, x, noise(), check_values=False).mean().backward()
        optimizer.step()


@pytest.mark.parametrize("networks", [NETWORKS[:2], NETWORKS[2:]], ids=["mlp", "dcgan"])
def test_the_gan_step_reads_nothing_back(networks):
    (G_cls, G_sizes, _, _), (D_cls, D_sizes, _, real) = networks
    model = gan.GAN(seeded(G_cls, **G_sizes), seeded(D_cls, **D_sizes))
    opt_d = optim.Adam(model.D.parameters(), lr=0.01)
    opt_g = optim.SGD(model.G.parameters(), lr=0.01, momentum=0.9)
    step = gan.gan_step(model, opt_d, opt_g)
    with no_read_back():
        step(real())
