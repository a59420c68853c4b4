"""Closed-form marginals of affine paths from N(0, I) to a Gaussian N(mu, Sigma).

With Sigma = Q diag(lam) Q^T, the marginal is
p_t = N(alpha_t mu, Q diag(alpha_t^2 lam + sigma_t^2) Q^T) and its velocity field is
v_t(x) = d_alpha mu + Q diag(a_t) Q^T (x - alpha_t mu) with
a_t = (alpha d_alpha lam + sigma d_sigma) / (alpha^2 lam + sigma^2).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np


class GaussianTarget:
    def __init__(self, mu, cov):
        self.mu = jnp.asarray(mu, jnp.float32)
        self.cov = jnp.asarray(cov, jnp.float32)
        lam, q = np.linalg.eigh(np.asarray(cov, np.float64))
        self.lam, self.q = jnp.asarray(lam, jnp.float32), jnp.asarray(q, jnp.float32)

    def _rotate(self, x, diag):  # Q diag Q^T x for x [B, D], diag [B, D]
        return ((x @ self.q) * diag) @ self.q.T

    def variances(self, scheduler, t):
        c = scheduler(jnp.asarray(t)[:, None])
        return c, c.alpha**2 * self.lam + c.sigma**2

    def velocity(self, scheduler):
        """Marginal field `v(mu, x, t)`; the mean `mu` is the parameter (to test gradients)."""

        def v(mu, x, t):
            c, var = self.variances(scheduler, t)
            a = (c.alpha * c.d_alpha * self.lam + c.sigma * c.d_sigma) / var
            return c.d_alpha * mu + self._rotate(x - c.alpha * mu, a)

        return v

    def mean_x1(self, scheduler):
        """E[x1 | x_t]: the optimal x1-prediction."""

        def f(mu, x, t):
            c, var = self.variances(scheduler, t)
            return mu + self._rotate(x - c.alpha * mu, c.alpha * self.lam / var)

        return f

    def score(self, scheduler, x, t):
        c, var = self.variances(scheduler, t)
        return -self._rotate(x - c.alpha * self.mu, 1.0 / var)

    def log_prob(self, x, scheduler=None, t=None, mu=None):
        """log p_t(x) (t = None: the target itself)."""
        mu = self.mu if mu is None else mu
        if t is None:
            mean, var = mu, jnp.broadcast_to(self.lam, x.shape)
        else:
            c, var = self.variances(scheduler, t)
            mean = c.alpha * mu
        z = (x - mean) @ self.q
        d = x.shape[1]
        return -0.5 * jnp.sum(z**2 / var + jnp.log(var), axis=1) - 0.5 * d * math.log(2 * math.pi)


class Marginal:
    """The path's marginal p_t of a `GaussianTarget` as a `flowjax.contracts.Source`."""

    def __init__(self, target, scheduler, t):
        self.target, self.scheduler, self.t = target, scheduler, t

    def sample(self, key, shape, dtype=jnp.float32):
        c, var = self.target.variances(self.scheduler, jnp.full(shape[:1], self.t))
        z = np.asarray(jnp.sqrt(var)) * np.asarray(jax.random.normal(key, shape))
        return jnp.asarray(c.alpha * self.target.mu + z @ self.target.q.T, dtype)

    def log_prob(self, x):
        return self.target.log_prob(x, self.scheduler, jnp.full(x.shape[:1], self.t))
