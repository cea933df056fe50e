"""Hand keypoint layout shared by every stage.

Two hands, **left then right**, 21 keypoints each in MANO/OpenPose order (which is also
MediaPipe's landmark order). The DexWM 44x3 pose stacks the 42 keypoint rows with two
camera rows (position, orientation); see ``docs/data_contract.md``.
"""

from __future__ import annotations

import numpy as np

NUM_HANDS = 2
NUM_KEYPOINTS = 21
HAND_NAMES: tuple[str, str] = ("left", "right")
LEFT, RIGHT = 0, 1

KEYPOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "little_mcp", "little_pip", "little_dip", "little_tip",
)
assert len(KEYPOINT_NAMES) == NUM_KEYPOINTS

#: (parent, child) pairs of the hand skeleton, for drawing and bone-length checks.
BONES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4),
    (0, 5), (5, 6), (6, 7), (7, 8),
    (0, 9), (9, 10), (10, 11), (11, 12),
    (0, 13), (13, 14), (14, 15), (15, 16),
    (0, 17), (17, 18), (18, 19), (19, 20),
)

WRIST = 0
MIDDLE_MCP = 9
FINGERTIPS: tuple[int, ...] = (4, 8, 12, 16, 20)

#: Per-hand keypoints used by DexWM's hand-consistency loss: wrist and the five tips.
HC_KEYPOINTS_PER_HAND: tuple[int, ...] = (WRIST, *FINGERTIPS)
#: Rows of the 44x3 DexWM pose used for the 12 heatmap channels (left six, then right six).
HC_POSE_ROWS: tuple[int, ...] = tuple(h * NUM_KEYPOINTS + k for h in range(NUM_HANDS) for k in HC_KEYPOINTS_PER_HAND)

#: Rows of the 44x3 DexWM pose.
POSE_ROWS = NUM_HANDS * NUM_KEYPOINTS + 2
CAMERA_POSITION_ROW = 42
CAMERA_ROTATION_ROW = 43
ACTION_DIM = POSE_ROWS * 3


def keypoint_index(name: str) -> int:
    """Index of a keypoint name in the 21-keypoint order."""
    return KEYPOINT_NAMES.index(name)


def bone_lengths(keypoints: np.ndarray) -> np.ndarray:
    """Lengths of the 20 bones of ``keypoints`` (..., 21, 3), in the keypoints' unit."""
    parents = np.array([p for p, _ in BONES])
    children = np.array([c for _, c in BONES])
    return np.linalg.norm(keypoints[..., children, :] - keypoints[..., parents, :], axis=-1)
