"""A fuzzer over the readers of every artifact a run directory holds: stage state files, the class files, the Parquet
tables (plan, manifest parts, scores, prompts, embeddings, caches), JSONL, shards, checkpoints, the export and the eval
results. Each example truncates, overwrites, inserts into or replaces one file of a small real run; the reader must
then return (a value, or its documented skip: None, a "damaged" state, a shard that is not complete) or raise one
:class:`~synthdiv.errors.SynthdivError` whose message is one line, never another exception.

The examples are derandomized (the same in every run of the suite) and bounded, ``SYNTHDIV_FUZZ_EXAMPLES`` examples
per reader (default 25); set it higher, and ``SYNTHDIV_FUZZ_RANDOM=1``, to search further.

Readers that live in files this test's authors do not own and that fail are marked ``xfail(strict=True)`` with what
fails, so the mark goes as soon as the reader is fixed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthdiv.core.rundir import RunDir
from synthdiv.core.schemas import PLAN_SCHEMA, PROMPTS_SCHEMA, SCORES_SCHEMA
from synthdiv.errors import SynthdivError
from synthdiv.utils.io import atomic_write_jsonl, write_parquet_atomic

EXAMPLES = int(os.environ.get("SYNTHDIV_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize=os.environ.get("SYNTHDIV_FUZZ_RANDOM") != "1",
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# --- damage -------------------------------------------------------------------------------------------------------


@st.composite
def damage(draw: st.DrawFn) -> tuple[str, float, bytes]:
    """``(kind, where (0..1 of the file), bytes)``: what to do to a file."""
    kind = draw(st.sampled_from(["truncate", "overwrite", "insert", "replace", "empty", "zeros", "flip"]))
    return kind, draw(st.floats(0, 1)), draw(st.binary(min_size=1, max_size=64))


def damaged(data: bytes, how: tuple[str, float, bytes]) -> bytes:
    kind, where, junk = how
    at = min(len(data), int(where * len(data)))
    if kind == "truncate":
        return data[:at]
    if kind == "overwrite":
        return data[:at] + junk + data[at + len(junk) :]
    if kind == "insert":
        return data[:at] + junk + data[at:]
    if kind == "replace":
        return junk * max(1, len(data) // len(junk))
    if kind == "empty":
        return b""
    if kind == "zeros":  # a block lost to a crash: zeros in place
        return data[:at] + bytes(min(4096, len(data) - at)) + data[at + 4096 :]
    return data[:at] + bytes([data[at] ^ (1 << (junk[0] % 8))]) + data[at + 1 :] if at < len(data) else data


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _nodes(value: Any, path: tuple = ()) -> list[tuple]:
    """The paths of every node of a parsed JSON value (the root is ``()``)."""
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _nodes(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _nodes(v, (*path, i))
    return out


def _replaced(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replaced(value[head], rest, new)}
    return [_replaced(v, rest, new) if i == head else v for i, v in enumerate(value)]


def json_damaged(data: bytes, line: int, node: int, new: Any) -> bytes:
    """One node of one JSON line (a whole JSON file is one line) replaced by ``new``: valid JSON, wrong content."""
    text = data.decode("utf-8")
    try:
        json.loads(text)
        lines = [text]  # one JSON document (perhaps indented)
    except json.JSONDecodeError:
        lines = text.splitlines(keepends=True)  # JSON lines
    i = line % len(lines)
    value = json.loads(lines[i])
    paths = _nodes(value)
    lines[i] = json.dumps(_replaced(value, paths[node % len(paths)], new)) + ("\n" if lines[i].endswith("\n") else "")
    return "".join(lines).encode("utf-8")


def one_line(exc: SynthdivError) -> None:
    message = str(exc)
    assert message.strip() and "\n" not in message, f"not one line: {message!r}"


# --- a small real run, made once ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A run with one of every artifact, as the stages write them."""
    import timm
    import torch

    from synthdiv.metrics.accuracy import accuracy_report
    from synthdiv.stages.generate.reader import read_manifest
    from synthdiv.stages.score.embeddings import write_real, write_synthetic
    from synthdiv.stages.train.checkpoint import save_checkpoint
    from synthdiv.stages.train.export import export_model
    from tests.data.toydata import make_toy_run

    root = tmp_path_factory.mktemp("fuzz")
    paths = make_toy_run(root, num_classes=3, real_per_class=2, syn_per_class=4, test_per_class=1)
    run = RunDir(paths["run"])
    classes = [json.loads(line) for line in run.classes.read_text().splitlines()]
    atomic_write_jsonl(run.resolved, [{**c, "description": f"a {c['name']}", "status": "ok", "candidates": []}
                                      for c in classes])
    manifest = read_manifest(run)
    ids = manifest.column("image_id").to_pylist()
    write_parquet_atomic(pa.Table.from_pylist(
        [{"prompt_id": "p", "class": 0, "class_name": "class0", "kind": "base", "text": "a photo", "negative": "",
          "context": None, "style": None, "template_id": "t", "llm_id": "fake"}], schema=PROMPTS_SCHEMA), run.prompts)
    write_parquet_atomic(manifest.select([f.name for f in PLAN_SCHEMA]).cast(PLAN_SCHEMA), run.plan)
    write_parquet_atomic(pa.Table.from_pylist(
        [{"image_id": i, "similarity": 0.2, "class_rank": 0, "margin": 0.1, "prob": 0.5, "best_other": 1,
          "dup_of": i, "memorized": False} for i in ids], schema=SCORES_SCHEMA), run.scores)
    run.finish(run.begin("classes", "f" * 64), {"classes": 3})
    labels = manifest.column("class").to_numpy()
    write_synthetic(run, ids, labels, ["base"] * len(ids), 4,
                    iter([(np.arange(len(ids)), np.ones((len(ids), 4), dtype=np.float32))]))
    write_real(run, ["a", "b"], np.array([0, 1]), np.ones((2, 4), dtype=np.float32))
    save_checkpoint(run.train / "real" / "checkpoints", 5, {"model": {"w": torch.ones(3)}, "lr": [0.1]})
    (run.train / "real" / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n"
                                                              for s in range(1, 6)))
    (run.train / "real" / "data.json").write_text(json.dumps({"steps_per_epoch": 5, "real_per_class": [2, 2, 2]}))
    export_model(timm.create_model("test_resnet", num_classes=3, pretrained=False), run.export / "real", list("abc"))
    labels = np.array([0, 1, 2, 0])
    topk = np.array([[0, 1], [2, 1], [2, 0], [1, 0]])
    (run.eval / "real").mkdir(parents=True)
    (run.eval / "real" / "test.json").write_text(json.dumps(
        {"variant": "real", "set": "test", **accuracy_report(topk, labels, ["a", "b", "c"]), "corrupt": 0,
         "confused": [{"true": 0, "pred": 1, "count": 1, "share": 0.5}]}))
    np.savez(run.eval / "real" / "test.npz", labels=labels.astype(np.int32), topk=topk.astype(np.int32))
    (run.root / "quality.json").write_text(json.dumps({"model": "m", "classes": {
        "0": {"duplicates": 0, "memorized": 0, "all": {"images": 2, "vendi": 1.5}}}}))
    (run.root / "styles.json").write_text(json.dumps({"styles": ["a sketch"], "per_class": {}, "builtin": []}))
    _caches(run, ids)
    return root


