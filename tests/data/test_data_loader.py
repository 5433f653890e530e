"""The mixed loader: block order and sizes, the domain tensor, seeded order and augmentation, resume and rank
slices, corrupt samples, and the real / synthetic sources it reads."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from synthdiv.core.rundir import RunDir
from synthdiv.data.images import ImageDataset, Unreadable, build_transforms
from synthdiv.data.mixed import BatchPlan, block_sizes, make_loader
from synthdiv.data.real import imagefolder_samples, real_samples, shard_samples
from synthdiv.errors import ConfigError, InputError
from synthdiv.stages.classes.reader import read_classes
from synthdiv.stages.score.reader import synthetic_samples


def _sets(toy: dict[str, Path], make_config):
    cfg = make_config(run_dir=str(toy["run"]), train={"img_size": 16, "auto_augment": None})
    classes = read_classes(RunDir(toy["run"]).classes)
    return cfg, classes, real_samples(classes), synthetic_samples(cfg, RunDir(toy["run"]), len(classes))


@pytest.mark.parametrize(("fraction", "n_real", "n_syn"), [(0.0, 8, 0), (0.25, 6, 2), (0.5, 4, 4), (1.0, 0, 8)])
def test_each_batch_is_a_real_block_then_a_synthetic_block(toy, make_config, fraction, n_real, n_syn):
    cfg, _, real, syn = _sets(toy, make_config)
    plan = BatchPlan(len(real), len(syn), 8, fraction, seed=0)
    assert (plan.n_real, plan.n_syn) == (n_real, n_syn)
    loader = make_loader(real, syn, plan, build_transforms(cfg.train, True, (0.5,) * 3, (0.5,) * 3), 0, 3, 0)
    batches = list(loader)
    assert len(batches) == 3
    for batch in batches:
        assert batch["images"].shape == (8, 3, 16, 16)
        assert batch["n_real"] == n_real
        assert batch["domain"].tolist() == [0] * n_real + [1] * n_syn
        assert batch["corrupt"] == 0


def test_synthetic_labels_come_from_the_manifest_and_real_from_class_folders(toy, make_config):
    _, classes, real, syn = _sets(toy, make_config)
    assert len(real) == 48 and len(syn) == 32
    assert real.class_counts(4).tolist() == [12] * 4 and syn.class_counts(4).tolist() == [8] * 4
    for i in range(len(real)):
        assert Path(real.paths[i]).parent.name == classes[real.labels[i]]["name"]
    assert all(syn.keys[i].startswith(f"img{syn.labels[i]:02d}x") for i in range(len(syn)))
    assert all(p.endswith(".tar") and o > 0 for p, o in zip(syn.paths, syn.offsets, strict=True))


def test_order_is_seeded_and_resume_replays_the_same_batches(toy, make_config):
    _, _, real, syn = _sets(toy, make_config)
    plan = BatchPlan(len(real), len(syn), 8, 0.5, seed=3)
    full = list(plan.batches(0, 30))
    again = list(BatchPlan(len(real), len(syn), 8, 0.5, seed=3).batches(0, 30))
    assert full == again
    assert list(plan.batches(17, 30)) == full[17:]
    other = list(BatchPlan(len(real), len(syn), 8, 0.5, seed=4).batches(0, 30))
    assert other != full
    # one epoch visits every real image once (48 images, 4 per step, 12 steps per epoch)
    assert plan.steps_per_epoch == 12
    seen = sorted(k[1] for keys in full[:12] for k in keys if k[0] == 0)
    assert seen == list(range(48))
    # the synthetic stream runs across epochs: 30 steps x 4 = 120 draws, every image 3 or 4 times
    counts = np.bincount([k[1] for keys in full for k in keys if k[0] == 1], minlength=32)
    assert counts.min() >= 3 and counts.max() <= 4


@pytest.mark.parametrize(("world", "accum"), [(2, 1), (1, 2), (2, 2)])
def test_rank_and_microstep_slices_make_the_same_global_batch(toy, make_config, world, accum):
    _, _, real, syn = _sets(toy, make_config)
    single = BatchPlan(len(real), len(syn), 8, 0.5, seed=0)
    for step in range(5):
        expected = single.keys(step, 0)
        pieces = [
            BatchPlan(len(real), len(syn), 8, 0.5, 0, world, rank, accum).keys(step, micro)
            for rank in range(world)
            for micro in range(accum)
        ]
        for piece in pieces:
            domains = [k[0] for k in piece]
            assert domains == sorted(domains)  # real block first in every piece
        assert sorted(k for piece in pieces for k in piece) == sorted(expected)


def test_fewer_real_images_than_a_real_block_wrap_around_like_the_synthetic_ones():
    plan = BatchPlan(3, 50, 16, 0.5, seed=0)  # a real block of 8 from 3 real images
    for step in range(4):
        real, syn = plan.global_keys(step)
        assert len(real) == plan.n_real == 8 and len(syn) == plan.n_syn == 8
        assert set(real.tolist()) == {0, 1, 2}
    assert len(plan.keys(0, 0)) == 16


def test_block_sizes_that_do_not_split_over_ranks_are_a_config_error():
    with pytest.raises(ConfigError, match="train.batch_size"):
        BatchPlan(10, 10, 6, 0.5, seed=0, world_size=2)
    with pytest.raises(ConfigError, match="train.synthetic_fraction > 0 but no synthetic images"):
        BatchPlan(10, 0, 8, 0.5, seed=0)
    assert block_sizes(10, 0.33) == (7, 3)


def test_augmentation_is_a_function_of_the_key_in_workers_and_in_process(toy, make_config):
    cfg, _, real, syn = _sets(toy, make_config)
    cfg_aug = cfg.train.model_copy(update={"auto_augment": "rand-m9-mstd0.5"})
    transform = build_transforms(cfg_aug, True, (0.5,) * 3, (0.5,) * 3)
    plan = BatchPlan(len(real), len(syn), 8, 0.5, seed=0)
    a = [b["images"] for b in make_loader(real, syn, plan, transform, 0, 3, num_workers=0)]
    b = [b["images"] for b in make_loader(real, syn, plan, transform, 0, 3, num_workers=2)]
    torch.manual_seed(123)
    state = torch.get_rng_state()
    ImageDataset([real, syn], transform)[(0, 0, 77)]
    assert torch.equal(torch.get_rng_state(), state)  # in-process augmentation leaves the caller's RNG alone
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    c = next(iter(make_loader(real, syn, BatchPlan(len(real), len(syn), 8, 0.5, seed=1), transform, 0, 1, 0)))
    assert not torch.equal(a[0], c["images"])


def test_corrupt_samples_are_skipped_and_counted(toy, make_config):
    cfg, classes, _, syn = _sets(toy, make_config)
    for name in ("0000.png", "0001.png"):
        (toy["real"] / "class0" / name).write_bytes(b"not an image")
    real = real_samples(classes)
    plan = BatchPlan(len(real), len(syn), 8, 0.5, seed=0)
    transform = build_transforms(cfg.train, False, (0.5,) * 3, (0.5,) * 3)
    batches = list(make_loader(real, syn, plan, transform, 0, plan.steps_per_epoch, 0))
    assert sum(b["corrupt"] for b in batches) == 2
    assert sum(b["n_real"] for b in batches) == 48 - 2
    for b in batches:
        assert b["domain"][: b["n_real"]].eq(0).all() and b["domain"][b["n_real"] :].eq(1).all()


def test_real_data_from_an_imagefolder_and_from_shards(toy, tmp_path):
    import webdataset as wds

    classes = read_classes(RunDir(toy["run"]).classes)
    (toy["real"] / "unknown-class").mkdir()
    folder = imagefolder_samples(toy["real"], classes)
    assert len(folder) == 48
    shards = tmp_path / "realshards"
    shards.mkdir()
    with wds.TarWriter(str(shards / "real-0.tar")) as sink:
        for i, p in enumerate(sorted(toy["real"].glob("class*/*.png"))[:10]):
            sink.write({"__key__": f"s{i:03d}", "png": p.read_bytes(), "cls": int(p.parent.name[-1])})
        sink.write({"__key__": "nolabel", "png": p.read_bytes()})
    got = real_samples(classes, shards)
    assert len(got) == 10 and got.labels.tolist() == [0] * 10
    assert len(shard_samples(shards, 4)) == 10


def test_real_shard_indexes_are_kept_and_redone_when_a_shard_changes(toy, tmp_path, monkeypatch):
    import webdataset as wds

    from synthdiv.data import real as real_module

    pngs = sorted(toy["real"].glob("class*/*.png"))
    shards, index = tmp_path / "realshards", tmp_path / "index"
    shards.mkdir()

    def write(n: int) -> None:
        with wds.TarWriter(str(shards / "real-0.tar")) as sink:
            for i, p in enumerate(pngs[:n]):
                sink.write({"__key__": f"s{i:03d}", "png": p.read_bytes(), "cls": int(p.parent.name[-1])})
            sink.write({"__key__": "nolabel", "png": pngs[0].read_bytes()})

    write(10)
    cold = shard_samples(shards, 4, index)
    assert len(cold) == 10 and len(list(index.glob("*.parquet"))) == 1

    def no_scan(path):
        raise AssertionError(f"{path} was indexed again")

    monkeypatch.setattr(real_module, "index_tar", no_scan)
    warm = shard_samples(shards, 4, index)
    for name in ("paths", "offsets", "sizes", "labels", "keys"):
        assert getattr(warm, name).tolist() == getattr(cold, name).tolist()
    monkeypatch.undo()
    write(6)  # the shard changed: its kept index no longer applies
    assert len(shard_samples(shards, 4, index)) == 6


def test_a_missing_real_folder_names_the_key(toy, tmp_path):
    classes = read_classes(RunDir(toy["run"]).classes)
    with pytest.raises(InputError, match="train.real_root"):
        real_samples(classes, tmp_path / "nope")


def test_a_missing_shard_skips_its_images(toy, make_config):
    cfg = make_config(run_dir=str(toy["run"]))
    (toy["run"] / "shards" / "shard-000001.tar").unlink()
    (toy["run"] / "manifest.parquet" / "shard-000001.parquet").unlink()  # an incomplete shard is not in the manifest
    syn = synthetic_samples(cfg, RunDir(toy["run"]), 4)
    assert len(syn) == 22


def test_a_damaged_shard_costs_its_images_not_the_run(toy, make_config):
    cfg = make_config(run_dir=str(toy["run"]))
    shard = toy["run"] / "shards" / "shard-000002.tar"
    shard.write_bytes(b"garbage!" * (shard.stat().st_size // 8))  # same size: the manifest still lists it
    syn = synthetic_samples(cfg, RunDir(toy["run"]), 4)
    transform = build_transforms(cfg.train, False, (0.5,) * 3, (0.5,) * 3)
    got = [ImageDataset([syn], transform)[(0, i, 0)] for i in range(len(syn))]
    damaged = [p == str(shard) for p in syn.paths]
    # unreadable when read: skipped and counted, with its class
    assert sum(damaged) == 10 and [isinstance(g, Unreadable) for g in got] == damaged
    assert all(g.label == syn.labels[i] and g.reason == "not an image" for i, g in enumerate(got) if damaged[i])


def test_synthetic_byte_ranges_come_from_the_manifest_or_from_the_tars(toy, make_config):
    import pyarrow.parquet as pq

    cfg = make_config(run_dir=str(toy["run"]))
    run = RunDir(toy["run"])
    from_manifest = synthetic_samples(cfg, run, 4)
    assert len(from_manifest) == 32 and list(from_manifest.keys) == sorted(from_manifest.keys)
    for i in (0, 17, 31):  # the recorded range holds exactly the image the tar holds under that key
        with tarfile.open(from_manifest.paths[i]) as tf:
            assert from_manifest.read(i) == tf.extractfile(f"{from_manifest.keys[i]}.jpg").read()
    for part in run.manifest.glob("*.parquet"):  # a manifest written before the byte-range columns existed
        table = pq.read_table(part)
        pq.write_table(table.drop_columns(["offset", "size"]).replace_schema_metadata(table.schema.metadata), part)
    from_tars = synthetic_samples(cfg, run, 4)
    for name in ("paths", "offsets", "sizes", "labels", "keys"):
        assert getattr(from_tars, name).tolist() == getattr(from_manifest, name).tolist()


def test_tar_members_named_outside_the_shard_are_read_in_place_never_extracted(tmp_path):
    """A real shard whose members are named ``../x``, ``/abs/x`` or ``a/../../x``: its images are read by byte range
    from inside the tar; nothing is written next to it or anywhere else."""
    import io

    from PIL import Image

    from synthdiv.data.sources import read_bytes

    shard_dir = tmp_path / "shards"
    shard_dir.mkdir()
    png = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(png, format="PNG")
    names = ["../escape", "/abs/escape", "a/../../deep"]
    with tarfile.open(shard_dir / "evil.tar", "w") as tar:
        for name in names:
            for ext, data in (("png", png.getvalue()), ("cls", b"1")):
                info = tarfile.TarInfo(f"{name}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    samples = shard_samples(shard_dir, num_classes=2)
    assert len(samples) == 3 and set(samples.labels.tolist()) == {1}
    for path, offset, size in zip(samples.paths, samples.offsets, samples.sizes, strict=True):
        assert Path(path) == shard_dir / "evil.tar"
        assert read_bytes(path, int(offset), int(size)) == png.getvalue()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not Path("/abs").exists()
