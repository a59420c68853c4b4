import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import paths, solvers

ALL_METHODS = list(solvers.METHODS)
ADAPTIVE = [m for m in ALL_METHODS if m not in solvers.FIXED_STEP]


def _stiff_field(params, x, t):
    return params * x * jnp.cos(3.0 * x + t[:, None])


def _counted(v):
    """An instrumented field: counts batched calls actually executed (also under jit/vmap)."""
    calls = []

    def field(params, x, t, **cond):
        jax.debug.callback(lambda x: calls.append(1), x, ordered=False)
        return v(params, x, t, **cond)

    return field, calls


@pytest.mark.parametrize(("sched", "t1"), [(paths.CondOT(), 1.0), (paths.VP(), 1.0 - 1e-5)])
def test_closed_form_sampling_reaches_the_target(sched, t1, target):
    x0 = jax.random.normal(jax.random.key(1), (20_000, 2))
    sol = solvers.sample(target.velocity(sched), target.mu, x0, method="dopri5", t1=t1)
    x1 = sol.y
    n = x1.shape[0]
    np.testing.assert_allclose(x1.mean(0), target.mu, atol=4 * np.sqrt(0.5 / n) + 5e-3)
    np.testing.assert_allclose(jnp.cov(x1.T), target.cov, atol=0.03)
    assert bool(sol.stats.success.all()) and not bool(sol.stats.max_steps_reached.any())


@pytest.mark.parametrize(
    ("method", "rate"), [("euler", 2.0), ("midpoint", 4.0), ("heun", 4.0), ("rk4", 16.0)]
)
def test_fixed_step_convergence_order(method, rate):
    """On dx/dt = lam x the global error falls by 2^order per halving of the step."""
    with jax.enable_x64(True):
        lam = -1.7
        x0 = jnp.ones((1, 1), jnp.float64)
        exact = np.exp(lam)
        errors = [
            abs(
                float(
                    solvers.sample(lambda p, x, t: p * x, lam, x0, method=method, num_steps=n).y[
                        0, 0
                    ]
                )
                - exact
            )
            for n in (16, 32, 64)
        ]
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    np.testing.assert_allclose(ratios, rate, rtol=0.15)


@pytest.mark.parametrize("method", ["rk4", "dopri5", "dopri8"])
def test_backward_integration_inverts_forward(method):
    x0 = jax.random.normal(jax.random.key(2), (16, 2))
    opts = dict(method=method, num_steps=200, rtol=1e-7, atol=1e-7)
    x1 = solvers.sample(_stiff_field, -0.8, x0, **opts).y
    back = solvers.sample(_stiff_field, -0.8, x1, t0=1.0, t1=0.0, **opts).y
    assert float(jnp.abs(x1 - x0).max()) > 0.1
    np.testing.assert_allclose(back, x0, atol=1e-4)


@pytest.mark.parametrize("batch_mode", solvers.BATCH_MODES)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_reported_nfe_equals_counted_calls(method, batch_mode):
    x0 = jax.random.normal(jax.random.key(3), (5, 2))
    field, calls = _counted(_stiff_field)
    sol = solvers.sample(
        field,
        -1.3,
        x0,
        method=method,
        num_steps=7,
        rtol=1e-6,
        atol=1e-6,
        batch_mode=batch_mode,
        save_at=jnp.linspace(0, 1, 4),
    )
    jax.block_until_ready(sol.y)
    per_lane = 5 if batch_mode == "per_sample" else 1  # the callback runs once per vmapped lane
    assert len(calls) == per_lane * int(sol.stats.nfe_batch)
    assert int(sol.stats.nfe_batch) == int(sol.stats.nfe.max())
    if method in ("dopri5", "tsit5") and batch_mode == "per_sample":
        assert int(sol.stats.num_rejected.sum()) > 0  # so rejected steps are counted too