def _caches(run: RunDir, ids: list[str]) -> None:
    """The caches the stages keep under ``cache/`` and the classifier's scores, as the stages write them."""
    from synthdiv.core.schemas import CLASSIFIER_SCORES_SCHEMA
    from synthdiv.data.real import _shard_index
    from synthdiv.stages.score.assess import _save_real_cache
    from synthdiv.stages.score.classifier import _KEY
    from synthdiv.stages.score.embeddings import save_shard_cache
    from synthdiv.utils.decode import SkipTally

    save_shard_cache(run.cache / "embeddings" / "x" / "shard-000000.npz", "k", ids[:3], np.ones((3, 4)))
    skipped = SkipTally()
    skipped.add(1, "real/class1/bad.jpg", "empty file")
    _save_real_cache(run.cache / "embeddings" / "x" / "real-r.npz", "r", ["a", "b"], np.ones((2, 4)), skipped)
    _shard_index(run.shards / "shard-000000.tar", run.cache / "tar-index")
    rows = [{"image_id": i, "p_own": 0.5, "top_class": 1, "p_other": 0.2, "mislabeled": False, "easy": False}
            for i in ids]
    table = pa.Table.from_pylist(rows, schema=CLASSIFIER_SCORES_SCHEMA)
    write_parquet_atomic(table, run.root / "classifier_scores.parquet")
    write_parquet_atomic(table.slice(0, 3).replace_schema_metadata({_KEY: b"k"}),
                         run.cache / "classifier" / "x" / "shard-000000.parquet")


