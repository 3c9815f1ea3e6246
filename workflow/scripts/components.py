"""Rule ``components``: for every run of one experiment, the authors' un-whitened components,
batched (flowtheory.stages.components)."""

from flowtheory.pipeline import jobs
from flowtheory.stages import components

jobs.run(
    snakemake,
    lambda log: components.run_many(dict(snakemake.params.cfg), snakemake.input.data, snakemake.params.runs, log),
)
