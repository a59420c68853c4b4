"""The package as a user meets it: the core imports without Flax, and the README's "core in
one screen" runs as written."""

import re
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp

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


def test_readme_core_in_one_screen_runs():
    text = README.read_text()
    section = text[text.index("## The core in one screen") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    x1 = namespace["x1"]
    assert namespace["x_t"].shape == x1.shape == namespace["sol"].y.shape
    assert bool(jnp.isfinite(namespace["loss"])) and namespace["logp"].shape == x1.shape[:1]
    assert int(namespace["sol"].stats.nfe_batch) > 0
