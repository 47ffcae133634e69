"""`signals features`: the candidate feature registry, or the features of a candle folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.cli.common import CliError, csv_list
from pipeline.data.timeframes import timeframe_ms
from pipeline.exchange.markets import normalise_symbol


def register(subparsers: argparse._SubParsersAction) -> None:
    feats = subparsers.add_parser(
        "features", help="list the 79 candidate features, or compute them from a candle folder"
    )
    feats.add_argument("--list", action="store_true", help="print the feature registry")
    feats.add_argument("--json", action="store_true", help="with --list: a JSON array")
    feats.add_argument("--data-dir", help="candle folder (MARKETID.csv[.gz] of 1h candles)")
    feats.add_argument("--markets", type=csv_list, help="e.g. BTC/USDT:USDT,ETH/USDT:USDT")
    feats.add_argument("--timeframe", default="1h", help="base timeframe (default 1h)")
    feats.add_argument("--out", help="Parquet file: market, timestamp, then the 79 features")
    feats.set_defaults(func=cmd_features)


def cmd_features(args: argparse.Namespace) -> int:
    from pipeline.features.registry import REGISTRY

    if args.list:
        if args.json:
            print(json.dumps([_spec_json(spec, args.timeframe) for spec in REGISTRY], indent=1))
        else:
            print(f"{'#':>2}  {'name':<22} {'family':<10} {'timeframe':<9} {'warmup':>6}  params")
            for i, spec in enumerate(REGISTRY, 1):
                params = ", ".join(f"{k}={v}" for k, v in spec.params.items())
                print(
                    f"{i:>2}  {spec.name:<22} {spec.family:<10} {spec.timeframe:<9} "
                    f"{spec.warmup_at(args.timeframe):>6}  {params}"
                )
        return 0
    if not (args.data_dir and args.markets and args.out):
        raise CliError("features needs --list, or --data-dir, --markets and --out")
    from pipeline.data.csv_source import CandleFolder
    from pipeline.features.compute import compute_features
    from pipeline.features.schema import validate_features

    timeframe_ms(args.timeframe)
    folder = CandleFolder(args.data_dir)
    symbols = [normalise_symbol(m) for m in args.markets]
    candles = {s: folder.read(s, args.timeframe) for s in symbols}
    matrix = compute_features(candles, args.timeframe)
    validate_features(matrix, args.timeframe)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    matrix.to_parquet(out, index=False)
    print(f"{len(matrix)} rows × {matrix.shape[1] - 2} features → {out}")
    return 0


def _spec_json(spec, timeframe: str) -> dict:
    return {
        "name": spec.name,
        "family": spec.family,
        "timeframe": spec.timeframe,
        "params": dict(spec.params),
        "warmup": spec.warmup_at(timeframe),
    }
