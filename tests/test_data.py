"""Tests for ml2bench.data: loaders built from tiny hand-made files in tmp_path."""

from __future__ import annotations

import dataclasses
import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from ml2bench.data import (
    DataError,
    Dataset,
    load_cifar10,
    load_dataset,
    load_digits,
    load_mnist,
    read_idx,
    write_cifar_batch,
    write_idx,
)

MNIST_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


# ---------------------------------------------------------------- digits


def test_digits_shapes_and_range() -> None:
    ds = load_digits(seed=0)
    assert isinstance(ds, Dataset)
    assert ds.name == "digits" and ds.num_classes == 10 and ds.input_shape == (1, 8, 8)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.x_train.shape[1:] == (1, 8, 8) and ds.x_test.shape[1:] == (1, 8, 8)
    assert ds.n_train + ds.x_test.shape[0] == 1797
    assert ds.x_test.shape[0] == pytest.approx(0.25 * 1797, abs=1)
    for x in (ds.x_train, ds.x_test):
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert ds.x_train.max() == 1.0  # 16/16 occurs


def test_digits_deterministic_in_seed() -> None:
    a, b, c = load_digits(seed=3), load_digits(seed=3), load_digits(seed=4)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_train, c.y_train)


def test_digits_stratified() -> None:
    ds = load_digits(seed=1, test_fraction=0.2)
    tr = torch.bincount(ds.y_train, minlength=10).double()
    te = torch.bincount(ds.y_test, minlength=10).double()
    assert (te > 0).all()
    # class proportions in train and test agree to within one sample's worth
    assert torch.allclose(tr / tr.sum(), te / te.sum(), atol=1.0 / te.sum().item() + 1e-9)


def test_digits_bad_fraction() -> None:
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits(seed=0, test_fraction=1.5)


def test_subset_takes_prefix() -> None:
    ds = load_digits(seed=0)
    sub = ds.subset(10, 5)
    assert sub.n_train == 10 and sub.x_test.shape[0] == 5
    assert torch.equal(sub.x_train, ds.x_train[:10]) and torch.equal(sub.y_test, ds.y_test[:5])
    assert sub.input_shape == ds.input_shape and sub.name == ds.name
    assert ds.subset(None, 3).n_train == ds.n_train
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "x"  # type: ignore[misc]  # frozen dataclass: shared between runs unchanged
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.x_train = ds.x_train[:1]  # type: ignore[misc]


def test_dataset_validates_fields() -> None:
    x, y = torch.zeros(3, 1, 2, 2), torch.zeros(3, dtype=torch.int64)
    with pytest.raises(TypeError, match="float32"):
        Dataset(x.double(), y, x, y, 10, (1, 2, 2), "t")
    with pytest.raises(ValueError, match="3 samples"):
        Dataset(x, y[:2], x, y, 10, (1, 2, 2), "t")
    with pytest.raises(ValueError, match="input_shape"):
        Dataset(x, y, x, y, 10, (4,), "t")


def test_data_error_is_value_error() -> None:
    assert issubclass(DataError, ValueError)


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path: Path, dtype: type, suffix: str) -> None:
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, arr)
    if suffix:
        with gzip.open(path, "rb") as f:
            assert f.read(2) == b"\x00\x00"
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


def test_idx_is_big_endian(tmp_path: Path) -> None:
    path = tmp_path / "x.idx"
    write_idx(path, np.array([1, 256], dtype=np.int32))
    assert path.read_bytes() == bytes([0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 1, 0])


def test_idx_1d(tmp_path: Path) -> None:
    write_idx(tmp_path / "v", np.arange(7, dtype=np.uint8))
    np.testing.assert_array_equal(read_idx(tmp_path / "v"), np.arange(7))


def test_write_idx_rejects_int64(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="int64"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))


def test_idx_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope"
    with pytest.raises(DataError, match="nope.*not found"):
        read_idx(path)


