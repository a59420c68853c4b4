"""Triangle meshes as premetric manifolds: the cotangent Laplacian's spectrum against the
sphere's, the closest-point projection against a float64 reference over every face, uniform
sampling by area, the spectral distance, premetric paths (the geodesic path for the sphere's
own distance; d(x_t, x1) = (1 - t) d(x0, x1) on a mesh), the premetric loss's bookkeeping,
the continuous projection (the identity on a face's vectors; a vector's images in two faces
sharing an edge agree once unfolded), likelihoods that integrate to one where those of the
orthogonal projection do not, and the family's choices on a mesh."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import losses, manifolds, paths, solvers, sources
from flowjax.contracts import DataSpec, SamplerSettings
from flowjax.families import RFM, RFMConfig
from flowjax.manifolds import mesh

MESH = mesh.generated("bumpy_sphere")


def test_icosphere_and_the_cotangent_laplacian_spectrum():
    vertices, faces = mesh.icosphere(3)
    assert vertices.shape == (642, 3) and faces.shape == (1280, 3)
    np.testing.assert_allclose(np.linalg.norm(vertices, axis=-1), 1.0, atol=1e-12)
    laplacian, mass = mesh.cotangent_laplacian(vertices, faces)
    np.testing.assert_allclose(laplacian.sum(1), 0.0, atol=1e-10)  # constants in the kernel
    assert abs(mass.sum() - 4 * np.pi) < 0.01 * 4 * np.pi
    values, functions = mesh.laplacian_eigenpairs(vertices, faces, 15)
    exact = np.repeat([2.0, 6.0, 12.0], [3, 5, 7])  # l (l + 1), 2 l + 1 times, l = 1, 2, 3
    np.testing.assert_allclose(values, exact, rtol=0.02)
    np.testing.assert_allclose(functions.T @ (mass[:, None] * functions), np.eye(15), atol=1e-6)
    # degenerate eigenvalues: the same basis on every call (a fixed start vector)
    np.testing.assert_array_equal(mesh.laplacian_eigenpairs(vertices, faces, 15)[1], functions)
    with pytest.raises(ValueError, match="num_eigs"):
        mesh.laplacian_eigenpairs(vertices, faces, 641)


def _reference_closest(p: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Squared distance from each point `[N, 3]` to the surface, in float64 by dense sampling
    of each nearby face's barycentric coordinates refined by a clipped least squares."""
    best = np.full(len(p), np.inf)
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 41), np.linspace(0, 1, 41)), -1).reshape(-1, 2)
    grid = grid[grid.sum(-1) <= 1]
    bary = np.concatenate([1 - grid.sum(-1, keepdims=True), grid], -1)  # [G, 3]
    for tri in corners:
        samples = bary @ tri  # [G, 3]
        d = ((p[:, None] - samples[None]) ** 2).sum(-1).min(-1)
        best = np.minimum(best, d)
    return best


def test_closest_point_is_the_nearest_point_of_the_surface():
    key = jax.random.key(0)
    on = MESH.uniform(key, (200,))
    np.testing.assert_allclose(MESH.projx(on), on, atol=2e-6)  # points of the surface stay
    off = on + 0.05 * jax.random.normal(jax.random.key(1), on.shape)
    point, face = MESH.locate(off)
    np.testing.assert_allclose(MESH.projx(point), point, atol=2e-6)  # idempotent
    ours = np.sum((np.asarray(off) - np.asarray(point)) ** 2, -1)
    corners = np.asarray(MESH.vertices, np.float64)[np.asarray(MESH.faces)]
    near = np.unique(np.asarray(MESH.neighbours)[np.asarray(face)])
    reference = _reference_closest(np.asarray(off, np.float64), corners[near])
    assert np.all(ours <= reference + 1e-6)  # no point of those faces is nearer
    assert np.all(reference - ours < 2e-4)  # the grid's resolution
    # the face found holds the point: barycentric coordinates in [0, 1]
    tri = corners[np.asarray(face)]
    bary = np.asarray(mesh.barycentric(point, *np.unstack(tri.astype(np.float32), axis=-2)))
    assert bary.min() > -1e-4


