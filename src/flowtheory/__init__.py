"""flowtheory: a reproducible replication of Feinman & Parthasarathy, "A Linear Systems Theory of
Normalizing Flows" (arXiv 1907.06496).

Modules: :mod:`~flowtheory.flows` (flows with explicit Jacobians), :mod:`~flowtheory.stabilizers`
(Tikhonov penalties and noise on one λ axis), :mod:`~flowtheory.training`,
:mod:`~flowtheory.covariance` (local covariance and oracles), :mod:`~flowtheory.components` (the
authors' un-whitened components), :mod:`~flowtheory.datasets` and :mod:`~flowtheory.mnist`,
:mod:`~flowtheory.claims` (executable claim checks), and the pipeline glue
(:mod:`~flowtheory.config`, :mod:`~flowtheory.paths`, :mod:`~flowtheory.pipeline`,
:mod:`~flowtheory.storage`, :mod:`~flowtheory.summary`, :mod:`~flowtheory.dvc_export`).
"""

__version__ = "0.1.0"
