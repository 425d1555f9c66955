"""The shape of the library: no module of ``saa_lib`` imports one that imports it back (module-level and
function-local imports alike, checked on the source with ``ast``), and the checkpoint registry loads no model code."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import saa_lib

PACKAGE = Path(saa_lib.__file__).resolve().parent


def module_names() -> dict[str, Path]:
    """``{dotted name: file}`` of every module of the package (a package is named by its ``__init__``)."""
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("saa_lib", *path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of the package that ``name`` imports anywhere in its source (inside functions too), relative
    imports resolved; ``from pkg import sub`` counts as importing ``pkg.sub`` when that is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # `import saa_lib.x.y` names saa_lib.x.y; a symbol names its module
                t = t.rpartition(".")[0] if "." in t else ""
            if t and t != name and t.startswith("saa_lib"):
                found.add(t)
    return found


def import_graph() -> dict[str, set[str]]:
    names = module_names()
    return {n: imports_of(n, p, set(names)) for n, p in names.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_walker_resolves_relative_and_local_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("from .a import x\nfrom . import b\nfrom ..c import y\ndef f():\n    import saa_lib.d.e\n")
    known = {"saa_lib.p.a", "saa_lib.p.b", "saa_lib.c", "saa_lib.d", "saa_lib.d.e"}
    assert imports_of("saa_lib.p.m", src, known) == {"saa_lib.p.a", "saa_lib.p.b", "saa_lib.c", "saa_lib.d.e"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    assert "saa_lib.pipeline" in graph and graph["saa_lib.pipeline"], "the walker found no imports"
    found = cycles(graph)
    assert not found, "import cycles in saa_lib: " + "; ".join(" <-> ".join(c) for c in found)


#: modules that hold torch models; the checkpoint registry must import none of them
MODEL_CODE = ("saa_lib.models", "saa_lib.zoo", "groundingdino", "segment_anything", "timm", "torch")


def _modules_after(statement: str) -> list[str]:
    """The modules a fresh interpreter holds after ``statement`` (this checkout's package first on the path)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")])}
    code = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_the_weights_registry_imports_no_model_code():
    loaded = _modules_after("import saa_lib.weights")
    assert "saa_lib.weights" in loaded
    heavy = [m for m in loaded if m.split(".")[0] in MODEL_CODE or m.startswith(MODEL_CODE)]
    assert not heavy, f"import saa_lib.weights loads model code: {heavy[:10]}"
    assert any(m.startswith("saa_lib.models") for m in _modules_after("import saa_lib.zoo")), "the check cannot fail"


def test_the_command_line_starts_without_torch():
    """``saa --help`` answers at once: the CLI's choices come from torch-free modules, models load only when run."""
    loaded = _modules_after("import saa_lib.cli")
    assert "saa_lib.cli" in loaded and "torch" not in loaded
