"""The scaling table of experiments/pod_scale/README.md: the real training step of four
published configurations compiled ahead of time for five TPU slices, data-parallel and fully
sharded (FSDP over the slice), per-chip memory, projected throughput and the chip-hours of the
published run. Needs the TPU compiler (`pip install '.[tpu-compile]'`); no TPU.

python -m experiments.pod_scale.run [--only NAME] [--utilization 0.4]

Each compiled row is kept in `experiments/pod_scale/rows.jsonl` (a rerun compiles only what is
missing: a UNet step takes minutes to compile on two CPU cores); the Markdown table goes to
`experiments/pod_scale/table.md` and the terminal.
"""

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # compiling for a TPU that is not here

from tqdm import tqdm

from flowjax.train import aot
from flowjax.train.config import load_config

HERE = Path(__file__).parent
LIPMAN = HERE.parent / "lipman2023_table1"
# name: (config file, event shape where the data does not tell, published steps)
CONFIGS = {
    "Lipman CIFAR-10": (LIPMAN / "cifar10_fm_ot.py", None, 391_000),
    "Lipman ImageNet-32": (LIPMAN / "imagenet32_fm_ot.py", None, 250_000),
    "Lipman ImageNet-64": (LIPMAN / "imagenet64_fm_ot.py", None, 157_000),
    "DiT-XL/2, 32x32x4 latents": (HERE / "dit_xl2_latents.py", (32, 32, 4), 7_000_000),
}
# Cloud TPU names: v5e-N has N chips, v5p-N has N TensorCores (N / 2 chips)
SLICES = {
    "v5e-16": "v5e:4x4",
    "v5e-64": "v5e:8x8",
    "v5e-256": "v5e:16x16",
    "v5p-128": "v5p:4x4x4",
    "v5p-512": "v5p:4x8x8",
}


def row(name: str, slice_name: str, sharding: str, utilization: float) -> dict:
    """Compile one configuration for one slice and summarize what it needs."""
    path, shape, steps = CONFIGS[name]
    config = load_config(path)
    chip, devices = aot.topology(SLICES[slice_name])
    fsdp = len(devices) if sharding == "FSDP" else 1
    config = dataclasses.replace(config, mesh=dataclasses.replace(config.mesh, fsdp=fsdp))
    start = time.perf_counter()
    need = aot.requirement(config, devices, chip, shape, utilization)
    out = {
        "config": name,
        "slice": slice_name,
        "sharding": sharding,
        "chips": len(devices),
        "global_batch": config.data.batch_size,
        "per_chip_batch": config.data.batch_size // len(devices),
        "hbm_gib": chip.hbm_gib,
        "needed_gib": need.needed / aot.GIB,
        "state_gib": need.state / aot.GIB,
        "fits": need.report is not None,
        "compile_s": time.perf_counter() - start,
    }
    if need.report is not None:
        report = need.report
        out |= {
            "samples_per_s": report.samples_per_second,
            "step_ms": report.step_seconds * 1e3,
            "tflop_per_chip_step": report.flops_per_step / 1e12,
            "collective_mb_per_step": sum(report.collectives.values()) / 1e6,
            "chip_hours": steps * report.step_seconds * len(devices) / 3600,
            "days": steps * report.step_seconds / 86400,
        }
    return out


def table(rows: list[dict]) -> str:
    lines = [
        "| config | slice | sharding | batch (per chip) | GiB per chip (state) | fits | "
        "img/s | step ms | collectives MB/step | chip-hours (wall hours) of the run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        memory = f"{r['needed_gib']:.2f} ({r['state_gib']:.2f}) of {r['hbm_gib']:g}"
        if r["fits"]:
            speed = (
                f"{r['samples_per_s']:,.0f} | {r['step_ms']:.1f} | "
                f"{r['collective_mb_per_step']:,.0f} | "
                f"{r['chip_hours']:,.0f} ({r['days'] * 24:,.1f})"
            )
        else:
            speed = "- | - | - | -"
        lines.append(
            f"| {r['config']} | {r['slice']} | {r['sharding']} | "
            f"{r['global_batch']} ({r['per_chip_batch']}) | {memory} | "
            f"{'yes' if r['fits'] else 'no'} | {speed} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--only", choices=list(CONFIGS), help="compile one configuration")
    parser.add_argument("--utilization", type=float, default=0.4)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    kept = args.out / "rows.jsonl"
    rows = [json.loads(line) for line in kept.read_text().splitlines()] if kept.exists() else []
    keys = [(n, s, m) for n in CONFIGS for s in SLICES for m in ("DP", "FSDP")]
    done = {(r["config"], r["slice"], r["sharding"]) for r in rows}
    todo = [k for k in keys if k not in done and args.only in (None, k[0])]
    for key in tqdm(todo, desc="pod_scale", unit="compile"):
        result = row(*key, args.utilization)
        rows.append(result)
        with kept.open("a") as f:
            f.write(json.dumps(result) + "\n")
    rows.sort(key=lambda r: keys.index((r["config"], r["slice"], r["sharding"])))
    text = table(rows)
    (args.out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
