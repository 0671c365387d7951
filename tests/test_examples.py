"""The examples run end to end (in quick mode, in this process) and show what they claim to; their
shared command line answers ``--help`` before the heavy imports and routes ``--quick`` output to its
own folder."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import _common
import compare_optimizers
import loss_surfaces
import lr_sweep
import matrix_optimizers
import regression
import schedules

_flags = os.environ.get("XLA_FLAGS")
import data_parallel  # noqa: E402  (it adds 8 simulated devices to XLA_FLAGS for child processes)

if _flags is None:  # JAX is already up in this process; keep the flag from leaking to others
    os.environ.pop("XLA_FLAGS", None)
else:
    os.environ["XLA_FLAGS"] = _flags

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MODULES = {
    m.__name__: m
    for m in (
        compare_optimizers,
        regression,
        loss_surfaces,
        lr_sweep,
        schedules,
        data_parallel,
        matrix_optimizers,
    )
}
HEAVY = ("jax", "flax", "matplotlib", "sklearn", "gradtx", "numpy")


def expected_size(figsize: tuple[float, float], dpi: float) -> tuple[int, int]:
    return (round(figsize[0] * dpi), round(figsize[1] * dpi))


def assert_image(path: Path, size: tuple[int, int], frames: int = 1) -> None:
    assert path.is_file()
    with Image.open(path) as im:
        im.load()
        assert im.size == size
        assert getattr(im, "n_frames", 1) == frames
        # not a blank canvas: a plot has many distinct colours
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 20


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    return compare_optimizers.main(
        ["--quick", "--optimizers", "sgd,adam", "--out", str(out), "--no-progress"]
    )


def test_compare_optimizers_adam_beats_sgd_at_the_quick_budget(digits):
    res = digits["results"]
    assert list(res) == ["sgd", "adam"]
    adam, sgd = res["adam"].epochs[-1], res["sgd"].epochs[-1]
    assert adam["test_acc"] > 0.90
    assert adam["test_acc"] > sgd["test_acc"]
    for h in res.values():
        assert len(h.epochs) == compare_optimizers.QUICK_EPOCHS + 1
        assert h.epochs[-1]["train_loss"] < 0.5 * h.epochs[0]["train_loss"]
        assert h.steps == compare_optimizers.QUICK_EPOCHS * (1347 // compare_optimizers.BATCH_SIZE)
        assert h.steps_per_s > 0 and math.isfinite(h.steps_per_s)


def test_compare_optimizers_table_and_figure(digits):
    lines = digits["table"].splitlines()
    assert lines[0].startswith("| optimizer | lr | final train loss | test accuracy")
    assert [ln.split("|")[1].strip() for ln in lines[2:]] == ["SGD", "Adam"]
    assert_image(digits["png"], expected_size(compare_optimizers.FIGSIZE, _common.DPI))


def test_compare_optimizers_rejects_unknown_names(tmp_path):
    with pytest.raises(SystemExit):
        compare_optimizers.main(["--optimizers", "sgd,nope", "--out", str(tmp_path)])


def test_regression_every_optimizer_improves(tmp_path):
    out = regression.main(["--quick", "--out", str(tmp_path), "--no-progress"])
    res = out["results"]
    assert list(res) == list(regression.OPTIMIZERS)
    for name, h in res.items():
        first, last = h.epochs[0]["loss"], h.epochs[-1]["loss"]
        assert last < first, name
        assert len(h.step_loss) == regression.QUICK_EPOCHS * (1000 // 32)
    assert_image(out["png"], expected_size(regression.FIGSIZE, _common.DPI))


@pytest.fixture(scope="module")
def surfaces(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("surf"))
    # the three optimizers the saddle claims are about: fewer compilations than all five
    return loss_surfaces.main(["--quick", "--optimizers", "sgd,rmsprop,adam", "--out", out])


def test_loss_surfaces_saddle_sgd_stalls_adaptive_escape(surfaces):
    paths = surfaces["paths"]["saddle"]
    steps = loss_surfaces.SURFACES["saddle"].steps // loss_surfaces.QUICK_FRACTION
    assert paths["sgd"].shape == (steps + 1, 2)
    # SGD slid along x into the saddle and its y is still tiny
    assert np.linalg.norm(paths["sgd"][-1]) < 0.5 * np.linalg.norm(paths["sgd"][0])
    assert abs(paths["sgd"][-1, 1]) < 0.01
    for name in ("adam", "rmsprop"):
        assert abs(paths[name][-1, 1]) > 0.2, name


def test_loss_surfaces_full_budget_saddle():
    """The full-length paths: SGD is still within 0.1 of the saddle after 150 steps while Adam
    and RMSProp are past |y| = 1."""
    s = loss_surfaces.SURFACES["saddle"]
    lr = s.learning_rates
    end = {
        n: loss_surfaces.optimizer_path(s.fn, s.start, _common.build(n, lr[n]), s.steps)[-1]
        for n in ("sgd", "adam", "rmsprop")
    }
    assert np.linalg.norm(end["sgd"]) < 0.1
    assert abs(end["adam"][1]) > 1 and abs(end["rmsprop"][1]) > 1


def test_loss_surfaces_rosenbrock_sgd_zigzags_across_the_valley_floor():
    s = loss_surfaces.SURFACES["rosenbrock"]
    path = loss_surfaces.optimizer_path(s.fn, s.start, _common.build("sgd", 1.8e-3), 200)
    above_floor = path[:, 1] - path[:, 0] ** 2  # signed distance from the valley floor y = x^2
    # a damped zig-zag: the side of the floor alternates step after step at first
    assert np.count_nonzero(np.diff(np.sign(above_floor[:60])) != 0) > 20
    assert np.abs(above_floor[20:]).max() < 0.2  # ...while staying in the valley
    assert path[-1, 0] > path[20, 0] + 0.2  # and moving along it towards (1, 1)


def test_optimizer_path_matches_a_hand_written_sgd_loop():
    start = np.array([1.0, 1e-3], np.float32)
    got = loss_surfaces.optimizer_path(loss_surfaces.saddle, start, _common.build("sgd", 0.1), 3)
    want = [start]
    for _ in range(3):
        x, y = want[-1]
        want.append(np.array([x - 0.1 * 2 * x, y + 0.1 * 2 * y], np.float32))
    np.testing.assert_allclose(got, np.stack(want), rtol=1e-6)


def test_loss_surfaces_images(surfaces):
    assert_image(surfaces["png"], expected_size(loss_surfaces.FIGSIZE, _common.DPI))
    frames = loss_surfaces.GIF_FRAMES // loss_surfaces.QUICK_FRACTION
    gif_size = expected_size(loss_surfaces.GIF_FIGSIZE, loss_surfaces.GIF_DPI)
    assert_image(surfaces["gif"], gif_size, frames=frames)


# --- the shared command line --------------------------------------------------------------------


def test_every_example_is_listed():
    scripts = {p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_")}
    assert scripts == set(MODULES)


HELP_PROBE = """
import runpy, sys, time
sys.argv = [{path!r}, "--help"]
sys.path.insert(0, {folder!r})
t0 = time.perf_counter()
try:
    runpy.run_path({path!r}, run_name="__main__")
