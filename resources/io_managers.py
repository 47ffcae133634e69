"""IO managers: partitioned DataFrames as Parquet, one file per partition."""

import dagster as dg
import pandas as pd

from pipeline.store.parquet import ParquetStore


def partition_name(asset: str, partition_key: str | dg.MultiPartitionKey | None) -> str:
    """`asset/market=BTCUSDT/timeframe=1h.parquet`, `asset/1h.parquet` or `asset.parquet`."""
    if partition_key is None:
        return f"{asset}.parquet"
    if isinstance(partition_key, dg.MultiPartitionKey):
        parts = [f"{dim}={key}" for dim, key in sorted(partition_key.keys_by_dimension.items())]
        return f"{asset}/{'/'.join(parts)}.parquet"
    return f"{asset}/{partition_key}.parquet"


class ParquetIOManager(dg.ConfigurableIOManager):
    """Frames under `base_uri` (a folder, or an object-store URL such as s3://bucket/prefix).

    A multi-partition input loads every mapped partition and concatenates them in key order.
    """

    base_uri: str

    def _store(self) -> ParquetStore:
        return ParquetStore(self.base_uri)

    @staticmethod
    def _asset(context: dg.InputContext | dg.OutputContext) -> str:
        return "/".join(context.asset_key.path)

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        key = context.partition_key if context.has_partition_key else None
        if key is not None and context.has_asset_partitions:
            key = context.asset_partition_key
        path = self._store().write(partition_name(self._asset(context), key), obj)
        context.add_output_metadata({"path": path, "rows": len(obj)})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        store, asset = self._store(), self._asset(context)
        if not context.has_asset_partitions:
            return store.read(partition_name(asset, None))
        definition = context.asset_partitions_def
        keys = sorted(context.asset_partition_keys, key=str)
        if isinstance(definition, dg.MultiPartitionsDefinition):
            keys = [definition.get_partition_key_from_str(str(k)) for k in keys]
        frames = [store.read(partition_name(asset, k)) for k in keys]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
