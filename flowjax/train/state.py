"""The training state: a pytree of parameters, optimizer state, EMA parameters, step and key."""

from typing import Any

import jax
import jax.numpy as jnp

from flowjax._utils import Array, pytree_dataclass


@pytree_dataclass
class TrainState:
    """Everything a step reads and writes; checkpoints hold exactly this.

    step: int32 scalar, the number of steps taken (skipped non-finite updates included).
    key: raw uint32 key data of the run's PRNG stream (identical on every host); the step's
      randomness is `fold_in(key, step)`, so a resumed run draws the same numbers.
    """

    step: Array
    params: Any
    opt_state: Any
    ema_params: Any
    key: Array

    @property
    def prng_key(self) -> Array:
        return jax.random.wrap_key_data(self.key)


def init_state(params: Any, optimizer: Any, seed: int) -> TrainState:
    """A fresh state at step 0 (call under `jax.jit` with `out_shardings` to place it)."""
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(params),
        ema_params=jax.tree.map(jnp.copy, params),
        key=jax.random.key_data(jax.random.key(seed)),
    )
