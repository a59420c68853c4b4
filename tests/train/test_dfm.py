"""The discrete FM family through the unchanged trainer: character-level text from the shared
tiny-shakespeare file, a token MLP, ELBO evaluation and text samples."""

import dataclasses
import json
import math

import numpy as np

from flowjax.configs import shakespeare_dfm
from flowjax.train import config as cfg
from flowjax.train.loop import train
from tests.shared_data import shared_data


def test_text_dfm_trains_evaluates_and_writes_text_samples(tmp_path):
    text = shared_data() / "tiny-shakespeare" / "input.txt"
    base = shakespeare_dfm.get_config()
    config = dataclasses.replace(
        base,
        steps=300,
        data=dataclasses.replace(base.data, path=str(text), sequence_length=16, batch_size=64),
        model=cfg.ModelConfig("token_mlp", vocab_size=65, width=128, depth=2, embed_dim=16),
        optim=dataclasses.replace(base.optim, lr=2e-3, schedule="constant"),
        checkpoint=cfg.CheckpointConfig(every=300),
        log=cfg.LogConfig(
            every=50,
            sample_every=300,
            eval_every=100,
            num_samples=64,
            eval_method="euler",
            eval_steps=16,
        ),
        compilation_cache="off",
    )
    train(config, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    elbo = [r["eval/elbo_bits_per_token"] for r in rows if "eval/elbo_bits_per_token" in r]
    # a bound in bits per character: below the uniform code (log2 65 = 6.02) and improving
    assert len(elbo) == 3 and elbo[-1] < elbo[0] and elbo[-1] < math.log2(65) - 1.0
    spec = json.loads((tmp_path / "data_spec.json").read_text())
    assert spec["vocab_size"] == 65 and spec["dtype"] == "int32" and len(spec["vocabulary"]) == 65
    lines = (tmp_path / "samples").glob("*.txt")
    sample = next(lines).read_text().splitlines()
    assert sample[0].startswith("#") and len(sample) == 1 + 64
    assert all(
        len(line) == 16 and set(line) <= set(spec["vocabulary"]) | {"\u21b5"} for line in sample[1:]
    )
    letters = np.mean([c.isalpha() or c == " " for line in sample[1:] for c in line])
    assert letters > 0.6  # mostly letters and spaces, like the text
