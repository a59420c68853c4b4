"""Why (and when) a plain jitted JAX training step lags PyTorch on a small CPU: a sweep.

Times the checkerboard training step of `jax_side.py` (4x512 SiLU MLP, Adam, float32) at batch
4096 and 256 under XLA:CPU flag sets, each in a fresh process (XLA reads XLA_FLAGS once):

    python -m experiments.bench_cpu.xla_flags [--steps 30]

Run it under each jax version to compare (the flags that a version does not know are reported).
"""

import argparse
import json
import os
import subprocess
import sys

FLAG_SETS = {
    "default": "",
    "no xnnpack": "--xla_cpu_use_xnnpack=false",
    "xnnpack": "--xla_cpu_use_xnnpack=true",
    "onednn": "--xla_cpu_use_onednn=true",
    "single-threaded eigen": "--xla_cpu_multi_thread_eigen=false",
    "fast math": "--xla_cpu_enable_fast_math=true",
    "vector width 512": "--xla_cpu_prefer_vector_width=512",
    "legacy runtime": "--xla_cpu_use_thunk_runtime=false",
}

CHILD = """
import json, sys
from experiments.bench_cpu.jax_side import train_rate
steps = int(sys.argv[1])
print(json.dumps({b: train_rate(b, s, 3)[0] for b, s in ((4096, steps), (256, 10 * steps))}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    args = p.parse_args()
    import jax

    print(f"jax {jax.__version__}; steps/s (batch 4096 | batch 256)")
    for name, flags in FLAG_SETS.items():
        env = {**os.environ, "XLA_FLAGS": flags}
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(args.steps)], env=env, capture_output=True, text=True
        )
        if out.returncode != 0:
            reason = (out.stderr.strip().splitlines() or ["failed"])[-1][:90]
            print(f"{name:>22}: not available ({reason})")
            continue
        rates = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name:>22}: {rates['4096']:7.2f} | {rates['256']:7.1f}   {flags}", flush=True)


if __name__ == "__main__":
    main()
