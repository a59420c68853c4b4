"""Couplings of source and data samples inside a minibatch.

A coupling is a pure function `coupling(key, x0, x1, **labels) -> (x0, x1, labels)` returning
re-paired batches of the same shapes; labels (class labels, conditioning) travel with `x1`.
"""

from typing import Any

from flowjax._utils import Array, check_same_shape


def independent(key: Array, x0: Array, x1: Array, **labels: Any) -> tuple[Array, Array, dict]:
    """The independent coupling q(x0) q(x1) (I-CFM): pairs stay as drawn."""
    del key
    check_same_shape(x0, x1, "x0,x1")
    return x0, x1, labels
