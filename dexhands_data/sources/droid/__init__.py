"""DROID episodes (raw release, LeRobot v2.1 / v3.0 ports) as one more source of the extract pipeline.

``readers`` turn every layout into one episode record, ``cameras`` hold the static extrinsics and the
intrinsics, ``pseudo_hand`` makes the parallel gripper a right "pseudo-hand" of 21 points, ``video``
probes MP4 headers and decodes the chosen camera, and :class:`~.source.DroidSource` opens an
episode with ground-truth hands and camera like every ground-truth source.
"""
