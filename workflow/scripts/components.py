"""Rule ``components``: the authors' un-whitened components, batched (flowtheory.stages.components)."""

from flowtheory.pipeline import jobs
from flowtheory.stages import components

jobs.run(
    snakemake,
    lambda log: components.run(
        dict(snakemake.params.cfg),
        snakemake.input.data,
        snakemake.input.model,
        snakemake.input.run_metrics,
        snakemake.output.npz,
        snakemake.output.csv,
        snakemake.output.metrics,
    ),
)
