"""MLflow's own scoring server on the models `dlx export` logs: `mlflow models serve -m
models:/NAME/1 --env-manager local` on 127.0.0.1, as a team deploys a run, answers raw inputs
(a CSV run's rows, an image run's pixels, a text run's reviews) exactly as `dlx predict` answers
the same inputs in files, and a bad input is a 400 whose message is dlx's one line. A network of
the user's own module is served from the module file logged with the model. Each server is
stopped by its pid. Slow-ish (four servers start): `make test-serve`."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fixtures import project
from fixtures.datasets import make_csv, make_image_folder, make_imdb
from fixtures.runs import Dlx

pytestmark = pytest.mark.serve

BIN = Path(sys.executable).parent  # the venv's bin: mlflow, and uvicorn, which it starts by name
IDS = ("row", "file", "line")  # what names an input in `dlx predict`'s rows


# ------------------------------------------------------------------------------ helpers
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`mlflow models serve -m MODEL --env-manager local` on 127.0.0.1 and a free port, started
    in `cwd` with the venv's bin on PATH; stopped by its pid."""

    def __init__(self, uri: str, model_uri: str, cwd: Path, trust_pickles: bool = False):
        port = _free_port()
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"}
        env.pop("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", None)
        if trust_pickles:  # a CSV run's preprocessing.joblib (dlx's pickle policy)
            env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
        self.model_uri, self.url = model_uri, f"http://127.0.0.1:{port}"
        self.log = cwd / f"serve-{port}.log"
        self.started = time.monotonic()
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager",
                 "local", "--host", "127.0.0.1", "--port", str(port)],
                cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def ready(self, timeout: float = 240) -> float:
        """Seconds from the start until it answered /ping."""
        while True:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{self.url}/ping", timeout=2)
                return time.monotonic() - self.started
            if self.proc.poll() is not None or time.monotonic() - self.started > timeout:
                raise AssertionError(f"mlflow models serve {self.model_uri} did not start (exit "
                                     f"{self.proc.poll()}):\n{self.log.read_text()[-3000:]}")
            time.sleep(0.25)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)  # MLflow stops its uvicorn worker with it
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        with contextlib.suppress(ProcessLookupError):  # a worker left behind, if any
            os.killpg(self.proc.pid, signal.SIGKILL)


def _post(url: str, body, content_type: str = "application/json") -> tuple[int, dict]:
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/invocations", data, {"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _predicted(proc) -> list[dict]:
    return list(csv.DictReader(proc.stdout.splitlines()))


def _same(answer: dict, rows: list[dict]) -> None:
    """The server's predictions are `dlx predict`'s rows, value for value (its CSV parsed)."""
    got = answer["predictions"]
    assert len(got) == len(rows)
    for served, row in zip(got, rows):
        want = {k: v if k == "prediction" else float(v) for k, v in row.items() if k not in IDS}
        assert served == want


def _one_line_400(status: int, answer: dict, expected: str) -> None:
    assert status == 400, answer
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE" and "stack_trace" not in answer
    assert answer["message"] == expected, answer["message"]


