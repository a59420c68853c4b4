"""The joint CFM objective of Multisample Flow Matching (Pooladian et al. 2023): the flow
matching loss of a trained field on held-out pairs made by a coupling. At the optimum it is the
conditional variance of the target x1 - x0 given x_t, so it measures how much the coupling's
straight conditional paths cross (zero for a deterministic, non-crossing coupling)."""

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from flowjax._utils import Array, check_same_shape
from flowjax.couplings import Coupling, independent
from flowjax.losses import cfm_loss
from flowjax.paths.affine import AffinePath
from flowjax.paths.noisy import NoisyPath


def joint_cfm_objective(
    v: Callable[..., Array],
    params: Any,
    key: Array,
    x0: Array,
    x1: Array,
    *,
    path: AffinePath | NoisyPath,
    coupling: Coupling = independent,
    batch_size: int = 256,
) -> Array:
    """`E ||v(x_t, t) - (x1 - x0)||^2` (the squared norm summed over the event, uniform t) on
    held-out sets `x0, x1: [n, *event]`, cut into `n // batch_size` batches that the coupling
    pairs as in training. (`cfm_loss` averages over the event; this is its mean times the
    event size.)"""
    check_same_shape(x0, x1, "x0,x1")
    num_batches = x1.shape[0] // batch_size
    if num_batches == 0:
        raise ValueError(f"need at least batch_size = {batch_size} samples, got {x1.shape[0]}")
    n = num_batches * batch_size

    def batch_loss(args: tuple[Array, Array, Array]) -> Array:
        k, a, b = args
        return cfm_loss(v, params, k, b, x0=a, path=path, coupling=coupling)[0]

    split = lambda x: x[:n].reshape(num_batches, batch_size, *x.shape[1:])  # noqa: E731
    keys = jax.random.split(key, num_batches)
    event_size = math.prod(x1.shape[1:])
    return event_size * jnp.mean(jax.lax.map(batch_loss, (keys, split(x0), split(x1))))
