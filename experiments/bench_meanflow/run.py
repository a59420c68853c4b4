"""The cost of MeanFlow's jvp target: seconds per training step of MeanFlow over flow
matching on the same network, on each side (flowjax; PyTorch with `torch.func.jvp`, as
py-meanflow), same machine, same run, the sides one after the other:

    python -m experiments.bench_meanflow.run --torch-python .venv-torch/bin/python

The 2-D MLP on both sides; the MNIST UNet on ours only. Prints the table (the paper reports a
small overhead of the jvp) and writes it with the raw JSON to the workdir.
"""

import argparse
import json
import sys
from pathlib import Path

from experiments.bench_meanflow.workloads import MLP, UNET
from experiments.timing import cpu_model, run_side


def table(ours: dict, theirs: dict) -> str:
    def row(label: str, a: dict, b: dict | None) -> str:
        mine = (
            f"{a['meanflow'] * 1e3:.1f} / {a['fm'] * 1e3:.1f} ms = {a['meanflow'] / a['fm']:.2f}x"
        )
        if b is None:
            return f"| {label} | {mine} | - | - |"
        ref = f"{b['meanflow'] * 1e3:.1f} / {b['fm'] * 1e3:.1f} ms = {b['meanflow'] / b['fm']:.2f}x"
        return f"| {label} | {mine} | {ref} | {b['meanflow'] / a['meanflow']:.2f}x |"

    return "\n".join(
        [
            "| network (batch) | flowjax: MeanFlow / FM step | PyTorch (torch.func.jvp) | "
            "MeanFlow step, theirs / ours |",
            "|---|---|---|---|",
            row(
                f"2-D MLP {MLP['depth']} x {MLP['width']} ({MLP['batch']})",
                ours["mlp"],
                theirs["mlp"],
            ),
            row(f"MNIST UNet ({UNET['batch']})", ours["unet"], None),
            "",
            f"Median of 20 steps after 3 warm-up steps (Adam update included), on a 2-core "
            f"{cpu_model()}; jax {ours['jax']}, torch {theirs['torch']} ({theirs['threads']} "
            "threads).",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--torch-python", default=".venv-torch/bin/python")
    p.add_argument("--workdir", type=Path, default=Path("work/bench_meanflow"))
    args = p.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    theirs = run_side([args.torch_python, "-m", "experiments.bench_meanflow.torch_side"])
    ours = run_side(
        [sys.executable, "-m", "experiments.bench_meanflow.jax_side"], {"JAX_PLATFORMS": "cpu"}
    )
    text = table(ours, theirs)
    (args.workdir / "results.md").write_text(text)
    (args.workdir / "results.json").write_text(
        json.dumps({"ours": ours, "theirs": theirs}, indent=1)
    )
    print(text)


if __name__ == "__main__":
    main()
