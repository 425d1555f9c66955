"""The notebook series, checked without executing it: files, pairing, parameters, course structure, no outputs.

Executing the notebooks is nbval's job (``pytest --nbval-lax notebooks``); these checks take a second.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

jupytext = pytest.importorskip("jupytext")

from saa_lib.workbook import NOTEBOOKS  # noqa: E402

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
PARAMETERS = {"dataset", "root", "categories", "variant", "models", "device", "n_images", "out_dir", "seed"}
#: the notebooks that load no model: the course map (its one parameter: where its figures go)
MODEL_FREE = ("00_course_map",)
#: the longest function a notebook may define (UI callbacks; anything longer belongs in saa_lib)
MAX_DEF_LINES = 30
#: an exercise that answers back: ``workbook.check("NN.k", ...)``
CHECK = re.compile(r"""check\(\s*["'](\d\d\.\d+)["']""")
#: code that would re-implement pipeline logic (filtering, rescoring, fusion, metrics) instead of calling saa_lib
FORBIDDEN = [r"\bnp\.exp\(", r"\.argsort\(", r"\bnp\.argsort\(", r"roc_auc_score", r"precision_recall_curve",
             r"\.cumsum\(", r"\bbinary_erosion\(", r"\bdef\s+(fuse|rescore|top_k|score|normali[sz]e)\w*\("]


def _code(cell) -> str:
    """A code cell's source without IPython magics (so that it parses as Python)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in cell.source.splitlines())


def _ipynb(name: str):
    return nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)


def test_series_is_numbered_00_to_09_after_the_course_map():
    assert NOTEBOOKS[0] == "00_course_map"
    assert [n[:2] for n in NOTEBOOKS] == ["00"] + [f"{i:02d}" for i in range(10)]
    on_disk = sorted(p.stem for p in NB_DIR.glob("[0-9][0-9]_*.ipynb"))
    assert on_disk == list(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_files_exist_and_pair(name):
    assert (NB_DIR / f"{name}.ipynb").is_file()
    assert (NB_DIR / f"{name}.py").is_file()
    if CHECK.search((NB_DIR / f"{name}.py").read_text(encoding="utf-8")):
        assert (NB_DIR / "answers" / f"{name[:2]}_answers.py").is_file(), f"{name}: exercises without answers"
    header = (NB_DIR / f"{name}.py").read_text(encoding="utf-8").split("# ---", 2)[1]
    assert "formats: ipynb,py:percent" in header


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_stored_without_outputs(name):
    nb = _ipynb(name)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}: a code cell has outputs"
            assert cell.execution_count is None, f"{name}: a code cell has an execution count"
    assert "widgets" not in nb.metadata, f"{name}: widget state is stored"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_ipynb_and_py_in_sync(name):
    a = jupytext.read(NB_DIR / f"{name}.ipynb")
    b = jupytext.read(NB_DIR / f"{name}.py")
    assert [(c.cell_type, c.source.strip()) for c in a.cells] == [(c.cell_type, c.source.strip()) for c in b.cells]
    assert [c.metadata.get("tags", []) for c in a.cells] == [c.metadata.get("tags", []) for c in b.cells]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_one_parameters_cell(name):
    nb = _ipynb(name)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name}: {len(tagged)} cells tagged 'parameters'"
    assert tagged[0].cell_type == "code"
    tree = ast.parse(_code(tagged[0]))
    assigned = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                if isinstance(t, ast.Name)}
    assert all(isinstance(node, ast.Assign) for node in tree.body), f"{name}: parameters cell holds more than values"
    required = {"out_dir"} if name in MODEL_FREE else PARAMETERS
    assert required <= assigned, f"{name}: missing parameters {sorted(required - assigned)}"
    ns: dict = {}
    exec(compile(tree, name, "exec"), ns)  # literals only: runs in no time
    if name in MODEL_FREE:
        assert assigned == {"out_dir"} and ns["out_dir"] is None
        return
    assert ns["models"] == "auto" and ns["dataset"] == "synthetic" and ns["out_dir"] is None
    assert isinstance(ns["n_images"], int) and 1 <= ns["n_images"] <= 3, "defaults must stay fast"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_course_structure(name):
    """Title, learning goals up front; the lesson ends with three takeaways, then one exercises section with at least
    two exercises, each a ``### NN.k · Title`` heading followed by its ``check``, and nothing after them. The answers
    are checked in the notebook, not pointed to."""
    nb = _ipynb(name)
    md = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert md and md[0].lstrip().startswith(f"# {name[:2]}"), f"{name}: the first cell is the title"
    assert any(re.search(r"^#+\s*Learning goals", s, re.M) for s in md[:2]), f"{name}: no learning goals up front"
    exercises = [i for i, s in enumerate(md) if re.search(r"^##\s*Exercises", s, re.M)]
    assert len(exercises) == 1, f"{name}: one exercises section"
    before = md[exercises[0] - 1]
    assert re.match(r"\s*##\s*Takeaways", before), f"{name}: the takeaways come right before the exercises"
    assert len(re.findall(r"^\d+\.\s", before, re.M)) == 3, f"{name}: three takeaways"
    after = md[exercises[0]:]
    assert not any(re.search(r"^#{1,2}\s", s, re.M) for s in after[1:]), f"{name}: only exercises follow 'Exercises'"
    subheads = re.findall(r"^###\s[^\n]*", "\n".join(after), re.M)
    style = re.compile(r"### (\d\d\.\d+) · \S")  # one heading style in every notebook: "### 05.1 · Top-K from scratch"
    assert all(style.match(h) for h in subheads), f"{name}: exercise headings read '### NN.k · Title': {subheads}"
    headed = [style.match(h).group(1) for h in subheads]
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert len(headed) >= 2, f"{name}: at least two exercises"
    assert sorted(headed) == sorted(set(CHECK.findall(code))), f"{name}: each exercise heading has its check"
    assert all(i.startswith(name[:2]) for i in headed)
    assert "_answers.md" not in "\n".join(md), f"{name}: exercises answer back; no answers file to open"
    assert not (NB_DIR / "answers" / f"{name[:2]}_answers.md").exists(), f"{name}: answers both as .md and .py"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_test_cells_are_hidden_from_the_lesson(name):
    """Cells that exist for nbval (asserts, ``NBVAL_CHECK_OUTPUT``) are tagged ``remove-cell`` (hidden in the book);
    no other cell asserts."""
    for cell in _ipynb(name).cells:
        if cell.cell_type != "code" or "remove-cell" in cell.metadata.get("tags", []):
            continue
        assert "NBVAL_CHECK_OUTPUT" not in cell.source, f"{name}: an nbval check cell is not tagged remove-cell"
        assert not any(isinstance(n, ast.Assert) for n in ast.walk(ast.parse(_code(cell)))), \
            f"{name}: a test assert in the lesson; move it into tests/ or a cell tagged remove-cell"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_pipeline_logic_in_cells(name):
    """The notebooks call the library; only the cells tagged ``exercise`` (where a student writes a step from scratch
    and ``check`` compares it with the library) may hold a step's logic."""
    for cell in _ipynb(name).cells:
        if cell.cell_type != "code" or "exercise" in cell.metadata.get("tags", []):
            continue
        src = _code(cell)
        tree = ast.parse(src)
        for node in ast.walk(tree):
            assert not isinstance(node, ast.ClassDef), f"{name}: classes belong in saa_lib"
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = node.end_lineno - node.lineno + 1
                assert size <= MAX_DEF_LINES, f"{name}: def {node.name} is {size} lines; move it into saa_lib"
        for pattern in FORBIDDEN:
            assert not re.search(pattern, src), f"{name}: {pattern!r} re-implements pipeline logic; call saa_lib"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_saliency_backbone_is_chosen_and_real_samples_come_from_the_library(name):
    """P^S runs on the paper's WideResNet50 when its weights are here, else on the real lite0 (never on a random
    backbone by default); the real samples are found by workbook.real_datasets (SAA_SAMPLES, ../shared), which says so
    when they are missing."""
    if name in MODEL_FREE:
        pytest.skip(f"{name} loads no model")
    nb = _ipynb(name)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    ns: dict = {}
    exec(compile(ast.parse(_code(params)), name, "exec"), ns)
    assert ns.get("saliency_backbone") == "auto"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "workbook.choose_saliency_backbone(saliency_backbone)" in code
    assert "shared_samples()" not in code or "workbook.real_datasets()" in code
    assert "../shared" not in code


def test_check_outputs_are_marked():
    marked = [n for n in NOTEBOOKS if any("NBVAL_CHECK_OUTPUT" in c.source for c in _ipynb(n).cells)]
    assert len(marked) >= 2, "nbval-lax checks only the cells marked NBVAL_CHECK_OUTPUT"


def test_sanitize_cfg():
    text = (NB_DIR / "sanitize.cfg").read_text(encoding="utf-8")
    sections = re.findall(r"^\[(\w+)\]", text, re.M)
    assert len(sections) >= 4 and len(sections) == len(set(sections))
    for section in re.split(r"^\[\w+\]\s*$", text, flags=re.M)[1:]:
        regex = re.search(r"^regex:\s*(.+)$", section, re.M)
        assert regex and re.search(r"^replace:", section, re.M)
        re.compile(regex.group(1).strip())


@pytest.mark.parametrize("name", [n for n in NOTEBOOKS if not n.startswith("00")])
def test_setup_is_called_with_keywords_and_not_copied(name):
    """Every notebook after the two 00s starts from ``workbook.setup`` with its parameters passed by keyword (a call by
    position breaks silently when a parameter is added) and keeps its result as one record (``wb = ...``: unpacking
    it breaks when a field is added), and none assembles models, cache and pipeline itself."""
    tree = ast.parse("\n".join(_code(c) for c in _ipynb(name).cells if c.cell_type == "code"))
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and node.func.attr == "setup"]
    assert len(calls) == 1, f"{name}: expected one workbook.setup(...) call, found {len(calls)}"
    assert not calls[0].args and all(k.arg for k in calls[0].keywords), f"{name}: pass setup's parameters by keyword"
    bound = [node for node in ast.walk(tree) if isinstance(node, ast.Assign) and node.value is calls[0]]
    assert bound and all(isinstance(t, ast.Name) for t in bound[0].targets), f"{name}: keep setup's record whole"
    code = ast.unparse(tree)
    for pattern in (r"\bload_models\(", r"\b(nb|wb|workbook)\.banner\("):
        assert not re.search(pattern, code), f"{name}: {pattern!r} copies the body of setup; call workbook.setup"
