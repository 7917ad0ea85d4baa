"""The report in headless Chromium (Debian's `chromium`, which `make test` installs): heatmaps load and are
not blank, the page renders, and nothing is fetched beyond the file itself (moved to another folder).

Without chromium the test fails, telling to run `make test`; it skips only when PATHATTN_NO_BROWSER is set.
"""

from __future__ import annotations

import base64
import os
import shutil

import cv2
import numpy as np
import pytest

from pathattn.report.html import write_report
from pathattn.report.inputs import load_inputs

WHITE = cv2.imencode(".png", np.full((4, 4, 3), 255, np.uint8))[1].tobytes()
BLANK_PNG = "data:image/png;base64," + base64.b64encode(WHITE).decode()


def _unavailable(what: str) -> None:
    if os.environ.get("PATHATTN_NO_BROWSER"):
        pytest.skip(f"{what}; PATHATTN_NO_BROWSER is set")
    pytest.fail(f"{what}: run 'make test', which installs Debian's chromium and the dev extra (playwright)")


def chromium() -> str:
    """The Debian chromium binary (never a browser that playwright downloads)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        _unavailable("chromium is not installed")
    return path


def sync_playwright():  # noqa: ANN201 - playwright's context manager
    try:
        from playwright.sync_api import sync_playwright as start
    except ImportError:
        _unavailable("the playwright package is not installed")
    return start()


def decoded(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def is_blank(image: np.ndarray) -> bool:
    """Nearly one colour: low spread or few distinct colours."""
    quantised = image.reshape(-1, 3).astype(np.int32) // 8
    colours = len(np.unique(quantised[:, 0] << 10 | quantised[:, 1] << 5 | quantised[:, 2]))
    return float(image.std()) < 10.0 or colours < 20


def heatmaps(page) -> list[tuple[bool, np.ndarray | None]]:  # noqa: ANN001 - a playwright Page
    """For each ``img.heatmap``: loaded (complete with a natural width) and its element screenshot."""
    images = page.locator("img.heatmap")
    out = []
    for i in range(images.count()):
        image = images.nth(i)
        loaded = image.evaluate("e => e.complete && e.naturalWidth > 0")
        out.append((loaded, decoded(image.screenshot()) if loaded else None))
    return out


def test_heatmaps_load_and_are_not_blank(study, tmp_path):
    out = write_report(load_inputs(study["root"], annotations=study["annotations"]), tmp_path / "a" / "report.html")
    moved = tmp_path / "b" / "report.html"
    moved.parent.mkdir()
    shutil.move(out, moved)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(moved.as_uri(), wait_until="load")
        found = heatmaps(page)
        assert len(found) == 3
        for loaded, shot in found:
            assert loaded and shot is not None and shot.shape[1] > 200 and not is_blank(shot)
        full = decoded(page.screenshot(full_page=True))
        assert full.shape[0] > 2000 and not is_blank(full)
        assert [r for r in requests if not r.startswith("data:")] == [moved.as_uri()]
        page.set_content(f'<img class="heatmap" src="{BLANK_PNG}" width="300"><img class="heatmap" src="data:,x">')
        (white_loaded, white), (broken_loaded, _) = heatmaps(page)  # the checks catch a blank and a broken image
        assert white_loaded and is_blank(white) and not broken_loaded
        browser.close()
