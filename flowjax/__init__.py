"""flowjax: Flow Matching in JAX.

Subpackages load on first use (`flowjax.models` imports Flax; the core, `paths`, `solvers`,
`losses`, `couplings`, `sources`, does not).
"""

import importlib
from types import ModuleType

__version__ = "0.1.0"
__all__ = [
    "contracts",
    "couplings",
    "data",
    "families",
    "guidance",
    "losses",
    "matchers",
    "metrics",
    "models",
    "ot",
    "paths",
    "solvers",
    "sources",
    "time_samplers",
]


def __getattr__(name: str) -> ModuleType:
    if name in __all__:
        return importlib.import_module(f"flowjax.{name}")
    raise AttributeError(f"module 'flowjax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
