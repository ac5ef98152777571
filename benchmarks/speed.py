"""Speed and scale benchmark: every figure measured in one run, on the same files.

Files: ``../shared/data/faces-stylegan`` when present (256 px JPEG faces, q~95), else demo images
generated into a temporary folder (``--size`` px). Sections:

1. **decode floor**: Pillow decode of the files' bytes (already in memory) to an RGB array.
2. **per block**, single process (OpenCV on one thread, glibc malloc tuned as the workers do): our
   loader, then each default block alone on fresh views (it pays for the colour views it needs), the
   optional ``faceparts`` block alone when its detector is installed (not part of the target), all
   default blocks + diag on shared views, and the whole runner path (read, SHA-256, load, diag, blocks;
   ``--no-cache``). CPU time (``time.process_time``) and wall time per image, and the ratio to decode.
3. **scaling**: images/s through the runner with 1 and 2 worker processes (pool start-up included).
   The machine is shared: the run waits (up to ``--wait-max`` s) for the 1-minute load average to drop
   below ``--wait-load`` and prints the load before and after.
4. **memory**: ``forensics extract`` (Python API, 2 workers, no cache) of N1 and N2 images to Parquet in
   a subprocess; the peak of the summed RSS of that process and all its descendants (sampled every 20 ms
   with psutil). N2 images are the set repeated through symlinks when it has fewer files.
5. **cluster**: the same files through a 2-worker dask LocalCluster vs locally: identical features?
   (max abs difference; needs ``forensics[dask]``).

Usage:  python benchmarks/speed.py [--data ../shared/data/faces-stylegan] [--n-blocks 200] [--n-scale 400]
        [--n-mem 1000,10000] [--n-cluster 200] [--skip memory,cluster] [--blocks default] [--json out.json]
Prints a Markdown table with the targets: default blocks <= 10x decode (1 worker), 2 workers >= 1.7x
one, peak memory at N2 within 10 % of N1, cluster == local.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forensics.datasets import collect_labelled  # noqa: E402
from forensics.errors import UsageError  # noqa: E402
from forensics.extraction import FeatureSpec, iter_features  # noqa: E402
from forensics.features.base import ImageViews, get_block  # noqa: E402
from forensics.features.diag import diag_features  # noqa: E402
from forensics.loading import load_image_bytes  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "faces-stylegan"


def load() -> float:
    return os.getloadavg()[0]


def wait_for_quiet(threshold: float, max_wait: float) -> float:
    t0 = time.time()
    while load() > threshold and time.time() - t0 < max_wait:
        time.sleep(10)
    return load()


class Timer:
    """Accumulates CPU and wall seconds."""

    def __init__(self):
        self.cpu = self.wall = 0.0

    def __enter__(self):
        self._c, self._w = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.cpu += time.process_time() - self._c
        self.wall += time.perf_counter() - self._w


def dataset(args, tmp: Path) -> tuple[list[str], list[int], str]:
    if args.data and Path(args.data).is_dir():
        items = collect_labelled([args.data])
        return [i.path for i in items], [i.label for i in items], f"{Path(args.data).name} ({len(items)} files)"
    from forensics.demo import make_demo_dataset

    root = tmp / "demo"
    make_demo_dataset(root, n_per_class=300, size=args.size, seed=0)
    items = collect_labelled([root])
    return [i.path for i in items], [i.label for i in items], f"generated demo images, {args.size} px ({len(items)} files)"


def pick(paths: list[str], n: int) -> list[str]:
    """``n`` paths spread over the set (both classes)."""
    idx = np.linspace(0, len(paths) - 1, min(n, len(paths))).round().astype(int)
    return [paths[i] for i in idx]


# --------------------------------------------------------------------------------------------------


def available(name: str) -> bool:
    """Whether block ``name``'s optional dependencies are installed."""
    try:
        get_block(name).check_available()
    except UsageError:
        return False
    return True


