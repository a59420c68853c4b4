"""Couplings of source and data samples inside a minibatch.

A coupling is a pure function `coupling(key, x0, x1, **labels) -> (x0, x1, labels)` returning
re-paired batches of the same shapes; labels (class labels, conditioning) travel with `x1`.

- `independent`: pairs as drawn (I-CFM, Lipman et al.'s FM).
- `ot_coupling(...)`: minibatch optimal transport (Pooladian et al. 2023; Tong et al. 2024).
  `solver="exact"` solves on the host (POT's network simplex) and `"auction"` on the device;
  both give a permutation, so each x0 and each x1 is used exactly once. `replace=True` instead
  draws n pairs from the plan with replacement, as TorchCFM's `OTPlanSampler` does (some pairs
  repeat, others are dropped). `solver="sinkhorn"` (entropic, `reg`) always draws from its plan.
  `within="y"` pairs only samples of the same class: source samples take the labels `y0` if
  given, else a random assignment of the batch's own labels (noise is exchangeable).
  `cost` is the ground cost, `cost(x0, x1) -> [n, n]` (squared Euclidean `ot.squared_distances`
  by default; e.g. a squared geodesic distance on a sphere or torus for Riemannian FM); every
  solver and option above works with any non-negative cost.

With a batch sharded over devices, a coupling called inside `jit` sees the global batch: the
[B, B] cost matrix needs every device's samples (an all-gather of B x dim values) and the solve
runs once on the whole batch (the exact solver on one host thread, O(B^3)). `per_shard` instead
couples each device's block of B / D samples on its own device (no communication, D-times
smaller problems, cost (B / D)^2 per device) at the price of pairs found only within a block:
OT on smaller batches straightens paths less.
"""

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec

from flowjax import ot
from flowjax._utils import Array, check_choice, check_same_shape

Coupling = Callable[..., tuple[Array, Array, dict]]
SOLVERS = ("exact", "auction", "sinkhorn")
SCOPES = ("global", "shard")


def independent(key: Array, x0: Array, x1: Array, **labels: Any) -> tuple[Array, Array, dict]:
    """The independent coupling q(x0) q(x1): pairs stay as drawn."""
    del key
    check_same_shape(x0, x1, "x0,x1")
    return x0, x1, labels


def sample_pairs(key: Array, plan: Array, n: int) -> tuple[Array, Array]:
    """`n` index pairs (i, j) drawn with replacement with probabilities `plan` `[n0, n1]`
    (inverse-CDF sampling: one cumulative sum of the plan, `n` binary searches)."""
    cdf = jnp.cumsum(jnp.maximum(plan.ravel(), 0.0))
    u = jax.random.uniform(key, (n,), cdf.dtype) * cdf[-1]
    flat = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), cdf.shape[0] - 1)
    return flat // plan.shape[1], flat % plan.shape[1]


def ot_coupling(
    solver: str = "exact",
    *,
    reg: float | None = None,
    replace: bool = False,
    within: str | None = None,
    backend: str = "pot",
    cost: ot.Cost = ot.squared_distances,
) -> Coupling:
    """Minibatch OT coupling (see the module docstring).

    `cost(x0, x1)` maps `x0, x1: [n, *event]` to the `[n, n]` matrix of non-negative pairwise
    costs `C[i, j] = c(x0[i], x1[j])` (the `ot.Cost` contract, `[n, *event], [m, *event] ->
    [n, m]`); it is traced inside `jit`, so it must be written in jax. Default: the squared
    Euclidean distance `ot.squared_distances`.
    """
    check_choice(solver, SOLVERS, "solver")
    if solver == "sinkhorn" and not (reg is not None and reg > 0):
        raise ValueError(f"solver='sinkhorn' needs reg > 0, got reg={reg}")

    def coupling(key: Array, x0: Array, x1: Array, **labels: Any) -> tuple[Array, Array, dict]:
        check_same_shape(x0, x1, "x0,x1")
        k_labels, k_pairs = jax.random.split(key)
        c = ot.cost_matrix(cost, x0, x1)
        source_labels = labels.pop("y0", None)
        if within is not None:
            if within not in labels:
                raise ValueError(
                    f"ot_coupling(within={within!r}) needs the labels as {within}=..., got "
                    f"{sorted(labels) or 'none'}"
                )
            y1 = labels[within]
            y0 = jax.random.permutation(k_labels, y1) if source_labels is None else source_labels
            c = c + (y0[:, None] != y1[None, :]) * (1.0 + 2.0 * jnp.max(c)) * c.shape[0]
        n = x0.shape[0]
        if solver == "sinkhorn" or replace:
            if solver == "sinkhorn":
                plan = ot.sinkhorn(c, reg)
            else:
                plan = jax.nn.one_hot(_assign(c, solver, backend), n, dtype=c.dtype) / n
            i, j = sample_pairs(k_pairs, plan, n)
            return x0[i], x1[j], {k: v[j] for k, v in labels.items()}
        perm = _assign(c, solver, backend)
        return x0, x1[perm], {k: v[perm] for k, v in labels.items()}

    return coupling


def _assign(cost: Array, solver: str, backend: str) -> Array:
    cost = jax.lax.stop_gradient(cost)
    if solver == "auction":
        return ot.auction_assignment(cost)
    return ot.exact_assignment(cost, backend)


def per_shard(coupling: Coupling, mesh: Mesh, axes: tuple[str, ...] | None = None) -> Coupling:
    """`coupling` applied independently to each device's block of a batch sharded along its
    first dimension over the mesh `axes` (all axes by default); block i gets the key folded
    with its index, so the blocks' random choices differ."""
    axes = tuple(mesh.axis_names) if axes is None else axes
    batch = PartitionSpec(axes)

    def local(key: Array, x0: Array, x1: Array, labels: dict) -> tuple[Array, Array, dict]:
        key = jax.random.fold_in(key, jax.lax.axis_index(axes))
        return coupling(key, x0, x1, **labels)

    def sharded(key: Array, x0: Array, x1: Array, **labels: Any) -> tuple[Array, Array, dict]:
        check_same_shape(x0, x1, "x0,x1")
        size = math.prod(mesh.shape[axis] for axis in axes)
        if x1.shape[0] % size:
            raise ValueError(f"batch {x1.shape[0]} is not divisible by the {size} shards")
        return jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(PartitionSpec(), batch, batch, batch),
            out_specs=(batch, batch, batch),
            check_vma=False,
        )(key, x0, x1, labels)

    return sharded


def configured(
    kind: str,
    *,
    reg: float = 0.0,
    within: str | None = None,
    scope: str = "global",
    mesh: Mesh | None = None,
    cost: ot.Cost = ot.squared_distances,
) -> Coupling:
    """The coupling a run's config names: "independent", or minibatch OT by the solver `kind`
    (`reg` for sinkhorn, `within` classes, the ground `cost`) over the global batch (`scope`
    "global") or each device's block of `mesh` ("shard")."""
    if kind == "independent":
        return independent
    check_choice(kind, SOLVERS, "coupling")
    check_choice(scope, SCOPES, "coupling scope")
    coupling = ot_coupling(kind, reg=reg or None, within=within, cost=cost)
    if scope == "global":
        return coupling
    if mesh is None:
        raise ValueError("coupling scope 'shard' needs the device mesh of a training run")
    return per_shard(coupling, mesh)
