"""The engines: read partitions of subjects, schedule them, write what they give. One chain function
(:func:`~converter.engine.chain.run_partition`) converts a partition; the local engine (:mod:`.stream`, worker
processes) and the Spark engine (:mod:`.spark`, Arrow UDFs; :mod:`.spark_sdtm` for ``inoconv sdtm --engine
spark``) call it and write through :mod:`.outputs`.

The names below are imported when first used (pyspark only by the Spark ones); none is also the name of a
module of the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from converter.lazy import lazy_names

if TYPE_CHECKING:
    from converter.engine.chain import Chain, load_chain, run_partition
    from converter.engine.outputs import PartitionFiles, PartResult, StreamReport
    from converter.engine.spark import run_stream_spark, stream_on_spark
    from converter.engine.stream import run_stream

__all__ = [
    "Chain",
    "PartResult",
    "PartitionFiles",
    "StreamReport",
    "load_chain",
    "run_partition",
    "run_stream",
    "run_stream_spark",
    "stream_on_spark",
]

_WHERE = {
    "Chain": "chain",
    "load_chain": "chain",
    "run_partition": "chain",
    "PartitionFiles": "outputs",
    "PartResult": "outputs",
    "StreamReport": "outputs",
    "run_stream": "stream",
    "stream_on_spark": "spark",
    "run_stream_spark": "spark",
}


__getattr__ = lazy_names(__name__, _WHERE)
