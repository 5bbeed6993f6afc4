"""Cell status: done / failed / pending, and the rule that marks a finished cell's training failed-to-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from slicewise.studies.grid import Cell, cell_dir
from slicewise.studies.status import ERRORED, FAILED_TO_LEARN, OK, cell_table, summarize, training_log, training_status


def test_training_status_rule() -> None:
    flat = pd.DataFrame({"step": [4, 9], "val/dice": [0.0, 0.0]})
    assert training_status(flat)[0] == FAILED_TO_LEARN and "stayed at 0" in training_status(flat)[1]
    stuck = pd.DataFrame({"step": range(12), "train/loss": [0.7] * 12})
    assert training_status(stuck)[0] == FAILED_TO_LEARN and "did not fall" in training_status(stuck)[1]
    assert training_status(pd.DataFrame({"step": range(12), "train/loss": np.linspace(1, 0.2, 12)}))[0] == OK
    assert training_status(pd.DataFrame({"step": [1], "val/dice": [0.0]}))[0] == OK  # one check: nothing to judge
    assert training_status(pd.DataFrame())[0] == OK


def test_summary_and_cell_table_from_the_cell_folders(tmp_path: Path) -> None:
    cells = [Cell(i, f"c{i}", {"seed": i}) for i in range(3)]
    cell_dir(tmp_path, cells[0]).mkdir(parents=True)
    (cell_dir(tmp_path, cells[0]) / "result.json").write_text("{}")
    cell_dir(tmp_path, cells[1]).mkdir(parents=True)
    (cell_dir(tmp_path, cells[1]) / "error.txt").write_text("Traceback\nRuntimeError: boom\n")
    s = summarize(tmp_path, cells)
    assert (s.done, s.failed, s.pending) == ([cells[0]], [cells[1]], [cells[2]])
    assert s.line("toy") == "study toy: 3 cells: 1 done, 1 failed, 1 pending"
    logs = cell_dir(tmp_path, cells[0]) / "train" / "logs"
    for version, steps in (("version_0", [0, 1]), ("version_1", [2, 3])):
        (logs / version).mkdir(parents=True)
        pd.DataFrame({"step": steps, "train/loss": [1.0, 0.9]}).to_csv(logs / version / "metrics.csv", index=False)
    assert training_log(cell_dir(tmp_path, cells[0]))["step"].tolist() == [0, 1, 2, 3]
    table = cell_table(tmp_path, cells)
    assert table["status"].tolist() == [OK, ERRORED, "pending"]
    assert table["reason"].iloc[1] == "RuntimeError: boom" and table["steps"].iloc[0] == 4
