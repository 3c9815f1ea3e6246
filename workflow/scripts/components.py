"""Rule ``components``: for every run of one experiment, the authors' un-whitened components,
batched (flowtheory.stages.components)."""

from flowtheory.pipeline import jobs
from flowtheory.stages import components


def main(log):
    for r in snakemake.params.runs:
        log(f"run {r['stabilizer']}/seed{r['seed']}")
        components.run(
            dict(snakemake.params.cfg),
            snakemake.input.data,
            r["model"],
            r["run_metrics"],
            r["npz"],
            r["csv"],
            r["metrics"],
        )


jobs.run(snakemake, main)
