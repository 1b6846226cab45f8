"""SMPP: the session and codec, the links that send, what comes back, and a simulator."""
