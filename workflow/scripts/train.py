"""Train stage: one (experiment, stabilizer, seed) run; divergence is a result, not an error."""
from flowtheory import jobs, pipeline

jobs.run(
    snakemake,
    lambda log: pipeline.train_run(
        dict(snakemake.params.spec),
        snakemake.input.data,
        snakemake.output.model,
        snakemake.output.history,
        snakemake.output.metrics,
        log=log,
    ),
)
