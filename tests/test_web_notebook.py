"""The example notebook runs top to bottom under nbclient, with no error and no stray output.

"Stray" is what the issue names: no VTK warnings (they go to stderr), no extra
window or image from a viewer's own ``show()``: the cells that render show one
PNG each, the live cell one iframe.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "notebooks" / "pattern_cutting.ipynb"
MISSING = [m for m in ("nbclient", "nbformat", "ipykernel", "trame") if importlib.util.find_spec(m) is None]


@pytest.mark.skipif(bool(MISSING), reason=f"not installed: {', '.join(MISSING)}")
def test_example_notebook_runs_clean(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    pngs = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            assert out.output_type != "error", out
            if out.output_type == "stream":
                assert out.name == "stdout", f"stderr in a cell: {out.text[:300]}"
                assert "WARN" not in out.text and "vtk" not in out.text.lower(), out.text[:300]
            if out.output_type in ("display_data", "execute_result"):
                pngs += "image/png" in out.data
    assert pngs == 2  # the two snapshots, nothing else
    last = nb.cells[-1].outputs
    assert any("iframe" in o.get("data", {}).get("text/html", "") for o in last), last
    assert "score" in "".join(o.get("text", "") for o in nb.cells[4].outputs)
