"""pytest configuration of the series' nbval run (``make test``): with ``SAA_EXECUTED=DIR`` set, every notebook whose
cells all ran without failing is also written to ``DIR/<name>.ipynb`` with the outputs nbval received, and
``DIR/report.json`` describes the run as :func:`saa_lib.workbook.report.run_report` does, so the book can render this run
(``python -m saa_lib.workbook.book --executed DIR``; ``tests/test_book.py``) instead of executing the series again.

nbval's checks are untouched: this only reads each cell's outputs after nbval ran and compared it.
"""
from __future__ import annotations

import ast
import json
import os
from collections import defaultdict
from pathlib import Path

import nbformat

_FAILED: set[str] = set()
_SECONDS: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if report.failed:
        _FAILED.add(path)
    _SECONDS[path] += report.duration


def parameters(nb) -> dict:
    """The literal values assigned in the cell tagged ``parameters`` (the values this run used)."""
    cell = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    values = {}
    for node in ast.parse(cell.source).body if cell is not None else []:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return values


def pytest_sessionfinish(session):
    out = os.environ.get("SAA_EXECUTED")
    if not out:
        return
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cells = defaultdict(list)  # notebook file -> its cell items (nbval's IPyNbCell: cell_num, test_outputs)
    for item in session.items:
        if hasattr(item, "cell_num") and hasattr(item, "test_outputs"):
            cells[Path(item.parent.path)].append(item)
    status, params = [], {}
    for path, items in sorted(cells.items()):
        nodeid = items[0].nodeid.split("::")[0]
        error = "a cell failed under nbval" if nodeid in _FAILED else (
            "not every cell ran" if any(it.test_outputs is None for it in items) else "")
        status.append({"notebook": path.stem, "seconds": round(_SECONDS[nodeid], 1), "error": error})
        if error:
            continue
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        for it in items:
            code[it.cell_num].outputs = it.test_outputs
            code[it.cell_num].execution_count = it.cell_num + 1
        params = {**parameters(nb), **params}  # the first notebook that sets a parameter gives its value
        tmp = out / f".{path.stem}.ipynb.partial"
        nbformat.write(nb, tmp)
        os.replace(tmp, out / f"{path.stem}.ipynb")
    record = {"parameters": params, "notebooks": status, "executed_by": "nbval"}
    (out / "report.json").write_text(json.dumps(record, indent=1))
