"""provd.transport: TLS, HTTPS, contact-me, polling and downloads."""
