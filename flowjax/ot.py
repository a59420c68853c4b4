"""Optimal transport between two equal-size minibatches (uniform weights).

- `exact_assignment`: the exact OT plan as a permutation (for uniform, equal-size marginals an
  optimal vertex of the transport polytope is a permutation matrix), solved on the host through
  `jax.pure_callback` by POT's network simplex (`ot.emd`), or scipy's assignment solver.
- `auction_assignment`: Bertsekas' auction with epsilon scaling, entirely on the device (inside
  `jit`); total cost within `n * eps` of the optimum.
- `sinkhorn`: entropic OT in the log domain, iterated to a marginal tolerance.

Costs are `[n, n]` arrays. A ground cost `cost(x0, x1)` maps points `[n, *event]`,
`[m, *event]` to the `[n, m]` matrix of pairwise costs: `squared_distances` (squared Euclidean,
flattening any event shape) by default, or `geodesic_cost(manifold)` (squared geodesic);
`cost_matrix` calls one and checks its shape.
"""

import concurrent.futures
import functools
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flowjax._utils import Array, check_choice

EXACT_BACKENDS = ("pot", "scipy")
Cost = Callable[[Any, Any], Any]  # (x0 [n, *event], x1 [m, *event]) -> [n, m]


def squared_distances(x0: Array, x1: Array) -> Array:
    """`||x0_i - x1_j||^2`: `[n, *event], [m, *event] -> [n, m]`."""
    a, b = x0.reshape(x0.shape[0], -1), x1.reshape(x1.shape[0], -1)
    sq = jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None, :] - 2.0 * a @ b.T
    return jnp.maximum(sq, 0.0)


def geodesic_cost(manifold: Any) -> Cost:
    """The squared geodesic distance on `manifold` (summed over the event's points) as a
    ground cost: `[n, *event, D], [m, *event, D] -> [n, m]`."""

    def cost(x0: Array, x1: Array) -> Array:
        squared = manifold.dist(x0[:, None], x1[None, :]) ** 2
        return jnp.sum(squared.reshape(*squared.shape[:2], -1), axis=-1)

    return cost


def cost_matrix(cost: Cost, x0: Any, x1: Any) -> Any:
    """`cost(x0, x1)`, checked to be the `[n, m]` matrix for `x0: [n, *event], x1: [m, *event]`
    (jax or numpy arrays; shapes are static, so the check also holds inside `jit`)."""
    c = cost(x0, x1)
    expected = (x0.shape[0], x1.shape[0])
    if np.shape(c) != expected:
        raise ValueError(
            f"cost(x0, x1) must return the [n, m] = {list(expected)} matrix of pairwise costs "
            f"for x0: {tuple(x0.shape)}, x1: {tuple(x1.shape)}; got shape {np.shape(c)}"
        )
    return c


def _solve_one(cost: np.ndarray, backend: str) -> np.ndarray:
    n = cost.shape[0]
    if backend == "pot":
        import ot

        plan = ot.emd(np.full(n, 1.0 / n), np.full(n, 1.0 / n), cost, numItermax=100 * n * n)
        return np.argmax(plan, axis=1).astype(np.int32)
    from scipy.optimize import linear_sum_assignment

    return linear_sum_assignment(cost)[1].astype(np.int32)


@functools.cache
def _host_threads() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1, "flowjax-ot")


def _solve_on_host(cost: np.ndarray, backend: str) -> np.ndarray:
    """`[..., n, n]` costs -> `[..., n]` permutations; a batch of problems is solved in
    parallel threads (both solvers release the GIL)."""
    cost = np.asarray(cost, np.float64)
    if cost.ndim == 2:
        return _solve_one(cost, backend)
    flat = cost.reshape(-1, *cost.shape[-2:])
    perms = _host_threads().map(lambda c: _solve_one(c, backend), flat)
    return np.stack(list(perms)).reshape(cost.shape[:-1])


def exact_assignment(cost: Array, backend: str = "pot") -> Array:
    """`perm: [n]` with `sum_i cost[i, perm[i]]` minimal; jittable (host callback). Under
    `jax.vmap` the whole batch of problems goes to the host in one callback and is solved on
    all host cores: vmap a coupling over several steps' batches to solve them in parallel."""
    check_choice(backend, EXACT_BACKENDS, "backend")
    if cost.ndim != 2 or cost.shape[0] != cost.shape[1]:
        raise ValueError(f"cost must be square [n, n], got shape {cost.shape}")
    out = jax.ShapeDtypeStruct(cost.shape[:1], jnp.int32)
    return jax.pure_callback(
        lambda c: _solve_on_host(c, backend), out, cost, vmap_method="expand_dims"
    )


