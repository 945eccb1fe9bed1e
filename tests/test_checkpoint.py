"""Run checkpoints (``checkpoint_every``) and ``ml2bench run --save-model``: a run interrupted after a
checkpoint and started again ends with the history and summary of an uninterrupted run."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from ml2bench.cli import main
from ml2bench.core import checkpoint as ckpt
from ml2bench.core.config import RunConfig
from ml2bench.core.params import ConfigError
from ml2bench.core.runner import derive_seeds, run
from ml2bench.methods import METHODS
from ml2bench.problems import PROBLEMS

RESNET = {"n_train": 100, "n_test": 20, "width": 6, "depth": 8}
CASES = {
    "rmtr full batch": {"method": "rmtr", "method_params": {"coarse_steps": 5}, "budget": {"iterations": 9}},
    "sgd mini-batches, resumed mid-epoch": {"method": "sgd", "batch_size": 32, "budget": {"iterations": 11}},
    "rmtr batch growth": {
        "method": "rmtr",
        "method_params": {"coarse_steps": 5, "batch_growth": "norm_test", "initial_batch": 16},
        "budget": {"iterations": 9},
    },
    "spqn": {"method": "schwarz", "method_params": {"local_steps": 3}, "budget": {"iterations": 9}},
}
TIMING = ("train_time_s", "wall_time_s", "started_at")


def config(case: str, **extra) -> RunConfig:
    raw = {"problem": "resnet", "problem_params": RESNET, "dtype": "float64", "eval_interval": 2.0, **CASES[case]}
    return RunConfig.from_dict({**raw, **extra})


def _comparable(df: pd.DataFrame) -> pd.DataFrame:
    return df[[c for c in df.columns if c not in TIMING and "energy" not in c]]


@pytest.mark.parametrize("case", list(CASES))
def test_an_interrupted_run_resumes_to_the_uninterrupted_result(case, tmp_path, monkeypatch):
    full = run(config(case))
    path = tmp_path / ckpt.NAME
    cls = METHODS.get(config(case).method)
    step, calls = cls.step, []

    def dies_at_step_8(self, batch):
        calls.append(1)
        if len(calls) == 8:
            raise RuntimeError("killed")
        return step(self, batch)

    monkeypatch.setattr(cls, "step", dies_at_step_8)
    killed = run(config(case, checkpoint_every=3), checkpoint=path)
    monkeypatch.undo()
    assert killed.status == "failed" and path.is_file()
    assert torch.load(path, weights_only=True)["state"]["iteration"] == 6
    resumed = run(config(case, checkpoint_every=3), checkpoint=path)
    assert resumed.status == full.status == "budget_exhausted"
    pd.testing.assert_frame_equal(_comparable(resumed.history), _comparable(full.history))
    pd.testing.assert_frame_equal(_comparable(resumed.summary), _comparable(full.summary))


def test_a_checkpoint_of_another_configuration_is_refused(tmp_path):
    path = tmp_path / ckpt.NAME
    run(config("spqn", checkpoint_every=2, budget={"iterations": 3}), checkpoint=path)
    assert config("spqn", checkpoint_every=2).hash() == config("spqn").hash()  # checkpoints change no result
    with pytest.raises(ConfigError, match="written by another configuration"):
        ckpt.load(path, config("spqn").hash())


def test_cli_checkpoints_saves_the_model_and_cleans_up(tmp_path, capsys):
    out, model_path = tmp_path / "run", tmp_path / "models" / "resnet.pt"
    args = [
        "run",
        "--problem",
        "resnet",
        "--method",
        "tr",
        "--out",
        str(out),
        "--quiet",
        "--save-model",
        str(model_path),
    ]
    args += [f"--set=problem.{k}={v}" for k, v in RESNET.items()]
    args += ["--set", "budget.iterations=5", "--set", "checkpoint_every=2", "--set", "dtype=float64"]
    assert main(args) == 0
    assert not (out / ckpt.NAME).exists()  # finished: nothing to resume
    summary = pd.read_parquet(out / "summary.parquet").iloc[0]
    data_seed = derive_seeds(int(summary["seed"]))["data"]  # the run's problem: its data seed, not the run seed
    problem = PROBLEMS.get("resnet")(RESNET, seed=data_seed, device=torch.device("cpu"), dtype=torch.float64)
    net = problem.build_model(0).double()
    net.load_state_dict(torch.load(model_path, weights_only=True))
    assert problem.evaluate(net)["test_metric"] == summary["final_test_metric"]
    bad = ["run", "--problem", "mlp", "--method", "sgd", "--out", str(tmp_path / "o2"), "--save-model"]
    assert main([*bad, str(model_path / "x.pt")]) == 2  # its folder would be inside a file
    assert "is an existing file" in capsys.readouterr().err
