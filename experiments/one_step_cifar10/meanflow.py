"""MeanFlow (Geng et al. 2025) on unconditional CIFAR-10 with the paper's setting, as its
PyTorch code runs it (py-meanflow, `meanflow/scripts/cifar10_v0.sh`, "the original
configuration used in the paper"). Published: 1-NFE FID-50k 2.92 (the paper); the py-meanflow
README's checkpoint, 2.80, comes from its improved `cifar10_v1.sh` (`meanflow_v1.py`).

    flowjax train experiments/one_step_cifar10/meanflow.py --workdir work/meanflow_cifar10 \\
        --config.data.path=../shared/data/cifar10-jpeg
    flowjax fid --workdir work/meanflow_cifar10 --num 50000 --method flow_map --steps 1

Settings and where they come from (py-meanflow: the script, `train_arg_parser.py`, `train.py`,
`training/train_loop.py`, `training/data_transform.py`, `models/model_configs.py`,
`models/meanflow.py`, `models/time_sampler.py`, `models/ema.py`):
- network: EDM's DDPM++ SongUNet (`song_unet`, preset "meanflow_cifar10": 128 channels,
  multipliers 2,2,2, 4 blocks per level, attention at 16x16, FIR [1,3,3,1], dropout 0.2, the
  augmentation-label projection of `--use_edm_aug`, augment_dim 6), two times; 55,932,419
  parameters, as py-meanflow's network instantiated.
- batch 1024 (128 per GPU x 8), 16,000 epochs of `50,000 // 8 // 128 = 48` steps (the
  per-GPU loader drops its last partial batch) = 768,000 steps (the README rounds to "800k");
  warm-up 200 epochs = 9,600 steps, linear from lr 1e-8 (PyTorch's `LinearLR` with
  `start_factor = 1e-8 / lr`; `optim.warmup_init`), then constant.
- Adam (not AdamW: weight decay 0), lr 6e-4, betas (0.9, 0.999), eps 1e-8, no clipping.
- EMA 0.9999 without warm-up (the EMA starts as a copy of the weights), updated after every
  16th step with decay 0.9999^16 (`optim.ema_every = 16`).
- times: t and r both logit-normal(-2, 2) at t = 1 noise (tr_sampler v0), sorted, r = t for
  1 - ratio = 25% of the batch: ours is (2, 2) with e = s on that share; ratio 0.75.
- adaptive weight `1 / (sum of squared errors + 1e-3)^0.75` (norm_p, norm_eps).
- data: images in [-1, 1] without dequantization, random horizontal flips (the loader's
  `RandomHorizontalFlip`), then EDM's non-leaking augmentation with p = 0.12 as its train loop
  builds it, `AugmentPipe(p=0.12, xflip=1e8, yflip=0, scale=1, rotate_frac=0, aniso=1,
  translate_frac=1)` ("edm_upright": EDM's CIFAR-10 pipeline without the y-flip and the
  rotation), its 6 labels fed to the network's `map_augment` (`flowjax.data.augment`).
- float32 (the code turns autocast off around the jvp).

Not expressible here (each changes training, not the network's shape):
- the EMA update in float64 (stored float32 there as here) and the two extra EMAs (0.99995,
  0.9996): ours is one EMA, its update computed in float32.
- FID-50k every 50 epochs in the loop: here `flowjax fid` afterwards (our Inception network).
- the network embeds our (s, e - s) where py-meanflow embeds (t, t - r) = (1 - s, e - s): the
  same function class (`flowjax.models.SongUNet`), not the same weights.
- the augmentation's numbers (not its distribution) differ from EDM's code as
  `flowjax.data.augment` lists (per-record draws on the host, per-image padding margins).
"""

from flowjax.families import MeanFlowConfig
from flowjax.train.config import (
    CheckpointConfig,
    DataConfig,
    LogConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)

STEPS_PER_EPOCH = 50_000 // 8 // 128  # 8 GPUs of 128 images, each dropping its last batch


def get_config() -> TrainConfig:
    return TrainConfig(
        steps=16_000 * STEPS_PER_EPOCH,
        family="meanflow",
        data=DataConfig(
            kind="cifar10",
            path="../shared/data/cifar10-jpeg",
            batch_size=1024,
            flip=True,
            dequantize=False,
            augment="edm_upright",
            augment_p=0.12,
        ),
        model=ModelConfig("song_unet", preset="meanflow_cifar10"),
        flow=MeanFlowConfig(ratio=0.75, time_mean=2.0, time_std=2.0, power=0.75, eps=1e-3),
        optim=OptimConfig(
            lr=6e-4,
            warmup_steps=200 * STEPS_PER_EPOCH,
            warmup_init=1e-8,
            b1=0.9,
            b2=0.999,
            ema_decay=0.9999,
            ema_warmup=False,
            ema_every=16,
        ),
        checkpoint=CheckpointConfig(every=24_000, keep=3),
        log=LogConfig(
            every=100, sample_every=24_000, num_samples=64, eval_method="flow_map", eval_steps=1
        ),
    )
