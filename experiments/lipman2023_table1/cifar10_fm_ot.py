"""Lipman et al. 2023, Table 1, CIFAR-10 "FM w/ OT": the ADM UNet of App. Table 3 (256 channels,
2 res blocks, multipliers 1,2,2,2, attention at 16x16 with 4 heads of 64 channels, dropout 0;
142,861,315 parameters), the CondOT path, Adam at lr 5e-4 with a 45k-step linear warm-up then
polynomial decay, batch 256, 391k iterations, float32 (App. E.2; --config.precision=bfloat16
computes in bf16 with float32 master weights); evaluation with dopri5 at rtol = atol = 1e-5.

flowjax train experiments/lipman2023_table1/cifar10_fm_ot.py --workdir work/lipman_fm_ot \\
    --config.data.path=../shared/data/cifar10-jpeg
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
        steps=391_000,
        data=DataConfig(
            kind="cifar10", path="../shared/data/cifar10-jpeg", batch_size=256, flip=True
        ),
        model=ModelConfig("unet", preset="lipman_cifar10"),
        flow=CFMConfig(scheduler="condot"),
        optim=OptimConfig(lr=5e-4, schedule="polynomial", warmup_steps=45_000, ema_decay=0.9999),
        checkpoint=CheckpointConfig(every=5_000, keep=3),
        log=LogConfig(every=100, sample_every=10_000, num_samples=100, eval_method="dopri5"),
    )
