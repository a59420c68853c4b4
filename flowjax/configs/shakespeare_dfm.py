"""Discrete flow matching on tiny-shakespeare characters at nanoGPT's CPU `shakespeare_char`
setting: 64-character windows, batch 12, 2,000 steps, a 4-layer 128-wide transformer
(4 heads), AdamW lr 1e-3 (100 warm-up steps, cosine to 1e-4, beta2 0.99, weight decay 0.1,
clipping at 1); a mask source, kappa_t = t, cross-entropy; ELBO in bits per character on the
last 10% of the file, CTMC samples.

flowjax train flowjax/configs/shakespeare_dfm.py --workdir work/shakespeare_dfm \
    --config.data.path=../shared/data/tiny-shakespeare/input.txt
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

VOCAB = 65  # the characters of tiny-shakespeare (the model's output size; checked at build)


def get_config() -> TrainConfig:
    return TrainConfig(
        steps=2000,
        family="dfm",
        data=DataConfig(kind="text", sequence_length=64, batch_size=12),
        model=ModelConfig("token_transformer", preset="nanogpt_cpu", vocab_size=VOCAB),
        flow=DFMConfig(scheduler="condot", source="mask", loss="cross_entropy", elbo_times=32),
        optim=OptimConfig(
            lr=1e-3,
            schedule="cosine",
            warmup_steps=100,
            end_lr_factor=0.1,
            b2=0.99,
            weight_decay=0.1,
            grad_clip=1.0,
            ema_decay=0.999,
        ),
        checkpoint=CheckpointConfig(every=1000, keep=2),
        log=LogConfig(
            every=100,
            sample_every=1000,
            eval_every=500,
            num_samples=256,
            eval_method="euler",
            eval_steps=64,
        ),
    )