def _parallel(*calls):
    """Several `dlx` commands at once ((Dlx, *args) tuples)."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call[0](*call[1:]), calls))


# ------------------------------------------------------------------------------ the runs
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A CSV run, an image run, a text run and a run of the user's own network, each exported
    and registered (`dlx export RUN --register NAME`) and predicted on new inputs with `dlx
    predict`; then each model served by `mlflow models serve`. {kind: (url, inputs, rows)}"""
    dlx = Dlx(tmp_path_factory.mktemp("serve"))
    cwd = dlx.cwd
    table = make_csv(cwd / "table.csv", n=300)
    shapes = make_image_folder(cwd / "shapes", n_per_class=20)
    reviews = make_imdb(cwd / "reviews", n_per_split_class=30)
    project.write(cwd / "mine")
    dlx.train_here("model=mlp", "dataset=csv", f"dataset.path={table}", "trainer.epochs=10",
                   "trainer.checkpoint_every=0", log_model=True)
    dlx.train_here("model=cnn", "dataset=image_folder", f"dataset.root={shapes}",
                   "trainer.epochs=6", "optimizer.lr=0.003", "trainer.checkpoint_every=0",
                   log_model=True)
    dlx.train_here("model=gru", "dataset=imdb", f"dataset.root={reviews}", "dataset.max_len=40",
                   "dataset.min_freq=1", "trainer.epochs=4", "trainer.checkpoint_every=0",
                   log_model=True)
    mine = Dlx(cwd / "mine")  # the user's project folder, where mynets.py is
    mine("train", "model=custom", "model._target_=mynets.TinyNet", "trainer.epochs=2",
         "trainer.progress=false", f"tracking.uri={dlx.uri}")
    runs = {"custom" if r.data.tags["dlx.model"] == "custom" else r.data.tags["dlx.dataset"]:
            r.info.run_id for r in dlx.runs()}

    # new inputs: the table with its columns reordered and extra ones, every image (their
    # sizes differ), one review per line, digits' pixels; exported, registered and predicted
    new = cwd / "new"
    new.mkdir()
    with open(table, newline="") as f, open(new / "rows.csv", "w", newline="") as out:
        writer = csv.DictWriter(out, ["id", "color", "f3", "f2", "f1", "f0", "label"])
        writer.writeheader()
        writer.writerows({"id": i, **r} for i, r in enumerate(csv.DictReader(f)))
    texts = [f.read_text(encoding="utf-8") for label in ("neg", "pos")
             for f in sorted((reviews / "aclImdb" / "test" / label).glob("*.txt"))]
    (new / "reviews.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    from sklearn.datasets import load_digits

    load_digits(as_frame=True).data.iloc[:40].to_csv(new / "digits.csv", index=False)
    inputs = {"csv": new / "rows.csv", "image_folder": shapes, "imdb": new / "reviews.txt",
              "custom": new / "digits.csv"}
    at = {"csv": dlx, "image_folder": dlx, "imdb": dlx, "custom": mine}
    calls = [(at[k], "export", runs[k], "--register", f"{k}-model", "--uri", dlx.uri)
             for k in inputs]
    calls += [(at[k], "predict", runs[k], str(inputs[k]), "--uri", dlx.uri) for k in inputs]
    done = _parallel(*calls)
    for proc in done[: len(inputs)]:
        assert proc.stderr == "" and "serve it: " in proc.stdout, proc.stdout + proc.stderr
    predicted = dict(zip(inputs, map(_predicted, done[len(inputs):])))

    elsewhere = cwd / "elsewhere"  # not the project's folder: mynets.py comes with the model
    elsewhere.mkdir()
    servers = {k: Server(dlx.uri, f"models:/{k}-model/1", elsewhere, trust_pickles=k == "csv")
               for k in inputs}
    try:
        started = {k: s.ready() for k, s in servers.items()}
        (cwd / "started.json").write_text(json.dumps(started))  # seconds to the first /ping
        yield {k: (servers[k].url, inputs[k], predicted[k]) for k in inputs}
    finally:
        for s in servers.values():
            s.stop()


# ------------------------------------------------------------------------------ the tests
def test_csv_run_served_answers_raw_rows_as_predict(served):
    import pandas as pd

    url, path, rows = served["csv"]
    frame = pd.read_csv(path)
    # a JSON DataFrame, as a client sends it (missing cells as null), and the CSV file itself
    split = json.loads(frame.to_json(orient="split", index=False))
    _same(_post(url, {"dataframe_split": split})[1], rows)
    _same(_post(url, path.read_text(), "text/csv")[1], rows)
    status, answer = _post(url, {"dataframe_records": [{"f0": 1.0, "f2": 0.5, "color": "red"}]})
    _one_line_400(status, answer, "the input lacks column(s) f1, f3: the run was trained on "
                  "f0, f1, f2, f3, color (its columns are f0, f2, color; others are ignored)")


def test_image_run_served_answers_pixels_as_predict_on_the_files(served):
    from PIL import Image

    url, folder, rows = served["image_folder"]
    pixels = [np.asarray(Image.open(r["file"]).convert("RGB")).transpose(2, 0, 1).tolist()
              for r in rows]  # (C, H, W) as read from each file; the sizes differ
    _same(_post(url, {"inputs": pixels})[1], rows)
    channels_last = np.asarray(Image.open(rows[0]["file"]).convert("RGB"))
    status, answer = _post(url, {"inputs": [channels_last.tolist()]})
    h, w, _ = channels_last.shape
    _one_line_400(status, answer, f"image 1 has shape ({h}, {w}, 3): send images as read from "
                  "their files: (N, C, H, W) arrays of whole numbers 0..255, C = 3 (RGB) or 1 "
                  "(grayscale), any height and width")


def test_text_run_served_answers_reviews_as_predict(served):
    url, path, rows = served["imdb"]
    texts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    _same(_post(url, {"dataframe_split": {"columns": ["review"],
                                          "data": [[t] for t in texts]}})[1], rows)
    _same(_post(url, {"inputs": texts})[1], rows)
    status, answer = _post(url, {"inputs": ["a fine film", ""]})
    _one_line_400(status, answer, "review 2 is empty: send the text of one review per row")


def test_own_network_is_served_from_the_module_logged_with_it(served):
    import pandas as pd

    url, path, rows = served["custom"]
    split = json.loads(pd.read_csv(path).to_json(orient="split", index=False))
    _same(_post(url, {"dataframe_split": split})[1], rows)