def auction_assignment(cost: Array, eps: float = 5e-3, scaling: float = 5.0) -> Array:
    """On-device assignment by the auction algorithm (Jacobi bidding, epsilon scaling).

    Each phase restarts the assignment from the current prices with a smaller epsilon; the
    last phase uses `eps * mean(cost)`, so the total cost is within `n * eps * mean(cost)` of
    the optimum. `perm[i]` is the column assigned to row i.
    """
    n = cost.shape[0]
    benefit = -cost / jnp.maximum(jnp.mean(cost), 1e-30)  # unit scale: eps is relative
    final = jnp.asarray(eps, benefit.dtype)
    start = jnp.maximum(jnp.max(benefit) - jnp.min(benefit), final) / scaling
    rows = cols = jnp.arange(n)

    def phase(state: tuple) -> tuple:
        prices, epsilon = state
        owner = jnp.full(n, -1)  # object -> person
        assigned = jnp.full(n, -1)  # person -> object

        def bidding(s: tuple) -> tuple:
            prices, owner, assigned = s
            free = assigned < 0
            values = benefit - prices[None, :]
            target = jnp.argmax(values, axis=1)
            best = jnp.take_along_axis(values, target[:, None], axis=1)[:, 0]
            second = jnp.max(jnp.where(cols[None, :] == target[:, None], -jnp.inf, values), axis=1)
            bids = prices[target] + (best - second) + epsilon
            bids = jnp.where(free, bids, -jnp.inf)
            best_bid = jax.ops.segment_max(bids, target, num_segments=n)
            won = free & (bids == best_bid[target]) & jnp.isfinite(bids)
            # one winner per object: the lowest-numbered among equal bids
            winner = jax.ops.segment_min(jnp.where(won, rows, n), target, num_segments=n)
            got = winner < n
            new_prices = jnp.where(got, best_bid, prices)
            previous = jnp.where(got, owner, -1)
            assigned = assigned.at[jnp.where(previous >= 0, previous, n)].set(-1, mode="drop")
            assigned = assigned.at[jnp.where(got, winner, n)].set(rows, mode="drop")
            owner = jnp.where(got, winner, owner)
            return new_prices, owner, assigned

        prices, owner, assigned = jax.lax.while_loop(
            lambda s: jnp.any(s[2] < 0), bidding, (prices, owner, assigned)
        )
        return prices, epsilon / scaling, assigned

    def more(state: tuple) -> Array:
        return state[1] >= final

    prices, epsilon = jnp.zeros(n, benefit.dtype), start
    prices, _, assigned = phase((prices, epsilon))
    state = (prices, epsilon / scaling, assigned)
    state = jax.lax.while_loop(more, lambda s: phase(s[:2]), state)
    return state[2].astype(jnp.int32)


def sinkhorn(
    cost: Array,
    reg: float,
    *,
    max_iters: int = 1000,
    tol: float = 1e-5,
    a: Array | None = None,
    b: Array | None = None,
) -> Array:
    """Entropic OT plan `[n, m]` (rows sum to `a`, columns to `b`; uniform by default).

    Alternating scaling updates, checked every 10 iterations, until the row marginals are
    within `tol` (relative, max norm) or `max_iters`. The kernel `exp(-cost / reg)` is used
    directly when it cannot underflow (`max(cost) / reg < 60`: a matrix-vector product per
    update); otherwise the updates run on log-potentials (a log-sum-exp per update).
    """
    n, m = cost.shape
    a = jnp.full(n, 1.0 / n, cost.dtype) if a is None else a
    b = jnp.full(m, 1.0 / m, cost.dtype) if b is None else b

    def run(update: Any, plan: Any, init: tuple) -> Array:
        def ten(state: tuple) -> tuple:
            i, pot, _ = state
            pot = jax.lax.fori_loop(0, 10, lambda _, p: update(p), pot)
            rows = jnp.sum(plan(pot), axis=1)
            return i + 10, pot, jnp.max(jnp.abs(rows / a - 1.0))

        state = (0, init, jnp.asarray(jnp.inf, cost.dtype))
        _, pot, _ = jax.lax.while_loop(lambda s: (s[0] < max_iters) & (s[2] > tol), ten, state)
        return plan(pot)

    def kernel() -> Array:
        K = jnp.exp(-cost / reg)

        def update(uv: tuple) -> tuple:
            u = a / (K @ uv[1])
            return u, b / (K.T @ u)

        return run(update, lambda uv: uv[0][:, None] * K * uv[1][None, :], (a, b))

    def log_domain() -> Array:
        log_a, log_b = jnp.log(a), jnp.log(b)

        def update(fg: tuple) -> tuple:
            f = reg * log_a - reg * jax.nn.logsumexp((fg[1][None, :] - cost) / reg, axis=1)
            return f, reg * log_b - reg * jax.nn.logsumexp((f[:, None] - cost) / reg, axis=0)

        def plan(fg: tuple) -> Array:
            return jnp.exp((fg[0][:, None] + fg[1][None, :] - cost) / reg)

        return run(update, plan, (jnp.zeros(n, cost.dtype), jnp.zeros(m, cost.dtype)))

    return jax.lax.cond(jnp.max(cost) / reg < 60.0, kernel, log_domain)
