"""The root of the gateway's own exceptions. Each error class sits beside the code that
raises it; catching `GatewayError` catches every fault the gateway itself names, and
nothing a library or a bug raised."""


class GatewayError(Exception):
    """A fault the gateway names: bad input, bad configuration, a database away."""
