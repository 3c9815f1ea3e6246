# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Figure A: the linear theory (paper claims 1 and 5)
# A linear flow y = W(x − b) trained by maximum likelihood on a 2-D Gaussian whitens it
# (WᵀW = Σ̂⁻¹), and its un-whitened components are the PCA scores. Left: centred data with PCA axes
# (arrows of length √eigenvalue). Middle: the flow's latents (whitened, arbitrarily rotated).
# Right: un-whitened components against PCA scores.

# %%
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from flowtheory.pipeline import storage
from flowtheory.stages import figures

smk = figures.context(globals(), "fig_a_linear")
runs = figures.load_runs(smk.input.components, "components")
analysis = storage.load_json(smk.input.analysis_summary).get("gaussian_linear", {})
key = next(k for k in sorted(runs) if k[1] == "none")
r = runs[key]

# %%
x = r["x"] - r["x"].mean(0)
evals, evecs = np.linalg.eigh(np.cov(x.T, bias=True))
scores = x @ evecs[:, ::-1]
fig, ax = plt.subplots(1, 4, figsize=(15, 3.6))
ax[0].scatter(*x.T, s=2, alpha=0.3)
for val, vec in zip(evals, evecs.T, strict=False):
    ax[0].annotate(
        "", xy=np.sqrt(val) * vec * 2, xytext=(0, 0), arrowprops={"arrowstyle": "->", "lw": 2, "color": "C3"}
    )
ax[0].set(title="centred data + PCA axes", aspect="equal")
ax[1].scatter(*r["y"].T, s=2, alpha=0.3, color="C1")
ax[1].set(title=f"latents y = f(x) ({key[1]}, seed {key[2]})", aspect="equal")
for k in range(2):
    sign = np.sign(np.corrcoef(r["yhat"][:, k], scores[:, k])[0, 1])
    ax[2].scatter(scores[:, k], sign * r["yhat"][:, k], s=2, alpha=0.3, label=f"component {k + 1}")
lim = np.abs(scores).max()
ax[2].plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
ax[2].set(title="un-whitened components vs PCA scores", xlabel="PCA score", ylabel="ŷ (sign-matched)")
ax[2].legend(markerscale=4)
rows = [
    (s, seed, m.get("wtw_relerr_unshrunk"), m.get("wtw_relerr"))
    for s, seeds in analysis.items()
    for seed, m in seeds.items()
]
labels = sorted({s for s, *_ in rows})
for i, lab in enumerate(labels):
    vals = [v for s, _, v, _ in rows if s == lab]
    shr = [v for s, _, _, v in rows if s == lab]
    ax[3].scatter([i - 0.1] * len(vals), vals, color="C0", label="vs Σ̂⁻¹" if i == 0 else None)
    ax[3].scatter([i + 0.1] * len(shr), shr, color="C3", marker="x", label="vs (Σ̂+λI)⁻¹" if i == 0 else None)
ax[3].set_xticks(range(len(labels)), labels, rotation=30)
ax[3].set(yscale="log", title="‖WᵀW − target‖/‖target‖", ylabel="relative error")
ax[3].axhline(0.02, color="k", ls=":", lw=0.8)
ax[3].legend()
sns.despine(fig)
fig.tight_layout()
figures.save(fig, smk.output.png, smk.output.pdf)
