"""QuPath-compatible GeoJSON reading and writing."""

import json

import pytest
from shapely.geometry import Point, Polygon, box

from pathattn.errors import PathattnError
from pathattn.io.geojson import Annotation, read_annotations, union_by_class, write_annotations


def test_round_trip_is_qupath_shaped(tmp_path):
    path = tmp_path / "a.geojson"
    hole = Polygon([(0, 0), (100, 0), (100, 100), (0, 100)], [[(20, 20), (40, 20), (40, 40), (20, 40)]])
    write_annotations(path, [Annotation(hole, "Tumor"), Annotation(box(200, 200, 300, 250), "Stroma")])
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection"
    props = doc["features"][0]["properties"]
    assert props["objectType"] == "annotation"
    assert props["classification"]["name"] == "Tumor" and len(props["classification"]["color"]) == 3
    back = read_annotations(path)
    assert [a.name for a in back] == ["Tumor", "Stroma"]
    assert back[0].geometry.area == pytest.approx(100 * 100 - 20 * 20)


def test_lenient_reading(tmp_path):
    features = [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 0]]]},
         "properties": {"classification": "Tumor"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 5]}, "properties": {}},
        {"type": "Feature",
         "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]]},
         "properties": {"name": "bowtie"}},
        {"type": "Feature", "geometry": None, "properties": {}},
    ]  # fmt: skip
    path = tmp_path / "list.json"
    path.write_text(json.dumps(features))
    back = read_annotations(path)
    assert [a.name for a in back] == ["Tumor", "bowtie"]
    assert back[1].geometry.is_valid and back[1].geometry.area == pytest.approx(50)


def test_union_by_class():
    regions = union_by_class(
        [Annotation(box(0, 0, 10, 10), "T"), Annotation(box(5, 0, 15, 10), "T"), Annotation(Point(0, 0).buffer(1), "S")]
    )
    assert list(regions) == ["T", "S"]
    assert regions["T"].area == pytest.approx(150)


@pytest.mark.parametrize("content", ["not json", '{"type": "Topology"}', "[1, 2]"])
def test_bad_files_name_the_file(tmp_path, content):
    path = tmp_path / "bad.geojson"
    path.write_text(content)
    with pytest.raises(PathattnError, match="bad.geojson"):
        read_annotations(path)


def test_missing_file(tmp_path):
    with pytest.raises(PathattnError, match="not found"):
        read_annotations(tmp_path / "none.geojson")
