"""DROID episodes (raw release, LeRobot v2.1 / v3.0 ports) converted into the unified schema.

The parallel gripper becomes a right "pseudo-hand" of 21 points (``pseudo_hand``), the exterior camera
keeps its static extrinsics (``cameras``), ``readers`` turn every layout into one episode record and
``processor`` assembles :class:`~dexhands_data.records.EpisodeData` for the pipeline runner.
"""
