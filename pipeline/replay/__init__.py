"""An offline Binance USDⓈ-M exchange over a folder of recorded 1h candles, for tests, demos
and benchmarks: the real ccxt client talks to it over real HTTP. It speaks Bybit v5 too, under
/v5/ (`bybit`, `bybit_market`, `bybit_account`, `bybit_errors`; `dialects` names each one's
paths), over the same candles and the same account.

`clock` (the replayed time), `market_data` (the public candle and ticker endpoints), `account`
(the signed trading endpoints), `signing` (Binance's request signatures), `faults` (failures on
demand), `control` (the `/_replay/` endpoints that steer it), `server` (routing and the HTTP
server).
"""
