"""DiT-XL/2 on 32x32x4 latents (ImageNet 256x256 through the Stable Diffusion VAE), the
standard latent-DiT setting of Peebles & Xie 2023 (Sec. 4: AdamW at a constant lr 1e-4 without
weight decay, batch 256, EMA 0.9999, 7M steps for the final XL/2 model, labels dropped with
probability 0.1 for classifier-free guidance) trained as flow matching (CondOT path), as SiT
(Ma et al. 2024) does; bf16 compute with float32 master weights, as on TPU.

The latents are not on this machine: this config is for `flowjax compile` with their shape,

flowjax compile experiments/pod_scale/dit_xl2_latents.py --topology v5e:16x16 --shape 32,32,4

and trains on latents encoded offline into a TFDS dataset under --config.data.path.
"""

from flowjax.families import CFMConfig
from flowjax.train.config import DataConfig, ModelConfig, OptimConfig, TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(
        steps=7_000_000,
        precision="bfloat16",
        data=DataConfig(kind="tfds", name="imagenet_sdvae_latents", batch_size=256),
        model=ModelConfig("dit", preset="XL/2", num_classes=1000),
        flow=CFMConfig(scheduler="condot", label_dropout=0.1),
        optim=OptimConfig(lr=1e-4, schedule="constant", ema_decay=0.9999),
    )
