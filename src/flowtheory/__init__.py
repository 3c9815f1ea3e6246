"""flowtheory: a reproducible replication of Feinman & Parthasarathy, "A Linear Systems Theory of
Normalizing Flows" (arXiv 1907.06496).

Four subpackages, each importing only the ones above it:

* :mod:`flowtheory.science`: the math, no file I/O: flows with explicit Jacobians, stabilizers
  (Tikhonov penalties and noise on one λ axis), training, local covariance, the authors'
  un-whitened components, statistics;
* :mod:`flowtheory.datasets`: toy manifolds and MNIST, each with what is known of it in closed form;
* :mod:`flowtheory.pipeline`: config and its checks, path templates shared by Snakemake and DVC,
  byte-stable storage and checkpoints, job wrappers, the ``dvc.yaml`` generator, hooks;
* :mod:`flowtheory.stages`: one module per pipeline stage, named like its rule and script.
"""

__version__ = "0.1.0"
