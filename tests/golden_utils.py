"""Golden baselines shared by the block tests: tests/golden/<block>.csv, one row per named input.

``FORENSICS_REGEN_GOLDEN=1`` rewrites the file; otherwise current values must match it within
``rtol``/``atol`` and the failure lists which features changed.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

GOLDEN_DIR = Path(__file__).parent / "golden"


def check_golden(block: str, inputs: dict[str, np.ndarray], func: Callable, names: list[str], *, rtol=1e-4, atol=1e-6) -> None:
    path = GOLDEN_DIR / f"{block}.csv"
    if os.environ.get("FORENSICS_REGEN_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["input", *names])
            for name, img in inputs.items():
                writer.writerow([name, *(repr(float(x)) for x in func(img))])
    if not path.exists():
        pytest.fail(f"{path} is missing; create it with FORENSICS_REGEN_GOLDEN=1")
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0][1:]
    assert header == list(names), (
        f"feature names changed: removed {sorted(set(header) - set(names))[:10]}, added {sorted(set(names) - set(header))[:10]}"
    )
    changed = []
    for row in rows[1:]:
        expected = np.array([float(x) for x in row[1:]])
        current = func(inputs[row[0]])
        bad = ~np.isclose(current, expected, rtol=rtol, atol=atol, equal_nan=True)
        changed += [f"{row[0]}:{names[i]} {expected[i]:.6g} -> {current[i]:.6g}" for i in np.flatnonzero(bad)]
    assert not changed, f"{len(changed)} golden values changed:\n" + "\n".join(changed[:30])
