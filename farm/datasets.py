"""Data files tflite-farm reads: labelled .npz arrays and folders of calibration images.

This is the one place that knows those formats. It never imports TensorFlow: the
benchmark path loads evaluation data through here too.

Shapes are numpy-style tuples. A *model input shape* always includes the batch
dimension first (as Keras and the TFLite interpreter report it, e.g. ``(None, 8, 8, 1)``
or ``(1, 8, 8, 1)``); ``None`` or ``-1`` in a non-batch position means "any size".
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from farm.errors import FarmError, one_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")

MAX_ARRAY_BYTES = 2 << 30  # what one .npz may unpack to: its arrays' declared shapes × itemsize, checked before loading
_MAX_MEMBERS = 64

_INPUT_KEYS = ("x", "inputs")
_LABEL_KEYS = ("y", "labels")


def _check_declared_sizes(path: Path) -> None:
    """Refuse an .npz whose arrays would unpack past MAX_ARRAY_BYTES (a header that declares 10^13 rows, a zip
    bomb), from the zip directory and each array's header alone, before anything is loaded."""
    name = path.name
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if m.filename.endswith(".npy")]
            if len(members) > _MAX_MEMBERS:
                raise FarmError(f"{name}: {len(members)} arrays; an .npz of eval or calibration data has a few")
            for member in members:
                with archive.open(member) as stream:
                    version = np.lib.format.read_magic(stream)
                    shape, _, dtype = (np.lib.format.read_array_header_1_0(stream) if version == (1, 0)
                                       else np.lib.format.read_array_header_2_0(stream))
                total += int(np.prod(shape, dtype=object)) * dtype.itemsize
                if total > MAX_ARRAY_BYTES or member.file_size > MAX_ARRAY_BYTES + 4096:
                    raise FarmError(f"{name}: its arrays would take more than {MAX_ARRAY_BYTES >> 30} GB in memory "
                                    f"({member.filename[:-4]}: shape {tuple(shape)}, {dtype})")
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise FarmError(f"{name}: can't read the .npz: {one_line(e)}") from None