@pytest.fixture
def work(pristine: Path, tmp_path: Path) -> RunDir:
    """A fresh copy of the pristine run for one test (its examples restore the file they damage)."""
    shutil.copytree(pristine, tmp_path / "fuzz", symlinks=True)
    return RunDir(tmp_path / "fuzz" / "run")


# --- the readers --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """One artifact and the reader(s) to call on it: ``read(run)`` returns anything or raises a SynthdivError."""

    artifact: str  # relative to the run directory (a pattern that matches one file)
    read: Callable[[RunDir], Any]
    examples: int = EXAMPLES


def _cfg(run: RunDir) -> Any:
    from synthdiv.config.loader import config_from_dict

    return config_from_dict({"run_dir": str(run.root), "train": {"variants": {"real": {"synthetic_fraction": 0}}},
                             "classes": {"real_root": str(run.root.parent / "real")}}, base_dir=run.root.parent)


def _state(run: RunDir) -> Any:
    state = run.read_state("classes")
    assert state is None or state.status in ("running", "done", "damaged")
    return state


def _classes(run: RunDir) -> Any:
    from synthdiv.stages.classes.reader import read_classes

    return read_classes(run.classes)


def _resolved(run: RunDir) -> Any:
    from synthdiv.stages.disambiguate.reader import read_resolved

    return read_resolved(run.resolved)


def _plan(run: RunDir) -> Any:
    from synthdiv.stages.plan.reader import plan_rounds, plan_shard_counts, read_plan

    read_plan(run)
    plan_rounds(run.plan)
    return plan_shard_counts(run.plan)


def _manifest(run: RunDir) -> Any:
    from synthdiv.stages.generate.reader import read_manifest

    return read_manifest(run)  # a damaged part makes its shard incomplete: read_manifest leaves it out


def _shard_state(run: RunDir) -> Any:
    from synthdiv.stages.generate.shards import shard_state

    return shard_state(run, 0, "members")


def _verify(run: RunDir) -> Any:
    from synthdiv.stages.generate.verify import check_shard

    return check_shard(run, 0)


def _index_tar(run: RunDir) -> Any:
    from synthdiv.data.sources import index_tar

    return index_tar(run.shards / "shard-000000.tar")


def _synthetic(run: RunDir) -> Any:
    from synthdiv.stages.score.reader import synthetic_samples

    return synthetic_samples(_cfg(run), run, 3)


def _scores(run: RunDir) -> Any:
    from synthdiv.stages.score.reader import read_scores

    return read_scores(run)


def _filters(run: RunDir) -> Any:
    from synthdiv.stages.generate.reader import read_manifest
    from synthdiv.stages.score.reader import filter_masks

    cfg = _cfg(run)
    return filter_masks(cfg, run, read_manifest(run), ["clip-top1", "dedup"])


