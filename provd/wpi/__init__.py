"""provd.wpi: the pure WPI protocol core (no I/O)."""
