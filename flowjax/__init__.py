"""flowjax: Flow Matching in JAX.

Subpackages load on first use (`flowjax.models` imports Flax; the core, `paths`, `solvers`,
`losses`, `couplings`, `sources`, does not). Importing flowjax adds the XLA:CPU flags chosen
for the host's CPU to `XLA_FLAGS`; `flowjax.keep_heap()` keeps glibc's heap between XLA:CPU
calls, as the training system does on CPU devices (`flowjax._host`).
"""

import importlib
from types import ModuleType

from flowjax._host import apply_cpu_flags
from flowjax._host import keep_heap as keep_heap

apply_cpu_flags()

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
    return sorted([*__all__, "__version__", "keep_heap"])
