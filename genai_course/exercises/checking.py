"""What the reader runs: ``check`` for a graded coding exercise, ``quiz`` for a
chapter's self-check questions.

``check`` compares the reader's function with the exercise's reference on its fixed
inputs and on fresh random ones. At the first case that differs it prints what
differed (the type or shape of the result, non-finite values, wrong values) and the
input, but never the expected output nor by how much a value is off.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from importlib import resources
from typing import Any

import torch

from genai_course.config import check_positive_int
from genai_course.exercises.core import Exercise, Inputs
from genai_course.exercises.registry import EXERCISES

# -- comparing a result with the reference's -----------------------------------------------


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


def _verdict(
    exercise: Exercise, student_function: Callable[..., Any], inputs: Inputs
) -> str | None:
    """None if ``student_function`` agrees with the reference on ``inputs``, else a
    sentence saying what went wrong. A ``NotImplementedError`` it raises passes through."""
    given = tuple(x.clone() if isinstance(x, torch.Tensor) else x for x in inputs)
    try:
        got = student_function(*given)
    except NotImplementedError:
        raise
    except Exception as error:  # the student's code: any error is a finding
        return f"raised {type(error).__name__}: {error}"
    changed = any(isinstance(a, torch.Tensor) and not torch.equal(a, b)
                  for a, b in zip(given, inputs, strict=True))  # fmt: skip
    if changed:
        return "changed its input tensors in place"
    return _compare(got, exercise.reference(*inputs), exercise)


def _report(exercise: Exercise, verdict: str, inputs: Inputs, seed: int) -> None:
    """Print a failed case: the verdict, the input, the hint and how to rerun it."""
    shown = ", ".join(_describe(x) for x in inputs)
    print(f"✗ {exercise.id}: {verdict}{'' if verdict.endswith('?') else '.'}")
    print(f"  input: {exercise.id.split('.')[1]}({shown})")
    if exercise.hint:
        print(f"  hint: {exercise.hint}")
    print(f"  (this case again: check({exercise.id!r}, ..., seed={seed}))")


# -- checking a student's function -----------------------------------------------------------


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
        try:
            verdict = _verdict(exercise, student_function, inputs)
        except NotImplementedError:
            print(f"✗ {exercise_id}: not implemented yet (replace `raise NotImplementedError`).")
            return False
        if verdict is not None:
            _report(exercise, verdict, inputs, seed)
            return False
    print(f"✓ {exercise_id}: all {len(all_cases)} cases agree with the reference.")
    return True


# -- self-check quizzes ------------------------------------------------------------------------


def quiz(chapter: str) -> list[dict]:
    """The multiple-choice questions of ``chapter`` (a notebook's name, e.g.
    ``"vae"``), in ``jupyterquiz``'s format: pass them to
    ``jupyterquiz.display_quiz``."""
    folder = resources.files("genai_course") / "quizzes"
    path = folder / f"{chapter}.json"
    if not path.is_file():
        names = sorted(
            p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json")
        )
        raise ValueError(f"chapter {chapter!r} has no quiz; the quizzes are {', '.join(names)}")
    return json.loads(path.read_text(encoding="utf-8"))
