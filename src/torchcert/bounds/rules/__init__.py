"""One rule module per layer type, each with ``ibp`` and ``backward`` (plus ``from_module``, ``forward``)."""
