"""WSOL metric throughput: 1,000 score maps of 224 x 224 at a threshold step of 0.001.

Each map is scored completely: min-max normalisation, pixel counts for PxAP (with an ignore region) and the
box sweep (the largest component's box for MaxBoxAcc, every component's for MaxBoxAccV2) at all 1,000
thresholds, through :func:`pathattn.evaluate.protocol.score_split`, in both modes.

Same-run comparison: a per-threshold loop written the way the published evaluation code works (for every
threshold: ``cv2.threshold`` + ``cv2.findContours`` + boxes + IoUs; ``np.histogram`` per map), on the first
``--loop-maps`` maps (it is slow), reported per map beside the vectorised sweeps. Wall-clock and CPU
seconds of this process are both printed: on a shared machine the CPU time is the steadier figure. Usage::

    python benchmarks/wsol.py                       # 1,000 maps, step 0.001, loop on 50 maps
    python benchmarks/wsol.py --n-maps 200 --step 0.01
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import cv2
import numpy as np

from pathattn.evaluate import protocol
from pathattn.scoremaps import wsol


def synthetic(n: int, seed: int = 0) -> tuple[list[np.ndarray], dict[str, protocol.Sample]]:
    """Smooth maps (the mask blurred by 2 to 20 px, plus noise) with a mask (the top 10% of smoothed noise), an
    ignore ring and the boxes of the mask's components."""
    rng = np.random.default_rng(seed)
    maps, samples = [], {}
    for i in range(n):
        blobs = cv2.GaussianBlur(rng.random((224, 224)), (0, 0), 16)
        truth = blobs >= np.quantile(blobs, 0.9)
        maps.append(cv2.GaussianBlur(truth + rng.random((224, 224)), (0, 0), rng.uniform(2, 20)))
        ignore = cv2.dilate(truth.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~truth
        outlines = cv2.findContours(truth.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
        boxes = np.array([(x, y, x + w - 1, y + h - 1) for x, y, w, h in map(cv2.boundingRect, outlines)])
        samples[str(i)] = protocol.Sample(str(i), truth=truth, ignore=ignore, boxes=boxes)
    return maps, samples


def loop_per_threshold(score: np.ndarray, sample: protocol.Sample, thresholds: np.ndarray) -> None:
    """One map, one threshold at a time, as the published evaluation code does it."""
    image = (score * 255).astype(np.uint8)
    for multi in (False, True):
        best = []
        for tau in thresholds:
            _, binary = cv2.threshold(image, int(tau * image.max()), 255, cv2.THRESH_BINARY)
            contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
            if not contours:
                boxes = np.zeros((1, 4))
            else:
                chosen = contours if multi else [max(contours, key=cv2.contourArea)]
                boxes = np.array([(x, y, x + w, y + h) for x, y, w, h in map(cv2.boundingRect, chosen)])
            best.append(wsol.box_iou(boxes, sample.boxes).max())
    edges = np.append(thresholds, [1.0, 2.0, 3.0])
    np.histogram(score[sample.truth], bins=edges)
    np.histogram(score[~sample.truth & ~sample.ignore], bins=edges)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-maps", type=int, default=1000)
    parser.add_argument("--step", type=float, default=0.001)
    parser.add_argument("--loop-maps", type=int, default=50, help="maps timed with the per-threshold loop")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    raw, samples = synthetic(args.n_maps)
    thresholds = wsol.threshold_grid(args.step)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, OpenCV {cv2.__version__}, "
          f"numpy {np.__version__}; {args.n_maps} maps 224x224, {len(thresholds)} thresholds")  # fmt: skip
    per_map = {}
    for mode in wsol.MODES:
        start, cpu = time.perf_counter(), time.process_time()
        maps = {str(i): wsol.normalize_map(m, mode=mode) for i, m in enumerate(raw)}
        scores = protocol.score_split(maps, samples, thresholds, mode)
        seconds, per_map[mode] = time.perf_counter() - start, (time.process_time() - cpu) / args.n_maps
        summary = protocol.summarize(scores)
        print(f"vectorised, {mode:9s}: {seconds:6.1f} s wall, {per_map[mode] * args.n_maps:6.1f} s CPU "
              f"({1e3 * per_map[mode]:.1f} ms/map); PxAP {summary['pxap']:.3f}, "
              f"MaxBoxAccV2 {summary['max_box_acc_v2']:.3f}")  # fmt: skip
    subset = min(args.loop_maps, args.n_maps)
    cpu = time.process_time()
    for i in range(subset):
        loop_per_threshold(wsol.normalize_map(raw[i], mode="reference"), samples[str(i)], thresholds)
    loop = (time.process_time() - cpu) / subset
    print(f"per-threshold loop:   {1e3 * loop:.1f} ms/map CPU on {subset} maps (about {loop * args.n_maps:.0f} s for "
          f"{args.n_maps}); vectorised is {loop / per_map['reference']:.1f}x faster (reference mode), "
          f"{loop / per_map['default']:.1f}x (default mode)")  # fmt: skip


if __name__ == "__main__":
    main()
