"""The peers' no-reference quality, called as they are: the ``brisque`` package's BRISQUE
through its own feature and prediction code, and ``pypiqe``'s PIQE (tests/test_iqa.py and
bench/bench_signals.py)."""

import warnings

import numpy as np

FLAT_MSCN = 1e-10  # vidqa's one deviation (vidqa.metrics.brisque.FLAT_MSCN), applied on request


def package_brisque():
    """``score(rgb, snap=False)``: the package's BRISQUE of a uint8 RGB frame.

    Its ``score()`` fails on NumPy 2 (``float()`` of the 1-element arrays its fit returns), so
    this calls the steps ``score()`` calls, converting those arrays to floats; ``snap`` sets the
    package's MSCN within 1e-10 of 0 to 0, as vidqa does. ``score.reference`` is the package's
    ``BRISQUE`` object (its libsvm model)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from brisque import BRISQUE
    import cv2
    import skimage.color

    reference = BRISQUE()

    def features(luma, snap):
        m = reference.calculate_mscn_coefficients(luma, 7, 7 / 6)
        if snap:
            m = np.where(np.abs(m) < FLAT_MSCN, 0.0, m)
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a flat frame: 0/0 in the fit, the score is NaN
            for k, x in enumerate(reference.calculate_pair_product_coefficients(m).values()):
                fit = (float(np.ravel(v)[0]) for v in reference.asymmetric_generalized_gaussian_fit(x))
                alpha, mean, sl, sr = fit
                out += [alpha, (sl**2 + sr**2) / 2] if k == 0 else [alpha, mean, sl**2, sr**2]
        return out

    def score(rgb, snap=False):
        luma = skimage.color.rgb2gray(rgb)
        half = cv2.resize(luma, None, fx=1 / 2, fy=1 / 2, interpolation=cv2.INTER_CUBIC)
        return reference.calculate_image_quality_score(features(luma, snap) + features(half, snap))

    score.reference = reference
    return score


def pypiqe_rgb(rgb) -> float:
    """pypiqe's PIQE of a uint8 RGB frame. pypiqe converts with OpenCV's BGR2GRAY: it is handed
    BGR, so it reads MATLAB's rgb2gray luma."""
    from pypiqe import piqe

    return float(piqe(np.ascontiguousarray(rgb[:, :, ::-1]))[0])
