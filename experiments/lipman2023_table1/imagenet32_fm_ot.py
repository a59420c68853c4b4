"""Lipman et al. 2023, Table 1, ImageNet 32x32 "FM w/ OT" (unconditional): the ADM UNet of
App. Table 3 (256 channels, 3 res blocks, multipliers 1,2,2,2, attention at 16x16 and 8x8 with 4
heads of 64 channels, dropout 0), the CondOT path, Adam at lr 1e-4 with a 20k-step linear
warm-up then linear decay, batch 1024, 250k iterations (200 epochs), float32 (App. E.2);
evaluation with dopri5 at rtol = atol = 1e-5. "FM w/ Diffusion": add --config.flow.scheduler=vp.

The paper cites the downsampled ImageNet of Chrabaszcz et al. 2017; this config reads TFDS's
`downsampled_imagenet/32x32` (van den Oord et al. 2016, another resize of the same images),
prepared offline into DIR (`tfds build downsampled_imagenet/32x32 --data_dir DIR`):

flowjax train experiments/lipman2023_table1/imagenet32_fm_ot.py --workdir work/lipman_in32_ot \\
    --config.data.path=DIR
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
        steps=250_000,
        data=DataConfig(kind="tfds", name="downsampled_imagenet/32x32", batch_size=1024),
        model=ModelConfig(
            "unet",
            model_channels=256,
            num_res_blocks=3,
            channel_mult=(1, 2, 2, 2),
            attention_resolutions=(16, 8),
            num_heads=4,
            num_head_channels=64,
        ),
        flow=CFMConfig(scheduler="condot"),
        optim=OptimConfig(lr=1e-4, schedule="polynomial", warmup_steps=20_000, ema_decay=0.9999),
        checkpoint=CheckpointConfig(every=5_000, keep=3),
        log=LogConfig(every=100, sample_every=10_000, num_samples=100, eval_method="dopri5"),
    )
