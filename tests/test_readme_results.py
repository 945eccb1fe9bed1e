"""tools/readme_results.py: the README's results block is rebuilt from results/tables, and --check
notices a README that differs."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("readme_results", REPO / "tools" / "readme_results.py")
readme_results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme_results)

INF = math.inf


def _row(pid, method, point, wu, success, final, n=3, metric="accuracy", selection=0.9):
    return {
        "problem_id": pid,
        "problem": pid,
        "solver": method,
        "method": method,
        "point": point,
        "metric_name": metric,
        "selection_quantity": "val_metric" if metric == "accuracy" else "train_loss",
        "selection_higher_is_better": metric == "accuracy",
        "n_runs": n,
        "success_rate": success,
        "work_units_to_target_median": wu,
        "final_metric_median": final,
        "final_selection_median": selection,
    }


@pytest.fixture
def tables(tmp_path):
    rows = [
        _row("mlp", "sgd", "lr~0.02", 12.0, 1.0, 0.97),
        _row("mlp", "sgd", "lr~0.1", 5.0, 2 / 3, 0.98),  # best point: fewer work units to the validation target
        _row("mlp", "tr", "default", INF, 1 / 3, 0.9),
        _row("pinn_poisson", "lbfgs", "default", 600.0, 1.0, 0.0021, metric="rel_l2"),
        _row("pinn_poisson", "rmtr", "default", INF, 0.0, 0.11, metric="rel_l2"),
    ]
    d = tmp_path / "tables"
    d.mkdir()
    pd.DataFrame(rows).to_csv(d / "comparison.csv", index=False)
    (d / "targets.json").write_text(
        json.dumps(
            {
                "mlp": {"quantity": "val_metric", "value": 0.96, "direction": "above"},
                "pinn_poisson": {"quantity": "test_metric", "value": 0.05, "direction": "below"},
            }
        )
    )
    return d


def _readme(tmp_path, inner="(run tools/readme_results.py)"):
    path = tmp_path / "README.md"
    path.write_text(f"# x\n\nbefore\n<!-- results:default:begin -->\n{inner}\n<!-- results:default:end -->\nafter\n")
    return path


def test_block_is_generated_from_the_tables(tmp_path, tables):
    readme = _readme(tmp_path)
    assert readme_results.main(["--tables", str(tables), "--readme", str(readme), "--figures", "none"]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n<!-- results:default:begin -->\n") and text.endswith(
        "<!-- results:default:end -->\nafter\n"
    )
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| problem"))
    assert header == "| problem (target) | sgd | lbfgs | tr | rmtr |"
    mlp = next(line for line in lines if line.startswith("| mlp"))
    assert mlp == "| mlp (validation accuracy ≥ 0.96) | 5 · 2/3 · 0.98 (lr 0.1) | – | ∞ · 1/3 · 0.9 | – |"
    pinn = next(line for line in lines if line.startswith("| pinn_poisson"))
    assert pinn == "| pinn_poisson (rel_l2 ≤ 0.05) | – | 600 · 3/3 · 2.1e-03 | – | ∞ · 0/3 · 0.11 |"
    # idempotent, and --check agrees
    assert readme_results.main(["--tables", str(tables), "--readme", str(readme), "--figures", "none", "--check"]) == 0
    assert readme_results.main(["--tables", str(tables), "--readme", str(readme), "--figures", "none"]) == 0
    assert readme.read_text() == text


def test_check_fails_on_a_stale_readme(tmp_path, tables):
    readme = _readme(tmp_path)
    assert readme_results.main(["--tables", str(tables), "--readme", str(readme), "--figures", "none", "--check"]) == 1
    assert "(run tools/readme_results.py)" in readme.read_text()  # --check never writes
    readme_results.main(["--tables", str(tables), "--readme", str(readme), "--figures", "none"])
    readme.write_text(readme.read_text().replace("5 · 2/3", "4 · 2/3"))  # a hand-edited number
    assert readme_results.main(["--tables", str(tables), "--readme", str(readme), "--figures", "none", "--check"]) == 1


def test_figures_are_copied_and_checked(tmp_path, tables):
    readme, figures, img = _readme(tmp_path), tmp_path / "figures", tmp_path / "img"
    for src in readme_results.FIGURES:
        (figures / src).parent.mkdir(parents=True, exist_ok=True)
        (figures / src).write_bytes(b"png:" + src.encode())
    args = ["--tables", str(tables), "--readme", str(readme), "--figures", str(figures), "--img", str(img)]
    assert readme_results.main(args) == 0
    for src, dst in readme_results.FIGURES.items():
        assert (img / dst).read_bytes() == b"png:" + src.encode()
    assert readme_results.main(args + ["--check"]) == 0
    (figures / "performance_profiles.png").write_bytes(b"new sweep")
    assert readme_results.main(args + ["--check"]) == 1
    assert (img / "performance_profiles.png").read_bytes() != b"new sweep"  # --check never writes


def test_missing_markers_or_tables_are_bad_input(tmp_path, tables):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    assert readme_results.main(["--tables", str(tables), "--readme", str(readme), "--figures", "none"]) == 2
    readme = _readme(tmp_path)
    assert (
        readme_results.main(["--tables", str(tmp_path / "nowhere"), "--readme", str(readme), "--figures", "none"]) == 2
    )


def test_every_doc_gets_the_block_and_check_names_the_stale_one(tmp_path, tables, capsys):
    results, readme = tmp_path / "results.md", _readme(tmp_path)
    results.write_text("# Results\n<!-- results:default:begin -->\n<!-- results:default:end -->\n")
    args = ["--tables", str(tables), "--figures", "none", "--doc", str(results), "--readme", str(readme)]
    assert readme_results.main(args) == 0

    def block(path):
        return path.read_text().split("<!-- results:default:begin -->")[1].split("<!-- results:default:end -->")[0]

    assert "| mlp (validation accuracy ≥ 0.96) |" in block(readme) and block(results) == block(readme)
    assert readme_results.main(args + ["--check"]) == 0
    results.write_text(results.read_text().replace("5 · 2/3", "4 · 2/3"))
    assert readme_results.main(args + ["--check"]) == 1
    err = capsys.readouterr().err
    assert str(results) in err and str(readme) not in err
    # a doc without the markers is bad input naming the file, and nothing is written
    results.write_text("# no markers\n")
    before = readme.read_text()
    readme.write_text(before.replace("5 · 2/3", "4 · 2/3"))
    assert readme_results.main(args) == 2
    assert str(results) in capsys.readouterr().err and "4 · 2/3" in readme.read_text()


def test_default_docs_are_the_results_page_and_the_readme():
    assert readme_results.DOCS == (Path("docs/results.md"), Path("README.md"))
    for doc in readme_results.DOCS:
        begin, end = readme_results.markers("default")
        text = (REPO / doc).read_text()
        assert text.index(begin) < text.index(end)


def test_claims_block_is_generated_from_the_claims_table(tmp_path):
    rows = [  # a claim over two pairs (one not reproduced decides it) and a reproduced one
        {"claim": "rmtr_work", "problem_id": "peaks", "verdict": "not reproduced", "claim_verdict": "not reproduced"},
        {
            "claim": "rmtr_work",
            "problem_id": "roll",
            "verdict": "not tested: neither reached",
            "claim_verdict": "not reproduced",
        },
        {"claim": "level", "problem_id": "grid", "verdict": "reproduced", "claim_verdict": "reproduced"},
    ]
    d = tmp_path / "tables"
    d.mkdir()
    pd.DataFrame(rows).to_csv(d / "claims.csv", index=False)
    doc = tmp_path / "claims.md"
    doc.write_text("# Claims\n<!-- results:claims:begin -->\n<!-- results:claims:end -->\nafter\n")
    assert readme_results.main(["--name", "claims", "--tables", str(d), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "| `rmtr_work` | **not reproduced** | 0 · 1 · 0 · 1 | peaks, roll |" in text
    assert "| `level` | **reproduced** | 1 · 0 · 0 · 0 | grid |" in text and text.endswith("after\n")
    assert readme_results.main(["--name", "claims", "--tables", str(tmp_path), "--doc", str(doc)]) == 2
