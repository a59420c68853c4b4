"""Token families through the unchanged trainer and CLI: a tiny transformer run of discrete FM
and of the autoregressive baseline on text trains, checkpoints, resumes bit-identically from a
checkpoint, and samples text; CatFlow and Dirichlet FM learn the quantized checkerboard."""

import json
import shutil

import numpy as np
import pytest

from experiments.discrete_checkerboard.run import data_histogram
from flowjax.train.config import apply_overrides, load_config
from flowjax.train.loop import train
from tests.shared_data import shared_data
from tests.train.helpers import REPO, cli_report, max_difference, restore

TINY = [
    "--config.steps=40",
    "--config.data.sequence_length=16",
    "--config.data.batch_size=8",
    "--config.model.preset=None",
    "--config.model.depth=1",
    "--config.model.width=32",
    "--config.model.heads=2",
    "--config.optim.warmup_steps=5",
    "--config.checkpoint.every=20",
    "--config.checkpoint.keep=3",
    "--config.log.every=10",
    "--config.log.eval_every=20",
    "--config.log.sample_every=0",
    "--config.log.num_samples=16",
    "--config.log.eval_steps=8",
    "--config.compilation_cache=off",
]


@pytest.mark.slow
@pytest.mark.parametrize("family", ["dfm", "ar"])
def test_text_run_resumes_bit_identically_and_samples_text(family, tmp_path):
    text = shared_data() / "tiny-shakespeare" / "input.txt"
    path = REPO / "flowjax" / "configs" / f"shakespeare_{family}.py"
    config = apply_overrides(load_config(path), [*TINY, f"--config.data.path={text}"])
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(config, straight)
    shutil.copytree(straight, resumed)
    shutil.rmtree(resumed / "checkpoints" / "40")  # as if stopped after the step-20 checkpoint
    train(config, resumed)
    (step_a, params_a), (step_b, params_b) = restore(straight), restore(resumed)
    assert step_a == step_b == 40 and max_difference(params_a, params_b) == 0.0
    report = cli_report("sample", "--workdir", str(straight), "--num", "5", "--steps", "8")
    assert report["shape"] == [5, 16] and report["nfe"] == (16 if family == "ar" else 8)
    lines = (straight / "samples.txt").read_text().splitlines()
    vocabulary = set(text.read_text()) | {"\u21b5"}
    assert len(lines) == 6 and all(len(s) == 16 and set(s) <= vocabulary for s in lines[1:])


@pytest.mark.slow
@pytest.mark.parametrize("family", ["catflow", "dirichlet"])
def test_simplex_families_learn_the_quantized_checkerboard(family, tmp_path):
    overrides = [
        f"--config.family={family}",
        "--config.model.kind=mlp",
        "--config.model.width=128",
        "--config.model.depth=3",
        "--config.data.bins=8",
        "--config.data.batch_size=256",
        "--config.steps=600",
        "--config.optim.ema_decay=0.99",
        "--config.checkpoint.every=600",
        "--config.log.every=100",
        "--config.log.eval_every=300",
        "--config.log.sample_every=600",
        "--config.log.num_samples=2048",
        "--config.log.eval_method=euler",
        "--config.log.eval_steps=32",
        "--config.compilation_cache=off",
    ]
    config = apply_overrides(load_config(REPO / "flowjax/configs/checkerboard_dfm.py"), overrides)
    train(config, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    entropy = [r["eval/cross_entropy"] for r in rows if "eval/cross_entropy" in r]
    assert len(entropy) == 2 and entropy[-1] < np.log(8)  # the posterior beats the uniform
    report = cli_report("sample", "--workdir", str(tmp_path), "--num", "4000")
    assert report["shape"] == [4000, 2] and report["nfe"] == 32 + 1
    tokens = np.load(tmp_path / "samples.npz")["samples"]
    on_board = data_histogram(8)[tokens[:, 0], tokens[:, 1]] > 0
    assert on_board.mean() > 0.8  # uniform tokens: 0.5
    assert (tmp_path / "samples.png").stat().st_size > 5000
