"""The pure training step `train_step(state, batch) -> (state, metrics)`: the mechanics only
(gradient accumulation, mixed precision, non-finite guard, EMA); the objective is the family's."""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from flowjax.contracts import Family, TrainContext
from flowjax.models import Functional
from flowjax.train import build
from flowjax.train.config import TrainConfig
from flowjax.train.state import TrainState

Batch = dict[str, jax.Array]  # "x1": [B, *event]; conditioning such as "y": [B] labels


def _cast_floats(tree: Any, dtype: Any) -> Any:
    """Floating leaves of `tree` in `dtype`; integer leaves (tokens, labels) untouched."""
    return jax.tree.map(
        lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree
    )


def make_train_step(
    config: TrainConfig,
    family: Family,
    network: Functional,
    optimizer: optax.GradientTransformation,
) -> Callable[[TrainState, Batch], tuple[TrainState, dict]]:
    """Build `train_step` for `network(params, x, t, key=None, **cond)` trained by
    `family.loss` (with a `TrainContext`).

    The batch is split into `optim.accumulate` micro-batches whose gradients are averaged
    (a `lax.scan`). With precision "bfloat16" the network runs on bf16 copies of the float32
    parameters and floating inputs (integer inputs pass as they are); the family's objective,
    gradients, optimizer state and EMA stay float32. A non-finite loss or gradient leaves
    parameters, optimizer state and EMA unchanged (the step counter still advances) and is
    reported as `metrics["finite"] = 0` and `metrics["nonfinite"]` = 1, 2 or 3 (the loss, the
    gradients or the updated parameters, the first that is not finite); so does an update that
    would make a parameter non-finite (read from the global norms of the gradients and the
    updated parameters: an entry that overflows float32 when squared counts too; a skipped
    update is a `lax.cond`, not a select per leaf). The check reads the updated parameters
    through a fused reduction and the `lax.cond` recomputes the update in place of the
    donated state, so the step holds one state, not two (on a TPU the guard costs no memory).
    The EMA moves after each applied step by `build.ema_decay` (with `optim.ema_every` = K,
    by the decay to the power K after every K-th step and not at all after the others; a
    skipped K-th step skips that update). The network gets a fresh dropout key each
    (micro-)step (`models.functional` passes it to the models that use one); evaluation and
    sampling call it without one.
    """
    compute_dtype = jnp.bfloat16 if config.precision == "bfloat16" else jnp.float32
    accumulate = config.optim.accumulate

    def field(params: Any, x: jax.Array, t: jax.Array, key: jax.Array, **cond: Any) -> jax.Array:
        """The network in the compute dtype; its floating outputs come back as float32."""
        out = network(
            _cast_floats(params, compute_dtype),
            _cast_floats(x, compute_dtype),
            t,
            key=key,
            **_cast_floats(cond, compute_dtype),
        )
        return _cast_floats(out, jnp.float32)

    def loss_fn(
        params: Any, batch: Batch, key: jax.Array, context: TrainContext
    ) -> tuple[jax.Array, dict]:
        dropout = functools.partial(field, key=jax.random.fold_in(key, 11))
        return family.loss(dropout, params, key, batch, context)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def gradients(
        params: Any, batch: Batch, key: jax.Array, context: TrainContext
    ) -> tuple[jax.Array, dict, Any]:
        if accumulate == 1:
            (loss, aux), grads = grad_fn(params, batch, key, context)
            return loss, aux, grads
        micro = jax.tree.map(lambda a: a.reshape(accumulate, -1, *a.shape[1:]), batch)

        def add(carry: Any, xs: tuple[Batch, jax.Array]) -> tuple[Any, tuple]:
            (loss, aux), grads = grad_fn(params, *xs, context)
            return jax.tree.map(jnp.add, carry, grads), (loss, aux)

        zeros = jax.tree.map(jnp.zeros_like, params)
        total, (loss, aux) = jax.lax.scan(add, zeros, (micro, jax.random.split(key, accumulate)))
        grads = jax.tree.map(lambda g: g / accumulate, total)
        return loss.mean(), jax.tree.map(jnp.mean, aux), grads

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        key = jax.random.fold_in(state.prng_key, state.step)
        context = TrainContext(state.step, config.steps, jax.lax.stop_gradient(state.ema_params))
        loss, aux, grads = gradients(state.params, batch, key, context)

        def update() -> tuple[Any, Any]:
            """The optimizer's step from `state`: new parameters and optimizer state."""
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
            return optax.apply_updates(state.params, updates), opt_state

        # the updated parameters' norm is a reduction XLA fuses without storing them; `apply`
        # recomputes the update inside the `lax.cond`, in place of the (donated) old state, so
        # the step never holds two states at once
        grad_norm, updated_norm = optax.tree.norm(grads), optax.tree.norm(update()[0])
        # the norms are finite exactly when every entry is (or an entry overflows when squared)
        checks = jnp.stack(
            [jnp.isfinite(loss), jnp.isfinite(grad_norm), jnp.isfinite(updated_norm)]
        )
        finite = jnp.all(checks)
        # 0, or which came first of the loss (1), the gradients (2), the parameters (3)
        nonfinite = jnp.where(finite, 0, 1 + jnp.argmin(checks))
        decay = build.ema_decay(config.optim, state.step)

        def apply() -> TrainState:
            params, opt_state = update()
            moved = lambda: jax.tree.map(  # noqa: E731
                lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, params
            )
            if config.optim.ema_every == 1:
                ema = moved()
            else:  # no pass over the parameters on the steps the EMA stays (decay 1)
                ema = jax.lax.cond(decay < 1.0, moved, lambda: state.ema_params)
            return TrainState(state.step + 1, params, opt_state, ema, state.key)

        def skip() -> TrainState:
            return TrainState(
                state.step + 1, state.params, state.opt_state, state.ema_params, state.key
            )

        new_state = jax.lax.cond(finite, apply, skip)
        metrics = {
            "loss": loss,
            "grad_norm": grad_norm,
            "param_norm": optax.tree.norm(state.params),
            "lr": build.learning_rate(config.optim, config.steps)(state.step),
            "finite": finite.astype(jnp.float32),
            "nonfinite": nonfinite.astype(jnp.int32),
            **aux,
        }
        return new_state, metrics

    return train_step


def train_steps(
    config: TrainConfig,
    family: Family,
    network: Functional,
    optimizer: optax.GradientTransformation,
) -> Callable[[TrainState, Batch], tuple[TrainState, dict]]:
    """`config.steps_per_call` = k training steps as one function: the step itself for k = 1,
    else a `lax.scan` over batches stacked `[k, B, ...]` (metrics come back `[k]`)."""
    step = make_train_step(config, family, network, optimizer)
    return step if config.steps_per_call == 1 else functools.partial(jax.lax.scan, step)


def train_call(
    config: TrainConfig,
    family: Family,
    network: Functional,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    state_shardings: Any,
    batch_shardings: dict[str, NamedSharding],
) -> Any:
    """`train_steps` jitted as `flowjax train` runs them and `flowjax compile` compiles them:
    the state sharded by `state_shardings` and donated, the metrics replicated."""
    return jax.jit(
        train_steps(config, family, network, optimizer),
        in_shardings=(state_shardings, batch_shardings),
        out_shardings=(state_shardings, NamedSharding(mesh, PartitionSpec())),
        donate_argnums=0,
    )
