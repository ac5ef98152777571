"""Video benchmark: what each per-video aggregate of frame scores gives on ../shared/data/videos.

The set is tiny (FaceForensics++ c23: real 519 and 634, face swaps 519_515 (Deepfakes) and 634_660
(FaceSwap)), so this shows behaviour, not accuracy. Two kinds of image model, both on face crops:

  1. ``stylegan``: trained on faces-stylegan (a different kind of fake: whole synthetic faces);
  2. ``frames, other pair``: trained on the sampled frames of one real/fake pair of videos and scored
     on the other pair (leave-one-pair-out), so no video is scored by a model that saw it.

For every video: number of frames scored, each aggregate (mean, median, top-k mean, fraction of
frames over the model's threshold) and the frame-level AUC over the scored videos. With ``--jobs`` over 1,
it also times scoring all the videos with the faces-stylegan model, one worker against ``--jobs``.

Usage:  python benchmarks/video.py [--data ../shared/data] [--blocks default] [--fps 2] [--max-frames 64]
        [--train-fps 5] [--train-max-frames 100] [--jobs 2] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn.metrics import roc_auc_score  # noqa: E402

from forensics import api  # noqa: E402
from forensics.video import AGGREGATES, score_videos  # noqa: E402

PAIRS = {"519": ("real/519.mp4", "fake/519_515.mp4"), "634": ("real/634.mp4", "fake/634_660.mp4")}


def score(model, videos, tmp: Path, name: str, args) -> pd.DataFrame:
    out, frames = tmp / f"{name}.csv", tmp / f"{name}-frames.csv"
    score_videos(model, videos, out, frames_out=frames, fps=args.fps, max_frames=args.max_frames, jobs=args.jobs)
    v = pd.read_csv(out)
    f = pd.read_csv(frames)
    v["truth"] = v["path"].map(lambda p: "fake" if "/fake/" in p else "real")
    f["truth"] = f["path"].map(lambda p: 1 if "/fake/" in p else 0)
    v["model"] = name
    v["threshold"] = model.threshold
    v["frame_auc"] = roc_auc_score(f["truth"], f["prob_fake"]) if f["truth"].nunique() == 2 else np.nan
    v["frames_no_face"] = v["n_no_face"]
    return v


def speed(model, videos, tmp: Path, args) -> str:
    """Wall time of scoring ``videos`` with one worker and with ``args.jobs``, as a ratio."""
    times = {}
    for jobs in (1, args.jobs):
        t0 = time.perf_counter()
        score_videos(model, videos, tmp / "speed.csv", fps=args.fps, max_frames=args.max_frames, jobs=jobs)
        times[jobs] = time.perf_counter() - t0
    n = len(pd.read_csv(tmp / "speed.csv"))
    return (f"- speed: scoring the {n} videos took {times[1]:.1f} s with one worker, {times[args.jobs]:.1f} s with "
            f"{args.jobs} (`--jobs {args.jobs}`): {times[1] / times[args.jobs]:.2f}x")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--blocks", default="default")
    ap.add_argument("--fps", type=float, default=2.0)
    ap.add_argument("--max-frames", type=int, default=64)
    ap.add_argument("--train-fps", type=float, default=5.0)
    ap.add_argument("--train-max-frames", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--no-face-crop", action="store_true")
    ap.add_argument("--models", default="stylegan,frames", help="which models to run: stylegan, frames")
    args = ap.parse_args(argv)
    vids = args.data / "videos"
    if not vids.is_dir():
        print(f"needs {vids}", file=sys.stderr)
        return 2
    if args.cache_dir is None:
        from forensics.cache import default_cache_dir

        args.cache_dir = str(default_cache_dir())
    face = not args.no_face_crop
    tables, speed_line = [], None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sg = args.data / "faces-stylegan"
        if sg.is_dir() and "stylegan" in args.models:
            print("training on faces-stylegan ...", file=sys.stderr, flush=True)
            model, _ = api.train([sg], blocks=args.blocks, face_crop=face, jobs=args.jobs, cache_dir=args.cache_dir, n_splits=3)
            print(f"  CV AUC {model.card['cv_metrics']['auc']:.4f}", file=sys.stderr, flush=True)
            tables.append(score(model, [vids], tmp, "stylegan", args))
            if args.jobs > 1:
                speed_line = speed(model, [vids], tmp, args)
        for train_pair, test_pair in (("519", "634"), ("634", "519")) if "frames" in args.models else ():
            manifest = tmp / f"pair-{train_pair}.csv"
            with open(manifest, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["path", "label"])
                real, fake = PAIRS[train_pair]
                w.writerow([vids / real, "real"])
                w.writerow([vids / fake, "fake"])
            print(f"training on the frames of pair {train_pair} ...", file=sys.stderr, flush=True)
            model, _ = api.train([manifest], blocks=args.blocks, face_crop=face, video_fps=args.train_fps,
                                 video_max_frames=args.train_max_frames, jobs=args.jobs, cache_dir=None)
            tables.append(score(model, [vids / p for p in PAIRS[test_pair]], tmp, f"frames of pair {train_pair}", args))
    df = pd.concat(tables, ignore_index=True)
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    print(f"Video benchmark, {datetime.date.today()}, commit {commit}, blocks {args.blocks}, face crop {face}, "
          f"scoring {args.fps:g} frames/s (at most {args.max_frames} per video)")
    print()
    print("| model (threshold) | video | truth | frames | " + " | ".join(AGGREGATES) + " | frame AUC |")
    print("|---|---|---|---|" + "---|" * len(AGGREGATES) + "---|")
    for _, r in df.iterrows():
        aggs = " | ".join(f"{r[a]:.3f}" for a in AGGREGATES)
        print(f"| {r['model']} ({r['threshold']:.3f}) | {Path(r['path']).name} | {r['truth']} | {r['n_frames']} | {aggs} | {r['frame_auc']:.3f} |")
    print()
    for a in AGGREGATES:
        ok = 0
        for _, g in df.groupby("model"):
            cut = 0.5 if a == "frac_over" else g["threshold"].iloc[0]
            ok += int(((g[a] >= cut) == (g["truth"] == "fake")).sum())
        sep = []
        for _, g in df.groupby("model"):
            fake, real = g.loc[g["truth"] == "fake", a], g.loc[g["truth"] == "real", a]
            sep.append(float(fake.min() - real.max()) if len(fake) and len(real) else np.nan)
        print(f"- {a}: {ok} of {len(df)} video decisions right; fake minus real margin per model: "
              + ", ".join(f"{s:+.3f}" for s in sep))
    if speed_line:
        print(speed_line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
