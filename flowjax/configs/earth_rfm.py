"""Riemannian FM on earth events (S^2) with the RFM code's Volcano settings: a 12 x 2048 SiLU
MLP on the ambient coordinates, batch 8,192, AdamW lr 2e-4 with weight decay 0.01 and a
cosine decay, EMA 0.999, 1M iterations; the held-out NLL by the exact divergence. Volcano by
default; Earthquake, Flood, Fire with `--config.data.path=.../quakes_all.csv` (etc.).

flowjax train flowjax/configs/earth_rfm.py --workdir work/volcano \
    --config.data.path=../shared/data/earth-sphere/volerup.csv
"""

from flowjax.families import RFMConfig
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
        steps=1_000_000,
        family="rfm",
        data=DataConfig(kind="earth", batch_size=8192),
        model=ModelConfig("mlp", width=2048, depth=12, activation="silu"),
        flow=RFMConfig(nll_rtol=1e-6),
        optim=OptimConfig(
            lr=2e-4, schedule="cosine", end_lr_factor=0.0, weight_decay=0.01, ema_decay=0.999
        ),
        checkpoint=CheckpointConfig(every=10_000, keep=2, best_metric="eval/nll", best_mode="min"),
        log=LogConfig(
            every=1000, sample_every=10_000, eval_every=1000, num_samples=4096, eval_method="rk4"
        ),
    )
