"""Ray Data pipelines: extraction from egocentric video, DROID conversion; sharding and resume."""
