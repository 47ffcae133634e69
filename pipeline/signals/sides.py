"""The sides a signal can take, apart from inference, so that code acting on signals (the
position manager, the risk rules) does not load torch to know them."""

LONG, FLAT, SHORT = 1, 0, -1
