"""Discrete flow matching on a DEBD binary table (NLTCS by default; Plants, DNA, ... with
`--config.data.name`): every variable a token of a 2-token vocabulary, a mask source,
kappa_t = t, cross-entropy; a bidirectional transformer over the variables (learned
positions: a column is a variable, not a place in a sequence), 3 blocks of width 128; AdamW
with a cosine decay. The loop evaluates the ELBO on the validation split and keeps the best
checkpoint by it (`experiments/debd` scores the test split).

flowjax train flowjax/configs/debd_dfm.py --workdir work/debd_dfm \
    --config.data.path=../shared/data/debd-binary --config.data.name=plants
"""

from flowjax.families import DFMConfig
from flowjax.train.config import (
    CheckpointConfig,
    DataConfig,
    LogConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)

EVERY = 500


def get_config() -> TrainConfig:
    return TrainConfig(
        steps=6000,
        family="dfm",
        data=DataConfig(kind="table", name="nltcs", batch_size=256),
        model=ModelConfig(
            "token_transformer", vocab_size=2, depth=3, width=128, heads=4, positions="learned"
        ),
        flow=DFMConfig(scheduler="condot", source="mask", loss="cross_entropy", elbo_times=32),
        optim=OptimConfig(
            lr=1e-3,
            schedule="cosine",
            warmup_steps=200,
            end_lr_factor=0.01,
            weight_decay=0.01,
            grad_clip=1.0,
            ema_decay=0.999,
        ),
        checkpoint=CheckpointConfig(
            every=EVERY, keep=1, best_metric="eval/elbo_bits_per_token", best_mode="min"
        ),
        log=LogConfig(
            every=100,
            sample_every=0,
            eval_every=EVERY,
            num_samples=4096,
            eval_method="euler",
            eval_steps=64,
        ),
    )
