"""`dlx predict` on every kind of dataset (CSV, image folder, IMDB text), checked against what the
run itself logged on its test split, and shell completion of `dlx train` overrides."""

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.datasets import make_csv, make_image_folder, make_imdb

TRAIN = ("train", "trainer.progress=false")  # not dlx.train: predict needs the logged model


def _rows(proc) -> list[dict]:
    return list(csv.DictReader(io.StringIO(proc.stdout)))


def _confusion(rows, truth: list[str]) -> dict:
    """Counts of (true, predicted) class names, from predict's rows."""
    out: dict = {}
    for row, label in zip(rows, truth, strict=True):
        out[label, row["prediction"]] = out.get((label, row["prediction"]), 0) + 1
    return out


def _logged_confusion(dlx, run) -> dict:
    """The run's own confusion_matrix.json (its test split), as counts of (true, predicted)."""
    import mlflow

    dlx.client()
    cm = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/confusion_matrix.json")
    return {(t, p): n for t, row in zip(cm["labels"], cm["matrix"])
            for p, n in zip(cm["labels"], row) if n}


def _one_line_error(proc) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlx: error: "), proc.stderr
    return lines[0]


def _parallel(*calls):
    """Run several `dlx` commands at once ((Dlx, args) pairs): each pays torch's and mlflow's
    import, so running them side by side keeps this file's wall time down."""
    procs = [subprocess.Popen([sys.executable, "-m", "dlx", *args], cwd=d.cwd, env=d.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for d, args in calls]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Three runs trained side by side, each in its own folder and store: an MLP on a CSV, a CNN
    on an image folder, a GRU on an aclImdb copy."""
    from tests.conftest import Dlx

    stores = {k: Dlx(tmp_path_factory.mktemp(k)) for k in ("csv", "images", "imdb")}
    data = {"csv": make_csv(stores["csv"].cwd / "table.csv", n=300),
            "images": make_image_folder(stores["images"].cwd / "shapes", n_per_class=30),
            "imdb": make_imdb(stores["imdb"].cwd / "reviews", n_per_split_class=40)}
    overrides = {
        "csv": ["model=mlp", "dataset=csv", f"dataset.path={data['csv']}", "trainer.epochs=15"],
        "images": ["model=cnn", "dataset=image_folder", f"dataset.root={data['images']}",
                   "trainer.epochs=12", "optimizer.lr=0.003"],
        "imdb": ["model=gru", "dataset=imdb", f"dataset.root={data['imdb']}", "dataset.max_len=40",
                 "dataset.min_freq=1", "optimizer.lr=0.01", "trainer.epochs=12"],
    }
    procs = _parallel(*((stores[k], [*TRAIN, *overrides[k]]) for k in stores))
    for p in procs:
        assert p.returncode == 0, p.stdout + p.stderr
    return {k: (stores[k], stores[k].runs()[0], data[k]) for k in stores}


# ------------------------------------------------------------------------------------- CSV
@pytest.fixture(scope="module")
def inputs(trained, tmp_path_factory):
    """New input files for each run: the rows, images and reviews of its own test split, written
    the way a user would (CSV columns reordered with an extra one, images renamed into a nested
    folder beside a text file, one review per line with blank lines between)."""
    import mlflow
    import pandas as pd

    from dlx.data.bundle import holdout

    where = tmp_path_factory.mktemp("inputs")
    out = {}
    dlx, run, path = trained["csv"]
    dlx.client()
    splits = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/splits.json")
    test = pd.read_csv(path).iloc[splits["test"]]
    test[["label", "color", "f3", "f2", "f1", "f0"]].assign(id=range(len(test))).to_csv(
        where / "rows.csv", index=False)
    out["csv"] = (where / "rows.csv", test)

    dlx, run, root = trained["images"]
    # ImageFolder's order (classes sorted, then file names) and the run's seeded split
    classes = sorted(p.name for p in root.iterdir())
    files = [f for c in classes for f in sorted((root / c).iterdir(), key=lambda p: p.name)]
    y = np.array([classes.index(f.parent.name) for f in files])
    _, held = holdout(np.arange(len(files)), y, 0.2, 42, stratify=True)
    folder = where / "images"
    for i in held:
        (folder / files[i].parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(files[i], folder / files[i].parent.name / f"img_{i}.png")
    (folder / "notes.txt").write_text("not an image: skipped")
    out["images"] = (folder, {str(folder / files[i].parent.name / f"img_{i}.png") for i in held})

    dlx, run, root = trained["imdb"]
    reviews, truth = [], []
    for label in ("neg", "pos"):  # the published test split
        for f in sorted((root / "aclImdb" / "test" / label).glob("*.txt")):
            reviews.append(f.read_text(encoding="utf-8"))
            truth.append(label)
    (where / "reviews.txt").write_text("\n\n".join(reviews) + "\n", encoding="utf-8")
    out["imdb"] = (where / "reviews.txt", truth)
    return out


@pytest.fixture(scope="module")
def predicted(trained, inputs):
    """`dlx predict` of each run on its new inputs (the CSV one written with -o)."""
    csv_out = inputs["csv"][0].with_name("pred.csv")
    calls = [(trained["csv"][0], ["predict", trained["csv"][1].info.run_id, str(inputs["csv"][0]),
                                  "-o", str(csv_out)])]
    calls += [(trained[k][0], ["predict", trained[k][1].info.run_id, str(inputs[k][0])])
              for k in ("images", "imdb")]
    procs = dict(zip(("csv", "images", "imdb"), _parallel(*calls)))
    for p in procs.values():
        assert p.returncode == 0, p.stdout + p.stderr
    return procs, csv_out


def test_csv_predict_uses_the_logged_pipeline_and_model(trained, inputs, predicted, tmp_path):
    dlx, run, _ = trained["csv"]
    _, test = inputs["csv"]
    procs, out = predicted
    assert f"{len(test)} predictions written to {out}" in procs["csv"].stdout
    rows = list(csv.DictReader(out.open()))
    assert [int(r["row"]) for r in rows] == list(range(1, len(test) + 1))
    assert {"p_0", "p_1", "p_2"} <= set(rows[0])
    # the run's own test metrics, reproduced from the file
    truth = [str(v) for v in test["label"]]
    assert _confusion(rows, truth) == _logged_confusion(dlx, run)
    acc = np.mean([r["prediction"] == t for r, t in zip(rows, truth)])
    assert acc == pytest.approx(run.data.metrics["test_accuracy"]) and acc > 0.8
    # and the logged model on the logged preprocessing gives the same probabilities
    import joblib
    import mlflow
    import torch

    pipe = joblib.load(mlflow.artifacts.download_artifacts(
        f"runs:/{run.info.run_id}/preprocessing.joblib", dst_path=str(tmp_path)))
    model = dlx.model(run)
    x = torch.as_tensor(pipe.transform(test.drop(columns="label")), dtype=torch.float32)
    with torch.no_grad():
        probs = model(x).softmax(1).numpy()
    got = np.array([[float(r[f"p_{k}"]) for k in range(3)] for r in rows])
    np.testing.assert_allclose(got, probs, rtol=1e-5, atol=1e-6)


def test_image_predict_on_the_test_files_reproduces_the_run(trained, inputs, predicted):
    dlx, run, _ = trained["images"]
    rows = _rows(predicted[0]["images"])
    assert {r["file"] for r in rows} == inputs["images"][1]  # every image, the text file skipped
    truth = [Path(r["file"]).parent.name for r in rows]
    assert _confusion(rows, truth) == _logged_confusion(dlx, run)
    assert {"p_circle", "p_square", "p_triangle"} <= set(rows[0])
    acc = np.mean([r["prediction"] == t for r, t in zip(rows, truth)])
    assert acc == pytest.approx(run.data.metrics["test_accuracy"]) and acc > 0.5


def test_text_predict_one_review_per_line_reproduces_the_run(trained, inputs, predicted):
    dlx, run, _ = trained["imdb"]
    truth = inputs["imdb"][1]
    rows = _rows(predicted[0]["imdb"])
    assert [int(r["line"]) for r in rows] == list(range(1, 2 * len(truth), 2))  # blanks skipped
    assert set(rows[0]) == {"line", "prediction", "probability", "p_pos"}
    assert _confusion(rows, truth) == _logged_confusion(dlx, run)
    acc = np.mean([r["prediction"] == t for r, t in zip(rows, truth)])
    assert acc == pytest.approx(run.data.metrics["test_accuracy"]) and acc > 0.8


def test_bad_inputs_are_one_line_errors(trained, tmp_path):
    missing = tmp_path / "missing.csv"
    missing.write_text("f0,f2,colour,f3\n1,2,red,0\n")
    text = tmp_path / "text.csv"
    text.write_text("f0,f1,f2,f3,color\n1,2,3,4,red\n0.5,n/a?,1,2,blue\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    junk = tmp_path / "broken.png"
    junk.write_bytes(b"\x89PNG not really")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    cases = [("csv", missing, ("lacks column(s) f1, color: the run was trained on f0, f1, f2, f3, "
                               "color (its columns are f0, f2, colour, f3; others are ignored)")),
             ("csv", text, "column 'f1' must hold numbers, but data row 2 holds 'n/a?'"),
             ("images", empty, f"folder {empty} holds no images"),
             ("images", junk, f"cannot read image {junk}"),
             ("imdb", blank, f"{blank} is empty: write one review per line")]
    procs = _parallel(*((trained[k][0], ["predict", trained[k][1].info.run_id, str(src)])
                        for k, src, _ in cases))
    for (_, _, expected), proc in zip(cases, procs):
        assert expected in _one_line_error(proc)


# ------------------------------------------------------------------------------ completion
def _complete(words: str, cword: int, tmp_path) -> list[str]:
    """What bash gets on <TAB> from the installed `dlx` script (Typer's bash completion)."""
    env = {**os.environ, "_DLX_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(cword)}
    proc = subprocess.run([str(Path(sys.executable).parent / "dlx")], env=env, cwd=tmp_path,
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_completion_of_commands_groups_options_and_keys(tmp_path):
    assert _complete("dlx tr", 1, tmp_path) == ["train"]
    assert _complete("dlx train mod", 2, tmp_path) == ["model=", "model."]
    # bash splits at "=": `model=<TAB>` and `model=cn<TAB>` complete the part after it
    options = _complete("dlx train model =", 3, tmp_path)
    assert {"cnn", "mlp", "lstm", "resnet18"} <= set(options) and "model=cnn" not in options
    assert _complete("dlx train model = cnn", 4, tmp_path) == ["cnn", "cnn_cifar"]
    # zsh passes the word whole
    assert _complete("dlx train optimizer=ad", 2, tmp_path) == ["optimizer=adagrad",
                                                                "optimizer=adam",
                                                                "optimizer=adamw"]
    # keys follow the option chosen earlier on the line (sgd has momentum, adam does not)
    sgd = _complete("dlx train optimizer = sgd optimizer.", 5, tmp_path)
    assert "optimizer.momentum=" in sgd and "optimizer.lr=" in sgd
    assert "optimizer.momentum=" not in _complete("dlx train optimizer.", 2, tmp_path)
    assert _complete("dlx train trainer.progr", 2, tmp_path) == [
        "trainer.progress=", "trainer.progress=true", "trainer.progress=false"]
    assert _complete("dlx train regularizer = [l2,dro", 4, tmp_path) == ["[l2,dropout"]
    assert "+experiment=seed_rnn" in _complete("dlx train exp", 2, tmp_path)
    assert "--multirun" in _complete("dlx train --mu", 2, tmp_path)
    assert "dataset.target=" in _complete("dlx config show dataset = csv dataset.t", 6, tmp_path)


def test_completion_imports_neither_torch_nor_mlflow():
    code = ("import os, sys\n"
            "os.environ.update(_DLX_COMPLETE='complete_bash', COMP_WORDS='dlx train model.',"
            " COMP_CWORD='2')\n"
            "sys.argv = ['dlx']\n"
            "from dlx.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'mlflow', 'hydra', 'sklearn') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert "model.channels=" in proc.stdout.split()
