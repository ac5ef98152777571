"""forensics.datasets: labelled DATA arguments (class folders, CSV manifests) and unlabelled INPUTs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from forensics.datasets import LabelledImage, collect_inputs, collect_labelled, find_images, read_manifest
from forensics.errors import UsageError


def _img(path: Path, value: int = 128) -> Path:
    """A tiny valid PNG (the datasets module only looks at names, but keep the files real)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path, format="PNG")
    return path


def _labels(items: list[LabelledImage]) -> dict[str, int]:
    return {Path(i.path).name: i.label for i in items}


# --------------------------------------------------------------------------------------------------
# class folders
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "real_name, fake_name",
    [("real", "fake"), ("REAL", "FAKE"), ("Real", "Fake"), ("0_real", "1_fake"), ("training_real", "training_fake")],
)
def test_class_folder_spellings(tmp_path, real_name, fake_name):
    _img(tmp_path / real_name / "r1.png")
    _img(tmp_path / real_name / "r2.jpg")
    _img(tmp_path / fake_name / "f1.png")
    items = collect_labelled([tmp_path])
    assert _labels(items) == {"r1.png": 0, "r2.jpg": 0, "f1.png": 1}
    assert all(i.source == str(tmp_path) for i in items)
    # real first, then fake; sorted within each class
    assert [Path(i.path).name for i in items] == ["r1.png", "r2.jpg", "f1.png"]


def test_images_at_any_depth_and_non_images_ignored(tmp_path):
    _img(tmp_path / "real" / "a" / "b" / "c" / "deep.png")
    _img(tmp_path / "real" / "top.png")
    _img(tmp_path / "fake" / "gen1" / "x.webp")
    (tmp_path / "fake" / "README.txt").write_text("not an image")
    (tmp_path / "fake" / "labels.csv").write_text("path,label\n")
    (tmp_path / "fake" / "dir.png").mkdir()  # a folder named like an image is never an image
    _img(tmp_path / "other" / "ignored.png")  # not a class folder
    _img(tmp_path / "loose.png")  # next to the class folders, not in one
    items = collect_labelled([tmp_path])
    assert _labels(items) == {"deep.png": 0, "top.png": 0, "x.webp": 1}


def test_case_insensitive_extensions_in_class_folders(tmp_path):
    _img(tmp_path / "real" / "A.JPG")
    _img(tmp_path / "real" / "b.Png")
    _img(tmp_path / "fake" / "c.TIFF")
    _img(tmp_path / "fake" / "d.JpEg")
    assert _labels(collect_labelled([tmp_path])) == {"A.JPG": 0, "b.Png": 0, "c.TIFF": 1, "d.JpEg": 1}


def test_only_one_class_folder_is_not_an_error_here(tmp_path):
    # collect_labelled pools; refusing one-class training is train's job.
    _img(tmp_path / "fake" / "f.png")
    assert _labels(collect_labelled([tmp_path])) == {"f.png": 1}


def test_missing_data_folder_is_usage_error(tmp_path):
    with pytest.raises(UsageError, match="data not found"):
        collect_labelled([tmp_path / "nope"])


def test_folder_without_class_folders_is_usage_error(tmp_path):
    _img(tmp_path / "images" / "a.png")
    _img(tmp_path / "b.png")
    with pytest.raises(UsageError, match="no real/ or fake/ sub-folder") as info:
        collect_labelled([tmp_path])
    assert str(tmp_path) in str(info.value)
    assert "\n" not in str(info.value)


def test_a_file_that_is_not_a_csv_is_usage_error(tmp_path):
    img = _img(tmp_path / "a.png")
    with pytest.raises(UsageError, match="not a .csv manifest"):
        collect_labelled([img])


# --------------------------------------------------------------------------------------------------
# CSV manifests
# --------------------------------------------------------------------------------------------------


def test_manifest_real_fake_and_0_1_labels(tmp_path):
    for n in ("a.png", "b.png", "c.png", "d.png", "e.png", "f.png"):
        _img(tmp_path / "imgs" / n)
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,label\nimgs/a.png,real\nimgs/b.png,fake\nimgs/c.png,0\nimgs/d.png,1\nimgs/e.png, REAL \nimgs/f.png,Fake\n",
        encoding="utf-8",
    )
    items = collect_labelled([manifest])
    assert _labels(items) == {"a.png": 0, "b.png": 1, "c.png": 0, "d.png": 1, "e.png": 0, "f.png": 1}
    # manifest order is kept
    assert [Path(i.path).name for i in items] == ["a.png", "b.png", "c.png", "d.png", "e.png", "f.png"]
    assert all(i.source == str(manifest) for i in items)


