"""Lipman et al. 2023, Table 1, CIFAR-10 "FM w/ Diffusion": the same network and optimization as
`cifar10_fm_ot.py` on the variance-preserving diffusion path (`flow.scheduler = "vp"`).

flowjax train experiments/lipman2023_table1/cifar10_fm_diffusion.py --workdir work/lipman_fm_vp \\
    --config.data.path=../shared/data/cifar10-jpeg
"""

import dataclasses
from pathlib import Path

from flowjax.train.config import TrainConfig, load_config


def get_config() -> TrainConfig:
    ot = load_config(Path(__file__).with_name("cifar10_fm_ot.py"))
    return dataclasses.replace(ot, flow=dataclasses.replace(ot.flow, scheduler="vp"))
