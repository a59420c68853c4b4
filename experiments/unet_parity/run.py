"""UNet parity with TorchCFM: their weights in our network, same inputs, compare the outputs.

    python -m experiments.unet_parity.run [--torch-python PATH] [--data work/unet_parity/torch.npz]

With `--torch-python` (a Python with torch and torchcfm) it first runs `torch_side.py` to write
the data file. For each config it builds our `UNet` from TorchCFM's `UNetModelWrapper` arguments,
loads the reference state_dict through `from_torchcfm` (our own name mapping; conv kernels OIHW ->
HWIO, 1x1 attention convs and linears transposed), runs it on the same `(x, t, y)` (NCHW -> NHWC)
in float32 and in bfloat16 compute, and prints the max abs and relative differences.
"""

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flowjax import models

# Our module paths -> TorchCFM's (module paths inside the wrapper).
TOP = {
    "time_embed.branches.0.hidden": "time_embed.0",
    "time_embed.branches.0.out": "time_embed.2",
    "class_embed": "label_emb",
    "conv_in": "input_blocks.0.0",
    "norm_out": "out.0",
    "conv_out": "out.2",
}
LAYER = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "skip": "skip_connection",
    "norm": "norm",
    "qkv": "qkv",
    "proj": "proj_out",
}
LEAF = {"kernel": "weight", "scale": "weight", "embedding": "weight", "bias": "bias"}


def unet_kwargs(config: dict) -> dict[str, Any]:
    """Our `UNet` arguments for TorchCFM's `UNetModelWrapper(**config)`."""
    c, h, w = config["dim"]
    head_channels = config.get("num_head_channels", -1)
    return dict(
        image_shape=(h, w, c),
        model_channels=config["num_channels"],
        num_res_blocks=config["num_res_blocks"],
        channel_mult=config.get("channel_mult"),
        attention_resolutions=config.get("attention_resolutions", "16"),
        num_heads=config.get("num_heads", 1),
        num_head_channels=None if head_channels == -1 else head_channels,
        dropout=config.get("dropout", 0.0),
        use_scale_shift_norm=config.get("use_scale_shift_norm", False),
        resblock_updown=config.get("resblock_updown", False),
        num_classes=config.get("num_classes", 1000) if config.get("class_cond") else None,
    )


def torch_key(path: tuple) -> str:
    """Our parameter path, e.g. `('down', 3, 0, 'conv1', 'kernel')` -> TorchCFM's state_dict
    key, `input_blocks.4.0.in_layers.2.weight`."""
    *modules, leaf = path
    if (name := ".".join(map(str, modules))) in TOP:
        return f"{TOP[name]}.{LEAF[leaf]}"
    group, *index, layer = modules
    if group == "down":
        prefix = f"input_blocks.{index[0] + 1}.{index[1]}"  # input_blocks.0 is conv_in
    elif group == "up":
        prefix = f"output_blocks.{index[0]}.{index[1]}"
    else:
        prefix = f"middle_block.{index[0]}"
    if layer == "conv":  # the conv of a Downsample ("op") or an Upsample ("conv")
        return f"{prefix}.{'op' if group == 'down' else 'conv'}.{LEAF[leaf]}"
    return f"{prefix}.{LAYER[layer]}.{LEAF[leaf]}"


def to_ours(weight: np.ndarray, leaf: str) -> np.ndarray:
    """A PyTorch weight in our layout: conv OIHW -> HWIO, Conv1d OI1 and Linear OI -> IO."""
    if leaf != "kernel":
        return weight  # biases, norm scales, embedding tables
    if weight.ndim == 4:
        return weight.transpose(2, 3, 1, 0)
    return weight.reshape(weight.shape[:2]).T  # Linear [O, I] or 1x1 Conv1d [O, I, 1]


def from_torchcfm(model: models.UNet, state_dict: dict[str, np.ndarray]) -> nnx.State:
    """Our parameters for `model` from a TorchCFM `UNetModelWrapper` state_dict. TorchCFM's
    label table has no null-class row: ours keeps its last row as initialized (zeros here)."""
    flat, unused = [], set(state_dict)
    for path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        key = torch_key(path)
        unused.discard(key)
        like = variable.get_value()
        weight = to_ours(state_dict[key], path[-1])
        if path[0] == "class_embed":
            weight = np.concatenate([weight, np.zeros_like(weight[:1])])
        if weight.shape != like.shape:
            raise ValueError(f"{key}: shape {weight.shape} (converted), ours {like.shape}")
        flat.append((path, variable.replace(jnp.asarray(weight, like.dtype))))
    if unused:
        raise ValueError(f"TorchCFM parameters not mapped: {sorted(unused)}")
    return nnx.from_flat_state(flat)


def compare(name: str, config: dict, data: Any) -> dict[str, float]:
    state_dict = {
        k.removeprefix(f"{name}/param/"): data[k]
        for k in data.files
        if k.startswith(f"{name}/param/")
    }
    x = jnp.asarray(data[f"{name}/x"].transpose(0, 2, 3, 1))  # NCHW -> NHWC
    t = jnp.asarray(data[f"{name}/t"])
    y = jnp.asarray(data[f"{name}/y"]) if f"{name}/y" in data.files else None
    theirs = data[f"{name}/out"].transpose(0, 2, 3, 1)
    result = {}
    for label, dtype in (("float32", None), ("bfloat16", jnp.bfloat16)):
        kwargs = unet_kwargs(config)
        model = nnx.eval_shape(lambda: models.UNet(**kwargs, dtype=dtype, rngs=nnx.Rngs(0)))  # noqa: B023
        v, _ = models.functional(model)
        params = from_torchcfm(model, state_dict)
        ours = np.asarray(jax.jit(v)(params, x, t, y=y))
        diff = float(np.max(np.abs(ours - theirs)))
        result[f"{label}_max_abs"] = diff
        result[f"{label}_rel"] = diff / float(np.max(np.abs(theirs)))
    result["max_abs_output"] = float(np.max(np.abs(theirs)))
    return result


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("work/unet_parity/torch.npz"))
    parser.add_argument("--torch-python", help="run torch_side.py with this Python first")
    args = parser.parse_args(argv)
    if args.torch_python:
        cmd = [args.torch_python, "-m", "experiments.unet_parity.torch_side", "--out", args.data]
        subprocess.run(cmd, check=True)
    data = np.load(args.data)
    configs = json.loads(str(data["configs"]))
    results = {}
    print(
        f"{'config':<24} {'max |theirs|':>12} {'fp32 max abs':>13} {'fp32 rel':>9} {'bf16 rel':>9}"
    )
    for name, config in configs.items():
        r = results[name] = compare(name, config, data)
        print(
            f"{name:<24} {r['max_abs_output']:>12.4f} {r['float32_max_abs']:>13.2e} "
            f"{r['float32_rel']:>9.2e} {r['bfloat16_rel']:>9.2e}"
        )
    return results


if __name__ == "__main__":
    main()
