"""Manifolds and geodesic paths: the exp/log identities, distances as tangent norms,
projections, staying on the manifold, the singular points (coincident points, antipodes) with
finite values, gradients and jvps, closed forms, and products split and joined."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import manifolds, paths

MANIFOLDS = {
    "euclidean": manifolds.Euclidean(3),
    "sphere2": manifolds.Sphere(2),
    "sphere5": manifolds.Sphere(5),
    "torus3": manifolds.FlatTorus(3),
    "product": manifolds.Product(
        (manifolds.Sphere(2), manifolds.FlatTorus(2), manifolds.Euclidean(3))
    ),
    "so3": manifolds.SO3(),
    "hyperbolic3": manifolds.Hyperbolic(3),
    "so3xhyperbolic2": manifolds.Product((manifolds.SO3(), manifolds.Hyperbolic(2))),
}
HYPERBOLIC_SCALE = 0.5  # hyperbolic test points: within ~3 of the apex, where float32 holds


def points(m, key, n):
    """`[n, ambient_dim]` points of `m`: uniform where compact, Gaussian coordinates in R^d,
    a wrapped normal at the apex of a hyperboloid."""
    if isinstance(m, manifolds.Euclidean):
        return jax.random.normal(key, (n, m.ambient_dim))
    if isinstance(m, manifolds.Hyperbolic):
        o = jnp.broadcast_to(m.origin, (n, m.ambient_dim))
        return m.expmap(o, HYPERBOLIC_SCALE * m.tangent_normal(key, o))
    if isinstance(m, manifolds.Product):
        keys = jax.random.split(key, len(m.factors))
        return jnp.concatenate(
            [points(f, k, n) for f, k in zip(m.factors, keys, strict=True)], axis=-1
        )
    return m.uniform(key, (n,))


def same_point(m, x, y, atol):
    """x and y are the same point of m (angles compared modulo 2 pi)."""
    np.testing.assert_allclose(m.dist(x, y), 0.0, atol=atol)


def on_manifold(m, x, atol):
    np.testing.assert_allclose(m.projx(x), x, atol=atol)


@pytest.mark.parametrize("name", MANIFOLDS)
def test_exp_log_dist_and_projections(name):
    m = MANIFOLDS[name]
    x, y = points(m, jax.random.key(0), 256), points(m, jax.random.key(1), 256)
    u = m.logmap(x, y)
    same_point(m, m.expmap(x, u), y, 1e-4)
    np.testing.assert_allclose(m.dist(x, y), jnp.sqrt(m.inner(x, u, u)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.proju(x, u), u, rtol=1e-5, atol=1e-5)  # logmap is tangent
    w = jax.random.normal(jax.random.key(2), x.shape)
    np.testing.assert_allclose(m.proju(x, m.proju(x, w)), m.proju(x, w), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.projx(m.projx(10 * w)), m.projx(10 * w), atol=1e-5)
    np.testing.assert_allclose(m.dist(x, y), m.dist(y, x), rtol=1e-5, atol=1e-5)
    assert m.expmap(x, u).shape == x.shape and m.dist(x, y).shape == (256,)


@pytest.mark.parametrize("name", MANIFOLDS)
def test_points_stay_on_the_manifold_over_1000_steps(name):
    m = MANIFOLDS[name]
    x = points(m, jax.random.key(3), 64)

    def step(x, key):
        u = m.proju(x, 0.1 * jax.random.normal(key, x.shape))
        return m.expmap(x, u), None

    x, _ = jax.lax.scan(step, x, jax.random.split(jax.random.key(4), 1000))
    on_manifold(m, x, 1e-5)
    if isinstance(m, manifolds.Sphere):
        np.testing.assert_allclose(jnp.linalg.norm(x, axis=-1), 1.0, atol=1e-6)


@pytest.mark.parametrize("name", MANIFOLDS)
def test_coincident_points_are_finite_with_finite_derivatives(name):
    """At y = x: logmap is 0, dist 0, and their gradients and the path's jvp are finite."""
    m = MANIFOLDS[name]
    x = points(m, jax.random.key(5), 8)
    np.testing.assert_allclose(m.logmap(x, x), 0.0, atol=1e-6)
    np.testing.assert_allclose(m.dist(x, x), 0.0, atol=1e-6)
    for g in jax.grad(lambda a, b: m.dist(a, b).sum() + m.logmap(a, b).sum(), (0, 1))(x, x):
        assert np.isfinite(np.asarray(g)).all()
    zero = jnp.zeros_like(x)
    tangent = m.proju(x, jax.random.normal(jax.random.key(6), x.shape))
    y, dy = jax.jvp(lambda u: m.expmap(x, u), (zero,), (tangent,))
    same_point(m, y, x, 1e-6)
    np.testing.assert_allclose(dy, tangent, atol=1e-5)  # d exp_x at 0 is the identity


