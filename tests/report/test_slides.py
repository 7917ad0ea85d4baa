"""Per-slide images: the ground truth drawn over the thumbnail, and the fallbacks to the tiling QC image."""

import base64

import cv2
import numpy as np
from shapely.geometry import box

from pathattn.io.geojson import Annotation, class_color
from pathattn.io.samples import SlideEntry
from pathattn.report.figures import image_uri
from pathattn.report.slides import ground_truth_image, slide_images


def decode(uri: str) -> np.ndarray:
    data = base64.b64decode(uri.split(",", 1)[1])
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_ground_truth_fills_and_outlines_the_regions():
    thumbnail = np.full((100, 200, 3), 200, np.uint8)
    # 4 level-0 px per thumbnail px: the tumor covers thumbnail x 20-79, y 10-49
    image = ground_truth_image(thumbnail, 4.0, [Annotation(box(80, 40, 320, 200), "Tumor")])
    assert image.shape == thumbnail.shape
    fill = np.round(0.65 * 200 + 0.35 * np.array(class_color("Tumor"))).astype(np.uint8)
    assert (image[30, 50] == fill).all()  # inside
    assert (image[80:, :] == 200).all() and (image[:, 100:] == 200).all()  # outside, away from the outline
    assert np.abs(image[10, 20:80].astype(int) - 200).sum(axis=1).min() > 50  # the outline along the top edge
    assert (ground_truth_image(thumbnail, 4.0, []) == thumbnail).all()  # no tumor: the plain thumbnail


def test_image_uri_shrinks_to_800_px():
    image = np.random.default_rng(0).integers(0, 255, (1200, 1600, 3), dtype=np.uint8)
    assert decode(image_uri(image)).shape == (600, 800, 3)
    assert decode(image_uri(image[:10, :20])).shape == (10, 20, 3)  # never enlarged


def test_fallbacks_to_the_qc_image(study):
    root = study["root"]
    images = slide_images("s00", root / "heatmaps", study["annotations"], root / "tiles", None)
    assert images.reference_kind == "tiling QC" and "slide file unknown" in images.note
    moved = SlideEntry("s00", root / "moved" / "s00.tif")
    images = slide_images("s00", root / "heatmaps", study["annotations"], root / "tiles", moved)
    assert images.reference_kind == "tiling QC" and "ground truth not drawn" in images.note
    images = slide_images("s00", root / "heatmaps", study["annotations"], None, moved)
    assert images.reference is None and images.heatmap.startswith("data:image/jpeg;base64,")
    entry = SlideEntry("s00", root / "slides" / "s00.tif")
    images = slide_images("s00", root / "heatmaps", study["annotations"], root / "tiles", entry)
    assert images.reference_kind == "ground truth" and images.note == "1 Tumor region"
    truth = decode(images.reference)
    assert truth.shape == (600, 800, 3)  # the heatmap's 1024 x 768 px thumbnail, shrunk to 800 px
    tumor, other = truth[200, 250].astype(int), truth[400, 600].astype(int)  # level-0 (1280, 1024), (3072, 2048)
    assert tumor[1] < other[1] - 20 and abs(tumor[0] - other[0]) < 10  # the tissue tinted red where the tumor is
