"""The ``resnet`` problem: construction, shapes, training, validation and the file-based data sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ml2bench.core.config import RunConfig
from ml2bench.core.objective import WorkCounter
from ml2bench.core.params import ConfigError
from ml2bench.core.runner import run
from ml2bench.data import write_idx
from ml2bench.data.cifar import write_cifar_batch
from ml2bench.multilevel.depth import DepthTransfer
from ml2bench.nn import ConvODEResNet, DenseODEResNet
from ml2bench.problems import PROBLEMS

CPU = torch.device("cpu")

ResNet = PROBLEMS.get("resnet")


def _problem(dtype: torch.dtype = torch.float32, **hp):
    base = {"n_train": 64, "n_test": 32}
    base.update(hp)
    return ResNet(base, seed=0, device=CPU, dtype=dtype)


# ----------------------------------------------------------------------------- construction


def test_registered_with_documented_defaults() -> None:
    assert "resnet" in PROBLEMS
    defaults = ResNet.params.defaults()
    assert defaults["arch"] == "dense" and defaults["depth"] == 8 and defaults["T"] == 1.0
    assert defaults["interpolation"] == "constant" and defaults["dataset"] == "digits"
    assert ResNet.metric_name == "accuracy" and ResNet.default_batch_size == 64


@pytest.mark.parametrize("arch, cls", [("dense", DenseODEResNet), ("conv", ConvODEResNet)])
def test_models_per_level(arch: str, cls: type) -> None:
    """Level l has depth 8/2^l, the same T (h doubles), and maps digits (1×8×8) to 10 logits."""
    problem = _problem(arch=arch, width=6, T=2.0)
    assert problem.max_levels() == 4
    x = problem.x_train[:5]
    for level in range(4):
        model = problem.build_model(level)
        assert isinstance(model, cls)
        assert len(model.blocks) == 8 >> level and model.T == 2.0 and model.h == 2.0 / (8 >> level)
        assert model(x).shape == (5, 10)
    with pytest.raises(ConfigError, match="level 4"):
        problem.build_model(4)
    assert isinstance(problem.transfer(problem.build_model(0), problem.build_model(1), 0), DepthTransfer)


def test_dense_parameter_count() -> None:
    W = 6
    model = _problem(width=W).build_model(0)
    n = sum(p.numel() for p in model.parameters())
    assert n == (64 * W + W) + 8 * (W * W + W) + (W * 10 + 10)


def test_odd_depth_is_single_level() -> None:
    problem = _problem(depth=6)
    assert problem.max_levels() == 2  # 6 → 3
    assert len(problem.build_model(1).blocks) == 3
    assert _problem(depth=5).max_levels() == 1


def test_interpolation_kind_reaches_transfer() -> None:
    problem = _problem(interpolation="linear")
    hier = problem.hierarchy(2, WorkCounter())
    assert hier.transfers[0].kind == "linear"


# ----------------------------------------------------------------------------- training


# arch -> (lr, epochs, batch size). Measured (seed 0, 128 digits, width 8, float32): train loss
# (full set) and test accuracy (64 digits) after training:
#   dense lr 1e-2, 4 epochs of 32:  2.333 → 1.594, accuracy 0.594
#   conv  lr 3e-2, 20 epochs of 16: 2.335 → 1.301, accuracy 0.625 (4 epochs of 32 at lr 1e-2 only
#   reach 2.279: global average pooling of an 8-channel state learns slowly at first)
# Chance: loss ln 10 = 2.303, accuracy 0.1.
ADAM_SETTINGS = {"dense": (1e-2, 4, 32), "conv": (3e-2, 20, 16)}


@pytest.mark.parametrize("arch", ["dense", "conv"])
def test_adam_learns(arch: str) -> None:
    """Adam on 128 digits, through the runner, ends well below chance: train loss < 0.75 ln 10
    and test accuracy ≥ 0.4 (4× chance)."""
    lr, epochs, batch_size = ADAM_SETTINGS[arch]
    config = RunConfig.from_dict(
        {
            "problem": "resnet",
            "method": "adam",
            "seed": 0,
            "threads": 1,  # no oversubscription
            "problem_params": {"arch": arch, "width": 8, "n_train": 128, "n_test": 64},
            "method_params": {"lr": lr},
            "budget": {"epochs": epochs},
            "batch_size": batch_size,
        }
    )
    threads = torch.get_num_threads()
    try:
        result = run(config)
    finally:
        torch.set_num_threads(threads)  # the runner sets it process-wide
    assert result.status == "budget_exhausted", result.summary["error"].iloc[0]
    losses = result.history["train_loss"].to_numpy()
    assert len(losses) == epochs + 1 and np.isfinite(losses).all()
    assert losses[0] > 0.95 * np.log(10), losses  # starts at chance
    assert losses[-1] < 0.75 * np.log(10), losses
    assert result.history["test_metric"].iloc[-1] >= 0.4, result.history["test_metric"].tolist()


def test_objective_gradient_step_decreases_loss() -> None:
    """Direct use of the fine objective: one small gradient step is a descent step (float64)."""
    problem = _problem(dtype=torch.float64, width=8)
    obj = problem.hierarchy(1, WorkCounter()).fine
    batch = next(iter(problem.train_batches(None, torch.Generator().manual_seed(0))))
    x = obj.initial_x()
    f0, g = obj.loss_grad(x, batch)
    assert obj.loss(x - 1e-2 * g, batch) < f0 - 0.5e-2 * float(g @ g)  # Armijo with c = 1/2


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "key, value",
    [
        ("arch", "transformer"),
        ("T", -1.0),
        ("T", 0.0),
        ("depth", 0),
        ("width", 0),
        ("activation", "softmax"),
        ("interpolation", "cubic"),
        ("arch", 3),
    ],
)
def test_bad_hyper_parameters_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"'{key}'"):
        RunConfig.from_dict({"problem": "resnet", "method": "adam", "problem_params": {key: value}})
    with pytest.raises(ConfigError, match=f"'{key}'"):  # direct construction validates too
        _problem(**{key: value})


def test_too_many_levels_names_levels() -> None:
    problem = _problem(depth=8)
    with pytest.raises(ConfigError, match="levels") as err:
        problem.hierarchy(5, WorkCounter())
    assert "1..4" in str(err.value)
    with pytest.raises(ConfigError, match="levels"):
        _problem(depth=3).hierarchy(2, WorkCounter())


def test_unknown_key_named() -> None:
    with pytest.raises(ConfigError, match="'channels'"):
        RunConfig.from_dict({"problem": "resnet", "method": "adam", "problem_params": {"channels": 8}})


# ----------------------------------------------------------------------------- file data sets

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _write_mnist(root: Path, side: int, n_train: int = 60, n_test: int = 30) -> Path:
    """Learnable IDX files: label y ∈ {0, 1} alternates, pixels uniform in [0, 128) + 128 y (class 1
    is brighter everywhere, which a dense net and a conv net with global average pooling both see)."""
    rng = np.random.default_rng(0)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n, dtype=np.uint8) % 2
        x = rng.integers(0, 128, (n, side, side)) + 128 * y[:, None, None].astype(np.int64)
        return x.astype(np.uint8), y

    arrays = (*draw(n_train), *draw(n_test))
    for name, arr in zip(MNIST_FILES, arrays):
        write_idx(root / name, arr)
    return root


# arch -> (width, Adam lr, epochs of 20 images). Measured on the files above (seed 0): conv width 4
# lr 0.1, 10 epochs: train loss 2.14 → 0.095, test accuracy 1.0 (28×28, 14×14 and 5×5 alike);
# dense width 8 lr 1e-3, 30 epochs: 2.27 → 0.735, accuracy 0.9 (dense width 4 or lr ≥ 1e-2 stays at
# the class prior: loss ≈ ln 2, accuracy 0.5).
IDX_TRAINING = {"conv": (4, 0.1, 10), "dense": (8, 1e-3, 30)}


@pytest.mark.parametrize(
    "dataset, side, arch",
    [
        ("mnist", 28, "conv"),
        ("mnist", 28, "dense"),
        ("fashion_mnist", 14, "conv"),
        ("mnist", 5, "conv"),
    ],
)
def test_mnist_idx(tmp_path: Path, dataset: str, side: int, arch: str) -> None:
    """1×28×28 and smaller images from tiny IDX files: a 2-level hierarchy evaluates (finite loss
    and gradient on both levels), and Adam through the runner learns the two classes: test accuracy
    ≥ 0.8 (chance 0.5) and train loss below half its initial value."""
    _write_mnist(tmp_path, side, n_train=84)  # 60 for training after the validation split
    width, lr, epochs = IDX_TRAINING[arch]
    problem = _problem(
        dataset=dataset, data_dir=str(tmp_path), arch=arch, width=width, depth=4, n_train=None, n_val=24, n_test=None
    )
    assert problem.data.input_shape == (1, side, side) and problem.n_train == 60  # 84 less the validation split
    assert problem.x_val.shape == (24, 1, side, side)
    hier = problem.hierarchy(2, WorkCounter())
    batch = next(iter(problem.train_batches(None, torch.Generator().manual_seed(0))))
    for obj in hier.objectives:
        out = obj.fmodel(obj.initial_x())(batch.x)
        assert out.shape == (60, 10)
        loss, grad = obj.loss_grad(obj.initial_x(), batch)
        assert np.isfinite(loss) and torch.isfinite(grad).all()
    config = RunConfig.from_dict(
        {
            "problem": "resnet",
            "method": "adam",
            "seed": 0,
            "threads": 1,
            "batch_size": 20,
            "problem_params": {
                "arch": arch,
                "width": width,
                "depth": 4,
                "dataset": dataset,
                "data_dir": str(tmp_path),
                "n_train": None,
                "n_val": 24,
                "n_test": None,
            },
            "method_params": {"lr": lr},
            "budget": {"epochs": epochs},
        }
    )
    threads = torch.get_num_threads()
    try:
        result = run(config)
    finally:
        torch.set_num_threads(threads)
    h = result.history
    assert result.status == "budget_exhausted", result.summary["error"].iloc[0]
    assert h["train_loss"].iloc[-1] < 0.5 * h["train_loss"].iloc[0], h["train_loss"].tolist()
    assert h["test_metric"].iloc[-1] >= 0.8, h["test_metric"].tolist()


def test_cifar10(tmp_path: Path) -> None:
    """3×32×32 CIFAR-10 batches (2 images each) for the conv and the dense architecture."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        write_cifar_batch(folder / name, rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8), [1, 7])
    for arch in ("conv", "dense"):
        problem = _problem(
            dataset="cifar10", data_dir=str(tmp_path), arch=arch, width=4, depth=2, n_train=None, n_val=2, n_test=None
        )
        assert problem.data.input_shape == (3, 32, 32) and problem.n_train == 8
        hier = problem.hierarchy(2, WorkCounter())
        assert hier.objectives[1].cost_ratio < 1.0
        batch = next(iter(problem.train_batches(4, torch.Generator().manual_seed(0))))
        loss, grad = hier.fine.loss_grad(hier.fine.initial_x(), batch)
        assert np.isfinite(loss) and grad.shape == (hier.fine.n,)


def test_file_dataset_without_data_dir_fails_clearly() -> None:
    with pytest.raises(ValueError, match="data_dir"):
        _problem(dataset="mnist")
