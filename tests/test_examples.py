"""The examples run end to end (in quick mode, in this process) and show what they claim to."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import _common
import compare_optimizers
import loss_surfaces
import regression


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
