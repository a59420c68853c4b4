"""FM-OT (CondOT path) on a toy 2-D distribution with a 4x512 SiLU MLP.

flowjax train flowjax/configs/toy2d.py --workdir work/toy2d
flowjax train flowjax/configs/toy2d.py --config.data.distribution=moons --workdir work/moons
"""

from flowjax.train.config import (
    CheckpointConfig,
    DataConfig,
    LogConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)


def get_config() -> TrainConfig:
    return TrainConfig(
        steps=5_000,
        data=DataConfig(kind="toy2d", distribution="checkerboard", batch_size=2048),
        model=ModelConfig("mlp", width=512, depth=4, activation="silu"),
        optim=OptimConfig(lr=1e-3, schedule="cosine", end_lr_factor=0.01, ema_decay=0.999),
        checkpoint=CheckpointConfig(every=1000, keep=3),
        log=LogConfig(every=100, sample_every=1000, eval_every=1000, num_samples=8192),
    )