def test_sphere_antipodes_and_closed_forms():
    s2 = manifolds.Sphere(2)
    x = s2.uniform(jax.random.key(7), (32,))
    u = s2.logmap(x, -x)
    assert np.isfinite(np.asarray(u)).all()
    np.testing.assert_allclose(jnp.linalg.norm(u, axis=-1), math.pi, rtol=1e-6)
    np.testing.assert_allclose(jnp.sum(u * x, -1), 0.0, atol=1e-6)
    np.testing.assert_allclose(s2.expmap(x, u), -x, atol=1e-5)
    np.testing.assert_allclose(s2.dist(x, -x), math.pi, rtol=1e-6)
    grads = jax.grad(lambda a: s2.logmap(a, -a).sum() + s2.dist(a, -a).sum())(x)
    assert np.isfinite(np.asarray(grads)).all()
    # a rotation by theta about the z axis is the exponential of theta e_y at e_x
    theta = jnp.linspace(0.0, 3.0, 7)[:, None]
    e_x = jnp.broadcast_to(jnp.array([1.0, 0.0, 0.0]), (7, 3))
    rotated = jnp.concatenate([jnp.cos(theta), jnp.sin(theta), jnp.zeros_like(theta)], -1)
    np.testing.assert_allclose(
        s2.expmap(e_x, theta * jnp.array([0.0, 1.0, 0.0])), rotated, atol=1e-6
    )
    np.testing.assert_allclose(s2.dist(e_x, rotated), theta[:, 0], atol=1e-6)
    # near-coincident points keep full precision (arccos would lose half the digits)
    close = s2.expmap(e_x, jnp.array([[0.0, 1e-4, 0.0]]))
    np.testing.assert_allclose(s2.dist(e_x[:1], close), 1e-4, rtol=1e-4)


def test_torus_wraps_and_volumes():
    t2 = manifolds.FlatTorus(2)
    x = jnp.array([[0.1, 6.2]])
    y = jnp.array([[6.2, 0.1]])
    np.testing.assert_allclose(t2.logmap(x, y), [[6.1 - 2 * math.pi, 2 * math.pi - 6.1]], atol=1e-5)
    np.testing.assert_allclose(
        t2.dist(x, y), math.hypot(2 * math.pi - 6.1, 2 * math.pi - 6.1), rtol=1e-5
    )
    assert t2.log_volume == pytest.approx(2 * math.log(2 * math.pi))
    assert manifolds.Sphere(2).log_volume == pytest.approx(math.log(4 * math.pi))
    assert manifolds.Sphere(1).log_volume == pytest.approx(math.log(2 * math.pi))
    x = t2.uniform(jax.random.key(8), (10_000,))
    assert float(x.min()) >= 0.0 and float(x.max()) < 2 * math.pi
    np.testing.assert_allclose(jnp.mean(x, 0), math.pi, atol=0.06)


def test_product_splits_joins_and_sums_the_metric():
    s2, t2, r3 = manifolds.Sphere(2), manifolds.FlatTorus(2), manifolds.Euclidean(3)
    m = manifolds.Product((s2, t2, r3))
    assert (m.dim, m.ambient_dim) == (7, 8)
    x, y = points(m, jax.random.key(9), 16), points(m, jax.random.key(10), 16)
    parts_x, parts_y = m.split(x), m.split(y)
    assert [p.shape[-1] for p in parts_x] == [3, 2, 3]
    np.testing.assert_allclose(
        m.logmap(x, y),
        jnp.concatenate(
            [f.logmap(a, b) for f, a, b in zip(m.factors, parts_x, parts_y, strict=True)], -1
        ),
    )
    squared = sum(f.dist(a, b) ** 2 for f, a, b in zip(m.factors, parts_x, parts_y, strict=True))
    np.testing.assert_allclose(m.dist(x, y), jnp.sqrt(squared), rtol=1e-5)
    compact = manifolds.Product((s2, t2))
    assert compact.log_volume == pytest.approx(s2.log_volume + t2.log_volume)
    assert compact.uniform(jax.random.key(11), (4, 5)).shape == (4, 5, 5)
    with pytest.raises(ValueError, match="8 coordinates"):
        m.split(jnp.zeros((2, 7)))


