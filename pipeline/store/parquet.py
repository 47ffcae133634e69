"""Columnar frames as Parquet files, on local disk or any URL pyarrow understands (s3://, gs://)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


class ParquetStore:
    """Files under one root; names are relative paths such as `features/BTCUSDT/1h.parquet`."""

    def __init__(self, root: str | Path):
        root = str(root)
        if "://" not in root:
            root = str(Path(root).expanduser().resolve())
            Path(root).mkdir(parents=True, exist_ok=True)
        self.filesystem, self.root = pafs.FileSystem.from_uri(root)

    def _path(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def write(self, name: str, frame: pd.DataFrame) -> str:
        """Write atomically where the filesystem allows: a temporary name, then a rename."""
        path = self._path(name)
        self.filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if isinstance(self.filesystem, pafs.LocalFileSystem):
            tmp = f"{path}.tmp"
            pq.write_table(table, tmp, filesystem=self.filesystem, compression="zstd")
            self.filesystem.move(tmp, path)
        else:  # object stores write whole objects anyway
            pq.write_table(table, path, filesystem=self.filesystem, compression="zstd")
        return path

    def read(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        path = self._path(name)
        info = self.filesystem.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"no stored frame {name!r} under {self.root}")
        return pq.read_table(path, filesystem=self.filesystem, columns=columns).to_pandas()

    def exists(self, name: str) -> bool:
        return self.filesystem.get_file_info(self._path(name)).type != pafs.FileType.NotFound
