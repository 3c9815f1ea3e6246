"""Rule ``claims``: every claim of the paper as an executable check on every experiment it applies to
(flowtheory.stages.claims, paper_map.yaml)."""

from flowtheory.pipeline import jobs
from flowtheory.stages import claims

jobs.run(
    snakemake,
    lambda log: claims.write_claims(
        snakemake.input.paper_map,
        {k: snakemake.input[k] for k in claims.SUMMARY_KEYS},
        dict(snakemake.params.experiments),
        snakemake.output.json,
        snakemake.output.md,
        snakemake.output.metrics,
        log=log,
        chaos_path=snakemake.input.get("chaos"),
        config_digest=snakemake.params.config_digest,
        experiment_digests=dict(snakemake.params.experiment_digests),
    ),
)
