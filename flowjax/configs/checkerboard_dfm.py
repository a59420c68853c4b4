"""Discrete flow matching on the 2-D checkerboard quantized to 128 bins per coordinate (Meta's
`flow_matching` discrete example): a token MLP (each token embedded in 128 features, 3 hidden
layers of 128 SiLU units), kappa_t = t^2, the generalized KL loss, a uniform source, Adam at
lr 1e-3.

flowjax train flowjax/configs/checkerboard_dfm.py --workdir work/checkerboard_dfm
flowjax train flowjax/configs/checkerboard_dfm.py --config.flow.source=mask ...
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

BINS = 128


def get_config() -> TrainConfig:
    return TrainConfig(
        steps=10_000,
        family="dfm",
        data=DataConfig(kind="toy2d", distribution="checkerboard", bins=BINS, batch_size=4096),
        model=ModelConfig(
            "token_mlp", vocab_size=BINS, width=128, depth=3, embed_dim=128, activation="silu"
        ),
        flow=DFMConfig(
            scheduler="polynomial", polynomial_n=2.0, source="uniform", loss="generalized_kl"
        ),
        optim=OptimConfig(lr=1e-3, ema_decay=0.999),
        checkpoint=CheckpointConfig(every=2000, keep=2),
        log=LogConfig(
            every=100,
            sample_every=5000,
            eval_every=5000,
            num_samples=4096,
            eval_method="euler",
            eval_steps=64,
        ),
    )
