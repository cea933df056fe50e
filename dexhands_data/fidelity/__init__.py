"""Fidelity of estimated actions against ground truth (``dexdata score``, ``dexdata score-images``).

One small module per concern, all metrics pure and vectorised over frames (numpy):

* :mod:`.episodes`: the typed per-episode arrays scoring reads from a dataset folder;
* :mod:`.pairing`: which estimated episode is which ground-truth recording, and which frames pair;
* :mod:`.hand_metrics`: per-frame hand matching, detection, side, 2D / 3D / depth errors;
* :mod:`.motion_metrics`: hand keypoint motion over a stride, with and without camera motion;
* :mod:`.camera_metrics`: relative rotation, translation direction and scale errors over a stride;
* :mod:`.score`: one episode pair -> :class:`~.score.EpisodeScore`, pooled over episodes;
* :mod:`.figures`: the reported numbers of a score; :mod:`.datasets`: two dataset folders scored;
* :mod:`.report`: the rich table and the JSON document;
* :mod:`.still_images`: the same hand figures on still images with calibrated 3D ground truth.
"""
