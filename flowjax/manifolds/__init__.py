"""Manifolds for Riemannian flow matching: pure functions on pytree dataclasses whose points
are arrays `[..., ambient_dim]` (`flowjax.manifolds.base` states the contract)."""

from flowjax.manifolds.base import Manifold, safe_norm, tangent_field
from flowjax.manifolds.euclidean import Euclidean
from flowjax.manifolds.hyperbolic import Hyperbolic, minkowski
from flowjax.manifolds.mesh import TriangleMesh, generated
from flowjax.manifolds.product import Product
from flowjax.manifolds.rotations import SO3, from_quaternion, to_quaternion, to_rotation_vector
from flowjax.manifolds.sphere import Sphere
from flowjax.manifolds.torus import FlatTorus, wrap

# a manifold named by data (`DataSpec.manifold`) for points of `ambient_dim` coordinates
NAMED = {
    "sphere": lambda ambient_dim: Sphere(ambient_dim - 1),
    "torus": FlatTorus,
    "so3": lambda ambient_dim: SO3(),
    "hyperbolic": lambda ambient_dim: Hyperbolic(ambient_dim - 1),
    "bumpy_sphere": lambda ambient_dim: generated("bumpy_sphere"),
}


def by_name(name: str, ambient_dim: int) -> Manifold:
    """The manifold `name` (a key of `NAMED`) whose points have `ambient_dim` coordinates."""
    if name not in NAMED:
        raise ValueError(f"unknown manifold {name!r}; expected one of {sorted(NAMED)}")
    manifold = NAMED[name](ambient_dim)
    if manifold.dim < 1 or manifold.ambient_dim != ambient_dim:
        raise ValueError(f"a {name} cannot have points of {ambient_dim} coordinates")
    return manifold


__all__ = [
    "NAMED",
    "SO3",
    "Euclidean",
    "FlatTorus",
    "Hyperbolic",
    "Manifold",
    "Product",
    "Sphere",
    "TriangleMesh",
    "by_name",
    "from_quaternion",
    "minkowski",
    "safe_norm",
    "tangent_field",
    "to_quaternion",
    "to_rotation_vector",
    "wrap",
]
