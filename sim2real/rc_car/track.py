"""Race tracks: a closed centre line (periodic spline through control points) and a constant width.

A track is rasterised once into a ground grid that holds, per cell, the index of the nearest
centre-line sample and the ground colour. Projecting a car onto the track and rendering the
camera are then table look-ups, not searches.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.interpolate import splev, splprep
from scipy.spatial import cKDTree

SAMPLE_SPACING_M = 0.02  # centre-line resolution; lateral error from the index look-up stays < 1 cm
CELL_M = 0.04  # ground-grid resolution (camera texture and projection look-up)
MARGIN_M = 2.0  # grass around the track so the camera never samples outside the grid
KERB_WIDTH_M = 0.08
KERB_STRIPE_M = 0.3

ASPHALT_RGB = (88, 88, 92)
KERB_RGB = ((235, 235, 235), (200, 40, 40))  # alternating stripes, so speed is visible in the image
GRASS_RGB = (58, 120, 52)


@dataclass(frozen=True)
class TrackSpec:
    name: str
    control_points_m: tuple[tuple[float, float], ...]  # counter-clockwise, first point = start/finish
    width_m: float


# Control points in metres, sized for a 1/10 car (≈0.4 × 0.2 m) indoors or on a car park.
TRACKS: dict[str, TrackSpec] = {
    "loop": TrackSpec(
        "loop",
        ((0, 0), (5, 0), (9, 0.5), (12, 3), (12, 6), (9, 8), (5, 7), (2, 8.5), (-1, 7), (-2, 4), (-1.5, 1)),
        width_m=1.2,
    ),
    # a 180° hairpin of ≈1 m centre radius at the end of the long straight
    "hairpin": TrackSpec(
        "hairpin",
        ((0, 0), (5, 0), (10, 0), (11.0, 0.3), (11.35, 1.0), (11.0, 1.7), (10, 2.0), (7, 2.2),
         (5, 3.5), (5, 6), (3, 7.5), (0, 7), (-2.5, 5), (-2.5, 2), (-1.5, 0.3)),
        width_m=1.2,
    ),
    "chicane": TrackSpec(
        "chicane",
        ((0, 0), (4, 0), (6, 1.0), (8, 0), (12, 0), (14.5, 1.5), (14.5, 5.5), (12, 7), (8, 7), (6, 6.0),
         (4, 7), (0, 7), (-2.5, 5.5), (-2.5, 1.5)),
        width_m=1.2,
    ),
}
DEFAULT_TRACK = "loop"


class Track:
    def __init__(self, spec: TrackSpec):
        self.spec, self.name, self.width_m = spec, spec.name, float(spec.width_m)
        self.half_width_m = 0.5 * self.width_m
        points = np.asarray(spec.control_points_m, float)
        closed = np.vstack([points, points[:1]])
        tck, _ = splprep([closed[:, 0], closed[:, 1]], s=0, per=1)
        dense = np.stack(splev(np.linspace(0, 1, 20 * len(points) * 50, endpoint=False), tck), axis=1)
        seg = np.linalg.norm(np.diff(np.vstack([dense, dense[:1]]), axis=0), axis=1)
        arc = np.concatenate([[0.0], np.cumsum(seg)])
        self.length_m = float(arc[-1])
        count = int(round(self.length_m / SAMPLE_SPACING_M))
        self.s_m = np.arange(count) * (self.length_m / count)
        loop = np.vstack([dense, dense[:1]])
        self.centre_m = np.stack([np.interp(self.s_m, arc, loop[:, 0]), np.interp(self.s_m, arc, loop[:, 1])], axis=1)
        d = np.roll(self.centre_m, -1, axis=0) - np.roll(self.centre_m, 1, axis=0)
        self.tangent = d / np.linalg.norm(d, axis=1, keepdims=True)
        self.normal = np.stack([-self.tangent[:, 1], self.tangent[:, 0]], axis=1)  # points left
        self.heading_rad = np.arctan2(self.tangent[:, 1], self.tangent[:, 0])
        dheading = np.angle(np.exp(1j * (np.roll(self.heading_rad, -1) - np.roll(self.heading_rad, 1))))
        self.curvature_1_m = dheading / (2 * self.length_m / count)
        self._rasterise()

    def _rasterise(self) -> None:
        lo = self.centre_m.min(axis=0) - self.half_width_m - MARGIN_M
        hi = self.centre_m.max(axis=0) + self.half_width_m + MARGIN_M
        self.grid_origin_m = lo
        self.grid_shape = tuple(np.ceil((hi - lo) / CELL_M).astype(int)[::-1])  # (rows = y, cols = x)
        rows, cols = self.grid_shape
        ys, xs = np.meshgrid(lo[1] + (np.arange(rows) + 0.5) * CELL_M, lo[0] + (np.arange(cols) + 0.5) * CELL_M, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], axis=1)
        _, nearest = cKDTree(self.centre_m).query(cells)
        self.grid_nearest = nearest.astype(np.int32).reshape(rows, cols)
        lateral = np.abs(np.einsum("ij,ij->i", cells - self.centre_m[nearest], self.normal[nearest]))
        colour = np.empty((cells.shape[0], 3), np.uint8)
        grass = np.random.default_rng(0).integers(-14, 15, (cells.shape[0], 1))  # texture: motion is visible on grass too
        colour[:] = np.clip(np.array(GRASS_RGB) + grass, 0, 255)
        kerb = lateral <= self.half_width_m
        stripe = (self.s_m[nearest] // KERB_STRIPE_M).astype(int) % 2
        colour[kerb] = np.array(KERB_RGB)[stripe[kerb]]
        colour[lateral <= self.half_width_m - KERB_WIDTH_M] = ASPHALT_RGB
        self.grid_rgb = colour.reshape(rows, cols, 3)

    def cells(self, xy_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid (row, col) of world points (..., 2), clamped to the grid."""
        ij = np.floor((xy_m - self.grid_origin_m) / CELL_M).astype(np.intp)
        return np.clip(ij[..., 1], 0, self.grid_shape[0] - 1), np.clip(ij[..., 0], 0, self.grid_shape[1] - 1)

    def project(self, xy_m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sample index, arc length s_m, signed lateral offset_m, left positive) of points (N, 2)."""
        index = self.grid_nearest[self.cells(xy_m)]
        rel = xy_m - self.centre_m[index]
        s = self.s_m[index] + np.einsum("ij,ij->i", rel, self.tangent[index])
        return index, s, np.einsum("ij,ij->i", rel, self.normal[index])

    def index_at(self, s_m) -> np.ndarray:
        return np.round(np.asarray(s_m) / self.length_m * len(self.s_m)).astype(np.intp) % len(self.s_m)

    def pose_at(self, s_m: float, lateral_m: float = 0.0) -> tuple[float, float, float]:
        i = int(self.index_at(s_m))
        x, y = self.centre_m[i] + lateral_m * self.normal[i]
        return float(x), float(y), float(self.heading_rad[i])


@lru_cache(maxsize=None)
def get_track(name: str) -> Track:
    if name not in TRACKS:
        raise ValueError(f"unknown track {name!r}; choose one of {sorted(TRACKS)}.")
    return Track(TRACKS[name])
