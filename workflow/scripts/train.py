"""Train stage: one (experiment, stabilizer, seed) run; divergence is a result, not an error."""
from flowtheory import jobs, runs

jobs.run(
    snakemake,
    lambda log: runs.train_run(
        dict(snakemake.params.spec),
        snakemake.input.data,
        snakemake.output.model,
        snakemake.output.history,
        snakemake.output.metrics,
        log=log,
    ),
)
