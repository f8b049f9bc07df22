"""Companion package of *Generative AI from First Principles*.

Every model, loss and algorithm the chapters use lives here, one module per
idea; the notebooks import it and never redefine it.
"""

__version__ = "0.1.0"
