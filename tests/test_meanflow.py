"""MeanFlow: the identity on a closed-form flow (Gaussian to Gaussian), flow-map sampling and
composition, re-noised sampling, the jvp target against finite differences and against the
paper's own formula in its time convention, stop-gradients, the flow-matching limit, guidance
folded into the target, and a short run through the trainer that resumes bit-identically and
samples in one step."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import losses, solvers, sources
from flowjax.contracts import DataSpec, SamplerSettings
from flowjax.families import MeanFlow, MeanFlowConfig
from flowjax.losses.meanflow import average_velocity_target, partial_stop_gradient
from flowjax.time_samplers import TimePairs
from flowjax.train.config import apply_overrides, load_config
from flowjax.train.loop import train
from tests.train.helpers import TOY, cli_report, max_difference, restore

M, SIGMA = jnp.array([2.0, -1.0]), 0.5  # data N(M, SIGMA^2 I), source N(0, I), straight path


def tau(t):
    """The marginal's standard deviation at t: sqrt((1 - t)^2 + t^2 SIGMA^2)."""
    return jnp.sqrt((1 - t) ** 2 + (t * SIGMA) ** 2)


def exact_u(params, x, times):
    """The average velocity of the marginal flow `x_t = t M + tau_t z`, from s to e."""
    del params
    s, e = times
    d_tau = jax.vmap(jax.grad(tau))(s)
    close = jnp.abs(e - s) < 1e-6
    slope = jnp.where(close, d_tau, (tau(e) - tau(s)) / jnp.where(close, 1.0, e - s)) / tau(s)
    return M + slope[:, None] * (x - s[:, None] * M)


def exact_v(x, t):
    """The marginal velocity, by jvp of the flow in t at fixed z."""
    z = (x - t[:, None] * M) / tau(t)[:, None]
    flow = lambda t: t[:, None] * M + tau(t)[:, None] * z  # noqa: E731
    return jax.jvp(flow, (t,), (jnp.ones_like(t),))[1]


def draws(n=64, seed=0):
    k = jax.random.split(jax.random.key(seed), 3)
    s, e = jnp.sort(jax.random.uniform(k[0], (2, n)), axis=0)
    return s, e, jax.random.normal(k[1], (n, 2)) * 2.0


def test_the_meanflow_target_of_the_exact_average_velocity_is_itself():
    s, e, x = draws()
    out, target = average_velocity_target(exact_u, None, x, s, e, exact_v(x, s))
    np.testing.assert_allclose(target, out, atol=2e-5)
    np.testing.assert_allclose(exact_u(None, x, (s, s)), exact_v(x, s), atol=1e-5)


def test_one_flow_map_step_of_the_exact_u_is_an_exact_sample_and_steps_compose():
    x0 = jax.random.normal(jax.random.key(1), (256, 2))
    one = solvers.flow_map_sample(exact_u, None, x0, num_steps=1)
    np.testing.assert_allclose(one.y, M + SIGMA * x0, atol=1e-5)  # N(M, SIGMA^2) exactly
    assert int(one.stats.nfe_batch) == 1
    for grid in (jnp.array([0.0, 0.3, 1.0]), jnp.linspace(0.0, 1.0, 5)):
        several = solvers.flow_map_sample(exact_u, None, x0, ts=grid)
        np.testing.assert_allclose(several.y, one.y, atol=1e-5)  # u(r, s) then u(s, t)
        assert int(several.stats.nfe_batch) == len(grid) - 1


