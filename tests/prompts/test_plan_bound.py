"""A plan is bounded before anything of its size is allocated (issue 11, defect 8: ``images_per_class: 10**12``
ended in a numpy MemoryError traceback)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from synthdiv.core.rundir import RunDir
from synthdiv.engine.runner import run_stage
from synthdiv.errors import ConfigError
from synthdiv.stages.plan import stage as plan_module
from synthdiv.stages.plan.stage import build_plan
from tests.prompts.test_plan import write_prompts


@pytest.mark.parametrize(("section", "size"), [({"images_per_class": 10**12}, "3,000,000,000,000"),
                                               ({"images_per_class": 10**30}, "3" + ",000" * 10),
                                               ({"top_up_to": 10**12}, "2,999,999,999,990")])
def test_a_huge_budget_is_refused_with_its_size_and_the_bound(make_config, write_resolved, section, size):
    cfg = make_config(plan=section)
    run = write_resolved(cfg.run_dir, [("a", "a", 10), ("b", "b", 0), ("c", "c", 0)])
    write_prompts(run, [{"base": 1}] * 3)
    with pytest.raises(ConfigError, match=rf"plan\.\w+: the plan would hold {size} images, above the bound of "
                                          r"100,000,000 rows; lower it or set plan.max_images") as info:
        run_stage(cfg, "plan")
    assert "\n" not in str(info.value) and not run.plan.exists() and run.read_state("plan") is None


def test_the_bound_counts_the_cap_and_a_capped_huge_budget_plans_as_the_cap_says(make_config, write_resolved):
    cfg = make_config(plan={"images_per_class": 10**30, "max_images": 7})
    run = write_resolved(cfg.run_dir, [("a", "a", 0), ("b", "b", 0), ("c", "c", 0)])
    write_prompts(run, [{"base": 2}] * 3)
    assert build_plan(cfg, run)["images"] == 7
    capped = pq.read_table(run.plan)
    small = make_config(plan={"images_per_class": 7, "max_images": 7})
    build_plan(small, RunDir(small.run_dir))
    assert pq.read_table(run.plan).equals(capped)


def test_the_bound_is_a_module_constant_that_allows_tens_of_millions(make_config, write_resolved, monkeypatch):
    assert plan_module.MAX_PLAN_IMAGES >= 50_000_000
    monkeypatch.setattr(plan_module, "MAX_PLAN_IMAGES", 5)
    cfg = make_config(plan={"images_per_class": 2})
    run = write_resolved(cfg.run_dir, [("a", "a", 0), ("b", "b", 0), ("c", "c", 0)])
    write_prompts(run, [{"base": 1}] * 3)
    with pytest.raises(ConfigError, match="would hold 6 images, above the bound of 5 rows"):
        build_plan(cfg, run)
