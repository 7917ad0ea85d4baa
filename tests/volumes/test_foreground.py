import numpy as np

from pathattn.volumes.foreground import detection_steps, foreground_mask, upsample


def _body(shape=(40, 40, 10)):
    """An elliptic body at 40 HU with air lungs inside, a table below it, in air."""
    hu = np.full(shape, -1000.0, np.float32)
    i, j = np.mgrid[: shape[0], : shape[1]]
    body = ((i - 20) / 15) ** 2 + ((j - 18) / 12) ** 2 <= 1
    lung = ((i - 20) / 5) ** 2 + ((j - 18) / 4) ** 2 <= 1
    hu[body] = 40
    hu[lung] = -850
    hu[:, 36:38] = 200  # the table, not connected to the body
    return hu, body, lung


def test_ct_body_keeps_the_lungs_and_drops_the_table():
    hu, body, lung = _body()
    mask = foreground_mask(hu, "CT")
    assert mask[..., 5][body].all()  # lungs filled in
    assert not mask[:, 36:38].any()  # table removed
    assert not mask[..., 5][~body].any()


def test_otsu_for_other_modalities_and_empty_volumes():
    hu, body, _ = _body()
    pet = np.where(hu > -500, 1.0, 0.0).astype(np.float32)
    pet[:, 36:38] = 0
    pet[20, 18, 5] = 15.0  # a hot spot does not pull the threshold above the body
    mask = foreground_mask(pet, "PET")
    assert mask[..., 5][body].mean() > 0.95
    assert not foreground_mask(np.zeros((5, 5, 5), np.float32), "MR").any()
    assert not foreground_mask(np.full((5, 5, 5), -1000.0, np.float32), "CT").any()


def test_small_voxels_are_searched_on_a_coarser_grid_and_answered_on_the_full_one():
    hu, body, lung = _body()
    fine = np.asfortranarray(np.repeat(np.repeat(hu, 3, axis=0), 3, axis=1))  # 120 x 120 at 1 mm in-plane
    assert detection_steps((1.0, 1.0, 3.0)) == (3, 3, 1)
    assert detection_steps((1.5, 0.8, 5.0)) == (2, 3, 1)
    mask = foreground_mask(fine, "CT", spacing=(1.0, 1.0, 3.0))
    assert mask.shape == fine.shape and mask.flags.f_contiguous  # written as NIfTI without a transposing copy
    expected = np.repeat(np.repeat(foreground_mask(hu, "CT"), 3, axis=0), 3, axis=1)
    assert np.array_equal(mask, expected)


def test_upsample_covers_grids_that_the_step_does_not_divide():
    coarse = np.random.default_rng(0).random((4, 3, 2)) > 0.5
    out = upsample(coarse, (3, 2, 1), (11, 6, 2))
    i, j, k = np.meshgrid(np.arange(11), np.arange(6), np.arange(2), indexing="ij")
    assert np.array_equal(out, coarse[i // 3, j // 2, k])