def bench_blocks(paths: list[str], spec: FeatureSpec, optional: tuple[str, ...] = ()) -> dict:
    from PIL import Image

    try:
        from forensics.runtime import tune_process

        tune_process()
    except ImportError:  # older tree: OpenCV threads only
        import cv2

        cv2.setNumThreads(1)
    blobs = [Path(p).read_bytes() for p in paths]
    n = len(blobs)
    out: dict = {"n": n}

    for _ in range(2):  # warm-up (imports, first-call costs) then measure
        t = Timer()
        for b in blobs:
            with t:
                im = Image.open(io.BytesIO(b))
                np.asarray(im.convert("RGB"))
    out["decode"] = (t.cpu / n, t.wall / n)

    t = Timer()
    images = []
    for b in blobs:
        with t:
            images.append(load_image_bytes(b, name="bench"))
    out["load"] = (t.cpu / n, t.wall / n)

    # each block alone; optional blocks outside the spec (default settings) for reference
    timed = [(f"block:{b}", b, spec.settings.get(b)) for b in spec.blocks] + [(f"optional:{b}", b, None) for b in optional]
    for key, name, settings in timed:
        block = get_block(name)
        block.compute(ImageViews(images[0]), settings)  # warm-up
        t = Timer()
        for im in images:
            with t:
                block.compute(ImageViews(im), settings)
        out[key] = (t.cpu / n, t.wall / n)

    t = Timer()
    for im in images:
        with t:
            views = ImageViews(im)
            diag_features(views)
            for name in spec.blocks:
                get_block(name).compute(views, spec.settings.get(name))
    out["all_shared"] = (t.cpu / n, t.wall / n)

    t = Timer()
    with t:
        rows = list(iter_features(paths, spec, jobs=1, cache_dir=None))
    assert len(rows) == n
    out["runner_1"] = (t.cpu / n, t.wall / n)
    return out


def _burn(_):
    x = 0
    for i in range(2_000_000):
        x += i * i
    return x


def machine_scaling(tasks: int = 12) -> float:
    """Control: a pure-Python busy loop, 1 vs 2 processes. Near 2 on an idle 2-core machine; near 1 when
    other jobs take the second core (then no runner can scale either)."""
    from concurrent.futures import ProcessPoolExecutor

    rates = {}
    for n in (1, 2):
        with ProcessPoolExecutor(n) as pool:
            list(pool.map(_burn, range(n)))  # start the workers before timing
            t0 = time.perf_counter()
            list(pool.map(_burn, range(tasks)))
            rates[n] = tasks / (time.perf_counter() - t0)
    return rates[2] / rates[1]


def bench_scaling(paths: list[str], spec: FeatureSpec, *, chunk_size: int = 16) -> dict:
    """Images/s with 1 and 2 workers: overall (pool start-up included) and steady (after 2 chunks per worker)."""
    res = {"control_before": machine_scaling()}
    for jobs in (1, 2):
        marks = []
        t0 = time.perf_counter()
        rows = list(iter_features(paths, spec, jobs=jobs, cache_dir=None, chunk_size=chunk_size,
                                  progress=lambda d, n: marks.append((time.perf_counter(), d))))
        t1 = time.perf_counter()
        ts, d0 = next(((t, d) for t, d in marks if d >= 2 * jobs * chunk_size), (t0, 0))
        res[jobs] = {"overall": len(rows) / (t1 - t0), "steady": (len(rows) - d0) / (t1 - ts) if t1 > ts else float("nan")}
    res["control_after"] = machine_scaling()
    return res


