"""Rules ``summarize_<stage>``: per-run metrics in one JSON and tidy tables (flowtheory.stages.summarize)."""

from flowtheory.pipeline import jobs
from flowtheory.stages import summarize


def main(log):
    stage, inp, out = snakemake.params.stage, snakemake.input, snakemake.output
    if stage == "train":
        summarize.summarize_train(list(inp.metrics), list(inp.history), out.json, out.csv)
    elif stage == "components":
        summarize.summarize_components(list(inp.metrics), out.json, out.csv)
    else:
        summarize.summarize_metrics(list(inp.metrics), stage, out.json)


jobs.run(snakemake, main)
