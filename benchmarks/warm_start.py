"""Warm-start benchmark: does continuing a model with a new kind of fake learn it without forgetting?

Data (``../shared/data``, not part of the repository):
  - old kind: faces-stylegan (StyleGAN faces vs FFHQ photos), split 80 % train / 20 % held out;
  - new kind: cifake (Stable Diffusion vs CIFAR-10), ``--new-n`` images for the warm start and a
    disjoint held-out set of ``--test-n`` images.

Rounds, all through ``forensics.api.train`` (what ``forensics train`` runs), scored on both held-out sets:
  1. ``old``: trained on the faces-stylegan split only;
  2. ``warm, new only``: old model continued with the cifake images only;
  3. ``warm, new + replay``: old model continued with the cifake images plus a replay sample of
     ``--replay`` old training images (drawn from the same faces-stylegan training split);
  4. references trained from scratch: ``scratch, new only`` and ``scratch, old + new`` (pooled).

Usage:  python benchmarks/warm_start.py [--data ../shared/data] [--blocks default] [--new-n 2000]
        [--test-n 2000] [--replay 500] [--jobs 2] [--cache-dir DIR]
Prints a Markdown table (pasted into the README with its date).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn.metrics import roc_auc_score  # noqa: E402

from forensics import api  # noqa: E402
from forensics.datasets import LABEL_NAMES, collect_labelled  # noqa: E402
from forensics.extraction import iter_features  # noqa: E402


def split(items, n_test, rng):
    """Stratified: ``n_test`` held out (half per class), the rest for training."""
    test, train = [], []
    for c in (0, 1):
        lst = [i for i in items if i.label == c]
        idx = rng.permutation(len(lst))
        test += [lst[k] for k in sorted(idx[: n_test // 2])]
        train += [lst[k] for k in sorted(idx[n_test // 2 :])]
    return train, test


def sample(items, n, rng):
    out = []
    for c in (0, 1):
        lst = [i for i in items if i.label == c]
        idx = rng.permutation(len(lst))[: n // 2]
        out += [lst[k] for k in sorted(idx)]
    return out


def manifest(items, path: Path) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label"])
        for i in items:
            w.writerow([i.path, LABEL_NAMES[i.label]])
    return path


def auc(model, items, cache_dir, jobs) -> float:
    rows = list(iter_features([i.path for i in items], model.spec, jobs=jobs, cache_dir=cache_dir))
    p = model.predict_proba(np.vstack([r.features for r in rows]))
    y = np.array([i.label for i in items])
    ok = np.isfinite(p)
    return float(roc_auc_score(y[ok], p[ok]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--blocks", default="default")
    ap.add_argument("--new-n", type=int, default=2000, help="cifake images (half per class) for the warm start")
    ap.add_argument("--test-n", type=int, default=2000, help="held-out cifake images (half per class)")
    ap.add_argument("--old-test", type=float, default=0.2, help="held-out share of faces-stylegan")
    ap.add_argument("--replay", type=int, default=500, help="old training images (half per class) replayed in the warm start")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cache-dir", default=None, help="feature cache [default: the user cache folder]")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    old_dir, new_dir = args.data / "faces-stylegan", args.data / "cifake"
    if not old_dir.is_dir() or not new_dir.is_dir():
        print(f"needs {old_dir} and {new_dir}", file=sys.stderr)
        return 2
    if args.cache_dir is None:
        from forensics.cache import default_cache_dir

        args.cache_dir = str(default_cache_dir())
    rng = np.random.default_rng(args.seed)
    old_items = collect_labelled([old_dir])
    old_train, old_test = split(old_items, int(round(args.old_test * len(old_items))), rng)
    new_items = collect_labelled([new_dir])
    new_rest, new_test = split(new_items, args.test_n, rng)
    new_train = sample(new_rest, args.new_n, rng)
    replay = sample(old_train, args.replay, rng)
    common = dict(blocks=args.blocks, n_splits=args.folds, jobs=args.jobs, cache_dir=args.cache_dir, random_state=args.seed)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        m_old = manifest(old_train, tmp / "old.csv")
        m_new = manifest(new_train, tmp / "new.csv")
        m_replay = manifest(replay, tmp / "replay.csv")

        def run(name, data, warm=None, blocks=True):
            t0 = time.perf_counter()
            kw = dict(common)
            if warm is not None:
                kw.pop("blocks")  # a warm start keeps the old model's blocks
            model, _ = api.train(data, warm_start=warm, **kw)
            fit_s = time.perf_counter() - t0
            rounds = model.card.get("rounds", [])
            row = {
                "model": name,
                "trained on": " + ".join(f"{p.stem} ({n})" for p, n in data_counts(data)),
                "trees": rounds[-1].get("n_trees") if rounds else None,
                "auc_old": auc(model, old_test, args.cache_dir, args.jobs),
                "auc_new": auc(model, new_test, args.cache_dir, args.jobs),
                "seconds": fit_s,
                "rounds": len(rounds),
            }
            results.append(row)
            print(f"  {name}: AUC old {row['auc_old']:.4f}, new {row['auc_new']:.4f} ({fit_s:.0f} s)", file=sys.stderr, flush=True)
            return model

        counts = {m_old: len(old_train), m_new: len(new_train), m_replay: len(replay)}

        def data_counts(data):
            return [(p, counts[p]) for p in data]

        old = run("old", [m_old])
        run("warm, new only", [m_new], warm=old)
        run("warm, new + replay", [m_new, m_replay], warm=old)
        run("scratch, new only", [m_new])
        run("scratch, old + new", [m_old, m_new])

    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    print(f"Warm-start benchmark, {datetime.date.today()}, commit {commit}, blocks {args.blocks}, xgb; "
          f"held out: faces-stylegan {len(old_test)} images, cifake {len(new_test)} images")
    print()
    print("| model | trained on (images) | trees | AUC faces-stylegan (old kind) | AUC cifake (new kind) | train s |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['model']} | {r['trained on']} | {r['trees']} | {r['auc_old']:.4f} | {r['auc_new']:.4f} | {r['seconds']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
