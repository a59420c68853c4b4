"""The autoregressive baseline of `shakespeare_dfm.py`: the same data, transformer (causal),
optimizer and steps; next-token cross-entropy, exact NLL in bits per character, ancestral
samples.

flowjax train flowjax/configs/shakespeare_ar.py --workdir work/shakespeare_ar \
    --config.data.path=../shared/data/tiny-shakespeare/input.txt
"""

import dataclasses

from flowjax.configs import shakespeare_dfm
from flowjax.families import ARConfig
from flowjax.train.config import TrainConfig


def get_config() -> TrainConfig:
    base = shakespeare_dfm.get_config()
    return dataclasses.replace(
        base,
        family="ar",
        model=base.model.replace(causal=True),
        flow=ARConfig(),
        log=dataclasses.replace(base.log, eval_method="ancestral"),
    )
