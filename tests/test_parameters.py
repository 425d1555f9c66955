"""Every notebook parameter is checked up front: a bad value ends the set-up cell with one line naming the parameter,
the value and the fix (``workbook.check_parameters``), under papermill as in JupyterLab; ``saa report`` refuses the
same values with exit 2 and one line before any notebook runs."""
from __future__ import annotations

import ast
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from saa_lib.workbook import NOTEBOOKS
from saa_lib.workbook.parameters import PARAMETERS, ParameterError, check_parameters

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
GOOD = dict(dataset="synthetic", root=None, categories=None, variant="saa_plus", behaviour="code", models="tiny",
            device="cpu", n_images=2, out_dir=None, seed=0, saliency_backbone="auto", capstone_root=None,
            capstone_category=None, capstone_object="foreground")
#: the notebooks run under papermill once per bad parameter
PAPERMILL_NOTEBOOKS = ("01_baseline_saa", "09_beyond_saa")
#: seconds one papermill run may take (it stops in the set-up cell, before any model loads)
PAPERMILL_TIMEOUT = 240


def bad_values(tmp: Path) -> dict:
    """One bad value per parameter, bad whoever runs the test (a file where a folder is expected)."""
    a_file = tmp / "a-file.txt"
    a_file.write_text("not a folder")
    return {"dataset": "mvtc", "root": str(a_file), "categories": ["no_such_category"], "variant": "saa++",
            "behaviour": "papper", "models": "offical", "device": "gpu", "n_images": 0, "out_dir": str(a_file),
            "seed": -1, "saliency_backbone": "resnet", "capstone_root": str(a_file),
            "capstone_category": "no_such_category", "capstone_object": "object"}


#: words the fix of each parameter's message holds
FIX = {"dataset": "mvtec", "root": "folder", "categories": "washer", "variant": "saa_plus", "behaviour": "'paper'",
       "models": "auto", "device": "'cpu'", "n_images": "e.g. 2", "out_dir": "None", "seed": "e.g. 0",
       "saliency_backbone": "tf_efficientnet_lite0", "capstone_root": "folder", "capstone_category": "gasket",
       "capstone_object": "'foreground'"}


def test_every_parameter_has_a_bad_value_and_a_fix(tmp_path):
    assert set(bad_values(tmp_path)) == set(PARAMETERS) == set(FIX) == set(GOOD)


def test_the_defaults_pass_and_auto_models_are_accepted():
    check_parameters(GOOD)
    check_parameters(models="auto", categories="washer", n_images=1, seed=3, out_dir="")


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_a_bad_value_is_one_line_naming_the_parameter_value_and_fix(tmp_path, name):
    value = bad_values(tmp_path)[name]
    with pytest.raises(ParameterError) as info:
        check_parameters({**GOOD, name: value, "unrelated": object()})
    message = str(info.value)
    assert message.startswith(f"{name} = {value!r}: ") and "\n" not in message and FIX[name] in message


@pytest.mark.parametrize("name,value,says", [
    ("n_images", True, "whole number"), ("n_images", 2.5, "whole number"), ("seed", "0", "whole number"),
    ("categories", [], "no category"), ("categories", "washer,nope", "'nope'"), ("categories", [3], "list"),
    ("models", "sam=/no/such/sam.pth,gdino=/no/such/g.pth", "/no/such/sam.pth"), ("models", "sam:/x", "model set"),
    ("device", "cuda:x", "device"), ("root", "", "folder")])
def test_more_bad_values(name, value, says):
    with pytest.raises(ParameterError, match=f"^{name} = .*{says}"):
        check_parameters({**GOOD, name: value})


def test_a_data_set_that_is_not_at_its_default_place_names_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/mvtec here
    with pytest.raises(ParameterError, match=r"^root = None: the mvtec data set is not at .*data/mvtec"):
        check_parameters(dataset="mvtec", root=None)


def test_capstone_category_is_one_of_its_folder_data_set(tmp_path):
    import numpy as np
    from PIL import Image

    (tmp_path / "mine").mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "mine" / "001.png")
    check_parameters(capstone_root=str(tmp_path / "mine"), capstone_category="mine", capstone_object="image")
    with pytest.raises(ParameterError, match=r"^capstone_category = 'gasket': not a category of the folder data set "
                                             r".*mine; use one of mine, or None"):
        check_parameters(capstone_root=str(tmp_path / "mine"), capstone_category="gasket")
    with pytest.raises(ParameterError, match=r"^capstone_root = .*: .*no images found.*or None"):
        check_parameters(capstone_root=str(tmp_path), capstone_category="x")  # the folder is said, not the category


def test_cuda_without_a_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ParameterError, match=r"^device = 'cuda': no CUDA GPU is visible here; use 'cpu' or 'auto'$"):
        check_parameters(device="cuda")


def test_labels_name_the_option_that_set_the_value():
    with pytest.raises(ParameterError, match=r"^--max-images 0: not a whole number >= 1"):
        check_parameters(n_images=0, labels={"n_images": "--max-images"})
    with pytest.raises(TypeError, match="no parameter n_image"):
        check_parameters(n_image=2)


# ------------------------------------------------------------------------------------------------- the notebooks
def _parameters_cell(nb) -> int:
    return next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))


def notebook_parameters(name: str) -> list[str]:
    """The names the parameters cell of notebook ``name`` assigns, in order."""
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    return [t.id for node in ast.parse(nb.cells[_parameters_cell(nb)].source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)]


