"""The autoregressive baseline of `debd_dfm.py`: the same table, transformer (causal, over the
variables in the file's column order), optimizer and steps; next-token cross-entropy, exact NLL
on the validation split, the best checkpoint by it kept.

flowjax train flowjax/configs/debd_ar.py --workdir work/debd_ar \
    --config.data.path=../shared/data/debd-binary --config.data.name=plants
"""

import dataclasses

from flowjax.configs import debd_dfm
from flowjax.families import ARConfig
from flowjax.train.config import TrainConfig


def get_config() -> TrainConfig:
    base = debd_dfm.get_config()
    return dataclasses.replace(
        base,
        family="ar",
        model=base.model.replace(causal=True),
        flow=ARConfig(),
        checkpoint=dataclasses.replace(base.checkpoint, best_metric="eval/nll_bits_per_token"),
        log=dataclasses.replace(base.log, eval_method="ancestral"),
    )
