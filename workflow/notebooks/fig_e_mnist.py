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
# global PCA eigenvalues, per run. Right: leading local principal directions v_k(x) (28 × 28) at
# example images of several classes, from the first stabilized run.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from flowtheory.stages import figures

smk = figures.context(globals(), "fig_e_mnist")
shown = smk.params.experiments
spectra = pd.read_csv(smk.input.component_spectra)
spectra = spectra[spectra.experiment.isin(list(shown))]
runs = figures.load_runs(smk.params.components, "components")


def spectrum(ax):
    for (exp, stab, _seed), g in spectra.groupby(["experiment", "stabilizer", "seed"]):
        run = f"{stab}" if len(shown) == 1 else f"{exp}/{stab}"
        ax.plot(np.sort(g.var_yhat.to_numpy())[::-1], label=f"un-whitened ŷ ({run})")
        ax.plot(np.sort(g.var_y.to_numpy())[::-1], ls="--", label=f"whitened y ({run})")
    if len(spectra):
        first = spectra[spectra.experiment == spectra.experiment.iloc[0]]
        ax.plot(np.sort(first.groupby("component").pca_eigenvalue.first().to_numpy())[::-1], "k:", label="global PCA")
    # global PCA has only as many non-zero eigenvalues as the rank of the data; clip the axis there
    ax.set(
        yscale="log", ylim=(1e-8, None), xlabel="component (sorted)", ylabel="variance", title="MNIST variance spectra"
    )
    ax.legend(fontsize=7)


def directions(fig, grid, n_dirs, n_digits):
    stab_runs = [k for k in sorted(runs) if k[1] != "none"]
    if not stab_runs:
        return
    r = runs[stab_runs[0]]
    side = math.isqrt(r["directions"].shape[1])
    if side * side != r["directions"].shape[1]:
        return  # not square images: no pictures of the directions
    labels = r["c"].astype(int)
    picks = [int(np.flatnonzero(labels == lab)[0]) for lab in sorted(set(labels))[:n_digits]]
    for i, p in enumerate(picks):
        for k in range(min(n_dirs, r["directions"].shape[2])):
            a = fig.add_subplot(grid[i, 2 + k])
            a.imshow(r["directions"][p, :, k].reshape(side, side), cmap="RdBu_r")
            a.set_xticks([])
            a.set_yticks([])
            if i == 0:
                a.set_title(f"v{k + 1}", fontsize=8)
            if k == 0:
                a.set_ylabel(f"digit {labels[p]}", fontsize=8)


# %%
if shown:
    n_dirs, n_digits = 4, 5
    fig = plt.figure(figsize=(14, 5))
    grid = fig.add_gridspec(n_digits, 2 + n_dirs, width_ratios=[4, 0.3] + [1] * n_dirs)
    spectrum(fig.add_subplot(grid[:, 0]))
    directions(fig, grid, n_dirs, n_digits)
else:
    fig = figures.nothing("fig_e_mnist")
figures.save(fig, smk.output.png, smk.output.pdf)
