"""The tests' own yardstick for labels from two computations (tests/agreement.py)."""

from __future__ import annotations

import numpy as np
import pytest
from agreement import assert_labels_agree, clear_pixels


def test_near_ties_are_ignored_and_clear_differences_caught() -> None:
    scores = np.zeros((3, 4, 50), np.float32)
    scores[0], scores[1] = 0.9, 0.1  # class 0 wins clearly everywhere...
    scores[:2, 0, 0] = [0.5000001, 0.4999999]  # ...but at one near-tie
    want = scores.argmax(0)
    got = want.copy()
    got[0, 0] = 1  # another library's sum order may flip the near-tie
    assert clear_pixels(scores).sum() == 199
    assert_labels_agree(got, want, scores)
    got[3, 7] = 2  # a clear pixel that differs is a real difference
    with pytest.raises(AssertionError, match="1 of 199 clear pixels differ"):
        assert_labels_agree(got, want, scores)
    with pytest.raises(AssertionError, match="only 0.00% of pixels are clear"):
        assert_labels_agree(want, want, np.full((3, 4, 50), 1 / 3, np.float32))
