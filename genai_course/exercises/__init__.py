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
    >>> check("vae.gaussian_kl", my_kl)

The package: ``core`` (the ``Exercise`` record and the helpers that draw inputs),
one module per chapter, named like its notebook (``pipeline`` to ``diffusion``, and
``common_mistakes`` for the appendix), each exercise written in one block (its task,
reference, random inputs, fixed cases and hint), ``registry`` (``EXERCISES``, every
chapter's in the book's order) and ``checking`` (``check`` and ``quiz``).
"""

from genai_course.exercises.checking import check, quiz
from genai_course.exercises.core import Exercise, Inputs
from genai_course.exercises.registry import EXERCISES

__all__ = ["EXERCISES", "Exercise", "Inputs", "check", "quiz"]