def load_npz(path: Path | str) -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``(x, y)`` from an .npz file.

    Inputs are the array named ``x`` (or ``inputs``, or the file's only array);
    labels are ``y`` (or ``labels``) and may be absent (``None``). Both keep their
    stored dtype; the leading axis is the sample axis.
    """
    path = Path(path)
    name = path.name
    if not path.exists():
        raise FarmError(f"{path}: file not found")
    if path.is_dir():
        raise FarmError(f"{path}: is a folder, expected an .npz file")
    if not zipfile.is_zipfile(path):
        raise FarmError(f"{name}: not an .npz file (it is not a zip archive)")
    _check_declared_sizes(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise FarmError(f"{name}: can't read the .npz: {one_line(e)}") from None

    x_key = next((k for k in _INPUT_KEYS if k in arrays), None)
    if x_key is None:
        others = [k for k in arrays if k not in _LABEL_KEYS]
        if len(others) == 1:
            x_key = others[0]
    if x_key is None:
        found = ", ".join(sorted(arrays)) or "no arrays"
        raise FarmError(f"{name}: no inputs array (expected key 'x' or 'inputs'; found: {found})")
    y_key = next((k for k in _LABEL_KEYS if k in arrays), None)

    x = arrays[x_key]
    y = arrays[y_key] if y_key is not None else None
    if x.ndim == 0:
        raise FarmError(f"{name}: inputs array '{x_key}' is a scalar, expected a leading sample axis")
    if len(x) == 0:
        raise FarmError(f"{name}: inputs array '{x_key}' has no samples")
    if y is not None:
        if y.ndim == 0:
            raise FarmError(f"{name}: labels array '{y_key}' is a scalar, expected one label per sample")
        if len(y) != len(x):
            raise FarmError(
                f"{name}: '{x_key}' has {len(x)} samples but '{y_key}' has {len(y)} labels"
            )
    return x, y


def image_files(path: Path | str) -> list[Path]:
    """The image files (png/jpg/jpeg/bmp, any case) directly inside ``path``, sorted by name."""
    path = Path(path)
    return sorted(
        (p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.name,
    )


def load_image_folder(path: Path | str, shape: Sequence[int | None], limit: int) -> np.ndarray:
    """Load calibration images from a folder as float32 in [0, 1].

    ``shape`` is the model input shape including the batch dim, ``(batch, H, W, C)``
    with C 1 (grayscale) or 3 (RGB). The first ``limit`` images in name order are
    resized (bilinear) to HxW. Returns an array of shape ``(n, H, W, C)``.
    """
    path = Path(path)
    if not path.exists():
        raise FarmError(f"{path}: folder not found")
    if not path.is_dir():
        raise FarmError(f"{path}: not a folder of images")
    shape = tuple(shape)
    if len(shape) != 4 or shape[3] not in (1, 3):
        raise FarmError(
            f"{path.name}: images need a model input of shape (batch, H, W, 1 or 3), "
            f"but the model input is {_fmt_shape(shape)}"
        )
    height, width, channels = shape[1], shape[2], shape[3]
    if not _known(height) or not _known(width):
        raise FarmError(
            f"{path.name}: the model input {_fmt_shape(shape)} has no fixed height/width to resize images to"
        )
    if limit < 1:
        raise FarmError(f"{path.name}: image limit must be at least 1, got {limit}")
    files = image_files(path)
    if not files:
        raise FarmError(f"{path.name}: no images (png/jpg/bmp) in the folder")

    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency of the convert extra
        raise FarmError("reading image folders needs Pillow (pip install pillow)") from None

    mode = "L" if channels == 1 else "RGB"
    out = np.empty((min(limit, len(files)), height, width, channels), dtype=np.float32)
    for i, file in enumerate(files[:limit]):
        try:
            with Image.open(file) as img:
                img = img.convert(mode).resize((width, height), Image.BILINEAR)
                arr = np.asarray(img, dtype=np.float32)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise FarmError(f"{file.name}: can't read image: {one_line(e)}") from None
        out[i] = arr.reshape(height, width, channels) / 255.0
    return out


def check_fits(
    x: np.ndarray, input_shape: Sequence[int | None], where: str, model: str | None = None
) -> np.ndarray:
    """Check that each sample of ``x`` fits a model input and return ``x`` shaped to it.

    ``x`` has a leading sample axis; ``input_shape`` is the model input shape including
    its batch dim. A sample fits if its shape equals ``input_shape[1:]`` exactly, or
    after adding or removing one trailing axis of size 1 (e.g. (N, 8, 8) fits
    (1, 8, 8, 1)). Nothing else is reshaped. Returns ``x`` reshaped to
    ``(N, *input_shape[1:])`` (wildcard dims take the sample's size).
    """
    x = np.asarray(x)
    target = tuple(None if not _known(d) else int(d) for d in tuple(input_shape)[1:])
    if x.ndim == 0:
        raise FarmError(f"{where}: expected samples with a leading sample axis, got a scalar")
    sample = tuple(int(d) for d in x.shape[1:])

    candidates = [sample]
    candidates.append(sample + (1,))
    if sample and sample[-1] == 1:
        candidates.append(sample[:-1])
    for cand in candidates:
        if len(cand) == len(target) and all(t is None or t == c for t, c in zip(target, cand)):
            return x.reshape((x.shape[0],) + cand)

    who = f"model '{model}' input" if model else "the model input"
    raise FarmError(
        f"{where}: samples have shape {_fmt_shape(sample)} but {who} is {_fmt_shape(target)}"
    )


def _known(d) -> bool:
    return d is not None and int(d) >= 0


def _fmt_shape(shape) -> str:
    dims = tuple(None if d is None or (isinstance(d, (int, np.integer)) and d < 0) else int(d) for d in shape)
    return str(dims)
