"""Class-conditional FM-OT on MNIST (IDX files) with a small ADM UNet: a CPU-sized image run,
trained for classifier-free guidance (labels dropped to the null class with probability 0.2).
experiments/mnist runs it and measures FID against the guidance scale.

flowjax train flowjax/configs/mnist.py --config.data.path=../shared/data/mnist --workdir work/mnist
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
        steps=2_400,
        data=DataConfig(kind="mnist", path="../shared/data/mnist", batch_size=128, dequantize=True),
        model=ModelConfig(
            "unet",
            num_classes=10,
            model_channels=32,
            num_res_blocks=1,
            channel_mult=(1, 2, 2),
            attention_resolutions=(7,),
            num_heads=1,
        ),
        flow=CFMConfig(scheduler="condot", label_dropout=0.2),
        optim=OptimConfig(
            lr=1e-3,
            schedule="cosine",
            warmup_steps=200,
            end_lr_factor=0.01,
            grad_clip=1.0,
            ema_decay=0.999,
        ),
        checkpoint=CheckpointConfig(every=400, keep=2),
        log=LogConfig(
            every=50,
            sample_every=1_200,
            eval_every=2_400,
            num_samples=100,
            eval_method="midpoint",
            eval_steps=5,
        ),
    )
