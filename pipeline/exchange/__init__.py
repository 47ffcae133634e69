"""ccxt plumbing shared by candle sources (`pipeline.data`) and brokers (`pipeline.execution`):
exchange ids, client construction, the retry policy, and market symbols ↔ exchange ids."""
