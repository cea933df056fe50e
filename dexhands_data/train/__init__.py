"""Reference DexWM trainer (``dexdata train-reference``): frozen encoder -> CDiT predictor + HC head.

Reads data only through :mod:`dexhands_data.loader`. See ``docs/trainer.md``.
"""
