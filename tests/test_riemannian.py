"""Riemannian flow matching pieces: sampling on a manifold (projected Runge-Kutta, geodesic
Euler) against flows known in closed form, likelihoods of divergence-free fields under uniform
bases, and the metric loss against a closed-form expectation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import couplings, losses, manifolds, ot, paths, solvers, sources
from flowjax.contracts import DataSpec, SamplerSettings
from flowjax.families import RFM, RFMConfig

S2, T3 = manifolds.Sphere(2), manifolds.FlatTorus(3)
SO3, H2 = manifolds.SO3(), manifolds.Hyperbolic(2)
OMEGA = jnp.array([0.3, -1.1, 0.7])  # a rotation about OMEGA by |OMEGA| radians per unit time


def rotation(params, x, t):
    del params, t
    return jnp.cross(jnp.broadcast_to(OMEGA, x.shape), x)


def rotated(x, angle_scale=1.0):
    """Rodrigues' formula: x rotated about OMEGA by |OMEGA| * angle_scale."""
    theta = jnp.linalg.norm(OMEGA) * angle_scale
    k = OMEGA / jnp.linalg.norm(OMEGA)
    kx = jnp.cross(jnp.broadcast_to(k, x.shape), x)
    return x * jnp.cos(theta) + kx * jnp.sin(theta) + k * (x @ k)[:, None] * (1 - jnp.cos(theta))


def test_projected_rk4_integrates_a_rotation_to_1e_5_and_euler_converges_at_order_one():
    x0 = S2.uniform(jax.random.key(0), (128,))
    exact = rotated(x0)
    sol = solvers.manifold_sample(rotation, None, x0, manifold=S2, method="rk4", num_steps=50)
    assert float(jnp.abs(sol.y - exact).max()) < 1e-5 and int(sol.stats.nfe_batch) == 200
    errors = [
        float(
            S2.dist(
                solvers.manifold_sample(rotation, None, x0, manifold=S2, num_steps=n).y, exact
            ).max()
        )
        for n in (50, 100, 200)
    ]
    assert 1.8 < errors[0] / errors[1] < 2.2 and 1.8 < errors[1] / errors[2] < 2.2
    np.testing.assert_allclose(jnp.linalg.norm(sol.y, axis=-1), 1.0, atol=1e-6)


def test_the_family_s_adaptive_sampler_integrates_a_rotation_to_1e_4():
    family = RFM(RFMConfig(nll_rtol=1e-6), DataSpec((3,), manifold="sphere"))
    sampler = family.sampler(SamplerSettings(method="dopri5"))
    x, stats = sampler(rotation, None, jax.random.key(0), 64, {})
    x0 = family.source.sample(jax.random.key(0), (64, 3))
    np.testing.assert_allclose(x, rotated(x0), atol=1e-4)
    np.testing.assert_allclose(jnp.linalg.norm(x, axis=-1), 1.0, atol=1e-6)
    assert int(stats.nfe_batch) > 6  # adaptive steps, counted


def test_the_family_s_hutchinson_likelihood_agrees_with_the_exact_one():
    def drift(params, x, t):  # a gradient field on S^2 once made tangent: divergence != 0
        return jnp.broadcast_to(jnp.array([0.0, 0.0, 1.5]), x.shape)

    x1 = {"x1": S2.uniform(jax.random.key(1), (512,))}
    scores = {}
    for divergence in ("exact", "hutchinson"):
        family = RFM(RFMConfig(nll_divergence=divergence), DataSpec((3,), manifold="sphere"))
        scores[divergence] = float(
            family.evaluators(None)["nll"](drift, None, jax.random.key(2), x1)["nll"]
        )
    assert abs(scores["exact"] - math.log(4 * math.pi)) > 0.1  # the field changes the density
    assert scores["hutchinson"] == pytest.approx(scores["exact"], abs=0.05)


def spin(params, x, t):
    """The field R hat(OMEGA) on SO(3), whose flow is R exp(t hat(OMEGA)) (a right
    translation, which keeps the Haar law)."""
    del params, t
    r = x.reshape(*x.shape[:-1], 3, 3)
    return (r @ _hat(OMEGA)).reshape(x.shape)


def _hat(w):
    return jnp.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])


def test_projected_rk4_integrates_a_rotation_of_frames_to_1e_5():
    x0 = SO3.uniform(jax.random.key(30), (128,))
    exact = (x0.reshape(-1, 3, 3) @ jax.scipy.linalg.expm(_hat(OMEGA))).reshape(-1, 9)
    for step in solvers.STEPS:
        method, n = ("rk4", 50) if step == "project" else ("euler", 5)
        sol = solvers.manifold_sample(
            spin, None, x0, manifold=SO3, method=method, step=step, num_steps=n
        )
        assert float(jnp.abs(sol.y - exact).max()) < 1e-5, step  # geodesic steps: exact
        np.testing.assert_allclose(SO3.projx(sol.y), sol.y, atol=1e-6)


