import jax
import numpy as np
from jax.sharding import Mesh

from flowjax.data import manifold_records as mr
from flowjax.data import pipeline, records
from flowjax.train.sharding import batch_sharding

MESH = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "fsdp"))


def _source(n=20):
    images = (np.arange(n * 4 * 4) % 256).reshape(n, 4, 4, 1).astype(np.uint8)
    return records.ArraySource(image=images, label=np.arange(n, dtype=np.int32))


def _batches(source=None, flip=False, dequantize=True, seed=0, batch=4, **kw):
    return pipeline.GrainBatches(
        source or _source(),
        batch_size=batch,
        seed=seed,
        sharding={"x1": batch_sharding(MESH, 4), "y": batch_sharding(MESH, 1)},
        transform=pipeline.ImageToFloat(flip=flip, dequantize=dequantize, labels=True),
        **kw,
    )


def _take(it, n):
    return [jax.tree.map(np.asarray, next(it)) for _ in range(n)]


def test_deterministic_epochs_reshuffled_and_dequantized_in_the_bin():
    a, b = _take(_batches(), 10), _take(_batches(), 10)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["x1"], y["x1"])
    first, second = [np.concatenate([t["y"] for t in a[i : i + 5]]) for i in (0, 5)]
    assert sorted(first) == sorted(second) == list(range(20)) and not np.array_equal(first, second)
    assert not np.array_equal(np.concatenate([t["y"] for t in _take(_batches(seed=1), 5)]), first)
    source = _source()
    for t in a:
        pixels = np.stack([source[i]["image"] for i in t["y"]]).astype(np.float32)
        assert t["x1"].dtype == np.float32 and t["x1"].min() >= -1 and t["x1"].max() < 1
        np.testing.assert_array_equal(
            np.floor((t["x1"] + 1.0) * 128.0), pixels
        )  # (x + u) / 256, u < 1
    plain = _take(_batches(dequantize=False), 1)[0]
    pixels = np.stack([source[i]["image"] for i in plain["y"]])
    np.testing.assert_allclose(plain["x1"], pixels / 127.5 - 1.0, atol=1e-6)


def test_random_flips_are_mirror_images_drawn_per_record():
    source = _source(64)
    batches = _take(_batches(source, flip=True, dequantize=False, batch=16), 4)
    flipped = 0
    for t in batches:
        for x, label in zip(t["x1"], t["y"], strict=True):
            original = source[label]["image"] / 127.5 - 1.0
            is_flipped = np.allclose(x, original[:, ::-1], atol=1e-6)
            assert is_flipped or np.allclose(x, original, atol=1e-6)
            flipped += is_flipped
    assert 16 < flipped < 48


def test_iterator_state_resumes_exactly():
    it = _batches()
    _take(it, 7)
    state = it._iterator.get_state()
    expected = _take(it, 6)
    resumed = _batches()
    resumed._iterator.set_state(state)
    for x, y in zip(_take(resumed, 6), expected, strict=True):
        np.testing.assert_array_equal(x["x1"], y["x1"])


def _shares(monkeypatch, make):
    """Five local batches of each of two processes, each process's iterator built by `make`."""
    shares = []
    for index in range(2):
        monkeypatch.setattr(pipeline.jax, "process_count", lambda: 2)
        monkeypatch.setattr(pipeline.jax, "process_index", lambda i=index: i)
        it = make()
        shares.append([next(it._iterator) for _ in range(5)])
    return shares


def test_process_shards_are_disjoint(monkeypatch):
    shares = _shares(monkeypatch, lambda: _batches(batch=4))  # 2 records per process per step
    seen = [np.concatenate([b["y"] for b in share]) for share in shares]
    assert set(seen[0]).isdisjoint(seen[1]) and len(set(seen[0]) | set(seen[1])) == 20


def test_worker_processes_give_the_same_batches():
    inline = _take(_batches(flip=True), 4)
    workers = _batches(flip=True, workers=2)
    for x, y in zip(_take(workers, 4), inline, strict=True):
        np.testing.assert_array_equal(x["x1"], y["x1"])


def test_text_windows_batch_as_tokens(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("abcdefgh" * 50)
    text = records.TextWindows(path, 8)
    it = pipeline.GrainBatches(
        text,
        batch_size=4,
        seed=0,
        sharding={"x1": batch_sharding(MESH, 2)},
        transform=pipeline.Tokens(),
    )
    batch = np.asarray(next(it)["x1"])
    assert it.event_shape == (8,) and batch.shape == (4, 8) and batch.dtype == np.int32
    assert all(text.decode(row) == "abcdefgh" for row in batch)


def test_stream_rows_run_through_a_fresh_permutation_each_epoch():
    n = 7
    rows = pipeline.stream_rows(n, 3, np.arange(4 * n))
    epochs = rows.reshape(4, n)
    assert all(sorted(e) == list(range(n)) for e in epochs)
    assert len({tuple(e) for e in epochs}) == 4
    np.testing.assert_array_equal(pipeline.stream_rows(n, 3, np.arange(5, 19)), rows[5:19])
    assert not np.array_equal(pipeline.stream_rows(n, 4, np.arange(n)), epochs[0])


POINTS = mr.ManifoldPoints(np.arange(40, dtype=np.float32).reshape(20, 2), "train", 0)


def _points(batch=4, seed=0, **kw):
    return pipeline.GrainBatches(
        POINTS,
        batch_size=batch,
        seed=seed,
        sharding={"x1": batch_sharding(MESH, 2)},
        transform=pipeline.Points(),
        **kw,
    )


def _stream(seed, positions):
    return POINTS.points[pipeline.stream_rows(len(POINTS), seed, positions)]


def test_points_are_read_a_batch_at_a_time_in_the_stream_order():
    """Points skip grain's per-record path: the batches are the stream's rows in order (16
    training points, so batches straddle epochs), and a resumed iterator and worker processes
    give the same."""
    it = _points(batch=6, seed=5)
    assert it.event_shape == (2,) and len(POINTS) == 16
    batches = _take(it, 6)
    assert all(b["x1"].dtype == np.float32 and b["x1"].shape == (6, 2) for b in batches)
    np.testing.assert_array_equal(
        np.concatenate([b["x1"] for b in batches]), _stream(5, np.arange(36))
    )
    state = it._iterator.get_state()
    expected = _take(it, 3)
    resumed = _points(batch=6, seed=5)
    resumed._iterator.set_state(state)
    for x, y in zip(_take(resumed, 3), expected, strict=True):
        np.testing.assert_array_equal(x["x1"], y["x1"])
    for x, y in zip(_take(_points(batch=6, seed=5, workers=2), 6), batches, strict=True):
        np.testing.assert_array_equal(x["x1"], y["x1"])


def test_point_process_shards_split_each_global_batch(monkeypatch):
    shares = _shares(monkeypatch, lambda: _points(batch=4))  # 2 records per process per step
    seen = [np.stack([b["x1"] for b in share]) for share in shares]
    merged = np.stack(seen, axis=2).reshape(-1, 2)  # global stream positions in order
    np.testing.assert_array_equal(merged, _stream(0, np.arange(20)))
