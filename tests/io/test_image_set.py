"""Image sheets: sizes and channels made uniform as documented, and every bad sheet refused in one line."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from pathattn.errors import PathattnError
from pathattn.io.image_set import read_image_sheet


def _sheet(folder: Path, rows: list[str]) -> Path:
    path = folder / "images.csv"
    path.write_text("\n".join(["path,label,patient_id,centre", *rows]) + "\n")
    return path


def _png(path: Path, image: np.ndarray) -> str:
    cv2.imwrite(str(path), image)
    return path.name


def test_mixed_sizes_and_channels_are_made_uniform(tmp_path: Path) -> None:
    grey = _png(tmp_path / "grey.png", np.full((40, 30), 200, np.uint8))
    bgr = np.zeros((16, 16, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    red = _png(tmp_path / "red.png", bgr)
    deep = _png(tmp_path / "deep.png", np.full((8, 8), 257 * 100, np.uint16))
    images = read_image_sheet(_sheet(tmp_path, [f"{grey},a,p1,X", f"{red},b,p1,X", f"{deep},b,p2,Y"]), (20, 20))
    assert images.images.shape == (3, 3, 20, 20) and images.images.dtype == np.uint8
    assert images.images[0, :, 10, 10].tolist() == [200, 200, 200]  # grey repeated
    assert images.images[1, :, 10, 10].tolist() == [255, 0, 0]  # RGB order
    assert images.images[2, :, 10, 10].tolist() == [100, 100, 100]  # 16 bits scaled to 8
    assert images.ids == ("grey", "red", "deep") and images.classes == ("a", "b")
    assert images.labels.tolist() == [0, 1, 1] and images.patients == ("p1", "p1", "p2")
    assert images.centres == ("X", "X", "Y")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", r"2 labelled images do not exist \(line 3: .*nowhere.png; line 4: .*gone.png\)"),
        ("one_class", r"every image is of class a; a classifier needs images of at least two classes"),
        ("alpha", r"alpha.png has 4 channels; give grey or RGB images"),
        ("unreadable", r"broken.png cannot be read as an image"),
        ("no_label", r"no 'label' column"),
        ("twice", r"image ids ok appear twice"),
    ],
)
def test_bad_sheets_are_refused_in_one_line(tmp_path: Path, case: str, message: str) -> None:
    ok = _png(tmp_path / "ok.png", np.zeros((8, 8), np.uint8))
    rows = {
        "missing": [f"{ok},a,p,c", "nowhere.png,b,p,c", "gone.png,b,p,c"],
        "one_class": [f"{ok},a,p,c", _png(tmp_path / "ok2.png", np.zeros((8, 8), np.uint8)) + ",a,q,c"],
        "alpha": [f"{ok},a,p,c", _png(tmp_path / "alpha.png", np.zeros((8, 8, 4), np.uint8)) + ",b,p,c"],
        "unreadable": [f"{ok},a,p,c", "broken.png,b,p,c"],
        "twice": [f"{ok},a,p,c", f"sub/../{ok},b,p,c"],
    }
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (tmp_path / "sub").mkdir()
    if case == "no_label":
        sheet = tmp_path / "images.csv"
        sheet.write_text(f"path,patient_id\n{ok},p\n")
    else:
        sheet = _sheet(tmp_path, rows[case])
    with pytest.raises(PathattnError, match=message) as error:
        read_image_sheet(sheet, (8, 8))
    assert "\n" not in str(error.value)
