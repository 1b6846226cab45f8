"""TLS for the servers the gateway runs (SMTP STARTTLS, HTTPS): one way to load a
certificate, so that every listener offers the same protocols."""

from __future__ import annotations

import ssl


def server_context(cert: str, key: str) -> ssl.SSLContext | None:
    """A server context for this certificate chain and key; None when no certificate is
    configured. The standard library's defaults: TLS 1.2 and later, its cipher choice."""
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context