def test_idx_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    path.write_bytes(b"\x01\x00\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(DataError, match="magic") as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_idx_bad_dtype_code(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    path.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x05")
    with pytest.raises(DataError, match="0x07") as e:
        read_idx(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("cut", [1, 10, 60, 100, 110])
def test_idx_truncated(tmp_path: Path, cut: int) -> None:
    good = tmp_path / "good"
    write_idx(good, np.zeros((2, 3, 4), dtype=np.float32))
    raw = good.read_bytes()
    bad = tmp_path / "trunc.gz"
    with gzip.open(bad, "wb") as f:
        f.write(raw[:-cut])
    with pytest.raises(DataError) as e:
        read_idx(bad)
    assert str(bad) in str(e.value)


def test_idx_trailing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "long"
    write_idx(path, np.zeros(4, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DataError, match="payload"):
        read_idx(path)


def test_idx_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(b"definitely not gzip")
    with pytest.raises(DataError, match="x.gz"):
        read_idx(path)


# ---------------------------------------------------------------- MNIST


def _fake_mnist(
    root: Path, n_train: int = 20, n_test: int = 10, h: int = 28, w: int = 28, gz: bool = False
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, h, w), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, h, w), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    arrays["train_images"][0, 0, 0] = 255  # make sure the max maps to exactly 1
    for key, arr in arrays.items():
        write_idx(root / (MNIST_NAMES[key] + (".gz" if gz else "")), arr)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_exact(tmp_path: Path, gz: bool) -> None:
    arrays = _fake_mnist(tmp_path, gz=gz)
    ds = load_mnist(tmp_path, name="fashion_mnist")
    assert ds.name == "fashion_mnist" and ds.num_classes == 10
    assert ds.input_shape == (1, 28, 28)
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.x_test.shape == (10, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    np.testing.assert_allclose(
        ds.x_train.numpy()[:, 0], arrays["train_images"].astype(np.float32) / 255, rtol=0, atol=0
    )
    np.testing.assert_allclose(ds.x_test.numpy()[:, 0], arrays["test_images"] / 255.0, atol=1e-7)
    np.testing.assert_array_equal(ds.y_train.numpy(), arrays["train_labels"])
    np.testing.assert_array_equal(ds.y_test.numpy(), arrays["test_labels"])
    assert ds.x_train.max() == 1.0 and ds.x_train.min() >= 0.0


def test_load_mnist_uses_file_dims(tmp_path: Path) -> None:
    _fake_mnist(tmp_path, n_train=4, n_test=3, h=7, w=5)
    ds = load_mnist(tmp_path)
    assert ds.input_shape == (1, 7, 5) and ds.x_train.shape == (4, 1, 7, 5)


def test_load_mnist_prefers_uncompressed(tmp_path: Path) -> None:
    arrays = _fake_mnist(tmp_path)
    # a .gz sibling with different contents must be ignored
    write_idx(tmp_path / (MNIST_NAMES["train_labels"] + ".gz"), np.zeros(20, dtype=np.uint8))
    ds = load_mnist(tmp_path)
    np.testing.assert_array_equal(ds.y_train.numpy(), arrays["train_labels"])


def test_load_mnist_missing_file(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    (tmp_path / MNIST_NAMES["test_labels"]).unlink()
    with pytest.raises(DataError) as e:
        load_mnist(tmp_path)
    msg = str(e.value)
    assert str(tmp_path / MNIST_NAMES["test_labels"]) in msg
    assert "not found" in msg and "train-images-idx3-ubyte[.gz]" in msg


def test_load_mnist_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a directory"):
        load_mnist(tmp_path / "absent")


def test_load_mnist_count_mismatch(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    write_idx(tmp_path / MNIST_NAMES["train_labels"], np.zeros(19, dtype=np.uint8))
    with pytest.raises(DataError, match="20 images.*19 labels") as e:
        load_mnist(tmp_path)
    assert str(tmp_path / MNIST_NAMES["train_labels"]) in str(e.value)


def test_load_mnist_label_range(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    write_idx(tmp_path / MNIST_NAMES["test_labels"], np.full(10, 10, dtype=np.uint8))
    with pytest.raises(DataError, match="0..9") as e:
        load_mnist(tmp_path)
    assert str(tmp_path / MNIST_NAMES["test_labels"]) in str(e.value)


def test_load_mnist_bad_magic_and_truncation(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    img = tmp_path / MNIST_NAMES["train_images"]
    raw = img.read_bytes()
    img.write_bytes(b"\xff" + raw[1:])
    with pytest.raises(DataError, match="magic") as e:
        load_mnist(tmp_path)
    assert str(img) in str(e.value)
    img.write_bytes(raw[:-100])
    with pytest.raises(DataError, match="truncated") as e:
        load_mnist(tmp_path)
    assert str(img) in str(e.value)


def test_load_mnist_wrong_image_dtype(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    write_idx(tmp_path / MNIST_NAMES["train_images"], np.zeros((20, 28, 28), dtype=np.float32))
    with pytest.raises(DataError, match="ubyte"):
        load_mnist(tmp_path)


# ---------------------------------------------------------------- CIFAR-10


def _fake_cifar(root: Path, n_per_batch: int = 3) -> dict[str, tuple[np.ndarray, list[int]]]:
    rng = np.random.default_rng(7)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        write_cifar_batch(folder / name, data, labels)
        batches[name] = (data, labels)
    return batches


@pytest.mark.parametrize("point_at_folder", [False, True])
def test_load_cifar10_exact(tmp_path: Path, point_at_folder: bool) -> None:
    batches = _fake_cifar(tmp_path)
    ds = load_cifar10(tmp_path / "cifar-10-batches-py" if point_at_folder else tmp_path)
    assert ds.name == "cifar10" and ds.num_classes == 10 and ds.input_shape == (3, 32, 32)
    assert ds.x_train.shape == (15, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    train_data = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    train_labels = sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    np.testing.assert_array_equal(ds.y_train.numpy(), train_labels)
    np.testing.assert_array_equal(ds.y_test.numpy(), batches["test_batch"][1])
    x = ds.x_train.numpy()
    for n, c, i, j in [(0, 0, 0, 0), (4, 1, 5, 31), (14, 2, 31, 0), (7, 2, 17, 9)]:
        assert x[n, c, i, j] == np.float32(train_data[n, c * 1024 + i * 32 + j]) / np.float32(255)
    np.testing.assert_allclose(x.reshape(15, -1), train_data.astype(np.float32) / 255, rtol=0, atol=0)
    test_data = batches["test_batch"][0]
    assert ds.x_test[2, 1, 3, 4].item() == pytest.approx(test_data[2, 1024 + 3 * 32 + 4] / 255)


def test_load_cifar10_missing_batch(tmp_path: Path) -> None:
    _fake_cifar(tmp_path)
    missing = tmp_path / "cifar-10-batches-py" / "data_batch_4"
    missing.unlink()
    with pytest.raises(DataError) as e:
        load_cifar10(tmp_path)
    assert str(missing) in str(e.value) and "not found" in str(e.value)
    assert "b'data'" in str(e.value)


def test_load_cifar10_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        load_cifar10(tmp_path)


def test_load_cifar10_wrong_keys(tmp_path: Path) -> None:
    _fake_cifar(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "test_batch"
    with open(bad, "wb") as f:
        pickle.dump({"data": np.zeros((1, 3072), np.uint8), "labels": [0]}, f)
    with pytest.raises(DataError, match="b'labels'") as e:
        load_cifar10(tmp_path)
    assert str(bad) in str(e.value)


def test_load_cifar10_wrong_shape(tmp_path: Path) -> None:
    _fake_cifar(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    with open(bad, "wb") as f:
        pickle.dump({b"data": np.zeros((3, 1024), np.uint8), b"labels": [0, 1, 2]}, f)
    with pytest.raises(DataError, match=r"\(3, 1024\)") as e:
        load_cifar10(tmp_path)
    assert str(bad) in str(e.value)


def test_load_cifar10_label_count_mismatch(tmp_path: Path) -> None:
    _fake_cifar(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    with open(bad, "wb") as f:
        pickle.dump({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DataError, match="3 rows") as e:
        load_cifar10(tmp_path)
    assert str(bad) in str(e.value)


def test_load_cifar10_garbage_file(tmp_path: Path) -> None:
    _fake_cifar(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="unpickle") as e:
        load_cifar10(tmp_path)
    assert str(bad) in str(e.value)


def test_write_cifar_batch_accepts_4d(tmp_path: Path) -> None:
    img = np.arange(2 * 3 * 32 * 32, dtype=np.int64).astype(np.uint8).reshape(2, 3, 32, 32)
    write_cifar_batch(tmp_path / "b", img, [1, 2])
    with open(tmp_path / "b", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    np.testing.assert_array_equal(batch[b"data"], img.reshape(2, 3072))
    assert batch[b"labels"] == [1, 2]


# ---------------------------------------------------------------- load_dataset


def test_load_dataset_unknown_name() -> None:
    with pytest.raises(ValueError) as e:
        load_dataset("imagenet", None, seed=0)
    msg = str(e.value)
    assert "'imagenet'" in msg
    for name in ("digits", "mnist", "fashion_mnist", "cifar10"):
        assert name in msg
    assert not isinstance(e.value, DataError)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_load_dataset_requires_data_dir(name: str) -> None:
    with pytest.raises(DataError, match="data_dir") as e:
        load_dataset(name, None, seed=0)
    assert "download" in str(e.value)


def test_load_dataset_dispatch(tmp_path: Path) -> None:
    ds = load_dataset("digits", None, seed=5)
    assert torch.equal(ds.y_train, load_digits(5).y_train)
    (tmp_path / "m").mkdir()
    _fake_mnist(tmp_path / "m", n_train=4, n_test=2, h=6, w=6)
    assert load_dataset("fashion_mnist", str(tmp_path / "m"), seed=0).name == "fashion_mnist"
    assert load_dataset("mnist", str(tmp_path / "m"), seed=0).name == "mnist"
    _fake_cifar(tmp_path / "c", n_per_batch=1)
    assert load_dataset("cifar10", str(tmp_path / "c"), seed=0).n_train == 5
