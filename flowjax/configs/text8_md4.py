"""Discrete flow matching on text8 at MD4's published setting (Shi et al. 2024, "Simplified
and Generalized Masked Diffusion for Discrete Data"; google-deepmind/md4,
`md4/configs/md4/text8.py`): 27 characters (a-z and space), windows of 256 at every offset of
the first 90M characters (train), 5M for validation, the last 5M for test (non-overlapping
windows on the held-out splits); a 12-layer 768-wide transformer (12 heads); a mask source,
kappa_t = t (MD4's linear schedule: its ELBO is ours, `flowjax.losses.dfm_elbo`), batch
512, AdamW lr 3e-4 (2,000 warm-up steps, cosine decay), beta2 0.999, no weight decay, EMA
0.9999, 1M steps. Published test bounds: MD4 <= 1.37 bits/char, SEDD absorbing <= 1.39, D3PM
absorbing <= 1.45. The data is not shipped: `text8.zip` (mattmahoney.net/dc/text8.zip) or
the unzipped file, at a local path. Sized for a pod: `flowjax compile` projects its cost.

flowjax train flowjax/configs/text8_md4.py --workdir work/text8 --config.data.path=/data/text8.zip
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

VOCAB = 27  # a-z and space


def get_config() -> TrainConfig:
    return TrainConfig(
        steps=1_000_000,
        family="dfm",
        precision="bfloat16",
        data=DataConfig(
            kind="text",
            sequence_length=256,
            stride=1,
            split_fractions=(0.9, 0.95),
            batch_size=512,
            workers=4,
        ),
        model=ModelConfig("token_transformer", preset="md4_text8", vocab_size=VOCAB),
        flow=DFMConfig(scheduler="condot", source="mask", loss="cross_entropy", elbo_times=128),
        optim=OptimConfig(
            lr=3e-4,
            schedule="cosine",
            warmup_steps=2000,
            b2=0.999,
            weight_decay=0.0,
            ema_decay=0.9999,
        ),
        checkpoint=CheckpointConfig(
            every=10_000, keep=2, best_metric="eval/elbo_bits_per_token", best_mode="min"
        ),
        log=LogConfig(
            every=500,
            sample_every=50_000,
            eval_every=10_000,
            num_samples=1024,
            eval_method="euler",
            eval_steps=256,
        ),
    )