def test_uniform_sampling_is_by_area_and_the_volume_is_the_area():
    points = MESH.uniform(jax.random.key(2), (40_000,))
    _, face = MESH.locate(points)
    corners = np.asarray(MESH.vertices, np.float64)[np.asarray(MESH.faces)]
    areas = 0.5 * np.linalg.norm(
        np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=-1
    )
    np.testing.assert_allclose(float(MESH.log_volume), np.log(areas.sum()), rtol=1e-6)
    octant = (corners.mean(1) > 0) @ np.array([1, 2, 4])  # each face's octant
    expected = np.bincount(octant, areas, minlength=8) / areas.sum()
    observed = np.bincount(octant[np.asarray(face)], minlength=8) / len(face)
    np.testing.assert_allclose(observed, expected, atol=0.01)  # ~4 standard errors
    assert float(jnp.exp(MESH.log_volume)) > 4 * np.pi  # the bumps add area


def test_spectral_distance_is_a_finite_differentiable_premetric():
    x, y = MESH.uniform(jax.random.key(3), (2, 64))
    d = MESH.dist(x, y)
    np.testing.assert_allclose(d, MESH.dist(y, x), rtol=1e-5)
    assert np.all(d > 0) and np.all(MESH.dist(x, x) == 0.0)
    g = jax.grad(lambda z: MESH.dist(z, y).sum())(x)
    normals = MESH.normals[MESH.locate(x)[1]]
    np.testing.assert_allclose(jnp.sum(g * normals, -1), 0.0, atol=1e-5)  # tangent
    assert np.all(np.isfinite(jax.grad(lambda z: MESH.dist(z, x).sum())(x)))  # at d = 0
    ones = jax.jvp(lambda z: MESH.dist(z, x), (x,), (jnp.ones_like(x),))[1]
    assert np.all(np.isfinite(ones))
    # biharmonic distances grow with geodesic separation: nearby points are nearer
    near = MESH.projx(x + 0.02 * MESH.tangent_normal(jax.random.key(4), x))
    assert np.all(MESH.dist(x, near) < d)
    with pytest.raises(ValueError, match="metric"):
        mesh.TriangleMesh.spectral(*mesh.icosphere(1), num_eigs=4, metric="heat")


def test_premetric_path_of_the_geodesic_distance_is_the_geodesic_path():
    sphere = manifolds.Sphere(2)
    k0, k1, kt = jax.random.split(jax.random.key(5), 3)
    x0, x1 = sphere.uniform(k0, (64,)), sphere.uniform(k1, (64,))
    t = jax.random.uniform(kt, (64,))
    geodesic = paths.GeodesicPath(sphere).sample(x0, x1, t)
    premetric = paths.PremetricPath(sphere, steps=100).sample(x0, x1, t)
    np.testing.assert_allclose(premetric.x_t, geodesic.x_t, atol=1e-3)
    np.testing.assert_allclose(premetric.dx_t, geodesic.dx_t, atol=2e-3)
    grid = jnp.linspace(0.0, 0.9, 91)
    times, trajectory = paths.PremetricPath(sphere).trajectory(x0, x1, grid)
    assert times.shape == (91, 64) and trajectory.x_t.shape == (91, 64, 3)
    exact = jax.vmap(lambda s: paths.GeodesicPath(sphere).sample(x0, x1, s).x_t)(grid)
    np.testing.assert_allclose(trajectory.x_t, exact, atol=1e-3)


def test_premetric_path_on_the_mesh_shrinks_the_distance_linearly():
    k0, k1, kt = jax.random.split(jax.random.key(6), 3)
    x0, x1 = MESH.uniform(k0, (64,)), MESH.uniform(k1, (64,))
    t = jax.random.uniform(kt, (64,), maxval=0.95)
    path = paths.PremetricPath(MESH, steps=100)
    sample = path.sample(x0, x1, t)
    d0, dt = MESH.dist(x0, x1), MESH.dist(sample.x_t, x1)
    np.testing.assert_allclose(dt, (1 - t) * d0, atol=0.03 * float(d0.max()))
    np.testing.assert_allclose(MESH.projx(sample.x_t), sample.x_t, atol=2e-6)
    normals = MESH.normals[MESH.locate(sample.x_t)[1]]
    np.testing.assert_allclose(jnp.sum(sample.dx_t * normals, -1), 0.0, atol=1e-4)
    # d/dt d(x_t, x1) = -d0 along the target velocity
    rate = jax.jvp(lambda z: MESH.dist(z, x1), (sample.x_t,), (sample.dx_t,))[1]
    np.testing.assert_allclose(rate, -d0, rtol=1e-3, atol=1e-4)
    end = path.sample(x0, x1, jnp.ones(64)).x_t
    assert float(jnp.max(MESH.dist(end, x1))) < 0.05 * float(d0.mean())


