"""The training step compiled ahead of time for TPU topologies (`flowjax compile`): the
collective-traffic model on HLO text everywhere; with the TPU compiler (the `tpu-compile`
extra) the real step of the toy and MNIST runs on a v5e 2x2 slice, per-device parameter bytes
exact under data parallelism and FSDP, and the one-line failure of a step that cannot fit."""

import dataclasses
import math
import subprocess
import sys

import jax
import numpy as np
import pytest

from flowjax.train import aot
from flowjax.train.config import ConfigError, apply_overrides, load_config
from tests.train.helpers import REPO

HLO = "\n".join(
    [
        "%all-reduce-start = (f32[1000]{0}, f32[24]{0}) all-reduce-start(f32[1000]{0} %a, "
        "f32[24]{0} %b), replica_groups=[1,4]<=[4], to_apply=%add",
        "%all-reduce-done = (f32[1000]{0}, f32[24]{0}) all-reduce-done((f32[1000]{0}, "
        "f32[24]{0}) %all-reduce-start)",
        "%all-gather = bf16[4,256]{1,0} all-gather(bf16[1,256]{1,0} %c), "
        "replica_groups={{0,1,2,3}}, dimensions={0}",
        "%reduce-scatter = f32[64]{0} reduce-scatter(f32[256]{0} %d), "
        "replica_groups={{0,1},{2,3}}, dimensions={0}",
        "%all-to-all = f32[8,8]{1,0:T(8,128)} all-to-all(f32[8,8]{1,0:T(8,128)} %f), "
        "channel_id=3, replica_groups=mesh['data'=2,'fsdp'=2] {'fsdp'}, dimensions={0}",
        "%collective-permute = f32[16]{0} collective-permute(f32[16]{0} %g), "
        "source_target_pairs={{0,1},{1,0}}",
        "%fusion = f32[1000]{0} fusion(f32[1000]{0} %e), kind=kLoop, calls=%all-reduce-like",
    ]
)


def test_collective_traffic_follows_a_ring_per_replica_group():
    sent = aot.collective_bytes(HLO, devices=4)
    assert sent["all-reduce"] == pytest.approx(2 * 3 / 4 * 4 * 1024)  # one async pair, once
    assert sent["all-gather"] == pytest.approx(3 / 4 * 2 * 4 * 256)
    assert sent["reduce-scatter"] == pytest.approx((2 - 1) * 4 * 64)  # groups of two
    assert sent["all-to-all"] == pytest.approx(1 / 2 * 4 * 64)  # over the fsdp axis of two
    assert sent["collective-permute"] == 4 * 16


def test_a_topology_must_name_a_known_chip_and_a_shape():
    for name in ("v9:2x2", "v5e", "v5e:2by2"):
        with pytest.raises(ConfigError, match="expected <chip>:<shape>"):
            aot.topology(name)


COMPILE = [sys.executable, "-m", "flowjax.cli", "compile"]
ABSURD = ["--topology", "v5e:2x2", "--config.data.batch_size=65536"]
libtpu = pytest.importorskip("libtpu", reason="the TPU compiler: pip install '.[tpu-compile]'")


def _toy(**mesh):
    config = load_config(REPO / "flowjax/configs/toy2d.py")
    return dataclasses.replace(config, mesh=dataclasses.replace(config.mesh, **mesh))


def _parameter_count(compiled: aot.Compiled) -> int:
    return sum(math.prod(a.shape) for a in jax.tree.leaves(compiled.state.params))


@pytest.mark.parametrize("fsdp", [1, 4])
def test_parameter_bytes_per_device_are_the_shards_the_compiled_step_takes(fsdp):
    chip, devices = aot.topology("v5e:2x2")
    compiled = aot.compile_for(_toy(fsdp=fsdp), devices)
    result = aot.report(compiled, chip)
    count = _parameter_count(compiled)
    # the executable's own input shardings of the parameters (not the ones we asked for)
    params_in = jax.tree.leaves(compiled.executable.input_shardings[0][0].params)
    exact = sum(
        math.prod(s.shard_shape(a.shape)) * 4
        for a, s in zip(jax.tree.leaves(compiled.state.params), params_in, strict=True)
    )
    assert result.params == exact
    if fsdp == 1:
        assert result.params == count * 4  # float32, replicated
        # the gradient all-reduce of a ring of 4: 2 (n - 1) / n of the parameter bytes
        assert result.collectives["all-reduce"] >= 1.5 * count * 4
    else:  # FSDP over the 4 devices: a leaf is split 4 ways or (a few small ones) replicated
        leaves = jax.tree.leaves(compiled.state.params)
        shards = [math.prod(s.shard_shape(a.shape)) for a, s in zip(leaves, params_in, strict=True)]
        split = [(a.size, n) for a, n in zip(leaves, shards, strict=True) if n < a.size]
        assert all(n * 4 == size for size, n in split)
        assert sum(size for size, _ in split) >= 0.95 * count
        assert result.params == (count - sum(size for size, _ in split)) * 4 + sum(
            size for size, _ in split
        )
    # Adam's two moments, sharded alike, and its step counts (int32 scalars)
    assert 0 < result.opt_state - 2 * result.params <= 16
    assert result.ema == result.params
    assert result.flops_per_step > 0 and result.fits


def test_the_non_finite_guard_never_holds_two_states():
    """A wide MLP at a tiny batch, data-parallel: the step's temporaries are the all-reduced
    gradients and little else (the guard's `lax.cond` updates the donated state in place;
    holding the old state beside the new one needed 2.5 x the parameters here)."""
    chip, devices = aot.topology("v5e:2x2")
    wide = ["--config.model.width=2048", "--config.model.depth=8", "--config.data.batch_size=8"]
    config = apply_overrides(_toy(), wide)
    result = aot.report(aot.compile_for(config, devices), chip)
    assert result.params > 100e6 and result.temporaries < 1.25 * result.params


def test_the_compile_command_prints_the_table_and_a_json_line():
    out = subprocess.run(
        [*COMPILE, "flowjax/configs/toy2d.py", "--topology", "v5e:2x2", "--config.mesh.fsdp=2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "WARNING" not in out.stderr and "E0000" not in out.stderr  # libtpu kept quiet
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("v5e:2x2: 4 devices of TPU v5e")
    assert "| parameters |" in out.stdout and "fits" in out.stdout
    import json

    report = json.loads(lines[-1])
    assert report["devices"] == 4 and report["fits"] and report["samples_per_second"] > 0


@pytest.mark.slow
def test_the_mnist_step_compiles_for_a_v5e_slice():
    chip, devices = aot.topology("v5e:2x2")
    config = load_config(REPO / "flowjax/configs/mnist.py")
    compiled = aot.compile_for(config, devices)
    result = aot.report(compiled, chip)
    assert result.params == _parameter_count(compiled) * 4
    assert result.fits and result.temporaries > result.params
    assert np.isclose(result.global_batch / result.step_seconds, result.samples_per_second)


@pytest.mark.slow
def test_a_step_that_cannot_fit_fails_with_one_line():
    out = subprocess.run(
        [*COMPILE, "experiments/lipman2023_table1/cifar10_fm_ot.py", *ABSURD],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr[-3000:]
    assert "the step needs" in lines[0] and "the chip has 16.00 GiB" in lines[0]
    assert "lower config.data.batch_size or raise config.optim.accumulate" in lines[0]
