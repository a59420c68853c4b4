"""The MeanFlow family's other objectives: the exact average velocity of a closed-form flow is
a fixed point of each target (interval splitting, the terminal velocity), every loss vanishes
on the exact flow of point-mass data, each target matches its paper's formula in the paper's
time convention, each reduces to (trajectory) flow matching in its limit (no distinct times,
step size 0, alpha = 1, rho = 1, a closed gap), AlphaFlow tends to MeanFlow as alpha -> 0,
Modular MeanFlow's gradient spans MeanFlow's and the full one, the curricula, and a short run
of every family through the trainer with one- and two-step samples."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import losses, sources
from flowjax.contracts import DataSpec, TrainContext
from flowjax.families import FAMILIES, AlphaFlow, ModularMeanFlow, SoFlow
from flowjax.families.flow_maps import (
    AlphaFlowConfig,
    ConsistencyFMConfig,
    ModularMeanFlowConfig,
    SoFlowConfig,
)
from flowjax.losses.flow_maps import split_target, terminal_velocity
from flowjax.losses.meanflow import average_velocity_target
from flowjax.time_samplers import TimePairs
from flowjax.train.config import ConfigError, apply_overrides, load_config
from flowjax.train.loop import train
from tests.test_meanflow import PARAMS, draws, exact_u, exact_v, network
from tests.train.helpers import TOY, cli_report

M = jnp.array([2.0, -1.0])


def test_the_exact_average_velocity_splits_at_any_point():
    s, e, x = draws(seed=20)
    fraction = jax.random.uniform(jax.random.key(21), s.shape)
    m = s + fraction * (e - s)
    target = split_target(exact_u, None, x, s, e, fraction, exact_u(None, x, (s, m)))
    np.testing.assert_allclose(target, exact_u(None, x, (s, e)), atol=2e-5)
    halves = split_target(exact_u, None, x, s, e, 0.5, exact_u(None, x, (s, (s + e) / 2)))
    np.testing.assert_allclose(halves, exact_u(None, x, (s, e)), atol=2e-5)


def test_the_exact_flow_map_ends_at_the_velocity_of_where_it_lands():
    s, e, x = draws(seed=22)
    landed, d_landed = terminal_velocity(exact_u, None, x, s, e)
    np.testing.assert_allclose(landed, x + (e - s)[:, None] * exact_u(None, x, (s, e)), atol=1e-6)
    np.testing.assert_allclose(d_landed, exact_v(landed, e), atol=5e-5)


def point_mass_u(params, x, times):
    """The exact average velocity when the data is the point M: straight lines to M."""
    del params
    s, _ = times
    return (M - x) / (1.0 - s)[:, None]


def point_mass_v(params, x, t):
    return point_mass_u(params, x, (t, t))


@pytest.mark.parametrize(
    "loss",
    [
        lambda k, x1, src: losses.meanflow_loss(point_mass_u, None, k, x1, source=src),
        lambda k, x1, src: losses.split_meanflow_loss(point_mass_u, None, k, x1, source=src),
        lambda k, x1, src: losses.shortcut_loss(point_mass_u, None, k, x1, source=src, teacher=0),
        lambda k, x1, src: losses.alpha_flow_loss(point_mass_u, None, k, x1, source=src, alpha=0.3),
        lambda k, x1, src: losses.alpha_flow_loss(point_mass_u, None, k, x1, source=src, alpha=0),
        lambda k, x1, src: losses.soflow_loss(point_mass_u, None, k, x1, source=src, rho=0.2),
        lambda k, x1, src: losses.terminal_velocity_loss(
            point_mass_u, None, k, x1, source=src, teacher=0
        ),
        lambda k, x1, src: losses.consistency_fm_loss(
            point_mass_v, None, k, x1, source=src, teacher=0
        ),
    ],
    ids=["meanflow", "split", "shortcut", "alpha", "alpha0", "soflow", "tvm", "consistency"],
)
def test_every_objective_vanishes_on_the_exact_flow(loss):
    x1 = jnp.tile(M, (256, 1))
    value, aux = loss(jax.random.key(23), x1, sources.Gaussian(1.0))
    wrong, _ = loss(jax.random.key(23), x1 + 1.0, sources.Gaussian(1.0))  # data moved
    # float32 rounding over SoFlow's shortest intervals (1e-4) bounds its zero
    assert abs(float(value)) < 1e-3 * abs(float(wrong)) and float(aux["error"]) < 1e-2


def paper_u(z, r, t):
    """A network in the papers' convention (t = 1 at the noise, from t back to r): ours
    mapped, `u_p(z, r, t) = -u(z, 1 - t, 1 - r)`."""
    return -network(PARAMS, z, (1 - t, 1 - r))


def test_split_meanflow_target_is_the_paper_s():
    """Guo et al.: s = (1 - l) t + l r, u2 = u(z_t, s, t), z_s = z_t - (t - s) u2,
    target (1 - l) u(z_s, r, s) + l u2."""
    s, e, x = draws(seed=24)
    lam = jax.random.uniform(jax.random.key(25), s.shape)
    t_p, r_p = 1 - s, 1 - e
    s_p = (1 - lam) * t_p + lam * r_p
    u2 = paper_u(x, s_p, t_p)
    z_s = x - (t_p - s_p)[:, None] * u2
    paper = (1 - lam)[:, None] * paper_u(z_s, r_p, s_p) + lam[:, None] * u2
    m = s + lam * (e - s)
    ours = split_target(network, PARAMS, x, s, e, lam, network(PARAMS, x, (s, m)))
    np.testing.assert_allclose(-paper, ours, atol=1e-6)


def test_alpha_flow_target_is_the_paper_s():
    """Zhang et al.'s code: dt = alpha (t - r), z_s = z_t - dt v, target (dt v + (t - dt - r)
    u(z_s, r, t - dt)) / (t - r)."""
    s, e, x = draws(seed=26)
    v = jax.random.normal(jax.random.key(27), x.shape)
    alpha = 0.3
    t_p, r_p, v_p = 1 - s, 1 - e, -v
    dt = alpha * (t_p - r_p)
    z_s = x - dt[:, None] * v_p
    paper = (dt[:, None] * v_p + (t_p - dt - r_p)[:, None] * paper_u(z_s, r_p, t_p - dt)) / (
        t_p - r_p
    )[:, None]
    ours = split_target(network, PARAMS, x, s, e, alpha, v)
    np.testing.assert_allclose(-paper, ours, atol=2e-5)


def test_terminal_velocity_is_the_paper_s():
    """Zhou et al.: f(x_t, t, s) = x_t + (s - t) F(x_t, t, s), d/ds f by jvp in s."""
    s, e, x = draws(seed=28)
    t_p, s_p = 1 - s, 1 - e

    def f(s_p):
        return x + (s_p - t_p)[:, None] * paper_u(x, s_p, t_p)

    f_p, df_p = jax.jvp(f, (s_p,), (jnp.ones_like(s_p),))
    landed, d_landed = terminal_velocity(network, PARAMS, x, s, e)
    np.testing.assert_allclose(f_p, landed, atol=1e-6)
    np.testing.assert_allclose(-df_p, d_landed, atol=1e-5)  # d/de = -d/ds_p


def test_alpha_flow_tends_to_meanflow_as_alpha_vanishes():
    s, e, x = draws(seed=29)
    v = jax.random.normal(jax.random.key(30), x.shape)
    out, meanflow = average_velocity_target(network, PARAMS, x, s, e, v)
    alpha = 1e-3
    target = split_target(network, PARAMS, x, s, e, alpha, v)
    np.testing.assert_allclose((target - out) / alpha, meanflow - out, atol=5e-3)


def test_modular_meanflow_spans_meanflow_and_the_full_gradient():
    x1 = jax.random.normal(jax.random.key(31), (32, 2))
    source, pairs, key = sources.Gaussian(1.0), TimePairs(ratio=0.5), jax.random.key(32)

    def loss(params, modulation):
        return losses.meanflow_loss(
            network, params, key, x1, source=source, times=pairs, power=0, modulation=modulation
        )[0]

    def full(params):
        k_source, k_times = jax.random.split(key)
        x0 = source.sample(k_source, x1.shape, x1.dtype)
        s, e = pairs(k_times, (32,))
        x_s = (1 - s)[:, None] * x0 + s[:, None] * x1
        out, target = average_velocity_target(network, params, x_s, s, e, x1 - x0)
        return jnp.mean(jnp.sum((out - target) ** 2, -1))

    stopped, whole = jax.grad(loss)(PARAMS, 0.0), jax.grad(loss)(PARAMS, 1.0)
    for a, b in zip(whole, jax.grad(full)(PARAMS), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    half = jax.grad(loss)(PARAMS, 0.5)
    for h, a, b in zip(half, stopped, whole, strict=True):
        np.testing.assert_allclose(h, (a + b) / 2, rtol=1e-5, atol=1e-7)
    assert not np.allclose(stopped[0], whole[0])


def trajectory_fm(params, x0, x1, s, e):
    """`||u(x_s, s, e) - (x1 - x0)||^2` `[B]` on the straight path: flow matching where
    `e = s`, its trajectory form (every interval regressed on the conditional velocity)."""
    x_s = (1 - s)[:, None] * x0 + s[:, None] * x1
    return jnp.sum((network(params, x_s, (s, e)) - (x1 - x0)) ** 2, -1)


X1, SOURCE, KEY = (
    jax.random.normal(jax.random.key(33), (32, 2)),
    sources.Gaussian(1.0),
    jax.random.key(34),
)


def test_split_meanflow_with_no_distinct_times_is_flow_matching():
    none = TimePairs(ratio=0.0)
    loss, aux = losses.split_meanflow_loss(network, PARAMS, KEY, X1, source=SOURCE, times=none)
    k_source, k_times, _ = jax.random.split(KEY, 3)
    s, _ = none(k_times, (32,))
    x0 = SOURCE.sample(k_source, X1.shape, X1.dtype)
    np.testing.assert_allclose(loss, jnp.mean(trajectory_fm(PARAMS, x0, X1, s, s)), rtol=1e-6)
    assert float(aux["fm_fraction"]) == 1.0


def test_shortcut_at_step_size_zero_is_flow_matching_on_the_dyadic_grid():
    loss, _ = losses.shortcut_loss(
        network, PARAMS, KEY, X1, source=SOURCE, teacher=PARAMS, ratio=0.0, levels=3
    )
    k_source, k_fm, _ = jax.random.split(KEY, 3)
    t = jax.random.randint(k_fm, (32,), 0, 8) / 8
    x0 = SOURCE.sample(k_source, X1.shape, X1.dtype)
    np.testing.assert_allclose(loss, jnp.mean(trajectory_fm(PARAMS, x0, X1, t, t)), rtol=1e-6)


def test_alpha_flow_at_alpha_one_is_trajectory_flow_matching():
    pairs = TimePairs(ratio=0.5)
    loss, _ = losses.alpha_flow_loss(
        network, PARAMS, KEY, X1, source=SOURCE, alpha=1.0, times=pairs, power=0
    )
    k_source, k_times = jax.random.split(KEY)
    s, e = pairs(k_times, (32,))
    e = e.at[:16].set(s[:16])
    assert bool(jnp.any(e > s))
    x0 = SOURCE.sample(k_source, X1.shape, X1.dtype)
    np.testing.assert_allclose(loss, jnp.mean(trajectory_fm(PARAMS, x0, X1, s, e)), rtol=1e-5)


def test_soflow_at_rho_one_has_the_gradient_of_trajectory_flow_matching():
    def loss(params):
        return losses.soflow_loss(
            network, params, KEY, X1, source=SOURCE, rho=1.0, ratio=0.5, power=0
        )[0]

    def reference(params):
        k_source, k_fm, k_a, k_b = jax.random.split(KEY, 4)
        fm_times, start_times, end_times = losses.flow_maps.SOFLOW_TIMES
        a = jnp.minimum(start_times(k_a, (16,)), 1 - 1e-4)
        b = jnp.maximum(end_times(k_b, (16,)), a + 1e-4)
        s = jnp.concatenate([fm_times(k_fm, (16,)), a])
        e = jnp.concatenate([s[:16], b])
        x0 = SOURCE.sample(k_source, X1.shape, X1.dtype)
        errors = trajectory_fm(params, x0, X1, s, e) / 2  # means over the 2 dimensions
        return (jnp.sum(errors[:16]) + jnp.sum(errors[16:]) / 2) / 32

    for a, b in zip(jax.grad(loss)(PARAMS), jax.grad(reference)(PARAMS), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


def test_soflow_loss_is_the_paper_s():
    """Luo et al.'s code, t = 1 at the noise, on the same draws: x_t = (1 - t) x1 + t z,
    v = z - x1, f(x, t, s) = x + (s - t) F(x, t, s); velocity rows `w mean((F(x_t, t, t) -
    v)^2)`; consistency rows t = max(t, 1e-4), s = min(s, t - 1e-4), l = min(t + rho (s - t),
    t - 1e-4), x_l = x_t + (l - t) v, dq = sg((f(x_t, t, s) - f(x_l, l, s)) / (t - l)),
    `-w mean(F(x_t, t, s) dq)`; w = sg(1 / (mean(e^2) + eps)^p); (sum + sum) / B. The value and
    the gradient match."""
    rho, power, eps = 0.3, 0.75, 1e-3

    def ours(params):
        return losses.soflow_loss(
            network, params, KEY, X1, source=SOURCE, rho=rho, ratio=0.5, power=power, eps=eps
        )[0]

    def paper(params):
        def big_f(x, t, s):  # the paper's network: ours mapped
            return -network(params, x, (1 - t, 1 - s))

        def weight(squared):
            return jax.lax.stop_gradient(1 / (squared + eps) ** power)

        k_source, k_fm, k_a, k_b = jax.random.split(KEY, 4)
        fm_times, start_times, end_times = losses.flow_maps.SOFLOW_TIMES
        z = SOURCE.sample(k_source, X1.shape, X1.dtype)
        x_t = lambda t, rows: (1 - t)[:, None] * X1[rows] + t[:, None] * z[rows]  # noqa: E731
        v = z - X1
        t_fm = 1 - fm_times(k_fm, (16,))
        mse = jnp.mean((big_f(x_t(t_fm, slice(16)), t_fm, t_fm) - v[:16]) ** 2, -1)
        t = jnp.maximum(1 - start_times(k_a, (16,)), 1e-4)
        s = jnp.minimum(1 - end_times(k_b, (16,)), t - 1e-4)
        mid = jnp.minimum(t + rho * (s - t), t - 1e-4)  # the paper's l
        xt = x_t(t, slice(16, None))
        xl = xt + (mid - t)[:, None] * v[16:]
        out = big_f(xt, t, s)
        f_t = xt + (s - t)[:, None] * out
        f_l = xl + (s - mid)[:, None] * big_f(xl, mid, s)
        dq = jax.lax.stop_gradient((f_t - f_l) / (t - mid)[:, None])
        consistency = -weight(jnp.mean(dq**2, -1)) * jnp.mean(out * dq, -1)
        return (jnp.sum(weight(mse) * mse) + jnp.sum(consistency)) / 32

    np.testing.assert_allclose(ours(PARAMS), paper(PARAMS), rtol=1e-5)
    for a, b in zip(jax.grad(ours)(PARAMS), jax.grad(paper)(PARAMS), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_the_terminal_velocity_of_a_zero_interval_is_the_instantaneous_velocity():
    """TVM's limit e -> s: dX/de = u(x, s, s), its teacher's target at the same point, so only
    the flow-matching term is left."""
    s, _, x = draws(seed=35)
    landed, d_landed = terminal_velocity(network, PARAMS, x, s, s)
    np.testing.assert_array_equal(landed, x)
    np.testing.assert_allclose(d_landed, network(PARAMS, x, (s, s)), atol=1e-6)


def context(step, steps=100):
    return TrainContext(jnp.asarray(step), steps, None)


def test_the_curricula():
    data = DataSpec((2,))
    alpha = AlphaFlow(AlphaFlowConfig(), data).alpha
    assert float(alpha(context(0))) == 1.0 and float(alpha(context(100))) == 0.0
    assert float(alpha(context(50))) == pytest.approx(0.5)
    assert float(alpha(context(40))) > float(alpha(context(60)))
    assert float(alpha(context(99))) == 0.0  # below the clamp: MeanFlow
    rho = SoFlow(SoFlowConfig(), data).rho
    assert float(rho(context(0))) == 1.0 and float(rho(context(100))) == pytest.approx(3.125e-4)
    assert float(rho(context(50))) == pytest.approx(3.125e-4**0.5, rel=1e-5)
    modulation = ModularMeanFlow(ModularMeanFlowConfig(warmup=0.5), data).modulation
    assert float(modulation(context(25))) == pytest.approx(0.5)
    assert float(modulation(context(80))) == 1.0
    with pytest.raises(ValueError, match="begin < end"):
        AlphaFlowConfig(begin=0.5, end=0.5).check()


@pytest.mark.parametrize(
    ("family", "setting"),
    [
        ("splitmeanflow", "power=2"),
        ("shortcut", "time_mean=0"),
        ("soflow", "time_pairing=max"),
        ("tvm", "ratio=0.5"),
        ("consistency_fm", "end_mean=1"),
    ],
)
def test_each_section_holds_only_what_its_objective_reads(family, setting):
    """A setting the family would ignore is refused as unknown, not accepted silently."""
    with pytest.raises(ConfigError, match="unknown config key"):
        apply_overrides(load_config(TOY), [f"--config.family={family}", f"--config.flow.{setting}"])


def test_consistency_fm_draws_its_times_above_eps():
    """`flow.eps` reaches the loss: a change of the field below t = 0.5 changes nothing at
    eps = 0.5, and changes the loss at the default eps."""

    def v(params, x, t, **cond):
        return -x * t[:, None]

    def changed(params, x, t, **cond):
        return v(params, x, t) + (t < 0.5)[:, None]

    x1, key = jax.random.normal(jax.random.key(24), (256, 2)), jax.random.key(25)
    for eps, same in ((0.5, True), (1e-3, False)):
        config = ConsistencyFMConfig(eps=eps, teacher="online")
        family = FAMILIES["consistency_fm"](config, DataSpec((2,)))
        losses_ = [float(family.loss(f, None, key, {"x1": x1})[0]) for f in (v, changed)]
        assert (losses_[0] == losses_[1]) == same, (eps, losses_)


ONE_STEP = ["modular_meanflow", "splitmeanflow", "shortcut", "alphaflow", "soflow", "tvm"]


@pytest.mark.slow
@pytest.mark.parametrize("family", [*ONE_STEP, "consistency_fm"])
def test_each_family_trains_and_samples_in_one_and_two_steps(tmp_path, family):
    overrides = [
        f"--config.family={family}",
        "--config.steps=30",
        "--config.data.batch_size=128",
        "--config.model.width=32",
        "--config.model.depth=2",
        "--config.checkpoint.every=30",
        "--config.log.every=10",
        "--config.log.eval_every=30",
        "--config.log.sample_every=30",
        "--config.log.num_samples=128",
        "--config.log.eval_method=flow_map",
        "--config.log.eval_steps=1",
        "--config.compilation_cache=off",
    ]
    config = apply_overrides(load_config(TOY), overrides)
    assert isinstance(config.flow, FAMILIES[family].Config)
    train(config, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    losses_seen = [r["loss"] for r in rows if "loss" in r]
    assert losses_seen and all(np.isfinite(losses_seen)) and any("eval/w2" in r for r in rows)
    for steps in (1, 2):
        report = cli_report(
            "sample", "--workdir", str(tmp_path), "--num", "32", "--method", "flow_map",
            "--steps", str(steps),
        )  # fmt: skip
        assert report["shape"] == [32, 2] and report["nfe"] == steps
