"""The on-disk dataset format (data contract v1, ``dexhands_data.schema``) and everything that touches it.

Write: :mod:`.rows` (episode -> frame rows and the episode row), :mod:`.writer` (shards, commit
markers, ``finalize``), :mod:`.stats`, :mod:`.meta_info` (``meta/info.json``), :mod:`.card`
(``README.md``), :mod:`.storage` (local folder or object store).
Read: :mod:`.location` (folder or Hub repo), :mod:`.reader` (``read_episode(root, id, columns)``,
``iter_episodes``) returning :class:`.episodes.StoredEpisode`.
Check and describe: :mod:`.validate`, :mod:`.summary` (``dexdata info``), :mod:`.compare_hands`.

Nothing is imported here, so ``import dexhands_data.dataset.reader`` loads only what it needs.
"""
