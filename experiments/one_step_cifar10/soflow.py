"""SoFlow (Luo et al. 2025) on unconditional CIFAR-10 with the paper's setting, as its code
runs it (zlab-princeton/SoFlow: `cifar.yaml`, `train.py`, `models.py`). Published (its
README): 1-NFE / 2-NFE FID-50k 2.86 / 2.28 (2.8600 / 2.2827 at 800k steps; 2 NFE re-noised).

    flowjax train experiments/one_step_cifar10/soflow.py --workdir work/soflow_cifar10 \\
        --config.data.path=../shared/data/cifar10-jpeg
    flowjax fid --workdir work/soflow_cifar10 --num 50000 --method flow_map --steps 1
    flowjax fid --workdir work/soflow_cifar10 --num 50000 --method renoise --steps 2

Settings and where they come from:
- network: EDM's DDPM++ SongUNet (`song_unet`, preset "soflow_cifar10": py-meanflow's with
  dropout 0.3; `models.py`), two times (t, t - s) in the code, (s, e - s) here; 55,932,419
  parameters, as SoFlow's network instantiated.
- batch 1024, 800,000 steps (`total_steps`), RAdam (`torch.optim.RAdam`; ours
  `optim.name=radam`, optax's rectification) at lr 1e-4 constant, betas (0.9, 0.999), weight
  decay 0, no clipping.
- the loss (`flowjax.families.SoFlow`, whose defaults are these): ratio 1 (velocity_loss_ratio
  0, no flow-matching rows), adaptive weight power p = 0.75, eps 1e-3, logit-normal means
  (-0.9, -4.0, -0.9) of the flow-matching, end and start times at t = 1 noise with std 1.6,
  ours (0.9, 0.9, 4.0) for (flow matching, start, end); the middle time's ratio rho decays
  exponentially from 1 to 3.125e-4 over the run (l_schedule "Exponent"); gaps of 1e-4.
- data: images in [-1, 1] (`Normalize(0.5, 0.5)`) without dequantization, no flips of the
  loader; EDM's non-leaking augmentation as `train.py` builds it, `AugmentPipe(p=0.12,
  xflip=1e8, yflip=0, scale=1, rotate_frac=0, aniso=1, translate_frac=1)` ("edm_upright"; its
  x-flip mirrors half the images), its 6 labels fed to the network (`flowjax.data.augment`).
- EMA 0.9999 without warm-up, updated after every 16th step with decay 0.9999^16
  (`optim.ema_every = 16`; its CIFAR-10 branch).
- float32 (TF32 matmuls allowed there).

Not expressible here:
- the EMA update computed in float64 (stored float32 there as here): float32 here. Its first
  update comes after its first step, then after steps 17, 33, ...; ours after steps 16, 32, ...
- evaluation of 50,000 samples every 25,000 steps in the loop: `flowjax fid` afterwards (our
  Inception network; SoFlow's reference statistics are the 50,000 training images, as here).
- the augmentation's numbers (not its distribution) differ from EDM's code as
  `flowjax.data.augment` lists (per-record draws on the host, per-image padding margins).
"""

from flowjax.families.flow_maps import SoFlowConfig
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
        steps=800_000,
        family="soflow",
        data=DataConfig(
            kind="cifar10",
            path="../shared/data/cifar10-jpeg",
            batch_size=1024,
            flip=False,
            dequantize=False,
            augment="edm_upright",
            augment_p=0.12,
        ),
        model=ModelConfig("song_unet", preset="soflow_cifar10"),
        flow=SoFlowConfig(
            ratio=1.0,
            fm_mean=0.9,
            start_mean=0.9,
            end_mean=4.0,
            time_std=1.6,
            rho_start=1.0,
            rho_end=3.125e-4,
            power=0.75,
            eps=1e-3,
        ),
        optim=OptimConfig(
            name="radam",
            lr=1e-4,
            b1=0.9,
            b2=0.999,
            ema_decay=0.9999,
            ema_warmup=False,
            ema_every=16,
        ),
        checkpoint=CheckpointConfig(every=25_000, keep=3),
        log=LogConfig(
            every=100, sample_every=25_000, num_samples=64, eval_method="flow_map", eval_steps=1
        ),
    )
