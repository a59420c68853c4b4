"""Discrete flow matching on tiny-shakespeare characters against the autoregressive
transformer of the same size, data and steps, trained by this repo on this CPU: bits per
character on the validation split (the last 10% of the file, nanoGPT's split), one command:

    python -m experiments.shakespeare_char.run                    # nanoGPT's CPU setting
    python -m experiments.shakespeare_char.run --steps 8000 --tag long   # 4x the steps

For each family (`flowjax/configs/shakespeare_{ar,dfm}.py`: 4 layers x 128, 4 heads, context
64, batch 12, AdamW as nanoGPT's CPU example), stages cached in `--workdir/<tag>/<family>`:
train with the training system (resumes), then on every validation window (non-overlapping,
64 characters) the family's evaluator with the final raw parameters (no EMA, as nanoGPT):
the AR model's exact NLL, discrete FM's ELBO (an upper bound on its NLL) at the config's
number of time points; then samples. Writes `results.md` / `results.json` there.
"""

import argparse
import json
import math
from pathlib import Path

import jax
import numpy as np

from experiments.heldout import mean_scores, train_to_end
from experiments.timing import cpu_model
from flowjax.contracts import SamplerSettings
from flowjax.models import parameter_count
from flowjax.train import inputs, loop
from flowjax.train.config import TrainConfig, apply_overrides, load_config

CONFIGS = Path(__file__).parents[2] / "flowjax" / "configs"
FAMILIES = ("ar", "dfm")
# nanoGPT (github.com/karpathy/nanoGPT, README "quick start"): validation loss in nats/char
NANOGPT = {
    "cpu": (1.88, "4 layers x 128, context 64, batch 12, 2,000 iterations, on a CPU"),
    "gpu": (1.4697, "6 layers x 384, context 256, batch 64, 5,000 iterations, dropout 0.2, A100"),
}


def validation_bits(run: loop.Run, config: TrainConfig) -> float:
    """The family's evaluator averaged over every validation window, in bits per character."""
    windows = inputs.token_source(config, "test")
    x = np.stack([windows[i]["tokens"] for i in range(len(windows))])
    (bits,) = mean_scores(run, run.state.params, x, desc=f"validation {config.family}").values()
    return bits


def samples(run: loop.Run, config: TrainConfig, n: int) -> list[str]:
    """`n` samples of the family's sampler (64 steps for discrete FM), decoded."""
    steps = config.data.sequence_length
    method = run.family.sampler_methods[0]
    sample = jax.jit(
        lambda p, k: run.family.sampler(SamplerSettings(method, steps))(run.network, p, k, n, {})
    )
    tokens, _ = sample(run.state.params, jax.random.key(1))
    vocabulary = run.data.vocabulary
    return ["".join(vocabulary[t] for t in row) for row in np.asarray(tokens)]


def run_family(family: str, args: argparse.Namespace, work: Path) -> dict:
    path = work / family / "result.json"
    if path.is_file():
        return json.loads(path.read_text())
    overrides = [f"--config.data.path={args.data}", f"--config.steps={args.steps}"]
    config = apply_overrides(load_config(CONFIGS / f"shakespeare_{family}.py"), overrides)
    seconds = train_to_end(config, work / family / "run")
    run = loop.setup(config, work / family / "run", read_only=True)
    result = {
        "family": family,
        "parameters": parameter_count(run.state.params),
        "steps": config.steps,
        "batch": config.data.batch_size,
        "context": config.data.sequence_length,
        "train_seconds": seconds,
        "bits_per_char": validation_bits(run, config),
        "samples": samples(run, config, args.samples),
    }
    run.checkpointer.close()
    path.write_text(json.dumps(result, indent=1))
    return result


def report(results: dict[str, dict], cpu: str) -> str:
    ar, dfm = results["ar"], results["dfm"]
    nats = lambda bits: bits * math.log(2.0)  # noqa: E731
    lines = [
        "| model | bits/char | nats/char | |",
        "|---|---|---|---|",
        f"| autoregressive transformer (this repo), exact NLL | {ar['bits_per_char']:.3f} | "
        f"{nats(ar['bits_per_char']):.3f} | |",
        f"| discrete FM, mask source, kappa_t = t (this repo), ELBO | {dfm['bits_per_char']:.3f} "
        f"| {nats(dfm['bits_per_char']):.3f} | gap to AR: "
        f"{100 * (dfm['bits_per_char'] / ar['bits_per_char'] - 1):+.1f}% |",
        *(
            f"| nanoGPT published ({what}) | {value / math.log(2.0):.3f} | {value} | |"
            for value, what in NANOGPT.values()
        ),
        "",
        f"Both ours: {ar['parameters']:,} parameters (a DiT block: adaLN modulation from the "
        f"time, held at 0 by the AR model), {ar['steps']:,} steps of batch {ar['batch']} at "
        f"context {ar['context']}; trained in {ar['train_seconds']:.0f} s (AR) and "
        f"{dfm['train_seconds']:.0f} s (DFM) on a 2-core {cpu}.",
        "",
        "Samples (AR, ancestral; DFM, 64 CTMC Euler steps), newlines shown as U+21B5:",
        "",
        "```",
        *(f"AR : {s}".replace("\n", "\u21b5") for s in ar["samples"]),
        *(f"DFM: {s}".replace("\n", "\u21b5") for s in dfm["samples"]),
        "```",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("work/shakespeare_char"))
    p.add_argument("--data", default="../shared/data/tiny-shakespeare/input.txt")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--tag", default="cpu", help="a name for this setting's outputs")
    p.add_argument("--samples", type=int, default=4)
    args = p.parse_args(argv)
    work = args.workdir / args.tag
    results = {family: run_family(family, args, work) for family in FAMILIES}
    text = report(results, cpu_model())
    (work / "results.md").write_text(text)
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print(text)
    return results


if __name__ == "__main__":
    main()
