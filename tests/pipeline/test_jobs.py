"""Job glue: one thread, one error line, and no torch import for jobs that do not use it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from flowtheory.pipeline import jobs
from pipeline_project import fresh_python


def test_set_threads_sets_torch_threads_when_torch_is_loaded():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # the autouse fixture already set 1: start from something else
        jobs.set_threads(3)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("module", ["stages.data", "stages.summarize", "stages.claims"])
def test_jobs_without_torch_do_not_import_it(module):
    code = (
        f"import sys; import flowtheory.{module}; from flowtheory.pipeline import jobs; jobs.set_threads(1); "
        "import os; print('torch' in sys.modules, os.environ['OMP_NUM_THREADS'])"
    )
    assert fresh_python(code).split() == ["False", "1"]


def test_run_turns_an_error_into_one_line_and_exit_1(tmp_path, capsys):
    smk = SimpleNamespace(threads=1, log=[str(tmp_path / "job.log")], rule="demo")

    def job(log):
        log("working")
        raise ValueError("bad\ninput   here")

    with pytest.raises(SystemExit) as exc:
        jobs.run(smk, job)
    assert exc.value.code == 1
    assert capsys.readouterr().err == "flowtheory: error in demo: bad input here\n"
    text = (tmp_path / "job.log").read_text()
    assert text.startswith("working\n") and "Traceback" in text and "ValueError" in text
