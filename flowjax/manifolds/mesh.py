"""A closed triangle mesh in R^3 as a premetric manifold (Chen & Lipman 2024, Sec. 3.2): a
piecewise-flat surface whose distance is spectral, from the eigenpairs of its cotangent
Laplacian, instead of geodesic.

Points are `[..., 3]` on the faces. `projx` is the closest point of the surface (every face
tried: Ericson's point-triangle test), `proju` removes the normal of that point's face. With
the eigenfunctions `phi_i` (mass-orthonormal, piecewise linear: barycentric on each face) and
eigenvalues `lambda_i` of `L phi = lambda M phi` (L the cotangent Laplacian, M the lumped mass),

    d(x, y)^2 = sum_i w(lambda_i) (phi_i(x) - phi_i(y))^2,

w = 1 / lambda^2 (biharmonic) or exp(-2 tau lambda) (diffusion, time tau). There is no
exponential map: paths on a mesh are premetric (`flowjax.paths.PremetricPath`).

A tangent field on a mesh is an ambient field projected onto each face. `proju` projects along
a normal that varies smoothly over each face and is, on each edge, the mean of its two faces'
normals: the images of a vector in two faces sharing an edge then have the same components
along the edge and across it (the faces unfolded), so a continuous ambient field gives a
continuous tangent field, whose flow has no fold and whose density no jump. The orthogonal
projection onto each face (the RFM code's) makes the field jump at every edge, and the density
it carries with it, which the divergence within faces does not see: such a likelihood does not
integrate to one (experiments/rfm_mesh).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from flowjax._utils import Array, check_choice, pytree_dataclass
from flowjax.manifolds.base import safe_norm

METRICS = ("biharmonic", "diffusion")
CHUNK = 1024  # points per pass over all faces in `TriangleMesh.locate`
AT_VERTEX = 1e-12  # weight of the face's own normal in `blended_normal` (alone at a corner)


@pytree_dataclass
class TriangleMesh:
    """A closed surface of `faces [F, 3]` (vertex indices) on `vertices [V, 3]` with the spectral
    embedding `eigenfunctions [V, K]` weighted by `weights [K]`, each face's `neighbours [F, N]`
    (the faces sharing a vertex with it) and `adjacent [F, 3]` (the face across the edge
    opposite each corner); `spectral` builds them."""

    vertices: Array
    faces: Array
    eigenfunctions: Array
    weights: Array
    neighbours: Array
    adjacent: Array

    @classmethod
    def spectral(
        cls,
        vertices: np.ndarray,
        faces: np.ndarray,
        num_eigs: int = 200,
        metric: str = "biharmonic",
        tau: float = 0.01,
    ) -> "TriangleMesh":
        """The mesh with the `metric` distance of its first `num_eigs` non-constant
        eigenpairs (`laplacian_eigenpairs`); `tau` is the diffusion time."""
        check_choice(metric, METRICS, "metric")
        values, functions = laplacian_eigenpairs(vertices, faces, num_eigs)
        weights = 1.0 / values**2 if metric == "biharmonic" else np.exp(-2.0 * tau * values)
        return cls(
            jnp.asarray(vertices, jnp.float32),
            jnp.asarray(faces, jnp.int32),
            jnp.asarray(functions, jnp.float32),
            jnp.asarray(weights, jnp.float32),
            jnp.asarray(face_neighbours(faces), jnp.int32),
            jnp.asarray(face_adjacency(faces), jnp.int32),
        )

    @property
    def dim(self) -> int:
        return 2

    @property
    def ambient_dim(self) -> int:
        return 3

    @property
    def origin(self) -> Array:
        return self.vertices[0]

    def _corners(self) -> tuple[Array, Array, Array]:
        """The faces' corners `[F, 3]` each."""
        corners = self.vertices[self.faces]
        return corners[:, 0], corners[:, 1], corners[:, 2]

    @property
    def areas(self) -> Array:
        """`[F]` face areas."""
        a, b, c = self._corners()
        return 0.5 * safe_norm(jnp.cross(b - a, c - a))

    @property
    def normals(self) -> Array:
        """`[F, 3]` unit face normals."""
        a, b, c = self._corners()
        n = jnp.cross(b - a, c - a)
        return n / safe_norm(n, keepdims=True)

    @property
    def log_volume(self) -> Array:
        """log of the total area: the uniform law's log-density is `-log_volume`."""
        return jnp.log(jnp.sum(self.areas))

    def locate(self, x: Array) -> tuple[Array, Array]:
        """The closest surface point `[..., 3]` of each `x [..., 3]` and its face `[...]`.

        Every face is scored by `_face_distances` (a few matrix products, chunks of `CHUNK`
        points; float32 rounding blurs distances below ~1e-3), then the exact closest points
        of the best face and its `neighbours` decide."""
        a, b, c = self._corners()
        flat = x.reshape(-1, 3)

        def nearest(p: Array) -> Array:
            return jnp.argmin(_face_distances(p, a, b, c))

        fixed = jax.lax.stop_gradient(flat)
        if flat.shape[0] <= CHUNK:
            coarse = jax.vmap(nearest)(fixed)
        else:
            coarse = jax.lax.map(nearest, fixed, batch_size=CHUNK)
        candidates = self.neighbours[coarse]  # [P, N]
        corners = self.vertices[self.faces[candidates]]  # [P, N, 3, 3]
        points = _closest_on_triangle(flat[:, None], *jnp.unstack(corners, axis=-2))
        best = jnp.argmin(jnp.sum((jax.lax.stop_gradient(points) - fixed[:, None]) ** 2, -1), -1)
        point = jnp.take_along_axis(points, best[:, None, None], axis=1)[:, 0]
        face = jnp.take_along_axis(candidates, best[:, None], axis=1)[:, 0]
        return point.reshape(x.shape), face.reshape(x.shape[:-1])

    def projx(self, x: Array) -> Array:
        return self.locate(x)[0]

    def proju(self, x: Array, u: Array) -> Array:
        """`u [..., 3]` projected onto the plane of `x`'s face along `blended_normal`: the
        identity on the face's vectors, continuous across edges (the module docstring)."""
        face = self.locate(x)[1]
        n, s = self.normals[face], self.blended_normal(x, face)
        return u - jnp.sum(n * u, -1, keepdims=True) / jnp.sum(n * s, -1, keepdims=True) * s

    @property
    def edge_normals(self) -> Array:
        """`[F, 3, 3]` at the edge opposite each corner of each face, the unit mean of the
        normals of its two faces."""
        mean = self.normals[:, None] + self.normals[self.adjacent]
        return mean / safe_norm(mean, keepdims=True)

    def blended_normal(self, x: Array, face: Array) -> Array:
        """`[..., 3]` at points `x [..., 3]` of faces `face [...]`, the edges' normals blended
        with the weights `b_{k+1} b_{k+2}` of barycentric coordinates `b` (on edge k the
        other two vanish): edge k's own normal on edge k, smooth within the face."""
        corners = self.vertices[self.faces[face]]
        b = barycentric(x, *jnp.unstack(corners, axis=-2))
        weights = jnp.roll(b, -1, axis=-1) * jnp.roll(b, -2, axis=-1)
        s = jnp.sum(weights[..., None] * self.edge_normals[face], -2)
        s = s + AT_VERTEX * self.normals[face]
        return s / safe_norm(s, keepdims=True)

    def inner(self, x: Array, u: Array, v: Array) -> Array:
        del x
        return jnp.sum(u * v, axis=-1)

    def embedding(self, x: Array) -> Array:
        """`[..., K]` the eigenfunctions at points `x [..., 3]` of the surface, interpolated
        linearly on their faces (differentiable in x within a face)."""
        face = self.locate(jax.lax.stop_gradient(x))[1]
        corners = self.vertices[self.faces[face]]  # [..., 3, 3]
        bary = barycentric(x, corners[..., 0, :], corners[..., 1, :], corners[..., 2, :])
        return jnp.sum(bary[..., None] * self.eigenfunctions[self.faces[face]], axis=-2)

    def dist(self, x: Array, y: Array) -> Array:
        """`[...]` the spectral distance between surface points."""
        return safe_norm(jnp.sqrt(self.weights) * (self.embedding(x) - self.embedding(y)))

    def uniform(self, key: Array, shape: tuple[int, ...]) -> Array:
        """`[*shape, 3]` uniform points by area."""
        return self.sample_faces(key, self.areas, shape)

    def sample_faces(self, key: Array, weights: Array, shape: tuple[int, ...]) -> Array:
        """`[*shape, 3]` points: a face with probability proportional to `weights [F]`, then a
        uniform point of it (a density constant on each face: `weights / areas`, normalized)."""
        k_face, k_bary = jax.random.split(key)
        face = jax.random.choice(k_face, self.faces.shape[0], shape, p=weights / jnp.sum(weights))
        r = jax.random.uniform(k_bary, (*shape, 2))
        s = jnp.sqrt(r[..., :1])
        bary = jnp.concatenate([1.0 - s, s * (1.0 - r[..., 1:]), s * r[..., 1:]], -1)
        return jnp.sum(bary[..., None] * self.vertices[self.faces[face]], axis=-2)

    def tangent_normal(self, key: Array, x: Array) -> Array:
        """`N(0, I)` on the plane of `x`'s face."""
        n = self.normals[self.locate(x)[1]]
        z = jax.random.normal(key, x.shape, x.dtype)
        return z - jnp.sum(n * z, -1, keepdims=True) * n


