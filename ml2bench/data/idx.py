"""IDX file format (MNIST, Fashion-MNIST) reader/writer and the MNIST loader.

Implemented here rather than via torchvision so the package has no download
machinery and no extra dependency; the format is small enough to validate fully.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from ml2bench.data.dataset import DataError, Dataset

# IDX dtype code -> big-endian numpy dtype.
_CODE_TO_DTYPE: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_DTYPE_TO_CODE: dict[np.dtype, int] = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}
_IDX_FORMAT = (
    "expected IDX format: 2 zero bytes, dtype code (0x08 ubyte, 0x09 byte, "
    "0x0B short, 0x0C int, 0x0D float, 0x0E double), ndim byte, ndim big-endian "
    "uint32 dims, then big-endian data (optionally gzip-compressed)"
)

_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_MNIST_FORMAT = "expected MNIST IDX files (" + ", ".join(f"{f}[.gz]" for f in _MNIST_FILES.values()) + ") in data_dir"


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; {_IDX_FORMAT}") from None
    except (gzip.BadGzipFile, EOFError, OSError) as e:
        raise DataError(f"{path}: cannot read ({e}); {_IDX_FORMAT}") from e


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (plain or ``.gz``) into a native-endian numpy array.

    Every header field and the payload length are checked, so a truncated
    download fails here with the path instead of as a reshape error later.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path}: file too short for an IDX header ({len(raw)} bytes); {_IDX_FORMAT}")
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: bad magic number (first bytes {raw[:4].hex()}); {_IDX_FORMAT}")
    code, ndim = raw[2], raw[3]
    if code not in _CODE_TO_DTYPE:
        raise DataError(f"{path}: unknown IDX dtype code 0x{code:02X}; {_IDX_FORMAT}")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{path}: header declares {ndim} dims but the file ends after {len(raw)} bytes; {_IDX_FORMAT}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _CODE_TO_DTYPE[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header_len
    if actual != expected:
        raise DataError(
            f"{path}: payload is {actual} bytes but dims {dims} of {dtype.name} "
            f"need {expected} bytes (truncated or corrupt); {_IDX_FORMAT}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed if ``path`` ends in ``.gz``.

    Lets tests and users build small MNIST-style files without external tools.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _DTYPE_TO_CODE.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(
            f"write_idx: dtype {array.dtype} not representable in IDX; use one of "
            f"{', '.join(str(d) for d in _DTYPE_TO_CODE)}"
        )
    if array.ndim > 255 or any(d >= 2**32 for d in array.shape):
        raise ValueError(f"write_idx: shape {array.shape} too large for IDX")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = np.ascontiguousarray(array, dtype=_CODE_TO_DTYPE[code]).tobytes()
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(header + payload)
    else:
        path.write_bytes(header + payload)


def _find_mnist_file(data_dir: Path, base: str) -> Path:
    """Prefer the uncompressed file: it is faster to read and usually the one the user extracted."""
    for candidate in (data_dir / base, data_dir / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{data_dir / base}(.gz): file not found; {_MNIST_FORMAT}")


def _load_split(data_dir: Path, images_base: str, labels_base: str) -> tuple[np.ndarray, np.ndarray]:
    img_path = _find_mnist_file(data_dir, images_base)
    lbl_path = _find_mnist_file(data_dir, labels_base)
    images = read_idx(img_path)
    labels = read_idx(lbl_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{img_path}: expected a 3-d ubyte (0x08) array (N, rows, cols), got "
            f"{images.ndim}-d {images.dtype}; {_MNIST_FORMAT}"
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{lbl_path}: expected a 1-d integer array of labels, got {labels.ndim}-d {labels.dtype}; {_MNIST_FORMAT}"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{img_path} has {images.shape[0]} images but {lbl_path} has {labels.shape[0]} labels; counts must match"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{lbl_path}: labels must be in 0..9, found range {int(labels.min())}..{int(labels.max())}")
    return images, labels


def load_mnist(data_dir: str | os.PathLike[str], name: str = "mnist") -> Dataset:
    """Load MNIST or Fashion-MNIST (identical file layout) from ``data_dir``.

    Images become float32 in [0, 1] with shape (N, 1, rows, cols); rows/cols
    come from the file so down-sampled variants work too.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data_dir is not a directory; {_MNIST_FORMAT}")
    x_tr, y_tr = _load_split(data_dir, _MNIST_FILES["train_images"], _MNIST_FILES["train_labels"])
    x_te, y_te = _load_split(data_dir, _MNIST_FILES["test_images"], _MNIST_FILES["test_labels"])
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DataError(
            f"{data_dir}: train images are {x_tr.shape[1:]} but test images are {x_te.shape[1:]}; {_MNIST_FORMAT}"
        )

    def to_x(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.float32) / 255.0).unsqueeze(1)

    def to_y(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.int64))

    return Dataset(
        x_train=to_x(x_tr),
        y_train=to_y(y_tr),
        x_test=to_x(x_te),
        y_test=to_y(y_te),
        num_classes=10,
        input_shape=(1, *(int(d) for d in x_tr.shape[1:])),
        name=name,
    )
