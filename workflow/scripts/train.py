"""Rule ``train``: every (stabilizer, seed) run of one experiment, one after the other; divergence is
a result, not an error (flowtheory.stages.train)."""

from flowtheory.pipeline import jobs
from flowtheory.stages import train


def main(log):
    for r in snakemake.params.runs:
        train.run(dict(r["spec"]), snakemake.input.data, r["model"], r["history"], r["metrics"], log=log)


jobs.run(snakemake, main)
