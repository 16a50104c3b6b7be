"""Many `dlx train` processes at once: one SQLite store loses no run and leaves none RUNNING
(the store is created/migrated under a lock, see tracking._store_lock), and runs started in the
same second get distinct Hydra output dirs (the dir name carries microseconds).

tests/test_train.py::test_two_runs_get_distinct_output_dirs covers two runs one after another;
here they start at once, with their clocks pinned to the same second.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

TINY = ("model=logistic", "dataset=synthetic_logistic", "trainer.epochs=1",
        "tracking.log_model=false", "trainer.progress=false")

# `dlx` with Hydra's ${now:...} clock pinned to 12:34:56 (microseconds stay real), so the
# processes certainly start "in the same second"
SAME_SECOND = """
import datetime, sys
import hydra.core.utils

class SameSecond(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return super().now(tz).replace(hour=12, minute=34, second=56)

hydra.core.utils.datetime = SameSecond  # what Hydra's `now` resolver calls
from dlx.cli import main
main()
"""


def _start_all(dlx, n: int, same_second: bool = False) -> list[subprocess.CompletedProcess]:
    dlx_cmd = ["-c", SAME_SECOND] if same_second else ["-m", "dlx"]
    procs = [subprocess.Popen([sys.executable, *dlx_cmd, "train", *TINY], cwd=dlx.cwd,
                              env=dlx.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(n)]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def _assert_all_recorded(dlx, done, n: int) -> list:
    for p in done:
        assert p.returncode == 0, p.stderr
    assert (dlx.cwd / "mlflow.db").is_file()
    runs = dlx.runs()
    assert len(runs) == n, [r.info.run_name for r in runs]
    assert [r.info.status for r in runs] == ["FINISHED"] * n
    assert all("test_accuracy" in r.data.metrics for r in runs)
    printed = {m for p in done for m in re.findall(r"\(([0-9a-f]{32})\)", p.stdout)}
    assert {r.info.run_id for r in runs} == printed
    dirs = {r.data.tags["dlx.output_dir"] for r in runs}
    assert len(dirs) == n and all(Path(d, ".hydra", "config.yaml").is_file() for d in dirs)
    return runs


@pytest.mark.slow  # over 30 s: `make test-slow` (CI runs it)
def test_two_runs_started_in_the_same_second_get_distinct_dirs_in_a_new_store(new_dlx):
    dlx = new_dlx
    runs = _assert_all_recorded(dlx, _start_all(dlx, 2, same_second=True), 2)
    names = [Path(r.data.tags["dlx.output_dir"]).name for r in runs]
    assert all(name.startswith("12-34-56-") for name in names), names  # the same second


@pytest.mark.slow
def test_eight_runs_at_once_into_one_new_sqlite_store_are_all_finished(new_dlx):
    dlx = new_dlx
    # 8 processes on 2 cores: about 80 s
    _assert_all_recorded(dlx, _start_all(dlx, 8), 8)