@pytest.mark.parametrize("method", ["dopri5", "tsit5"])
def test_per_sample_nfe_equals_solving_each_sample_alone(method):
    x0 = jax.random.normal(jax.random.key(4), (4, 2)) * 2
    sol = solvers.sample(_stiff_field, -1.3, x0, method=method, batch_mode="per_sample")
    alone = [
        int(solvers.sample(_stiff_field, -1.3, x0[i : i + 1], method=method).stats.nfe_batch)
        for i in range(4)
    ]
    np.testing.assert_array_equal(sol.stats.nfe, alone)
    assert len(set(alone)) > 1  # the samples do adapt their own steps
    joint = solvers.sample(_stiff_field, -1.3, x0, method=method)
    np.testing.assert_allclose(sol.y, joint.y, atol=1e-4)


def test_max_steps_is_reported_and_warned_not_raised():
    x0 = jnp.ones((3, 2))
    with pytest.warns(RuntimeWarning, match="hit max_steps"):
        sol = solvers.sample(
            _stiff_field, -1.3, x0, method="dopri5", rtol=1e-9, atol=1e-9, max_steps=3
        )
        jax.block_until_ready(sol.y)
    assert bool(sol.stats.max_steps_reached.all()) and not bool(sol.stats.success.any())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = solvers.sample(_stiff_field, -1.3, x0, method="dopri5")
        jax.block_until_ready(ok.y)
    assert bool(ok.stats.success.all())


def test_saved_trajectory_and_conditioning():
    x0 = jnp.zeros((3, 2))
    y = jnp.array([1.0, 2.0, 3.0])
    grid = jnp.linspace(0.0, 1.0, 5)

    def shift(params, x, t, y):  # dx/dt = y: x(t) = t y
        return jnp.broadcast_to(y[:, None], x.shape)

    common = dict(cond={"y": y}, save_at=grid)
    sol = solvers.sample(shift, None, x0, method="euler", num_steps=10, **common)
    assert sol.ys.shape == (5, 3, 2)
    np.testing.assert_allclose(sol.ys[:, :, 0], grid[:, None] * y[None], atol=1e-6)
    np.testing.assert_allclose(sol.y[:, 1], y, atol=1e-6)
    per_sample = solvers.sample(
        shift, None, x0, method="rk4", num_steps=3, batch_mode="per_sample", **common
    )
    np.testing.assert_allclose(per_sample.ys, sol.ys, atol=1e-5)


def test_sample_jits_and_vmaps_over_seeds(target):
    v = target.velocity(paths.CondOT())

    @jax.jit
    def draw(key):
        x0 = jax.random.normal(key, (64, 2))
        sol = solvers.sample(v, target.mu, x0, method="rk4", num_steps=20)
        return sol.y, sol.stats.nfe_batch

    ys, nfe = jax.vmap(draw)(jax.random.split(jax.random.key(5), 3))
    assert ys.shape == (3, 64, 2) and np.all(np.asarray(nfe) == 80)
    assert not np.allclose(ys[0], ys[1])


def test_bad_inputs_name_the_argument():
    x0 = jnp.zeros((2, 2))
    v = lambda p, x, t: x  # noqa: E731
    cases = [
        (dict(method="rk45"), "unknown method 'rk45'"),
        (dict(rtol=0.0), "rtol and atol must be positive"),
        (dict(atol=-1.0), "rtol and atol must be positive"),
        (dict(method="euler", num_steps=0), "num_steps must be a positive int"),
        (dict(batch_mode="lanes"), "unknown batch_mode"),
        (dict(t0=0.5, t1=0.5), "t0 and t1 must differ"),
        (dict(save_at=jnp.array([0.5, 0.2])), "save_at must run monotonically"),
        (dict(steps=10), r"unknown keyword arguments \['steps'\]"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            solvers.sample(v, None, x0, **kwargs)
    with pytest.raises(ValueError, match="x0 must have shape"):
        solvers.sample(v, None, jnp.zeros(3))
    with pytest.raises(ValueError, match="t0 must be a scalar time"):
        solvers.sample(v, None, x0, t0=jnp.zeros(2))
