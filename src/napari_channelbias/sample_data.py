"""A procedural serial-section-EM-like volume with labels, for demos, tests and the napari sample menu.

The tissue is a field of cells: the Voronoi cells of seed points that drift slowly with z, so that
neighbouring sections look alike but are not identical, as in real serial sections. Membranes are dark
bands a few pixels wide along the cell borders; mitochondria are dark, striped (cristae-like) ellipses
inside some cells that grow and shrink over a range of sections. The image gets a cytoplasm texture
correlated in z, a mild blur and noise. Labels: 0 = cell interior, 1 = membrane, 2 = mitochondrion.

The signal is kept clear on purpose (membranes much darker than cytoplasm, moderate noise) so a tiny
U-Net learns it visibly within a minute on a CPU.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

INTERIOR, MEMBRANE, MITOCHONDRION = 0, 1, 2
CLASS_NAMES = ("interior", "membrane", "mitochondrion")

_CELL_SPACING = 40.0  # px between neighbouring cell centres (jittered grid)
_MEMBRANE_HALF_WIDTH = 2.2  # px from the cell border on each side
_DRIFT_PER_SLICE = 0.6  # px, standard deviation of each seed's drift velocity


def sample_scale() -> tuple[float, float, float]:
    """Voxel size (z, y, x) in nanometres the sample imitates: 50 nm sections, 4 nm pixels (ssTEM)."""
    return (50.0, 4.0, 4.0)


def _cell_seeds(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Seed positions (n, 2) on a jittered grid covering the slice plus a margin (no edge artefacts)."""
    margin = 2 * _CELL_SPACING
    ys = np.arange(-margin, height + margin, _CELL_SPACING)
    xs = np.arange(-margin, width + margin, _CELL_SPACING)
    grid = np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1).reshape(-1, 2)
    return grid + rng.uniform(-0.35, 0.35, grid.shape) * _CELL_SPACING


def _border_distance(points: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of each point to the nearest Voronoi border, and the index of its cell.

    The border between the nearest seed p1 and the second-nearest p2 is their perpendicular bisector;
    a point's distance to it is (d2^2 - d1^2) / (2 |p1 - p2|), which gives membranes of even width.
    """
    dist, idx = cKDTree(seeds).query(points, k=2)
    gap = np.linalg.norm(seeds[idx[:, 0]] - seeds[idx[:, 1]], axis=1)
    return (dist[:, 1] ** 2 - dist[:, 0] ** 2) / (2.0 * np.maximum(gap, 1e-6)), idx[:, 0]


def make_sample(shape: tuple[int, int, int] = (32, 256, 256), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Generate the sample volume and its labels.

    Parameters
    ----------
    shape
        ``(Z, Y, X)`` of the volume.
    seed
        Seed of every random choice: the same seed gives the same volume, bit for bit.

    Returns
    -------
    image, labels
        Both uint8 ``(Z, Y, X)``. Labels: 0 = cell interior, 1 = membrane, 2 = mitochondrion.
    """
    n_z, height, width = (int(s) for s in shape)
    if min(n_z, height, width) < 1:
        raise ValueError(f"shape must be positive in every axis, got {shape}")
    rng = np.random.default_rng(seed)

    seeds0 = _cell_seeds(rng, height, width)
    n_cells = len(seeds0)
    velocity = rng.normal(0.0, _DRIFT_PER_SLICE, (n_cells, 2))
    wobble_phase = rng.uniform(0, 2 * np.pi, (n_cells, 2))
    cell_tone = rng.normal(0.0, 8.0, n_cells)  # cells differ slightly in brightness, as in real EM
    half_width = _MEMBRANE_HALF_WIDTH * rng.uniform(0.85, 1.2, n_cells)

    # Mitochondria: about three in five cells hold one, offset from its seed, present over a z range.
    has_mito = rng.random(n_cells) < 0.6
    mito_offset = rng.uniform(-0.15, 0.15, (n_cells, 2)) * _CELL_SPACING
    mito_axes = np.stack([rng.uniform(9, 14, n_cells), rng.uniform(4, 7, n_cells)], axis=1)
    mito_angle = rng.uniform(0, np.pi, n_cells)
    mito_spin = rng.normal(0, 0.03, n_cells)
    mito_zc = rng.uniform(-0.2, 1.2, n_cells) * n_z
    mito_zr = rng.uniform(6, 16, n_cells)

    # Textures correlated between neighbouring sections: smoothed 3-D noise.
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (n_z, height, width)).astype(np.float32), (1.5, 3, 3))
    texture /= texture.std() + 1e-6
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    points = np.stack([yy.ravel(), xx.ravel()], axis=1)

    image = np.empty((n_z, height, width), np.uint8)
    labels = np.empty((n_z, height, width), np.uint8)
    for z in range(n_z):
        seeds = seeds0 + velocity * z + 2.0 * np.sin(0.15 * z + wobble_phase)
        border, cell = _border_distance(points, seeds)
        border, cell = border.reshape(height, width), cell.reshape(height, width)
        membrane = border < half_width[cell]

        mito = np.zeros((height, width), bool)
        for i in np.flatnonzero(has_mito & (np.abs(z - mito_zc) < mito_zr)):
            size = np.sqrt(1.0 - ((z - mito_zc[i]) / mito_zr[i]) ** 2)  # an ellipsoid cut by the section
            cy, cx = seeds[i] + mito_offset[i]
            a, b = mito_axes[i] * size
            if b < 1.0:
                continue
            # Only the ellipse's bounding box is evaluated.
            y0, y1 = max(int(cy - a) - 1, 0), min(int(cy + a) + 2, height)
            x0, x1 = max(int(cx - a) - 1, 0), min(int(cx + a) + 2, width)
            if y0 >= y1 or x0 >= x1:
                continue
            t = mito_angle[i] + mito_spin[i] * z
            dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
            u, v = dy * np.cos(t) + dx * np.sin(t), -dy * np.sin(t) + dx * np.cos(t)
            inside = ((u / a) ** 2 + (v / b) ** 2 <= 1.0) & (cell[y0:y1, x0:x1] == i)
            mito[y0:y1, x0:x1] |= inside
        mito &= ~membrane

        # Intensities: bright textured cytoplasm, dark membranes, darker striped mitochondria.
        tex = texture[z]
        slice_ = 175.0 + cell_tone[cell] + 12.0 * tex
        slice_ = np.where(membrane, 65.0 + 8.0 * tex, slice_)
        cristae = np.sin(0.9 * (xx * 0.7 + yy * 0.7) + 2.0 * tex)
        slice_ = np.where(mito, 95.0 + 18.0 * cristae, slice_)
        slice_ = ndimage.gaussian_filter(slice_, 1.0) + rng.normal(0.0, 9.0, (height, width))
        image[z] = np.clip(np.rint(slice_), 0, 255).astype(np.uint8)

        lab = np.full((height, width), INTERIOR, np.uint8)
        lab[membrane] = MEMBRANE
        lab[mito] = MITOCHONDRION
        labels[z] = lab
    return image, labels
