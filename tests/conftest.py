"""Tests drive the real `dlx` command in a temporary working directory, then read what a user
would read: exit codes, messages, and the MLflow store the run wrote (./mlflow.db).

Where a test checks what training does rather than the command line, `Dlx.train_here` runs the
same `dlx.run.train` in the test process (a `dlx` process costs ~4 s of start-up on its own), and
runs that several tests read are trained once per test session (`shared_run`).

A `dlx` working directory starts with an empty store, as after a user's first run: creating one
(MLflow's schema migrations) costs ~1.5 s, paid once per session (`empty_store`). Tests of what
happens in a directory without a store use `new_dlx`.
"""

from __future__ import annotations

import os
import shutil
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.runs import Dlx


@pytest.fixture(scope="session", autouse=True)
def cache_home(tmp_path_factory) -> Path:
    """dlx's caches (decoded image folders) under the test session's temporary folder, not the
    home folder: XDG_CACHE_HOME for this process and every dlx command it starts."""
    folder = tmp_path_factory.mktemp("cache")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    return folder


@pytest.fixture
def dlx(tmp_path: Path, empty_store: Path) -> Dlx:
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    return Dlx(tmp_path)


@pytest.fixture
def new_dlx(tmp_path: Path) -> Dlx:
    """A working directory without a store: the first `dlx` command there creates it."""
    return Dlx(tmp_path)


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory, worker_id) -> Path:
    """An mlflow.db with MLflow's schema and no experiment of dlx's, made once per session (the
    first test worker to ask makes it, under a file lock)."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = base.parent if worker_id != "master" else base  # shared by the xdist workers
    folder = root / "empty-store"
    with FileLock(str(root / "empty-store.lock")):
        if not (folder / "done").exists():
            folder.mkdir(exist_ok=True)
            store = Dlx(folder)
            store.client().search_experiments()  # creates and migrates ./mlflow.db
            (folder / "done").touch()
    return folder / "mlflow.db"


@pytest.fixture(scope="module")
def module_dlx(tmp_path_factory) -> Dlx:
    """One working directory (and store) shared by the tests of a module."""
    return Dlx(tmp_path_factory.mktemp("shared"))


# ---------------------------------------------------------------- runs trained once per session
@pytest.fixture(scope="session")
def shared_run(tmp_path_factory, worker_id) -> Callable[[str, Callable[[Dlx], None]], Dlx]:
    """shared_run(name, make) -> the Dlx of a working directory in which make(dlx) has trained:
    once per test session, whichever test worker asks first (the others wait for it, under a
    file lock), so the tests that read the same kind of run do not each train one. A failure is
    remembered and raised again for every test that asks. Tests must only read such a run or
    add to it (eval --log, explain, export), never rely on being the only one doing so."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = base.parent if worker_id != "master" else base  # shared by the xdist workers

    def get(name: str, make: Callable[[Dlx], None]) -> Dlx:
        folder = root / f"shared-{name}"
        done, failed = folder / ".trained", folder / ".failed"
        with FileLock(str(root / f"shared-{name}.lock")):
            if not done.exists() and not failed.exists():
                folder.mkdir(exist_ok=True)
                try:
                    make(Dlx(folder))
                except BaseException:
                    failed.write_text(traceback.format_exc())
                    raise
                done.touch()
        if failed.exists():
            pytest.fail(f"training the shared run {name!r} failed:\n{failed.read_text()}")
        return Dlx(folder)

    return get


def digits_mlp(dlx: Dlx) -> None:
    """An MLP on digits, 3 epochs on the CPU, model logged: what eval, predict, explain, export
    and load_model read back."""
    dlx("train", "model=mlp", "trainer.epochs=3", "trainer.device=cpu", "trainer.progress=false")


@pytest.fixture
def digits_run(shared_run):
    """(Dlx, run) of `digits_mlp`, trained once per session."""
    dlx = shared_run("digits_mlp", digits_mlp)
    (run,) = dlx.runs()
    return dlx, run
