"""The shape of the library: no module of ``saa_lib`` imports one that imports it back (module-level and
function-local imports alike, checked on the source with ``ast``), every module imports only from its own or lower
layers (the table of ARCHITECTURE.md), no code reaches into another module's private names, and the checkpoint
registry loads no model code."""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

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
    imports resolved; ``from pkg import sub`` counts as importing ``pkg.sub`` when that is a module. A package that
    holds ``name`` is left out: Python has imported it before ``name`` runs (``from . import sub`` in ``pkg.mod``)."""
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
            if t and t != name and t.startswith("saa_lib") and not name.startswith(t + "."):
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
    known = {"saa_lib.p", "saa_lib.p.a", "saa_lib.p.b", "saa_lib.c", "saa_lib.d", "saa_lib.d.e"}
    assert imports_of("saa_lib.p.m", src, known) == {"saa_lib.p.a", "saa_lib.p.b", "saa_lib.c", "saa_lib.d.e"}
    src.write_text("from . import b\nimport saa_lib.p\n")  # the package holding m: imported before m runs
    assert imports_of("saa_lib.p.m", src, known) == {"saa_lib.p.b"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    assert "saa_lib.pipeline" in graph and graph["saa_lib.pipeline"], "the walker found no imports"
    found = cycles(graph)
    assert not found, "import cycles in saa_lib: " + "; ".join(" <-> ".join(c) for c in found)


#: modules that hold torch models; the checkpoint registry must import none of them
MODEL_CODE = ("saa_lib.models", "saa_lib.weights.zoo", "groundingdino", "segment_anything", "timm", "torch")


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
    assert any(m.startswith("saa_lib.models") for m in _modules_after("import saa_lib.weights.zoo")), "the check cannot fail"


def test_the_command_line_starts_without_torch():
    """``saa --help`` answers at once: the CLI's choices come from torch-free modules, models load only when run."""
    loaded = _modules_after("import saa_lib.cli")
    assert "saa_lib.cli" in loaded and "torch" not in loaded


# ----- layers ---------------------------------------------------------------------------------------------------------
ARCHITECTURE = PACKAGE.parent / "ARCHITECTURE.md"


def layer_table(text: str) -> list[tuple[int, list[str], list[str] | None]]:
    """The rows of the layer table of ARCHITECTURE.md: ``(layer, module patterns, only)``; a pattern is a module name
    without ``saa_lib.`` (``__init__`` for the package itself) or ``pkg.*`` for every module of a package; ``only``:
    the modules a layer may import when its row says ``only ...`` (None: its own and every lower layer)."""
    rows = []
    for line in text.splitlines():
        m = re.match(r"^\|\s*(\d+)\s*\|[^|]*\|([^|]*)\|([^|]*)\|\s*$", line)
        if m:
            only = re.findall(r"`([^`]+)`", m.group(3)) if "only" in m.group(3) else None
            rows.append((int(m.group(1)), re.findall(r"`([^`]+)`", m.group(2)), only))
    return rows


def layer_of(module: str, rows) -> tuple[int, list[str] | None] | None:
    """The layer of ``module`` (``saa_lib.x.y``) and its ``only`` list; None when no row names it."""
    short = "__init__" if module == "saa_lib" else module[len("saa_lib."):]
    found = [(layer, only) for layer, patterns, only in rows for p in patterns
             if short == p or (p.endswith(".*") and (short == p[:-2] or short.startswith(p[:-1])))]
    return found[0] if found else None


def layering_violations(graph: dict[str, set[str]], rows) -> list[str]:
    """Every import that goes up the layers (or outside a row's ``only``), and every module no row names."""
    out = []
    for module, targets in sorted(graph.items()):
        mine = layer_of(module, rows)
        if mine is None:
            out.append(f"{module}: in no layer of ARCHITECTURE.md")
            continue
        for t in sorted(targets):
            theirs = layer_of(t, rows)
            if theirs is None:
                continue  # reported as a module of its own
            if mine[1] is not None and t[len("saa_lib."):] not in mine[1]:
                out.append(f"{module} imports {t}: it may import only {mine[1]}")
            elif theirs[0] > mine[0]:
                out.append(f"{module} (layer {mine[0]}) imports {t} (layer {theirs[0]})")
    return out


def test_the_layer_check_finds_an_upward_import_and_an_unlisted_module():
    rows = layer_table("| 0 | base | `config` | its own |\n| 1 | records | `records` | only `masks` |\n"
                       "| 2 | core | `pipeline`, `prompts.*` | layers <= 2 |\n| 3 | apps | `cli` | any |")
    assert layer_of("saa_lib.prompts.saliency", rows) == (2, None) and layer_of("saa_lib.prompts", rows) == (2, None)
    graph = {"saa_lib.config": {"saa_lib.pipeline"}, "saa_lib.records": {"saa_lib.config"},
             "saa_lib.pipeline": {"saa_lib.config", "saa_lib.prompts.saliency"}, "saa_lib.cli": {"saa_lib.pipeline"},
             "saa_lib.other": set()}
    assert layering_violations(graph, rows) == [
        "saa_lib.config (layer 0) imports saa_lib.pipeline (layer 2)",
        "saa_lib.other: in no layer of ARCHITECTURE.md",
        "saa_lib.records imports saa_lib.config: it may import only ['masks']"]


def test_every_module_sits_in_a_layer_and_imports_only_downward():
    """The layers listed in ARCHITECTURE.md hold: the core never imports the peers extension, the models'
    construction, the engine, the notebook support or the command line; ``records`` imports only ``masks``."""
    rows = layer_table(ARCHITECTURE.read_text(encoding="utf-8"))
    assert len(rows) >= 8, "the layer table of ARCHITECTURE.md was not found"
    problems = layering_violations(import_graph(), rows)
    assert not problems, "layering: " + "; ".join(problems)


# ----- private names ----------------------------------------------------------------------------------------------
def private_uses(source: str, filename: str = "<source>") -> list[str]:
    """Every ``x._name`` where ``x`` is not ``self`` or ``cls``, and every ``from m import _name``, in ``source``
    (dunder names are public)."""
    out = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                out.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom):
            out += [f"{filename}:{node.lineno}: from {node.module} import {a.name}" for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")]
    return out


def test_the_private_check_finds_foreign_private_access():
    src = ("class A:\n    def f(self, other):\n        return self._x + other._y\n"
           "from m import _hidden, visible\nimport os\nos.__name__\nA._z\n")
    assert sorted(u.split(": ", 1)[1] for u in private_uses(src)) == ["A._z", "from m import _hidden", "other._y"]


def test_no_private_access_across_modules_tests_benchmarks_or_notebooks():
    root = PACKAGE.parent
    files = [*PACKAGE.rglob("*.py"), *(root / "tests").rglob("*.py"), *(root / "benchmarks").rglob("*.py"),
             *(root / "notebooks").glob("*.py")]
    assert len(files) > 60
    found = [u for f in files for u in private_uses(f.read_text(encoding="utf-8"), str(f.relative_to(root)))]
    assert not found, "private names used from outside their class or module: " + "; ".join(found)
