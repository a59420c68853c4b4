"""Toy 2-D distributions as pure samplers `sample(key, n) -> [n, 2]` (float32).

FFJORD parameterizations (Grathwohl et al. 2019, `toy_data.py`): "swissroll", "circles",
"rings", "moons", "8gaussians", "pinwheel", "2spirals", "checkerboard"; "scurve" is
scikit-learn's S-curve (noise 0.05) projected on its columns [0, 2].

The variants of the TorchCFM 2-D benchmark (Tong et al. 2024, their runner's data modules):
"8gaussians_cfm" (torchdyn `generate_gaussians`: 8 equal clusters at radius 5, std 1, each
shifted by a N(0, 1e-3^2) offset), "moons_cfm" (sklearn moons, noise 0.05, x2, then x[:, 0] - 1)
and "scurve_cfm" (sklearn S-curve, noise 0.05, columns [0, 2], x1.5).
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from flowjax._utils import Array, check_choice

Sampler = Callable[[Array, int], Array]
_TAU = 2.0 * math.pi


def _shuffled(key: Array, x: Array) -> Array:
    return jax.random.permutation(key, x, axis=0)


def _circle(n: int, radius: float) -> Array:
    theta = jnp.linspace(0.0, _TAU, n, endpoint=False)
    return radius * jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=1)


def _moons(key: Array, n: int, noise: float) -> Array:
    """scikit-learn `make_moons`: outer and inner half circles, shuffled, Gaussian noise."""
    k_perm, k_noise = jax.random.split(key)
    n_out, n_in = n // 2, n - n // 2
    a, b = jnp.linspace(0.0, math.pi, n_out), jnp.linspace(0.0, math.pi, n_in)
    outer = jnp.stack([jnp.cos(a), jnp.sin(a)], axis=1)
    inner = jnp.stack([1.0 - jnp.cos(b), 1.0 - jnp.sin(b) - 0.5], axis=1)
    x = _shuffled(k_perm, jnp.concatenate([outer, inner]))
    return x + noise * jax.random.normal(k_noise, x.shape)


def _s_curve(key: Array, n: int, noise: float) -> Array:
    """scikit-learn `make_s_curve`, columns [0, 2] (the y column is dropped)."""
    k_t, k_noise = jax.random.split(key)
    t = 3.0 * math.pi * (jax.random.uniform(k_t, (n,)) - 0.5)
    x = jnp.stack([jnp.sin(t), jnp.sign(t) * (jnp.cos(t) - 1.0)], axis=1)
    return x + noise * jax.random.normal(k_noise, x.shape)


_DIRECTIONS = np.array(  # numpy: no JAX array (and no backend start) at import time
    [(1, 0), (-1, 0), (0, 1), (0, -1)]
    + [(sx / math.sqrt(2), sy / math.sqrt(2)) for sx, sy in ((1, 1), (1, -1), (-1, 1), (-1, -1))],
    dtype=np.float32,
)


def swissroll(key: Array, n: int) -> Array:
    k_t, k_noise = jax.random.split(key)
    t = 1.5 * math.pi * (1.0 + 2.0 * jax.random.uniform(k_t, (n,)))
    x = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], axis=1)
    return (x + jax.random.normal(k_noise, x.shape)) / 5.0


def circles(key: Array, n: int) -> Array:
    k_perm, k_noise = jax.random.split(key)
    x = jnp.concatenate([_circle(n // 2, 1.0), _circle(n - n // 2, 0.5)])
    x = _shuffled(k_perm, x) + 0.08 * jax.random.normal(k_noise, (n, 2))
    return 3.0 * x


def rings(key: Array, n: int) -> Array:
    k_perm, k_noise = jax.random.split(key)
    q = n // 4
    x = jnp.concatenate(
        [_circle(q, 1.0), _circle(q, 0.75), _circle(q, 0.5), _circle(n - 3 * q, 0.25)]
    )
    return 3.0 * _shuffled(k_perm, x) + 0.08 * jax.random.normal(k_noise, (n, 2))


def moons(key: Array, n: int) -> Array:
    return 2.0 * _moons(key, n, 0.1) + jnp.array([-1.0, -0.2])


def eight_gaussians(key: Array, n: int) -> Array:
    k_idx, k_noise = jax.random.split(key)
    centers = 4.0 * jnp.asarray(_DIRECTIONS)[jax.random.randint(k_idx, (n,), 0, 8)]
    return (centers + 0.5 * jax.random.normal(k_noise, (n, 2))) / 1.414


def pinwheel(key: Array, n: int) -> Array:
    k_feat, k_perm, k_label = jax.random.split(key, 3)
    labels = jax.random.randint(k_label, (n,), 0, 5)
    features = jax.random.normal(k_feat, (n, 2)) * jnp.array([0.3, 0.1]) + jnp.array([1.0, 0.0])
    angles = labels * (_TAU / 5) + 0.25 * jnp.exp(features[:, 0])
    c, s = jnp.cos(angles), jnp.sin(angles)
    f0, f1 = features[:, 0], features[:, 1]  # rotated by +angle, as FFJORD's einsum
    x = jnp.stack([f0 * c - f1 * s, f0 * s + f1 * c], axis=1)
    return 2.0 * _shuffled(k_perm, x)


def two_spirals(key: Array, n: int) -> Array:
    k_r, k_dx, k_dy, k_noise, k_perm = jax.random.split(key, 5)
    m = n - n // 2
    r = jnp.sqrt(jax.random.uniform(k_r, (m,))) * 540.0 * _TAU / 360.0
    d = jnp.stack(
        [
            -jnp.cos(r) * r + 0.5 * jax.random.uniform(k_dx, (m,)),
            jnp.sin(r) * r + 0.5 * jax.random.uniform(k_dy, (m,)),
        ],
        axis=1,
    )
    x = jnp.concatenate([d, -d[: n // 2]]) / 3.0
    return _shuffled(k_perm, x + 0.1 * jax.random.normal(k_noise, x.shape))


def checkerboard(key: Array, n: int) -> Array:
    k1, k2, k3 = jax.random.split(key, 3)
    x1 = 4.0 * jax.random.uniform(k1, (n,)) - 2.0
    x2 = jax.random.uniform(k2, (n,)) - 2.0 * jax.random.randint(k3, (n,), 0, 2)
    return 2.0 * jnp.stack([x1, x2 + jnp.floor(x1) % 2], axis=1)


def quantize(x: Array, bins: int, low: float = -4.0, high: float = 4.0) -> Array:
    """Points `[N, 2]` to integer tokens `[N, 2]` in `[0, bins)`: each coordinate's bin of
    `bins` equal bins of `[low, high)` (out-of-range points go to the edge bins). The
    checkerboard at 128 bins is the discrete checkerboard of Meta's discrete FM example."""
    u = jnp.floor((x - low) / (high - low) * bins)
    return jnp.clip(u, 0, bins - 1).astype(jnp.int32)


