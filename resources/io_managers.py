"""IO managers: partitioned DataFrames as Parquet, one file per partition; small values as
JSON beside them."""

import json

import dagster as dg
import pandas as pd
import pyarrow.fs as pafs

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


class JsonIOManager(dg.ConfigurableIOManager):
    """Small unpartitioned values (the candidate's model id) as `asset.json` under `base_uri`.

    A file, not memory: the main job materialises each stage in its own run, so the run that
    backtests a model reads the id that the training run wrote.
    """

    base_uri: str

    def _path(self, context: dg.InputContext | dg.OutputContext) -> tuple[pafs.FileSystem, str]:
        store = ParquetStore(self.base_uri)  # resolves the root and creates a local one
        return store.filesystem, f"{store.root.rstrip('/')}/{'/'.join(context.asset_key.path)}.json"

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        filesystem, path = self._path(context)
        filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with filesystem.open_output_stream(path) as out:
            out.write(json.dumps(obj).encode())

    def load_input(self, context: dg.InputContext) -> object:
        filesystem, path = self._path(context)
        if filesystem.get_file_info(path).type == pafs.FileType.NotFound:
            raise FileNotFoundError(
                f"no stored value for {context.asset_key.to_user_string()} at {path}: "
                "materialise it first"
            )
        with filesystem.open_input_stream(path) as source:
            return json.loads(source.read().decode())
