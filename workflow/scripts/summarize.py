"""Stage summaries: per-run metrics in one JSON and tidy tables (flowtheory.summary)."""
from flowtheory import jobs, summary


def main(log):
    stage, inp, out = snakemake.params.stage, snakemake.input, snakemake.output
    if stage == "train":
        summary.summarize_train(list(inp.metrics), list(inp.history), out.json, out.csv)
    elif stage == "components":
        summary.summarize_components(list(inp.metrics), out.json, out.csv)
    else:
        summary.summarize_metrics(list(inp.metrics), stage, out.json)


jobs.run(snakemake, main)
