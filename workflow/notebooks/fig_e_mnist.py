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
# global PCA eigenvalues, per run. Right, from the first stabilized run: the global PCA directions
# (top row, the same for every digit), then one row per digit class: an example digit, its local
# principal directions v1, v2 (un-whitened components, docs/theory.md §3), and the traversal
# x(t) = g(f(x) + t σ u1) along its top component (u1 the latent singular vector paired with v1, σ
# the analysed points' latent std along u1). Whether the local directions are local is the claim
# `mnist_components_local` (docs/measurements.md#mnist-flow).

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
N_DIRS = 2  # local directions shown per digit
MAX_CLASSES = 10


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


def shown_run():
    """The first stabilized run (any run if none is stabilized) whose directions are square images."""
    keys = [k for k in sorted(runs) if k[1] != "none"] + [k for k in sorted(runs) if k[1] == "none"]
    for key in keys:
        r = runs[key]
        d = r["directions"].shape[1] if r["directions"].ndim == 3 else 0
        side = math.isqrt(d)
        if d and side * side == d and len(r["c"]):
            return key, r, side
    return None, None, 0


def image(ax, values, side, title=None, ylabel=None, diverging=True):
    v = np.asarray(values, dtype=float).reshape(side, side)
    if diverging:
        lim = np.nanmax(np.abs(v)) if np.isfinite(v).any() else 1.0
        ax.imshow(v, cmap="RdBu_r", vmin=-lim, vmax=lim)
    else:
        ax.imshow(v, cmap="gray_r", vmin=0.0, vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=7)


def pictures(fig, grid, key, r, side, classes):
    """Global PCA directions, then per class: digit, local v1..v_N_DIRS, traversal."""
    dirs, labels = r["directions"], r["c"].astype(int)
    n_dirs = min(N_DIRS, dirs.shape[2])
    axes = r.get("pca_axes")
    steps = r.get("traversal_steps", np.zeros(0))
    trav_points = list(r.get("traversal_points", np.zeros(0, dtype=int)))
    trav = r.get("traversals")
    for k in range(n_dirs if axes is not None else 0):
        image(fig.add_subplot(grid[0, 1 + k]), axes[k], side, title=f"global PC{k + 1}")
    for row, lab in enumerate(classes, start=1):
        p = int(np.flatnonzero(labels == lab)[0])
        first = row == 1
        image(fig.add_subplot(grid[row, 0]), r["x"][p], side, "example" if first else None, f"digit {lab}", False)
        for k in range(n_dirs):
            a = fig.add_subplot(grid[row, 1 + k])
            image(a, dirs[p, :, k], side, title=f"local v{k + 1}" if first else None)
            if axes is not None:
                a.set_xlabel(f"|cos PC{k + 1}| {abs(dirs[p, :, k] @ axes[k]):.2f}", fontsize=6)
        if trav is not None and p in trav_points:
            imgs = trav[trav_points.index(p)]
            for j, t in enumerate(steps):
                title = f"t = {t:+g}" if first else None
                image(fig.add_subplot(grid[row, 2 + N_DIRS + j]), imgs[j], side, title=title, diverging=False)
    fig.suptitle(f"{key[0]}/{key[1]}/seed{key[2]}: local directions and traversals along the top component", fontsize=9)


# %%
key, r, side = shown_run()
if shown and key is not None:
    classes = sorted(set(r["c"].astype(int).tolist()))[:MAX_CLASSES]
    n_steps = len(r.get("traversal_steps", np.zeros(0)))
    n_cols = 1 + N_DIRS + 1 + n_steps  # digit, directions, spacer, traversal
    fig = plt.figure(figsize=(5 + 1.05 * n_cols, 1.1 * (len(classes) + 1) + 0.6))
    outer = fig.add_gridspec(1, 2, width_ratios=[4.5, 1.05 * n_cols], wspace=0.15)
    spectrum(fig.add_subplot(outer[0, 0]))
    grid = outer[0, 1].subgridspec(len(classes) + 1, n_cols, width_ratios=[1] * (1 + N_DIRS) + [0.3] + [1] * n_steps)
    pictures(fig, grid, key, r, side, classes)
elif shown:
    fig, ax = plt.subplots(figsize=(7, 4))
    spectrum(ax)
else:
    fig = figures.nothing("fig_e_mnist")
figures.save(fig, smk.output.png, smk.output.pdf)
