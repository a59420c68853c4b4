"""Method families: the registry that the training system reads (`--config.family=NAME`).

A family implements `flowjax.contracts.Family`. Add one by writing its file here and an entry
in `FAMILIES`; a family outside this package is named by its import path, `"package.module:Class"`
(so that a run's `config.json` finds it again in a new process).
"""

import importlib

from flowjax.families.ar import AR, ARConfig
from flowjax.families.catflow import CatFlow, CatFlowConfig
from flowjax.families.cfm import CFM, CFMConfig
from flowjax.families.dfm import DFM, DFMConfig
from flowjax.families.dirichlet import DirichletFM, DirichletFMConfig
from flowjax.families.flow_maps import (
    TVM,
    AlphaFlow,
    ConsistencyFM,
    ModularMeanFlow,
    Shortcut,
    SoFlow,
    SplitMeanFlow,
)
from flowjax.families.meanflow import MeanFlow, MeanFlowConfig
from flowjax.families.rfm import RFM, RFMConfig

FAMILIES: dict[str, type] = {
    "cfm": CFM,
    "dfm": DFM,
    "catflow": CatFlow,
    "dirichlet": DirichletFM,
    "ar": AR,
    "rfm": RFM,
    "meanflow": MeanFlow,
    "modular_meanflow": ModularMeanFlow,
    "splitmeanflow": SplitMeanFlow,
    "shortcut": Shortcut,
    "alphaflow": AlphaFlow,
    "soflow": SoFlow,
    "tvm": TVM,
    "consistency_fm": ConsistencyFM,
}


def get(name: str) -> type:
    """The family class registered as `name`, or at the import path `"module:Class"`."""
    if name in FAMILIES:
        return FAMILIES[name]
    if ":" in name:
        module, attr = name.split(":", 1)
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"cannot import family {name!r}: {error}") from None
    raise ValueError(
        f"unknown family {name!r}; expected one of {sorted(FAMILIES)} or 'package.module:Class'"
    )


__all__ = [
    "AR",
    "CFM",
    "DFM",
    "FAMILIES",
    "RFM",
    "TVM",
    "ARConfig",
    "AlphaFlow",
    "CFMConfig",
    "CatFlow",
    "CatFlowConfig",
    "ConsistencyFM",
    "DFMConfig",
    "DirichletFM",
    "DirichletFMConfig",
    "MeanFlow",
    "MeanFlowConfig",
    "ModularMeanFlow",
    "RFMConfig",
    "Shortcut",
    "SoFlow",
    "SplitMeanFlow",
    "get",
]
