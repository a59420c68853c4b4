"""Random-access record sources for datasets as users keep them on disk (no downloads).

Each source has `len()` and `source[i] -> dict` of numpy values, as grain's `MapDataset.source`
takes them: `{"image": uint8 [H, W, C], "label": int}` for images, `{"tokens": int32 [L]}` for
text and tables. Paths may be local or anything `open` can read.
"""

import gzip
import io
import struct
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class ArraySource:
    """Records `{key: arrays[key][i]}` from equally long in-memory arrays."""

    def __init__(self, **arrays: np.ndarray) -> None:
        lengths = {len(a) for a in arrays.values()}
        if len(lengths) != 1:
            raise ValueError(f"arrays must have one length, got {sorted(lengths)}")
        self.arrays = arrays

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {k: a[i] for k, a in self.arrays.items()}


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def mnist(path: str | Path, split: str = "train") -> ArraySource:
    """MNIST from its IDX files in `path` (`train-images-idx3-ubyte[.gz]`, ... `t10k-*`)."""
    if split not in ("train", "test"):
        raise ValueError(f"MNIST has the splits 'train' and 'test', got {split!r}")
    prefix = {"train": "train", "test": "t10k"}[split]
    path = Path(path)

    def find(kind: str) -> Path:
        for name in (f"{prefix}-{kind}", f"{prefix}-{kind}.gz"):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"no {prefix}-{kind}[.gz] in {path}")

    images = _read_idx(find("images-idx3-ubyte"))[..., None]
    labels = _read_idx(find("labels-idx1-ubyte")).astype(np.int32)
    return ArraySource(image=images, label=labels)