def barycentric(p: Array, a: Array, b: Array, c: Array) -> Array:
    """`[..., 3]` barycentric coordinates of the projection of `p` onto the plane of the
    triangles `a, b, c` (all `[..., 3]`)."""
    e0, e1, e2 = b - a, c - a, p - a
    d00, d01, d11 = (jnp.sum(u * v, -1) for u, v in ((e0, e0), (e0, e1), (e1, e1)))
    d20, d21 = jnp.sum(e2 * e0, -1), jnp.sum(e2 * e1, -1)
    denom = d00 * d11 - d01 * d01
    v = (d11 * d20 - d01 * d21) / denom
    w = (d00 * d21 - d01 * d20) / denom
    return jnp.stack([1.0 - v - w, v, w], -1)


def _face_distances(p: Array, a: Array, b: Array, c: Array) -> Array:
    """`[F]` squared distances from `p [3]` to the triangles `a, b, c [F, 3]`: to the plane
    where the projection falls inside, else to the nearest of the three edges. Written as
    products with p of per-face constants, so a batch of points is a few matrix products."""
    e0, e1, e2 = b - a, c - a, c - b
    n = jnp.cross(e0, e1)
    d00, d01, d11, d22 = (jnp.sum(u * v, -1) for u, v in ((e0, e0), (e0, e1), (e1, e1), (e2, e2)))
    d20 = e0 @ p - jnp.sum(a * e0, -1)  # <p - a, e0>
    d21 = e1 @ p - jnp.sum(a * e1, -1)
    d2b = e2 @ p - jnp.sum(b * e2, -1)  # <p - b, c - b>
    pp = jnp.sum(p * p)
    to_a = pp - 2 * (a @ p) + jnp.sum(a * a, -1)  # |p - a|^2
    to_b = pp - 2 * (b @ p) + jnp.sum(b * b, -1)
    denom = d00 * d11 - d01 * d01
    v, w = (d11 * d20 - d01 * d21) / denom, (d00 * d21 - d01 * d20) / denom
    plane = (n @ p - jnp.sum(a * n, -1)) ** 2 / jnp.sum(n * n, -1)

    def segment(along: Array, length: Array, base: Array) -> Array:
        r = jnp.clip(along / length, 0.0, 1.0)
        return base - 2 * r * along + r * r * length

    edges = jnp.minimum(segment(d20, d00, to_a), segment(d21, d11, to_a))
    edges = jnp.minimum(edges, segment(d2b, d22, to_b))
    return jnp.where((v >= 0) & (w >= 0) & (v + w <= 1), plane, edges)


