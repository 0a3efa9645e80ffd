"""FileDeployment and SoftwareDeployment in the daemon (spec §6): the wiring.

The deployer (downloads over FTP and HTTPS, the file store, the installer
check) is made the first time a server asks for a deployment or a ReadAllItems
lists the deployed files, so a phone that is only being configured never loads
the download code (start-up time, bench/bench_daemon.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from provd.service.exchange import Effects
from provd.service.settings_model import DefaultTrust
from provd.wpi.events import ActionRequested, PhoneAnswer
from provd.wpi.model import Item

if TYPE_CHECKING:
    from provd.service.daemon import Daemon
    from provd.service.deploy import Deployer, FileResult
    from provd.transport.tls import TrustPolicy


class Deployment:
    """The deployment actions of one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._deployer: Deployer | None = None

    @property
    def deployer(self) -> Deployer:
        if self._deployer is None:
            from provd.service.deploy import Deployer, DownloadPolicy  # noqa: PLC0415

            daemon = self.daemon
            settings = daemon.settings
            self._deployer = Deployer(
                files=daemon.files,
                downloads=DownloadPolicy(
                    https_trust_for=self.https_trust_for,
                    connect_timeout=settings.timeouts.connect,
                    timeout=settings.timeouts.response,
                ),
                steps=daemon.steps,
                staging_dir=settings.paths.staging_dir,
                is_busy=lambda: daemon.busy,
                software_max_size=settings.files.software_max_size,
                announce=self.announce,
            )
        return self._deployer

    def https_trust_for(self, host: str, port: int) -> TrustPolicy:
        """spec §6.1 [B]: the server's own host and port is trusted as the XML channel;
        any other host verifies against the system store or the dls-server-ca set."""
        from provd.transport.tls import TrustPolicy  # noqa: PLC0415 - after READY=1 (issue 8)

        daemon = self.daemon
        endpoint = daemon.endpoint(None)
        parts = urlsplit(endpoint.url)
        if (parts.hostname or "").lower() == host.lower() and (parts.port or 443) == port:
            return endpoint.trust
        if daemon.settings.tls.default_trust is DefaultTrust.ANY:
            return TrustPolicy.accept_any()
        committed = daemon.secure_mode.committed
        return TrustPolicy.system(committed.server_cas if committed else ())

    def announce(self, results: Sequence[FileResult]) -> None:
        # The apply hooks learn of files as `file:<TYPE>/<name>`, the name percent-encoded
        # so that a space ("ring tone.wav") cannot split PROVD_CHANGED's tokens.
        self.daemon.hooks.run([(f"file:{r.type}/{quote(r.name, safe='')}", None) for r in results])

    def file_deployment(self, event: ActionRequested, effects: Effects) -> PhoneAnswer | None:
        basic = self.daemon.first_items()
        return self.deployer.file_deployment(event.items, basic_items=basic)

    def software_deployment(self, event: ActionRequested, effects: Effects) -> PhoneAnswer | None:
        answer = self.deployer.software_deployment(event.items, requested_by=event.message.nonce)
        if answer.pending is not None:
            effects.extra["pending_install"] = answer.pending
        return answer.reply

    def read_all_items(self) -> Sequence[Item]:
        """The deployed files as indexed `file-deployment-*` items [G p.245]."""
        from provd.service.deploy import read_all_file_items  # noqa: PLC0415

        return read_all_file_items(self.daemon.files)

    def install(self, pending: object) -> None:
        """After the CleanUp of a SoftwareDeployment: request the install (spec §6.2 [B])."""
        from provd.service.deploy import PendingInstall as Pending  # noqa: PLC0415

        if isinstance(pending, Pending):
            self.deployer.install(pending)
