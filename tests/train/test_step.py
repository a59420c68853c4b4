import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax import models
from flowjax.contracts import DataSpec
from flowjax.families import CFMConfig
from flowjax.train import build
from flowjax.train.config import ModelConfig, OptimConfig, TrainConfig
from flowjax.train.state import init_state
from flowjax.train.step import make_train_step

VECTORS = DataSpec((2,))


def _parts(cfg, data=VECTORS):
    family = build.family(cfg, data)
    v, params = build.network(cfg, family.network)
    opt = build.optimizer(cfg.optim, cfg.steps)
    return family, v, opt, init_state(params, opt, 0)


def _setup(**optim):
    cfg = TrainConfig(model=ModelConfig(width=16, depth=2), optim=OptimConfig(**optim))
    return cfg, *_parts(cfg)


def _batch(n=64, seed=0):
    return {"x1": jax.random.normal(jax.random.key(seed), (n, 2)) + 2.0}


def test_step_updates_params_ema_with_warmup_and_keeps_the_key():
    cfg, family, v, opt, state = _setup(ema_decay=0.999)
    step = jax.jit(make_train_step(cfg, family, v, opt))
    new, metrics = step(state, _batch())
    assert int(new.step) == 1 and float(metrics["finite"]) == 1.0
    np.testing.assert_array_equal(new.key, state.key)
    # EMA warm-up: decay at step 0 is min(0.999, 1 / 10) = 0.1
    for e0, p1, e1 in zip(
        jax.tree.leaves(state.ema_params),
        jax.tree.leaves(new.params),
        jax.tree.leaves(new.ema_params),
        strict=True,
    ):
        np.testing.assert_allclose(e1, 0.1 * e0 + 0.9 * p1, rtol=1e-5, atol=1e-7)
    assert any(
        not np.allclose(a, b)
        for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(new.params), strict=True)
    )
    # the step's randomness is fold_in(key, step): the same state and batch give the same result
    again, _ = step(state, _batch())
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_non_finite_updates_are_not_applied():
    cfg, family, v, opt, state = _setup()
    step = jax.jit(make_train_step(cfg, family, v, opt))
    bad = {"x1": _batch()["x1"].at[3, 0].set(jnp.nan)}
    new, metrics = step(state, bad)
    assert float(metrics["finite"]) == 0.0 and int(new.step) == 1
    assert int(metrics["nonfinite"]) == 1  # the loss went non-finite first
    for a, b in zip(
        jax.tree.leaves((state.params, state.opt_state, state.ema_params)),
        jax.tree.leaves((new.params, new.opt_state, new.ema_params)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    # an update that would overflow the parameters is refused too
    cfg_big, family, v, opt_big, state_big = _setup(lr=1e39)
    new_big, m = jax.jit(make_train_step(cfg_big, family, v, opt_big))(state_big, _batch())
    assert float(m["finite"]) == 0.0 and int(m["nonfinite"]) == 3  # the updated parameters
    assert all(bool(jnp.isfinite(p).all()) for p in jax.tree.leaves(new_big.params))


def test_an_ema_every_k_steps_moves_as_far_as_k_updates():
    """py-meanflow's and SoFlow's EMA: untouched for K - 1 steps, then d^K e + (1 - d^K) p
    after every K-th step."""
    k, d = 4, 0.9
    cfg, family, v, opt, state = _setup(ema_decay=d, ema_warmup=False, ema_every=k)
    step = jax.jit(make_train_step(cfg, family, v, opt))
    for i in range(2 * k):
        before = state.ema_params
        state, _ = step(state, _batch(seed=i))
        pairs = zip(
            jax.tree.leaves(before),
            jax.tree.leaves(state.params),
            jax.tree.leaves(state.ema_params),
            strict=True,
        )
        for e0, p, e in pairs:
            if (i + 1) % k:
                np.testing.assert_array_equal(e, e0)
            else:
                np.testing.assert_allclose(e, d**k * e0 + (1 - d**k) * p, rtol=1e-6, atol=1e-7)
    assert not np.allclose(jax.tree.leaves(state.ema_params)[0], jax.tree.leaves(state.params)[0])


@pytest.mark.parametrize("warmup", [True, False])
def test_an_ema_every_step_keeps_its_decay_and_every_k_raises_it_to_the_k(warmup):
    one, four = (OptimConfig(ema_decay=0.99, ema_warmup=warmup, ema_every=k) for k in (1, 4))
    for step in range(12):
        s = jnp.int32(step)
        before = (  # the decay as it was computed before ema_every existed, bit for bit
            jnp.minimum(0.99, (1.0 + s.astype(jnp.float32)) / (10.0 + s.astype(jnp.float32)))
            if warmup
            else jnp.asarray(0.99)
        )
        assert np.asarray(build.ema_decay(one, s)).tobytes() == np.asarray(before).tobytes()
        expected = float(before) ** 4 if step % 4 == 3 else 1.0
        assert float(build.ema_decay(four, s)) == pytest.approx(expected, rel=1e-6)


def test_bf16_compute_keeps_float32_master_params():
    cfg, family, v, opt, state = _setup()
    bf16 = dataclasses.replace(cfg, precision="bfloat16")
    _, m32 = jax.jit(make_train_step(cfg, family, v, opt))(state, _batch())
    new16, m16 = jax.jit(make_train_step(bf16, family, v, opt))(state, _batch())
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(new16.params))
    assert all(
        p.dtype == jnp.float32 for p in jax.tree.leaves(new16.opt_state) if p.dtype != jnp.int32
    )
    np.testing.assert_allclose(m16["loss"], m32["loss"], rtol=2e-2)
    assert float(m16["loss"]) != float(m32["loss"])  # it really ran in bf16


def test_gradient_accumulation_averages_micro_batches():
    """With accumulate=2 the gradient is the mean of the two half-batch gradients."""
    cfg, family, v, opt, state = _setup(accumulate=2)
    new2, m2 = jax.jit(make_train_step(cfg, family, v, opt))(state, _batch(64))
    assert float(m2["finite"]) == 1.0 and int(new2.step) == 1
    # reproduce: the two micro-batches with the keys the step splits off, through accumulate=1
    key = jax.random.fold_in(state.prng_key, state.step)
    keys = jax.random.split(key, 2)
    half = [{"x1": _batch(64)["x1"][:32]}, {"x1": _batch(64)["x1"][32:]}]
    from flowjax import losses

    def grad(params, batch, k):
        return jax.grad(lambda p: losses.cfm_loss(v, p, k, batch["x1"], path=family.path)[0])(
            params
        )

    g = jax.tree.map(
        lambda a, b: (a + b) / 2,
        grad(state.params, half[0], keys[0]),
        grad(state.params, half[1], keys[1]),
    )
    updates, _ = opt.update(g, state.opt_state, state.params)
    expected = jax.tree.map(lambda p, u: p + u, state.params, updates)
    for a, b in zip(jax.tree.leaves(new2.params), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("schedule", "checks"),
    [
        ("constant", {0: 0.0, 5: 0.5, 10: 1.0, 60: 1.0}),
        ("cosine", {0: 0.0, 10: 1.0, 60: 0.55, 110: 0.1}),
        ("polynomial", {0: 0.0, 10: 1.0, 60: 0.55, 110: 0.1}),
    ],
)
def test_learning_rate_schedules(schedule, checks):
    lr = build.learning_rate(
        OptimConfig(lr=1.0, schedule=schedule, warmup_steps=10, end_lr_factor=0.1), 110
    )
    for step, value in checks.items():
        assert float(lr(step)) == pytest.approx(value, abs=1e-6), (schedule, step)
    # py-meanflow's warm-up (PyTorch's LinearLR from start_factor 1e-8 / lr): 1e-8 at step 0
    start = OptimConfig(lr=1.0, schedule=schedule, warmup_steps=10, warmup_init=1e-8)
    lr = build.learning_rate(start, 110)
    assert float(lr(0)) == pytest.approx(1e-8, rel=1e-6)
    assert float(lr(5)) == pytest.approx(1e-8 + 0.5 * (1 - 1e-8), rel=1e-6)
    assert float(lr(10)) == pytest.approx(1.0)


def test_radam_takes_momentum_steps_then_rectified_adam_steps():
    """Liu et al. 2020 under a constant gradient 1 (so m_hat = v_hat = 1): while rho_t =
    rho_inf - 2 t b2^t / (1 - b2^t) <= 5 the step is lr m_hat, then lr r_t with the
    rectification r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2)
    rho_t)); the decay is decoupled, lr wd theta."""
    lr, b2, wd = 0.1, 0.999, 0.01
    opt = build.optimizer(OptimConfig(name="radam", lr=lr, b2=b2, weight_decay=wd), 100)
    theta = jnp.array([3.0])
    state = opt.init(theta)
    rho_inf = 2 / (1 - b2) - 1
    regimes = set()
    for t in range(1, 11):
        update, state = opt.update(jnp.ones(1), state, theta)
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho <= 5:
            step = 1.0
        else:
            r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            step = r / (1 + 1e-8)
        # rho_t is a difference of ~2,000-sized float32 terms: ~1% off its float64 value
        np.testing.assert_allclose(
            update, -lr * (step + wd * theta), rtol=1e-5 if rho <= 5 else 2e-2
        )
        regimes.add(rho <= 5)
        theta = theta + update
    assert regimes == {True, False}


@pytest.mark.parametrize(("p", "mode"), [(0.0, "sample"), (0.99, "sample"), (0.99, "batch")])
def test_label_dropout_trains_the_null_class(p, mode):
    """Without dropout the null class's embedding gets no gradient; with (nearly) all labels
    dropped, the real classes get (nearly) none."""
    cfg = TrainConfig(
        model=ModelConfig(width=16, depth=2, num_classes=3),
        flow=CFMConfig(label_dropout=p, label_dropout_mode=mode),
        optim=OptimConfig(lr=1e-2, ema_decay=0.0),
    )
    family, v, opt, state = _parts(cfg, DataSpec((2,), num_classes=3))
    batch = {**_batch(), "y": jnp.arange(64) % 3}
    new, _ = jax.jit(make_train_step(cfg, family, v, opt))(state, batch)
    moved = np.abs(
        np.asarray(new.params["class_embed"]["embedding"])
        - np.asarray(state.params["class_embed"]["embedding"])
    ).sum(axis=1)
    if p == 0.0:
        assert moved[3] == 0.0 and (moved[:3] > 0).all()
    else:
        assert moved[3] > 0.0 and moved[:3].max() < moved[3]


SEEN = []  # (what, dtype) as traced


class _TokenFamily:
    """A family on int32 tokens: its loss sees the batch as it came."""

    def loss(self, field, params, key, batch, context=None):
        SEEN.append(("batch", batch["x1"].dtype))
        out = field(params, batch["x1"], jnp.full(batch["x1"].shape[:1], 0.5))
        return jnp.mean(jnp.square(out)), {}


class _TokenNet(nnx.Module):
    def __init__(self, rngs):
        self.embed = nnx.Embed(5, 3, rngs=rngs)

    def __call__(self, x, t):
        SEEN.extend([("x", x.dtype), ("params", self.embed.embedding.dtype)])
        return self.embed(x) * t[:, None, None]


def test_integer_batches_pass_the_step_untouched_in_bf16():
    """Tokens reach the family and the network as int32 (no float cast of x1, no bf16 cast of
    integer inputs), while the parameters run in bf16 and are kept in float32."""
    cfg = dataclasses.replace(TrainConfig(), precision="bfloat16")
    v, params = models.functional(_TokenNet(nnx.Rngs(0)))
    opt = build.optimizer(cfg.optim, cfg.steps)
    batch = {"x1": jnp.arange(12, dtype=jnp.int32).reshape(4, 3) % 5}
    step = jax.jit(make_train_step(cfg, _TokenFamily(), v, opt))
    new, metrics = step(init_state(params, opt, 0), batch)
    assert float(metrics["finite"]) == 1.0 and int(new.step) == 1
    assert ("batch", jnp.int32) in SEEN and ("x", jnp.int32) in SEEN
    assert ("params", jnp.bfloat16) in SEEN
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(new.params))