def _closest_on_triangle(p: Array, a: Array, b: Array, c: Array) -> Array:
    """`[..., 3]` the closest point to `p` of the triangle `a, b, c` (all `[..., 3]`): its
    projection onto the plane when that falls inside, else the nearest point of the edges."""
    bary = barycentric(p, a, b, c)
    plane = jnp.sum(bary[..., None] * jnp.stack([a, b, c], -2), axis=-2)
    edges = []
    for start, end in ((a, b), (a, c), (b, c)):
        e = end - start
        r = jnp.sum((p - start) * e, -1, keepdims=True) / jnp.sum(e * e, -1, keepdims=True)
        edges.append(start + jnp.clip(r, 0.0, 1.0) * e)
    edges = jnp.stack(edges, -2)  # [..., 3 edges, 3]
    nearest = jnp.argmin(jnp.sum((edges - p[..., None, :]) ** 2, -1), axis=-1)
    edge = jnp.take_along_axis(edges, nearest[..., None, None], axis=-2)[..., 0, :]
    return jnp.where(jnp.all(bary >= 0, axis=-1, keepdims=True), plane, edge)


def face_neighbours(faces: np.ndarray) -> np.ndarray:
    """`[F, N]` for each face the faces that share a vertex with it, itself first (rows padded
    with itself to the longest)."""
    faces = np.asarray(faces)
    at_vertex: dict[int, set[int]] = {}
    for index, face in enumerate(faces):
        for vertex in face:
            at_vertex.setdefault(int(vertex), set()).add(index)
    rows = [
        [i, *sorted(set().union(*(at_vertex[int(v)] for v in f)) - {i})]
        for i, f in enumerate(faces)
    ]
    width = max(map(len, rows))
    return np.asarray([row + [row[0]] * (width - len(row)) for row in rows], np.int32)


