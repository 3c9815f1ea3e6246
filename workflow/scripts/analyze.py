"""Analysis stage: the flow's local covariance against kNN and closed-form oracles."""
from flowtheory import analysis, jobs

jobs.run(
    snakemake,
    lambda log: analysis.analyze_run(
        dict(snakemake.params.cfg),
        snakemake.params.kind,
        snakemake.input.data,
        snakemake.input.model,
        snakemake.input.run_metrics,
        snakemake.output.points,
        snakemake.output.metrics,
    ),
)
