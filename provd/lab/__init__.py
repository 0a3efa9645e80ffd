"""provd.lab: the lab provisioning server, for tests and the demo.

A real HTTPS server on loopback that speaks the server side of WPI through
`provd.wpi.server.ServerSession`, driven by a scenario, recording a
transcript. Test infrastructure: it may use `provd.wpi`, `provd.store` and
`provd.transport`, never the daemon.
"""
