"""The Python daemon of the Spark engine's workers: PySpark's own (:func:`pyspark.daemon.manager`), started after
importing what every task of the chain uses.

PySpark starts one daemon per executor, which forks a Python worker per concurrent task; each worker then imports
pandas, pyarrow and the converter on its first task. Started with these imports done (and the objects they made
frozen out of the cyclic GC's reach), the workers are forked warm, as the local engine's workers are forked from a
parent that already holds them (:mod:`converter.engine.stream`). Chosen with
``spark.python.daemon.module=converter.engine.spark_daemon`` (a local session does; a cluster job can set it when
the executors have the package installed). Only imports: a module missing here is imported by the task itself.
"""

from __future__ import annotations

__all__ = ["WARM_MODULES", "main"]

#: What :func:`converter.engine.chain.run_partition` and the spill imports, in order (pandas and pyarrow first)
WARM_MODULES = (
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
    "orjson",
    "converter.engine.spark",
    "converter.engine.chain",
    "converter.records.stream",
    "converter.records.checks",
    "converter.sdtm.build",
    "converter.adam.pipeline",
    "converter.fhir.to_fhir",
    "converter.fhir.ndjson",
    "converter.validate.sdtm_rules",
    "converter.validate.adam_rules",
)


def main() -> None:
    """Import :data:`WARM_MODULES`, freeze what they made, then run PySpark's daemon (which forks the workers)."""
    import gc
    import importlib

    from converter.gc_pause import no_gc

    with no_gc():
        for name in WARM_MODULES:
            importlib.import_module(name)
    gc.freeze()
    from pyspark.daemon import manager

    manager()


if __name__ == "__main__":  # pragma: no cover
    main()
