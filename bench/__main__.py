"""`make bench`: every figure beside its baseline, measured in the same run."""

from __future__ import annotations

from bench import http_bench, ledger_bench, store_bench
from bench.common import print_table, write_results


def main() -> None:
    figures = []
    for part in (ledger_bench, store_bench, http_bench):
        figures += part.run()
        print_table(figures, flush=True)  # what is measured so far, should a part fail
        write_results(figures)
    for f in figures:
        if f.extra:
            print(f"  {f.name}: {f.extra}")


if __name__ == "__main__":
    main()