def checkerboard_log_prob(x: Array) -> Array:
    """Exact log-density of `checkerboard`: uniform on 8 squares of side 2 (area 32)."""
    u = x / 2.0
    inside = (jnp.abs(u[:, 0]) < 2.0) & (jnp.abs(u[:, 1]) < 2.0)
    on_board = (jnp.floor(u[:, 0]) + jnp.floor(u[:, 1])) % 2 == 0
    return jnp.where(inside & on_board, -math.log(32.0), -jnp.inf)


CHECKERBOARD_ENTROPY = math.log(32.0)  # nats: the best achievable test NLL


def scurve(key: Array, n: int) -> Array:
    return _s_curve(key, n, 0.05)


def eight_gaussians_cfm(key: Array, n: int) -> Array:
    k_idx, k_offset, k_noise = jax.random.split(key, 3)
    idx = jax.random.permutation(k_idx, jnp.arange(n) % 8)  # equal clusters, as torchdyn
    angles = _TAU * (jnp.arange(8) + 1) / 8
    centers = 5.0 * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)
    centers = centers + 1e-3 * jax.random.normal(k_offset, (8, 2))
    return centers[idx] + jax.random.normal(k_noise, (n, 2))


def moons_cfm(key: Array, n: int) -> Array:
    return 2.0 * _moons(key, n, 0.05) - jnp.array([1.0, 0.0])


def scurve_cfm(key: Array, n: int) -> Array:
    return 1.5 * _s_curve(key, n, 0.05)


DISTRIBUTIONS: dict[str, Sampler] = {
    "swissroll": swissroll,
    "circles": circles,
    "rings": rings,
    "moons": moons,
    "8gaussians": eight_gaussians,
    "pinwheel": pinwheel,
    "2spirals": two_spirals,
    "checkerboard": checkerboard,
    "scurve": scurve,
    "8gaussians_cfm": eight_gaussians_cfm,
    "moons_cfm": moons_cfm,
    "scurve_cfm": scurve_cfm,
}


def sample_toy(name: str, key: Array, n: int) -> Array:
    """`n` samples `[n, 2]` (float32) of the toy distribution `name` (see `DISTRIBUTIONS`)."""
    check_choice(name, DISTRIBUTIONS, "distribution")
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n must be a positive int, got {n}")
    return DISTRIBUTIONS[name](key, n).astype(jnp.float32)