@pytest.mark.parametrize("name", MANIFOLDS)
@pytest.mark.parametrize("scheduler", [paths.CondOT(), paths.Cosine()])
def test_geodesic_path_ends_velocity_and_speed(name, scheduler):
    """x_0 = x0, x_1 = x1, dx_t equals finite differences in t and is tangent; with kappa_t = t
    the speed is the distance."""
    m = MANIFOLDS[name]
    path = paths.GeodesicPath(m, scheduler)
    x0, x1 = points(m, jax.random.key(12), 64), points(m, jax.random.key(13), 64)
    same_point(m, path.sample(x0, x1, 0.0).x_t, x0, 1e-5)
    same_point(m, path.sample(x0, x1, 1.0).x_t, x1, 1e-4)
    t = jax.random.uniform(jax.random.key(14), (64,), minval=0.1, maxval=0.9)
    x_t, dx_t = path.sample(x0, x1, t)
    on_manifold(m, x_t, 1e-5)
    np.testing.assert_allclose(m.proju(x_t, dx_t), dx_t, atol=1e-4)
    h = 1e-3
    forward, backward = path.sample(x0, x1, t + h).x_t, path.sample(x0, x1, t - h).x_t
    difference = (m.logmap(x_t, forward) - m.logmap(x_t, backward)) / (2 * h)
    np.testing.assert_allclose(dx_t, difference, atol=2e-3, rtol=1e-3)
    if isinstance(scheduler, paths.CondOT):
        np.testing.assert_allclose(
            jnp.sqrt(m.inner(x_t, dx_t, dx_t)), m.dist(x0, x1), rtol=1e-3, atol=1e-4
        )


def test_geodesic_path_between_antipodes_is_finite():
    s2 = manifolds.Sphere(2)
    x0 = s2.uniform(jax.random.key(15), (16,))
    sample = paths.GeodesicPath(s2).sample(x0, -x0, 0.5)
    assert np.isfinite(np.asarray(sample.dx_t)).all()
    np.testing.assert_allclose(jnp.linalg.norm(sample.dx_t, axis=-1), math.pi, rtol=1e-5)
    np.testing.assert_allclose(jnp.sum(sample.x_t * x0, -1), 0.0, atol=1e-5)  # the equator


def rotation_z(theta):
    """`[n, 9]` rotations by the angles theta `[n]` about the z axis."""
    c, s, zero, one = jnp.cos(theta), jnp.sin(theta), jnp.zeros_like(theta), jnp.ones_like(theta)
    return jnp.stack([c, -s, zero, s, c, zero, zero, zero, one], -1)