def test_geodesic_euler_is_exact_along_great_circles_and_on_the_torus():
    """On the rotation's equator the orbits are great circles, so exponential-map steps are
    exact; a constant field on the torus wraps exactly either way."""
    k = OMEGA / jnp.linalg.norm(OMEGA)
    w = S2.proju(k, jax.random.normal(jax.random.key(1), (16, 3)))
    equator = w / jnp.linalg.norm(w, axis=-1, keepdims=True)
    sol = solvers.manifold_sample(
        rotation, None, equator, manifold=S2, step="geodesic", num_steps=7
    )
    np.testing.assert_allclose(sol.y, rotated(equator), atol=1e-5)
    c = jnp.array([4.0, -2.5, 7.0])
    x0 = T3.uniform(jax.random.key(2), (16,))
    for step in solvers.STEPS:
        y = solvers.manifold_sample(
            lambda p, x, t: jnp.broadcast_to(c, x.shape),
            None,
            x0,
            manifold=T3,
            step=step,
            num_steps=3,
        ).y
        np.testing.assert_allclose(T3.dist(y, x0 + c), 0.0, atol=1e-5)
    with pytest.raises(ValueError, match="geodesic"):
        solvers.manifold_sample(rotation, None, equator, manifold=S2, step="geodesic", method="rk4")


@pytest.mark.parametrize(
    "manifold,field",
    [
        (S2, rotation),
        (T3, lambda p, x, t: jnp.broadcast_to(jnp.array([1.0, 2.0, -0.5]), x.shape)),
        (SO3, spin),
    ],
)
def test_divergence_free_fields_keep_the_uniform_density(manifold, field):
    """log p = -log 4 pi on S^2 under a rotation, -3 log 2 pi on T^3 under a constant field,
    -log 8 pi^2 on SO(3) under a right translation, after a full solve with the exact
    divergence of the tangent-projected field."""
    x1 = manifold.uniform(jax.random.key(3), (64,))
    logp, _ = solvers.log_likelihood(
        manifolds.tangent_field(field, manifold), None, x1, source=sources.ManifoldUniform(manifold)
    )
    np.testing.assert_allclose(logp, -manifold.log_volume, atol=1e-4)


def test_a_boost_carries_the_hyperbolic_wrapped_normal_to_the_boosted_one():
    """The Lorentz boost field (x_1, x_0, 0) on H^2 is an isometry's generator: its flow for
    unit time maps the wrapped normal at the apex to the one at the boosted apex (cosh 1,
    sinh 1, 0), so the likelihood by the exact divergence equals that density. (The ambient
    divergence is the Riemannian one only through the projection's Minkowski-normal
    derivative; the time-axis lift's derivative would miss it by a log x_0 term.)"""
    boost = lambda p, x, t: jnp.stack([x[..., 1], x[..., 0], jnp.zeros_like(x[..., 2])], -1)  # noqa: E731
    source = sources.WrappedNormal(H2, H2.origin, 0.6)
    target = sources.WrappedNormal(H2, jnp.array([math.cosh(1.0), math.sinh(1.0), 0.0]), 0.6)
    x1 = target.sample(jax.random.key(31), (256, 3))
    logp, _ = solvers.log_likelihood(manifolds.tangent_field(boost, H2), None, x1, source=source)
    np.testing.assert_allclose(logp, target.log_prob(x1), atol=2e-4)


def test_rfm_loss_of_the_zero_field_is_the_mean_squared_geodesic_distance():
    """With v = 0 (or a normal field, which the tangent projection removes) the loss is
    E ||dx_t||^2 = E d(x0, x1)^2; for independent uniform points on S^2 that is
    int_0^pi theta^2 sin(theta) / 2 dtheta = (pi^2 - 4) / 2."""
    source = sources.ManifoldUniform(S2)
    x1 = source.sample(jax.random.key(4), (40_000, 3))
    path = paths.GeodesicPath(S2)
    for field in (lambda p, x, t: jnp.zeros_like(x), lambda p, x, t: 3.0 * x):
        loss, aux = losses.rfm_loss(field, None, jax.random.key(5), x1, path=path, source=source)
        assert float(loss) == pytest.approx((math.pi**2 - 4) / 2, rel=0.02)
        assert float(aux["velocity_norm"]) == pytest.approx(float(loss), rel=1e-5)
    linear = lambda p, x, t: x @ p  # noqa: E731
    grads = jax.grad(
        lambda p: losses.rfm_loss(linear, p, jax.random.key(6), x1[:256], path=path, source=source)[
            0
        ]
    )(jnp.eye(3))
    assert np.isfinite(np.asarray(grads)).all()


