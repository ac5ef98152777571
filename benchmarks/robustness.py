"""Robustness benchmark: held-out metrics under perturbations, with and without ``train --augment``.

Data (``../shared/data``, not part of the repository): a set (default faces-stylegan) split into a
stratified training part and ``--test`` held-out images (seeded). For each training recipe (clean
only, then each ``--augment`` list) the model is trained through ``forensics.api.train`` (what
``forensics train`` runs: default blocks, xgb, 5-fold CV, threshold and calibration on out-of-fold
scores) and the held-out images are scored through ``forensics.pipelines.evaluate`` (what
``forensics evaluate`` runs), clean and under every ``--perturb`` condition. Also, at each model's
threshold, the share of another set's real images (default the real faces of faces-photoshop: other
cameras, 160 px, JPEG q75) called fake.

Usage:  python benchmarks/robustness.py [--data ../shared/data] [--set faces-stylegan] [--test 480]
        [--augment jpeg:75,resize:0.5 --augment ...] [--perturb jpeg:95,...] [--other faces-photoshop]
        [--jobs 2] [--cache-dir DIR]
Prints Markdown tables (pasted into the README with their date and commit).
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from forensics import api  # noqa: E402
from forensics.datasets import collect_labelled  # noqa: E402
from forensics.extraction import iter_features  # noqa: E402
from forensics.perturbations import DEFAULT_PERTURBATIONS, parse_perturbations  # noqa: E402
from forensics.pipelines.evaluate import evaluate  # noqa: E402
from warm_start import manifest, split  # noqa: E402

METRICS = (("AUC", "auc"), ("balanced acc", "balanced_accuracy"), ("acc real", "acc_real"), ("acc fake", "acc_fake"),
           ("TPR@5%FPR", "tpr_at_fpr_5"))


def other_fpr(model, items, cache_dir, jobs) -> float:
    """Share of ``items`` (real images of another set) at or above the model's threshold."""
    rows = list(iter_features([i.path for i in items], model.spec, jobs=jobs, cache_dir=cache_dir))
    p = model.predict_proba(np.vstack([r.features for r in rows]))
    p = p[np.isfinite(p)]
    return float((p >= model.threshold).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--set", default="faces-stylegan")
    ap.add_argument("--test", type=int, default=480, help="held-out images (half per class)")
    ap.add_argument("--augment", action="append", default=None,
                    help="a training recipe: perturbations for train --augment (repeat for several) "
                         "[default: jpeg:75,resize:0.5 and jpeg:75,jpeg:50,resize:0.5,blur:1.0,crop:0.8]")
    ap.add_argument("--perturb", default=DEFAULT_PERTURBATIONS, help="held-out conditions (evaluate --perturb)")
    ap.add_argument("--other", default="faces-photoshop", help="set whose real images measure false positives ('' to skip)")
    ap.add_argument("--blocks", default="default")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cache-dir", default=None, help="feature cache for the clean images and the perturbed copies [default: the user cache folder]")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    recipes = args.augment or ["jpeg:75,resize:0.5", "jpeg:75,jpeg:50,resize:0.5,blur:1.0,crop:0.8"]
    for r in recipes:
        parse_perturbations(r)  # a typo fails now, not after an hour
    perturbations = parse_perturbations(args.perturb)
    folder = args.data / args.set
    if not folder.is_dir():
        print(f"needs {folder}", file=sys.stderr)
        return 2
    if args.cache_dir is None:
        from forensics.cache import default_cache_dir

        args.cache_dir = str(default_cache_dir())
    other = [i for i in collect_labelled([args.data / args.other]) if i.label == 0] if args.other and (args.data / args.other).is_dir() else []
    train_items, test_items = split(collect_labelled([folder]), args.test, np.random.default_rng(args.seed))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        m_train = manifest(train_items, Path(tmp) / "train.csv")
        m_test = manifest(test_items, Path(tmp) / "test.csv")
        for recipe in ["none", *recipes]:
            print(f"training with augment={recipe} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            model, _ = api.train([m_train], blocks=args.blocks, jobs=args.jobs, cache_dir=args.cache_dir,
                                 random_state=args.seed, augment=recipe)
            held, _ = evaluate(model, [m_test], perturbations, jobs=args.jobs, cache_dir=args.cache_dir)
            fpr = other_fpr(model, other, args.cache_dir, args.jobs) if other else None
            results.append((recipe, model, held, fpr, time.perf_counter() - t0))
            print(f"  {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    conds = list(results[0][2])
    print(f"Robustness benchmark, {datetime.date.today()}, commit {commit}, {args.set}: trained on {len(train_items)} "
          f"images, scored on {len(test_items)} held-out ({len(test_items) // 2} per class), blocks {args.blocks}, xgb, "
          f"seed {args.seed}")
    for recipe, model, held, fpr, secs in results:
        cv = model.card["cv_metrics"]["auc"]
        print()
        extra = f"; {args.other} real images called fake: {fpr:.3f}" if fpr is not None else ""
        print(f"**augment {recipe}** (CV AUC {cv:.4f} over {'clean and perturbed rows' if recipe != 'none' else 'clean rows'}, "
              f"threshold {model.threshold:.3f}{extra}; {secs:.0f} s)")
        print()
        print("| metric | " + " | ".join(conds) + " |")
        print("|---|" + "---|" * len(conds))
        for head, key in METRICS:
            print(f"| {head} | " + " | ".join(f"{held[c][key]:.3f}" for c in conds) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
