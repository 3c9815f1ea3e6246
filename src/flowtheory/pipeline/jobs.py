"""Glue for ``workflow/scripts``: one torch thread, a log file, and one clear error line.

Each script is ``jobs.run(snakemake, lambda log: <one package call>)``. The full traceback goes to
the rule's log; the console gets ``flowtheory: error: <message>`` and the job exits non-zero, so
Snakemake deletes its partial outputs.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable

__all__ = ["run", "set_threads"]


def set_threads(n: int = 1) -> None:
    """One torch thread per job: parallelism comes from Snakemake jobs, and results are bitwise stable.

    Jobs that do not use torch (data, summaries, claims) do not import it for this: the import is
    most of such a job's time (``results/benchmarks.md``). A torch imported later reads
    ``OMP_NUM_THREADS``.
    """
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


def run(smk, job: Callable[[Callable[[str], None]], object]) -> None:
    set_threads(max(1, int(getattr(smk, "threads", 1))))
    with open(smk.log[0], "w", buffering=1) as fh:

        def log(message: str) -> None:
            print(message, file=fh, flush=True)

        try:
            job(log)
        except Exception as err:  # noqa: BLE001 - every failure becomes one clear line
            traceback.print_exc(file=fh)
            message = " ".join(str(err).split()) or type(err).__name__  # one line, whatever the error
            print(f"flowtheory: error in {smk.rule}: {message}", file=sys.stderr, flush=True)
            sys.exit(1)
