"""Conditional paths with extra Gaussian noise around the interpolant (Tong et al. 2024):

    x_t = alpha_t x_1 + sigma_t x_0 + s_t eps,    eps ~ N(0, I) drawn per sample,
    u_t = d_alpha_t x_1 + d_sigma_t x_0 + d_s_t eps.

`Constant(sigma)` gives I-CFM / OT-CFM (s_t = sigma) and, on the cosine scheduler, VP-CFM;
`BrownianBridge(sigma)` gives SB-CFM (s_t = sigma sqrt(t (1 - t))).
"""

import jax
import jax.numpy as jnp

from flowjax._utils import (
    Array,
    check_domain,
    check_same_shape,
    check_time,
    expand_time,
    pytree_dataclass,
)
from flowjax.contracts import PathSample
from flowjax.paths.schedulers import Scheduler


@pytree_dataclass
class Constant:
    """s_t = sigma."""

    sigma: float = 0.0

    def __post_init__(self) -> None:
        check_domain("Constant sigma", self.sigma, 0.0)

    def __call__(self, t: Array) -> tuple[Array, Array]:
        return jnp.full_like(t, self.sigma), jnp.zeros_like(t)


@pytree_dataclass
class BrownianBridge:
    """s_t = sigma sqrt(t (1 - t)): a Brownian bridge of diffusion sigma^2 between the ends.
    Its derivative diverges at t = 0 and 1; t (1 - t) is floored at `floor` there."""

    sigma: float = 1.0
    floor: float = 1e-8

    def __post_init__(self) -> None:
        check_domain("BrownianBridge sigma", self.sigma, 0.0)

    def __call__(self, t: Array) -> tuple[Array, Array]:
        root = jnp.sqrt(jnp.maximum(t * (1.0 - t), self.floor))
        return self.sigma * jnp.sqrt(t * (1.0 - t)), self.sigma * (1.0 - 2.0 * t) / (2.0 * root)


@pytree_dataclass
class NoisyPath:
    """`scheduler` plus noise `s_t` (see the module docstring); `sample` needs a `key`."""

    scheduler: Scheduler
    noise: Constant | BrownianBridge

    def sample(self, x0: Array, x1: Array, t: Array, key: Array | None = None) -> PathSample:
        check_same_shape(x0, x1, "x0,x1")
        check_time(t)
        c = self.scheduler(expand_time(t, x1))
        s, ds = self.noise(expand_time(t, x1))
        if key is None:
            raise ValueError("NoisyPath.sample needs a key for its noise")
        eps = jax.random.normal(key, x1.shape, x1.dtype)
        return PathSample(
            c.alpha * x1 + c.sigma * x0 + s * eps, c.d_alpha * x1 + c.d_sigma * x0 + ds * eps
        )


NOISES = {"constant": Constant, "brownian_bridge": BrownianBridge}
