"""Speed of the optional ``cnn`` block (EfficientNet-Lite0), in ms per image on one core.

Runs on real images: the first ``--n`` of ../shared/data/faces-stylegan (half real, half fake) when
that folder is there, else scikit-image's bundled photographs (repeated). Measures, each with
``--threads`` intra-op threads (default 1, i.e. per core):
  - preprocessing alone (centre crop, resize to 224, scaling);
  - PyTorch at batch size 1 and at each of ``--batch`` (inference mode, channels-last);
  - ONNX Runtime at batch size 1 (the block's default runtime when onnxruntime is installed);
  - the block per image, as the batch runner calls it (preprocessing + the default runtime), with the
    default ``layers="last"`` and with ``layers="stages"``.
Decoding the file is not included (every block shares it). Wall and CPU time are both printed.

Usage:  python benchmarks/cnn_speed.py [--data ../shared/data/faces-stylegan] [--n 64] [--threads 1] [--batch 4,32]
Needs ``pip install 'forensics[cnn]'``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forensics.features import cnn  # noqa: E402
from forensics.loading import load_image  # noqa: E402


def real_images(folder: Path, n: int) -> tuple[list[np.ndarray], str]:
    if folder.is_dir():
        from forensics.datasets import collect_labelled

        items = collect_labelled([folder])
        by = {c: [i.path for i in items if i.label == c][: (n + 1) // 2] for c in (0, 1)}
        paths = (by[0] + by[1])[:n]
        imgs = [load_image(p).rgb for p in paths]
        shapes = sorted({f"{a.shape[1]}x{a.shape[0]}" for a in imgs})
        return imgs, f"{len(imgs)} images of {folder} ({', '.join(shapes)})"
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.immunohistochemistry()]
    imgs = [photos[i % len(photos)] for i in range(n)]
    return imgs, f"{n} scikit-image photographs (astronaut, chelsea, coffee, rocket, immunohistochemistry; repeated)"


def per_image(fn, items, repeat: int) -> tuple[float, float]:
    """Best-of-``repeat`` mean (wall, CPU) ms per item of ``fn(item)`` over ``items``, after a warm-up call.

    CPU time (this process, all threads) is the steadier figure on a shared machine: a descheduled
    process loses wall time, not CPU time.
    """
    fn(items[0])
    wall = cpu = float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        for it in items:
            fn(it)
        wall = min(wall, (time.perf_counter() - t0) / len(items))
        cpu = min(cpu, (time.process_time() - c0) / len(items))
    return 1000 * wall, 1000 * cpu


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "faces-stylegan")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", default="4,32", help="batch sizes for the batched PyTorch rows, comma-separated")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    imgs, what = real_images(args.data, args.n)
    print(f"cnn block speed: {what}; {args.threads} thread(s); torch {torch.__version__}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs\n")
    rows = []
    xs = [cnn.preprocess(im) for im in imgs]
    rows.append(("preprocessing (crop, resize to 224, scale)", per_image(cnn.preprocess, imgs, args.repeat)))

    tb = cnn._TorchBackbone()
    rows.append(("PyTorch, batch 1", per_image(lambda x: tb(x[None]), xs, args.repeat)))
    for bs in (int(b) for b in str(args.batch).split(",")):
        batches = [np.stack(xs[i : i + bs]) for i in range(0, len(xs), bs)]
        wall, cpu = per_image(tb, batches, args.repeat)
        rows.append((f"PyTorch, batch {bs}", (wall * len(batches) / len(xs), cpu * len(batches) / len(xs))))

    ob = None
    try:
        import onnxruntime  # noqa: F401

        ob = cnn._OnnxBackbone(cnn.exported_onnx_path(), threads=args.threads)
    except ImportError:
        print("onnxruntime is not installed: ONNX rows skipped")
    if ob is not None:
        rows.append(("ONNX Runtime, batch 1", per_image(lambda x: ob(x[None]), xs, args.repeat)))
        ref = np.concatenate([tb(x[None]) for x in xs])
        got = np.concatenate([ob(x[None]) for x in xs])
        print(f"max |ONNX Runtime - PyTorch| over {len(xs)} images: {np.abs(ref - got).max():.2e}")
    run = ob if ob is not None else tb
    rows.append((f"block per image (preprocessing + {run.runtime}, batch 1)",
                 per_image(lambda im: run(cnn.preprocess(im)[None]), imgs, args.repeat)))
    # layers=stages: the network up to its last MBConv block, five blocks' channels summarised
    st = cnn._OnnxBackbone(cnn.exported_onnx_path(layers="stages"), threads=args.threads) if ob is not None \
        else cnn._TorchBackbone(layers="stages")
    rows.append((f"block per image, layers=stages (preprocessing + {st.runtime}, batch 1)",
                 per_image(lambda im: st(cnn.preprocess(im)[None]), imgs, args.repeat)))

    print(f"\n| step | wall ms/image | CPU ms/image |\n|---|---|---|")
    for name, (wall, cpu) in rows:
        print(f"| {name} | {wall:.2f} | {cpu:.2f} |")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n(load average {load:.1f} on {os.cpu_count()} CPUs when done: wall times above the CPU times mean a busy machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
