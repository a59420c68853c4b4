"""From config sections to library objects: path, coupling, time sampler, model, optimizer."""

import jax
import optax
from flax import nnx
from jax.sharding import Mesh

from flowjax import couplings, models, paths, time_samplers
from flowjax.train.config import FlowConfig, ModelConfig, OptimConfig

SCHEDULERS = {
    "condot": lambda c: paths.CondOT(sigma_min=c.sigma_min),
    "cosine": lambda c: paths.Cosine(),
    "vp": lambda c: paths.VP(),
    "linear_vp": lambda c: paths.LinearVP(),
    "polynomial": lambda c: paths.Polynomial(),
    "ve": lambda c: paths.VE(),
}
TIME_SAMPLERS = {
    "uniform": lambda eps: time_samplers.Uniform(eps=eps),
    "logit_normal": lambda eps: time_samplers.LogitNormal(eps=eps),
    "edm": lambda eps: time_samplers.EDMLogNormal(eps=max(eps, 1e-4)),
}


def path(config: FlowConfig) -> paths.AffinePath:
    return paths.AffinePath(SCHEDULERS[config.scheduler](config))


def coupling(config: FlowConfig, mesh: Mesh | None = None) -> couplings.Coupling:
    """The minibatch coupling; scope "shard" couples each device's block of `mesh`."""
    if config.coupling == "independent":
        return couplings.independent
    ot = couplings.ot_coupling(
        config.coupling, reg=config.coupling_reg or None, within=config.coupling_within
    )
    if config.coupling_scope == "global":
        return ot
    if mesh is None:
        raise ValueError("config.flow.coupling_scope = 'shard' needs the device mesh")
    return couplings.per_shard(ot, mesh)


def time_sampler(config: FlowConfig):  # noqa: ANN201
    return TIME_SAMPLERS[config.time_sampler](config.time_eps)


def model(config: ModelConfig, event_shape: tuple[int, ...], seed: int) -> nnx.Module:
    """The velocity network for data of `event_shape` (the MLP flattens images; the UNet and
    the DiT need `[H, W, C]` images)."""
    rngs = nnx.Rngs(seed)
    if config.kind == "mlp":
        return models.MLP(
            event_shape,
            width=config.width,
            depth=config.depth,
            activation=config.activation,
            time_embedding=config.time_embedding,
            num_classes=config.num_classes,
            rngs=rngs,
        )
    if len(event_shape) != 3:
        raise ValueError(f"model.kind = {config.kind!r} needs [H, W, C] images, got {event_shape}")
    if config.kind == "dit":
        return models.DiT(
            event_shape,
            size=config.dit.size,
            patch=config.dit.patch,
            num_classes=config.num_classes,
            rngs=rngs,
        )
    u = config.unet
    return models.UNet(
        event_shape,
        model_channels=u.channels,
        num_res_blocks=u.res_blocks,
        channel_mult=u.channel_mult,
        attention_resolutions=u.attention_resolutions,
        num_heads=u.heads,
        num_head_channels=u.head_channels,
        dropout=u.dropout,
        use_scale_shift_norm=u.scale_shift_norm,
        resblock_updown=u.resblock_updown,
        num_classes=config.num_classes,
        rngs=rngs,
    )


def learning_rate(config: OptimConfig, total_steps: int) -> optax.Schedule:
    """Linear warm-up from 0, then constant, cosine or polynomial decay to lr * end_lr_factor
    at `total_steps` (Lipman et al. App. Table 3 use warm-up then polynomial decay)."""
    warmup = (
        optax.linear_schedule(0.0, config.lr, config.warmup_steps) if config.warmup_steps else None
    )
    decay_steps = max(total_steps - config.warmup_steps, 1)
    end = config.lr * config.end_lr_factor
    main = {
        "constant": lambda: optax.constant_schedule(config.lr),
        "cosine": lambda: optax.cosine_decay_schedule(
            config.lr, decay_steps, alpha=config.end_lr_factor
        ),
        "polynomial": lambda: optax.polynomial_schedule(config.lr, end, config.power, decay_steps),
    }[config.schedule]()
    if warmup is None:
        return main
    return optax.join_schedules([warmup, main], [config.warmup_steps])


def optimizer(config: OptimConfig, total_steps: int) -> optax.GradientTransformation:
    """AdamW on the schedule, after optional global-norm clipping."""
    schedule = learning_rate(config, total_steps)
    adam = optax.adamw(
        schedule, b1=config.b1, b2=config.b2, eps=config.eps, weight_decay=config.weight_decay
    )
    if config.grad_clip is None:
        return adam
    return optax.chain(optax.clip_by_global_norm(config.grad_clip), adam)


def ema_decay(config: OptimConfig, step: jax.Array) -> jax.Array:
    """EMA decay at `step`; with warm-up min(decay, (1 + step) / (10 + step))."""
    if not config.ema_warmup:
        return jax.numpy.asarray(config.ema_decay)
    return jax.numpy.minimum(config.ema_decay, (1.0 + step) / (10.0 + step))
