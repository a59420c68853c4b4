"""The package as a user meets it: the core imports without Flax, and the README's "core in
one screen" runs as written."""

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import pytest

README = Path(__file__).parents[1] / "README.md"


def test_the_core_imports_without_flax():
    code = (
        "import sys\n"
        "import flowjax.paths, flowjax.solvers, flowjax.losses, flowjax.sources\n"
        "import flowjax.couplings, flowjax.contracts, flowjax.time_samplers\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'flax'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    # and flowjax.models still brings Flax when asked for
    lazy = "import flowjax, sys; flowjax.models; print('flax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", lazy], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def _run_readme_block(heading: str) -> dict:
    """The namespace after running the first Python block under `heading` of the README."""
    text = README.read_text()
    section = text[text.index(heading) :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace


def test_readme_core_in_one_screen_runs():
    namespace = _run_readme_block("## The core in one screen")
    x1 = namespace["x1"]
    assert namespace["x_t"].shape == x1.shape == namespace["sol"].y.shape
    assert bool(jnp.isfinite(namespace["loss"])) and namespace["logp"].shape == x1.shape[:1]
    assert int(namespace["sol"].stats.nfe_batch) > 0


def test_readme_discrete_block_runs():
    namespace = _run_readme_block("## Discrete flow matching")
    sol = namespace["sol"]
    assert sol.y.shape == (8, 16) and int(sol.y.max()) < 27 and int(sol.stats.nfe_batch) == 32
    assert bool(jnp.isfinite(namespace["loss"])) and float(namespace["bits"]) > 0


INTEL_AVX512 = "vendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n"
AMD_AVX512 = "vendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n"
INTEL_AVX2 = "vendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx2 fma\n"


def test_cpu_flags_follow_the_host(tmp_path):
    from flowjax._host import apply_cpu_flags, cpu_flags

    assert cpu_flags(INTEL_AVX512) == ["--xla_cpu_prefer_vector_width=512"]
    assert cpu_flags(AMD_AVX512) == cpu_flags(INTEL_AVX2) == []
    info = tmp_path / "cpuinfo"
    info.write_text(INTEL_AVX512)
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    apply_cpu_flags(env, info)
    assert env["XLA_FLAGS"].split() == [
        "--xla_force_host_platform_device_count=8",
        "--xla_cpu_prefer_vector_width=512",
    ]
    apply_cpu_flags(env, info)  # idempotent: the flag is now set
    assert env["XLA_FLAGS"].count("prefer_vector_width") == 1
    mine = {"XLA_FLAGS": "--xla_cpu_prefer_vector_width=256"}  # the user's choice stays
    apply_cpu_flags(mine, info)
    assert mine == {"XLA_FLAGS": "--xla_cpu_prefer_vector_width=256"}
    off = {"FLOWJAX_CPU_FLAGS": "0"}
    apply_cpu_flags(off, info)
    assert "XLA_FLAGS" not in off
    apply_cpu_flags(none := {}, tmp_path / "missing")  # no /proc/cpuinfo (macOS): nothing
    assert none == {}


HEAP_FAULTS = """
import resource, sys
import numpy as np
from flowjax._host import keep_heap
if sys.argv[1] == "keep":
    assert keep_heap()
def faults(n=5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        a = np.ones(2**23)  # 64 MiB, past glibc's largest mapping threshold, written through
        del a
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / n
faults()
print(faults())
"""


def test_keep_heap_reuses_freed_blocks():
    """A freed large block is mapped afresh (page faults) on every allocation by default;
    with glibc's heap kept the next allocation reuses it without faulting."""
    from flowjax._host import keep_heap

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    run = lambda mode: float(  # noqa: E731
        subprocess.run(
            [sys.executable, "-c", HEAP_FAULTS, mode], capture_output=True, text=True, check=True
        ).stdout
    )
    mapped, kept = run("plain"), run("keep")
    assert mapped >= 16  # at least the 2 MiB pages of 32 MiB
    assert kept < mapped / 10
    assert not keep_heap({"FLOWJAX_CPU_FLAGS": "0"})


def test_import_sets_the_flags_before_jax_starts():
    from flowjax._host import CPUINFO, cpu_flags

    expected = cpu_flags(CPUINFO.read_text()) if CPUINFO.exists() else []
    code = "import os, flowjax; print(os.environ.get('XLA_FLAGS', ''))"
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "FLOWJAX_CPU_FLAGS")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == expected


def test_readme_manifold_block_runs():
    namespace = _run_readme_block("## Manifolds")
    sol, x1 = namespace["sol"], namespace["x1"]
    assert sol.y.shape == x1.shape == (256, 3) and int(sol.stats.nfe_batch) == 80
    assert jnp.allclose(jnp.linalg.norm(sol.y, axis=-1), 1.0, atol=1e-5)
    # a rotation keeps the uniform density
    assert jnp.allclose(namespace["logp"], -jnp.log(4 * jnp.pi), atol=1e-4)
    assert bool(jnp.isfinite(namespace["loss"]))


def test_readme_meanflow_block_runs():
    namespace = _run_readme_block("## One-step models")
    one_step, x0 = namespace["one_step"], namespace["x0"]
    assert one_step.y.shape == x0.shape and int(one_step.stats.nfe_batch) == 1
    assert bool(jnp.isfinite(namespace["loss"]))
    params, v, u = namespace["params"], namespace["v"], namespace["u"]
    t = jnp.full((512,), 0.3)
    assert jnp.array_equal(v(params, x0, t), u(params, x0, (t, t)))
