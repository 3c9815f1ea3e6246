"""One module per pipeline stage, named like its Snakemake rule and its script in
``workflow/scripts/``: data, train, analysis, components, summarize, claims and figures."""
