"""farm.datasets: .npz arrays, calibration image folders, and fitting samples to a model input."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import refused
from PIL import Image

from farm.datasets import check_fits, load_image_folder, load_npz

REPO = Path(__file__).resolve().parent.parent


# --- load_npz -----------------------------------------------------------------------------------------------------

def test_npz_x_and_y(tmp_path):
    x = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([3, 7]))
    got_x, got_y = load_npz(tmp_path / "d.npz")
    assert got_x.dtype == np.float32 and np.array_equal(got_x, x)
    assert got_y.tolist() == [3, 7]


def test_npz_inputs_and_labels_names(tmp_path):
    np.savez(tmp_path / "d.npz", inputs=np.ones((3, 4), np.uint8), labels=np.array([0, 1, 2]))
    x, y = load_npz(str(tmp_path / "d.npz"))
    assert x.shape == (3, 4) and x.dtype == np.uint8 and y.tolist() == [0, 1, 2]


def test_npz_the_only_array_is_the_inputs_and_labels_are_optional(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((5, 2)))
    x, y = load_npz(tmp_path / "d.npz")
    assert x.shape == (5, 2) and y is None


def test_npz_x_wins_over_other_arrays(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2)), extra=np.ones(9), y=np.arange(4))
    x, y = load_npz(tmp_path / "d.npz")
    assert x.shape == (4, 2) and y.tolist() == [0, 1, 2, 3]


def test_npz_errors(tmp_path):
    refused(lambda: load_npz(tmp_path / "missing.npz"), "missing.npz", "not found")

    (tmp_path / "notes.npz").write_text("these are not arrays\n")
    refused(lambda: load_npz(tmp_path / "notes.npz"), "notes.npz", "not an .npz")

    with open(tmp_path / "single.npz", "wb") as f:  # a .npy payload under an .npz name
        np.save(f, np.zeros(3))
    refused(lambda: load_npz(tmp_path / "single.npz"), "single.npz", "not an .npz")

    np.savez(tmp_path / "two.npz", a=np.zeros(3), b=np.zeros(3))
    refused(lambda: load_npz(tmp_path / "two.npz"), "two.npz", "no inputs array", "a, b")

    np.savez(tmp_path / "labels_only.npz", y=np.zeros(3))
    refused(lambda: load_npz(tmp_path / "labels_only.npz"), "labels_only.npz", "no inputs array")

    np.savez(tmp_path / "ragged.npz", x=np.zeros((10, 2)), y=np.zeros(9))
    refused(lambda: load_npz(tmp_path / "ragged.npz"), "ragged.npz", "10 samples", "9 labels")

    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 8, 8)))
    refused(lambda: load_npz(tmp_path / "empty.npz"), "empty.npz", "no samples")

    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}, None], dtype=object))
    refused(lambda: load_npz(tmp_path / "objects.npz"), "objects.npz")

    (tmp_path / "folder.npz").mkdir()
    refused(lambda: load_npz(tmp_path / "folder.npz"), "folder.npz", "folder")


# --- load_image_folder --------------------------------------------------------------------------------------------

@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (20, 12), (255, 255, 255)).save(folder / "a_white.png")
    Image.new("RGB", (5, 5), (0, 0, 0)).save(folder / "b_black.jpg")
    Image.new("L", (16, 16), 51).save(folder / "c_gray.bmp")
    Image.new("RGB", (8, 8), (255, 0, 0)).save(folder / "d_red.PNG")
    (folder / "readme.txt").write_text("not an image")
    return folder


def test_image_folder_gray(images):
    x = load_image_folder(images, (None, 8, 6, 1), limit=10)
    assert x.shape == (4, 8, 6, 1) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    # name order: white, black, gray (51/255), red (luma 0.299*255 -> 76)
    assert np.allclose(x[0], 1.0) and np.allclose(x[1], 0.0, atol=2 / 255)
    assert np.allclose(x[2], 51 / 255)
    assert np.allclose(x[3], 76 / 255, atol=1 / 255)


def test_image_folder_rgb_and_limit(images):
    x = load_image_folder(images, (1, 4, 4, 3), limit=3)
    assert x.shape == (3, 4, 4, 3)
    assert np.allclose(x[2], 51 / 255)  # grayscale image replicated over the 3 channels
    x = load_image_folder(images, (1, 4, 4, 3), limit=10)
    assert np.allclose(x[3, ..., 0], 1.0) and np.allclose(x[3, ..., 1:], 0.0)


def test_image_folder_errors(tmp_path, images):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    refused(lambda: load_image_folder(empty, (1, 8, 8, 1), 10), "empty", "no images")
    refused(lambda: load_image_folder(tmp_path / "nope", (1, 8, 8, 1), 10), "nope", "not found")
    refused(lambda: load_image_folder(images, (1, 64), 10), "images", "(1, 64)")
    refused(lambda: load_image_folder(images, (1, 8, 8, 2), 10), "images")
    refused(lambda: load_image_folder(images, (1, None, None, 3), 10), "images", "height/width")

    (images / "e_broken.png").write_bytes(b"\x89PNG not really")
    refused(lambda: load_image_folder(images, (1, 8, 8, 1), 10), "e_broken.png")


# --- check_fits ---------------------------------------------------------------------------------------------------

def test_check_fits_exact_and_trailing_axis():
    x = np.arange(3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8)
    exact = check_fits(x, (None, 8, 8), "d.npz")
    assert exact.shape == (3, 8, 8)

    added = check_fits(x, [1, 8, 8, 1], "d.npz")
    assert added.shape == (3, 8, 8, 1) and np.array_equal(added[..., 0], x)

    removed = check_fits(x[..., None], (1, 8, 8), "d.npz")
    assert removed.shape == (3, 8, 8) and np.array_equal(removed, x)

    wildcard = check_fits(np.zeros((2, 5, 7, 3)), (1, -1, None, 3), "d.npz")
    assert wildcard.shape == (2, 5, 7, 3)


def test_check_fits_refuses_anything_else():
    message = refused(lambda: check_fits(np.zeros((4, 8, 8, 3)), (1, 8, 8, 1), "calib.npz", model="digits"))
    assert message == "calib.npz: samples have shape (8, 8, 3) but model 'digits' input is (8, 8, 1)"

    # same element count, different layout: never reshaped silently
    refused(lambda: check_fits(np.zeros((4, 64)), (1, 8, 8, 1), "eval.npz"),
            "eval.npz: samples have shape (64,) but the model input is (8, 8, 1)")
    refused(lambda: check_fits(np.zeros((4, 8, 8, 1, 1)), (1, 8, 8), "eval.npz"), "(8, 8, 1, 1)")
    refused(lambda: check_fits(np.zeros((4, 9, 9, 1)), (1, 8, 8, 1), "eval.npz"), "(9, 9, 1)")
    refused(lambda: check_fits(np.float32(1.0), (1, 8), "eval.npz"), "eval.npz")


def test_datasets_never_imports_tensorflow(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 8, 8)))
    code = ("import sys; from farm.datasets import load_npz, check_fits; "
            f"x, _ = load_npz({str(tmp_path / 'd.npz')!r}); check_fits(x, (1, 8, 8, 1), 'd'); "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_an_npz_that_would_unpack_past_the_limit_is_one_line_before_loading(tmp_path):
    import io
    import zipfile

    # A header that declares 10^13 rows of 8x8 floats, and no data: refused from the header alone.
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10 ** 13, 8, 8, 1)})
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("x.npy", header.getvalue())
    refused(lambda: load_npz(tmp_path / "huge.npz"), "huge.npz", "more than 2 GB in memory", "x: shape (10000000000000")

    # A compressed member that says it unpacks to 3 GB (as a zip bomb does): refused before a byte is inflated.
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, {"descr": "|u1", "fortran_order": False,
                                                          "shape": (3 << 30,)})
    refused(lambda: load_npz(tmp_path / "bomb.npz"), "bomb.npz", "more than 2 GB in memory")
