"""``forensics inspect``: per-image forensic views as one self-contained HTML page or one PNG."""

from __future__ import annotations

import base64
import io
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from forensics import api
from forensics.cli import app
from forensics.demo import make_demo_dataset
from forensics.features.ela import ela_features
from forensics.features.texture import RIU2_LUT, lbp_code_histograms
from forensics.model import ForensicModel
from forensics.reports import inspect as fi

runner = CliRunner()
BLOCKS = "color,spectrum"
MAP_SECTIONS = [s for s in fi.INSPECT_SECTIONS if s not in fi.MODEL_SECTIONS]


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.imgs, self.urls, self.tags = [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self.sections.append(a.get("id"))
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for key in ("src", "href", "srcset", "data", "action", "poster"):
            if key in a:
                self.urls.append(a[key])


def parse(path: Path) -> tuple[_Page, str]:
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    return page, text


def png_of(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,"), uri[:40]
    img = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    img.load()
    return img


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect-demo")
    make_demo_dataset(root / "data", n_per_class=12, size=64)
    model, _ = api.train([root / "data"], blocks=BLOCKS)
    model.save(root / "m.skops")
    fake = sorted((root / "data" / "fake").iterdir())[0]
    return root, root / "m.skops", fake


def test_page_with_model_is_self_contained(demo, tmp_path):
    root, model, image = demo
    out = tmp_path / "inspect.html"
    r = invoke("inspect", image, "--model", model, "--out", out)
    assert r.exit_code == 0, (r.stdout, r.stderr)
    assert "prob_fake" in r.stdout and str(out) in r.stdout
    page, text = parse(out)
    assert page.sections == list(fi.INSPECT_SECTIONS)
    # every figure embedded as a decodable PNG; the image itself at its own size (64 px: not resampled)
    assert len(page.imgs) >= 7
    sizes = [png_of(u).size for u in page.imgs]
    assert (64, 64) in sizes
    # nothing fetched from anywhere: only data: URIs and in-page anchors
    assert all(u.startswith("data:") or u.startswith("#") for u in page.urls)
    assert not re.search(r"https?://", text)
    assert not {"script", "link", "iframe", "object", "embed"} & set(page.tags)
    assert "@import" not in text and "url(" not in text
    score = re.search(r'<section id="score">(.*?)</section>', text, re.S).group(1)
    assert "prob_fake" in score and "Wilson" in score
    explain = re.search(r'<section id="explain">(.*?)</section>', text, re.S).group(1)
    assert "spectrum__" in explain or "color__" in explain


def test_score_matches_forensics_score(demo):
    root, model, image = demo
    m = ForensicModel.load(model)
    insp = fi.inspect_image(image, m)
    expected = float(api.score_frame(m, [image])["prob_fake"].iloc[0])
    assert insp.score.prob_fake == pytest.approx(expected, abs=1e-9)
    assert insp.score.label in ("real", "fake")
    lo, hi = insp.score.oof_interval
    assert 0 <= lo <= insp.score.oof_share <= hi <= 1 and insp.score.oof_n >= 10
    p = insp.patches
    assert p.window == 16 and len(p.scores) == len(p.corners) == 49
    assert np.isfinite(p.heat).all() and ((p.heat >= 0) & (p.heat <= 1)).all()
    # the profile is the block's, and the card's class means (stored at train time) come with it
    assert insp.spectrum.profile.shape == insp.spectrum.real_mean.shape == insp.spectrum.fake_mean.shape == (32,)
    assert len(insp.contributions) == 12
    assert insp.contributions[0][0] in m.feature_names


def test_card_stores_spectrum_means(demo):
    _, model, _ = demo
    m = ForensicModel.load(model)
    sm = m.card["spectrum_means"]
    assert sm["names"] == [n for n in m.feature_names if n.startswith("spectrum__lum_profile__")]
    assert len(sm["real"]) == len(sm["fake"]) == len(sm["names"]) == 32
    # same values as the report's class means (one source of truth for the data, two views)
    ix = [m.feature_names.index(n) for n in sm["names"]]
    assert np.allclose(sm["real"], [m.card["class_means"]["real"][i] for i in ix], rtol=1e-4)
    # a card without them (an older model) falls back to class_means
    old = replace(m, card={k: v for k, v in m.card.items() if k != "spectrum_means"})
    means = fi._card_spectrum_means(old, sm["names"])
    assert np.allclose(means[0], sm["real"], rtol=1e-4)


def test_png_only(demo, tmp_path, monkeypatch):
    root, model, image = demo
    monkeypatch.chdir(tmp_path)
    r = invoke("inspect", image, "--model", model, "--png", "inspect.png")
    assert r.exit_code == 0, (r.stdout, r.stderr)
    data = (tmp_path / "inspect.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(data))
    img.verify()
    assert img.size[0] > 800 and img.size[1] > 800
    assert not (tmp_path / "inspect.html").exists()  # only --png given: no page


def test_without_model_maps_only(demo, tmp_path, monkeypatch):
    _, _, image = demo
    monkeypatch.chdir(tmp_path)
    r = invoke("inspect", image, "--png", tmp_path / "maps.png", "--out", "page.html")
    assert r.exit_code == 0, (r.stdout, r.stderr)
    page, text = parse(tmp_path / "page.html")
    assert page.sections == MAP_SECTIONS
    assert "no model" in text
    for u in page.imgs:
        png_of(u)
    Image.open(tmp_path / "maps.png").verify()
    # default output name
    r = invoke("inspect", image)
    assert r.exit_code == 0 and (tmp_path / "inspect.html").is_file()


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\xff\xd8\xff\xe0 truncated jpeg"])
def test_bad_image_is_one_line_error(demo, tmp_path, content):
    _, model, _ = demo
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(content)
    r = invoke("inspect", bad, "--model", model, "--out", tmp_path / "x.html")
    assert r.exit_code == 1
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot inspect") and "bad.jpg" in lines[0]
    assert "Traceback" not in r.stderr and not (tmp_path / "x.html").exists()
    r = invoke("inspect", tmp_path / "missing.png")
    assert r.exit_code == 1 and "file not found" in r.stderr


def test_bad_model_and_output(demo, tmp_path):
    _, _, image = demo
    junk = tmp_path / "junk.skops"
    junk.write_bytes(b"junk")
    r = invoke("inspect", image, "--model", junk)
    assert r.exit_code == 1 and "not a forensics model" in r.stderr
    r = invoke("inspect", image, "--out", tmp_path / "nowhere" / "x.html")
    assert r.exit_code == 2 and "does not exist" in r.stderr


def test_svm_model_has_no_explanation(demo, tmp_path):
    root, _, image = demo
    m, _ = api.train([root / "data"], blocks="color", classifier="svm", n_splits=3)
    insp = fi.inspect_image(image, m)
    assert insp.contributions is None and "svm" in insp.explain_note
    page = fi.render_html(insp)
    assert "no per-feature decomposition" in page


# --------------------------------------------------------------------------------------------------
# the maps are the blocks' own computations
# --------------------------------------------------------------------------------------------------


def _photo(size=96):
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100 : 100 + size, 180 : 180 + size])


def test_lbp_map_codes_like_the_texture_block():
    rgb = _photo()
    gray = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32)
    codes = fi.lbp_map(gray, radius=2)
    assert codes.shape == gray.shape and codes.max() <= 9
    counts = lbp_code_histograms(gray, (2,))[0, 0]  # pixels at least 2 from the border
    riu2 = np.bincount(RIU2_LUT, weights=counts, minlength=10)
    assert np.array_equal(np.bincount(codes[2:-2, 2:-2].ravel(), minlength=10), riu2)
    assert (fi.lbp_map(np.full((20, 20), 7.0)) == 8).all()  # flat: every neighbour >= centre


