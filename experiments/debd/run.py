"""Binary density estimation on DEBD tables (NLTCS, Plants, DNA): test log-likelihood per
sample of discrete flow matching (a lower bound: minus its ELBO) and of an autoregressive
transformer (exact), beside the independent model and a Chow-Liu tree fitted here (both
exact), and published probabilistic-circuit numbers, one command:

    python -m experiments.debd.run                        # every dataset, the default steps
    python -m experiments.debd.run --datasets nltcs --steps 300 --tag quick

Per dataset, stages cached in `--workdir/<tag>/<dataset>`: the two baselines (smoothing chosen
on the validation split); then for each family (`flowjax/configs/debd_{dfm,ar}.py`: the same
transformer, bidirectional or causal) training with the training system (resumes; the loop
scores the validation split at the dataset's interval and keeps the best checkpoint), then
the best checkpoint's EMA parameters scored on the whole test split: the AR model's exact
NLL, discrete FM's ELBO at `--elbo-times` time points. Writes `results.md` / `results.json` there.
"""

import argparse
import json
import math
from pathlib import Path

from experiments.debd.baselines import ChowLiuTree, Independent, fit_best
from experiments.heldout import best_checkpoint, mean_scores, train_to_end
from experiments.timing import cpu_model
from flowjax.data.records import Table
from flowjax.models import parameter_count
from flowjax.train.config import apply_overrides, load_config

CONFIGS = Path(__file__).parents[2] / "flowjax" / "configs"
DATASETS = ("nltcs", "plants", "dna")
FAMILIES = ("dfm", "ar")
# (training steps, batch, validation and checkpoint interval) sized for a 2-core CPU: about
# 7 to 19 minutes per family and dataset
BUDGET = {"nltcs": (1500, 256, 250), "plants": (600, 128, 100), "dna": (500, 64, 100)}
# Suresh, Sidheekh et al., "A Compositional Theory of Curvature in Probabilistic Circuits",
# Table 2: test log-likelihood, mean over 5 seeds, of a hidden Chow-Liu tree circuit (HCLT,
# latent size 100, PyJuice) trained plainly and with their gated regularization.
PUBLISHED = {
    "HCLT (Suresh, Sidheekh et al., Table 2)": {"nltcs": -6.00, "plants": -12.68, "dna": -87.78},
    "HCLT + gated regularization (same table)": {"nltcs": -6.00, "plants": -12.67, "dna": -81.28},
}


def baselines(data: Path, name: str) -> dict[str, dict]:
    """Test log-likelihood (nats per sample) of the independent model and the Chow-Liu tree."""
    tables = {s: Table(data, name, s) for s in ("train", "valid", "test")}
    x, k = {s: t.tokens for s, t in tables.items()}, tables["train"].vocab_size
    out = {}
    for model in (Independent, ChowLiuTree):
        fitted, alpha = fit_best(model, x["train"], x["valid"], k)
        out[model.__name__] = {"test_ll": float(fitted.log_prob(x["test"]).mean()), "alpha": alpha}
    return out


def run_family(family: str, name: str, args: argparse.Namespace, work: Path) -> dict:
    path = work / family / "result.json"
    if path.is_file():
        return json.loads(path.read_text())
    steps, batch, every = BUDGET[name]
    steps, every = (args.steps, args.steps) if args.steps else (steps, every)
    overrides = [
        f"--config.data.path={args.data}",
        f"--config.data.name={name}",
        f"--config.data.batch_size={batch}",
        f"--config.steps={steps}",
        f"--config.log.eval_every={every}",
        f"--config.checkpoint.every={every}",
    ]
    config = apply_overrides(load_config(CONFIGS / f"debd_{family}.py"), overrides)
    seconds = train_to_end(config, work / family / "run")
    if family == "dfm":  # more time points for the reported bound than for model selection
        config = apply_overrides(config, [f"--config.flow.elbo_times={args.elbo_times}"])
    run, params, best = best_checkpoint(config, work / family / "run")
    test = Table(args.data, name, "test").tokens
    (bits,) = mean_scores(run, params, test, desc=f"{name} test {family}").values()
    result = {
        "family": family,
        "parameters": parameter_count(params),
        "steps": steps,
        "batch": batch,
        "best_step": best,
        "train_seconds": seconds,
        "test_ll": -bits * math.log(2.0) * test.shape[1],
    }
    run.checkpointer.close()
    path.write_text(json.dumps(result, indent=1))
    return result


def run_dataset(name: str, args: argparse.Namespace, work: Path) -> dict:
    path = work / "baselines.json"
    if not path.is_file():
        work.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(baselines(args.data, name), indent=1))
    out = json.loads(path.read_text())
    for family in args.families:
        out[family] = run_family(family, name, args, work)
    return out


ROWS = {
    "Independent": "independent (this repo; exact)",
    "ChowLiuTree": "Chow-Liu tree (this repo; exact)",
    "dfm": "discrete FM, mask source, kappa_t = t (this repo; -ELBO, a lower bound)",
    "ar": "autoregressive transformer (this repo; exact)",
}


def report(results: dict[str, dict], elbo_times: int) -> str:
    names = list(results)
    cell = lambda v: f"{v:.2f}"  # noqa: E731
    lines = [
        "| test log-likelihood, nats per sample | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key, label in ROWS.items():
        if all(key in results[n] for n in names):
            lines.append(
                f"| {label} | " + " | ".join(cell(results[n][key]["test_ll"]) for n in names) + " |"
            )
    for label, values in PUBLISHED.items():
        lines.append(
            f"| {label} | "
            + " | ".join(cell(values[n]) if n in values else "" for n in names)
            + " |"
        )
    lines += [
        "",
        "Training (the best validation checkpoint's EMA parameters scored):",
        "",
    ]
    for n in names:
        for family in FAMILIES:
            if family in results[n]:
                r = results[n][family]
                lines.append(
                    f"- {n}, {family}: {r['parameters']:,} parameters, {r['steps']:,} steps of "
                    f"batch {r['batch']} "
                    f"(best at {r['best_step']}), {r['train_seconds']:.0f} s"
                )
    lines += [
        "",
        f"Discrete FM's bound: the ELBO's time integral by the midpoint rule on {elbo_times} "
        f"points, one path sample per point and test row. On a 2-core {cpu_model()}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("work/debd"))
    p.add_argument("--data", type=Path, default=Path("../shared/data/debd-binary"))
    p.add_argument("--datasets", type=lambda s: s.split(","), default=list(DATASETS))
    p.add_argument("--families", type=lambda s: s.split(","), default=list(FAMILIES))
    p.add_argument("--steps", type=int, default=None, help="for every dataset (default: BUDGET)")
    p.add_argument("--elbo-times", type=int, default=64)
    p.add_argument("--tag", default="cpu", help="a name for this setting's outputs")
    args = p.parse_args(argv)
    work = args.workdir / args.tag
    results = {name: run_dataset(name, args, work / name) for name in args.datasets}
    text = report(results, args.elbo_times)
    (work / "results.md").write_text(text)
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print(text)
    return results


if __name__ == "__main__":
    main()
