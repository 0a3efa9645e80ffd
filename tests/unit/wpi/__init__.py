"""Tests of provd.wpi, the pure protocol core."""
