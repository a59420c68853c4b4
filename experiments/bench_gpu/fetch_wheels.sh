#!/usr/bin/env bash
# Wheels that the GPU machine's Python 3.12 lacks, for the benchmark's torch side: torchcfm
# (pure Python, 30 KB). Its import needs POT, which the machine lacks too; torch_side.py puts
# an empty `ot` module in its place when POT is missing (the sigma=0 CFM path never calls it).
# WITH_POT=1 fetches POT as well (a 33 MB wheel, counted in the 64 MiB a device call carries).
# Run from the repo root where pip reaches PyPI; the folder (gitignored under work/) travels
# with the device call as a `carry` path and is installed there with `pip install --target`.
#
#   experiments/bench_gpu/fetch_wheels.sh [DEST]      # default work/bench_gpu_wheels
set -euo pipefail
dest=${1:-work/bench_gpu_wheels}
python=${PYTHON:-python3}
packages=(torchcfm==1.0.7)
if [[ ${WITH_POT:-0} == 1 ]]; then packages+=(POT==0.9.7.post1); fi
mkdir -p "$dest"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
    manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
"$python" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d "$dest" "${packages[@]}"
ls -l "$dest"
