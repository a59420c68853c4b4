"""Manifolds for Riemannian flow matching: pure functions on pytree dataclasses whose points
are arrays `[..., ambient_dim]` (`flowjax.manifolds.base` states the contract)."""

from flowjax.manifolds.base import Manifold, safe_norm, tangent_field
from flowjax.manifolds.euclidean import Euclidean
from flowjax.manifolds.product import Product
from flowjax.manifolds.sphere import Sphere
from flowjax.manifolds.torus import FlatTorus, wrap

__all__ = [
    "Euclidean",
    "FlatTorus",
    "Manifold",
    "Product",
    "Sphere",
    "safe_norm",
    "tangent_field",
    "wrap",
]
