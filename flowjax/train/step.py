"""The pure training step `train_step(state, batch) -> (state, metrics)`."""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from flowjax import guidance, losses
from flowjax.train import build
from flowjax.train.config import TrainConfig
from flowjax.train.state import TrainState

Batch = dict[str, jax.Array]  # "x1": [B, *event]; optional "y": [B] labels


def _all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.array([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)]))


def make_train_step(
    config: TrainConfig,
    v: Callable,
    optimizer: optax.GradientTransformation,
    mesh: Mesh | None = None,
) -> Callable[[TrainState, Batch], tuple[TrainState, dict]]:
    """Build `train_step` for the velocity field `v(params, x, t, **cond)` (`mesh`: the
    device mesh, needed for a per-shard coupling).

    The batch is split into `optim.accumulate` micro-batches whose gradients are averaged
    (a `lax.scan`). With precision "bfloat16" the network's forward and backward passes run on
    bf16 copies of the float32 parameters and inputs; the path, loss, gradients, optimizer
    state and EMA stay float32. A
    non-finite loss or gradient leaves parameters, optimizer state and EMA unchanged (the step
    counter still advances) and is reported as `metrics["finite"] = 0`; so does an update that
    would make a parameter non-finite. A UNet with dropout gets a fresh dropout key each
    (micro-)step; evaluation and sampling call the network without one (no dropout).
    """
    path = build.path(config.flow)
    coupling = build.coupling(config.flow, mesh)
    time_sampler = build.time_sampler(config.flow)
    compute_dtype = jnp.bfloat16 if config.precision == "bfloat16" else jnp.float32
    accumulate = config.optim.accumulate

    dropout = config.model.kind == "unet" and config.model.unet.dropout > 0

    def network(params: Any, x: jax.Array, t: jax.Array, **cond: Any) -> jax.Array:
        """The network in the compute dtype; path, targets and loss stay float32."""
        params = jax.tree.map(lambda p: p.astype(compute_dtype), params)
        return v(params, x.astype(compute_dtype), t, **cond).astype(x.dtype)

    def loss_fn(params: Any, batch: Batch, key: jax.Array) -> tuple[jax.Array, dict]:
        x1 = batch["x1"].astype(jnp.float32)
        cond = {k: v for k, v in batch.items() if k != "x1"}
        if config.flow.label_dropout and "y" in cond:
            cond["y"] = guidance.drop_labels(
                jax.random.fold_in(key, 7),
                cond["y"],
                config.flow.label_dropout,
                config.model.num_classes,
                whole_batch=config.flow.label_dropout_mode == "batch",
            )
        net = functools.partial(network, key=jax.random.fold_in(key, 11)) if dropout else network
        loss, aux = losses.cfm_loss(
            net,
            params,
            key,
            x1,
            path=path,
            cond=cond,
            coupling=coupling,
            parameterization=config.flow.parameterization,
            time_sampler=time_sampler,
        )
        return loss, aux

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def gradients(params: Any, batch: Batch, key: jax.Array) -> tuple[jax.Array, dict, Any]:
        if accumulate == 1:
            (loss, aux), grads = grad_fn(params, batch, key)
            return loss, aux, grads
        micro = jax.tree.map(lambda a: a.reshape(accumulate, -1, *a.shape[1:]), batch)

        def add(carry: Any, xs: tuple[Batch, jax.Array]) -> tuple[Any, tuple]:
            (loss, aux), grads = grad_fn(params, *xs)
            return jax.tree.map(jnp.add, carry, grads), (loss, aux)

        zeros = jax.tree.map(jnp.zeros_like, params)
        total, (loss, aux) = jax.lax.scan(add, zeros, (micro, jax.random.split(key, accumulate)))
        grads = jax.tree.map(lambda g: g / accumulate, total)
        return loss.mean(), jax.tree.map(jnp.mean, aux), grads

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        key = jax.random.fold_in(state.prng_key, state.step)
        loss, aux, grads = gradients(state.params, batch, key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(loss) & _all_finite(grads) & _all_finite(params)
        decay = build.ema_decay(config.optim, state.step.astype(jnp.float32))
        ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, params)

        def keep(new: Any, old: Any) -> Any:
            return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)

        new_state = TrainState(
            step=state.step + 1,
            params=keep(params, state.params),
            opt_state=keep(opt_state, state.opt_state),
            ema_params=keep(ema, state.ema_params),
            key=state.key,
        )
        metrics = {
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "param_norm": optax.tree.norm(state.params),
            "lr": build.learning_rate(config.optim, config.steps)(state.step),
            "finite": finite.astype(jnp.float32),
            **aux,
        }
        return new_state, metrics

    return train_step
