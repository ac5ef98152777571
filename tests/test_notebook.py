"""``notebooks/explore.ipynb`` runs top to bottom on a small demo dataset, and is committed executed."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore.ipynb"


def test_committed_notebook_has_outputs():
    assert NOTEBOOK.stat().st_size < 1_500_000
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code), "commit the notebook executed"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for c in code for o in c.outputs) >= 5
    source = "\n".join(c.source for c in code)
    assert "from forensics" in source and "def " not in source  # uses the library, copies none of it


def test_notebook_runs_on_demo_data(tmp_path, monkeypatch):
    from forensics.demo import make_demo_dataset

    make_demo_dataset(tmp_path / "demo", n_per_class=16, size=64)
    monkeypatch.setenv("FORENSICS_NOTEBOOK_DATA", str(tmp_path / "demo"))
    monkeypatch.setenv("FORENSICS_NOTEBOOK_BLOCKS", "color,spectrum")
    monkeypatch.delenv("FORENSICS_NOTEBOOK_MAX_PER_CLASS", raising=False)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # the venv's ipykernel provides the "python3" kernel, run with this interpreter (no install step)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 5
    text = "".join(o.get("text", "") for o in outputs)
    assert "data: demo; blocks: color,spectrum" in text
