"""Schedulers (alpha_t, sigma_t) of affine Gaussian paths `x_t = alpha_t x_1 + sigma_t x_0`.

Convention: t = 0 is the source (noise), t = 1 the data. Every method takes `t` of any shape and
works elementwise. Derivatives are closed forms where the paper gives one; the base class falls
back to `jax.jvp` of `alpha` / `sigma`, so a new scheduler only has to define those two.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from flowjax._utils import Array, check_domain, pytree_dataclass


class Coefficients(NamedTuple):
    """alpha_t, sigma_t and their time derivatives, each shaped like `t`."""

    alpha: Array
    sigma: Array
    d_alpha: Array
    d_sigma: Array


def _float(t: Array | float) -> Array:
    """`t` as a floating array (integers and Python numbers become the default float)."""
    t = jnp.asarray(t)
    return t if jnp.issubdtype(t.dtype, jnp.floating) else t.astype(float)


def _difference(a: object, b: object) -> object:
    """`a - b` for numbers; anything else (tracers, pytree placeholders) as it is."""
    numbers = (int, float)
    return a - b if isinstance(a, numbers) and isinstance(b, numbers) else a


def _derivative(f: Callable[[Array], Array], t: Array) -> Array:
    t = _float(t)
    return jax.jvp(f, (t,), (jnp.ones_like(t),))[1]


class Scheduler:
    """Base class: subclasses define `alpha` and `sigma` (and, optionally, closed-form rest)."""

    def alpha(self, t: Array) -> Array:
        raise NotImplementedError

    def sigma(self, t: Array) -> Array:
        raise NotImplementedError

    def d_alpha(self, t: Array) -> Array:
        return _derivative(self.alpha, t)

    def d_sigma(self, t: Array) -> Array:
        return _derivative(self.sigma, t)

    def __call__(self, t: Array) -> Coefficients:
        return Coefficients(self.alpha(t), self.sigma(t), self.d_alpha(t), self.d_sigma(t))

    def snr(self, t: Array) -> Array:
        """Signal-to-noise ratio alpha_t / sigma_t (inf where sigma_t = 0)."""
        return self.alpha(t) / self.sigma(t)

    def snr_inverse(self, snr: Array) -> Array:
        """The t with `self.snr(t) == snr`; the SNR is increasing in t for every scheduler here."""
        raise NotImplementedError(f"{type(self).__name__} has no SNR inverse")


@pytree_dataclass
class CondOT(Scheduler):
    """Lipman et al. (2023) OT path: alpha_t = t, sigma_t = 1 - (1 - sigma_min) t."""

    sigma_min: float = 0.0

    def __post_init__(self) -> None:
        check_domain("CondOT sigma_min", self.sigma_min, 0.0, 1.0, open_high=True)

    def alpha(self, t: Array) -> Array:
        return _float(t)

    def sigma(self, t: Array) -> Array:
        return 1.0 - (1.0 - self.sigma_min) * _float(t)

    def d_alpha(self, t: Array) -> Array:
        return jnp.ones_like(_float(t))

    def d_sigma(self, t: Array) -> Array:
        return jnp.full_like(_float(t), -(1.0 - self.sigma_min))

    def snr_inverse(self, snr: Array) -> Array:
        # t / (1 - (1 - s) t) = snr  <=>  t = 1 / (1/snr + 1 - s); finite at snr = 0 and inf.
        return 1.0 / (1.0 / snr + 1.0 - self.sigma_min)


@pytree_dataclass
class Polynomial(Scheduler):
    """Polynomial convex scheduler: alpha_t = t^n, sigma_t = 1 - t^n."""

    n: float = 2.0

    def __post_init__(self) -> None:
        check_domain("Polynomial n", self.n, 0.0, open_low=True)

    def alpha(self, t: Array) -> Array:
        return _float(t) ** self.n

    def sigma(self, t: Array) -> Array:
        return 1.0 - self.alpha(t)

    def d_alpha(self, t: Array) -> Array:
        return self.n * _float(t) ** (self.n - 1.0)

    def d_sigma(self, t: Array) -> Array:
        return -self.d_alpha(t)

    def snr_inverse(self, snr: Array) -> Array:
        return (1.0 / (1.0 + 1.0 / snr)) ** (1.0 / self.n)


@pytree_dataclass
class VP(Scheduler):
    """Variance-preserving diffusion path (score SDE, Song et al. 2021), Lipman et al. eq. 19.

    With s = 1 - t and T(s) = beta_min s + (beta_max - beta_min) s^2 / 2:
    alpha_t = exp(-T / 2), sigma_t = sqrt(1 - exp(-T)).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self) -> None:
        check_domain("VP beta_min", self.beta_min, 0.0)
        check_domain("VP beta_max - beta_min", _difference(self.beta_max, self.beta_min), 0.0)

    def _integral(self, t: Array) -> Array:
        s = 1.0 - _float(t)
        return self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s**2

    def _d_integral(self, t: Array) -> Array:
        s = 1.0 - _float(t)
        return -(self.beta_min + (self.beta_max - self.beta_min) * s)

    def alpha(self, t: Array) -> Array:
        return jnp.exp(-0.5 * self._integral(t))

    def sigma(self, t: Array) -> Array:
        return jnp.sqrt(-jnp.expm1(-self._integral(t)))

    def d_alpha(self, t: Array) -> Array:
        return -0.5 * self._d_integral(t) * self.alpha(t)

    def d_sigma(self, t: Array) -> Array:
        T = self._integral(t)
        return 0.5 * self._d_integral(t) * jnp.exp(-T) / jnp.sqrt(-jnp.expm1(-T))

    def snr_inverse(self, snr: Array) -> Array:
        T = jnp.log1p(snr**-2.0)
        b, d = self.beta_min, self.beta_max - self.beta_min
        return 1.0 - 2.0 * T / (
            b + jnp.sqrt(b**2 + 2.0 * d * T)
        )  # stable root of d s^2/2 + b s = T


