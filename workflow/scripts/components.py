"""Components stage: the authors' un-whitened components (paper.md §3), batched."""
from flowtheory import extraction, jobs

jobs.run(
    snakemake,
    lambda log: extraction.components_run(
        dict(snakemake.params.cfg),
        snakemake.input.data,
        snakemake.input.model,
        snakemake.input.run_metrics,
        snakemake.output.npz,
        snakemake.output.csv,
        snakemake.output.metrics,
    ),
)
