"""The MeanFlow family's other objectives: the exact average velocity of a closed-form flow is
a fixed point of each target (interval splitting, the terminal velocity), every loss vanishes
on the exact flow of point-mass data, each target matches its paper's formula in the paper's
time convention, AlphaFlow tends to MeanFlow as alpha -> 0, Modular MeanFlow's gradient spans
MeanFlow's and the full one, the curricula, and a short run of every family through the
trainer with one- and two-step samples."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import losses, sources
from flowjax.contracts import DataSpec, TrainContext
from flowjax.families import FAMILIES, AlphaFlow, ModularMeanFlow, SoFlow
from flowjax.families.flow_maps import AlphaFlowConfig, ModularMeanFlowConfig, SoFlowConfig
from flowjax.losses.flow_maps import split_target, terminal_velocity
from flowjax.losses.meanflow import average_velocity_target
from flowjax.time_samplers import TimePairs
from flowjax.train.config import apply_overrides, load_config
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