def _prompts(run: RunDir) -> Any:
    from synthdiv.stages.prompts.reader import read_prompts

    return read_prompts(run)


def _jsonl(run: RunDir) -> Any:
    from synthdiv.utils.io import read_jsonl

    return read_jsonl(run.train / "real" / "metrics.jsonl")


def _metrics(run: RunDir) -> Any:
    from synthdiv.stages.report.collect import read_metrics

    return read_metrics(run.train / "real" / "metrics.jsonl")


def _data_info(run: RunDir) -> Any:
    from synthdiv.stages.train.reader import read_data_info

    return read_data_info(run, "real")


def _checkpoint(run: RunDir) -> Any:
    from synthdiv.stages.train.checkpoint import load_latest_checkpoint

    return load_latest_checkpoint(run.train / "real" / "checkpoints")


def _export(run: RunDir) -> Any:
    from synthdiv.stages.train.reader import load_export

    return load_export(run, "real")


def _eval_result(run: RunDir) -> Any:
    from synthdiv.stages.evaluate.reader import read_predictions, read_result
    from synthdiv.stages.report.results import load_results, results_section

    read_result(run.eval / "real" / "test.json")
    read_predictions(run.eval / "real" / "test.npz")
    return results_section(_cfg(run), load_results(run))


def _quality(run: RunDir) -> Any:
    from synthdiv.stages.report.quality import quality_tables

    return quality_tables(_cfg(run), run)


def _embeddings(run: RunDir) -> Any:
    from synthdiv.stages.score.embeddings import load_real, load_synthetic

    return load_synthetic(run), load_real(run)


def _styles(run: RunDir) -> Any:
    from synthdiv.stages.prompts.styles import load_styles

    return load_styles(run.root / "styles.json")


def _report_sections(run: RunDir) -> Any:
    from synthdiv.stages.report import collect

    return collect.disambiguation_section(run), collect.prompts_section(run), collect.rounds_section(run)


def _ids(run: RunDir) -> list[str]:
    from synthdiv.stages.generate.reader import read_manifest

    return read_manifest(run).column("image_id").to_pylist()


def _shard_cache(run: RunDir) -> Any:
    from synthdiv.stages.score.embeddings import load_shard_cache

    return load_shard_cache(run.cache / "embeddings" / "x" / "shard-000000.npz", "k", _ids(run)[:3])


def _real_cache(run: RunDir) -> Any:
    from synthdiv.stages.score.assess import _load_real_cache

    return _load_real_cache(run.cache / "embeddings" / "x" / "real-r.npz", "r")


def _tar_index(run: RunDir) -> Any:
    from synthdiv.data.real import _shard_index

    return _shard_index(run.shards / "shard-000000.tar", run.cache / "tar-index")


def _classifier_cache(run: RunDir) -> Any:
    from synthdiv.stages.score.classifier import _cached_scores

    return _cached_scores(run.cache / "classifier" / "x" / "shard-000000.parquet", b"k", _ids(run)[:3])


def _classifier_filter(run: RunDir) -> Any:
    from synthdiv.stages.generate.reader import read_manifest
    from synthdiv.stages.score.reader import filter_masks

    return filter_masks(_cfg(run), run, read_manifest(run), ["classifier"])


def _xfail(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=reason)


