"""The rotation group SO(3) with its bi-invariant metric, scaled so that the distance is the
angle of the relative rotation (in [0, pi]): the manifold of rigid frames.

A point is a rotation matrix R flattened row-major, `[..., 9]`; a tangent vector at R is
`R Omega` (Omega skew-symmetric) flattened the same way, with `<U, V>_R = tr(U^T V) / 2`.
Rotations convert to and from unit quaternions `(w, x, y, z)` (`to_quaternion`,
`from_quaternion`) and to rotation vectors (`to_rotation_vector`). Quaternions come from
Bar-Itzhack's symmetric 4 x 4 matrix `K(M)`, whose top eigenvector is the quaternion of the
rotation nearest to M (Frobenius); on SO(3) `K + I = 4 q q^T`, so its largest column is q
exactly, a formula with finite derivatives everywhere. The exponential map composes
quaternions, so its results are rotations to rounding however many steps are taken.
"""

import math

import jax
import jax.numpy as jnp

from flowjax._utils import Array, pytree_dataclass
from flowjax.manifolds.base import safe_norm

SMALL = 1e-6  # below this sine of half the angle the series of theta / sin is used
SQUARINGS = 12  # `projx` raises a 4 x 4 matrix to the power 2^12
WRAPS = 3  # preimages of the exponential map summed by `log_wrapped_normal`, on each side


def _matrices(x: Array) -> Array:
    if x.shape[-1] != 9:
        raise ValueError(f"SO(3) points are flattened 3 x 3 matrices [..., 9], got {x.shape}")
    return x.reshape(*x.shape[:-1], 3, 3)


def _flat(m: Array) -> Array:
    return m.reshape(*m.shape[:-2], 9)


def _hat(w: Array) -> Array:
    """`[..., 3]` -> the skew matrices `[..., 3, 3]` with `hat(w) v = w x v`."""
    zero = jnp.zeros_like(w[..., 0])
    a, b, c = w[..., 0], w[..., 1], w[..., 2]
    rows = [[zero, -c, b], [c, zero, -a], [-b, a, zero]]
    return jnp.stack([jnp.stack(r, -1) for r in rows], -2)


