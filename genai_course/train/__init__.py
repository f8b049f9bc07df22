"""Training: the one loop every model in the book uses, and a recipe per model.

- :mod:`~genai_course.train.loop`: :func:`fit`, the loop (and :func:`gradient_step`);
- :mod:`~genai_course.train.history`: :class:`History`, what ``fit`` measured;
- :mod:`~genai_course.train.checkpoint`: what a checkpoint holds, written atomically and
  read back checked;
- :mod:`~genai_course.train.parallel`: the hooks ``fit`` calls under ``torchrun``;
- :mod:`~genai_course.train.recipes`: each chapter model's ``quick`` and ``full``
  settings and the function that trains it with ``fit``;
- ``python -m genai_course.train MODEL`` (:mod:`~genai_course.train.__main__`): a recipe
  from the command line, on one process or under ``torchrun``.
"""

from genai_course.train.history import History
from genai_course.train.loop import StepFn, fit, gradient_step

__all__ = ["History", "StepFn", "fit", "gradient_step"]
