"""Discrete flow matching on tiny-shakespeare characters: 32-character windows, a mask source,
kappa_t = t, cross-entropy, a 4x1024 token MLP; samples by the CTMC sampler, ELBO in bits per
character.

flowjax train flowjax/configs/shakespeare_dfm.py --workdir work/shakespeare \
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
        steps=20_000,
        family="dfm",
        data=DataConfig(kind="text", sequence_length=32, batch_size=256),
        model=ModelConfig("token_mlp", vocab_size=VOCAB, width=1024, depth=4, embed_dim=64),
        flow=DFMConfig(scheduler="condot", source="mask", loss="cross_entropy", elbo_times=32),
        optim=OptimConfig(lr=3e-4, schedule="cosine", end_lr_factor=0.1, ema_decay=0.999),
        checkpoint=CheckpointConfig(every=2000, keep=3),
        log=LogConfig(
            every=100,
            sample_every=2000,
            eval_every=2000,
            num_samples=256,
            eval_method="euler",
            eval_steps=32,
        ),
    )
