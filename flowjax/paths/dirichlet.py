"""The Dirichlet probability path of Dirichlet flow matching (Stark et al. 2024) on the
simplex of K categories, and the regularized incomplete beta function it needs.

Given the token `x1 = i`, the path is `p_t(x | x1) = Dir(x; 1 + (alpha_t - 1) e_i)`: uniform
on the simplex at t = 0 and concentrating on the vertex e_i as `alpha_t = 1 + t (alpha_max - 1)`
grows. The marginal of `x_i` is Beta(alpha, K - 1), whose CDF `I_x(alpha, K - 1)` moves with
alpha; the flow that transports it is `u_t(x | x1) = C(x_i, alpha_t) (e_i - x) dalpha/dt` with

    C(x, a) = -dI_x(a, K - 1)/da * B(a, K - 1) / ((1 - x)^(K - 1) x^(a - 1)),

the derivative of the regularized incomplete beta function in its first parameter, which JAX
does not differentiate. For an integer second parameter b, `I_x(a, b) = x^a sum_{j<b} (a)_j /
j! (1 - x)^j` exactly ((a)_j the rising factorial), so I and dI/da are finite sums
(`betainc_integer_b`, `betainc_da`, in log space: the tests' reference); the velocity evaluates
C by quadrature instead (`velocity_coefficient`), without the sums' cancellation near the
vertex (float32-safe for the K of the paper's experiments, up to a few hundred).
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma, gammaln

from flowjax._utils import Array, check_domain, pytree_dataclass, static_field
from flowjax.contracts import PathSample

EDGE = 1e-6  # simplex coordinates are clipped to [EDGE, 1 - EDGE] where C is evaluated
QUADRATURE = 48  # Gauss-Legendre points of the integral of `velocity_coefficient`
_nodes, _weights = np.polynomial.legendre.leggauss(QUADRATURE)
_GAUSS_LEGENDRE = ((_nodes + 1.0) / 2.0, _weights / 2.0)  # on [0, 1]


def _log_terms(a: Array, b: int, x: Array) -> tuple[Array, Array]:
    """`log((a)_j / j! (1 - x)^j)` for j < b (`[..., b]`) and the index j."""
    j = jnp.arange(b, dtype=jnp.float32)
    a, x = jnp.asarray(a, jnp.float32)[..., None], jnp.asarray(x, jnp.float32)[..., None]
    return gammaln(a + j) - gammaln(a) - gammaln(j + 1.0) + j * jnp.log1p(-x), j


def betainc_integer_b(a: Array, b: int, x: Array) -> Array:
    """The regularized incomplete beta function `I_x(a, b)` for an integer `b >= 1`, x in
    [0, 1] (broadcast together), by its finite sum."""
    logs, _ = _log_terms(a, b, x)
    return jnp.exp(jnp.asarray(a) * jnp.log(x) + jax.nn.logsumexp(logs, axis=-1))


def betainc_da(a: Array, b: int, x: Array) -> Array:
    """`dI_x(a, b)/da` for an integer `b >= 1` and x in (0, 1): the derivative of each term
    `x^a (a)_j / j! (1 - x)^j` in a is the term times `log x + psi(a + j) - psi(a)`."""
    logs, j = _log_terms(a, b, x)
    a_ = jnp.asarray(a, jnp.float32)[..., None]
    slope = jnp.log(jnp.asarray(x, jnp.float32))[..., None] + digamma(a_ + j) - digamma(a_)
    return jnp.sum(jnp.exp(a_ * jnp.log(jnp.asarray(x))[..., None] + logs) * slope, axis=-1)


def velocity_coefficient(x: Array, a: Array, num_categories: int) -> Array:
    """`C(x, a) >= 0` of the conditional velocity (module docstring) for simplex coordinates
    `x` and concentrations `a >= 1` (broadcast together); x is clipped to [EDGE, 1 - EDGE].

    With `g(s) = log s - psi(a) + psi(a + b)` and `w(s) = s^(a-1) (1-s)^(b-1)`, `-dI/da B`
    is `int_x^1 g w ds = -int_0^x g w ds` (g w integrates to 0 on [0, 1]). g changes sign
    once, at `s* = exp(psi(a) - psi(a + b))`: the integral on the side of x where g keeps its
    sign is a sum of positive terms, without the cancellation of the finite sum
    (`betainc_da`) near the vertex or of the other side near 0. Each side is mapped to
    [0, 1] (`s = x + (1 - x) u` above s*, `s = x v^2` below, which smooths the log) and
    integrated by `QUADRATURE`-point Gauss-Legendre, the positive factor in log space (only
    the side that applies is evaluated: three transcendental functions per point)."""
    b = num_categories - 1
    x = jnp.clip(jnp.asarray(x, jnp.float32), EDGE, 1.0 - EDGE)[..., None]
    a = jnp.asarray(a, jnp.float32)[..., None]
    u, weights = (jnp.asarray(v, jnp.float32) for v in _GAUSS_LEGENDRE)
    mean_log = digamma(a) - digamma(a + b)  # E[log s] under Beta(a, b)
    above = x >= jnp.exp(mean_log)
    # above s*: C = int_0^1 g(s) (s / x)^(a-1) (1-u)^(b-1) du, s = x + (1 - x) u;
    # below s*: C = int_0^1 -g(x v^2) 2 v^(2a-1) ((1 - x v^2) / (1 - x))^(b-1) x / (1 - x) dv
    s = jnp.where(above, x + (1.0 - x) * u, x * u * u)
    log_s = jnp.log(s)
    log_above = (a - 1.0) * (log_s - jnp.log(x)) + (b - 1.0) * jnp.log1p(-u)
    log_below = (2.0 * a - 1.0) * jnp.log(u) + (b - 1.0) * (jnp.log1p(-s) - jnp.log1p(-x))
    log_below += jnp.log(2.0 * x) - jnp.log1p(-x)
    g = jnp.where(above, log_s - mean_log, mean_log - log_s)
    return jnp.sum(weights * g * jnp.exp(jnp.where(above, log_above, log_below)), axis=-1)


@pytree_dataclass
class DirichletPath:
    """The Dirichlet path on the simplex of `num_categories` (module docstring): times t in
    [0, 1], concentration `alpha_t = 1 + t (alpha_max - 1)`. States `x [B, *event, K]`,
    tokens `x1 [B, *event]` in [0, K)."""

    num_categories: int = static_field()
    alpha_max: float = 8.0

    def __post_init__(self) -> None:
        check_domain("DirichletPath num_categories", self.num_categories, 2.0)
        check_domain("DirichletPath alpha_max", self.alpha_max, 1.0, open_low=True)

    def alpha(self, t: Array) -> Array:
        return 1.0 + jnp.asarray(t, jnp.float32) * (self.alpha_max - 1.0)

    def sample_x_t(self, key: Array, x1: Array, t: Array) -> Array:
        """`x_t ~ Dir(1 + (alpha_t - 1) e_{x1})` per token: `[B, *event, K]` for times `[B]`."""
        one_hot = jax.nn.one_hot(x1, self.num_categories)
        a = self.alpha(t).reshape(t.shape + (1,) * (x1.ndim - 1))
        k_rest, k_x1 = jax.random.split(key)
        # Dirichlet draws are normalized Gamma draws: Gamma(1) (exponential) for every
        # category but x1's, Gamma(alpha_t) for that one (one gamma draw per token)
        g = jnp.where(
            one_hot > 0,
            jax.random.gamma(k_x1, jnp.broadcast_to(a, x1.shape))[..., None],
            jax.random.exponential(k_rest, one_hot.shape),
        )
        return g / jnp.sum(g, axis=-1, keepdims=True)

    def sample(self, x0: Array, x1: Array, t: Array, key: Array | None = None) -> PathSample:
        """The `flowjax.contracts.Path` form: `x_t` for the tokens `x1` (x0 unused: the path's
        start is the uniform Dirichlet), with the conditional velocity `dx_t`."""
        del x0
        if key is None:
            raise ValueError("the Dirichlet path draws x_t: pass key=")
        x_t = self.sample_x_t(key, x1, t)
        return PathSample(x_t, self.conditional_velocity(x_t, x1, t))

    def conditional_velocity(self, x: Array, x1: Array, t: Array) -> Array:
        """`u_t(x | x1) = C(x_{x1}, alpha_t) (e_{x1} - x) dalpha/dt`: `[B, *event, K]`."""
        probabilities = jax.nn.one_hot(x1, self.num_categories)
        return self.velocity(x, probabilities, t)

    def velocity(self, x: Array, posterior: Array, t: Array) -> Array:
        """The marginal velocity `sum_i p(x1 = i | x) u_t(x | i)` for posterior probabilities
        `[B, *event, K]` (the network's softmax) at states `x` and times `t [B]`."""
        a = self.alpha(t).reshape(t.shape + (1,) * (x.ndim - 1))
        w = posterior * velocity_coefficient(x, a, self.num_categories)
        return (w - x * jnp.sum(w, axis=-1, keepdims=True)) * (self.alpha_max - 1.0)
