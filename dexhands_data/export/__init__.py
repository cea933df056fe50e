"""``dexdata export``: a written dataset re-laid out for other training stacks.

* ``dexwm-egodex`` (:mod:`.dexwm_egodex`, :mod:`.droid_raw`): the on-disk layouts the released DexWM
  code reads unmodified: EgoDex ``<split>/<task>/<i>.hdf5`` + ``<i>.mp4`` for human episodes, the raw
  DROID release layout (``droid/<lab>/<outcome>/<date>/<time>/``) for parallel-gripper episodes.
* ``lerobot`` (:mod:`.lerobot`): a LeRobot v3.0 dataset written with pyarrow + PyAV.

Every episode is read through :mod:`dexhands_data.dataset.reader`; files are committed atomically and
an episode counts as exported only when its marker exists (:mod:`.outdir`), so a killed export rerun
finishes without duplicates. See ``docs/export.md``.
"""

FORMATS: tuple[str, ...] = ("dexwm-egodex", "lerobot")
