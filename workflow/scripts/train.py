"""Rule ``train``: one (experiment, stabilizer, seed) run; divergence is a result, not an error (flowtheory.stages.train)."""

from flowtheory.pipeline import jobs
from flowtheory.stages import train

jobs.run(
    snakemake,
    lambda log: train.run(
        dict(snakemake.params.spec),
        snakemake.input.data,
        snakemake.output.model,
        snakemake.output.history,
        snakemake.output.metrics,
        log=log,
    ),
)
