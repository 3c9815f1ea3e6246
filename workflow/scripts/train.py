"""Rule ``train``: every (stabilizer, seed) run of one experiment, runs of one stabilizer kind as one
batched ensemble; divergence is a result, not an error (flowtheory.stages.train)."""

from flowtheory.pipeline import jobs
from flowtheory.stages import train

jobs.run(snakemake, lambda log: train.run_many(list(snakemake.params.runs), snakemake.input.data, log=log))
