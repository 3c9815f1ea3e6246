"""Components stage: the authors' un-whitened components (paper.md §3), batched."""
from flowtheory import jobs, pipeline

jobs.run(
    snakemake,
    lambda log: pipeline.components_run(
        dict(snakemake.params.cfg),
        snakemake.input.data,
        snakemake.input.model,
        snakemake.input.run_metrics,
        snakemake.output.npz,
        snakemake.output.csv,
        snakemake.output.metrics,
    ),
)
