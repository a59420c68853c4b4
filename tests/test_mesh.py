"""Triangle meshes as premetric manifolds: the cotangent Laplacian's spectrum against the
sphere's, the closest-point projection against a float64 reference over every face, uniform
sampling by area, the spectral distance, premetric paths (the geodesic path for the sphere's
own distance; d(x_t, x1) = (1 - t) d(x0, x1) on a mesh), the premetric loss's bookkeeping,
walks face to face (the area change at an edge is the flux ratio; a walk and its reverse
cancel), likelihoods that integrate to one where the divergence within faces alone does not,
and the family's choices on a mesh."""

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


def _edge_crossing(face: int, k: int) -> tuple[np.ndarray, ...]:
    """A small triangle `[3, 3]` of points of `face` near its edge `k`, the face across and a
    constant ambient velocity that crosses the edge with a normal component."""
    start, e, out = (np.asarray(a[k]) for a in MESH.edges(jnp.asarray(face)))
    length = np.linalg.norm(np.asarray(MESH.vertices)[np.asarray(MESH.faces)[face]][k - 1] - start)
    middle = start + 0.5 * length * e - 0.02 * out
    points = middle + np.array([[0.0, 0.0], [0.01, -0.01], [-0.01, -0.01]]) @ np.stack([e, out])
    normal = np.asarray(MESH.normals[face])
    u = out + 0.3 * e + 0.5 * normal
    return points.astype(np.float32), int(MESH.adjacent[face, k]), u.astype(np.float32)


def test_walk_across_an_edge_changes_area_by_the_flux_ratio():
    for face, k in ((0, 0), (100, 1), (777, 2)):
        x, across, u = _edge_crossing(face, k)
        faces = jnp.full(3, face)
        y, end, log_area, stopped = MESH.walk(x, faces, jnp.tile(u, (3, 1)), jnp.full(3, 0.06))
        assert np.all(np.asarray(end) == across) and not np.any(stopped)
        # the map is affine on either side: the area of the image over that of the triangle
        area = [np.linalg.norm(np.cross(p[1] - p[0], p[2] - p[0])) for p in (x, np.asarray(y))]
        np.testing.assert_allclose(np.exp(log_area), area[1] / area[0], rtol=2e-4)
        _, e, out = (np.asarray(a[k]) for a in MESH.edges(jnp.asarray(face)))
        m = -np.asarray(MESH.edges(jnp.asarray(across))[2])  # into the face across
        m = m[np.argmax(np.abs(m @ e) < 1e-5)]  # its shared edge's: normal to e
        np.testing.assert_allclose(log_area, np.log((u @ m) / (u @ out)), rtol=1e-4)
        assert abs(float(log_area[0])) > 0.05  # the normal component made the jump matter
        n_g = np.asarray(MESH.normals[across])
        plane = np.asarray(MESH.vertices)[np.asarray(MESH.faces)[across, 0]]
        np.testing.assert_allclose((np.asarray(y) - plane) @ n_g, 0.0, atol=1e-6)


def test_a_walk_and_its_reverse_cancel_and_stay_on_the_surface():
    x = MESH.uniform(jax.random.key(11), (256,))
    x, face = MESH.locate(x)
    u = jnp.tile(jnp.array([0.3, -0.5, 1.0]), (256, 1)) + 0.2 * x  # many edges per walk
    y, end, forward, stopped = MESH.walk(x, face, u, jnp.full(256, 0.3))
    back, start, backward, stopped_back = MESH.walk(y, end, -u, jnp.full(256, 0.3))
    ok = ~np.asarray(stopped | stopped_back)
    assert ok.mean() > 0.9  # the rest stop where the field folds at an edge
    np.testing.assert_allclose(np.asarray(back)[ok], np.asarray(x)[ok], atol=2e-5)
    np.testing.assert_array_equal(np.asarray(start)[ok], np.asarray(face)[ok])
    np.testing.assert_allclose(np.asarray(forward + backward)[ok], 0.0, atol=1e-4)
    assert np.std(np.asarray(forward)[ok]) > 0.01
    np.testing.assert_allclose(MESH.projx(y), y, atol=2e-6)


def _rotation_and_radial(params, x, t):
    """A rotation (tilted axis) and a radial field of strength `params`: a large component
    normal to the surface."""
    del t
    return 3.0 * jnp.cross(jnp.array([0.3, 0.0, 1.0]), x) + params * x * (1 + x[:, :1])


def _rotation_and_radial_at(strength):
    return lambda params, x, t: _rotation_and_radial(strength, x, t)


def test_mesh_likelihood_integrates_to_one_where_the_face_divergence_does_not():
    source = sources.ManifoldUniform(MESH)
    x = MESH.uniform(jax.random.key(21), (4000,))
    area = float(jnp.exp(MESH.log_volume))

    def integral(method, steps):
        logq, stopped = jax.jit(
            lambda x: solvers.mesh_log_likelihood(
                _rotation_and_radial,
                0.3,
                x,
                mesh=MESH,
                source=source,
                method=method,
                num_steps=steps,
            )
        )(x)
        q = np.exp(np.asarray(logq, np.float64)) * area
        assert np.mean(stopped) < 0.01
        return q.mean(), q.std() / np.sqrt(len(q))

    mean, error = integral("midpoint", 250)
    assert abs(mean - 1) < 3 * error and error < 0.01
    # Euler's bias is first order: 2.5% low in 250 steps (the same points)
    assert integral("euler", 250)[0] < mean - 0.01
    # the divergence within the faces alone (the projected field's ambient divergence)
    field = manifolds.tangent_field(_rotation_and_radial, MESH)
    flat, _ = solvers.log_likelihood(field, 0.3, x, source=source, method="euler", num_steps=100)
    assert np.mean(np.exp(np.asarray(flat, np.float64)) * area) < 0.7
    # forward: the walk's log-determinant is the one the likelihood walks back
    x0 = x[:500]
    x1, log_det, _ = solvers.mesh_walk(_rotation_and_radial, 0.3, x0, mesh=MESH, num_steps=250)
    logp1, _ = solvers.mesh_log_likelihood(
        _rotation_and_radial, 0.3, x1, mesh=MESH, source=source, num_steps=250
    )
    agree = np.abs(np.asarray(logp1 + MESH.log_volume + log_det)) < 1e-3
    assert agree.mean() > 0.95  # the rest pass near a fold of the field, where steps diverge
    with pytest.raises(ValueError, match="walk method"):
        solvers.mesh_walk(_rotation_and_radial, 0.3, x0, mesh=MESH, method="rk4")


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
    assert zero["nll_stopped"] == 0 and zero["nll_nfe"] == 1000
    # the likelihood walks the mesh with the network's ambient field
    logp, _ = family.log_likelihood(_rotation_and_radial_at(0.3), None, None, samples)
    walked, _ = solvers.mesh_log_likelihood(
        _rotation_and_radial, 0.3, samples, mesh=MESH, source=family.source
    )
    np.testing.assert_allclose(logp, walked, rtol=1e-6)
    with pytest.raises(ValueError, match="no exponential map"):
        family.sampler(SamplerSettings(method="geodesic", steps=10))
    with pytest.raises(ValueError, match="no wrapped normal"):
        RFM(RFMConfig(source="wrapped_normal"), data)
    assert manifolds.by_name("bumpy_sphere", 3) is MESH
    with pytest.raises(ValueError, match="cannot have points"):
        manifolds.by_name("bumpy_sphere", 4)