def test_faces_across_each_edge_share_it():
    faces = np.asarray(MESH.faces)
    adjacent = np.asarray(MESH.adjacent)
    for k in range(3):
        edge = np.sort(faces[:, [(k + 1) % 3, (k + 2) % 3]], -1)
        across = faces[adjacent[:, k]]
        shared = (across[:, :, None] == edge[:, None, :]).any(1).all(-1)
        assert shared.all() and np.all(adjacent[:, k] != np.arange(len(faces)))
    assert np.all((adjacent[adjacent] == np.arange(len(faces))[:, None, None]).any(-1))
    with pytest.raises(ValueError, match="not closed"):
        mesh.face_adjacency(np.array([[0, 1, 2]]))


def test_projection_is_onto_the_face_and_continuous_across_edges():
    x = MESH.uniform(jax.random.key(11), (256,))
    face = MESH.locate(x)[1]
    n = MESH.normals[face]
    u = jax.random.normal(jax.random.key(12), x.shape)
    pu = MESH.proju(x, u)
    np.testing.assert_allclose(jnp.sum(pu * n, -1), 0.0, atol=1e-5)  # in the face's plane
    np.testing.assert_allclose(MESH.proju(x, pu), pu, atol=1e-5)  # the identity there
    z = MESH.tangent_normal(jax.random.key(13), x)  # orthogonal, N(0, I) on the plane
    np.testing.assert_allclose(jnp.sum(z * n, -1), 0.0, atol=1e-5)
    # either side of the edge opposite corner 0 of some faces, 2e-5 from it
    faces = np.arange(0, 1280, 5)
    corners = np.asarray(MESH.vertices)[np.asarray(MESH.faces)[faces]]  # [P, 3, 3]
    across = np.asarray(MESH.adjacent)[faces, 0]
    far = np.asarray(MESH.vertices)[np.asarray(MESH.faces)[across]].mean(1)  # inside it
    middle = 0.5 * (corners[:, 1] + corners[:, 2])
    e = corners[:, 2] - corners[:, 1]
    e /= np.linalg.norm(e, axis=-1, keepdims=True)

    def inward(point):  # the unit direction from the edge into the face of `point`
        w = point - middle
        w -= np.sum(w * e, -1, keepdims=True) * e
        return w / np.linalg.norm(w, axis=-1, keepdims=True)

    into_f, into_g = inward(corners[:, 0]), inward(far)
    u = np.asarray(jax.random.normal(jax.random.key(14), middle.shape))
    pf = np.asarray(MESH.proju(jnp.asarray(middle + 2e-5 * into_f), u))
    pg = np.asarray(MESH.proju(jnp.asarray(middle + 2e-5 * into_g), u))
    np.testing.assert_allclose(np.sum(pf * e, -1), np.sum(pg * e, -1), atol=1e-3)
    # the flux out of f is the flux into g: no density jump
    np.testing.assert_allclose(-np.sum(pf * into_f, -1), np.sum(pg * into_g, -1), atol=1e-3)
    # the orthogonal projections differ there by the ambient vector's normal component
    n_f, n_g = (np.asarray(MESH.normals)[i] for i in (faces, across))
    ortho_f = u - np.sum(u * n_f, -1, keepdims=True) * n_f
    ortho_g = u - np.sum(u * n_g, -1, keepdims=True) * n_g
    jump = np.abs(np.sum(ortho_f * into_f, -1) + np.sum(ortho_g * into_g, -1))
    assert np.median(jump) > 0.02


def _rotation_and_radial(params, x, t):
    """A rotation (tilted axis) and a radial field of strength `params`: a large component
    normal to the surface."""
    del t
    return 3.0 * jnp.cross(jnp.array([0.3, 0.0, 1.0]), x) + params * x * (1 + x[:, :1])