def test_so3_closed_forms_antipodes_and_quaternions():
    so3 = manifolds.SO3()
    identity = jnp.broadcast_to(so3.origin, (7, 9))
    theta = jnp.linspace(0.0, 3.0, 7)
    generator = jnp.array([0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # hat(e_z)
    np.testing.assert_allclose(
        so3.expmap(identity, theta[:, None] * generator), rotation_z(theta), atol=1e-6
    )
    np.testing.assert_allclose(so3.dist(identity, rotation_z(theta)), theta, atol=1e-6)
    # the metric makes the distance the angle: |hat(e_z)| = 1
    assert float(so3.inner(identity[0], generator, generator)) == pytest.approx(1.0)
    # a relative angle of pi: finite logs of norm pi that reach the point, finite gradients
    x = so3.uniform(jax.random.key(20), (32,))
    flip = jnp.broadcast_to(rotation_z(jnp.array(math.pi)), (32, 9))
    y = (x.reshape(32, 3, 3) @ flip.reshape(32, 3, 3)).reshape(32, 9)
    u = so3.logmap(x, y)
    assert np.isfinite(np.asarray(u)).all()
    np.testing.assert_allclose(jnp.sqrt(so3.inner(x, u, u)), math.pi, rtol=1e-5)
    np.testing.assert_allclose(so3.expmap(x, u), y, atol=1e-5)
    np.testing.assert_allclose(so3.dist(x, y), math.pi, rtol=1e-6)
    grads = jax.grad(lambda a, b: so3.logmap(a, b).sum() + so3.dist(a, b).sum(), (0, 1))(x, y)
    assert all(np.isfinite(np.asarray(g)).all() for g in grads)
    # near-coincident rotations keep full precision
    close = so3.expmap(identity[:1], 1e-4 * generator)
    np.testing.assert_allclose(so3.dist(identity[:1], close), 1e-4, rtol=1e-4)
    # quaternions: a round trip, q and -q the same rotation, w >= 0, R(p q) = R(p) R(q)
    q = manifolds.to_quaternion(x)
    assert float(q[:, 0].min()) >= 0.0
    np.testing.assert_allclose(jnp.linalg.norm(q, axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(manifolds.from_quaternion(q), x, atol=1e-6)
    np.testing.assert_allclose(manifolds.from_quaternion(-q), x, atol=1e-6)
    half = jnp.array([math.cos(0.5), 0.0, 0.0, math.sin(0.5)])  # 1 radian about z
    z1 = rotation_z(jnp.array(1.0))
    np.testing.assert_allclose(manifolds.from_quaternion(half), z1, atol=1e-6)
    with pytest.raises(ValueError, match=r"\[\.\.\., 9\]"):
        so3.dist(jnp.zeros((2, 4)), jnp.zeros((2, 4)))


@pytest.mark.parametrize("spread", [0.1, 0.5])
def test_so3_projection_is_the_nearest_rotation(spread):
    """projx of a perturbed rotation equals the SVD's nearest rotation (U diag(1, 1, det) V^T);
    a matrix of negative determinant still maps to a rotation."""
    so3 = manifolds.SO3()
    m = so3.uniform(jax.random.key(21), (512,)) + spread * jax.random.normal(
        jax.random.key(22), (512, 9)
    )
    u, _, vt = np.linalg.svd(np.asarray(m, np.float64).reshape(-1, 3, 3))
    flip = np.ones((512, 3))
    flip[:, 2] = np.sign(np.linalg.det(u @ vt))
    nearest = ((u * flip[:, None, :]) @ vt).reshape(-1, 9)
    np.testing.assert_allclose(so3.projx(m), nearest, atol=1e-5)
    r = so3.projx(-jnp.eye(3).reshape(9) + 0.1 * jnp.arange(9.0) / 9)
    np.testing.assert_allclose(np.linalg.det(np.asarray(r).reshape(3, 3)), 1.0, atol=1e-5)


def test_hyperbolic_closed_forms():
    """On H^2, (cosh r, sinh r cos a, sinh r sin a) lies at distance r from the apex, reached
    by the exponential map of r (0, cos a, sin a); points stay on the upper sheet."""
    h2 = manifolds.Hyperbolic(2)
    r = jnp.linspace(0.0, 3.0, 7)[:, None]
    a = jnp.linspace(-3.0, 3.0, 7)[:, None]
    x = jnp.concatenate([jnp.cosh(r), jnp.sinh(r) * jnp.cos(a), jnp.sinh(r) * jnp.sin(a)], -1)
    apex = jnp.broadcast_to(h2.origin, x.shape)
    direction = jnp.concatenate([jnp.zeros_like(r), jnp.cos(a), jnp.sin(a)], -1)
    np.testing.assert_allclose(h2.dist(apex, x), r[:, 0], atol=1e-5)
    np.testing.assert_allclose(h2.expmap(apex, r * direction), x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h2.logmap(apex, x), r * direction, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(manifolds.minkowski(x, x), -1.0, atol=1e-4)
    # transport from the apex keeps norms and lands in the tangent space
    v = h2.transport_from_origin(x, direction)
    np.testing.assert_allclose(manifolds.minkowski(x, v), 0.0, atol=1e-4)
    np.testing.assert_allclose(h2.inner(x, v, v), 1.0, atol=1e-4)
    lifted = h2.projx(jnp.array([-5.0, 3.0, 4.0]))  # not time-like: lifted along x_0
    np.testing.assert_allclose(lifted, [math.sqrt(26), 3, 4], rtol=1e-6)


def test_manifolds_by_name():
    assert manifolds.by_name("so3", 9) == manifolds.SO3()
    assert manifolds.by_name("hyperbolic", 3) == manifolds.Hyperbolic(2)
    assert manifolds.by_name("sphere", 3) == manifolds.Sphere(2)
    with pytest.raises(ValueError, match="so3 cannot have points of 4"):
        manifolds.by_name("so3", 4)
    with pytest.raises(ValueError, match="sphere cannot have points of 1"):
        manifolds.by_name("sphere", 1)
    with pytest.raises(ValueError, match="unknown manifold"):
        manifolds.by_name("klein", 3)