def face_adjacency(faces: np.ndarray) -> np.ndarray:
    """`[F, 3]` for each face the face across the edge opposite each of its corners; every edge
    of a closed mesh has exactly two faces."""
    edges = [
        [tuple(sorted((int(f[(k + 1) % 3]), int(f[(k + 2) % 3])))) for k in range(3)]
        for f in np.asarray(faces)
    ]
    at_edge: dict[tuple, list[int]] = {}
    for index, row in enumerate(edges):
        for edge in row:
            at_edge.setdefault(edge, []).append(index)
    if any(len(sharing) != 2 for sharing in at_edge.values()):
        raise ValueError("the mesh is not closed: an edge has other than two faces")
    # the other of an edge's two faces: their sum less this one
    return np.asarray([[sum(at_edge[e]) - i for e in row] for i, row in enumerate(edges)], np.int32)


def cotangent_laplacian(
    vertices: np.ndarray, faces: np.ndarray
) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
    """The cotangent Laplacian `L [V, V]` (positive semi-definite: `L_ij = -(cot a_ij + cot
    b_ij) / 2` over the angles opposite edge ij) and the lumped mass `[V]` (a third of the
    adjacent faces' area per vertex)."""
    v, f = np.asarray(vertices, np.float64), np.asarray(faces)
    rows, cols, weights = [], [], []
    for k in range(3):  # the corner k, opposite the edge (i, j)
        i, j, o = f[:, (k + 1) % 3], f[:, (k + 2) % 3], f[:, k]
        u, w = v[i] - v[o], v[j] - v[o]
        cot = np.sum(u * w, -1) / np.linalg.norm(np.cross(u, w), axis=-1)
        rows += [i, j]
        cols += [j, i]
        weights += [0.5 * cot, 0.5 * cot]
    n = len(v)
    w = scipy.sparse.csr_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), (n, n)
    )
    laplacian = scipy.sparse.diags(np.asarray(w.sum(1)).ravel()) - w
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    areas = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=-1)
    mass = np.bincount(f.ravel(), np.repeat(areas / 3.0, 3), minlength=n)
    return laplacian.tocsr(), mass