#: (notebook, parameter) run under papermill with a bad value: every parameter each notebook has
PAPERMILL_CASES = [(nb, name) for nb in PAPERMILL_NOTEBOOKS for name in notebook_parameters(nb)]


def _first_code_cell_after(nb, index: int) -> int:
    return next(i for i in range(index + 1, len(nb.cells)) if nb.cells[i].cell_type == "code")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_checks_its_parameters_in_the_set_up_cell(name):
    """The first code cell after the parameters calls the check, before anything that loads a model or reads data;
    every parameter the notebook has is one the check knows."""
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    params = _parameters_cell(nb)
    names = set(notebook_parameters(name))
    assert names <= set(PARAMETERS), f"{name}: parameters without a check: {sorted(names - set(PARAMETERS))}"
    source = nb.cells[_first_code_cell_after(nb, params)].source
    lines = [line for line in source.splitlines() if line.strip() and not line.lstrip().startswith(("#", "%"))]
    call = next((i for i, line in enumerate(lines) if line.strip() == "workbook.check_parameters(globals())"), None)
    assert call is not None, f"{name}: the set-up cell does not call workbook.check_parameters(globals())"
    before = ast.parse("\n".join(lines[:call])).body
    quiet = [n for n in before if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
             and getattr(n.value.func, "attr", "") == "filterwarnings"]
    assert all(isinstance(n, (ast.Import, ast.ImportFrom)) or n in quiet for n in before), \
        f"{name}: only imports (and warning filters) may come before the check"


@pytest.fixture(scope="module")
def papermill_runs(tmp_path_factory):
    """``{(notebook, parameter): (the PapermillExecutionError or None, the executed notebook)}``: every notebook of
    :data:`PAPERMILL_NOTEBOOKS` with each bad value, run a few at a time."""
    import papermill as pm

    tmp = tmp_path_factory.mktemp("papermill")
    bad = bad_values(tmp)

    def run(case):
        notebook, name = case
        out = tmp / f"{notebook}-{name}.ipynb"
        try:
            pm.execute_notebook(str(NB_DIR / f"{notebook}.ipynb"), str(out), parameters={name: bad[name]},
                                cwd=str(NB_DIR), progress_bar=False, log_output=False, start_timeout=120,
                                execution_timeout=PAPERMILL_TIMEOUT)
            error = None
        except pm.PapermillExecutionError as err:
            error = err
        return case, (error, nbformat.read(out, as_version=4))

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(pool.map(run, PAPERMILL_CASES)), bad


def test_papermill_covers_every_parameter_of_two_notebooks():
    assert len(PAPERMILL_NOTEBOOKS) >= 2
    for notebook in PAPERMILL_NOTEBOOKS:
        assert {name for nb, name in PAPERMILL_CASES if nb == notebook} >= set(GOOD) - {
            "capstone_root", "capstone_category", "capstone_object"}


@pytest.mark.parametrize("notebook,name", PAPERMILL_CASES)
def test_papermill_with_a_bad_parameter_fails_in_the_set_up_cell(papermill_runs, notebook, name):
    runs, bad = papermill_runs
    error, executed = runs[(notebook, name)]
    assert error is not None, f"{notebook} ran to the end with {name} = {bad[name]!r}"
    assert error.ename == "ParameterError" and error.evalue.startswith(f"{name} = {bad[name]!r}: ")
    assert error.traceback == [f"ParameterError: {error.evalue}"]  # one line, no traceback
    source = nbformat.read(NB_DIR / f"{notebook}.ipynb", as_version=4)
    setup_source = source.cells[_first_code_cell_after(source, _parameters_cell(source))].source
    assert error.source == setup_source, f"{notebook}: failed in another cell than the set-up cell"
    setup = next(i for i, c in enumerate(executed.cells) if c.cell_type == "code" and c.source == setup_source)
    later = [c for c in executed.cells[setup + 1:] if c.cell_type == "code" and c.get("execution_count")]
    assert not later, f"{notebook}: cells after the set-up cell ran"


# --------------------------------------------------------------------------------------------------- saa report
@pytest.mark.parametrize("argv,says", [
    (["--dataset", "mvtc"], "--dataset mvtc: not a data set"),
    (["--root", "{file}"], "--root {file}: a file, not a folder"),
    (["--categories", "washer,nope"], "--categories washer,nope: 'nope' is not in the synthetic data set"),
    (["--models", "offical"], "--models offical: not a model set"),
    (["--device", "gpu"], "--device gpu: not a device"),
    (["--max-images", "0"], "--max-images 0: not a whole number >= 1"),
    (["--out", "{file}"], "--out {file}: is a file, not a folder")])
def test_saa_report_with_a_bad_parameter_exits_2_before_any_notebook(tmp_path, capsys, monkeypatch, argv, says):
    import papermill as pm

    from saa_lib.cli import main

    monkeypatch.setattr(pm, "execute_notebook", lambda *a, **k: pytest.fail("a notebook ran"))
    a_file = tmp_path / "a-file.txt"
    a_file.write_text("x")
    argv = [a.format(file=a_file) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "report")]
    rc = main(["report", "--device", "cpu", *argv])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith(f"saa report: error: {says.format(file=a_file)}")
    assert not (tmp_path / "report").exists()