def _orthogonal(v):
    """`v` projected orthogonally onto the face of each point (the RFM code's tangent field)."""

    def field(params, x, t):
        on, face = MESH.locate(x)
        n = MESH.normals[face]
        out = v(params, on, t)
        return out - jnp.sum(out * n, -1, keepdims=True) * n

    return field


def test_likelihood_integrates_to_one_where_the_orthogonal_projection_does_not():
    source = sources.ManifoldUniform(MESH)
    x = MESH.uniform(jax.random.key(21), (2000,))
    area = float(jnp.exp(MESH.log_volume))

    def integral(field):
        logq, _ = jax.jit(
            lambda x: solvers.log_likelihood(
                field, 0.3, x, source=source, method="rk4", num_steps=50
            )
        )(x)
        q = np.exp(np.asarray(logq, np.float64)) * area
        return q.mean(), q.std() / np.sqrt(len(q))

    mean, error = integral(manifolds.tangent_field(_rotation_and_radial, MESH))
    assert abs(mean - 1) < 3 * error and error < 0.02
    # the divergence within the faces misses the orthogonal projection's jumps at the edges
    assert integral(_orthogonal(_rotation_and_radial))[0] < 0.7


@pytest.mark.slow
def test_premetric_loss_counts_every_grid_point():
    source = sources.ManifoldUniform(MESH)
    x1 = MESH.uniform(jax.random.key(7), (16,))
    path = paths.PremetricPath(MESH)

    def zero(params, x, t):
        return jnp.zeros_like(x)

    loss, aux = losses.premetric_rfm_loss(
        zero, None, jax.random.key(8), x1, path=path, source=source, times=6
    )
    np.testing.assert_allclose(loss, aux["velocity_norm"], rtol=1e-6)  # ||0 - u||^2 = ||u||^2

    def exact(params, x, t):  # the target itself at the grid's points: zero loss
        _, k_source = jax.random.split(jax.random.key(8))  # the loss's source key
        x0 = source.sample(k_source, x1.shape, x1.dtype)
        d0 = MESH.dist(x0, x1)
        index = jnp.arange(x.shape[0]) % 16
        return path.velocity(x, x1[index], d0[index], t)

    loss, _ = losses.premetric_rfm_loss(
        exact, None, jax.random.key(8), x1, path=path, source=source, times=6
    )
    # (not zero: a point on an edge has a target on either face, the gradient of a piecewise
    # linear embedding jumps there, and re-locating it may choose the other face)
    assert float(loss) < 1e-2 * float(aux["velocity_norm"])


def test_rfm_family_on_the_mesh_samples_on_it_and_refuses_what_it_has_not():
    data = DataSpec(event_shape=(3,), manifold="bumpy_sphere")
    family = RFM(RFMConfig(premetric_times=4), data)
    assert isinstance(family.path, paths.PremetricPath)

    def field(params, x, t):
        return jnp.cross(jnp.array([0.0, 0.0, 1.0]), x)  # a rotation about z

    sampler = family.sampler(SamplerSettings(method="euler", steps=10))
    samples, stats = sampler(field, None, jax.random.key(9), 32, {})
    np.testing.assert_allclose(MESH.projx(samples), samples, atol=2e-6)
    assert stats.nfe_batch == 10
    # a zero field keeps the uniform law: log p = -log(area)
    zero = family.evaluators(SamplerSettings(""))["nll"](
        lambda p, x, t: jnp.zeros_like(x), None, jax.random.key(0), {"x1": samples}
    )
    np.testing.assert_allclose(zero["nll"], float(MESH.log_volume), rtol=1e-6)
    fixed = RFM(RFMConfig(nll_method="rk4", nll_steps=7), data)
    assert (
        fixed.evaluators(SamplerSettings(""))["nll"](
            lambda p, x, t: jnp.zeros_like(x), None, jax.random.key(0), {"x1": samples}
        )["nll_nfe"]
        == 28
    )
    with pytest.raises(ValueError, match="no exponential map"):
        family.sampler(SamplerSettings(method="geodesic", steps=10))
    with pytest.raises(ValueError, match="no wrapped normal"):
        RFM(RFMConfig(source="wrapped_normal"), data)
    assert manifolds.by_name("bumpy_sphere", 3) is MESH
    with pytest.raises(ValueError, match="cannot have points"):
        manifolds.by_name("bumpy_sphere", 4)