_CHILD = """
import sys, time, resource
from forensics import api
t0 = time.perf_counter()
s = api.extract([sys.argv[1]], sys.argv[2], blocks="default", jobs=2, cache_dir=None)
print(s.n_rows, time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def tree_rss(proc) -> int:
    import psutil

    total = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def bench_memory(paths: list[str], labels: list[int], n: int, tmp: Path) -> dict:
    """Extract ``n`` images (the set repeated via symlinks) in a subprocess; peak summed RSS of its tree."""
    import psutil

    root = tmp / f"mem{n}"
    for k in range(n):
        src = paths[k % len(paths)]
        dst = root / ("real" if labels[k % len(paths)] == 0 else "fake") / f"{k:06d}_{Path(src).name}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(src, dst)
    out = tmp / f"mem{n}.parquet"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(root), str(out)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    ps = psutil.Process(proc.pid)
    peak, parent_peak, stop = [0], [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss(ps))
            try:
                parent_peak[0] = max(parent_peak[0], ps.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    stdout, _ = proc.communicate()
    stop.set()
    th.join()
    if proc.returncode != 0:
        raise RuntimeError(f"extract of {n} images failed ({proc.returncode})")
    rows, seconds, maxrss_kb = stdout.split()[-3:]
    return {"n": int(rows), "seconds": float(seconds), "peak_tree_mb": peak[0] / 2**20,
            "parent_maxrss_mb": int(maxrss_kb) / 1024, "parent_sampled_mb": parent_peak[0] / 2**20}


def bench_cluster(paths: list[str], spec: FeatureSpec) -> dict:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return {"skipped": "pip install 'forensics[dask]'"}
    t0 = time.perf_counter()
    local = np.vstack([r.features for r in iter_features(paths, spec, jobs=1, cache_dir=None)])
    t1 = time.perf_counter()
    remote_rows = list(iter_features(paths, spec, jobs=2, cache_dir=None, scheduler="local"))
    t2 = time.perf_counter()
    assert [r.path for r in remote_rows] == paths
    remote = np.vstack([r.features for r in remote_rows])
    same_nan = bool(np.array_equal(np.isnan(local), np.isnan(remote)))
    ok = ~np.isnan(local) & ~np.isnan(remote)
    return {"n": len(paths), "identical": bool(np.array_equal(local, remote, equal_nan=True)), "same_nan": same_nan,
            "max_abs_diff": float(np.abs(local[ok] - remote[ok]).max()) if ok.any() else 0.0,
            "local_s": t1 - t0, "cluster_s": t2 - t1}


# --------------------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--size", type=int, default=256, help="side of generated images when --data is missing")
    ap.add_argument("--n-blocks", type=int, default=200)
    ap.add_argument("--n-scale", type=int, default=400)
    ap.add_argument("--n-mem", default="1000,10000")
    ap.add_argument("--n-cluster", type=int, default=200)
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: blocks,scaling,memory,cluster")
    ap.add_argument("--wait-load", type=float, default=3.0, help="scaling waits for a 1-min load average below this")
    ap.add_argument("--wait-max", type=float, default=600.0)
    ap.add_argument("--json", default=None)
    ap.add_argument("--blocks", default="default", help="blocks timed (the target is for the default)")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    spec = FeatureSpec.create(args.blocks)
    res: dict = {"blocks_used": spec.blocks, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        paths, labels, what = dataset(args, tmp)
        res["data"] = what
        print(f"data: {what}; blocks: {', '.join(spec.blocks)}; load {load():.2f}", file=sys.stderr)
        if "blocks" not in skip:
            res["load_blocks"] = load()
            optional = tuple(n for n in ("faceparts",) if n not in spec.blocks and available(n))
            res["blocks"] = bench_blocks(pick(paths, args.n_blocks), spec, optional)
            print(f"blocks done; load {load():.2f}", file=sys.stderr)
        if "scaling" not in skip:
            before = wait_for_quiet(args.wait_load, args.wait_max)
            res["scaling"] = bench_scaling(pick(paths, args.n_scale), spec)
            res["n_scale"] = min(args.n_scale, len(paths))
            res["load_scaling"] = (before, load())
            print(f"scaling done; load {before:.2f} -> {load():.2f}", file=sys.stderr)
        if "memory" not in skip:
            res["memory"] = {}
            for n in [int(v) for v in args.n_mem.split(",")]:
                res["memory"][n] = bench_memory(paths, labels, n, tmp)
                print(f"memory {n} done: {res['memory'][n]}; load {load():.2f}", file=sys.stderr)
        if "cluster" not in skip:
            res["cluster"] = bench_cluster(pick(paths, args.n_cluster), spec)
            print(f"cluster done; load {load():.2f}", file=sys.stderr)
    print(report(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=str))
    return res


def report(res: dict) -> str:
    lines = [f"Data: {res['data']}; blocks: {', '.join(res['blocks_used'])}; {res['cpus']} CPUs.", ""]
    b = res.get("blocks")
    if b:
        dec_cpu, dec_wall = b["decode"]
        lines += [f"Single process, {b['n']} images (load average {res['load_blocks']:.1f} at the start):", "",
                  "| step | CPU ms/image | wall ms/image | x decode (CPU) | x decode (wall) |", "|---|---|---|---|---|"]
        names = [("decode", "Pillow decode (floor)"), ("load", "our loader (decode + EXIF, conversions, JPEG quality)")]
        names += [(k, f"block `{k.split(':', 1)[1]}` alone (fresh views)") for k in b if k.startswith("block:")]
        names += [(k, f"optional block `{k.split(':', 1)[1]}` alone (not in the default)") for k in b if k.startswith("optional:")]
        names += [("all_shared", "all these blocks + diag, shared views (after load)"),
                  ("runner_1", "runner, 1 process, --no-cache (read, hash, load, diag, blocks)")]
        for key, label in names:
            c, w = b[key]
            lines.append(f"| {label} | {1000 * c:.2f} | {1000 * w:.2f} | {c / dec_cpu:.1f} | {w / dec_wall:.1f} |")
        lines.append("")
    rows = ["| figure | measured | target | met |", "|---|---|---|---|"]
    if b:
        for i, kind in ((0, "CPU"), (1, "wall")):
            r = b["runner_1"][i] / b["decode"][i]
            rows.append(f"| runner, 1 worker, {kind} time per image / Pillow decode | {r:.1f}x ({1000 * b['runner_1'][i]:.1f} ms vs "
                        f"{1000 * b['decode'][i]:.2f} ms) | <= 10x | {'yes' if r <= 10 else 'no'} |")
    s = res.get("scaling")
    if s:
        control = (s["control_before"], s["control_after"])
        s = {int(k): v for k, v in s.items() if str(k).isdigit()}
        lo, hi = res["load_scaling"]
        rows.append(f"| control: busy loop, 1 -> 2 processes (what the machine gives) | {control[0]:.2f}x before, "
                    f"{control[1]:.2f}x after | ~2x when idle | - |")
        for kind, label in (("steady", "steady state"), ("overall", "pool start-up included")):
            ratio = s[2][kind] / s[1][kind]
            rows.append(f"| images/s, 1 -> 2 workers, {label}, {res['n_scale']} images | {s[1][kind]:.1f} -> {s[2][kind]:.1f} = "
                        f"{ratio:.2f}x (load {lo:.1f} -> {hi:.1f}) | >= 1.7x | {'yes' if ratio >= 1.7 else 'no'} |")
    m = res.get("memory")
    if m and len(m) >= 2:
        (n1, a), (n2, c) = sorted(m.items())[:2]
        growth = c["peak_tree_mb"] / a["peak_tree_mb"] - 1
        rows.append(f"| peak RSS (extract + workers), {n1} -> {n2} images | {a['peak_tree_mb']:.0f} MB -> {c['peak_tree_mb']:.0f} MB "
                    f"({100 * growth:+.1f} %; parent alone {a['parent_maxrss_mb']:.0f} -> {c['parent_maxrss_mb']:.0f} MB; "
                    f"{a['seconds']:.0f} s / {c['seconds']:.0f} s) | within 10 % | {'yes' if abs(growth) <= 0.10 else 'no'} |")
    cl = res.get("cluster")
    if cl and "skipped" not in cl:
        rows.append(f"| 2-worker LocalCluster vs local, {cl['n']} images | identical: {cl['identical']} (max abs diff "
                    f"{cl['max_abs_diff']:.3g}; {cl['cluster_s']:.0f} s vs {cl['local_s']:.0f} s, cluster start included) "
                    f"| identical | {'yes' if cl['identical'] else 'no'} |")
    elif cl:
        rows.append(f"| cluster vs local | skipped: {cl['skipped']} | identical | - |")
    return "\n".join(lines + rows)


if __name__ == "__main__":
    main()
