"""The HTTP side: the seed-compatible API, its tokens, and the operators' pages."""