def test_manifest_relative_paths_are_relative_to_the_csv_not_the_cwd(tmp_path, monkeypatch):
    _img(tmp_path / "lists" / "sub" / "a.png")
    absolute = _img(tmp_path / "elsewhere" / "b.png")
    manifest = tmp_path / "lists" / "m.csv"
    manifest.write_text(f"path,label\nsub/a.png,real\n{absolute},fake\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path / "elsewhere")  # a cwd where "sub/a.png" does not exist
    items = collect_labelled([manifest])
    assert [(i.path, i.label) for i in items] == [(str(tmp_path / "lists" / "sub" / "a.png"), 0), (str(absolute), 1)]
    assert all(Path(i.path).is_file() for i in items)


def test_manifest_columns_any_order_and_case_with_bom_and_extra_columns(tmp_path):
    _img(tmp_path / "a.png")
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("\ufeffLabel,source,Path\nfake,web,a.png\n".encode("utf-8"))
    items = read_manifest(manifest)
    assert [(Path(i.path).name, i.label) for i in items] == [("a.png", 1)]


def test_manifest_quoted_paths_with_commas_and_unicode(tmp_path):
    _img(tmp_path / 'a, "b" café.png')
    manifest = tmp_path / "m.csv"
    manifest.write_text('path,label\n"a, ""b"" café.png",real\n', encoding="utf-8")
    (item,) = read_manifest(manifest)
    assert item.path == str(tmp_path / 'a, "b" café.png')
    assert item.label == 0


def test_manifest_missing_files_are_kept_for_an_error_row_later(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\nghost.png,fake\n", encoding="utf-8")
    assert [(Path(i.path).name, i.label) for i in collect_labelled([manifest])] == [("ghost.png", 1)]


@pytest.mark.parametrize(
    "body, line, what",
    [
        ("path,label\na.png,real\nb.png,maybe\n", 3, "maybe"),
        ("path,label\na.png,real\nb.png,fake\nc.png,2\n", 4, "'2'"),
        # blank lines count: the number is the line in the file, as an editor shows it
        ("path,label\na.png,real\n\n\nb.png,yes\n", 5, "yes"),
        ("path,label\na.png,\n", 2, ""),
    ],
)
def test_manifest_bad_label_names_file_and_line(tmp_path, body, line, what):
    manifest = tmp_path / "m.csv"
    manifest.write_text(body, encoding="utf-8")
    with pytest.raises(UsageError) as info:
        collect_labelled([manifest])
    msg = str(info.value)
    assert msg.startswith(f"{manifest}:{line}:"), msg
    assert what in msg
    assert "real/fake or 0/1" in msg


def test_manifest_empty_path_names_line(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\na.png,real\n ,fake\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"m\.csv:3: empty path"):
        collect_labelled([manifest])


def test_manifest_without_required_columns(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,class\na.png,real\n", encoding="utf-8")
    with pytest.raises(UsageError, match="needs 'path' and 'label' columns"):
        collect_labelled([manifest])


# --------------------------------------------------------------------------------------------------
# pooling several DATA arguments
# --------------------------------------------------------------------------------------------------


def test_pooled_data_arguments(tmp_path):
    _img(tmp_path / "ds1" / "real" / "r1.png")
    _img(tmp_path / "ds1" / "fake" / "f1.png")
    _img(tmp_path / "ds2" / "0_real" / "r2.png")
    _img(tmp_path / "ds2" / "1_fake" / "f2.png")
    _img(tmp_path / "extra" / "f3.png")
    manifest = tmp_path / "extra" / "m.csv"
    manifest.write_text("path,label\nf3.png,1\n", encoding="utf-8")

    items = collect_labelled([tmp_path / "ds1", str(tmp_path / "ds2"), manifest])
    assert [(Path(i.path).name, i.label, Path(i.source).name) for i in items] == [
        ("r1.png", 0, "ds1"),
        ("f1.png", 1, "ds1"),
        ("r2.png", 0, "ds2"),
        ("f2.png", 1, "ds2"),
        ("f3.png", 1, "m.csv"),
    ]


def test_pooled_duplicates_keep_first_occurrence(tmp_path):
    _img(tmp_path / "ds" / "real" / "r.png")
    _img(tmp_path / "ds" / "fake" / "f.png")
    manifest = tmp_path / "ds" / "real" / "m.csv"
    # the same real image listed again (with another label) in a manifest
    manifest.write_text("path,label\nr.png,fake\n", encoding="utf-8")
    items = collect_labelled([tmp_path / "ds", tmp_path / "ds", manifest])
    assert [(Path(i.path).name, i.label) for i in items] == [("r.png", 0), ("f.png", 1)]


def test_one_missing_argument_among_several_is_an_error(tmp_path):
    _img(tmp_path / "ds" / "real" / "r.png")
    with pytest.raises(UsageError, match="missing_ds"):
        collect_labelled([tmp_path / "ds", tmp_path / "missing_ds"])


# --------------------------------------------------------------------------------------------------
# collect_inputs (unlabelled)
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path) -> Path:
    _img(tmp_path / "a" / "z.png")
    _img(tmp_path / "a" / "b.JPG")
    _img(tmp_path / "a" / "sub" / "deeper" / "c.jpeg")
    _img(tmp_path / "a" / "sub" / "D.WebP")
    (tmp_path / "a" / "notes.txt").write_text("x")
    (tmp_path / "a" / "noext").write_bytes(b"x")
    (tmp_path / "a" / "folder.png").mkdir()
    _img(tmp_path / "loose.bmp")
    (tmp_path / "explicit.dat").write_bytes(b"not an image extension")
    return tmp_path


def test_collect_inputs_recursion_extensions_and_order(tree):
    got = collect_inputs([tree / "a"])
    rel = [Path(p).relative_to(tree).as_posix() for p in got]
    assert sorted(rel) == sorted(["a/z.png", "a/b.JPG", "a/sub/deeper/c.jpeg", "a/sub/D.WebP"])
    assert got == sorted(got)  # a folder's files come out sorted
    assert collect_inputs([tree / "a"]) == got  # and the same every time


def test_collect_inputs_mix_of_files_and_folders(tree):
    got = collect_inputs([tree / "loose.bmp", tree / "a", tree / "explicit.dat"])
    rel = [Path(p).relative_to(tree).as_posix() for p in got]
    # argument order is kept; an explicitly named file is kept whatever its extension
    assert rel[0] == "loose.bmp"
    assert rel[-1] == "explicit.dat"
    assert sorted(rel[1:-1]) == sorted(["a/z.png", "a/b.JPG", "a/sub/deeper/c.jpeg", "a/sub/D.WebP"])
    assert all(isinstance(p, str) for p in got)


def test_collect_inputs_deduplicates(tree):
    once = collect_inputs([tree / "a"])
    twice = collect_inputs([tree / "a", tree / "a", str(tree / "a") + os.sep, tree / "a" / "z.png", tree / "a" / "sub"])
    assert twice == once
    assert len(set(twice)) == len(twice)


def test_collect_inputs_missing_path_is_usage_error(tree):
    with pytest.raises(UsageError, match="input not found") as info:
        collect_inputs([tree / "a", tree / "does-not-exist.png"])
    assert "does-not-exist.png" in str(info.value)


def test_collect_inputs_empty_folder_gives_empty_list(tmp_path):
    (tmp_path / "empty").mkdir()
    assert collect_inputs([tmp_path / "empty"]) == []


def test_collect_inputs_includes_dangling_symlinks(tmp_path):
    _img(tmp_path / "d" / "ok.png")
    os.symlink(tmp_path / "gone.png", tmp_path / "d" / "dangling.png")
    got = collect_inputs([tmp_path / "d"])
    assert [Path(p).name for p in got] == ["dangling.png", "ok.png"]
    # named explicitly, too
    assert collect_inputs([tmp_path / "d" / "dangling.png"]) == [str(tmp_path / "d" / "dangling.png")]


def test_find_images_does_not_follow_directory_symlinks_into_loops(tmp_path):
    _img(tmp_path / "d" / "ok.png")
    os.symlink(tmp_path / "d", tmp_path / "d" / "loop")
    assert [Path(p).name for p in find_images(tmp_path / "d")] == ["ok.png"]
