"""GT matching of the demo's and the node benchmark's room check (folk_model.eval.matching),
on crafted clouds whose IoUs are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from folk_model.eval.matching import gt_objects, match_instances, summarize_matches


def test_match_instances_best_iou_per_gt_object():
    # 20 points. GT 1001: points 0-9; GT 2002: points 10-13; GT 3003: 14-15; 16-19 unannotated.
    gt = np.array([1001] * 10 + [2002] * 4 + [3003] * 2 + [0] * 4)
    pred = np.zeros(20, np.int64)
    pred[0:8] = 7        # 8 of GT 1001's 10 points: IoU 8/10
    pred[8:12] = 5       # 2 of 1001 + 2 of 2002: IoU 2/12 with 1001, 2/6 with 2002
    pred[16:20] = 9      # only unannotated points
    # GT 3003: no instance at all; GT 4004: kept but absent from the cloud (outside the map)
    m = {x.gt_id: x for x in match_instances(gt, pred, gt_keep=[1001, 2002, 3003, 4004])}
    assert list(m) == [1001, 2002, 3003, 4004]
    assert (m[1001].pred_id, m[1001].iou, m[1001].gt_points) == (7, pytest.approx(0.8), 10)
    assert (m[2002].pred_id, m[2002].iou) == (5, pytest.approx(2 / 6))
    assert (m[3003].pred_id, m[3003].iou, m[3003].gt_points) == (0, 0.0, 2)
    assert (m[4004].pred_id, m[4004].iou, m[4004].gt_points) == (0, 0.0, 0)

    s = summarize_matches(list(m.values()))
    assert (s.objects, s.in_cloud, s.found) == (4, 3, 1)
    assert s.mean_iou == pytest.approx((0.8 + 2 / 6) / 4)
    assert summarize_matches(list(m.values()), iou_threshold=0.3).found == 2

    # Without gt_keep: every annotated code on the cloud, no 4004.
    assert [x.gt_id for x in match_instances(gt, pred)] == [1001, 2002, 3003]


def test_match_instances_ties_and_shape_checks():
    gt = np.array([1, 1, 1, 1])
    pred = np.array([3, 3, 2, 2])  # two instances with IoU 0.5 each: the smaller id wins
    (only,) = match_instances(gt, pred)
    assert (only.pred_id, only.iou) == (2, pytest.approx(0.5))
    assert summarize_matches([only]).found == 1  # 0.5 counts as found (>=)
    with pytest.raises(ValueError, match="one per point"):
        match_instances(gt, pred[:3])
    assert summarize_matches([]).mean_iou == 0.0


def test_gt_objects_counts_scan_points_and_skips_unannotated():
    codes = np.array([0] * 500 + [1001] * 100 + [2002] * 99 + [3003] * 150)
    assert gt_objects(codes).tolist() == [1001, 3003]
    assert gt_objects(codes, min_points=1).tolist() == [1001, 2002, 3003]
