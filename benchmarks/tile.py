"""Tiling throughput against a bare OpenSlide read loop over the same patches, in the same run.

Tiling (tissue detection, grid, coverage, QC image, GeoJSON and HDF5 writing) should cost at most 10% of
the time it takes to read the patches it lists once. Both timings run here, on the same slides:

    python benchmarks/tile.py                      # 2 generated 8 x 6 mm slides at 0.5 µm/px
    python benchmarks/tile.py --mpp 0.25 --width 24576 --height 18432   # 40x scans, patches at 20x
    python benchmarks/tile.py --slides DIR --repeat 3

Prints patches/s of each and the ratio tiling time / read time.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import openslide

from pathattn.io.coords import read_coords
from pathattn.io.samples import entries_from_paths
from pathattn.tile.run import TileJob, tile_slide


def bare_read(slide_path: Path, coords_file: Path) -> tuple[int, float]:
    """Read every listed patch once with OpenSlide; return (patches, seconds)."""
    data = read_coords(coords_file)
    level, size = int(data.attrs["patch_level"]), int(data.attrs["read_size"])
    start = time.perf_counter()
    slide = openslide.OpenSlide(str(slide_path))
    for x, y in data.coords.tolist():
        slide.read_region((x, y), level, (size, size))
    slide.close()
    return len(data), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slides", nargs="+", help="slides or folders (default: a generated synthetic cohort)")
    parser.add_argument("--n-slides", type=int, default=2, help="slides to generate when --slides is not given")
    parser.add_argument("--width", type=int, default=16384, help="level-0 width of generated slides, pixels")
    parser.add_argument("--height", type=int, default=12288, help="level-0 height of generated slides, pixels")
    parser.add_argument("--mpp", type=float, default=0.5, help="level-0 µm/px of generated slides")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (the median is reported)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.slides:
            slides = args.slides
        else:
            from pathattn.synth.cohort import generate_cohort

            generate_cohort(Path(tmp) / "cohort", args.n_slides, 0, width=args.width, height=args.height, mpp=args.mpp)
            slides = [str(Path(tmp) / "cohort" / "slides")]
        entries = entries_from_paths(slides)
        job = TileJob(Path(tmp) / "tiles", overwrite=True)
        tile_times, read_times, patches = [], [], 0
        for _ in range(args.repeat):
            start = time.perf_counter()
            results = [tile_slide(e, job) for e in entries]
            tile_times.append(time.perf_counter() - start)
            failed = [r for r in results if r.status == "failed"]
            if failed:
                raise SystemExit(f"tiling failed: {failed[0].slide_id}: {failed[0].error}")
            reads = [bare_read(e.path, job.coords_path(e.slide_id)) for e in entries]
            patches = sum(n for n, _ in reads)
            read_times.append(sum(t for _, t in reads))
    tile_s, read_s = statistics.median(tile_times), statistics.median(read_times)
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    print(f"slides: {len(entries)}  patches: {patches}  repeats: {args.repeat} (median)")
    print(f"tiling          {patches / tile_s:10.1f} patches/s  ({tile_s:.3f} s)")
    print(f"bare read_region{patches / read_s:10.1f} patches/s  ({read_s:.3f} s)")
    print(f"ratio tiling/read time: {tile_s / read_s:.3f}  (goal <= 0.10)")


if __name__ == "__main__":
    main()