READERS = [
    Reader(".synthdiv/stages/classes.json", _state),
    Reader("classes.jsonl", _classes),
    Reader("classes.jsonl", _report_sections),
    Reader("classes.resolved.jsonl", _resolved),
    Reader("classes.resolved.jsonl", _report_sections),
    Reader("plan.parquet", _plan),
    Reader("plan.parquet", _report_sections),
    Reader("manifest.parquet/shard-000000.parquet", _manifest),
    Reader("manifest.parquet/shard-000000.parquet", _synthetic),
    Reader("shards/shard-000000.tar", _shard_state),
    Reader("shards/shard-000000.tar", _verify),
    Reader("shards/shard-000000.tar", _index_tar),
    Reader("scores.parquet", _scores),
    Reader("scores.parquet", _filters),
    Reader("prompts.parquet", _prompts),
    Reader("prompts.parquet", _report_sections),
    Reader("train/real/metrics.jsonl", _jsonl),
    Reader("train/real/metrics.jsonl", _metrics),
    Reader("train/real/data.json", _data_info),
    Reader("train/real/checkpoints/step-00000005.pt", _checkpoint),
    Reader("export/real/config.json", _export, max(5, EXAMPLES // 3)),
    Reader("export/real/model.safetensors", _export, max(5, EXAMPLES // 3)),
    Reader("eval/real/test.json", _eval_result),
    Reader("eval/real/test.npz", _eval_result),
    Reader("quality.json", _quality),
    Reader("embeddings/synthetic.parquet", _embeddings),
    Reader("embeddings/synthetic.npy", _embeddings),
    Reader("embeddings/real.npy", _embeddings),
    Reader("styles.json", _styles),
    Reader("classifier_scores.parquet", _classifier_filter),
    Reader("cache/embeddings/x/shard-000000.npz", _shard_cache),
    Reader("cache/embeddings/x/real-r.npz", _real_cache),
    Reader("cache/tar-index/*.parquet", _tar_index),
    Reader("cache/classifier/x/shard-000000.parquet", _classifier_cache),
]

# readers in files others own that fail today: (artifact, reader) -> what fails
KNOWN: dict[tuple[str, str], str] = {}


def _params(known: dict[tuple[str, str], str] = KNOWN) -> list[Any]:
    out = []
    for r in READERS:
        key = (r.artifact, r.read.__name__)
        marks = [_xfail(known[key])] if key in known else []
        out.append(pytest.param(r, id=f"{r.artifact}-{r.read.__name__.lstrip('_')}", marks=marks))
    return out


def _artifact(run: RunDir, reader: Reader) -> Path:
    found = sorted(run.root.glob(reader.artifact))
    assert len(found) == 1 and found[0].is_file(), f"the pristine run has no one {reader.artifact}"
    return found[0]


@pytest.mark.parametrize("reader", _params())
def test_a_damaged_artifact_is_one_line_or_a_documented_skip(work: RunDir, reader: Reader) -> None:
    path = _artifact(work, reader)
    original = path.read_bytes()
    reader.read(work)  # the undamaged file reads

    @settings(FUZZ, max_examples=reader.examples)
    @given(how=damage())
    def fuzz(how: tuple[str, float, bytes]) -> None:
        path.write_bytes(damaged(original, how))
        try:
            reader.read(work)
        except SynthdivError as exc:
            one_line(exc)
        finally:
            path.write_bytes(original)

    fuzz()


JSON_READERS = [r for r in READERS if r.artifact.endswith((".json", ".jsonl"))]
# readers in files others own that fail on valid JSON of the wrong shape today: (artifact, reader) -> what fails
SHAPE_KNOWN: dict[tuple[str, str], str] = {}


@pytest.mark.parametrize("reader", [p for p in _params(SHAPE_KNOWN) if p.values[0] in JSON_READERS])
def test_a_json_artifact_of_the_wrong_shape_is_one_line_or_a_documented_skip(work: RunDir, reader: Reader) -> None:
    """Valid JSON with a value of the wrong type or shape anywhere (what a hand edit or another version writes)."""
    path = _artifact(work, reader)
    original = path.read_bytes()

    @settings(FUZZ, max_examples=reader.examples)
    @given(line=st.integers(0, 50), node=st.integers(0, 200), new=JSON_VALUES)
    def fuzz(line: int, node: int, new: Any) -> None:
        path.write_bytes(json_damaged(original, line, node, new))
        try:
            reader.read(work)
        except SynthdivError as exc:
            one_line(exc)
        finally:
            path.write_bytes(original)

    fuzz()
