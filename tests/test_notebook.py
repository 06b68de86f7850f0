"""The Python API in a real Jupyter kernel (nbclient + ipykernel): the live progress bar and
the trial lines reach the notebook's outputs, and an interrupt closes the running trial."""

from __future__ import annotations

import json

import pytest

# Without Jupyter's packages: skipped here, failed under CI (conftest.py, the `needs` marker).
pytestmark = [
    pytest.mark.slow,
    pytest.mark.needs(
        "nbformat", "nbclient", "ipykernel", "ipywidgets", install="pip install -e '.[dev]'"
    ),
]

RUN_CELL = """
import search
result = search.run({config!r}, trials=2, data_dir={data!r}, export=False)
print("FINISHED", result.finished, result.counts["failed"])
"""
# The kernel's own interrupt (what the notebook's stop button sends) arrives mid-trial.
INTERRUPT_CELL = """
import os, signal, threading
def stop_when_training():
    import sqlite3, time
    while True:  # a trial past sampling (its parameters stored): it is training
        with sqlite3.connect("studies/fsearch.db") as c:
            if c.execute(
                "SELECT COUNT(*) FROM trials t WHERE t.state = 'RUNNING' AND EXISTS "
                "(SELECT 1 FROM trial_params p WHERE p.trial_id = t.trial_id)"
            ).fetchone()[0]:
                break
        time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGINT)
threading.Thread(target=stop_when_training, daemon=True).start()
try:
    search.run({config!r}, trials=50, data_dir={data!r}, export=False)
except search.StudyInterrupted as e:
    print("STOPPED", e.finished, e.target, isinstance(e, KeyboardInterrupt))
"""


def _texts(cell) -> str:
    """Everything a cell showed: streams, and the text of rich's display outputs."""
    parts = []
    for output in cell.outputs:
        if output.get("output_type") == "stream":
            parts.append(output["text"])
        else:
            parts.append(json.dumps(output.get("data", {})))
    return "\n".join(parts)


def test_notebook_shows_bar_and_trial_lines_and_an_interrupt_closes_the_trial(
    tiny_config, real_data_dir
):
    import nbclient
    import nbformat

    # Six-epoch trials: the interrupt lands inside one, not between two.
    tiny_config.write_text(tiny_config.read_text().replace("epochs = 2", "epochs = 6"))
    cfg, data = str(tiny_config), str(real_data_dir)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(RUN_CELL.format(config=cfg, data=data)),
        nbformat.v4.new_code_cell(INTERRUPT_CELL.format(config=cfg, data=data)),
        nbformat.v4.new_code_cell(RUN_CELL.format(config=cfg, data=data).replace("=2", "=3")),
    ]
    nbclient.NotebookClient(nb, timeout=240, kernel_name="python3").execute()
    first, interrupted, resumed = (_texts(c) for c in nb.cells)
    assert "FINISHED 2 0" in first
    assert "(new) on sqlite" in first and "#0 " in first and "#1 " in first  # trial lines
    assert "jupyter.widget-view" in first  # the live progress bar, as an ipywidgets Output
    assert "STOPPED" in interrupted and "True" in interrupted
    assert "FINISHED 3 1" in resumed  # the interrupted trial was closed as FAIL, then resumed
