"""``forensics demo``: the whole loop on an offline dataset (build, train, score, summarise)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import typer
from rich.table import Table

from forensics import api
from forensics.cli.app import app, handle_errors, out_console, progress_display
from forensics.demo import make_demo_dataset
from forensics.pipelines.metrics import detection_metrics


@app.command("demo")
@handle_errors
def demo_command(
    out: Path = typer.Option(Path("demo-run"), "--out", "-o", help="Working folder (replaced if it holds an earlier demo)."),
    n_per_class: int = typer.Option(60, "--n-per-class", help="Training images per class."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Worker processes."),
):
    """Build a small offline dataset (scikit-image photos vs simulated generator up-sampling), train on
    it, score a held-out set made with other simulated generators, and print a summary."""
    if out.exists() and (out / "model.skops").exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    train_dir, test_dir, cache = out / "train", out / "heldout", out / "cache"
    make_demo_dataset(train_dir, n_per_class=n_per_class, seed=0, overwrite=True)
    make_demo_dataset(test_dir, n_per_class=max(10, n_per_class // 2), seed=1, overwrite=True)
    out_console.print(f"built {train_dir} ({2 * n_per_class} images) and {test_dir} (held-out, other generators)", highlight=False, soft_wrap=True)
    with progress_display() as progress:
        model, _ = api.train([train_dir], jobs=jobs, cache_dir=cache, progress=progress)
        model.save(out / "model.skops")
        summary = api.score(model, [test_dir], out / "scores.csv", jobs=jobs, cache_dir=cache, progress=progress)
    scores = pd.read_csv(out / "scores.csv")
    truth = scores["path"].map(lambda p: 1 if Path(p).parent.name == "fake" else 0)
    held = detection_metrics(truth, scores["prob_fake"], model.threshold)
    cv = model.card["cv_metrics"]
    table = Table(title="demo: simulated up-sampling fakes vs real photo crops")
    for col in ("", "images", "AUC", "balanced acc", "acc real", "acc fake"):
        table.add_column(col, justify="right")
    for name, m in (("cross-validation", cv), ("held-out", held)):
        table.add_row(name, str(m["n"]), f"{m['auc']:.3f}", f"{m['balanced_accuracy']:.3f}", f"{m['acc_real']:.3f}", f"{m['acc_fake']:.3f}")
    out_console.print(table)
    out_console.print(
        f"model: {out / 'model.skops'} ({model.card['n_features']} features, blocks {', '.join(model.spec.blocks)}); "
        f"scores: {out / 'scores.csv'} ({summary.n_rows} rows)",
        highlight=False,
        soft_wrap=True,
    )
