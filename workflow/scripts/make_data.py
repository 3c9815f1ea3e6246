"""Data stage: generate or load one data set (flowtheory.datasets / flowtheory.mnist)."""
from flowtheory import jobs, pipeline

jobs.run(snakemake, lambda log: pipeline.make_data(snakemake.params.spec, snakemake.params.seed, snakemake.output[0]))
