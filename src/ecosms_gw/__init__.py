"""ecosms-gw: a self-hosted SMS gateway. The layers are described in the README ("Architecture")."""
