"""TorchCFM side of the UNet parity check: reference networks, inputs and outputs to an .npz.

Run from the repository root with a Python that has torch and torchcfm (not our venv):

    python -m experiments.unet_parity.torch_side [--out work/unet_parity/torch.npz]

For each config of `CONFIGS` it builds `torchcfm.models.unet.UNetModelWrapper`, perturbs every
parameter (ADM zero-initializes the output convolutions, which would make the check vacuous),
evaluates it in eval mode on a random batch `(t, x, y)` and stores, under the config's name:
the state_dict (`{name}/param/{key}`, PyTorch layouts), `x` (NCHW), `t`, `y` and the output.
The configs themselves are saved as JSON (`configs`), for `run.py` to build our network.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torchcfm.models.unet.unet import UNetModelWrapper

CONFIGS = {
    # ResBlock up/down sampling, scale-shift norm, attention at 16 and 8 (4 heads), labels.
    "updown_scaleshift_cond": dict(
        dim=(3, 32, 32),
        num_channels=64,
        num_res_blocks=2,
        channel_mult=(1, 2, 2),
        attention_resolutions="16,8",
        num_heads=4,
        use_scale_shift_norm=True,
        resblock_updown=True,
        class_cond=True,
        num_classes=10,
        dropout=0.1,
    ),
    # Strided-conv down / nearest+conv up sampling, additive embedding, 32 channels per head.
    "conv_resample_uncond": dict(
        dim=(3, 32, 32),
        num_channels=64,
        num_res_blocks=1,
        channel_mult=(1, 2, 2, 2),
        attention_resolutions="16",
        num_head_channels=32,
    ),
    # Our "mnist" preset: 28x28x1, 32 channels, attention at 14, 10 classes.
    "mnist": dict(
        dim=(1, 28, 28),
        num_channels=32,
        num_res_blocks=1,
        channel_mult=(1, 2, 2),
        attention_resolutions="14",
        num_head_channels=32,
        class_cond=True,
        num_classes=10,
    ),
}
BATCH = 4


def reference(name: str, config: dict, seed: int) -> dict[str, np.ndarray]:
    torch.manual_seed(seed)
    model = UNetModelWrapper(**config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        c, h, w = config["dim"]
        x = torch.randn(BATCH, c, h, w)
        t = torch.rand(BATCH)
        y = torch.randint(0, config.get("num_classes", 1), (BATCH,))
        out = model(t, x, y=y if config.get("class_cond") else None)
    arrays = {f"{name}/param/{k}": v.numpy() for k, v in model.state_dict().items()}
    arrays.update({f"{name}/x": x.numpy(), f"{name}/t": t.numpy(), f"{name}/out": out.numpy()})
    if config.get("class_cond"):
        arrays[f"{name}/y"] = y.numpy()
    print(f"{name}: {sum(p.numel() for p in model.parameters()):,} parameters")
    return arrays


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("work/unet_parity/torch.npz"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    arrays = {}
    for i, (name, config) in enumerate(CONFIGS.items()):
        arrays.update(reference(name, config, args.seed + i))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, configs=np.array(json.dumps(CONFIGS)), **arrays)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
