"""The MeanFlow benchmark's workloads, shared by both sides (no JAX or PyTorch imports): the
2-D MLP of `experiments/one_step_2d` on [x, r, t] and the MNIST UNet of `flowjax/configs/
mnist.py` (JAX side only: neither PyTorch reference ships a two-time UNet)."""

MLP = {"width": 256, "depth": 4, "batch": 1024, "dim": 2}
UNET = {"batch": 64, "shape": (28, 28, 1)}
RATIO, POWER, EPS = 0.25, 1.0, 1e-3  # the MeanFlow settings of `flowjax.families.MeanFlow`
WARMUP, REPEATS = 3, 20
