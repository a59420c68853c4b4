"""From config sections to library objects: the family, the network, the optimizer."""

import inspect

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from flowjax import models
from flowjax._utils import Array
from flowjax.contracts import DataSpec, Family, NetworkSpec
from flowjax.train.config import ConfigError, OptimConfig, TrainConfig, family_class


def family(config: TrainConfig, data: DataSpec, mesh: Mesh | None = None) -> Family:
    """The run's method family for its data (a `flowjax.contracts.Family`)."""
    try:
        return family_class(config.family)(config.flow, data, mesh)
    except ValueError as error:
        raise ConfigError(f"config.flow ({config.family}): {error}") from None


def network(
    config: TrainConfig, spec: NetworkSpec, *, abstract: bool = False
) -> tuple[models.Functional, nnx.State]:
    """The network of `config.model` for the family's `spec`, as `(v, params)`; with
    `abstract`, params are `jax.ShapeDtypeStruct`s (nothing is allocated: a restore target).
    The network must map `[B, *input_shape]` (at `spec.times` times) to `[B, *output_shape]`."""
    cls = models.MODELS[config.model.kind]
    kwargs = config.model.arguments()
    if spec.times != 1:  # a two-time (average-velocity) network
        if "times" not in inspect.signature(cls.__init__).parameters:
            raise ConfigError(
                f"config.model: {cls.__name__} takes one time; the family needs {spec.times}"
            )
        kwargs.setdefault("times", spec.times)
    shape_name = list(inspect.signature(cls.__init__).parameters)[1]
    shape = tuple(kwargs.pop(shape_name, spec.input_shape))
    if shape != tuple(spec.input_shape):
        raise ConfigError(
            f"config.model: preset {config.model.preset!r} is for {shape_name} {shape}, but the "
            f"data has {tuple(spec.input_shape)}"
        )

    def make() -> nnx.Module:
        return cls(shape, **kwargs, rngs=nnx.Rngs(config.seed))

    try:
        module = nnx.eval_shape(make) if abstract else make()
    except (ValueError, TypeError) as error:
        raise ConfigError(f"config.model ({config.model.kind}): {error}") from None
    if spec.causal and not getattr(module, "causal", False):
        raise ConfigError(
            f"config.model: the family needs a causal network, and {cls.__name__} is not one "
            "(e.g. --config.model.kind=token_transformer --config.model.causal=true)"
        )
    v, params = models.functional(module)
    x = jax.ShapeDtypeStruct((2, *spec.input_shape), jnp.dtype(spec.input_dtype))
    t = jax.ShapeDtypeStruct((2,), jnp.float32)
    out = jax.eval_shape(v, params, x, t if spec.times == 1 else (t,) * spec.times)
    if out.shape[1:] != tuple(spec.output_shape):
        raise ConfigError(
            f"config.model: {cls.__name__} maps [B, *{list(spec.input_shape)}] to "
            f"{list(out.shape)}, but the family needs [B, *{list(spec.output_shape)}] "
            f"{spec.output}"
        )
    return v, params


SCHEDULES = {
    "constant": lambda c, steps: optax.constant_schedule(c.lr),
    "cosine": lambda c, steps: optax.cosine_decay_schedule(c.lr, steps, alpha=c.end_lr_factor),
    "polynomial": lambda c, steps: optax.polynomial_schedule(
        c.lr, c.lr * c.end_lr_factor, c.power, steps
    ),
}


def learning_rate(config: OptimConfig, total_steps: int) -> optax.Schedule:
    """Linear warm-up from `warmup_init`, then constant, cosine or polynomial decay to
    lr * end_lr_factor at `total_steps` (Lipman et al. App. Table 3 use warm-up then polynomial
    decay)."""
    main = SCHEDULES[config.schedule](config, max(total_steps - config.warmup_steps, 1))
    if not config.warmup_steps:
        return main
    start, lr, steps = config.warmup_init, config.lr, config.warmup_steps

    def warmup(step: Array) -> Array:  # exact at step 0 (optax's form cancels: init - lr + lr)
        return start + jnp.minimum(step / steps, 1.0) * (lr - start)

    return optax.join_schedules([warmup, main], [steps])


OPTIMIZERS = {
    "adamw": lambda c, lr: optax.adamw(
        lr, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=c.weight_decay
    ),
    # RAdam (Liu et al. 2020), weight decay decoupled as in AdamW
    "radam": lambda c, lr: optax.chain(
        optax.scale_by_radam(b1=c.b1, b2=c.b2, eps=c.eps),
        optax.add_decayed_weights(c.weight_decay),
        optax.scale_by_learning_rate(lr),
    ),
}


def optimizer(config: OptimConfig, total_steps: int) -> optax.GradientTransformation:
    """`config.name` (AdamW or RAdam) on the schedule, after optional global-norm clipping."""
    update = OPTIMIZERS[config.name](config, learning_rate(config, total_steps))
    if config.grad_clip is None:
        return update
    return optax.chain(optax.clip_by_global_norm(config.grad_clip), update)


def ema_decay(config: OptimConfig, step: jax.Array) -> jax.Array:
    """The EMA decay of the update after step `step` (int32, the steps taken before it):
    `ema_decay`, with warm-up min(ema_decay, (1 + step) / (10 + step)); with `ema_every` = K
    > 1, that decay to the power K after every K-th step ((step + 1) % K == 0) and 1 (the EMA
    kept as it is) after the others: every K steps, the old EMA keeps the weight that K
    updates at the decay would leave it.
    py-meanflow and SoFlow compute their every-16-steps update in float64 and store float32;
    here it is float32 throughout (within a few float32 roundings of theirs)."""
    k = config.ema_every
    if config.ema_warmup:
        step_f = step.astype(jnp.float32)
        decay = jnp.minimum(config.ema_decay, (1.0 + step_f) / (10.0 + step_f)) ** k
    else:
        decay = jnp.asarray(config.ema_decay**k)  # the power in float64, rounded once
    return decay if k == 1 else jnp.where((step + 1) % k == 0, decay, 1.0)
