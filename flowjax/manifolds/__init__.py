"""Manifolds for Riemannian flow matching: pure functions on pytree dataclasses whose points
are arrays `[..., ambient_dim]` (`flowjax.manifolds.base` states the contract)."""

from flowjax.manifolds.base import Manifold, safe_norm, tangent_field
from flowjax.manifolds.euclidean import Euclidean
from flowjax.manifolds.product import Product
from flowjax.manifolds.sphere import Sphere
from flowjax.manifolds.torus import FlatTorus, wrap

# a manifold named by data (`DataSpec.manifold`) for points of `ambient_dim` coordinates
NAMED = {"sphere": lambda ambient_dim: Sphere(ambient_dim - 1), "torus": FlatTorus}


def by_name(name: str, ambient_dim: int) -> Manifold:
    """The manifold `name` ("sphere", "torus") whose points have `ambient_dim` coordinates."""
    if name not in NAMED:
        raise ValueError(f"unknown manifold {name!r}; expected one of {sorted(NAMED)}")
    if ambient_dim < (2 if name == "sphere" else 1):
        raise ValueError(f"a {name} needs more than {ambient_dim} coordinates")
    return NAMED[name](ambient_dim)


__all__ = [
    "NAMED",
    "Euclidean",
    "FlatTorus",
    "Manifold",
    "Product",
    "Sphere",
    "by_name",
    "safe_norm",
    "tangent_field",
    "wrap",
]
