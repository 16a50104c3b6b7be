"""`dlx export`: the MLflow pyfunc model of a run, read back with mlflow.pyfunc.load_model as a
batch job would, answers exactly as `dlx predict` does on the same rows; bad rows are one-line
errors; `--register` makes a registry version linked to the run, which `dlx runs` shows.
MLflow's real scoring server on such models: tests/test_serve.py (`make test-serve`)."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest


def _predict_rows(proc) -> list[dict]:
    return list(csv.DictReader(io.StringIO(proc.stdout)))


def _equal(answer, rows: list[dict]) -> None:
    """A served answer (DataFrame) equals `dlx predict`'s CSV rows, column for column, exactly."""
    assert len(answer) == len(rows)
    assert list(answer.columns) == [k for k in rows[0] if k not in ("row", "file", "line")]
    for got, want in zip(answer.to_dict(orient="records"), rows):
        assert got == {k: v if k == "prediction" else float(v) for k, v in want.items()
                       if k in got}


@pytest.mark.spawn  # also run with a new interpreter per command (make test-spawn)
def test_exported_pyfunc_answers_as_predict_and_registers(digits_run, tmp_path):
    import mlflow
    from sklearn.datasets import load_digits

    dlx, run = digits_run
    rows = load_digits(as_frame=True).data.iloc[:50]
    rows.to_csv(tmp_path / "new.csv", index=False)
    predicted = _predict_rows(dlx("predict", run.info.run_id, str(tmp_path / "new.csv")))
    name = f"digits-{tmp_path.name}"  # the shared run's store: a name of this test's own
    proc = dlx("export", run.info.run_id, "--register", name)
    assert proc.stderr == ""  # no warnings of torch's or MLflow's
    lines = proc.stdout.splitlines()
    model_uri = dlx.client().get_run(run.info.run_id).data.tags["dlx.model_uri"]
    assert lines[0] == (f"run {run.info.run_id}: MLflow model {model_uri} (tag dlx.model_uri); "
                        f"load it with mlflow.pyfunc.load_model('{model_uri}')")
    version = dlx.client().get_model_version(name, "1")
    assert lines[1] == f"registered as {name} version 1: models:/{name}/1"
    assert version.run_id == run.info.run_id
    assert lines[2].endswith(f"mlflow models serve -m models:/{name}/1 --env-manager local "
                             "--port 5001")

    mlflow.set_tracking_uri(dlx.uri)
    model = mlflow.pyfunc.load_model(f"models:/{name}/1")
    _equal(model.predict(rows), predicted)
    inputs = model.metadata.get_input_schema()
    assert inputs.input_names()[:2] == ["pixel_0_0", "pixel_0_1"] and len(inputs.inputs) == 64
    assert model.metadata.get_output_schema().input_names() == [
        "prediction", "probability", *(f"p_{d}" for d in range(10))]

    with pytest.raises(mlflow.exceptions.MlflowException) as bad:
        model.predict(rows.drop(columns=["pixel_3_4"]))
    assert bad.value.message == ("the input lacks 1 of the digits' 64 pixel columns (e.g. "
                                 "pixel_3_4): expected pixel_0_0 ... pixel_7_7")
    assert bad.value.get_http_status_code() == 400

    listed = dlx("runs", "--json").stdout
    assert f'"{name}/1"' in listed
    table = dlx("runs").stdout
    assert "registered" in table and f"{name}/1" in table


def test_served_model_needs_trust_for_a_pickled_preprocessing(tmp_path, monkeypatch):
    """A CSV run's served model carries its preprocessing.joblib: loading it is refused unless
    pickles are trusted (dlx's pickle policy), with one line that says how."""
    import json

    from dlx import predictor
    from dlx.errors import DlxError
    from dlx.tracking import pickles_trusted

    folder = tmp_path / "dlx"
    (folder / "fitted").mkdir(parents=True)
    (folder / "fitted" / "preprocessing.joblib").write_bytes(b"not even read")
    (folder / "serving.json").write_text(json.dumps({
        "format": predictor.SERVED, "fitted": ["preprocessing.joblib"], "dataset": {}}))
    monkeypatch.setattr(predictor.models, "read", lambda _: (None, None))
    monkeypatch.delenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", raising=False)
    with pytest.raises(DlxError, match="preprocessing.joblib is a pickle .* set "
                                       "MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true"):
        predictor.load_served(folder, pickles_trusted())


def test_in_memory_inputs_are_checked_in_one_line():
    """What a served model hands the encoders (DataFrames, arrays, strings) is checked with
    dlx's own messages."""
    import pandas as pd
    from omegaconf import OmegaConf

    from dlx.data import registry
    from dlx.data.bundle import Spec
    from dlx.errors import DataError

    spec = Spec("multiclass", (1, 28, 28), 10, tuple(map(str, range(10))))
    cfg = OmegaConf.create({"name": "mnist", "normalize": "scale", "crop_padding": 0,
                            "hflip": False})
    images = registry.encoder(cfg, spec, {})
    rgb = np.zeros((2, 3, 30, 20), dtype=np.uint8)
    x, ids = images(rgb)
    assert x.shape == (2, 1, 28, 28) and x.dtype.is_floating_point is False
    assert ids == {"row": [1, 2]}
    ragged = np.empty(2, dtype=object)
    ragged[:] = [rgb[0], np.zeros((1, 10, 12), dtype=np.uint8)]
    assert images(ragged)[0].shape == (2, 1, 28, 28)
    for bad, message in [(rgb[0], "the input is an array of shape (3, 30, 20)"),
                         (rgb.transpose(0, 2, 3, 1), "image 1 has shape (30, 20, 3)"),
                         ((rgb + 1) / 255, "image 1 holds values other than whole numbers 0..255")]:
        with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
            images(bad)

    text = registry.encoder(OmegaConf.create({"name": "imdb"}), Spec("binary", (5,), 1),
                            {"vocab.json": {"tokens": ["<pad>", "<unk>", "good"], "max_len": 5}})
    x, _ = text(pd.DataFrame({"review": ["good good", "bad"]}))
    assert x.tolist() == [[2, 2, 0, 0, 0], [1, 0, 0, 0, 0]]
    with pytest.raises(DataError, match="review 2 is empty: send the text of one review per row"):
        text(pd.DataFrame({"review": ["good", "  "]}))
    with pytest.raises(DataError, match="the input has no column 'review' \\(its columns are text"):
        text(pd.DataFrame({"text": ["good"]}))