@pytree_dataclass
class LinearVP(Scheduler):
    """Variance-preserving with linear signal: alpha_t = t, sigma_t = sqrt(1 - t^2)."""

    def alpha(self, t: Array) -> Array:
        return _float(t)

    def sigma(self, t: Array) -> Array:
        return jnp.sqrt(1.0 - _float(t) ** 2)

    def d_alpha(self, t: Array) -> Array:
        return jnp.ones_like(_float(t))

    def d_sigma(self, t: Array) -> Array:
        return -_float(t) / self.sigma(t)

    def snr_inverse(self, snr: Array) -> Array:
        return 1.0 / jnp.sqrt(1.0 + snr**-2.0)


@pytree_dataclass
class Cosine(Scheduler):
    """Cosine (trigonometric) path: alpha_t = sin(pi t / 2), sigma_t = cos(pi t / 2)."""

    def alpha(self, t: Array) -> Array:
        return jnp.sin(0.5 * math.pi * _float(t))

    def sigma(self, t: Array) -> Array:
        return jnp.cos(0.5 * math.pi * _float(t))

    def d_alpha(self, t: Array) -> Array:
        return 0.5 * math.pi * self.sigma(t)

    def d_sigma(self, t: Array) -> Array:
        return -0.5 * math.pi * self.alpha(t)

    def snr_inverse(self, snr: Array) -> Array:
        return jnp.arctan(snr) * (2.0 / math.pi)


@pytree_dataclass
class VE(Scheduler):
    """Variance-exploding path (Lipman et al. eq. 16): alpha_t = 1,
    sigma_t = sigma_min (sigma_max / sigma_min)^(1 - t). The source is N(0, sigma_max^2 I)."""

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def __post_init__(self) -> None:
        check_domain("VE sigma_min", self.sigma_min, 0.0, open_low=True)
        check_domain(
            "VE sigma_max - sigma_min",
            _difference(self.sigma_max, self.sigma_min),
            0.0,
            open_low=True,
        )

    def alpha(self, t: Array) -> Array:
        return jnp.ones_like(_float(t))

    def sigma(self, t: Array) -> Array:
        ratio = self.sigma_max / self.sigma_min
        return self.sigma_min * ratio ** (1.0 - _float(t))

    def d_alpha(self, t: Array) -> Array:
        return jnp.zeros_like(_float(t))

    def d_sigma(self, t: Array) -> Array:
        return -self.sigma(t) * jnp.log(self.sigma_max / self.sigma_min)

    def snr_inverse(self, snr: Array) -> Array:
        return 1.0 + jnp.log(snr * self.sigma_min) / jnp.log(self.sigma_max / self.sigma_min)


SCHEDULERS: dict[str, type[Scheduler]] = {
    "condot": CondOT,
    "polynomial": Polynomial,
    "vp": VP,
    "linear_vp": LinearVP,
    "cosine": Cosine,
    "ve": VE,
}
