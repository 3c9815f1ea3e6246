"""Rule ``data``: generate or load one data set (flowtheory.stages.data)."""

from flowtheory.pipeline import jobs
from flowtheory.stages import data

jobs.run(
    snakemake,
    lambda log: data.run(snakemake.params.spec, snakemake.params.seed, snakemake.output[0]),
)
