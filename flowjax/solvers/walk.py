"""Flows on a triangle mesh by Euler steps that walk it face to face, with the log-determinant
of the map: samples and log-likelihoods that count the density's jumps at the edges.

A field on a mesh is an ambient field `v(params, x, t)` projected onto each face, so it jumps
at every edge, and the density it carries jumps with it: mass crosses an edge at the rate of
the field's component normal to the edge, which differs on the two sides. The divergence
within the faces (what the ambient divergence of the projected field computes, as the RFM
code's 1,000 projected Euler steps do) misses these jumps, and a density computed from it does
not integrate to one. Each step here walks the mesh (`TriangleMesh.walk`) along the field at
the step's start (Euler) or at the midpoint a half step's walk reaches (midpoint: second order
within faces, and the edges' jumps taken from either side of them on average), and adds
`h div_f v` (the trace of the field's Jacobian on the face's plane, two Jacobian-vector
products) and the walk's log area change at the edges it crosses.
"""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flowjax._utils import Array, call_field, check_choice
from flowjax.contracts import Source
from flowjax.solvers.fixed import time_grid

WALKS = {"euler": 1, "midpoint": 2}  # method -> field calls per step


def _face_divergence(
    v: Callable[..., Array], x: Array, face: Array, mesh: Any
) -> tuple[Array, Array]:
    """`(v(x) [B, 3], div [B])`: the field at points `x` of `face [B]` and the trace of its
    Jacobian on the face's plane; `v` maps `[B, 3]` to `[B, 3]`."""
    n = mesh.normals[face]
    _, e, _ = mesh.edges(face)
    basis = jnp.stack([e[:, 0], jnp.cross(n, e[:, 0])])  # [2, B, 3]
    vx, jvp = jax.linearize(v, x)
    return vx, jnp.sum(basis * jax.vmap(jvp)(basis), axis=(0, 2))


def mesh_walk(
    v: Callable[..., Array],
    params: Any,
    x: Array,
    *,
    mesh: Any,
    t0: float = 0.0,
    t1: float = 1.0,
    method: str = "midpoint",
    num_steps: int = 500,
    cond: Mapping[str, Any] | None = None,
) -> tuple[Array, Array, Array]:
    """Walk points `x [B, 3]` of `mesh` (a `flowjax.manifolds.TriangleMesh`) from `t0` to `t1`
    (either direction) in `num_steps` steps of `method` ("euler" or "midpoint", `WALKS` field
    calls a step) along the ambient field `v(params, x, t, **cond)`, projected onto each face
    the walk reaches.

    Returns the points `[B, 3]`, the log-determinant of the map `[B]` (the log of the area
    change: the divergence within faces and the jumps at edges) and `stopped [B]`: a step
    ended early, at an edge where the field on the far side points back (the flow folds
    there, and the density is not defined by it).
    """
    check_choice(method, WALKS, "walk method")
    ts = time_grid(None, t0, t1, num_steps)
    x, face = mesh.locate(jnp.asarray(x, jnp.float32))

    def field(t: Array) -> Callable[[Array], Array]:
        return lambda z: call_field(v, params, z, t, cond)

    def step(state: tuple, times: tuple[Array, Array]) -> tuple[tuple, None]:
        x, face, log_det, stopped = state
        t, t_next = times
        h = t_next - t
        at, x_at, face_at = t, x, face
        if method == "midpoint":
            half = jnp.sign(h) * field(t)(x)
            x_at, face_at, _, _ = mesh.walk(x, face, half, jnp.abs(h) / 2)
            at = t + h / 2
        vx, div = _face_divergence(field(at), x_at, face_at, mesh)
        x, face, log_area, stop = mesh.walk(x, face, jnp.sign(h) * vx, jnp.abs(h))
        return (x, face, log_det + h * div + log_area, stopped | stop), None

    zeros = jnp.zeros(x.shape[:1], x.dtype)
    state = (x, face, zeros, zeros != 0)
    (x, _, log_det, stopped), _ = jax.lax.scan(step, state, (ts[:-1], ts[1:]))
    return x, log_det, stopped


def mesh_log_likelihood(
    v: Callable[..., Array],
    params: Any,
    x1: Array,
    *,
    mesh: Any,
    source: Source,
    method: str = "midpoint",
    num_steps: int = 500,
    cond: Mapping[str, Any] | None = None,
) -> tuple[Array, Array]:
    """`log p_1(x1) [B]` of the flow of `v` on `mesh` from `source` at t = 0, by `mesh_walk`
    back from t = 1 (`log p_0(x_0)` plus the backward map's log-determinant), and `stopped
    [B]` (see `mesh_walk`)."""
    x0, log_det, stopped = mesh_walk(
        v, params, x1, mesh=mesh, t0=1.0, t1=0.0, method=method, num_steps=num_steps, cond=cond
    )
    return source.log_prob(x0) + log_det, stopped