def test_a_renoised_sample_of_the_exact_u_has_the_data_law():
    """Jumping to the data and drawing the path afresh keeps every marginal exact: the
    re-noised samples are N(M, SIGMA^2) in law (fresh noise, so not the flow-map points)."""
    x0 = jax.random.normal(jax.random.key(6), (20_000, 2))
    exact = solvers.flow_map_sample(exact_u, None, x0, num_steps=1).y
    one = solvers.renoised_flow_map_sample(exact_u, None, x0, jax.random.key(7), num_steps=1)
    np.testing.assert_allclose(one.y, exact, atol=1e-6)
    for grid in (jnp.array([0.0, 0.5, 1.0]), jnp.array([0.0, 0.2, 0.7, 0.9, 1.0])):
        sol = solvers.renoised_flow_map_sample(exact_u, None, x0, jax.random.key(8), ts=grid)
        assert int(sol.stats.nfe_batch) == len(grid) - 1
        np.testing.assert_allclose(jnp.mean(sol.y, 0), M, atol=0.02)
        np.testing.assert_allclose(jnp.std(sol.y, 0), SIGMA, atol=0.02)
        assert float(jnp.mean(jnp.abs(sol.y - exact))) > 0.1
    with pytest.raises(ValueError, match="end at the data"):
        solvers.renoised_flow_map_sample(
            exact_u, None, x0, jax.random.key(8), ts=jnp.array([0.0, 0.5])
        )


def network(params, x, times):
    s, e = times
    w, a, b = params
    return jnp.tanh(x @ w + a * s[:, None] + b * e[:, None] * x[:, ::-1])


PARAMS = (jnp.array([[0.7, -0.4], [0.3, 0.9]]), jnp.array([0.5, -1.2]), jnp.array([0.8, 0.2]))


def test_the_jvp_target_is_the_finite_difference_along_v_1_0():
    s, e, x = draws(seed=2)
    v = jax.random.normal(jax.random.key(3), x.shape)
    out, target = average_velocity_target(network, PARAMS, x, s, e, v)
    h = 1e-2
    ahead = network(PARAMS, x + h * v, (s + h, e))
    behind = network(PARAMS, x - h * v, (s - h, e))
    derivative = (ahead - behind) / (2 * h)
    np.testing.assert_allclose(target, v + (e - s)[:, None] * derivative, atol=1e-3)
    np.testing.assert_allclose(out, network(PARAMS, x, (s, e)), atol=1e-7)


def test_our_target_is_the_paper_s_in_its_convention():
    """Geng et al.: z_t = (1 - t) x + t eps, u_p(z, r, t) from t back to r, target
    u_p = v_p - (t - r) (v_p dz u_p + dt u_p). Ours: t_p = 1 - s, r_p = 1 - e, u_p = -u."""
    s, e, x = draws(seed=4)
    v = jax.random.normal(jax.random.key(5), x.shape)
    t_p, r_p, v_p = 1 - s, 1 - e, -v

    def u_paper(z, r, t):
        return -network(PARAMS, z, (1 - t, 1 - r))

    out_p, d = jax.jvp(lambda z, t: u_paper(z, r_p, t), (x, t_p), (v_p, jnp.ones_like(t_p)))
    paper = v_p - (t_p - r_p)[:, None] * d
    out, ours = average_velocity_target(network, PARAMS, x, s, e, v)
    np.testing.assert_allclose(-out_p, out, atol=1e-6)
    np.testing.assert_allclose(-paper, ours, atol=1e-5)


