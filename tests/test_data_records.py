import gzip
import struct

import numpy as np
import pytest
from PIL import Image

from flowjax.data import records
from tests.shared_data import shared_data


@pytest.fixture(scope="module")
def data():
    return shared_data()


def test_mnist_idx_files(data):
    train, test = records.mnist(data / "mnist", "train"), records.mnist(data / "mnist", "test")
    assert (len(train), len(test)) == (60_000, 10_000)
    record = train[0]
    assert record["image"].shape == (28, 28, 1) and record["image"].dtype == np.uint8
    assert int(record["label"]) == 5  # the first MNIST training digit is a 5
    assert sorted(np.unique(test.arrays["label"]).tolist()) == list(range(10))


def test_idx_reader_rejects_other_files(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(bad, "wb") as f:
        f.write(struct.pack(">HBB", 0, 0x0D, 1) + struct.pack(">I", 1) + b"\0\0\0\0")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(
        struct.pack(">HBB", 0, 8, 1) + struct.pack(">I", 1) + b"\1"
    )
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        records.mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="no t10k-images-idx3-ubyte"):
        records.mnist(tmp_path, "test")


def test_cifar_tarball_decodes_with_standard_labels_and_cache(data):
    images = records.image_folder(data / "cifar10-jpeg", "test")
    assert len(images) == 10_000
    assert images[0]["image"].shape == (32, 32, 3) and images[0]["image"].dtype == np.uint8
    assert np.bincount(images.labels).tolist() == [1000] * 10  # airplane..truck, sorted
    cached = images.decoded()
    np.testing.assert_array_equal(cached[1234]["image"], images[1234]["image"])


def test_image_folder_from_a_directory(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cat", "ant"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), np.uint8)).save(
                tmp_path / "train" / cls / f"{i}.png"
            )
    images = records.image_folder(tmp_path, "train")
    assert len(images) == 6 and images.labels.tolist() == [0, 0, 0, 1, 1, 1]  # "ant" < "cat"
    lossless = np.asarray(Image.open(tmp_path / "train" / "cat" / "2.png"))
    np.testing.assert_array_equal(images[5]["image"], lossless)
    with pytest.raises(FileNotFoundError, match="no test/ folder"):
        records.image_folder(tmp_path, "test")


def test_text_windows_round_trip(data):
    path = data / "tiny-shakespeare" / "input.txt"
    text = records.TextWindows(path, 64)
    assert len(text) == len(path.read_text()) // 64 and len(text.vocabulary) == 65
    window = text[10]["tokens"]
    assert window.shape == (64,) and text.decode(window) == path.read_text()[640:704]


def test_tfds_array_record_without_tensorflow(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")

    class TinyDigits(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(8, 8, 1)),
                        "label": tfds.features.ClassLabel(num_classes=3),
                    }
                ),
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(6)}

        def _generate_examples(self, n):
            for i in range(n):
                yield (
                    i,
                    {"image": Image.fromarray(np.full((8, 8), 10 * i, np.uint8)), "label": i % 3},
                )

    builder = TinyDigits(data_dir=str(tmp_path), file_format="array_record")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    source = records.tfds_source("tiny_digits", tmp_path, "train")
    assert len(source) == 6
    values = sorted(int(source[i]["image"][0, 0, 0]) for i in range(6))
    assert values == [0, 10, 20, 30, 40, 50] and source[0]["image"].shape == (8, 8, 1)
    with pytest.raises(FileNotFoundError, match="no prepared TFDS dataset"):
        records.tfds_source("mnist", tmp_path)


def test_text_windows_from_a_zip_with_three_splits_and_every_offset(tmp_path):
    """text8's form: one file in a .zip, 27 characters, 90/5/5 splits, stride 1 in training."""
    import zipfile

    rng = np.random.default_rng(0)
    alphabet = np.array(list(" abcdefghijklmnopqrstuvwxyz"))
    text = "".join(alphabet[rng.integers(0, 27, 2000)])
    with zipfile.ZipFile(tmp_path / "text8.zip", "w") as archive:
        archive.writestr("text8", text)
    path = tmp_path / "text8.zip"
    train = records.TextWindows(path, 16, "train", stride=1, fractions=(0.9, 0.95))
    valid = records.TextWindows(path, 16, "valid", fractions=(0.9, 0.95))
    test = records.TextWindows(path, 16, "test", fractions=(0.9, 0.95))
    assert train.vocabulary == " abcdefghijklmnopqrstuvwxyz" and train.vocab_size == 27
    assert len(train) == 1800 - 16 + 1 and len(valid) == len(test) == 100 // 16
    assert train.decode(train[7]["tokens"]) == text[7:23]  # every offset
    assert valid.decode(valid[1]["tokens"]) == text[1816:1832]  # no overlap
    assert test.decode(test[0]["tokens"]) == text[1900:1916]
    with pytest.raises(ValueError, match="text split must be one of"):
        records.TextWindows(path, 16, "valid")  # one fraction: no validation split
    with pytest.raises(ValueError, match="increasing"):
        records.TextWindows(path, 16, "train", fractions=(0.95, 0.9))
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as archive:
        archive.writestr("a", "ab")
        archive.writestr("b", "cd")
    with pytest.raises(ValueError, match="holds 2 files"):
        records.TextWindows(tmp_path / "two.zip", 1)


def write_table(folder, name, splits):
    for split, rows in splits.items():
        np.savetxt(folder / f"{name}.{split}.data", rows, fmt="%d", delimiter=",")


def test_table_reads_debd_files_with_one_vocabulary_for_every_split(tmp_path):
    rng = np.random.default_rng(0)
    rows = {s: rng.integers(0, 2, (n, 5)) for s, n in (("train", 30), ("valid", 4), ("test", 6))}
    rows["test"][0, 0] = 2  # a category seen only in the test split
    write_table(tmp_path, "toy", rows)
    table = records.Table(tmp_path, "toy", "train")
    assert len(table) == 30 and table.tokens.dtype == np.int32
    np.testing.assert_array_equal(table[3]["tokens"], rows["train"][3])
    assert table.vocab_size == 3 and table.vocabulary == "012"
    with pytest.raises(FileNotFoundError, match=r"no other\.train\.data"):
        records.Table(tmp_path, "other")
    with pytest.raises(ValueError, match="table split must be one of"):
        records.Table(tmp_path, "toy", "all")
    write_table(tmp_path, "ragged", {"train": np.zeros((3, 4)), "test": np.zeros((3, 5))})
    with pytest.raises(ValueError, match="different numbers of columns"):
        records.Table(tmp_path, "ragged")
    write_table(tmp_path, "negative", {"train": -np.ones((2, 2))})
    with pytest.raises(ValueError, match="negative values"):
        records.Table(tmp_path, "negative")


def test_debd_tables_match_their_provenance(data):
    folder = data / "debd-binary"
    shapes = {"nltcs": (3236, 16), "plants": (3482, 69), "dna": (1186, 180)}
    for name, shape in shapes.items():
        table = records.Table(folder, name, "test")
        assert table.tokens.shape == shape and table.vocab_size == 2 and table.vocabulary == "01"
