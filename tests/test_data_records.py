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
