"""Two real processes joined with jax.distributed on localhost (CPU, 2 devices each) train on a
shared global batch and write a checkpoint equal to the single-process run on 4 devices."""

import socket
import subprocess

import pytest

from tests.train.helpers import env, max_difference, restore, run_train, train_command

TOL = 2e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    args = ["--config.steps=10", "--config.log.every=5"]
    address = f"127.0.0.1:{_free_port()}"
    procs = [
        subprocess.Popen(
            train_command(tmp_path / "multi", *args),
            env=env(
                2, JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i)
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    run_train(tmp_path / "single", *args, devices=4)
    step, multi = restore(tmp_path / "multi")
    _, single = restore(tmp_path / "single")
    assert step == 10
    assert max_difference(multi, single) < TOL
    # only process 0 logged
    assert (tmp_path / "multi" / "metrics.jsonl").read_text().count("\n") == 2
