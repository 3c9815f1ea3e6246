"""Rule ``analysis``: for every run of one experiment, the flow's local covariance against kNN and
closed-form oracles, and its exact gap to the optimum (flowtheory.stages.analysis)."""

from flowtheory.pipeline import jobs
from flowtheory.stages import analysis

jobs.run(
    snakemake,
    lambda log: analysis.run_many(
        dict(snakemake.params.cfg),
        snakemake.params.intrinsic_dim,
        snakemake.input.data,
        snakemake.params.runs,
        log,
        dataset=dict(snakemake.params.dataset),
        data_seed=snakemake.params.data_seed,
    ),
)
