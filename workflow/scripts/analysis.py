"""Rule ``analysis``: for every run of one experiment, the flow's local covariance against kNN and
closed-form oracles (flowtheory.stages.analysis)."""

from flowtheory.pipeline import jobs
from flowtheory.stages import analysis


def main(log):
    for r in snakemake.params.runs:
        log(f"run {r['stabilizer']}/seed{r['seed']}")
        analysis.run(
            dict(snakemake.params.cfg),
            snakemake.params.intrinsic_dim,
            snakemake.input.data,
            r["model"],
            r["run_metrics"],
            r["points"],
            r["metrics"],
        )


jobs.run(snakemake, main)
