"""Between Flax NNX modules and the pure `v(params, x, t, **cond)` callables of the core."""

import math
from typing import Any

import jax
from flax import nnx

from flowjax._utils import pytree_dataclass, static_field


@pytree_dataclass
class Functional:
    """Pure view of an NNX module: `f(params, *args, **kwargs)` calls the module rebuilt from
    `params` (its `nnx.Param` state); other state (RNG counters, statistics) is held fixed.
    `f.module(params)` gives the NNX module back."""

    graphdef: Any = static_field()
    rest: Any = None

    __hash__ = object.__hash__  # usable as a `jax.jit` target: identity, not the state arrays

    def module(self, params: nnx.State) -> nnx.Module:
        return nnx.merge(self.graphdef, params, self.rest)

    def __call__(self, params: nnx.State, *args: Any, **kwargs: Any) -> Any:
        return self.module(params)(*args, **kwargs)


def functional(module: nnx.Module) -> tuple[Functional, nnx.State]:
    """Split an NNX module into a pure callable and its parameters."""
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    return Functional(graphdef, rest), params


def parameter_count(module: nnx.Module | nnx.State) -> int:
    """Number of trainable values (`nnx.Param` leaves) of a module, of its `nnx.eval_shape`
    (so that large models are counted without allocating them) or of its parameter state."""
    return sum(math.prod(p.shape) for p in jax.tree.leaves(nnx.state(module, nnx.Param)))
