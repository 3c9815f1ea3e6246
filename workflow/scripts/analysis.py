"""Rule ``analysis``: the flow's local covariance against kNN and closed-form oracles (flowtheory.stages.analysis)."""

from flowtheory.pipeline import jobs
from flowtheory.stages import analysis

jobs.run(
    snakemake,
    lambda log: analysis.run(
        dict(snakemake.params.cfg),
        snakemake.params.intrinsic_dim,
        snakemake.input.data,
        snakemake.input.model,
        snakemake.input.run_metrics,
        snakemake.output.points,
        snakemake.output.metrics,
    ),
)