except SystemExit as e:
    assert e.code == 0, e.code
print(time.perf_counter() - t0)
print(",".join(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize("name", sorted(MODULES))
def test_help_is_instant_and_imports_nothing_heavy(name):
    """``--help`` answers before JAX, Flax or matplotlib load (they took 5-8 s before): nothing
    heavy in ``sys.modules`` afterwards, and the whole interpreter run is well under 2 s."""
    path = str(EXAMPLES / f"{name}.py")
    probe = HELP_PROBE.format(path=path, folder=str(EXAMPLES), heavy=HEAVY)
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    wall = time.perf_counter() - t0
    *help_text, seconds, loaded = out.stdout.splitlines()
    assert loaded == "", f"--help of {name} imported {loaded}"
    assert float(seconds) < 1.0 and wall < 2.0, (seconds, wall)
    text = "\n".join(help_text)
    for flag in ("--epochs", "--optimizers", "--seed", "--out", "--quick"):
        assert flag in text, (name, flag)
    assert "out/quick/" in text  # where --quick writes, said in --help


@pytest.mark.parametrize("name", sorted(MODULES))
def test_uniform_flags_and_default_folders(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = MODULES[name]
    argv = ["--epochs", "3", "--seed", "7", "--no-progress"]
    full = module.arguments(argv)
    quick = module.arguments([*argv, "--quick"])
    assert full.epochs == quick.epochs == 3 and full.seed == 7
    assert full.out == Path("out") / full.example and (tmp_path / full.out).is_dir()
    assert quick.out == Path("out") / "quick" / full.example  # never the full run's folder
    assert module.arguments(["--out", "elsewhere"]).out == Path("elsewhere")
    with pytest.raises(SystemExit):
        module.arguments(["--epochs", "three"])


def test_quick_selects_fewer_optimizers_for_compare():
    quick = compare_optimizers.arguments(["--quick", "--out", "/tmp/unused"])
    full = compare_optimizers.arguments(["--out", "/tmp/unused"])
    assert quick.optimizers == list(compare_optimizers.QUICK_OPTIMIZERS)
    assert full.optimizers == list(compare_optimizers.LEARNING_RATES)
    assert len(quick.optimizers) <= 4


def test_an_ignored_flag_is_accepted_and_reported(tmp_path, capsys):
    args = schedules.arguments(["--seed", "3", "--optimizers", "adam", "--out", str(tmp_path)])
    assert args.seed == 3
    said = capsys.readouterr().out
    assert "--seed is ignored by schedules" in said and "--optimizers is ignored" in said
    loss_surfaces.arguments(["--seed", "1", "--out", str(tmp_path)])
    assert "--seed is ignored by loss_surfaces" in capsys.readouterr().out


def test_lr_sweep_takes_one_optimizer(tmp_path):
    assert lr_sweep.arguments(["--out", str(tmp_path)]).optimizers == ["adam"]
    with pytest.raises(SystemExit):
        lr_sweep.arguments(["--optimizers", "adam,sgd", "--out", str(tmp_path)])


# --- quick runs write their files ---------------------------------------------------------------


def test_schedules_quick_writes_to_the_quick_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = schedules.main(["--quick", "--epochs", "40"])
    assert path == Path("out/quick/schedules/schedules.png")
    assert (tmp_path / path).is_file() and not (tmp_path / "out/schedules").exists()
    with Image.open(tmp_path / path) as im:
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 20


def test_lr_sweep_other_optimizer_and_seed(tmp_path):
    res = lr_sweep.main(
        ["--optimizers", "momentum", "--epochs", "30", "--seed", "1", "--out", str(tmp_path)]
    )
    assert res["optimizer"] == "momentum" and res["losses"].shape == (8, 30)
    assert (tmp_path / "lr_sweep.png").is_file()


def test_data_parallel_writes_figure_and_summary_to_the_default_folder(tmp_path, monkeypatch):
    """In this process JAX already runs on one device, which the example accepts; the 8-device
    run is ``tests/test_parallel.py``'s."""
    monkeypatch.chdir(tmp_path)
    summary = data_parallel.main(["--quick", "--epochs", "20", "--optimizers", "adamw,sgd"])
    folder = tmp_path / "out/quick/data_parallel"
    saved = json.loads((folder / "summary.json").read_text())
    assert saved["steps"] == 20 and saved["optimizer"] == "adamw"
    assert set(saved["runs"]) == {"adamw", "sgd"}
    for run in saved["runs"].values():
        assert len(run["losses"]) == 20 and run["losses"][-1] < run["losses"][0]
    assert summary["png"] == Path("out/quick/data_parallel/data_parallel.png")
    assert_image(
        folder / "data_parallel.png", expected_size(data_parallel.FIGSIZE, data_parallel.DPI)
    )


def test_matrix_optimizers_quick_trains_and_writes_its_figure(tmp_path):
    out = matrix_optimizers.main(["--quick", "--no-progress", "--out", str(tmp_path)])
    assert_image(out["png"], expected_size(matrix_optimizers.FIGSIZE, _common.DPI))
    results = out["results"]
    assert list(results) == list(matrix_optimizers.QUICK_OPTIMIZERS)
    for name, h in results.items():  # one epoch from log(10) = 2.3: both have learned
        assert h.epochs[-1]["train_loss"] < 2.0 and h.epochs[-1]["test_acc"] > 0.6, (name, h.epochs)
        assert name.replace("psgd", "PSGD-Kron").lower() in out["table"].lower()
