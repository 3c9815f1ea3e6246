"""Data stage: generate or load one data set (flowtheory.datasets / flowtheory.mnist)."""
from flowtheory import datasets, jobs

jobs.run(
    snakemake,
    lambda log: datasets.make_data_file(snakemake.params.spec, snakemake.params.seed, snakemake.output[0]),
)
