"""Does a separate linear model on the frozen CNN's features beat putting them into the XGBoost model?

The experiment behind ``forensics train --classifier hybrid`` (whose probability is the ``mean-``
column here), on the labelled sets in ../shared/data (when present).
Per set, on the same 5 stratified folds as ``benchmarks/accuracy.py`` (seed 0, classes weighted
equally), out-of-fold scores of:
  - ``xgb``: the default XGBoost model on the handcrafted blocks (``--blocks``, default ``faces``:
    the default blocks plus ``faceparts``; images without a face get NaN there, which XGBoost takes);
  - ``lr-<layers>``: L2 logistic regression (``--C``) on the standardised ``cnn`` features, for each of
    ``--layers`` (``last``: the 1280 averages of the last layer; ``stages``: the 1728 statistics of the
    inner blocks; ``grid``: the 1008 standard deviations of block 10 in a 3 x 3 grid);
  - their combinations: the mean of the two probabilities (what a combined model could output for one
    image) and, for reference, the mean of the two ranks (needs the whole batch, so not a model).
Then the trap of issue 4: both models fitted on all of faces-stylegan, the fraction of the *real*
faces of faces-photoshop that each one, and their mean, calls fake at the threshold chosen on its own
out-of-fold scores (``forensics train``'s threshold); and leave-one-set-out AUCs (train on the other
sets, sets and classes weighted equally, test on one) of each model and of the means.

Usage:  python benchmarks/cnn_blend.py [--data ../shared/data] [--sets a,b] [--blocks faces]
        [--layers last,stages] [--C 0.001] [--jobs 2] [--cache-dir DIR] [--json out.json]
Needs ``pip install 'forensics[cnn,faces]'`` (``--blocks default`` needs no ``faces``).
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scipy.stats import rankdata  # noqa: E402

from forensics.datasets import collect_labelled  # noqa: E402
from forensics.extraction import FeatureSpec, iter_features  # noqa: E402
from forensics.pipelines.metrics import choose_threshold, detection_metrics  # noqa: E402
from forensics.pipelines.train import HYBRID_C, balanced_weights, build_pipeline, cross_validated_scores  # noqa: E402

IMAGE_SETS = ("faces-stylegan", "faces-photoshop", "cifake")


def features(paths, spec: FeatureSpec, *, jobs: int, cache_dir) -> np.ndarray:
    rows = list(iter_features(paths, spec, jobs=jobs, cache_dir=cache_dir))
    return np.vstack([r.features for r in rows])


def model_for(name: str, C: float, jobs: int):
    """The default XGBoost pipeline for ``xgb``, else the logistic regression."""
    if name == "xgb":
        return build_pipeline("xgb", random_state=0, n_jobs=jobs)
    return build_pipeline("logreg", random_state=0).set_params(clf__C=C)


def rank_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (rankdata(a) + rankdata(b)) / (2 * len(a))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sets", default=",".join(IMAGE_SETS))
    ap.add_argument("--blocks", default="faces", help="the handcrafted blocks of the XGBoost model")
    ap.add_argument("--layers", default="last,stages", help="cnn.layers settings to try, comma-separated")
    ap.add_argument("--C", type=float, default=HYBRID_C, help="inverse L2 strength of the logistic regression (default: the hybrid classifier's)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cache-dir", default=None, help="reuse a feature cache")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"no data folder at {args.data}; nothing to measure")
        return 0
    from forensics.errors import UsageError

    layers = [s for s in args.layers.split(",") if s]
    try:
        hand = FeatureSpec.create(args.blocks, {})
        cnns = {lay: FeatureSpec.create("cnn", {"cnn": {"layers": lay}}) for lay in layers}
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="forensics-bench-cache-")
    sets = [s for s in args.sets.split(",") if (args.data / s).is_dir()]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    data, results = {}, {"sets": {}, "cross": {}}
    for s in sets:
        items = collect_labelled([args.data / s])
        paths = [i.path for i in items]
        y = np.array([i.label for i in items])
        Xs = {"xgb": features(paths, hand, jobs=args.jobs, cache_dir=cache_dir)}
        for lay, spec in cnns.items():
            Xs[f"lr-{lay}"] = features(paths, spec, jobs=args.jobs, cache_dir=cache_dir)
        ok = np.ones(len(y), bool)
        for X in Xs.values():
            ok &= ~np.all(np.isnan(X), axis=1)
        Xs = {k: X[ok] for k, X in Xs.items()}
        y = y[ok]
        w = balanced_weights(y)
        oof = {}
        for name, X in Xs.items():
            t0 = time.perf_counter()
            oof[name] = cross_validated_scores(model_for(name, args.C, args.jobs), X, y, n_splits=5, random_state=0, sample_weight=w)
            print(f"# {s} {name}: {X.shape[1]} features, CV AUC {detection_metrics(y, oof[name])['auc']:.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        r = {name: detection_metrics(y, p)["auc"] for name, p in oof.items()}
        for lay in layers:
            a, b = oof["xgb"], oof[f"lr-{lay}"]
            r[f"mean-{lay}"] = detection_metrics(y, (a + b) / 2)["auc"]
            r[f"rank-{lay}"] = detection_metrics(y, rank_mean(a, b))["auc"]
        results["sets"][s] = {"n": int(len(y)), "cv_auc": r}
        data[s] = (Xs, y, oof)

    if "faces-stylegan" in data and "faces-photoshop" in data:
        (Xa, ya, oofa), (Xb, yb, _) = data["faces-stylegan"], data["faces-photoshop"]
        wa = balanced_weights(ya)
        real = yb == 0
        probs = {}  # name: (out-of-fold scores on faces-stylegan, scores of photoshop's real faces)
        for name in Xa:
            fitted = model_for(name, args.C, args.jobs).fit(Xa[name], ya, clf__sample_weight=wa)
            probs[name] = (oofa[name], fitted.predict_proba(Xb[name][real])[:, 1])
        fpr = {name: float((p >= choose_threshold(ya, o)).mean()) for name, (o, p) in probs.items()}
        for lay in layers:
            o = (probs["xgb"][0] + probs[f"lr-{lay}"][0]) / 2
            p = (probs["xgb"][1] + probs[f"lr-{lay}"][1]) / 2
            fpr[f"mean-{lay}"] = float((p >= choose_threshold(ya, o)).mean())
        results["cross"]["stylegan_model_fpr_on_photoshop_real"] = fpr

    if len(sets) > 1:  # leave-one-set-out: train on the other sets (sets and classes weighted equally)
        loso = {}
        for s in sets:
            others = [o for o in sets if o != s]
            ytr = np.concatenate([data[o][1] for o in others])
            wtr = balanced_weights(ytr, np.concatenate([[o] * len(data[o][1]) for o in others]))
            yte = data[s][1]
            p = {}
            for name in data[s][0]:
                Xtr = np.vstack([data[o][0][name] for o in others])
                p[name] = model_for(name, args.C, args.jobs).fit(Xtr, ytr, clf__sample_weight=wtr).predict_proba(data[s][0][name])[:, 1]
            loso[s] = {name: detection_metrics(yte, q)["auc"] for name, q in p.items()}
            for lay in layers:
                loso[s][f"mean-{lay}"] = detection_metrics(yte, (p["xgb"] + p[f"lr-{lay}"]) / 2)["auc"]
            print(f"# leave-one-set-out {s}: " + ", ".join(f"{k} {v:.4f}" for k, v in loso[s].items()), file=sys.stderr)
        results["cross"]["leave_one_set_out_auc"] = loso

    results["meta"] = {"date": datetime.date.today().isoformat(), "commit": commit, "blocks": args.blocks, "layers": layers, "C": args.C}
    cols = ["xgb"] + [f"lr-{lay}" for lay in layers] + [f"mean-{lay}" for lay in layers] + [f"rank-{lay}" for lay in layers]
    print(f"\nCV AUC on ../shared/data, {results['meta']['date']}, commit {commit}: xgb on {args.blocks}, "
          f"logistic regression (C={args.C:g}) on cnn, and the two combined\n")
    print("| set | n | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for s, r in results["sets"].items():
        print(f"| {s} | {r['n']} | " + " | ".join(f"{r['cv_auc'][c]:.4f}" for c in cols) + " |")
    fpr = results["cross"].get("stylegan_model_fpr_on_photoshop_real")
    if fpr:
        print("\n- models trained on faces-stylegan, false-positive rate on the real faces of faces-photoshop: "
              + ", ".join(f"{k} {v:.3f}" for k, v in fpr.items()))
    loso = results["cross"].get("leave_one_set_out_auc")
    if loso:
        names = [c for c in cols if not c.startswith("rank-")]
        print("\nLeave-one-set-out AUC (trained on the other sets, tested on this one):\n")
        print("| set | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for s, r in loso.items():
            print(f"| {s} | " + " | ".join(f"{r[c]:.4f}" for c in names) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
