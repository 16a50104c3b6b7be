"""`dlx predict` on every kind of dataset (digits, CSV, image folder, IMDB text), checked against
what the run itself logged on its test split."""

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fixtures.datasets import make_csv, make_image_folder, make_imdb


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
    """Run several `dlx` commands at once ((Dlx, args) pairs), side by side."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call[0](*call[1], check=False), calls))


# ------------------------------------------------------------------------------ digits
def test_predict_on_a_csv_of_the_test_split_matches_eval(digits_run, tmp_path):
    dlx, run = digits_run
    from sklearn.datasets import load_digits

    from dlx.data.bundle import holdout

    d = load_digits(as_frame=True)
    _, test = holdout(np.arange(len(d.target)), d.target.to_numpy(), 0.2, 42, stratify=True)
    x_test, y_test = d.data.iloc[test], d.target.iloc[test]  # the run's test rows
    src = tmp_path / "test.csv"
    x_test.to_csv(src, index=False)
    out = tmp_path / "pred.csv"
    dlx("predict", run.info.run_id, str(src), "-o", str(out))
    rows = list(csv.DictReader(out.open()))
    pred = np.array([int(r["prediction"]) for r in rows])
    assert len(pred) == 360
    assert (pred == y_test.to_numpy()).mean() == pytest.approx(run.data.metrics["test_accuracy"])
    assert all(0.0 <= float(r["probability"]) <= 1.0 for r in rows)


# ------------------------------------------------------------------ csv, image folder, imdb
DATA = {  # the run of each kind: where its data goes in its working dir, the data, the overrides
    "csv": ("table.csv", lambda p: make_csv(p, n=300),
            lambda p: ["model=mlp", "dataset=csv", f"dataset.path={p}", "trainer.epochs=15"]),
    "images": ("shapes", lambda p: make_image_folder(p, n_per_class=30),
               lambda p: ["model=cnn", "dataset=image_folder", f"dataset.root={p}",
                          "trainer.epochs=12", "optimizer.lr=0.003"]),
    "imdb": ("reviews", lambda p: make_imdb(p, n_per_split_class=40),
             lambda p: ["model=gru", "dataset=imdb", f"dataset.root={p}", "dataset.max_len=40",
                        "dataset.min_freq=1", "optimizer.lr=0.01", "trainer.epochs=12"]),
}


@pytest.fixture(scope="module")
def trained(shared_run):
    """An MLP on a CSV, a CNN on an image folder, a GRU on an aclImdb copy: each trained once per
    test session, in its own folder and store, model logged. {kind: (Dlx, run, data path)}"""
    def make(kind):
        def train(dlx):
            name, data, overrides = DATA[kind]
            dlx.train_here(*overrides(data(dlx.cwd / name)), "trainer.checkpoint_every=0",
                           log_model=True)
        return train

    out = {}
    for kind, (name, _, _) in DATA.items():
        dlx = shared_run(f"predict-{kind}", make(kind))
        out[kind] = (dlx, dlx.runs()[0], dlx.cwd / name)
    return out


def _write_inputs(trained, where: Path) -> dict:
    """New input files for each run: the rows, images and reviews of its own test split, written
    the way a user would (CSV columns reordered with an extra one, images renamed into a nested
    folder beside a text file, one review per line with blank lines between)."""
    import mlflow
    import pandas as pd

    from dlx.data.bundle import holdout

    dlx, run, path = trained["csv"]
    dlx.client()
    splits = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/splits.json")
    test = pd.read_csv(path).iloc[splits["test"]]
    test[["label", "color", "f3", "f2", "f1", "f0"]].assign(id=range(len(test))).to_csv(
        where / "rows.csv", index=False)

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

    dlx, run, root = trained["imdb"]
    reviews, truth = [], []
    for label in ("neg", "pos"):  # the published test split
        for f in sorted((root / "aclImdb" / "test" / label).glob("*.txt")):
            reviews.append(f.read_text(encoding="utf-8"))
            truth.append(label)
    (where / "reviews.txt").write_text("\n\n".join(reviews) + "\n", encoding="utf-8")
    return {"csv": [str(where / "rows.csv"), splits["test"]],
            "images": [str(folder), [str(folder / files[i].parent.name / f"img_{i}.png")
                                     for i in held]],
            "imdb": [str(where / "reviews.txt"), truth]}


@pytest.fixture(scope="module")
def predicted(trained, shared_run):
    """The new inputs of each run and `dlx predict` of each run on them (the CSV one written
    with -o), run once per test session: (inputs, {kind: CompletedProcess}, csv output)."""
    def make(dlx):
        inputs = _write_inputs(trained, dlx.cwd)
        csv_out = dlx.cwd / "pred.csv"
        calls = [(trained["csv"][0], ["predict", trained["csv"][1].info.run_id, inputs["csv"][0],
                                      "-o", str(csv_out)])]
        calls += [(trained[k][0], ["predict", trained[k][1].info.run_id, inputs[k][0]])
                  for k in ("images", "imdb")]
        procs = dict(zip(("csv", "images", "imdb"), _parallel(*calls)))
        (dlx.cwd / "predicted.json").write_text(json.dumps({
            "inputs": inputs, "csv_out": str(csv_out),
            "procs": {k: [p.returncode, p.stdout, p.stderr] for k, p in procs.items()}}))

    import pandas as pd

    saved = json.loads((shared_run("predicted", make).cwd / "predicted.json").read_text())
    procs = {k: subprocess.CompletedProcess([], code, out, err)
             for k, (code, out, err) in saved["procs"].items()}
    for p in procs.values():
        assert p.returncode == 0, p.stdout + p.stderr
    (csv_in, test_rows), (folder, files), (reviews, truth) = (
        saved["inputs"][k] for k in ("csv", "images", "imdb"))
    inputs = {"csv": (Path(csv_in), pd.read_csv(trained["csv"][2]).iloc[test_rows]),
              "images": (Path(folder), set(files)),
              "imdb": (Path(reviews), truth)}
    return inputs, procs, Path(saved["csv_out"])


def test_csv_predict_uses_the_logged_pipeline_and_model(trained, predicted, tmp_path):
    dlx, run, _ = trained["csv"]
    inputs, procs, out = predicted
    _, test = inputs["csv"]
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


def test_image_predict_on_the_test_files_reproduces_the_run(trained, predicted):
    dlx, run, _ = trained["images"]
    inputs, procs, _ = predicted
    rows = _rows(procs["images"])
    assert {r["file"] for r in rows} == inputs["images"][1]  # every image, the text file skipped
    truth = [Path(r["file"]).parent.name for r in rows]
    assert _confusion(rows, truth) == _logged_confusion(dlx, run)
    assert {"p_circle", "p_square", "p_triangle"} <= set(rows[0])
    acc = np.mean([r["prediction"] == t for r, t in zip(rows, truth)])
    assert acc == pytest.approx(run.data.metrics["test_accuracy"]) and acc > 0.5


def test_text_predict_one_review_per_line_reproduces_the_run(trained, predicted):
    dlx, run, _ = trained["imdb"]
    inputs, procs, _ = predicted
    truth = inputs["imdb"][1]
    rows = _rows(procs["imdb"])
    assert [int(r["line"]) for r in rows] == list(range(1, 2 * len(truth), 2))  # blanks skipped
    assert set(rows[0]) == {"line", "prediction", "probability", "p_pos"}
    assert _confusion(rows, truth) == _logged_confusion(dlx, run)
    acc = np.mean([r["prediction"] == t for r, t in zip(rows, truth)])
    assert acc == pytest.approx(run.data.metrics["test_accuracy"]) and acc > 0.8


# ------------------------------------------------------------------------------ bad inputs
def test_bad_inputs_are_one_line_errors(trained, digits_run, tmp_path):
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
    pixels = tmp_path / "pixels.csv"
    pixels.write_text("pixel_0_0,pixel_0_1\n1,2\n")
    runs = {**{k: trained[k][:2] for k in trained}, "digits": digits_run}
    cases = [("csv", missing, ("lacks column(s) f1, color: the run was trained on f0, f1, f2, f3, "
                               "color (its columns are f0, f2, colour, f3; others are ignored)")),
             ("csv", text, "column 'f1' must hold numbers, but data row 2 holds 'n/a?'"),
             ("images", empty, f"folder {empty} holds no images"),
             ("images", junk, f"cannot read image {junk}"),
             ("imdb", blank, f"{blank} is empty: write one review per line"),
             ("digits", pixels, "lacks 62 of the digits' 64 pixel columns")]
    procs = _parallel(*((runs[k][0], ["predict", runs[k][1].info.run_id, str(src)])
                        for k, src, _ in cases))
    for (_, _, expected), proc in zip(cases, procs):
        assert expected in _one_line_error(proc)
