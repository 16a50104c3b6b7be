"""The installed wheel, from empty folders: every verb a user starts with, and a project of the
user's own (tests/fixtures/project.py). A packaging mistake (a config file, a module or a
plugin left out of the wheel) fails here."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import tarfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from fixtures import project

pytestmark = pytest.mark.wheel
ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(str(p.relative_to(ROOT / "conf")) for p in (ROOT / "conf").rglob("*.yaml"))


def test_the_sdist_and_the_wheel_carry_every_config(installed):
    with zipfile.ZipFile(installed.wheel) as z:
        names = z.namelist()
    assert sorted(n.removeprefix("dlx/conf/") for n in names
                  if n.startswith("dlx/conf/") and n.endswith(".yaml")) == CONFIGS
    assert "hydra_plugins/dlx_sweeps/launcher.py" in names
    with tarfile.open(installed.sdist) as t:
        top = t.getnames()[0].split("/")[0]
        sdist = sorted(n.removeprefix(f"{top}/conf/") for n in t.getnames()
                       if n.startswith(f"{top}/conf/") and n.endswith(".yaml"))
    assert sdist == CONFIGS
    print(f"\nwheel {installed.wheel.name}: {len(names)} files, "
          f"{installed.wheel.stat().st_size / 1024:.0f} KiB; {len(CONFIGS)} configs")


def test_every_verb_works_from_an_empty_folder(installed, tmp_path):
    here = tmp_path
    run = lambda *args, **kw: installed.run(here, *args, **kw)  # noqa: E731
    from importlib.metadata import version

    assert run("--version").stdout.strip() == f"dlx {version('dlx')}"
    probe = subprocess.run([str(installed.venv / "bin" / "python"), "-c",
                            "import dlx.config; print(dlx.config.CONF_DIR)"], cwd=here,
                           env=installed.env(), capture_output=True, text=True, check=True)
    assert probe.stdout.strip().startswith(str(installed.venv))  # the installed tree, not ROOT
    assert "seed_mnist_cnn_keras" in run("config", "list").stdout
    assert "dlx.models.mlp.MLP" in run("config", "show", "model=mlp").stdout
    trained = run("train", "model=mlp", "trainer.epochs=2", "trainer.progress=false")
    assert "test_accuracy=" in trained.stdout
    swept = run("train", "-m", "model=mlp", "trainer.epochs=1", "optimizer.lr=0.01,0.001",
                "trainer.progress=false")
    assert "sweep: best of 2 runs" in swept.stdout
    rows = json.loads(run("runs", "--json").stdout)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"FINISHED"}
    first = next(r for r in rows if r["tags"].get("dlx.kind") != "sweep")
    metrics = json.loads(run("eval", first["run_id"], "--json").stdout)["metrics"]
    assert metrics["test_accuracy"] > 0.5
    (here / "digit.csv").write_text(",".join(f"pixel_{i // 8}_{i % 8}" for i in range(64)) + "\n"
                                    + ",".join(["0"] * 64) + "\n")
    predicted = list(csv.DictReader(io.StringIO(run("predict", first["run_id"], "digit.csv").stdout)))
    assert len(predicted) == 1 and predicted[0]["prediction"] in [str(d) for d in range(10)]
    exported = run("export", first["run_id"])  # the pyfunc model: dlx's code from the wheel
    assert "mlflow.pyfunc.load_model" in exported.stdout and not exported.stderr
    completion = subprocess.run([installed.dlx], cwd=here, capture_output=True, text=True,
                                env={**installed.env(), "_DLX_COMPLETE": "complete_bash",
                                     "COMP_WORDS": "dlx train model =", "COMP_CWORD": "3"})
    assert "cnn" in completion.stdout.split()
    _ui_answers(installed, here)


def _ui_answers(installed, here: Path) -> None:
    """`dlx ui` serves the folder's store; stopped by pid (its process group) at the end."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([installed.dlx, "ui", "--port", str(port)], cwd=here,
                            env=installed.env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline, body = time.time() + 180, None
        while body is None and time.time() < deadline and proc.poll() is None:
            try:
                body = urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/get-by-name"
                    "?experiment_name=dlx", timeout=2).read().decode()
            except OSError:
                time.sleep(0.5)
        assert body is not None and '"dlx"' in body, "dlx ui did not answer"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_your_own_network_data_and_presets_from_an_empty_folder(installed, tmp_path):
    project.write(tmp_path)
    run = lambda *args, **kw: installed.run(tmp_path, *args, **kw)  # noqa: E731
    run("train", "--config-dir", "conf", "+experiment=tiny", "trainer.progress=false")
    run("train", "model=custom", "model._target_=mynets.TinyNet", "+model.hidden=8",
        "dataset=custom", "dataset._target_=mydata.line", "trainer.epochs=2",
        "trainer.progress=false")
    run("train", "-m", "--config-dir", "conf", "model=tinynet", "dataset=blobs", "sweep=lrs",
        "trainer.epochs=2", "trainer.progress=false")
    rows = json.loads(run("runs", "--json").stdout)
    assert len(rows) == 5 and {r["status"] for r in rows} == {"FINISHED"}
    assert {r["params"]["model._target_"] for r in rows if "model._target_" in r["params"]} \
        == {"mynets.TinyNet"}
    bad = run("train", "model=custom", "model._target_=mynets.NoSpec", check=False)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert "does not take `spec`" in bad.stderr


def test_init_then_train_as_the_readme_says(installed, tmp_path):
    installed.run(tmp_path, "init", "lab")
    lab = tmp_path / "lab"
    readme = (lab / "README.md").read_text()
    command = next(line.split("#")[0].split() for line in readme.splitlines()
                   if "+experiment=starter" in line and "-m" not in line)
    assert command[0] == "dlx"
    trained = installed.run(lab, *command[1:], "trainer.progress=false")
    accuracy = float(trained.stdout.split("test_accuracy=")[1].split()[0])
    assert accuracy >= 0.9
