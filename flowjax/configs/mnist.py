"""Class-conditional FM-OT on MNIST (IDX files) with an MLP: a CPU-sized image run, trained
for classifier-free guidance (labels dropped to the null class with probability 0.2).
experiments/mnist runs it and measures FID against the guidance scale.

flowjax train flowjax/configs/mnist.py --config.data.path=../shared/data/mnist --workdir work/mnist
"""

from flowjax.train.config import (
    CheckpointConfig,
    DataConfig,
    FlowConfig,
    LogConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)


def get_config() -> TrainConfig:
    return TrainConfig(
        steps=20_000,
        data=DataConfig(kind="mnist", path="../shared/data/mnist", batch_size=256, dequantize=True),
        model=ModelConfig(
            kind="mlp", width=1024, depth=4, time_embedding="sinusoidal", num_classes=10
        ),
        flow=FlowConfig(scheduler="condot", label_dropout=0.2),
        optim=OptimConfig(
            lr=1e-3,
            schedule="cosine",
            warmup_steps=500,
            end_lr_factor=0.01,
            grad_clip=1.0,
            ema_decay=0.999,
        ),
        checkpoint=CheckpointConfig(every=2000, keep=3, best_metric="eval/bits_per_dim"),
        log=LogConfig(every=100, sample_every=2000, eval_every=2000, num_samples=100),
    )
