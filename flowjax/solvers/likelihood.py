"""Log-likelihoods by the instantaneous change of variables (Chen et al. 2018).

Integrating `dx/dt = v_t(x)`, `d delta/dt = div v_t(x)` from `x_1 = x` at t = 1 back to t = 0
with `delta(1) = 0` gives `log p_1(x) = log p_0(x_0) + delta(0)`.

The divergence is exact (sum of the Jacobian diagonal, computed with `chunk_size` basis
directions at a time, so memory stays bounded for images) or Hutchinson's estimate
`eps^T J eps` averaged over `num_probes` Rademacher or Gaussian probes drawn once per solve.
Both assume the field acts on each sample independently (no batch statistics).
"""

import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flowjax._utils import Array, call_field, check_choice, check_time
from flowjax.contracts import Source
from flowjax.solvers.ode import Solution, check_options, integrate
from flowjax.sources import STANDARD_NORMAL

DIVERGENCES = ("exact", "hutchinson")
PROBES = ("rademacher", "gaussian")


def exact_divergence(
    f: Callable[[Array], Array], x: Array, chunk_size: int | None = None
) -> tuple[Array, Array]:
    """`(f(x), div f(x))` for a per-sample map `f: [B, *event] -> [B, *event]`.

    One linearization, then `D = prod(event)` Jacobian-vector products with basis directions
    (the same direction for every sample), `chunk_size` of them vectorized at a time.
    """
    batch, event = x.shape[0], x.shape[1:]
    dim = math.prod(event)
    if chunk_size is not None and not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size}")
    chunk = dim if chunk_size is None else min(chunk_size, dim)
    num_chunks = -(-dim // chunk)
    fx, jvp = jax.linearize(f, x)

    def diagonal_chunk(start: Array) -> Array:
        idx = start + jnp.arange(chunk)
        basis = jax.nn.one_hot(idx, dim, dtype=x.dtype)  # [c, D]; rows past D are zero
        tangents = jnp.broadcast_to(basis.reshape(chunk, 1, *event), (chunk, batch, *event))
        out = jax.vmap(jvp)(tangents).reshape(chunk, batch, dim)  # J e_i for each sample
        diag = jnp.take_along_axis(out, jnp.minimum(idx, dim - 1)[:, None, None], axis=2)
        return jnp.sum(diag[..., 0] * (idx < dim)[:, None], axis=0)  # [B]

    starts = jnp.arange(num_chunks) * chunk
    div = jnp.sum(jax.lax.map(diagonal_chunk, starts), axis=0)
    return fx, div


def hutchinson_divergence(
    f: Callable[[Array], Array], x: Array, probes: Array
) -> tuple[Array, Array]:
    """`(f(x), mean_k eps_k^T J eps_k)` for probes `[K, B, *event]`."""
    fx, jvp = jax.linearize(f, x)
    jeps = jax.vmap(jvp)(probes)
    axes = tuple(range(2, probes.ndim))
    return fx, jnp.mean(jnp.sum(probes * jeps, axis=axes), axis=0)


def draw_probes(key: Array, shape: tuple[int, ...], kind: str, dtype: Any) -> Array:
    """Hutchinson probes of `shape`: Rademacher (+-1) or standard Gaussian entries."""
    check_choice(kind, PROBES, "probe")
    if kind == "rademacher":
        return jax.random.rademacher(key, shape, dtype)
    return jax.random.normal(key, shape, dtype)


def log_likelihood(
    v: Callable[..., Array],
    params: Any,
    x1: Array,
    *,
    key: Array | None = None,
    cond: Mapping[str, Any] | None = None,
    divergence: str = "exact",
    probe: str = "rademacher",
    num_probes: int = 1,
    chunk_size: int | None = 128,
    source: Source = STANDARD_NORMAL,
    **solver_options: Any,
) -> tuple[Array, Solution]:
    """`log p_1(x1): [B]` of the flow of `v(params, x, t, **cond)` from `source` at t = 0.

    Args:
      x1: data `[B, *event]`, at time `t0` of the solve (default 1; pass `t0`/`t1` in
        `solver_options` to integrate another interval, e.g. t0=1-eps).
      key: PRNG key for the Hutchinson probes (required for divergence="hutchinson").
      divergence: "exact" (`chunk_size` basis directions per vectorized pass bound its memory;
        None: all at once) or "hutchinson" (`probe`, `num_probes`).
      solver_options: those of `flowjax.solvers.integrate` (method, rtol, atol, num_steps,
        batch_mode, max_steps, adjoint, ...); the default method is dopri5 at 1e-5.

    Returns:
      `log p_1(x1)` and the `Solution` of the augmented ODE (its `y` is `(x0, delta)`).
      Differentiable with respect to `params`.
    """
    check_choice(divergence, DIVERGENCES, "divergence")
    check_options(solver_options, "log_likelihood")
    for name in ("t0", "t1"):
        check_time(solver_options.get(name), name)
    if "save_at" in solver_options:
        raise ValueError("save_at is not supported by log_likelihood")
    x1 = jnp.asarray(x1)
    if x1.ndim < 2:
        raise ValueError(f"x1 must have shape [B, *event], got shape {x1.shape}")
    args = {"cond": dict(cond or {})}
    if divergence == "hutchinson":
        if key is None:
            raise ValueError("key is required for divergence='hutchinson'")
        if not (isinstance(num_probes, int) and num_probes >= 1):
            raise ValueError(f"num_probes must be a positive int, got {num_probes}")
        probes = draw_probes(key, (num_probes, *x1.shape), probe, x1.dtype)
        args["probes"] = jnp.swapaxes(probes, 0, 1)  # [B, K, *event]: batch axis first

    def field(t: Array, y: tuple[Array, Array], a: dict) -> tuple[Array, Array]:
        x, _ = y

        def vt(z: Array) -> Array:
            return call_field(v, params, z, t, a["cond"])

        if divergence == "exact":
            dx, div = exact_divergence(vt, x, chunk_size)
        else:
            dx, div = hutchinson_divergence(vt, x, jnp.swapaxes(a["probes"], 0, 1))
        return dx, div

    options = {"t0": 1.0, "t1": 0.0, **solver_options}
    delta0 = jnp.zeros(x1.shape[:1], jnp.float32)
    sol = integrate(field, (x1, delta0), cond=args, **options)
    x0, delta = sol.y
    return source.log_prob(x0) + delta, sol
