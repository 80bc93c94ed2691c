from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tilecast.demo.metrics import label_components, object_scores, pixel_iou
from tilecast.errors import InputError


def blank(shape=(20, 30)):
    return np.zeros(shape, dtype=bool)


def test_pixel_iou_counts_overlap_over_union():
    pred, truth = blank(), blank()
    pred[0, 0:4] = True
    truth[0, 2:6] = True
    assert pixel_iou(pred, truth) == pytest.approx(2 / 6)


def test_pixel_iou_skips_ignored_pixels():
    pred, truth, ignore = blank(), blank(), blank()
    pred[0, 0:4] = True
    truth[0, 2:6] = True
    ignore[0, 0:2] = True
    assert pixel_iou(pred, truth, ignore=ignore) == pytest.approx(2 / 4)


def test_pixel_iou_of_two_empty_masks_is_one():
    assert pixel_iou(blank(), blank()) == 1.0


def test_identical_masks_score_perfectly():
    truth = blank()
    truth[2:6, 2:6] = True
    truth[10:12, 20:25] = True
    scores = object_scores(truth, truth)
    assert (scores.precision, scores.recall, scores.f1) == (1.0, 1.0, 1.0)
    assert (scores.n_pred, scores.n_truth, scores.n_matched) == (2, 2, 1 + 1)


def test_split_object_matches_its_larger_part_and_the_rest_is_a_false_positive():
    truth, pred = blank(), blank()
    truth[0:10, 0:10] = True  # 100 px
    pred[0:10, 0:6] = True  # IoU 0.6: a match
    pred[0:10, 7:10] = True  # IoU 0.3, kept apart by column 6: a false positive
    scores = object_scores(pred, truth)
    assert (scores.n_pred, scores.n_truth, scores.n_matched) == (2, 1, 1)
    assert scores.precision == pytest.approx(0.5)
    assert scores.recall == pytest.approx(1.0)
    assert scores.f1 == pytest.approx(2 / 3)


def test_false_positive_and_missed_object():
    truth, pred = blank(), blank()
    truth[0:4, 0:4] = True
    truth[10:14, 20:24] = True  # missed
    pred[0:4, 0:4] = True
    pred[15:18, 2:5] = True  # false positive
    scores = object_scores(pred, truth)
    assert (scores.n_pred, scores.n_truth, scores.n_matched) == (2, 2, 1)
    assert (scores.precision, scores.recall) == (0.5, 0.5)


def test_overlap_below_threshold_is_not_a_match():
    truth, pred = blank(), blank()
    truth[0:10, 0:10] = True
    pred[0:10, 0:4] = True  # IoU 0.4
    assert object_scores(pred, truth).n_matched == 0
    assert object_scores(pred, truth, iou_threshold=0.4).n_matched == 1


def test_matching_is_one_to_one_greedy_by_iou():
    truth, pred = blank(), blank()
    truth[0:4, 0:4] = True  # 16 px
    truth[0:4, 5:7] = True  # 8 px
    pred[0:4, 0:7] = True  # 28 px: IoU 16/28 = 0.57 with the first, 8/28 = 0.29 with the second
    scores = object_scores(pred, truth, iou_threshold=0.25)
    assert (scores.n_pred, scores.n_truth, scores.n_matched) == (1, 2, 1)
    assert scores.recall == 0.5


def test_diagonal_neighbours_are_one_object():
    mask = blank((5, 5))
    mask[0, 0] = mask[1, 1] = mask[2, 2] = True
    mask[4, 0] = True
    labels, count = label_components(mask)
    assert count == 2
    assert labels[0, 0] == labels[1, 1] == labels[2, 2] == 1
    assert labels[4, 0] == 2


def test_ignored_pixels_remove_objects_from_both_sides():
    truth, pred, ignore = blank(), blank(), blank()
    truth[0:4, 0:4] = True
    pred[0:4, 0:4] = True
    pred[10:14, 10:14] = True  # inside NoData: not a false positive
    ignore[8:16, 8:16] = True
    scores = object_scores(pred, truth, ignore=ignore)
    assert (scores.n_pred, scores.n_matched, scores.precision) == (1, 1, 1.0)


def test_empty_conventions():
    truth = blank()
    truth[0:3, 0:3] = True
    nothing = object_scores(blank(), truth)
    assert (nothing.precision, nothing.recall, nothing.f1) == (1.0, 0.0, 0.0)
    both_empty = object_scores(blank(), blank())
    assert (both_empty.precision, both_empty.recall, both_empty.f1) == (1.0, 1.0, 1.0)


def test_shapes_must_agree():
    with pytest.raises(InputError, match=r"one shape; got \(2, 3\) and \(3, 2\)"):
        pixel_iou(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(InputError, match="iou_threshold"):
        object_scores(blank(), blank(), iou_threshold=0.0)


def bfs_labels(mask):
    height, width = mask.shape
    labels = np.zeros(mask.shape, dtype=np.int64)
    count = 0
    for i in range(height):
        for j in range(width):
            if mask[i, j] and not labels[i, j]:
                count += 1
                labels[i, j] = count
                queue = deque([(i, j)])
                while queue:
                    y, x = queue.popleft()
                    for dy in (-1, 0, 1):
                        for dx in (-1, 0, 1):
                            yy, xx = y + dy, x + dx
                            if (
                                0 <= yy < height
                                and 0 <= xx < width
                                and mask[yy, xx]
                                and not labels[yy, xx]
                            ):
                                labels[yy, xx] = count
                                queue.append((yy, xx))
    return labels, count


@settings(max_examples=150, deadline=None)
@given(
    arrays(
        bool,
        st.tuples(st.integers(1, 24), st.integers(1, 24)),
        elements=st.booleans(),
    )
)
def test_labelling_equals_a_breadth_first_search(mask):
    labels, count = label_components(mask)
    expected, expected_count = bfs_labels(mask)
    assert count == expected_count
    assert np.array_equal(labels, expected)  # same numbering: raster order of first pixel


def test_polygon_scores_match_by_area_iou():
    from shapely.geometry import box

    from tilecast.demo.metrics import polygon_scores

    truth = [box(0, 0, 10, 10), box(20, 0, 30, 10), box(50, 50, 60, 60)]
    pred = [
        box(1, 0, 11, 10),  # IoU 0.82 with truth 0
        box(20, 0, 24, 10),  # IoU 0.4 with truth 1: not a match
        box(100, 100, 101, 101),  # a false alarm
    ]
    s = polygon_scores(pred, truth, iou_threshold=0.5)
    assert (s.n_matched, s.n_pred, s.n_truth) == (1, 3, 3)
    assert s.precision == pytest.approx(1 / 3) and s.recall == pytest.approx(1 / 3)
    assert polygon_scores([], truth).recall == 0.0
