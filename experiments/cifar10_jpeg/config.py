"""A short CIFAR-10 run on a CPU, on the shipped JPEG copy: the image pipeline end to end (JPEG
decoding, flips, dequantization, a small ADM UNet, EMA, Orbax checkpoints, sample grids), then
FID with `flowjax fid`. The network is the Lipman et al. CIFAR-10 UNet shrunk to fit a CPU
(32 channels, 1 res block, multipliers 1,2,2, attention at 8x8); the path is CondOT.

flowjax train experiments/cifar10_jpeg/config.py --workdir work/cifar10_jpeg
"""

from flowjax.families import CFMConfig
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
        steps=1_000,
        data=DataConfig(
            kind="cifar10", path="../shared/data/cifar10-jpeg", batch_size=64, flip=True, cache=True
        ),
        model=ModelConfig(
            "unet",
            model_channels=32,
            num_res_blocks=1,
            channel_mult=(1, 2, 2),
            attention_resolutions=(8,),
            num_heads=1,
            dropout=0.1,
        ),
        flow=CFMConfig(scheduler="condot"),
        optim=OptimConfig(
            lr=5e-4, schedule="cosine", warmup_steps=100, grad_clip=1.0, ema_decay=0.999
        ),
        checkpoint=CheckpointConfig(every=500, keep=2),
        log=LogConfig(
            every=50, sample_every=1000, num_samples=100, eval_method="midpoint", eval_steps=10
        ),
    )
