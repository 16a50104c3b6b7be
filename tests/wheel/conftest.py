"""dlx as a user installs it: the sdist built with `python -m build`, the wheel built from that
sdist, installed into a fresh virtual environment and run from empty folders, never from the
checkout. The environment gets dlx's dependencies from the test's own environment (offline: a
.pth file naming its site-packages), so only the wheel is new; `dlx` is that venv's script."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Installed:
    venv: Path
    wheel: Path
    sdist: Path

    @property
    def dlx(self) -> str:
        return str(self.venv / "bin" / "dlx")

    def env(self) -> dict[str, str]:
        """The environment of a user's shell with the venv activated: nothing of the checkout."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR")}
        env.update(PATH=f"{self.venv / 'bin'}:{env.get('PATH', '')}", VIRTUAL_ENV=str(self.venv),
                   OMP_NUM_THREADS="1", COLUMNS="200", PYTHONUNBUFFERED="1")
        return env

    def run(self, cwd: Path, *args: str, check: bool = True, timeout: int = 300,
            command: str | None = None) -> subprocess.CompletedProcess:
        """`dlx ARGS` (or `command ARGS`) in `cwd`, as a user types it."""
        proc = subprocess.run([command or self.dlx, *args], cwd=cwd, env=self.env(), text=True,
                              capture_output=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"dlx {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture(scope="session")
def installed(tmp_path_factory, worker_id) -> Installed:
    """Built and installed once per test session, by the first test worker that asks (the others
    wait for it, under a file lock: two builds in one source tree collide)."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = base.parent if worker_id != "master" else base
    with FileLock(str(root / "installed.lock")):
        done = root / "installed" / "done"
        if not done.exists():
            _install(root / "installed")
            done.touch()
    folder = root / "installed"
    (sdist,), (wheel,) = folder.glob("dist/*.tar.gz"), folder.glob("dist/*.whl")
    return Installed(folder / "venv", wheel, sdist)


def _install(folder: Path) -> None:
    out, venv = folder / "dist", folder / "venv"
    out.mkdir(parents=True, exist_ok=True)
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out),
                            str(ROOT)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = out.glob("*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    site = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "dlx-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
