import numpy as np
import pytest
import scipy.sparse as sp
import torch

from benchmarks.ppr_false_negatives import held_out_hits, window_rows


def test_hits_mark_the_held_out_items_of_each_user_and_skip_padding():
    held = sp.csr_matrix(np.array([[0, 1, 0, 1], [1, 0, 0, 0]], dtype=np.float32))
    items = torch.tensor([[1, 2, 3], [3, 0, 2]])
    valid = torch.tensor([[True, True, True], [True, False, True]])  # user 1's item 0 is padding
    hits = held_out_hits(items, valid, held)
    assert hits.tolist() == [[True, False, True], [False, False, False]]


def test_window_rows_share_ratio_and_coverage_by_hand():
    hits = np.array([[True, False, True, False], [False, False, True, False]])
    valid = np.array([[True, True, True, True], [True, True, True, False]])
    rows = window_rows(hits, valid, n_held=8, base=0.1, windows=((0, 2), (2, 4), (4, 6)))
    assert [r["window"] for r in rows] == [(0, 2), (2, 4)]  # the window past the table is dropped
    first, second = rows
    assert first["pool"] == 4 and first["share"] == pytest.approx(0.25) and first["ratio"] == pytest.approx(2.5)
    assert first["covers"] == pytest.approx(1 / 8)
    # second window: real entries (0,2), (0,3), (1,2); held out: (0,2), (1,2)
    assert second["pool"] == 3 and second["share"] == pytest.approx(2 / 3) and second["covers"] == pytest.approx(2 / 8)
