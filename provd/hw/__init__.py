"""provd.hw: hardware events (udev) translated into provd's own types."""
