"""The batch runner (forensics.extraction) and the feature cache (forensics.cache).

Only the ``color`` block is used: it is cheap and not being rewritten, so these tests are about the
runner's bookkeeping (one row per input, order, errors, cache hits, worker processes), not features.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from forensics.cache import FeatureCache
from forensics.demo import make_demo_dataset
from forensics.extraction import FeatureSpec, Row, extract_features, iter_features, process_one
from forensics.features import base
from forensics.features.base import FeatureBlock, feature_names, resolve_blocks
from forensics.features.diag import DIAG_COLUMNS
from io_utils import counting_reads, forbid_decoding


@pytest.fixture(scope="module")
def demo_paths(tmp_path_factory) -> list[str]:
    """24 small JPEGs (12 real, 12 fake), sorted."""
    root = tmp_path_factory.mktemp("demo")
    make_demo_dataset(root, n_per_class=12, size=64, seed=3)
    return sorted(str(p) for p in root.rglob("*.jpg"))


@pytest.fixture
def images(tmp_path, demo_paths) -> list[str]:
    """A private copy of six demo images (tests modify and rename them)."""
    out = []
    for i, p in enumerate(demo_paths[:3] + demo_paths[-3:]):
        dst = tmp_path / "imgs" / f"img{i}.jpg"
        dst.parent.mkdir(exist_ok=True)
        shutil.copyfile(p, dst)
        out.append(str(dst))
    return out


@pytest.fixture
def broken(tmp_path) -> dict[str, Path]:
    """Files that cannot be read, each for another reason."""
    d = tmp_path / "broken"
    d.mkdir()
    paths = {
        "missing": d / "missing.jpg",
        "empty": d / "empty.jpg",
        "text": d / "notes.png",
        "truncated": d / "truncated.jpg",
        "folder": d / "folder.jpg",
        "dangling": d / "dangling.jpg",
    }
    paths["empty"].write_bytes(b"")
    paths["text"].write_text("not a picture\n")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(d / "full.jpg", quality=90)
    data = (d / "full.jpg").read_bytes()
    paths["truncated"].write_bytes(data[: len(data) // 3])
    paths["folder"].mkdir()
    os.symlink(d / "nowhere.jpg", paths["dangling"])
    return paths


def _color_spec(**settings) -> FeatureSpec:
    return FeatureSpec.create("color", {"color": settings} if settings else None)


def _rows(paths, spec=None, **kw) -> list[Row]:
    return list(iter_features(paths, spec or _color_spec(), **kw))


# --------------------------------------------------------------------------------------------------
# one row per input, in order, errors never dropped
# --------------------------------------------------------------------------------------------------


def test_one_row_per_path_in_input_order_with_errors(images, broken):
    spec = _color_spec()
    paths = [images[0], str(broken["missing"]), images[1], str(broken["empty"]), str(broken["text"]),
             str(broken["truncated"]), images[2], str(broken["folder"]), str(broken["dangling"]), images[0]]
    rows = _rows(paths, spec)
    assert [r.path for r in rows] == paths  # duplicates too: the runner does not de-duplicate
    n = len(spec.feature_names())
    ok = {images[0], images[1], images[2]}
    for r in rows:
        assert r.features.shape == (n,)
        assert set(r.diag) == set(DIAG_COLUMNS)
        if r.path in ok:
            assert r.error is None
            assert np.isfinite(r.features).all()
            assert r.diag["format"] == "JPEG" and r.diag["width"] == 64 and r.diag["height"] == 64
            assert r.diag["sha256"] == hashlib.sha256(Path(r.path).read_bytes()).hexdigest()
        else:
            assert r.error, r.path
            assert np.isnan(r.features).all()
            assert r.diag["width"] is None or math.isnan(r.diag["width"])
    # the first and last rows are the same file: same features
    np.testing.assert_array_equal(rows[0].features, rows[-1].features)


def test_unreadable_files_error_text_and_diag(broken):
    rows = {Path(r.path).name: r for r in _rows([str(p) for p in broken.values()])}

    assert "not found" in rows["missing.jpg"].error
    assert "not found" in rows["dangling.jpg"].error
    assert "directory" in rows["folder.jpg"].error
    assert "empty file" in rows["empty.jpg"].error
    assert "not a recognised image format" in rows["notes.png"].error
    assert "truncated" in rows["truncated.jpg"].error

    # Bytes that could be read are hashed and sized even though they are not an image ...
    for key in ("empty", "text", "truncated"):
        data = broken[key].read_bytes()
        r = rows[broken[key].name]
        assert r.diag["sha256"] == hashlib.sha256(data).hexdigest()
        assert r.diag["file_size"] == len(data)
    # ... files that could not be read at all have no provenance.
    for key in ("missing", "dangling", "folder"):
        r = rows[broken[key].name]
        assert r.diag["sha256"] is None
        assert math.isnan(r.diag["file_size"])


def test_extract_features_frame_layout(images, broken):
    paths = images[:2] + [str(broken["text"])]
    frame = extract_features(paths, "color", labels=["real", "fake", "fake"])
    names = feature_names("color")
    assert list(frame.columns) == ["path", "label", "error"] + [f"diag__{c}" for c in DIAG_COLUMNS] + names
    assert frame["path"].tolist() == paths
    assert frame["label"].tolist() == ["real", "fake", "fake"]
    assert frame["error"].isna().tolist() == [True, True, False]
    assert frame[names].iloc[:2].notna().all().all()
    assert frame[names].iloc[2].isna().all()


def test_extract_features_rejects_mismatched_labels(images):
    from forensics.errors import ForensicsError

    with pytest.raises(ForensicsError, match="differ in length"):
        extract_features(images, "color", labels=["real"])


def test_empty_input_gives_no_rows_and_reports_progress():
    calls = []
    assert _rows([], progress=lambda d, t: calls.append((d, t))) == []
    assert calls == [(0, 0)]


def test_progress_reaches_total(demo_paths):
    calls = []
    _rows(demo_paths[:20], progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 20) and calls[-1] == (20, 20)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


# --------------------------------------------------------------------------------------------------
# the cache
# --------------------------------------------------------------------------------------------------


def test_second_run_computes_nothing(tmp_path, images):
    cache = tmp_path / "cache"
    first = _rows(images, cache_dir=cache)
    assert [r.n_computed for r in first] == [1] * len(images)
    second = _rows(images, cache_dir=cache)
    assert [r.n_computed for r in second] == [0] * len(images)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.features, b.features)
        assert a.diag == b.diag
        assert b.error is None
    # one entry per image for color and one for diag
    assert len(FeatureCache(cache)) == 2 * len(images)


def test_no_cache_dir_always_computes(tmp_path, images):
    assert [r.n_computed for r in _rows(images[:2])] == [1, 1]
    assert [r.n_computed for r in _rows(images[:2])] == [1, 1]


def test_adding_files_computes_only_the_new_ones(tmp_path, images):
    cache = tmp_path / "cache"
    _rows(images[:3], cache_dir=cache)
    rows = _rows(images, cache_dir=cache)
    assert [r.n_computed for r in rows] == [0, 0, 0, 1, 1, 1]


def test_modified_bytes_are_recomputed(tmp_path, images):
    cache = tmp_path / "cache"
    before = _rows(images, cache_dir=cache)
    # rewrite image 2 with other pixels (same name, same size on disk roughly)
    arr = np.asarray(Image.open(images[2])).copy()
    arr[:8] = 255 - arr[:8]
    Image.fromarray(arr).save(images[2], quality=90)
    after = _rows(images, cache_dir=cache)
    assert [r.n_computed for r in after] == [0, 0, 1, 0, 0, 0]
    assert after[2].diag["sha256"] != before[2].diag["sha256"]
    assert not np.array_equal(after[2].features, before[2].features)
    np.testing.assert_array_equal(after[0].features, before[0].features)


def test_changing_a_block_setting_misses_the_cache(tmp_path, images):
    cache = tmp_path / "cache"
    base_rows = _rows(images, _color_spec(), cache_dir=cache)
    six = _color_spec(hue_bins=6)
    rows6 = _rows(images, six, cache_dir=cache)
    assert [r.n_computed for r in rows6] == [1] * len(images)
    assert rows6[0].features.shape[0] == base_rows[0].features.shape[0] - 6
    # both settings are now cached side by side
    assert [r.n_computed for r in _rows(images, six, cache_dir=cache)] == [0] * len(images)
    again = _rows(images, _color_spec(), cache_dir=cache)
    assert [r.n_computed for r in again] == [0] * len(images)
    np.testing.assert_array_equal(again[0].features, base_rows[0].features)


def test_explicit_default_setting_shares_the_cache_with_implicit_default(tmp_path, images):
    cache = tmp_path / "cache"
    _rows(images, _color_spec(), cache_dir=cache)
    assert [r.n_computed for r in _rows(images, _color_spec(hue_bins=12), cache_dir=cache)] == [0] * len(images)


def test_cache_is_keyed_by_content_not_name(tmp_path, images):
    cache = tmp_path / "cache"
    (first,) = _rows(images[:1], cache_dir=cache)
    copy = tmp_path / "elsewhere" / "renamed copy.jpg"
    copy.parent.mkdir()
    shutil.copyfile(images[0], copy)
    (hit,) = _rows([str(copy)], cache_dir=cache)
    assert hit.n_computed == 0
    assert hit.path == str(copy)
    np.testing.assert_array_equal(hit.features, first.features)
    assert hit.diag["sha256"] == first.diag["sha256"]


def test_cached_values_equal_fresh_values(tmp_path, images):
    cache = tmp_path / "cache"
    _rows(images, cache_dir=cache)
    cached = _rows(images, cache_dir=cache)
    fresh = _rows(images)
    for a, b in zip(cached, fresh):
        np.testing.assert_array_equal(a.features, b.features)
        assert a.diag == b.diag


def test_unreadable_files_are_not_cached(tmp_path, broken):
    cache = tmp_path / "cache"
    paths = [str(p) for p in broken.values()]
    _rows(paths, cache_dir=cache)
    assert len(FeatureCache(cache)) == 0
    rows = _rows(paths, cache_dir=cache)
    assert all(r.error for r in rows)


@pytest.mark.parametrize("jobs", [1, 2])
def test_corrupt_cache_file_costs_only_recomputation(tmp_path, demo_paths, jobs, caplog):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "features-v1.sqlite").write_bytes(b"this is not a database" * 100)
    paths = demo_paths[:18]  # > 16: the pool path for jobs=2
    with caplog.at_level("WARNING", logger="forensics.cache"):
        rows = _rows(paths, jobs=jobs, cache_dir=cache)
    assert [r.error for r in rows] == [None] * len(paths)
    assert all(np.isfinite(r.features).all() for r in rows)
    assert [r.n_computed for r in rows] == [1] * len(paths)
    assert any("feature cache" in rec.getMessage() for rec in caplog.records)
    assert (cache / "features-v1.sqlite").read_bytes().startswith(b"this is not a database")  # left alone


# --------------------------------------------------------------------------------------------------
# worker processes
# --------------------------------------------------------------------------------------------------


def test_jobs_2_gives_the_same_rows_as_jobs_1(tmp_path, demo_paths, broken):
    # > 16 paths (the chunk size) so that the process pool is used; errors mixed in.
    paths = demo_paths[:10] + [str(broken["text"]), str(broken["missing"])] + demo_paths[10:]
    assert len(paths) > 16
    serial = _rows(paths, jobs=1)
    parallel = _rows(paths, jobs=2)
    assert [r.path for r in parallel] == paths
    for a, b in zip(serial, parallel):
        assert a.path == b.path
        assert a.error == b.error
        np.testing.assert_array_equal(a.features, b.features)
        assert a.diag.keys() == b.diag.keys()
        for k in a.diag:
            va, vb = a.diag[k], b.diag[k]
            assert va == vb or (isinstance(va, float) and math.isnan(va) and math.isnan(vb)), k


def test_jobs_2_reads_and_fills_the_cache(tmp_path, demo_paths, monkeypatch):
    import forensics.runtime

    pools = []
    real_pool = forensics.runtime.worker_pool
    monkeypatch.setattr(forensics.runtime, "worker_pool", lambda *a, **k: pools.append(a[0]) or real_pool(*a, **k))
    cache = tmp_path / "cache"
    paths = demo_paths[:20]
    first = _rows(paths, jobs=2, cache_dir=cache)
    assert [r.n_computed for r in first] == [1] * 20 and pools == [2]
    assert len(FeatureCache(cache)) == 2 * 20  # written by the parent
    with counting_reads(monkeypatch) as reads:
        second = _rows(paths, jobs=2, cache_dir=cache)
    assert [r.n_computed for r in second] == [0] * 20
    assert pools == [2]  # all cached: read in this process, no worker started for nothing
    assert sorted(reads) == sorted(paths)  # each file read (and hashed) once
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.features, b.features)
    # a cached first chunk (16 paths) is read here; the workers start for the chunk with new files
    more = paths[:16] + demo_paths[20:24]
    third = _rows(more, jobs=2, cache_dir=cache)
    assert pools == [2, 2] and [r.n_computed for r in third] == [0] * 16 + [1] * 4
    assert [r.path for r in third] == more
    for a, b in zip(third, _rows(more, jobs=1)):
        np.testing.assert_array_equal(a.features, b.features)


def test_process_one_only_cached_never_decodes(tmp_path, demo_paths, monkeypatch):
    import forensics.extraction

    cache = FeatureCache(tmp_path / "cache")
    spec = _color_spec()
    path = demo_paths[0]
    real_load = forensics.extraction.load_image_bytes
    forbid_decoding(monkeypatch, forensics.extraction)
    assert process_one(path, spec, cache, only_cached=True) is None  # nothing cached yet
    monkeypatch.setattr(forensics.extraction, "load_image_bytes", real_load)
    row, new = process_one(path, spec, cache)
    cache.put_many(new)
    again, none_new = process_one(path, spec, cache, only_cached=True)
    assert again.n_computed == 0 and none_new == {}
    np.testing.assert_array_equal(again.features, row.features)
    # a block the cache lacks: None again, although the diagnostics are cached
    assert process_one(path, FeatureSpec.create("color,texture"), cache, only_cached=True) is None
    # a file that cannot be read has nothing to compute: its error row comes back
    missing, _ = process_one(str(tmp_path / "gone.jpg"), spec, cache, only_cached=True)
    assert missing.error and np.isnan(missing.features).all()


# --------------------------------------------------------------------------------------------------
# a block that fails
# --------------------------------------------------------------------------------------------------


def _boom_names():
    return ["a", "b"]


def _boom(image):
    views = base.as_views(image)
    if views.rgb[0, 0, 0] > 127:
        raise ZeroDivisionError("bright corner")
    return np.array([1.0, 2.0])


def _wrong_length(image):
    return np.zeros(5)


@pytest.fixture
def flaky_block(monkeypatch):
    """A block registered for this test only (removed from the registry afterwards)."""
    name = "zz_test_flaky"
    monkeypatch.setitem(base._REGISTRY, name, FeatureBlock(name=name, func=_boom, names_func=_boom_names, presets=()))
    monkeypatch.setitem(
        base._REGISTRY, "zz_test_wrong", FeatureBlock(name="zz_test_wrong", func=_wrong_length, names_func=_boom_names, presets=())
    )
    return name


def _corner_image(path: Path, value: int) -> str:
    rng = np.random.default_rng(value)
    arr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    arr[:4, :4] = value
    Image.fromarray(arr).save(path)
    return str(path)


def test_a_failing_block_gives_nan_for_that_block_only(tmp_path, flaky_block):
    dark = _corner_image(tmp_path / "dark.png", 10)
    bright = _corner_image(tmp_path / "bright.png", 250)
    spec = FeatureSpec.create(["color", flaky_block])
    assert spec.blocks == ["color", flaky_block]
    n_color = len(feature_names("color"))
    assert spec.feature_names()[n_color:] == [f"{flaky_block}__a", f"{flaky_block}__b"]

    rows = _rows([dark, bright], spec, cache_dir=tmp_path / "cache")
    ok, bad = rows
    assert ok.error is None
    np.testing.assert_array_equal(ok.features[n_color:], [1.0, 2.0])

    assert bad.error == f"block {flaky_block} failed: ZeroDivisionError: bright corner"
    assert np.isnan(bad.features[n_color:]).all()
    assert np.isfinite(bad.features[:n_color]).all()  # color still counts
    np.testing.assert_array_equal(bad.features[:n_color], process_one(bright, _color_spec(), None)[0].features)
    assert bad.diag["width"] == 32

    # the failure is not cached: the next run retries that block, the good ones come from the cache
    again = _rows([dark, bright], spec, cache_dir=tmp_path / "cache")
    assert [r.n_computed for r in again] == [0, 0]
    assert again[1].error == bad.error


def test_a_block_returning_the_wrong_length_is_reported(tmp_path, flaky_block):
    img = _corner_image(tmp_path / "dark.png", 10)
    spec = FeatureSpec.create(["color", flaky_block, "zz_test_wrong"])
    (row,) = _rows([img], spec)
    assert row.error == "block zz_test_wrong failed: RuntimeError: block 'zz_test_wrong' returned 5 values, expected 2"
    assert np.isfinite(row.features[:-2]).all()
    assert np.isnan(row.features[-2:]).all()


def test_several_failing_blocks_all_named_in_the_error(tmp_path, flaky_block):
    img = _corner_image(tmp_path / "bright.png", 250)
    spec = FeatureSpec.create(["color", flaky_block, "zz_test_wrong"])
    (row,) = _rows([img], spec)
    assert row.error.split("; ") == [
        f"block {flaky_block} failed: ZeroDivisionError: bright corner",
        "block zz_test_wrong failed: RuntimeError: block 'zz_test_wrong' returned 5 values, expected 2",
    ]


def test_monkeypatched_color_failure_keeps_row_and_diag(tmp_path, images, monkeypatch):
    real_get_block = base.get_block

    def boom(*a, **k):
        raise MemoryError("out of memory in test")

    def fake_get_block(name):
        block = real_get_block(name)
        if name == "color":
            return FeatureBlock(**{**block.__dict__, "func": boom})
        return block

    import forensics.extraction as extraction

    monkeypatch.setattr(extraction, "get_block", fake_get_block)
    rows = _rows(images[:2])
    assert [r.error for r in rows] == ["block color failed: MemoryError: out of memory in test"] * 2
    assert all(np.isnan(r.features).all() for r in rows)
    assert all(r.diag["format"] == "JPEG" for r in rows)


# --------------------------------------------------------------------------------------------------
# the default preset (no features computed: only the names are checked)
# --------------------------------------------------------------------------------------------------


def test_default_spec_matches_the_registry():
    spec = FeatureSpec.create()
    assert spec.blocks == resolve_blocks("default")
    assert "color" in spec.blocks and "diag" not in spec.blocks
    assert spec.feature_names() == feature_names("default")
    assert sum(spec.block_sizes().values()) == len(feature_names("default"))


def test_settings_for_unrequested_blocks_and_unknown_or_invalid_settings_are_refused():
    from forensics.errors import UsageError

    spec = FeatureSpec.create("color", {"color": {"sat_bins": 4}})
    assert list(spec.settings) == ["color"]
    assert spec.settings["color"]["sat_bins"] == 4
    with pytest.raises(UsageError, match="not in use: spectrum"):
        FeatureSpec.create("color", {"spectrum": {"n_bins": 3}, "color": {"sat_bins": 4}})
    with pytest.raises(UsageError, match="invalid settings for block 'color'"):
        FeatureSpec.create("color", {"color": {"hue_bins": 0}})
    with pytest.raises(UsageError, match="unknown setting"):
        FeatureSpec.create("color", {"color": {"nosuch": 1}})