def _vee(m: Array) -> Array:
    """The vector of the skew part of `[..., 3, 3]` (the inverse of `_hat` on skew m)."""
    return 0.5 * jnp.stack(
        [m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1
    )


def _bar_itzhack(m: Array) -> Array:
    """`[..., 4, 4]` symmetric K with `q^T K q = tr(M^T R(q))` for unit q = (w, x, y, z)."""
    m11, m12, m13 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m21, m22, m23 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m31, m32, m33 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    rows = [
        [m11 + m22 + m33, m32 - m23, m13 - m31, m21 - m12],
        [m32 - m23, m11 - m22 - m33, m12 + m21, m13 + m31],
        [m13 - m31, m12 + m21, m22 - m11 - m33, m23 + m32],
        [m21 - m12, m13 + m31, m23 + m32, m33 - m11 - m22],
    ]
    return jnp.stack([jnp.stack(r, -1) for r in rows], -2)


def _normalize(q: Array) -> Array:
    return q / safe_norm(q, keepdims=True)


def _top_column(b: Array) -> Array:
    """The normalized column of largest diagonal of `[..., 4, 4]` b: for b = c v v^T (c > 0),
    v up to sign, with |v_j| >= 1/2 in that column."""
    j = jnp.argmax(jnp.diagonal(b, axis1=-2, axis2=-1), axis=-1)
    return _normalize(jnp.take_along_axis(b, j[..., None, None], axis=-1)[..., 0])


def _quaternion_of_rotation(m: Array) -> Array:
    """The unit quaternion (sign arbitrary) of rotation matrices `[..., 3, 3]`, from
    `K + I = 4 q q^T`."""
    return _top_column(_bar_itzhack(m) + jnp.eye(4, dtype=m.dtype))


def _rotation(q: Array) -> Array:
    """Unit quaternions `[..., 4]` -> rotation matrices `[..., 3, 3]`."""
    w, x, y, z = (q[..., i] for i in range(4))
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return jnp.stack([jnp.stack(r, -1) for r in rows], -2)


def _multiply(p: Array, q: Array) -> Array:
    """The Hamilton product of quaternions `[..., 4]` (the rotation p after q: R(p) R(q))."""
    pw, pv, qw, qv = p[..., :1], p[..., 1:], q[..., :1], q[..., 1:]
    w = pw * qw - jnp.sum(pv * qv, -1, keepdims=True)
    return jnp.concatenate([w, pw * qv + qw * pv + jnp.cross(pv, qv)], -1)


def _exp_quaternion(w: Array) -> Array:
    """The unit quaternion of the rotation by the vector `w [..., 3]` (angle |w|)."""
    half = 0.5 * safe_norm(w, keepdims=True)
    return jnp.concatenate([jnp.cos(half), 0.5 * jnp.sinc(half / jnp.pi) * w], -1)


def _log_quaternion(q: Array) -> Array:
    """The rotation vector `[..., 3]` of unit quaternions (either sign), angle in [0, pi]."""
    q = jnp.where(q[..., :1] < 0, -q, q)
    s = safe_norm(q[..., 1:], keepdims=True)
    regular = s > SMALL
    angle = 2.0 * jnp.arctan2(s, q[..., :1])
    ratio = jnp.where(regular, angle / jnp.where(regular, s, 1.0), 2.0 + s * s / 3.0)
    return ratio * q[..., 1:]


def to_quaternion(x: Array) -> Array:
    """Points `[..., 9]` -> unit quaternions `[..., 4]` (w, x, y, z) with w >= 0."""
    q = _quaternion_of_rotation(_matrices(x))
    return jnp.where(q[..., :1] < 0, -q, q)


def to_rotation_vector(x: Array) -> Array:
    """Points `[..., 9]` -> rotation vectors `[..., 3]` (axis times angle, in the pi-ball)."""
    return _log_quaternion(_quaternion_of_rotation(_matrices(x)))


def from_quaternion(q: Array) -> Array:
    """Quaternions `[..., 4]` (w, x, y, z; normalized here) -> points `[..., 9]`."""
    return _flat(_rotation(_normalize(q)))


@pytree_dataclass
class SO3:
    """SO(3), points `[..., 9]` (module docstring); the Haar (uniform) law, log-volume
    `log 8 pi^2` in this metric."""

    @property
    def dim(self) -> int:
        return 3

    @property
    def ambient_dim(self) -> int:
        return 9

    @property
    def origin(self) -> Array:
        return jnp.eye(3).reshape(9)

    def projx(self, x: Array) -> Array:
        """The nearest rotation (Frobenius) to each 3 x 3 matrix: the top eigenvector of K, as
        the largest column of `(K + ||K||_F I)^(2^SQUARINGS)` (positive semi-definite; each
        squaring normalized): exact on SO(3) and to float32 precision wherever the
        second eigenvalue of the shifted K is below 99.6% of the first."""
        k = _bar_itzhack(_matrices(x))
        b = k + jnp.sqrt(jnp.sum(k * k, (-2, -1)))[..., None, None] * jnp.eye(4, dtype=k.dtype)

        def square(_: int, b: Array) -> Array:
            b = b @ b
            return b / jnp.sqrt(jnp.sum(b * b, (-2, -1)))[..., None, None]

        return _flat(_rotation(_top_column(jax.lax.fori_loop(0, SQUARINGS, square, b))))

    def proju(self, x: Array, u: Array) -> Array:
        """`R skew(R^T U)`."""
        r = _matrices(x)
        return _flat(r @ _hat(_vee(jnp.swapaxes(r, -1, -2) @ _matrices(u))))

    def inner(self, x: Array, u: Array, v: Array) -> Array:
        del x
        return 0.5 * jnp.sum(u * v, axis=-1)

    def expmap(self, x: Array, u: Array) -> Array:
        """`R exp(R^T U)`, composed as quaternions."""
        r = _matrices(x)
        w = _vee(jnp.swapaxes(r, -1, -2) @ _matrices(u))
        return _flat(_rotation(_multiply(_quaternion_of_rotation(r), _exp_quaternion(w))))

    def logmap(self, x: Array, y: Array) -> Array:
        """`R log(R^T S)`; at a relative angle of pi (where both signs of the axis are
        geodesics) the axis' sign is the one its quaternion's sign gives."""
        r = _matrices(x)
        w = _log_quaternion(_quaternion_of_rotation(jnp.swapaxes(r, -1, -2) @ _matrices(y)))
        return _flat(r @ _hat(w))

    def dist(self, x: Array, y: Array) -> Array:
        """The angle of `R^T S`: `2 atan2(|q_xyz|, |q_w|)` of its quaternion."""
        q = _quaternion_of_rotation(jnp.swapaxes(_matrices(x), -1, -2) @ _matrices(y))
        return 2.0 * jnp.arctan2(safe_norm(q[..., 1:]), jnp.abs(q[..., 0]))

    def uniform(self, key: Array, shape: tuple[int, ...]) -> Array:
        """`[*shape, 9]` Haar-uniform rotations (normalized Gaussian quaternions)."""
        return from_quaternion(jax.random.normal(key, (*shape, 4)))

    @property
    def log_volume(self) -> float:
        return math.log(8.0 * math.pi**2)

    def tangent_normal(self, key: Array, x: Array) -> Array:
        """`R hat(w)`, w ~ N(0, I_3): a standard normal tangent vector in the metric."""
        w = jax.random.normal(key, (*x.shape[:-1], 3), x.dtype)
        return _flat(_matrices(x) @ _hat(w))

    def log_wrapped_normal(self, mean: Array, scale: Array | float, x: Array) -> Array:
        """`[...]` log-density (Haar volume of this metric) at `x` of `exp_mean(v)`, v ~ N(0,
        scale^2 I_3): the Gaussian at every preimage (rotation vectors of lengths |r + 2 pi k|
        about x's axis, |k| <= `WRAPS`) over the exponential map's Jacobian `(sin(rho / 2) /
        (rho / 2))^2`."""
        r = self.dist(mean, x)[..., None]
        rho = jnp.abs(r + 2 * jnp.pi * jnp.arange(-WRAPS, WRAPS + 1, dtype=r.dtype))
        half_sine = jnp.maximum(jnp.sin(0.5 * r), 1e-12)
        log_jacobian = 2.0 * (jnp.log(jnp.where(rho > 0, 0.5 * rho, 1.0)) - jnp.log(half_sine))
        log_jacobian = jnp.where(rho > SMALL, log_jacobian, 0.0)  # rho = 0: the identity
        log_gauss = -0.5 * (rho / scale) ** 2 - 3 * jnp.log(scale * math.sqrt(2 * math.pi))
        return jax.nn.logsumexp(log_gauss + log_jacobian, axis=-1)
