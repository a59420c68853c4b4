"""Between Flax NNX modules and the pure `v(params, x, t, **cond)` callables of the core."""

import inspect
import math
from typing import Any

import jax
from flax import nnx

from flowjax._utils import Array, pytree_dataclass, static_field


@pytree_dataclass
class Functional:
    """Pure view of an NNX module: `f(params, *args, key=None, **kwargs)` calls the module
    rebuilt from `params` (its `nnx.Param` state); other state (RNG counters, statistics) is
    held fixed. `f.module(params)` gives the NNX module back.

    `key` (a PRNG key for dropout, given in training only) is passed on to modules whose
    `__call__` takes a `key` (`takes_key`, decided when the `Functional` is built) and dropped
    otherwise, so that a training loop may always pass one, whatever the model.
    """

    graphdef: Any = static_field()
    rest: Any = None
    takes_key: bool = static_field(default=False)

    __hash__ = object.__hash__  # usable as a `jax.jit` target: identity, not the state arrays

    def module(self, params: nnx.State) -> nnx.Module:
        return nnx.merge(self.graphdef, params, self.rest)

    def __call__(
        self, params: nnx.State, *args: Any, key: Array | None = None, **kwargs: Any
    ) -> Any:
        if key is not None and self.takes_key:
            kwargs["key"] = key
        return self.module(params)(*args, **kwargs)


def functional(module: nnx.Module) -> tuple[Functional, nnx.State]:
    """Split an NNX module into a pure callable (see `Functional`) and its parameters."""
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    takes_key = "key" in inspect.signature(type(module).__call__).parameters
    return Functional(graphdef, rest, takes_key), params


def parameter_count(module: nnx.Module | nnx.State) -> int:
    """Number of trainable values (`nnx.Param` leaves) of a module, of its `nnx.eval_shape`
    (so that large models are counted without allocating them) or of its parameter state."""
    return sum(math.prod(p.shape) for p in jax.tree.leaves(nnx.state(module, nnx.Param)))
