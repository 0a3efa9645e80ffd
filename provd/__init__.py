"""provd: the phone's half of the WPI provisioning protocol."""

__version__ = "0.2.0"
