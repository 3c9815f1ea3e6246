# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Figure A: the linear theory (paper claims 1 and 5)
# A linear flow y = W(x − b) trained by maximum likelihood on a Gaussian whitens it (WᵀW = Σ̂⁻¹),
# and its un-whitened components are the PCA scores. One row per experiment with a linear flow on a
# Gaussian of known covariance (selected by these properties, `paths.NOTEBOOK_SHOWS`), drawn from
# its unregularized run (else its first run). Left: centred data with PCA axes (arrows of length
# 2√eigenvalue; for d ≠ 2 the data on its two leading PCA axes). Second: the flow's latents
# (whitened, arbitrarily rotated; y₁, y₂). Third: un-whitened components against PCA scores.
# Right: ‖WᵀW − target‖/‖target‖ per stabilizer against Σ̂⁻¹ and against the shrunk (Σ̂ + λI)⁻¹.

# %%
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from flowtheory.pipeline import storage
from flowtheory.stages import figures

smk = figures.context(globals(), "fig_a_linear")
shown = smk.params.experiments
runs = figures.load_runs(smk.params.components, "components")
analysis = storage.load_json(smk.input.analysis_summary)


def _sign(a, b):
    c = np.corrcoef(a, b)[0, 1] if np.std(a) > 0 and np.std(b) > 0 else 1.0
    return 1.0 if not np.isfinite(c) or c == 0 else float(np.sign(c))


def row(ax, exp):
    keys = sorted(k for k in runs if k[0] == exp)
    key = next((k for k in keys if k[1] == "none"), keys[0])
    r = runs[key]
    x = r["x"] - r["x"].mean(0)
    d = x.shape[1]
    evals, evecs = np.linalg.eigh(np.atleast_2d(np.cov(x.T, bias=True)))
    evals, evecs = np.clip(evals[::-1], 0, None), evecs[:, ::-1]  # decreasing
    scores = x @ evecs
    if d == 2:
        ax[0].scatter(*x.T, s=2, alpha=0.3)
        arrows = zip(evals, evecs.T, strict=True)
        ax[0].set(title=f"{exp}: centred data + PCA axes", aspect="equal")
    else:  # the data on its (up to) two leading PCA axes, which are then the plot's axes
        ax[0].scatter(*figures.first_two(scores).T, s=2, alpha=0.3)
        arrows = zip(evals[:2], np.eye(2)[: min(d, 2)], strict=True)
        ax[0].set(title=f"{exp}: centred data, leading PCA axes (d = {d})", aspect="equal" if d > 1 else "auto")
    for val, vec in arrows:
        ax[0].annotate(
            "", xy=np.sqrt(val) * vec * 2, xytext=(0, 0), arrowprops={"arrowstyle": "->", "lw": 2, "color": "C3"}
        )
    ax[1].scatter(*figures.first_two(r["y"]).T, s=2, alpha=0.3, color="C1")
    ax[1].set(title=f"latents y = f(x) ({key[1]}, seed {key[2]})", aspect="equal" if d > 1 else "auto")
    n_comp = min(d, r["yhat"].shape[1])
    for k in range(n_comp):
        sign = _sign(r["yhat"][:, k], scores[:, k])
        ax[2].scatter(scores[:, k], sign * r["yhat"][:, k], s=2, alpha=0.3, label=f"component {k + 1}")
    lim = np.abs(scores).max()
    ax[2].plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
    ax[2].set(title="un-whitened components vs PCA scores", xlabel="PCA score", ylabel="ŷ (sign-matched)")
    ax[2].legend(markerscale=4)
    rows = [
        (s, seed, m.get("wtw_relerr_unshrunk"), m.get("wtw_relerr"))
        for s, seeds in analysis.get(exp, {}).items()
        for seed, m in seeds.items()
    ]
    labels = sorted({s for s, *_ in rows})
    for i, lab in enumerate(labels):
        vals = [np.nan if v is None else v for s, _, v, _ in rows if s == lab]
        shr = [np.nan if v is None else v for s, _, _, v in rows if s == lab]
        ax[3].scatter([i - 0.1] * len(vals), vals, color="C0", label="vs Σ̂⁻¹" if i == 0 else None)
        ax[3].scatter([i + 0.1] * len(shr), shr, color="C3", marker="x", label="vs (Σ̂+λI)⁻¹" if i == 0 else None)
    ax[3].set_xticks(range(len(labels)), labels, rotation=30)
    ax[3].set(yscale="log", title="‖WᵀW − target‖/‖target‖", ylabel="relative error")
    ax[3].axhline(0.02, color="k", ls=":", lw=0.8)
    ax[3].legend()


# %%
if shown:
    fig, axes = plt.subplots(len(shown), 4, figsize=(15, 3.6 * len(shown)), squeeze=False)
    for i, exp in enumerate(shown):
        row(axes[i], exp)
    sns.despine(fig)
    fig.tight_layout()
else:
    fig = figures.nothing("fig_a_linear")
figures.save(fig, smk.output.png, smk.output.pdf)