def laplacian_eigenpairs(
    vertices: np.ndarray, faces: np.ndarray, num_eigs: int
) -> tuple[np.ndarray, np.ndarray]:
    """The `num_eigs` smallest non-zero eigenvalues `[K]` of `L phi = lambda M phi` and their
    mass-orthonormal eigenfunctions `[V, K]` (`scipy.sparse.linalg.eigsh`, shift-invert near
    zero, from a fixed start vector: a degenerate eigenvalue's basis is the same in every
    process; the constant function is dropped)."""
    laplacian, mass = cotangent_laplacian(vertices, faces)
    if not 0 < num_eigs < len(mass) - 1:
        raise ValueError(f"num_eigs must be in [1, {len(mass) - 2}], got {num_eigs}")
    start = np.random.default_rng(0).standard_normal(len(mass))  # the same basis every run
    values, functions = scipy.sparse.linalg.eigsh(
        laplacian, num_eigs + 1, scipy.sparse.diags(mass), sigma=-1e-3, which="LM", v0=start
    )
    order = np.argsort(values)[1:]
    return values[order], functions[:, order]


def icosphere(subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    """The unit icosphere: the icosahedron with each triangle split in four `subdivisions`
    times and the vertices pushed to the sphere (`10 * 4^s + 2` vertices, `20 * 4^s` faces)."""
    g = (1.0 + math.sqrt(5.0)) / 2.0
    v = [(-1, g, 0), (1, g, 0), (-1, -g, 0), (1, -g, 0), (0, -1, g), (0, 1, g)]
    v += [(0, -1, -g), (0, 1, -g), (g, 0, -1), (g, 0, 1), (-g, 0, -1), (-g, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4)]
    f += [(11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8)]
    f += [(3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    vertices = [np.asarray(p, np.float64) / np.linalg.norm(p) for p in v]
    faces = f
    for _ in range(subdivisions):
        midpoints: dict[tuple[int, int], int] = {}
        split = []
        for i, j, k in faces:
            a, b, c = (_midpoint(vertices, midpoints, *e) for e in ((i, j), (j, k), (k, i)))
            split += [(i, a, c), (j, b, a), (k, c, b), (a, b, c)]
        faces = split
    return np.stack(vertices), np.asarray(faces, np.int32)


def _midpoint(
    vertices: list[np.ndarray], midpoints: dict[tuple[int, int], int], i: int, j: int
) -> int:
    """The index of the unit vertex halfway between vertices i and j (appended once)."""
    key = (min(i, j), max(i, j))
    if key not in midpoints:
        m = vertices[i] + vertices[j]
        vertices.append(m / np.linalg.norm(m))
        midpoints[key] = len(vertices) - 1
    return midpoints[key]


def bumpy_sphere(
    subdivisions: int = 3, amplitude: float = 0.3, width: float = 0.08
) -> tuple[np.ndarray, np.ndarray]:
    """The icosphere with a bump at each of the icosahedron's 12 vertices: radius `1 +
    amplitude * sum_i exp(-(1 - <x, c_i>) / width)` along each direction x."""
    vertices, faces = icosphere(subdivisions)
    centres = vertices[:12]
    bumps = np.exp(-(1.0 - vertices @ centres.T) / width).sum(-1, keepdims=True)
    return vertices * (1.0 + amplitude * bumps), faces


@functools.cache
def generated(name: str) -> TriangleMesh:
    """A mesh generated by code (`GENERATED`), with the biharmonic distance of 200 eigenpairs
    (the RFM paper's mesh setting); built once per process."""
    return TriangleMesh.spectral(*GENERATED[name]())


GENERATED = {"bumpy_sphere": bumpy_sphere}