def test_ela_map_is_the_ela_blocks_error():
    rgb = _photo()
    e = fi.ela_map(rgb, quality=90)
    assert e.shape == rgb.shape[:2] and e.min() >= 0
    assert e.mean() == pytest.approx(ela_features(rgb, qualities=(90,))[0], rel=1e-6)
    with pytest.raises(ValueError, match="quality"):
        fi.ela_map(rgb, quality=101)


def test_noise_residual_and_spectrum():
    flat = np.full((32, 40), 120.0)
    assert np.allclose(fi.noise_residual_map(flat), 0)
    checker = (np.indices((32, 32)).sum(axis=0) % 2) * 255.0
    r = fi.noise_residual_map(checker)
    assert np.abs(r[4:-4, 4:-4]).min() > 10  # the KV kernel is a strong high-pass
    s, box = fi.log_spectrum(checker)
    assert box == (0, 0, 32, 32) and s.shape == (32, 32)
    assert np.unravel_index(np.argmax(s), s.shape) == (0, 0)  # all energy at (1/2, 1/2) cycle/pixel
    big = np.zeros((700, 600))
    _, box = fi.log_spectrum(big, max_size=512)
    assert box[2:] == (512, 512) and box[0] % 16 == 0 and box[1] % 16 == 0


def test_patch_windows():
    w, corners = fi.patch_windows(256, 256)
    assert w == 64 and len(corners) == 49
    w, corners = fi.patch_windows(64, 64)
    assert w == 16 and len(corners) == 49
    w, corners = fi.patch_windows(512, 700)
    assert w == 96
    for h_, w_ in ((256, 256), (300, 517), (4000, 3000)):
        side, corners = fi.patch_windows(h_, w_)
        assert len(corners) <= fi.MAX_PATCHES
        ys = sorted({y for y, _ in corners})
        xs = sorted({x for _, x in corners})
        assert all(y % 8 == 0 for y in ys) and all(x % 8 == 0 for x in xs)
        assert h_ - (ys[-1] + side) < 8 and w_ - (xs[-1] + side) < 8 and ys[0] == xs[0] == 0
    assert fi.patch_windows(4, 100) == (0, [])
    assert fi.patch_windows(100, 100, window=32)[0] == 32
    with pytest.raises(ValueError, match="window"):
        fi.patch_windows(100, 100, window=3)


def test_wilson_interval():
    lo, hi = fi.wilson_interval(5, 10)
    assert lo < 0.5 < hi and hi - 0.5 == pytest.approx(0.5 - lo)
    assert fi.wilson_interval(0, 50)[0] == 0 and fi.wilson_interval(50, 50)[1] == pytest.approx(1)
