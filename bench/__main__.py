"""`make bench`: every figure beside its baseline, measured in the same run."""

from __future__ import annotations

from bench import http_bench, ledger_bench, store_bench
from bench.common import print_table, write_results


def main() -> None:
    figures = ledger_bench.run() + store_bench.run() + http_bench.run()
    write_results(figures)
    print_table(figures)
    for f in figures:
        if f.extra:
            print(f"  {f.name}: {f.extra}")


if __name__ == "__main__":
    main()
