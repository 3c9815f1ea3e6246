# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # The flow's local covariance against the exact oracle (paper claim 2)
# Every experiment of a nonlinear flow on a toy manifold whose tangent spaces are known in closed
# form (selected by these properties, `paths.NOTEBOOK_SHOWS`). Per stabilized run (Jacobian penalty
# or noise), the distribution over validation points of the largest principal angle between the
# analytic tangent space and (blue) the flow's top-k local covariance eigenspace, (orange) the
# k = 30 nearest-neighbour covariance's; k is the known intrinsic dimension. Only the subspace is
# compared: a nonlinear flow's JᵀJ inside the tangent space is not identifiable (docs/theory.md
# §2.3.1). The dashed line is the claim's 15° threshold (paper_map.yaml `local_covariance_oracle`).

# %%
import matplotlib.pyplot as plt
import numpy as np

from flowtheory.stages import figures

smk = figures.context(globals(), "fig_tangent")
shown = smk.params.experiments
points = figures.load_runs(list(smk.params.analysis), "analysis")
rows = []  # (label, flow angles, kNN angles)
for exp, props in shown.items():
    for stab in props["runs"]:
        if props["stabilizers"][stab]["kind"] not in ("jacobian", "noise"):
            continue
        for (e, s, seed), df in sorted(points.items()):
            if (e, s) == (exp, stab) and "tangent_angle_true_deg" in df:
                label = f"{exp} / {stab}" + (f" / seed{seed}" if seed else "")
                rows.append(
                    (label, df["tangent_angle_true_deg"].to_numpy(), df["knn_tangent_angle_true_deg"].to_numpy())
                )

# %%
if rows:
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.2))
    pos = np.arange(len(rows))
    flow = ax.boxplot(
        [r[1] for r in rows],
        positions=pos - 0.18,
        widths=0.3,
        orientation="horizontal",
        patch_artist=True,
        showfliers=False,
    )
    knn = ax.boxplot(
        [r[2] for r in rows],
        positions=pos + 0.18,
        widths=0.3,
        orientation="horizontal",
        patch_artist=True,
        showfliers=False,
    )
    for box in flow["boxes"]:
        box.set_facecolor("C0")
    for box in knn["boxes"]:
        box.set_facecolor("C1")
    ax.axvline(15.0, color="k", ls="--", lw=1)
    ax.set_yticks(pos, [r[0] for r in rows], fontsize=6)
    ax.set(xlabel="angle to the analytic tangent space (degrees)", xlim=(0, 90))
    ax.legend([flow["boxes"][0], knn["boxes"][0]], ["flow (J_fᵀJ_f)⁻¹", "kNN, k = 30"], loc="lower right")
    ax.invert_yaxis()
    fig.tight_layout()
else:
    fig = figures.nothing("fig_tangent")
figures.save(fig, smk.output.png, smk.output.pdf)
