"""One run key: every form a run is named in, formatted and parsed by one class."""

from __future__ import annotations

import pytest

from flowtheory.pipeline import paths
from flowtheory.pipeline.config import RunSpec
from flowtheory.pipeline.runkey import RunKey
from flowtheory.stages.summarize import run_key


def test_forms_round_trip():
    key = RunKey("scurve_mlp", "jacobian_1e-2", 2)
    assert str(key) == "scurve_mlp/jacobian_1e-2/seed2" and key.label == "jacobian_1e-2/seed2"
    assert RunKey.from_label("scurve_mlp", key.label) == key
    path = paths.RUN_METRICS.format(experiment="scurve_mlp", stabilizer="jacobian_1e-2", seed=2)
    assert RunKey.from_path(path, "runs") == key
    assert run_key(path, "runs") == ("scurve_mlp", "jacobian_1e-2", 2)
    assert RunKey.parse_seed(RunKey.seed_name(7)) == 7


def test_the_run_spec_names_its_run_with_the_key():
    spec = RunSpec("e", "none", 3, "d", {}, {}, 1, 1e-3, 200, 8, 1, "float64", "cpu")
    assert spec.run_id == str(RunKey("e", "none", 3))


@pytest.mark.parametrize("bad", ["seed", "seedx", "3", "Seed1"])
def test_a_bad_seed_name_is_refused(bad):
    with pytest.raises(ValueError, match="not a seed name"):
        RunKey.parse_seed(bad)


def test_run_specs_of_the_paper_config_schedule_by_whether_an_optimum_exists():
    """An unregularized run on degenerate data has no optimum (docs/theory.md §2.4): it keeps the
    authors' constant rate to the cap and is never polished; every other run takes the config's
    schedule, and smooth flow kinds are polished."""
    from flowtheory.pipeline.config import load, run_spec, runs
    from flowtheory.science.kinds import FLOW_REGISTRY

    config = load("config/config.yaml")
    seen = set()
    for experiment, stabilizer, seed in runs(config):
        spec = run_spec(config, experiment, stabilizer, seed)
        degenerate = experiment.startswith(("line_", "circle_", "scurve_", "sphere_", "swissroll_", "sheet8_"))
        degenerate = degenerate and "noisy" not in experiment or experiment.startswith("mnist")
        ill_posed = spec.stab["kind"] == "none" and degenerate
        smooth = FLOW_REGISTRY[spec.flow["kind"]].smooth
        assert spec.schedule["schedule"] == ("constant" if ill_posed else config["train"]["schedule"]), spec.run_id
        assert spec.polish == (smooth and not ill_posed), spec.run_id
        seen.add(ill_posed)
    assert seen == {True, False}
