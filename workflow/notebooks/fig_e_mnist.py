# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Figure E: MNIST (paper claims 3 and 5)
# Every experiment on MNIST (or Fashion-MNIST; selected by data set kind, `paths.NOTEBOOK_SHOWS`).
# Left: variance spectrum of the un-whitened components (sorted), of the whitened latents and the
# global PCA eigenvalues, per run (colour: the stabilizer). Right, from the weakest stabilized run:
# the global PCA directions (top row, the same for every digit), then one row per digit class: an
# example digit, its local principal directions v1, v2 (un-whitened components, docs/theory.md §3),
# and the traversal x(t) = g(f(x) + t σ u1) along its top component (u1 the latent singular vector
# paired with v1, σ the analysed points' latent std along u1). Whether the local directions are local
# is the claim `mnist_components_local` (docs/measurements.md#mnist-flow).

# %%
import pandas as pd

from flowtheory.stages import figures, paperfigs

smk = figures.context(globals(), "fig_e_mnist")
runs, _ = figures.shown_runs(smk)
spectra = pd.read_csv(smk.input.component_spectra)
spectra = spectra[spectra.experiment.isin(list(smk.params.experiments))]
npz = figures.load_runs(smk.params.components, "components")

# %%
fig = paperfigs.mnist(spectra, runs, npz) if len(runs) else figures.nothing("fig_e_mnist")
figures.save(fig, smk.output.png, smk.output.pdf)
