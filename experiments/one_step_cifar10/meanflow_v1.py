"""MeanFlow on unconditional CIFAR-10 as py-meanflow's improved `meanflow/scripts/cifar10_v1.sh`
runs it (its README's checkpoint: 1-NFE FID-50k 2.80): `meanflow.py`'s settings but the times.

    flowjax train experiments/one_step_cifar10/meanflow_v1.py --workdir work/meanflow_v1_cifar10 \\
        --config.data.path=../shared/data/cifar10-jpeg
    flowjax fid --workdir work/meanflow_v1_cifar10 --num 50000 --method flow_map --steps 1

Times (`tr_sampler=v1`, `models/time_sampler.py`): t ~ logit-normal(-0.6, 1.6) and r ~
logit-normal(-4.0, 1.6) at t = 1 noise, r = t for 1 - ratio = 25% of the batch, then
r = min(t, r). Ours (s = 1 - t, e = 1 - r): s ~ (0.6, 1.6), e ~ (4.0, 1.6), e = s on that
share, then e = max(s, e) (`time_pairing = "max"`).
"""

import dataclasses
from pathlib import Path

from flowjax.train.config import TrainConfig, load_config


def get_config() -> TrainConfig:
    v0 = load_config(Path(__file__).with_name("meanflow.py"))
    flow = dataclasses.replace(
        v0.flow, time_mean=0.6, time_std=1.6, end_mean=4.0, time_pairing="max"
    )
    return dataclasses.replace(v0, flow=flow)