def test_the_gradient_flows_through_the_network_output_only():
    x1 = jax.random.normal(jax.random.key(6), (32, 2))
    source, pairs = sources.Gaussian(1.0), TimePairs(ratio=0.5)
    key = jax.random.key(7)

    def loss(params):
        return losses.meanflow_loss(network, params, key, x1, source=source, times=pairs)[0]

    def frozen(params):  # the same loss with the target and weights computed at fixed params
        k_source, k_times = jax.random.split(key)
        x0 = source.sample(k_source, x1.shape, x1.dtype)
        s, e = pairs(k_times, (32,))
        x_s = (1 - s)[:, None] * x0 + s[:, None] * x1
        _, target = average_velocity_target(network, PARAMS, x_s, s, e, x1 - x0)
        error = jnp.sum((network(params, x_s, (s, e)) - target) ** 2, -1)
        fixed = jnp.sum((network(PARAMS, x_s, (s, e)) - target) ** 2, -1)
        return jnp.mean(error / (fixed + 1e-3))

    np.testing.assert_allclose(loss(PARAMS), frozen(PARAMS), rtol=1e-6)
    for a, b in zip(jax.grad(loss)(PARAMS), jax.grad(frozen)(PARAMS), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_a_zero_modulation_stops_the_target_s_gradient_outright():
    """MeanFlow's target (modulation 0) is not differentiated at all: a derivative that is
    infinite (sqrt at 0) gives no NaN, as `0 * inf` would; other fractions scale it."""

    def grad(fraction):
        return jax.grad(lambda p: partial_stop_gradient(jnp.sqrt(p), fraction) + p)

    assert float(grad(0.0)(0.0)) == 1.0
    assert float(grad(0.5)(4.0)) == pytest.approx(1.0 + 0.5 * 0.25)
    traced = jax.jit(lambda fraction, p: grad(fraction)(p))  # a traced fraction: scaled too
    assert float(traced(0.5, 4.0)) == pytest.approx(1.125)


def test_with_no_distinct_times_the_loss_is_flow_matching():
    x1 = jax.random.normal(jax.random.key(8), (32, 2))
    source, key = sources.Gaussian(1.0), jax.random.key(9)
    none = TimePairs(ratio=0.0)
    loss, aux = losses.meanflow_loss(network, PARAMS, key, x1, source=source, times=none, power=0)
    k_source, k_times = jax.random.split(key)
    x0 = source.sample(k_source, x1.shape, x1.dtype)
    s, e = none(k_times, (32,))
    np.testing.assert_array_equal(s, e)
    x_s = (1 - s)[:, None] * x0 + s[:, None] * x1
    fm = jnp.mean(jnp.sum((network(PARAMS, x_s, (s, s)) - (x1 - x0)) ** 2, -1))
    np.testing.assert_allclose(loss, fm, rtol=1e-6)
    assert float(aux["fm_fraction"]) == 1.0


def test_guidance_folded_into_the_target():
    data = DataSpec((2,), num_classes=3)

    def labelled(params, x, times, y):
        return network(params, x, times) * (1.0 + (y[:, None] >= 0))  # null class: half

    s, _, x = draws(n=8, seed=10)
    v = jnp.ones_like(x)
    y = jnp.array([0, 1, 2, -1, 0, 1, 2, -1])
    plain = MeanFlow(MeanFlowConfig(omega=1.0), data)._guided_velocity(labelled, PARAMS, {"y": y})
    np.testing.assert_allclose(plain(x, s, v), v, atol=1e-7)  # omega = 1: unguided
    family = MeanFlow(MeanFlowConfig(omega=2.0, guidance_high=0.5), data)
    guided = family._guided_velocity(labelled, PARAMS, {"y": y})(x, s, v)
    u_c = labelled(PARAMS, x, (s, s), y)
    u_null = labelled(PARAMS, x, (s, s), jnp.full_like(y, -1))
    expected = 2.0 * v - u_null  # omega v + (1 - omega) u(null), kappa = 0
    inside = (s <= 0.5) & (y >= 0)
    np.testing.assert_allclose(guided, jnp.where(inside[:, None], expected, v), atol=1e-6)
    assert np.any(inside) and np.any(~inside)
    family = MeanFlow(MeanFlowConfig(omega=2.0, kappa=0.5, guidance_high=0.5), data)
    guided = family._guided_velocity(labelled, PARAMS, {"y": y})(x, s, v)
    expected = 2.0 * v + 0.5 * u_c - 1.5 * u_null
    np.testing.assert_allclose(guided, jnp.where(inside[:, None], expected, v), atol=1e-6)
    batches = []

    def counted(params, x, times, y):
        batches.append(x.shape[0])
        return labelled(params, x, times, y)

    for kappa, calls in ((0.0, [8]), (0.5, [16])):  # kappa = 0: the null output alone
        batches.clear()
        config = MeanFlowConfig(omega=2.0, kappa=kappa)
        MeanFlow(config, data)._guided_velocity(counted, PARAMS, {"y": y})(x, s, v)
        assert batches == calls
    with pytest.raises(ValueError, match="class labels"):
        MeanFlow(MeanFlowConfig(omega=2.0), DataSpec((2,)))


def test_the_instantaneous_velocity_drives_the_ode_samplers():
    family = MeanFlow(MeanFlowConfig(), DataSpec((2,)))
    x, stats = family.sampler(SamplerSettings("rk4", steps=20))(
        exact_u, None, jax.random.key(11), 512, {}
    )
    x0 = family.source.sample(jax.random.key(11), (512, 2), jnp.float32)
    np.testing.assert_allclose(x, M + SIGMA * x0, atol=1e-4)
    assert int(stats.nfe_batch) == 80
    renoised, stats = family.sampler(SamplerSettings("renoise", steps=3))(
        exact_u, None, jax.random.key(11), 4096, {}
    )
    assert int(stats.nfe_batch) == 3 and renoised.shape == (4096, 2)
    np.testing.assert_allclose(jnp.std(renoised, 0), SIGMA, atol=0.03)
    x0 = family.source.sample(jax.random.key(11), (4096, 2), jnp.float32)
    assert float(jnp.mean(jnp.abs(renoised - (M + SIGMA * x0)))) > 0.1  # noise drawn afresh
    with pytest.raises(ValueError, match="sampler method"):
        family.sampler(SamplerSettings("geodesic"))


def test_a_meanflow_run_resumes_bit_identically_and_samples_in_one_step(tmp_path):
    overrides = [
        "--config.family=meanflow",
        "--config.steps=40",
        "--config.data.batch_size=128",
        "--config.model.width=64",
        "--config.model.depth=2",
        "--config.checkpoint.every=20",
        "--config.log.every=10",
        "--config.log.eval_every=40",
        "--config.log.sample_every=40",
        "--config.log.num_samples=256",
        "--config.log.eval_method=flow_map",
        "--config.log.eval_steps=1",
        "--config.compilation_cache=off",
    ]
    config = apply_overrides(load_config(TOY), overrides)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(config, straight)
    shutil.copytree(straight, resumed)
    shutil.rmtree(resumed / "checkpoints" / "40")
    train(config, resumed)
    (step_a, params_a), (step_b, params_b) = restore(straight), restore(resumed)
    assert step_a == step_b == 40 and max_difference(params_a, params_b) == 0.0
    rows = [json.loads(line) for line in (straight / "metrics.jsonl").open()]
    assert any("error" in r for r in rows) and any("eval/w2" in r for r in rows)
    report = cli_report(
        "sample", "--workdir", str(straight), "--num", "64", "--method", "flow_map", "--steps", "2"
    )
    assert report["shape"] == [64, 2] and report["nfe"] == 2


def test_time_pairs_are_ordered_with_the_stated_fraction_distinct():
    s, e = TimePairs(ratio=0.25)(jax.random.key(12), (20_000,))
    assert bool(jnp.all(s <= e)) and float(jnp.mean(s < e)) == pytest.approx(0.25, abs=0.015)
    # the paper's t (noise at 1): the larger of two logit-normal(-0.4, 1) draws; ours is 1 - t
    n = jax.random.normal(jax.random.key(13), (2, 20_000))
    paper_t = jnp.max(jax.nn.sigmoid(-0.4 + n), axis=0)
    assert float(jnp.mean(s)) == pytest.approx(float(jnp.mean(1 - paper_t)), abs=0.01)
    with pytest.raises(ValueError, match="ratio"):
        TimePairs(ratio=1.5)
