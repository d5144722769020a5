"""Padding and length-ordered batching used by evaluation (training batches: tests/recipes, test_regressions)."""

from sftkit.data.batching import longest_first, pad_rows


def test_pad_rows_right_and_left():
    ids, mask = pad_rows([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, mask = pad_rows([[5, 6, 7], [8]], pad_id=0, left=True)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_longest_first_batches_cover_every_index_once():
    assert longest_first([2, 9, 4, 9, 1], batch_size=2) == [[1, 3], [2, 0], [4]]  # ties keep input order
