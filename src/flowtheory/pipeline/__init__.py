"""Pipeline glue: config and its checks, path templates shared by Snakemake and DVC, byte-stable
storage, checkpoints, job wrappers, the dvc.yaml generator and the on-success hook."""
