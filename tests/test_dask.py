"""Running on a dask.distributed cluster: ``--scheduler`` (extract, train, score) and ``train-table``.

The cluster tests need the extra ``forensics[dask]`` (it is in the ``test`` extra) and skip without it;
the test of the missing extra always runs. One LocalCluster of two single-threaded worker processes is
shared by the module (starting one costs seconds); a second, in-process cluster (``processes=False``)
serves the tests that patch functions the workers run.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from forensics import api
from forensics.demo import make_demo_dataset
from forensics.errors import ForensicsError, UsageError
from forensics.extraction import FeatureSpec, iter_features
from forensics.features.base import feature_names
from forensics.model import ForensicModel
from cli_utils import run, runner

COLOR = feature_names("color")


@pytest.fixture(scope="module")
def cluster():
    """Address of a LocalCluster with 2 single-threaded worker processes."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
        yield c.scheduler_address


@pytest.fixture(scope="module")
def inproc_client():
    """A Client of an in-process cluster (2 worker threads): monkeypatching reaches its workers."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as c:
        with distributed.Client(c, set_as_default=False) as client:
            yield client


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dask-data")
    make_demo_dataset(root, n_per_class=12, size=64, seed=5)
    return root


@pytest.fixture(scope="module")
def paths(data, tmp_path_factory) -> list[str]:
    """Demo images with unreadable files mixed in (and one image twice)."""
    bad = tmp_path_factory.mktemp("dask-bad")
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "notes.png").write_text("not a picture\n")
    images = sorted(str(p) for p in data.rglob("*.jpg"))
    return images[:5] + [str(bad / "missing.jpg"), str(bad / "empty.jpg")] + images[5:] + [str(bad / "notes.png"), images[0]]


def _matrix(rows) -> np.ndarray:
    return np.vstack([r.features for r in rows])


# --------------------------------------------------------------------------------------------------
# the batch runner on a cluster
# --------------------------------------------------------------------------------------------------


def test_cluster_rows_equal_local_rows_in_input_order(cluster, paths):
    spec = FeatureSpec.create("color")
    local = list(iter_features(paths, spec))
    seen = []
    remote = list(iter_features(paths, spec, scheduler=cluster, chunk_size=3, progress=lambda d, n: seen.append((d, n))))
    assert [r.path for r in remote] == paths == [r.path for r in local]
    np.testing.assert_array_equal(_matrix(remote), _matrix(local))  # exactly: NaN in the same places
    assert [r.error for r in remote] == [r.error for r in local]
    for a, b in zip(remote, local):
        assert {k: v for k, v in a.diag.items() if v == v} == {k: v for k, v in b.diag.items() if v == v}
    errors = {Path(r.path).name: r.error for r in remote if r.error}
    assert set(errors) == {"missing.jpg", "empty.jpg", "notes.png"}
    assert seen[0] == (0, len(paths)) and seen[-1] == (len(paths), len(paths))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_relative_paths_are_given_back_as_given(cluster, data, monkeypatch):
    monkeypatch.chdir(data)
    rel = sorted(str(p.relative_to(data)) for p in data.rglob("*.jpg"))[:4]
    rows = list(iter_features(rel, FeatureSpec.create("color"), scheduler=cluster))
    assert [r.path for r in rows] == rel
    assert all(r.error is None for r in rows)


def test_cache_entries_come_back_to_the_caller(cluster, paths, tmp_path):
    from forensics.cache import FeatureCache

    spec = FeatureSpec.create("color")
    first = list(iter_features(paths, spec, scheduler=cluster, cache_dir=tmp_path))
    assert sum(r.n_computed for r in first) >= sum(r.error is None for r in first) - 1  # the repeated image maybe not
    assert len(FeatureCache(tmp_path, readonly=True)) > 0
    again = list(iter_features(paths, spec, scheduler=cluster, cache_dir=tmp_path))
    assert sum(r.n_computed for r in again) == 0  # workers on this machine read the cache
    np.testing.assert_array_equal(_matrix(again), _matrix(first))


def test_in_flight_chunks_stay_within_the_window(inproc_client, paths):
    from forensics.distributed import map_chunks

    class Counting:  # the client, counting chunk submissions
        submitted = 0

        def __getattr__(self, name):
            return getattr(inproc_client, name)

        def submit(self, *args, **kwargs):
            Counting.submitted += 1
            return inproc_client.submit(*args, **kwargs)

    spec = FeatureSpec.create("color")
    chunks = [[p] for p in paths]
    in_flight, out = [], []
    for results in map_chunks(Counting(), iter(chunks), spec, window=3):
        out.extend(row.path for row, _ in results)
        in_flight.append(Counting.submitted - len(out))  # submitted and not yet yielded
    assert out == paths
    assert Counting.submitted == len(chunks)
    assert max(in_flight) == 3


def test_a_failed_task_gives_its_files_error_rows(inproc_client, paths, monkeypatch):
    import forensics.extraction as extraction

    real = extraction.process_one
    victim = paths[2]

    def flaky(path, spec, cache):
        if path == os.path.abspath(victim):
            raise RuntimeError("simulated worker trouble")
        return real(path, spec, cache)

    monkeypatch.setattr(extraction, "process_one", flaky)
    rows = list(iter_features(paths, FeatureSpec.create("color"), scheduler=inproc_client, chunk_size=2))
    assert [r.path for r in rows] == paths
    failed = [r for r in rows if r.error and r.error.startswith("cluster task failed")]
    assert [r.path for r in failed] == paths[2:4]  # the victim's chunk
    assert "RuntimeError: simulated worker trouble" in failed[0].error
    assert all(np.isnan(r.features).all() for r in failed)
    assert rows[0].error is None and rows[4].error is None


def test_workers_with_another_forensics_version_are_refused(inproc_client, paths, monkeypatch):
    import forensics.distributed as dist

    monkeypatch.setattr(dist, "_worker_version", lambda: "0.0.0-other")
    with pytest.raises(UsageError, match="0.0.0-other"):
        list(iter_features(paths[:2], FeatureSpec.create("color"), scheduler=inproc_client))


def test_missing_extra_is_a_one_line_usage_error(monkeypatch, data, tmp_path):
    from forensics.distributed import INSTALL_HINT, check_available

    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(UsageError, match=r"forensics\[dask\]"):
        check_available()
    result = run("extract", data, "--out", tmp_path / "t.parquet", "--blocks", "color", "--scheduler", "tcp://127.0.0.1:8786", ok=False)
    assert result.exit_code == 2
    assert INSTALL_HINT in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "t.parquet").exists()


# --------------------------------------------------------------------------------------------------
# the command line with --scheduler
# --------------------------------------------------------------------------------------------------


def test_cli_extract_train_score_through_the_cluster(cluster, data, tmp_path):
    local, remote = tmp_path / "local.parquet", tmp_path / "remote.parquet"
    run("--quiet", "extract", data, "--out", local, "--blocks", "color", "--no-cache")
    run("--quiet", "extract", data, "--out", remote, "--blocks", "color", "--no-cache", "--scheduler", cluster)
    a, b = pd.read_parquet(local), pd.read_parquet(remote)
    pd.testing.assert_frame_equal(a, b)

    model = tmp_path / "m.skops"
    out = run("--quiet", "train", data, "--model", model, "--blocks", "color", "--folds", "3", "--scheduler", cluster,
              "--cache-dir", tmp_path / "cache")
    assert "cross-validation" in out.stdout and model.exists()
    scores = tmp_path / "s.csv"
    run("--quiet", "score", model, data, "--out", scores, "--scheduler", cluster, "--cache-dir", tmp_path / "cache")
    plain = tmp_path / "plain.csv"
    run("--quiet", "score", model, data, "--out", plain, "--no-cache")
    pd.testing.assert_frame_equal(pd.read_csv(scores), pd.read_csv(plain))


def test_cli_scheduler_local_starts_a_cluster_of_jobs_workers(data, tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "t.parquet"
    run("--quiet", "extract", data / "real", "--out", out, "--blocks", "color", "--no-cache", "--scheduler", "local", "--jobs", "2")
    table = pd.read_parquet(out)
    assert len(table) == 12 and table[COLOR].notna().all().all()


def test_cli_unreachable_scheduler_is_a_one_line_error(data, tmp_path, monkeypatch):
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        result = run("extract", data, "--out", tmp_path / "t.parquet", "--blocks", "color", "--no-cache",
                     "--scheduler", "tcp://127.0.0.1:9", ok=False)
    assert result.exit_code == 2, result.stderr
    assert "cannot connect to the dask scheduler at tcp://127.0.0.1:9" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------------------------------
# train-table: xgboost.dask on Parquet feature tables
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> list[Path]:
    """Two feature tables written by extract (60 + 40 images) and their image folders."""
    root = tmp_path_factory.mktemp("tables")
    out = []
    for name, n, seed in (("a", 30, 11), ("b", 20, 12)):
        make_demo_dataset(root / name, n_per_class=n, size=64, seed=seed)
        (root / name / "fake" / "broken.jpg").write_bytes(b"not a jpeg")
        api.extract([root / name], root / f"{name}.parquet", blocks="color", settings={"color": {"max_size": 256}})
        out.append(root / f"{name}.parquet")
    return out


def test_extract_records_its_spec_in_the_parquet_metadata(tables):
    import json

    meta = pq.read_schema(tables[0]).metadata
    spec = json.loads(meta[b"forensics.spec"])
    assert spec["blocks"] == ["color"] and spec["settings"]["color"]["max_size"] == 256
    assert meta[b"forensics.blocks"] == b"color"


def test_train_table_on_the_cluster_writes_a_usual_model(cluster, tables, tmp_path):
    model = tmp_path / "m.skops"
    out = run("--quiet", "train-table", *tables, "--model", model, "--scheduler", cluster, "--holdout", "0.3")
    text = " ".join(out.stdout.split())
    assert "holdout (30%" in text and f"wrote model to {model}" in text
    assert "2 of 102 rows have no features" in " ".join(out.stderr.split())
    m = ForensicModel.load(model)
    assert m.spec.blocks == ["color"] and m.spec.settings["color"]["max_size"] == 256
    ev = m.card["training_data"]["evaluation"]
    assert ev["method"] == "holdout" and ev["n_train"] + ev["n_holdout"] == 100
    assert m.card["training_data"]["n_real"] == 50 and m.card["training_data"]["n_fake"] == 50
    assert m.card["training_data"]["n_failed"] == 2
    assert m.card["cv_metrics"]["n"] == ev["n_holdout"] and math.isfinite(m.card["cv_metrics"]["auc"])
    assert len(m.card["oof"]["scores"]) == ev["n_holdout"]
    assert type(m.pipeline.steps[-1][1]).__name__ == "XGBClassifier"

    # The model scores images with the plain local path, and agrees with the table's features.
    table = pd.read_parquet(tables[1])
    ok = table[COLOR].notna().any(axis=1)
    probs = m.predict_proba(table.loc[ok, COLOR].to_numpy())
    scores = tmp_path / "s.csv"
    images = sorted({str(Path(p).parent.parent) for p in table["path"]})
    run("--quiet", "score", model, *images, "--out", scores, "--no-cache")
    s = pd.read_csv(scores).set_index("path")
    np.testing.assert_allclose(s.loc[table.loc[ok, "path"], "prob_fake"].to_numpy(), probs, rtol=1e-5, atol=1e-6)


def test_train_table_split_is_stable_and_by_content(inproc_client, tables):
    from forensics.pipelines.train_table import train_table

    a = train_table(tables[:1], scheduler=inproc_client, holdout=0.25, random_state=3)
    b = train_table(tables[:1], scheduler=inproc_client, holdout=0.25, random_state=3)
    assert (a.n_train, a.n_holdout) == (b.n_train, b.n_holdout)
    assert a.model.card["oof"]["labels"] == b.model.card["oof"]["labels"]
    np.testing.assert_allclose(a.model.card["oof"]["scores"], b.model.card["oof"]["scores"])


def test_train_table_refuses_unlabelled_and_mismatched_tables(inproc_client, tables, data, tmp_path):
    from forensics.pipelines.train_table import train_table

    unlabelled = tmp_path / "u.parquet"
    api.extract([data / "real"], unlabelled, blocks="color", labelled=False)
    with pytest.raises(UsageError, match="no label column"):
        train_table([unlabelled], scheduler=inproc_client)
    other = tmp_path / "o.parquet"
    api.extract([data], other, blocks="color")  # default max_size: same columns, other settings
    with pytest.raises(UsageError, match="settings"):
        train_table([tables[0], other], scheduler=inproc_client)
    with pytest.raises(UsageError, match="--holdout"):
        train_table(tables, scheduler=inproc_client, holdout=1.0)
    with pytest.raises(UsageError, match="not found"):
        train_table([tmp_path / "nope.parquet"], scheduler=inproc_client)
