"""Accuracy benchmark on the labelled sets in ../shared/data (when present).

For every set: extract features once (timed, fresh cache unless --cache-dir), then
  - 5-fold stratified CV AUC / AP / balanced accuracy on all images (what ``forensics train`` prints);
  - a held-out test: train on a stratified 80 % split, score the untouched 20 %;
and across sets:
  - the model trained on faces-stylegan scored on the *real* faces of faces-photoshop (false-positive
    rate at its own threshold: does it call other cameras' real photos fake?);
  - leave-one-set-out: train on all other sets, test on the left-out one (generalisation);
  - one model on all sets pooled, AUC per set vs the set's own model.
Every fit weighs its classes (and, when pooled, its sets) equally, as ``forensics train`` does by default.
Where the fakes' file names say what kind of fake each is (faces-photoshop: easy_, mid_, hard_, the
difficulty its makers gave it), the CV's out-of-fold scores are also summarised per kind: each kind's
fakes against all of the set's real images.

Usage:  python benchmarks/accuracy.py [--data ../shared/data] [--sets a,b] [--blocks default]
        [--set BLOCK.KEY=VALUE ...] [--classifier xgb] [--param clf__C=0.001 ...] [--jobs 2] [--limit N] [--cache-dir DIR] [--json out.json]
        [--no-cross] [--cv-only] [--framing] [--ablate [--ablate-trees 600]] [--cues] [--curve 0.25,0.5,0.75]
``--framing`` (needs ``pip install 'forensics[faces]'``) asks, for every set where a face is found in
at least half of each class, how much of the CV AUC is where the face sits: the framing audit's AUC
(``forensics audit --framing``: the largest face's box, eye line, size, roll and turn, a shallow tree),
and the model's out-of-fold AUC over pairs of a real and a fake picture framed alike (the same leaf of
that tree: :func:`forensics.pipelines.audit.framing_strata`, :func:`forensics.pipelines.metrics.stratified_auc`).
``--ablate`` answers another question instead: per set, the 5-fold CV AUC of each block alone and of all
blocks but one (XGBoost retrained with ``--ablate-trees`` trees at learning rate 0.1, unweighted:
lighter than the default model, so read the differences between rows, not the levels). It is the
accuracy side of the speed trade-off in benchmarks/speed.py: what each block's milliseconds buy.
``--cues`` asks why leave-one-set-out fails, with no model at all: every feature's AUC alone on each
set (0.5 = no signal; below 0.5, the feature is higher on real images), then, per block and pair of
sets, the correlation of AUC - 0.5 across the block's features and, among the features that separate
both sets (|AUC - 0.5| >= 0.05 on each), how many point the same way. A model trained on one set can
transfer to another only through cues that point the same way on both.
``--curve`` asks whether more labelled images would help: per set, the 5-fold CV AUC of the
benchmark's model with each fold's training part cut to these fractions (stratified, two random draws
per fraction; the test folds, and so the images scored, are the same at every fraction; 1 is added).
An AUC still rising at the full set means more images of the kind would buy more than a new cue.
``--blocks`` takes what ``forensics train --blocks`` takes: ``cnn`` (the optional frozen CNN, needs
``pip install 'forensics[cnn]'``) or ``default,cnn`` report the CNN alone or next to the handcrafted blocks.
Prints a Markdown table (pasted into the README with its date and commit).
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

from sklearn.model_selection import train_test_split  # noqa: E402

from forensics.datasets import collect_labelled  # noqa: E402
from forensics.extraction import FeatureSpec, iter_features  # noqa: E402
from forensics.pipelines.metrics import choose_threshold, detection_metrics  # noqa: E402
from forensics.pipelines.train import balanced_weights, build_pipeline, cross_validated_scores  # noqa: E402

IMAGE_SETS = ("faces-stylegan", "faces-photoshop", "cifake")
#: Sets whose fake file names say what kind of fake each is (the regex's group, searched in the path):
#: the benchmark reports each kind's CV AUC against all the set's real images, from the same
#: out-of-fold scores (``forensics evaluate --by`` does the same for a model).
FAKE_KINDS = {"faces-photoshop": r"/(easy|mid|hard)_"}


def kind_aucs(paths, y, oof, pattern: str) -> dict:
    """``{kind: (AUC, n)}``: each kind of fake (``pattern``'s group in the path) against all real."""
    from forensics.pipelines.evaluate import OTHER, group_metrics, image_groups

    groups = group_metrics(y, oof, image_groups([str(p) for p in paths], pattern), 0.5)
    kinds = sorted((k for k, g in groups.items() if k != OTHER and g["n_fake"]), key=lambda k: (pattern.find(k), k))
    return {k: (groups[k]["auc"], groups[k]["n_fake"]) for k in kinds}  # in the pattern's order


def load_set(root: Path, name: str, spec: FeatureSpec, *, jobs: int, cache_dir, limit: int | None, seed: int):
    items = collect_labelled([root / name])
    if limit:
        rng = np.random.default_rng(seed)
        by_class = {c: [i for i in items if i.label == c] for c in (0, 1)}
        items = []
        for c, lst in by_class.items():
            idx = rng.permutation(len(lst))[:limit]
            items += [lst[i] for i in sorted(idx)]
    t0 = time.perf_counter()
    rows = list(iter_features([i.path for i in items], spec, jobs=jobs, cache_dir=cache_dir))
    elapsed = time.perf_counter() - t0
    X = np.vstack([r.features for r in rows])
    y = np.array([i.label for i in items])
    ok = ~np.all(np.isnan(X), axis=1)
    paths = [i.path for i, keep in zip(items, ok) if keep]
    return {"X": X[ok], "y": y[ok], "paths": paths, "n_failed": int((~ok).sum()),
            "ms_per_image": 1000 * elapsed / max(1, len(items)), "jobs": jobs}


def with_ci(m: dict) -> str:
    """``AUC [low, high]``: the AUC and its 95 % confidence interval (DeLong, logit scale)."""
    return f"{m['auc']:.4f} [{m['auc_ci_low']:.3f}, {m['auc_ci_high']:.3f}]"


def fit_score(model, Xtr, ytr, Xte, sources=None):
    """Fit the unfitted pipeline ``model`` on (Xtr, ytr) and score Xte. ``sources``: the set of each
    training row; pooled fits weigh sets (and classes within them) equally, as ``forensics train`` does
    by default (``--weights balanced``)."""
    model.fit(Xtr, ytr, clf__sample_weight=balanced_weights(ytr, sources))
    return model.predict_proba(Xte)[:, 1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sets", default=",".join(IMAGE_SETS))
    ap.add_argument("--blocks", default="default", help="block names and presets, e.g. default, cnn, default,cnn")
    ap.add_argument("--set", dest="settings", action="append", default=[], metavar="BLOCK.KEY=VALUE",
                    help="a block setting, as in forensics train --set (repeatable)")
    ap.add_argument("--classifier", default="xgb")
    ap.add_argument("--param", dest="params", action="append", default=[], metavar="NAME=VALUE",
                    help="set a parameter of the classifier's pipeline, e.g. clf__C=0.001 for logreg (repeatable; VALUE as JSON)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="at most N images per class per set (quick runs)")
    ap.add_argument("--cache-dir", default=None, help="reuse a feature cache (extraction times then measure cache hits)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-cross", action="store_true", help="skip the cross-set runs")
    ap.add_argument("--cv-only", action="store_true", help="skip the held-out 80/20 test (half the fits; for slow runs)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    ap.add_argument("--framing", action="store_true",
                    help="also: how much of each face set's CV AUC is where the face sits (needs forensics[faces])")
    ap.add_argument("--ablate", action="store_true", help="instead: each block alone and all blocks but one, per set")
    ap.add_argument("--ablate-trees", type=int, default=600, help="XGBoost trees of the ablation fits")
    ap.add_argument("--cues", action="store_true", help="instead: each feature's AUC alone per set, and whether the cues agree between sets")
    ap.add_argument("--curve", default=None, metavar="FRACTIONS",
                    help="instead: a learning curve, the CV AUC with each fold's training part cut to these fractions, e.g. 0.25,0.5,0.75")
    args = ap.parse_args(argv)
    if args.ablate_trees < 1:
        ap.error("--ablate-trees must be at least 1")
    modes = [m for m, on in (("--ablate", args.ablate), ("--cues", args.cues), ("--curve", args.curve)) if on]
    if len(modes) > 1:
        ap.error(f"{' and '.join(modes)} are separate runs: give one")
    if args.framing and modes:
        ap.error(f"--framing measures the benchmark's model; {modes[0]} does not fit it as the benchmark does")
    if args.framing:
        from forensics.faces import INSTALL_HINT, faces_available

        if not faces_available():
            ap.error(f"--framing needs the optional face detector: {INSTALL_HINT}")
    if args.curve is not None:
        try:
            fractions = sorted({float(f) for f in args.curve.split(",") if f.strip()})
        except ValueError:
            ap.error(f"--curve expects fractions like 0.25,0.5,0.75, got {args.curve!r}")
        if not fractions or not all(0 < f <= 1 for f in fractions):
            ap.error(f"--curve fractions must be in (0, 1], got {args.curve!r}")
        args.curve = fractions if fractions[-1] == 1 else fractions + [1.0]
    if args.params and (args.ablate or args.cues):
        ap.error("--param sets the benchmark's classifier; --ablate fits lighter models of its own and --cues none")

    if not args.data.is_dir():
        print(f"no data folder at {args.data}; nothing to measure")
        return 0
    sets = [s for s in args.sets.split(",") if (args.data / s).is_dir()]
    from forensics.cli.app import parse_settings

    from forensics.errors import UsageError

    params = {}
    for item in args.params:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            ap.error(f"--param expects NAME=VALUE, got {item!r}")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    try:
        spec = FeatureSpec.create(args.blocks, parse_settings(args.settings))
        names = spec.feature_names()
        build_pipeline(args.classifier, feature_names=names).set_params(**params)  # e.g. hybrid without cnn: refused before extracting
    except (UsageError, ValueError) as exc:  # --blocks cnn without the extra, a --param the pipeline lacks
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="forensics-bench-cache-")
    data = {}
    for s in sets:
        data[s] = load_set(args.data, s, spec, jobs=args.jobs, cache_dir=cache_dir, limit=args.limit, seed=args.seed)
        print(f"# extracted {s}: {len(data[s]['y'])} images, {data[s]['ms_per_image']:.2f} ms/image (jobs={args.jobs})", file=sys.stderr)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    if args.ablate:
        return ablate(data, spec, args, commit)
    if args.cues:
        return cues(data, spec, args, commit)

    def model():
        """The benchmark's classifier pipeline, with its ``--param`` settings."""
        return build_pipeline(args.classifier, random_state=args.seed, n_jobs=args.jobs, feature_names=names).set_params(**params)

    if args.curve:
        return curve(data, model, args, commit)

    results = {"sets": {}, "cross": {}}
    for s in sets:
        X, y = data[s]["X"], data[s]["y"]
        pipe = model()
        oof = cross_validated_scores(pipe, X, y, n_splits=5, random_state=args.seed, sample_weight=balanced_weights(y))
        thr = choose_threshold(y, oof)
        cv = detection_metrics(y, oof, thr)
        if args.cv_only:
            held = {k: float("nan") for k in ("auc", "auc_ci_low", "auc_ci_high", "balanced_accuracy")}
        else:
            Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=args.seed)
            oof_tr = cross_validated_scores(model(), Xtr, ytr, n_splits=5, random_state=args.seed,
                                            sample_weight=balanced_weights(ytr))
            thr_tr = choose_threshold(ytr, oof_tr)
            p = fit_score(model(), Xtr, ytr, Xte)
            held = detection_metrics(yte, p, thr_tr)
        results["sets"][s] = {"n": int(len(y)), "cv": cv, "heldout": held, "ms_per_image": data[s]["ms_per_image"], "n_failed": data[s]["n_failed"]}
        print(f"# {s}: CV AUC {cv['auc']:.4f}, held-out AUC {held['auc']:.4f}", file=sys.stderr)
        if args.framing:
            results["sets"][s]["framing"] = framing_share(data[s]["paths"], y, oof, jobs=args.jobs)
        if s in FAKE_KINDS:
            results["sets"][s]["kinds"] = kind_aucs(data[s]["paths"], y, oof, FAKE_KINDS[s])

    if not args.no_cross and len(sets) > 1:
        if "faces-stylegan" in data and "faces-photoshop" in data:
            a, b = data["faces-stylegan"], data["faces-photoshop"]
            pipe = model()
            thr = choose_threshold(a["y"], cross_validated_scores(pipe, a["X"], a["y"], n_splits=5, random_state=args.seed,
                                                                      sample_weight=balanced_weights(a["y"])))
            p = fit_score(model(), a["X"], a["y"], b["X"][b["y"] == 0])
            results["cross"]["stylegan_model_fpr_on_photoshop_real"] = float((p >= thr).mean())
        for s in sets:
            others = [o for o in sets if o != s]
            Xtr = np.vstack([data[o]["X"] for o in others])
            ytr = np.concatenate([data[o]["y"] for o in others])
            src_tr = np.concatenate([[o] * len(data[o]["y"]) for o in others])
            p = fit_score(model(), Xtr, ytr, data[s]["X"], sources=src_tr)
            m = detection_metrics(data[s]["y"], p)
            results["cross"].setdefault("leave_one_set_out_auc", {})[s] = m["auc"]
            results["cross"].setdefault("leave_one_set_out_auc_ci", {})[s] = [m["auc_ci_low"], m["auc_ci_high"]]
        # pooled model: 5-fold CV over the union, AUC per set from the out-of-fold scores
        Xall = np.vstack([data[s]["X"] for s in sets])
        yall = np.concatenate([data[s]["y"] for s in sets])
        src = np.concatenate([[s] * len(data[s]["y"]) for s in sets])
        strat = np.array([f"{a}-{b}" for a, b in zip(src, yall)])
        from sklearn.base import clone
        from sklearn.model_selection import StratifiedKFold

        oof = np.full(len(yall), np.nan)
        base = model()
        for tr, te in StratifiedKFold(5, shuffle=True, random_state=args.seed).split(Xall, strat):
            w = balanced_weights(yall[tr], src[tr])
            oof[te] = clone(base).fit(Xall[tr], yall[tr], clf__sample_weight=w).predict_proba(Xall[te])[:, 1]
        results["cross"]["pooled_cv_auc"] = {s: detection_metrics(yall[src == s], oof[src == s])["auc"] for s in sets}

    results["meta"] = {"date": datetime.date.today().isoformat(), "commit": commit, "blocks": spec.blocks, "settings": args.settings,
                       "n_features": len(spec.feature_names()), "classifier": args.classifier, "params": params, "limit": args.limit, "jobs": args.jobs}

    print(f"\nAccuracy on ../shared/data, {results['meta']['date']}, commit {commit}, blocks {args.blocks}"
          + (f" (--set {' '.join(args.settings)})" if args.settings else "") + " "
          f"({results['meta']['n_features']} features), {args.classifier}" + (f" ({', '.join(args.params)})" if args.params else "") + (f", at most {args.limit} per class" if args.limit else ""))
    print()
    print("| set | n | CV AUC [95 % CI] | CV AP | CV bal. acc | held-out AUC (20 %) [95 % CI] | held-out bal. acc | extraction ms/image |")
    print("|---|---|---|---|---|---|---|---|")
    for s, r in results["sets"].items():
        cv, h = r["cv"], r["heldout"]
        print(f"| {s} | {r['n']} | {with_ci(cv)} | {cv['ap']:.4f} | {cv['balanced_accuracy']:.4f} | {with_ci(h)} | "
              f"{h['balanced_accuracy']:.4f} | {r['ms_per_image']:.2f} (jobs={args.jobs}) |")
    framed = {s: r["framing"] for s, r in results["sets"].items() if r.get("framing")}
    if framed:
        print()
        for s, f in framed.items():
            print(f"- {s}, framing (where the largest face sits and how it is turned; a face in {f['faces']:.0%} of the "
                  f"pictures): alone, CV AUC {f['framing_auc']:.4f}; the model's CV AUC over pairs of a real and a fake "
                  f"picture framed alike {f['stratified_auc']:.4f} (over all pairs {results['sets'][s]['cv']['auc']:.4f}; "
                  f"{f['pairs_share']:.0%} of the pairs are framed alike)")
    for s, r in results["sets"].items():
        if r.get("kinds"):
            print(f"- {s}, CV AUC of each kind of fake (from the file names) against all real images: "
                  + ", ".join(f"{k} {auc:.4f} ({n} fakes)" for k, (auc, n) in r["kinds"].items()))
    print("\n95 % CI: DeLong's confidence interval of the AUC for the number of images scored (logit scale); it does "
          "not count the variation from retraining.")
    c = results["cross"]
    if c:
        print()
        if "stylegan_model_fpr_on_photoshop_real" in c:
            print(f"- model trained on faces-stylegan, false-positive rate on the real faces of faces-photoshop: "
                  f"{c['stylegan_model_fpr_on_photoshop_real']:.3f}")
        if "leave_one_set_out_auc" in c:
            cis = c.get("leave_one_set_out_auc_ci", {})
            print("- leave-one-set-out AUC [95 % CI] (train on the others, test on this one): "
                  + ", ".join(f"{s} {with_ci({'auc': v, 'auc_ci_low': cis[s][0], 'auc_ci_high': cis[s][1]})}"
                              for s, v in c["leave_one_set_out_auc"].items()))
        if "pooled_cv_auc" in c:
            print("- one model on all sets pooled, CV AUC per set (vs its own model): "
                  + ", ".join(f"{s} {v:.4f} ({results['sets'][s]['cv']['auc']:.4f})" for s, v in c["pooled_cv_auc"].items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def framing_share(paths, y, oof, *, jobs: int) -> dict | None:
    """The framing audit's CV AUC on a set and the out-of-fold scores' AUC over pairs framed alike;
    ``None`` when a face is found in fewer than half of the pictures of either class."""
    from forensics.pipelines.audit import framing_audit, framing_records, framing_strata
    from forensics.pipelines.metrics import stratified_auc

    t0 = time.perf_counter()
    records = framing_records(paths, jobs=jobs)
    found = np.array([r is not None and r["face_found"] == 1.0 for r in records])
    y = np.asarray(y)
    if min(found[y == 0].mean(), found[y == 1].mean()) < 0.5:
        return None
    ok = np.array([r is not None for r in records])
    kept = [r for r in records if r is not None]
    audit = framing_audit(kept, y[ok])
    groups = framing_strata(kept, y[ok])
    auc, pairs = stratified_auc(y[ok], np.asarray(oof)[ok], groups)
    print(f"# framing: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return {"framing_auc": audit["all"], "columns": audit["columns"], "stratified_auc": auc, "pairs": pairs,
            "pairs_share": pairs / max(1, int((y[ok] == 0).sum() * (y[ok] == 1).sum())), "faces": float(found.mean())}


def ablate(data: dict, spec: FeatureSpec, args, commit: str) -> int:
    """Print (and optionally save) the per-set block ablation table."""
    from forensics.reports.importance import block_ablation, block_index

    names = spec.feature_names()
    res = {}
    for s, d in data.items():
        t0 = time.perf_counter()
        res[s] = block_ablation(d["X"], d["y"], names, args.classifier, n_splits=5, max_images=len(d["y"]),
                                random_state=args.seed, trees=args.ablate_trees, n_jobs=args.jobs)
        print(f"# ablation {s}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    sets = [s for s in data if res[s] is not None]
    if not sets:
        print("error: too few images of a class in every set for 5-fold CV", file=sys.stderr)
        return 1
    trees = f"{args.ablate_trees} trees at learning rate 0.1, " if res[sets[0]]["trees"] is not None else ""
    print(f"\nBlock ablation on ../shared/data, {datetime.date.today().isoformat()}, commit {commit}, blocks {args.blocks}, "
          f"{args.classifier} ({trees}unweighted), 5-fold CV AUC" + (f", at most {args.limit} per class" if args.limit else ""))
    print()
    print("| blocks | features | " + " | ".join(sets) + " |")
    print("|---|---|" + "---|" * len(sets))
    print(f"| all | {len(names)} | " + " | ".join(f"{res[s]['all']:.4f}" for s in sets) + " |")
    sizes = {b: len(ix) for b, ix in block_index(names).items()}
    for kind, label in (("without", "all but `{}`"), ("alone", "`{}` alone")):
        for b in res[sets[0]][kind]:  # block order; "without" is empty for a single block
            n = len(names) - sizes[b] if kind == "without" else sizes[b]
            print(f"| {label.format(b)} | {n} | " + " | ".join(f"{res[s][kind][b]:.4f}" for s in sets) + " |")
    if args.json:
        args.json.write_text(json.dumps({"ablation": res, "meta": {"commit": commit, "blocks": spec.blocks}}, indent=2))
    return 0


#: Random draws of each fold's training part per fraction of ``--curve`` (the full part: one).
CURVE_DRAWS = 2


def curve(data: dict, model, args, commit: str) -> int:
    """``--curve``: per set and fraction, the CV AUC with each fold's training part cut to that share.

    The folds are the benchmark's (``cross_validated_scores`` with ``--seed``), so every fraction scores
    the same images with models trained on fewer; a fold's part is cut by a stratified random draw
    (``CURVE_DRAWS`` of them per fraction under 1; stratified, so the classes keep the equal weights of
    the benchmark's fits). At fraction 1 the fits, and so the AUC, are the benchmark's CV.
    """
    from sklearn.model_selection import StratifiedShuffleSplit

    res = {}
    for s, d in data.items():
        X, y = d["X"], d["y"]
        res[s] = []
        for frac in args.curve:
            aucs, n_train = [], None
            for draw in range(CURVE_DRAWS if frac < 1 else 1):
                sizes = []

                def fit_fold(Xt, yt, groups, weight, frac=frac, draw=draw):
                    if frac < 1:
                        keep, _ = next(StratifiedShuffleSplit(1, train_size=frac, random_state=args.seed + 1000 * (draw + 1))
                                       .split(Xt, yt))
                        Xt, yt, weight = Xt[keep], yt[keep], weight[keep]
                    sizes.append(len(yt))
                    return model().fit(Xt, yt, clf__sample_weight=weight)  # model() is a fresh pipeline

                oof = cross_validated_scores(model(), X, y, n_splits=5, random_state=args.seed, fit_fold=fit_fold,
                                             sample_weight=balanced_weights(y))
                aucs.append(detection_metrics(y, oof)["auc"])
                n_train = int(round(np.mean(sizes)))
            res[s].append({"fraction": frac, "n_train": n_train, "auc": float(np.mean(aucs)), "aucs": [float(a) for a in aucs]})
            print(f"# {s}: {frac:g} of each training part ({n_train} images): CV AUC "
                  + " / ".join(f"{a:.4f}" for a in aucs), file=sys.stderr)
    print(f"\nLearning curve on ../shared/data, {datetime.date.today().isoformat()}, commit {commit}, blocks {args.blocks}, "
          f"{args.classifier}" + (f" ({', '.join(args.params)})" if args.params else "")
          + f", 5-fold CV AUC with each fold's training part cut (mean of {CURVE_DRAWS} draws below 1)"
          + (f", at most {args.limit} per class" if args.limit else ""))
    for s, rows in res.items():
        print()
        print(f"| {s}: training images per fold | " + " | ".join(str(r["n_train"]) for r in rows) + " |")
        print("|---|" + "---|" * len(rows))
        print("| CV AUC | " + " | ".join(f"{r['auc']:.4f}" for r in rows) + " |")
    if args.json:
        args.json.write_text(json.dumps({"curve": res, "meta": {"commit": commit, "blocks": args.blocks, "classifier": args.classifier,
                                                                "params": args.params, "limit": args.limit}}, indent=2))
    return 0


#: |AUC - 0.5| from which a feature counts as separating a set in --cues.
CUE_MIN_EFFECT = 0.05


def feature_aucs(X, y) -> np.ndarray:
    """Each column's ROC AUC as a score for ``y == 1`` (the shortcut audit's :func:`column_auc`, not
    folded), over the rows where it is finite; NaN for a constant column and for one finite on fewer
    than half of the rows of either class (e.g. the face parts of CIFAKE's 32 px images, where a face is
    rarely found: an AUC over the few would say little)."""
    from forensics.pipelines.audit import column_auc

    out = np.full(X.shape[1], np.nan)
    y = np.asarray(y).astype(bool)
    for j in range(X.shape[1]):
        ok = np.isfinite(X[:, j])
        pos, n = int(y[ok].sum()), int(ok.sum())
        if pos < max(2, y.sum() / 2) or n - pos < max(2, (~y).sum() / 2) or np.ptp(X[ok, j]) == 0:
            continue
        out[j] = column_auc(X[:, j], y, fold=False)
    return out


def cues(data: dict, spec: FeatureSpec, args, commit: str) -> int:
    """Print (and optionally save) each block's cue strength per set and the agreement of the cues'
    directions between sets."""
    from itertools import combinations

    from forensics.reports.importance import block_index

    names = spec.feature_names()
    sets = list(data)
    effect = {s: feature_aucs(data[s]["X"], data[s]["y"]) - 0.5 for s in sets}
    blocks = block_index(names)
    pairs = list(combinations(sets, 2))
    print(f"\nCue directions on ../shared/data, {datetime.date.today().isoformat()}, commit {commit}, blocks {args.blocks}"
          + (f", at most {args.limit} per class" if args.limit else "") + ": each feature's AUC alone")
    print("\nMedian |AUC - 0.5| of the block's features on each set:\n")
    print("| block | features | " + " | ".join(sets) + " |")
    print("|---|---|" + "---|" * len(sets))
    rows = {}
    for b, ix in list(blocks.items()) + [("all", np.arange(len(names)))]:
        ix = np.asarray(ix)
        med = {s: float(np.nanmedian(np.abs(effect[s][ix]))) if np.isfinite(effect[s][ix]).any() else float("nan") for s in sets}
        rows[b] = {"n": int(len(ix)), "median_abs_effect": med, "pairs": {}}
        print(f"| {b} | {len(ix)} | " + " | ".join(f"{med[s]:.3f}" if np.isfinite(med[s]) else "n/a" for s in sets) + " |")
    if len(sets) < 2:
        print("\nOne set only: no agreement between sets to measure.")
    else:
        print(f"\nAgreement between sets: correlation of AUC - 0.5 over the block's features; in brackets, of the "
              f"features with |AUC - 0.5| >= {CUE_MIN_EFFECT} on both sets, how many point the same way:\n")
        print("| block | " + " | ".join(f"{a} ~ {b}" for a, b in pairs) + " |")
        print("|---|" + "---|" * len(pairs))
        for b, row in rows.items():
            ix = np.asarray(blocks[b]) if b != "all" else np.arange(len(names))
            cells = []
            for s1, s2 in pairs:
                e1, e2 = effect[s1][ix], effect[s2][ix]
                ok = np.isfinite(e1) & np.isfinite(e2)
                r = float(np.corrcoef(e1[ok], e2[ok])[0, 1]) if ok.sum() > 2 and e1[ok].std() > 0 and e2[ok].std() > 0 else float("nan")
                both = ok & (np.abs(np.nan_to_num(e1)) >= CUE_MIN_EFFECT) & (np.abs(np.nan_to_num(e2)) >= CUE_MIN_EFFECT)
                same = int((np.sign(e1[both]) == np.sign(e2[both])).sum())
                row["pairs"][f"{s1}~{s2}"] = {"corr": r, "same_direction": same, "both_separate": int(both.sum())}
                cells.append(f"{r:+.2f} ({same}/{int(both.sum())})" if np.isfinite(r) else "n/a")
            print(f"| {b} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps({"cues": rows, "feature_auc": {s: (effect[s] + 0.5).tolist() for s in sets}, "features": names,
                                         "meta": {"commit": commit, "blocks": spec.blocks, "limit": args.limit}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
