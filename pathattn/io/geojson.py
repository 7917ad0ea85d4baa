"""QuPath-compatible GeoJSON: read and write classified polygons in level-0 pixel coordinates.

QuPath exports and imports a ``FeatureCollection`` whose features carry
``properties.objectType`` (``"annotation"`` or ``"detection"``) and
``properties.classification = {"name": ..., "color": [r, g, b]}``. Coordinates are level-0 pixels with the
origin at the top-left of the slide, which is also pathattn's coordinate space.

Reading is lenient about what QuPath and other tools write (a bare feature list, a single feature,
``classification`` as a string, ``name``/``class`` properties); writing always produces the QuPath form.
"""

from __future__ import annotations

import json
import os
import uuid
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry

from pathattn.errors import PathattnError
from pathattn.io.atomic import write_text_atomic

UNCLASSIFIED = "Unclassified"
_COLORS = {"Tissue": (0, 160, 0), "Tumor": (200, 0, 0), "Tumour": (200, 0, 0), "Stroma": (150, 200, 150)}
ObjectType = Literal["annotation", "detection"]


@dataclass(frozen=True)
class Annotation:
    """One classified region.

    Args:
        geometry: a Polygon or MultiPolygon in level-0 pixels.
        name: the class name (QuPath's ``classification.name``).
        properties: extra properties kept on write (e.g. QuPath ``measurements``).
    """

    geometry: BaseGeometry
    name: str = UNCLASSIFIED
    properties: Mapping[str, Any] = field(default_factory=dict)


def class_color(name: str) -> tuple[int, int, int]:
    """A stable RGB colour for a class name (QuPath's defaults for common classes)."""
    if name in _COLORS:
        return _COLORS[name]
    h = zlib.crc32(name.encode())
    return (64 + h % 192, 64 + (h >> 8) % 192, 64 + (h >> 16) % 192)


def _class_name(props: Mapping[str, Any]) -> str:
    cls = props.get("classification")
    if isinstance(cls, Mapping) and cls.get("name"):
        return str(cls["name"])
    if isinstance(cls, str) and cls:
        return cls
    for key in ("name", "class", "label"):
        if props.get(key):
            return str(props[key])
    return UNCLASSIFIED


def _features(doc: Any) -> list[Mapping[str, Any]]:
    if isinstance(doc, list):
        return doc
    if isinstance(doc, Mapping) and doc.get("type") == "FeatureCollection":
        return list(doc.get("features") or [])
    if isinstance(doc, Mapping) and doc.get("type") == "Feature":
        return [doc]
    if isinstance(doc, Mapping) and "coordinates" in doc:  # a bare geometry
        return [{"type": "Feature", "geometry": doc, "properties": {}}]
    raise ValueError("expected a FeatureCollection, a Feature, a list of features or a geometry")


def _polygonal(geometry: BaseGeometry) -> BaseGeometry | None:
    """The polygonal part of a geometry (made valid), or None if it has no area."""
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    if geometry.geom_type == "GeometryCollection":
        parts = [g for g in geometry.geoms if g.geom_type in ("Polygon", "MultiPolygon")]
        geometry = shapely.union_all(parts) if parts else Polygon()
    if geometry.geom_type not in ("Polygon", "MultiPolygon") or geometry.is_empty:
        return None
    return geometry


def read_annotations(path: str | os.PathLike[str]) -> list[Annotation]:
    """Read the polygonal regions of a GeoJSON file.

    Points and lines are skipped (they have no area); invalid polygons are repaired.

    Args:
        path: a ``.geojson``/``.json`` file, as exported by QuPath.

    Returns:
        The regions, in file order.

    Raises:
        PathattnError: the file is missing or is not valid GeoJSON.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        features = _features(doc)
        out = []
        for feat in features:
            if not feat.get("geometry"):
                continue
            geometry = _polygonal(shape(feat["geometry"]))
            if geometry is not None:
                props = dict(feat.get("properties") or {})
                out.append(Annotation(geometry, _class_name(props), props))
    except FileNotFoundError:
        raise PathattnError(f"GeoJSON file not found: {path}") from None
    except (ValueError, TypeError, KeyError, AttributeError, shapely.errors.ShapelyError) as err:
        raise PathattnError(
            f"{path} is not valid GeoJSON ({err}); export it from QuPath as GeoJSON or fix the file"
        ) from None
    return out


def write_annotations(
    path: str | os.PathLike[str],
    annotations: Iterable[Annotation],
    object_type: ObjectType = "annotation",
) -> None:
    """Write regions as a QuPath-importable FeatureCollection (atomically).

    Args:
        path: the output ``.geojson``.
        annotations: the regions; empty geometries are dropped.
        object_type: QuPath object type of every feature.
    """
    features = []
    for ann in annotations:
        if ann.geometry.is_empty:
            continue
        props = dict(ann.properties)
        props["objectType"] = object_type
        props["classification"] = {"name": ann.name, "color": list(class_color(ann.name))}
        features.append(
            {"type": "Feature", "id": str(uuid.uuid4()), "geometry": mapping(ann.geometry), "properties": props}
        )
    doc = {"type": "FeatureCollection", "features": features}
    write_text_atomic(path, json.dumps(doc, separators=(",", ":")))


def union_by_class(annotations: Iterable[Annotation]) -> dict[str, BaseGeometry]:
    """Merge the regions of each class into one (Multi)Polygon, classes in first-seen order."""
    groups: dict[str, list[BaseGeometry]] = {}
    for ann in annotations:
        groups.setdefault(ann.name, []).append(ann.geometry)
    return {name: shapely.union_all(parts) for name, parts in groups.items()}


def as_polygons(geometry: BaseGeometry) -> list[Polygon]:
    """The polygons of a Polygon or MultiPolygon (empty list for an empty geometry)."""
    if geometry.is_empty:
        return []
    if isinstance(geometry, MultiPolygon):
        return list(geometry.geoms)
    if isinstance(geometry, Polygon):
        return [geometry]
    return [g for g in getattr(geometry, "geoms", []) if isinstance(g, Polygon)]
