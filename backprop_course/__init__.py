"""backprop-course: learn backpropagation by building it.

The engine is two classes: :class:`Value` (one number) and :class:`Tensor`
(a numpy array). Everything else (layers, losses, optimisers, checks) is
built on them.
"""
from backprop_course.scalar import Value
from backprop_course.tensor import Tensor, no_grad
from backprop_course import nn, losses, optim, gradcheck, datasets

__all__ = ["Value", "Tensor", "no_grad", "nn", "losses", "optim", "gradcheck", "datasets"]
__version__ = "0.1.0"
