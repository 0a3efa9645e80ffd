"""provd.service: the daemon that wires the core and the adapters together."""