def test_manifold_uniform_source():
    source = sources.ManifoldUniform(manifolds.Product((S2, manifolds.FlatTorus(2))))
    x = source.sample(jax.random.key(7), (10, 4, 5))
    assert x.shape == (10, 4, 5)
    np.testing.assert_allclose(jnp.linalg.norm(x[..., :3], axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(
        source.log_prob(x), -4 * (math.log(4 * math.pi) + 2 * math.log(2 * math.pi)), rtol=1e-6
    )
    with pytest.raises(ValueError, match="5 coordinates"):
        source.sample(jax.random.key(0), (10, 3))


@pytest.mark.parametrize(
    "manifold,scale",
    [
        (S2, 0.5),
        (S2, 2.0),
        (manifolds.FlatTorus(2), 0.5),
        (manifolds.FlatTorus(2), 3.0),
        (SO3, 0.6),
        (SO3, 1.5),
    ],
)
def test_wrapped_normal_density_integrates_to_one_and_matches_its_samples(manifold, scale):
    """Under the uniform law, E[p / u] = 1 (the wraps summed: scale 2 on S^2 and 3 on T^2
    put much of the mass past the first winding), and E[cos d(mean, x)] from the samples
    equals the density-weighted uniform average."""
    mean = manifold.uniform(jax.random.key(8), ())
    source = sources.WrappedNormal(manifold, mean, scale)
    u = manifold.uniform(jax.random.key(9), (400_000,))
    weight = jnp.exp(source.log_prob(u[:, None]) + manifold.log_volume)
    assert float(weight.mean()) == pytest.approx(
        1.0, abs=0.005
    )  # one winding: 0.993 on S^2, scale 2
    x = source.sample(jax.random.key(10), (400_000, manifold.ambient_dim))
    np.testing.assert_allclose(manifold.projx(x), x, atol=1e-5)
    by_samples = jnp.cos(manifold.dist(mean, x)).mean()
    by_density = (weight * jnp.cos(manifold.dist(mean, u))).mean()
    assert float(by_samples) == pytest.approx(float(by_density), abs=0.01)


def test_hyperbolic_wrapped_normal_density_integrates_to_one_and_matches_its_samples():
    """With the apex's wrapped normal as the proposal, E_q[p / q] = 1 for another wrapped
    normal p, and E_q[r^2] = d scale^2 for the distance r to the apex."""
    h3 = manifolds.Hyperbolic(3)
    proposal = sources.WrappedNormal(h3, h3.origin, 1.0)
    mean = h3.expmap(h3.origin, jnp.array([0.0, 0.3, -0.2, 0.1]))
    x = proposal.sample(jax.random.key(32), (400_000, 4))
    np.testing.assert_allclose(h3.projx(x), x, rtol=1e-5)  # on the upper sheet
    weight = jnp.exp(sources.WrappedNormal(h3, mean, 0.7).log_prob(x) - proposal.log_prob(x))
    assert float(weight.mean()) == pytest.approx(1.0, abs=0.01)
    assert float(jnp.mean(h3.dist(h3.origin, x) ** 2)) == pytest.approx(3.0, rel=0.01)


@pytest.mark.parametrize("manifold", [S2, manifolds.FlatTorus(2), SO3])
def test_ot_coupling_with_the_geodesic_cost_is_optimal(manifold):
    """Minibatch OT under `ot.geodesic_cost` pairs the batch with the assignment scipy finds
    on the same squared-geodesic cost matrix (equal totals; the auction within its bound),
    well below the independent pairing."""
    from scipy.optimize import linear_sum_assignment

    x0 = manifold.uniform(jax.random.key(40), (64,))
    x1 = manifold.uniform(jax.random.key(41), (64,))
    cost = ot.geodesic_cost(manifold)
    matrix = np.asarray(cost(x0, x1), np.float64)
    np.testing.assert_allclose(matrix[3, 5], float(manifold.dist(x0[3], x1[5])) ** 2, rtol=1e-5)
    rows, cols = linear_sum_assignment(matrix)
    optimum = matrix[rows, cols].sum()
    a, b, _ = couplings.ot_coupling("exact", cost=cost)(jax.random.key(42), x0, x1)
    assert float(jnp.sum(manifold.dist(a, b) ** 2)) == pytest.approx(optimum, rel=1e-4)
    a, b, _ = couplings.ot_coupling("auction", cost=cost)(jax.random.key(42), x0, x1)
    bound = 64 * 5e-3 * matrix.mean()  # the auction's guarantee: n eps mean(cost)
    assert optimum - 1e-3 <= float(jnp.sum(manifold.dist(a, b) ** 2)) <= optimum + bound
    assert optimum < 0.5 * np.trace(matrix)


def test_rfm_loss_with_an_ot_coupling_sees_shorter_geodesics():
    """With OT pairs the zero field's loss, the mean squared geodesic length, drops below the
    independent pairs' (pi^2 - 4) / 2 on S^2."""
    source = sources.ManifoldUniform(S2)
    x1 = sources.WrappedNormal(S2, S2.origin, 0.5).sample(jax.random.key(43), (512, 3))
    path, zero = paths.GeodesicPath(S2), lambda p, x, t: jnp.zeros_like(x)
    coupling = couplings.ot_coupling("exact", cost=ot.geodesic_cost(S2))
    paired, _ = losses.rfm_loss(
        zero, None, jax.random.key(44), x1, path=path, source=source, coupling=coupling
    )
    independent, _ = losses.rfm_loss(zero, None, jax.random.key(44), x1, path=path, source=source)
    assert float(paired) < 0.6 * float(independent)
