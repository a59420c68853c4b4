"""The fixed-step scan sampler `solvers.fixed_step`: Diffrax agreement, order, NFE and hooks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import paths, solvers
from flowjax._utils import expand_time
from tests.gaussian import GaussianTarget

ORDERS = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}
STAGES = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}
DIRECTIONS = [(0.0, 1.0), (1.0, 0.0)]
GRID = jnp.array([0.0, 0.1, 0.35, 0.5, 0.9, 1.0])  # non-uniform, 5 steps


def _field(params, x, t):  # nonlinear and time-dependent, for any event shape
    return params * x * jnp.cos(3.0 * x + expand_time(t, x))


def _rotation(omega, x, t):  # dx/dt = omega J x: uniform rotation about the origin
    return omega * jnp.stack([-x[:, 1], x[:, 0]], axis=1)


def _on_circle(angle):
    return jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=1)


def _project(i, t, t_next, x, x_next):  # onto the unit circle
    return x_next / jnp.linalg.norm(x_next, axis=1, keepdims=True)


def _expmap(i, t, t_next, x, x_next):  # the circle's exponential map at x along x_next - x
    u = x_next - x
    norm = jnp.linalg.norm(u, axis=1, keepdims=True)
    return jnp.cos(norm) * x + jnp.sin(norm) * u / norm


@pytest.mark.parametrize(("t0", "t1"), DIRECTIONS)
@pytest.mark.parametrize("method", solvers.FIXED_STEP)
def test_matches_diffrax_sample(method, t0, t1):
    x0 = jax.random.normal(jax.random.key(0), (16, 3, 2))
    grid = jnp.linspace(t0, t1, 10)
    opts = dict(method=method, num_steps=9, t0=t0, t1=t1)
    ref = solvers.sample(_field, -1.3, x0, save_at=grid, **opts)
    sol = solvers.fixed_step(_field, -1.3, x0, save_trajectory=True, **opts)
    assert float(jnp.abs(sol.y - x0).max()) > 0.5
    np.testing.assert_allclose(sol.y, ref.y, rtol=1e-6, atol=1e-6)
    # Diffrax interpolates its saved states, which costs a few more ulps.
    np.testing.assert_allclose(sol.ys, ref.ys, rtol=1e-6, atol=2e-6)
    np.testing.assert_array_equal(sol.ts, grid)
    assert sol.ys.shape == (10, 16, 3, 2) and sol.method == method
    for name in ("nfe", "nfe_batch", "num_steps", "num_rejected", "max_steps_reached", "success"):
        np.testing.assert_array_equal(getattr(sol.stats, name), getattr(ref.stats, name))


@pytest.mark.parametrize(("t0", "t1"), DIRECTIONS)
@pytest.mark.parametrize("method", solvers.FIXED_STEP)
def test_convergence_order_on_a_gaussian_path(method, t0, t1):
    """The global error falls by 2^order per halving of the step, in both directions."""
    sched = paths.Cosine()  # on CondOT's Gaussian field the midpoint method is third order
    with jax.enable_x64(True):
        # Diagonal covariance: the eigenvectors, stored in float32, are exact.
        target = GaussianTarget(mu=[1.0, -2.0], cov=[[0.5, 0.0], [0.0, 0.2]])

        def flow(z, t):  # the path's flow map from the noise z: alpha mu + Sigma_t^(1/2) z
            c, var = target.variances(sched, jnp.full(z.shape[:1], t, z.dtype))
            return c.alpha * target.mu + target._rotate(z, jnp.sqrt(var))

        z = jax.random.normal(jax.random.key(1), (8, 2), jnp.float64)
        x0, x1 = flow(z, t0), flow(z, t1)
        v, opts = target.velocity(sched), dict(method=method, t0=t0, t1=t1)
        errors = [
            float(jnp.abs(solvers.fixed_step(v, target.mu, x0, num_steps=n, **opts).y - x1).max())
            for n in (32, 64)
        ]
    assert errors[1] > 1e-12  # well above float64 round-off
    assert abs(np.log2(errors[0] / errors[1]) - ORDERS[method]) < 0.1


@pytest.mark.parametrize("method", solvers.FIXED_STEP)
def test_reported_nfe_equals_counted_calls(method):
    calls = []

    def field(params, x, t):  # counts the batched calls actually executed
        jax.debug.callback(lambda: calls.append(1), ordered=True)
        return _field(params, x, t)

    x0 = jax.random.normal(jax.random.key(2), (4, 2))
    sol = jax.jit(lambda x: solvers.fixed_step(field, -1.3, x, method=method, ts=GRID))(x0)
    jax.block_until_ready(sol.y)
    jax.effects_barrier()
    assert len(calls) == int(sol.stats.nfe_batch) == STAGES[method] * 5
    np.testing.assert_array_equal(sol.stats.nfe, [STAGES[method] * 5] * 4)
    np.testing.assert_array_equal(sol.stats.num_steps, [5] * 4)
    assert not sol.stats.num_rejected.any() and not sol.stats.max_steps_reached.any()
    assert sol.stats.success.all()


def test_hook_sees_every_step_and_sets_the_next_state():
    """On dx/dt = c every method steps x + dt c; the hook then adds 1."""
    seen = []

    def hook(i, t, t_next, x, x_next):
        jax.debug.callback(lambda *a: seen.append(a), i, t, t_next, x, x_next, ordered=True)
        return x_next + 1.0

    c = jnp.array([[1.0, -2.0], [0.5, 3.0]])
    x0 = jnp.zeros((2, 2))
    sol = solvers.fixed_step(
        lambda c, x, t: c, c, x0, method="heun", ts=GRID, hook=hook, save_trajectory=True
    )
    jax.effects_barrier()
    steps = np.diff(GRID)[:, None, None] * np.asarray(c) + 1.0
    states = np.concatenate([np.zeros((1, 2, 2)), np.cumsum(steps, axis=0)])
    assert [int(s[0]) for s in seen] == list(range(5))
    assert all(s[0].dtype == np.int32 and s[0].shape == () for s in seen)
    np.testing.assert_allclose([s[1] for s in seen], GRID[:-1])
    np.testing.assert_allclose([s[2] for s in seen], GRID[1:])
    np.testing.assert_allclose([s[3] for s in seen], states[:-1], atol=1e-6)
    np.testing.assert_allclose([s[4] for s in seen], states[1:] - 1.0, atol=1e-6)
    np.testing.assert_allclose(sol.ys, states, atol=1e-6)
    np.testing.assert_allclose(sol.y, states[-1], atol=1e-6)


def test_projected_euler_stays_on_the_circle_and_lags_by_arctan():
    """Euler leaves the circle (|x| grows by sqrt(1 + (omega h)^2) a step); projected back, each
    step turns by arctan(omega h) instead of omega h."""
    omega, n = 2.0, 20
    theta = jnp.linspace(0.0, 6.0, 7)
    x0 = _on_circle(theta)
    plain = solvers.fixed_step(_rotation, omega, x0, num_steps=n)
    np.testing.assert_allclose(
        jnp.linalg.norm(plain.y, axis=1), (1 + (omega / n) ** 2) ** (n / 2), rtol=1e-5
    )
    sol = solvers.fixed_step(_rotation, omega, x0, num_steps=n, hook=_project, save_trajectory=True)
    np.testing.assert_allclose(jnp.linalg.norm(sol.ys, axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(sol.y, _on_circle(theta + n * np.arctan(omega / n)), atol=1e-5)
    assert float(jnp.abs(sol.y - _on_circle(theta + omega)).max()) > 5e-3  # it does lag


@pytest.mark.parametrize("grid", [GRID, GRID[::-1]])
def test_geodesic_euler_hook_is_exact_for_rotations(grid):
    """exp_x(h omega J x) turns x by exactly omega h, on any grid, in either direction."""
    theta = jnp.linspace(0.0, 6.0, 7)
    sol = solvers.fixed_step(_rotation, 3.0, _on_circle(theta), ts=grid, hook=_expmap)
    np.testing.assert_allclose(sol.y, _on_circle(theta + 3.0 * (grid[-1] - grid[0])), atol=1e-5)


def test_round_trip_on_a_reversed_non_uniform_grid():
    x0 = jax.random.normal(jax.random.key(3), (16, 2))
    grid = jnp.linspace(0.0, 1.0, 41) ** 2
    x1 = solvers.fixed_step(_field, -1.3, x0, method="rk4", ts=grid).y
    back = solvers.fixed_step(_field, -1.3, x1, method="rk4", ts=grid[::-1]).y
    assert float(jnp.abs(x1 - x0).max()) > 0.5
    np.testing.assert_allclose(back, x0, atol=5e-4)


def test_bad_arguments_name_the_argument():
    x0 = jnp.zeros((2, 2))
    cases = [
        (dict(method="rk45"), "unknown method 'rk45'"),
        (dict(method="dopri5"), "unknown method 'dopri5'"),  # adaptive: use solvers.sample
        (dict(num_steps=0), "num_steps must be a positive int"),
        (dict(num_steps=2.5), "num_steps must be a positive int"),
        (dict(t0=0.5, t1=0.5), "t0 and t1 must differ"),
        (dict(t1=jnp.ones(2)), "t1 must be a scalar time"),
        (dict(ts=jnp.zeros((2, 3))), "ts must be a 1-D time grid"),
        (dict(ts=jnp.zeros(1)), "at least 2 points"),
        (dict(ts=jnp.array([0.0, 0.5, 0.3, 1.0])), "ts must be strictly increasing or decreasing"),
        (dict(ts=jnp.array([1.0, 0.5, 0.5, 0.0])), "ts must be strictly increasing or decreasing"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            solvers.fixed_step(_field, 1.0, x0, **kwargs)
    with pytest.raises(ValueError, match="x0 must have shape"):
        solvers.fixed_step(_field, 1.0, jnp.zeros(3))
    with pytest.raises(ValueError, match="ts must be a 1-D time grid"):  # shapes are static
        jax.jit(lambda ts: solvers.fixed_step(_field, 1.0, x0, ts=ts))(jnp.zeros((3, 1)))


def test_jit_and_grad_through_params_and_x0(target):
    """Euler on dx/dt = p x gives y = (1 + p h)^n x0; rk4's gradients equal Diffrax's."""
    p, n, x0 = -0.7, 8, jnp.array([[1.0, 2.0], [-0.5, 0.25]])

    def loss(p, x0):
        return jnp.sum(solvers.fixed_step(lambda p, x, t: p * x, p, x0, num_steps=n).y)

    value, (dp, dx0) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(p, x0)
    growth = 1 + p / n
    np.testing.assert_allclose(value, growth**n * x0.sum(), rtol=1e-6)
    np.testing.assert_allclose(dp, growth ** (n - 1) * x0.sum(), rtol=1e-5)
    np.testing.assert_allclose(dx0, jnp.full_like(x0, growth**n), rtol=1e-6)

    v = target.velocity(paths.CondOT())
    z = jax.random.normal(jax.random.key(4), (8, 2))

    def energy(solve):
        return lambda mu, z: jnp.sum(solve(v, mu, z, method="rk4", num_steps=6).y ** 2)

    ours = jax.jit(jax.grad(energy(solvers.fixed_step), argnums=(0, 1)))(target.mu, z)
    ref = jax.grad(energy(solvers.sample), argnums=(0, 1))(target.mu, z)
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_vmap_over_keys_with_a_stochastic_hook():
    """A hook that folds the step index into a key: vmap over keys equals a loop over them."""
    x0 = jnp.zeros((3, 2))

    def draw(key):
        def hook(i, t, t_next, x, x_next):
            noise = jax.random.normal(jax.random.fold_in(key, i), x_next.shape)
            return x_next + jnp.sqrt(jnp.abs(t_next - t)) * noise

        return solvers.fixed_step(_field, -1.3, x0, method="midpoint", ts=GRID, hook=hook).y

    keys = jax.random.split(jax.random.key(5), 3)
    batched = jax.jit(jax.vmap(draw))(keys)
    np.testing.assert_allclose(batched, jnp.stack([draw(k) for k in keys]), atol=1e-6)
    assert float(jnp.abs(batched[0] - batched[1]).min()) > 1e-3  # the keys do differ
    assert float(jnp.abs(batched[0]).min()) > 1e-3  # and the hook does act
