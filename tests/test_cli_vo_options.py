"""`dexdata extract --vo-bundle-adjustment / --vo-corner-precision`: the opt-in odometry settings reach
the estimator (and so its recorded config), and meet a clear error with another camera."""

from __future__ import annotations

import argparse

import pytest

from dexhands_data.camera.registry import create_camera_estimator
from dexhands_data.cli import extract


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    extract.add_parser(parser.add_subparsers())
    return parser.parse_args(["extract", "--source", "videos", "--input", "in", "--out", "out", *argv])


def test_vo_flags_reach_the_odometry_config():
    options = extract._vo_options(_args("--vo-bundle-adjustment", "--vo-corner-precision", "0.1"), "vo")
    assert options == {"bundle_adjustment": True, "feature_max_std_px": 0.1}
    config = create_camera_estimator("vo", **options).config()
    assert config["bundle_adjustment"] is True and config["feature_max_std_px"] == 0.1
    assert extract._vo_options(_args(), "vo") == {}  # defaults: the odometry as documented


def test_vo_flags_refuse_another_camera_and_bad_values():
    with pytest.raises(SystemExit, match="need --camera vo"):
        extract._vo_options(_args("--vo-bundle-adjustment"), "colmap")
    with pytest.raises(SystemExit, match="must be > 0"):
        extract._vo_options(_args("--vo-corner-precision", "0"), "vo")
