"""Memory benchmark: does ``forensics score`` stay flat on a very large folder?

Writes N small generated images (default 100 000 of 32x32, half PNG, half JPEG, 1000 per sub-folder)
to a temporary folder, trains a small model with the requested blocks on an offline demo set, then
runs the real command line, ``forensics --quiet score MODEL FOLDER --out scores.csv --jobs J`` (with
its defaults: resumable partial file, feature cache in a fresh temporary folder), in a subprocess.
A sampler reads the resident set size (RSS) of that process and of every process below it (the
worker pool) every ``--interval`` seconds and follows progress through the rows the command writes to
its partial file (``.scores.csv.partial``). It prints RSS at every ``--every`` images: current and peak
of the parent, largest worker, and the whole tree; then checks the CSV (one row per image).

Usage:  python benchmarks/memory.py [--n 100000] [--size 32] [--blocks default] [--jobs 2]
        [--every 10000] [--interval 0.5] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forensics import api  # noqa: E402
from forensics.demo import make_demo_dataset  # noqa: E402
from forensics.resume import partial_path  # noqa: E402

MB = 1024 * 1024


def make_images(folder: Path, n: int, size: int, seed: int = 0) -> float:
    """N distinct small images (smooth gradient + noise, so JPEG and PNG both have content)."""
    from PIL import Image

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    for k in range(n):
        sub = folder / f"part{k // 1000:04d}"
        if k % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        base = (xx * rng.uniform(1, 6) + yy * rng.uniform(1, 6))[..., None] + rng.uniform(0, 120, 3)
        rgb = np.clip(base + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
        if k % 2:
            Image.fromarray(rgb).save(sub / f"img{k:06d}.png", optimize=False, compress_level=1)
        else:
            Image.fromarray(rgb).save(sub / f"img{k:06d}.jpg", quality=90)
    return time.perf_counter() - t0


def tree_rss(pid: int) -> tuple[int, int, int] | None:
    """(parent RSS, largest descendant RSS, total RSS of the tree), bytes; None once the process is gone."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - Linux fallback
        return _tree_rss_proc(pid)
    try:
        proc = psutil.Process(pid)
        parent = proc.memory_info().rss
        kids = []
        for child in proc.children(recursive=True):
            try:
                kids.append(child.memory_info().rss)
            except psutil.Error:
                pass
    except psutil.Error:
        return None
    return parent, max(kids, default=0), parent + sum(kids)


def _tree_rss_proc(pid: int):
    def rss(p):
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return 0

    parents = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
                parents[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    tree, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        tree += kids
        frontier += kids
    top = rss(pid)
    if top is None:
        return None
    kids = [r for r in (rss(c) for c in tree) if r]
    return top, max(kids, default=0), top + sum(kids)


class Sampler(threading.Thread):
    """Samples RSS of the process tree and progress (rows in the partial file) until the process ends."""

    def __init__(self, proc: subprocess.Popen, partial: Path, every: int, interval: float):
        super().__init__(daemon=True)
        self.proc, self.partial, self.every, self.interval = proc, partial, every, interval
        self.rows = 0
        self._offset = 0
        self.peak = [0, 0, 0]
        self.marks: list[tuple[int, float, tuple, list]] = []  # (rows, elapsed, current, peak so far)
        self.t0 = time.perf_counter()

    def _progress(self) -> None:
        try:
            with open(self.partial, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except OSError:
            return
        last = data.rfind(b"\n")
        if last >= 0:
            self.rows += data[: last + 1].count(b"\n")
            self._offset += last + 1

    def run(self) -> None:
        next_mark = self.every
        while self.proc.poll() is None:
            now = tree_rss(self.proc.pid)
            if now is not None:
                self.peak = [max(a, b) for a, b in zip(self.peak, now)]
                self._progress()
                done = max(0, self.rows - 1)  # the first line is a header
                while done >= next_mark:
                    self.marks.append((next_mark, time.perf_counter() - self.t0, now, list(self.peak)))
                    next_mark += self.every
            time.sleep(self.interval)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--blocks", default="default")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--every", type=int, default=10_000)
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one); images are reused if present")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()

    work = args.dir or Path(tempfile.mkdtemp(prefix="forensics-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    images = work / f"images-{args.n}-{args.size}"
    try:
        if not (images / ".complete").exists():
            shutil.rmtree(images, ignore_errors=True)
            secs = make_images(images, args.n, args.size)
            (images / ".complete").write_text("")
            print(f"wrote {args.n} images of {args.size}x{args.size} in {secs:.0f} s", flush=True)
        model_file = work / f"model-{args.blocks.replace(',', '_')}.skops"
        if not model_file.exists():
            demo = work / "demo"
            make_demo_dataset(demo, n_per_class=20, size=64, seed=3)
            model, _ = api.train([demo], blocks=args.blocks, classifier="xgb", n_splits=2, cache_dir=None)
            model.save(model_file)
        out = work / "scores.csv"
        for stale in (out, partial_path(out)):
            stale.unlink(missing_ok=True)
        cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
        cmd = [sys.executable, "-c", "from forensics.cli import main; main()", "--quiet", "score", str(model_file), str(images),
               "--out", str(out), "--jobs", str(args.jobs), "--cache-dir", str(cache)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sampler = Sampler(proc, partial_path(out), args.every, args.interval)
        sampler.start()
        stdout, stderr = proc.communicate()
        sampler.join()
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"score failed ({proc.returncode}):\n{stderr}")

        import pandas as pd

        n_rows = len(pd.read_csv(out, usecols=["path"]))
        date = datetime.date.today().isoformat()
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
        print(f"\n{date}, commit {commit} (+ working tree), blocks {args.blocks}, jobs {args.jobs}, "
              f"{args.n} images of {args.size}x{args.size}: {elapsed:.0f} s ({1000 * elapsed / args.n:.2f} ms/image), "
              f"CSV rows {n_rows}")
        print(" ".join(stdout.split()))
        print("\n| images scored | parent RSS (MB) | parent peak so far | largest worker RSS | tree RSS | tree peak so far |")
        print("|---|---|---|---|---|---|")
        for rows, _, now, peak in sampler.marks:
            print(f"| {rows} | {now[0] / MB:.0f} | {peak[0] / MB:.0f} | {now[1] / MB:.0f} | {now[2] / MB:.0f} | {peak[2] / MB:.0f} |")
        p = sampler.peak
        print(f"| end (peak over the run) | | {p[0] / MB:.0f} | {p[1] / MB:.0f} | | {p[2] / MB:.0f} |")
        if n_rows != args.n:
            sys.exit(f"expected {args.n} rows, got {n_rows}")
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
