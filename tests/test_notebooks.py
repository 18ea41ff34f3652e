"""The notebooks are stored without outputs and run from top to bottom on tiny settings."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import requires_fashion_mnist

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


@pytest.mark.parametrize("name", ["explore", "augmentation"])
def test_notebook_is_stored_clean(name):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
            # Library code lives in gan_jax: no classes here, only tiny display helpers.
            assert not any(line.startswith("class ") for line in cell.source.splitlines())


@requires_fashion_mnist
# Both notebooks run in the slow suite (60-70 s each on 2 cores, most of it compiling the
# Inception network for their FID); both are checked stored clean above in the default one.
@pytest.mark.parametrize("name, expected", [
    pytest.param("explore", "{'fid16': ", marks=pytest.mark.slow),
    pytest.param("augmentation", "| real+gan:0.5 | 120 |", marks=pytest.mark.slow)])
def test_notebook_runs_on_tiny_settings(name, expected, monkeypatch):
    monkeypatch.setenv("GAN_JAX_NOTEBOOK_TINY", "1")
    monkeypatch.delenv("GAN_JAX_RUN", raising=False)
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    printed = "".join(output.get("text", "") for cell in notebook.cells
                      if cell.cell_type == "code" for output in cell.outputs)
    assert expected in printed
    figures = [output for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.outputs if "image/png" in output.get("data", {})]
    assert figures, "no figure was drawn"