def decode_image(data: bytes) -> np.ndarray:
    """JPEG/PNG bytes -> uint8 [H, W, 3]."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


class EncodedImages:
    """Encoded images held in memory, decoded per record."""

    def __init__(self, blobs: list[bytes], labels: np.ndarray) -> None:
        self.blobs, self.labels = blobs, labels

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": decode_image(self.blobs[i]), "label": self.labels[i]}

    def decoded(self) -> ArraySource:
        """Decode everything once (the decoded cache): uint8 [N, H, W, 3] in memory."""
        return ArraySource(image=np.stack([decode_image(b) for b in self.blobs]), label=self.labels)


def _class_files(members: list[str], split: str) -> list[tuple[str, str]]:
    """(class, member) for `<split>/<class>/<file>` image members, sorted."""
    out = []
    for m in members:
        parts = m.split("/")
        if len(parts) >= 3 and parts[-3] == split and m.lower().endswith(IMAGE_SUFFIXES):
            out.append((parts[-2], m))
    return sorted(out)


def image_folder(path: str | Path, split: str = "train", cache: bool = False) -> Any:
    """Images laid out as `<split>/<class>/<file>` (CIFAR-10 style), from a folder or a tarball.

    `path` is the folder holding `<split>/`, a folder holding a `*<split>*.tar[.gz]`, or such a
    tarball itself. Labels are the class folders in sorted order (for CIFAR-10, the standard
    order airplane..truck). `cache=True` decodes every image once into memory.
    """
    path = Path(path)
    tarball = path if path.is_file() else None
    if tarball is None and not (path / split).is_dir():
        found = sorted(p for p in path.glob(f"*{split}*.tar*") if p.is_file())
        if not found:
            raise FileNotFoundError(f"no {split}/ folder and no *{split}*.tar[.gz] in {path}")
        tarball = found[0]
    if tarball is not None:
        with tarfile.open(tarball) as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            files = _class_files(list(members), split)
            blobs = [tar.extractfile(members[name]).read() for _, name in files]
    else:
        names = [str(p.relative_to(path)) for p in (path / split).rglob("*") if p.is_file()]
        files = _class_files(names, split)
        blobs = [(path / name).read_bytes() for _, name in files]
    if not files:
        raise FileNotFoundError(f"no {split}/<class>/<image> files in {tarball or path}")
    classes = sorted({c for c, _ in files})
    labels = np.array([classes.index(c) for c, _ in files], np.int32)
    images = EncodedImages(blobs, labels)
    return images.decoded() if cache else images


def read_text(path: str | Path) -> str:
    """A text file, or the one file inside a `.zip` archive (e.g. text8's `text8.zip`)."""
    path = Path(path)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            if len(names) != 1:
                raise ValueError(f"{path} holds {len(names)} files; expected one text file")
            return archive.read(names[0]).decode("utf-8")
    return path.read_text()


def split_bounds(split: str, fractions: tuple[float, ...]) -> tuple[float, float]:
    """The part `[lo, hi)` of a file that `split` covers, given the increasing `fractions` where
    the splits end: one fraction f gives train [0, f) and test [f, 1); two, (f, g), give train
    [0, f), valid [f, g) and test [g, 1) (text8: (0.9, 0.95)); "all" is [0, 1)."""
    if not (1 <= len(fractions) <= 2 and 0 < fractions[0] <= fractions[-1] < 1):
        raise ValueError(
            f"split fractions must be one or two increasing values in (0, 1), got {fractions}"
        )
    bounds = {"all": (0.0, 1.0), "train": (0.0, fractions[0]), "test": (fractions[-1], 1.0)}
    if len(fractions) == 2:
        bounds["valid"] = fractions
    if split not in bounds:
        raise ValueError(f"text split must be one of {sorted(bounds)}, got {split!r}")
    return bounds[split]


class TextWindows:
    """Characters of a text file (or the one file in a `.zip`) as integer tokens, in windows of
    `length` every `stride` characters (default `length`: no overlap; 1: every offset, as MD4
    trains on text8).

    `vocabulary` is the sorted set of the whole file's characters; token = its index. `split`
    is a part of the file (`split_bounds`: by default train is the first 90%, test the rest).
    """

    def __init__(
        self,
        path: str | Path,
        length: int,
        split: str = "all",
        *,
        stride: int | None = None,
        fractions: tuple[float, ...] = (0.9,),
    ) -> None:
        lo, hi = split_bounds(split, tuple(fractions))
        codes = np.frombuffer(read_text(path).encode("utf-32-le"), np.uint32)
        alphabet = np.unique(codes)
        self.vocabulary = "".join(map(chr, alphabet))
        part = codes[round(lo * len(codes)) : round(hi * len(codes))]
        self.tokens = np.searchsorted(alphabet, part).astype(np.int32)
        self.length, self.stride = length, stride or length
        if length < 1 or self.stride < 1:
            raise ValueError(f"length and stride must be positive, got {length}, {stride}")
        if len(self.tokens) < length:
            raise ValueError(
                f"{path} ({split}) has {len(self.tokens)} characters, fewer than length {length}"
            )

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def __len__(self) -> int:
        return (len(self.tokens) - self.length) // self.stride + 1

    def __getitem__(self, i: int) -> dict[str, Any]:
        start = i * self.stride
        return {"tokens": self.tokens[start : start + self.length]}

    def decode(self, tokens: np.ndarray) -> str:
        return "".join(self.vocabulary[t] for t in np.asarray(tokens).ravel())


TABLE_SPLITS = ("train", "valid", "test")
DIGITS = "0123456789"


class Table:
    """The rows of a table of categorical variables as integer tokens `[D]`: the file
    `<path>/<name>.<split>.data` of comma-separated integers in [0, K), one sample per line
    (the DEBD binary benchmarks' format: NLTCS, Plants, DNA, ...).

    `vocab_size` K is the largest value in the splits present, plus one (at least 2), so that
    every split of a dataset shares one vocabulary; `vocabulary` writes token k as the digit k
    (when K <= 10).
    """

    def __init__(self, path: str | Path, name: str, split: str = "train") -> None:
        if split not in TABLE_SPLITS:
            raise ValueError(f"table split must be one of {list(TABLE_SPLITS)}, got {split!r}")
        files = {s: Path(path) / f"{name}.{s}.data" for s in TABLE_SPLITS}
        if not files[split].is_file():
            raise FileNotFoundError(f"no {files[split].name} in {path}")
        tables = {s: _read_table(f) for s, f in files.items() if f.is_file()}
        widths = {t.shape[1] for t in tables.values()}
        if len(widths) != 1:
            raise ValueError(f"the splits of {name} have different numbers of columns {widths}")
        self.tokens = tables[split]
        self.vocab_size = max(2, 1 + max(int(t.max(initial=0)) for t in tables.values()))
        self.vocabulary = DIGITS[: self.vocab_size] if self.vocab_size <= len(DIGITS) else None

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"tokens": self.tokens[i]}


def _read_table(path: Path) -> np.ndarray:
    table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    if table.size and table.min() < 0:
        raise ValueError(f"{path} has negative values; a table holds categories 0, 1, ...")
    return table.astype(np.int32)


def tfds_source(name: str, data_dir: str | Path, split: str = "train") -> Any:
    """A prepared TFDS dataset `<data_dir>/<name>/<version>` read as ArrayRecord, without
    TensorFlow and without any download (`name` like "mnist", "cifar10",
    "downsampled_imagenet/32x32"). The newest version present is used."""
    import tensorflow_datasets as tfds
    from etils import epath

    root = epath.Path(data_dir) / name  # local or gs://
    versions = sorted(
        (p for p in root.glob("*") if (p / "dataset_info.json").is_file()),
        key=lambda p: tuple(int(x) for x in p.name.split(".") if x.isdigit()),
    )
    if not versions:
        raise FileNotFoundError(f"no prepared TFDS dataset at {root}/<version> (dataset_info.json)")
    return tfds.builder_from_directory(str(versions[-1])).as_data_source(split=split)


def num_classes(source: Any) -> int | None:
    """The number of classes a labelled record source's labels span (max label + 1), if it
    knows without reading every record; None otherwise."""
    labels = getattr(source, "labels", None)
    if labels is None and isinstance(source, ArraySource):
        labels = source.arrays.get("label")
    if labels is not None:
        return int(np.max(labels)) + 1 if len(labels) else 0
    feature = getattr(getattr(source, "dataset_info", None), "features", {}).get("label")
    return getattr(feature, "num_classes", None)
