"""dexhands-data: data preparation and dataset package for dexterous world models (DexWM)."""

__version__ = "0.1.0"
