"""Lipman et al. 2023, Table 1, ImageNet 64x64 "FM w/ OT" (unconditional): the ADM UNet of
App. Table 3 (192 channels, 3 res blocks, multipliers 1,2,3,4, attention at 32x32, 16x16 and 8x8
with 4 heads of 64 channels, dropout 0), the CondOT path, Adam at a constant lr 1e-4 without
warm-up, batch 2048, 157k iterations (250 epochs), 16-bit mixed precision (App. E.2: here bf16
compute with float32 master weights); evaluation with dopri5 at rtol = atol = 1e-5.
"FM w/ Diffusion": add --config.flow.scheduler=vp. Data as in `imagenet32_fm_ot.py`
(TFDS `downsampled_imagenet/64x64`, prepared offline into DIR):

flowjax train experiments/lipman2023_table1/imagenet64_fm_ot.py --workdir work/lipman_in64_ot \\
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
        steps=157_000,
        precision="bfloat16",
        data=DataConfig(kind="tfds", name="downsampled_imagenet/64x64", batch_size=2048),
        model=ModelConfig(
            "unet",
            model_channels=192,
            num_res_blocks=3,
            channel_mult=(1, 2, 3, 4),
            attention_resolutions=(32, 16, 8),
            num_heads=4,
            num_head_channels=64,
        ),
        flow=CFMConfig(scheduler="condot"),
        optim=OptimConfig(lr=1e-4, schedule="constant", ema_decay=0.9999),
        checkpoint=CheckpointConfig(every=5_000, keep=3),
        log=LogConfig(every=100, sample_every=10_000, num_samples=100, eval_method="dopri5"),
    )
