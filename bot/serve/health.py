"""Health, both ways: systemd's notify protocol (READY, WATCHDOG, STOPPING) and ``GET /healthz``."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tornado.httpserver import HTTPServer

__all__ = ["sd_notify", "start_health_server", "watchdog_interval"]

log = logging.getLogger(__name__)


def sd_notify(message: str) -> bool:
    """Send a state line to systemd's notify socket; return False when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            # Never block the event loop: a receiver that stopped reading must not stall the bot.
            sock.setblocking(False)
            sock.connect(address)
            sock.send(message.encode("utf-8"))
    except OSError as exc:
        log.warning("cannot notify systemd: %s", exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Return how often to send WATCHDOG=1 (half systemd's WatchdogSec), None if not asked."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


def start_health_server(
    health: Callable[[], Awaitable[tuple[bool, dict[str, Any]]]], listen: str, port: int
) -> HTTPServer:
    """Serve GET /healthz on ``listen:port``, on the running event loop: 200 or 503 with ``health()``'s report."""
    import tornado.web

    last_ok: list[bool] = [True]

    class HealthHandler(tornado.web.RequestHandler):
        async def get(self) -> None:
            ok, body = await health()
            if ok != last_ok[0]:  # the verdict's changes are logged, not every poll of a supervisor
                last_ok[0] = ok
                if ok:
                    log.info("health check ok again")
                else:
                    log.warning("health check failing: %s", body["problem"])
            self.set_status(200 if ok else 503)
            self.set_header("Content-Type", "application/json")
            self.set_header("Cache-Control", "no-store")
            self.finish(json.dumps(body))

    def log_request(handler: tornado.web.RequestHandler) -> None:
        # Tornado logs every 5xx at ERROR; a 503 from /healthz is the answer "not ready", polled
        # every few seconds during an outage, and its changes are logged above.
        if handler.request.path != "/healthz":
            request = handler.request
            log.info("%d %s %s (%s)", handler.get_status(), request.method, request.uri, request.remote_ip)

    web = tornado.web.Application([(r"/healthz", HealthHandler)], log_function=log_request)
    server = web.listen(port, address=listen, xheaders=False)
    log.info("health checks on http://%s:%d/healthz", listen, port)
    return server
