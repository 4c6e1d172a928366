#!/usr/bin/env python3
"""Per-kernel totals of an Nsight Compute CSV written with `--metrics gpu__time_duration.sum --csv`.

Usage: kernel_times.py FILE.csv [LABEL]  -> one line per kernel name: label, calls, total µs, average µs.
"""
import collections
import csv
import re
import sys


def short_name(kernel: str) -> str:
    """`void ns::<unnamed>::kernel<T, 16>(args)` -> `ns::kernel`."""
    name = re.sub(r"<unnamed>::|\(anonymous namespace\)::", "", kernel)
    name = re.sub(r"^void ", "", name)
    return re.split(r"[<(]", name, maxsplit=1)[0]


def main() -> None:
    path = sys.argv[1]
    label = sys.argv[2] if len(sys.argv) > 2 else path
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if len(r) > 10]
    if not rows:
        sys.exit(f"{path}: no Nsight Compute rows")
    header = rows[0]
    name_at, value_at = header.index("Kernel Name"), header.index("Metric Value")
    totals = collections.defaultdict(lambda: [0, 0.0])
    for row in rows[1:]:
        try:
            ns = float(row[value_at].replace(",", ""))
        except ValueError:
            continue
        name = short_name(row[name_at])
        totals[name][0] += 1
        totals[name][1] += ns
    for name, (calls, ns) in sorted(totals.items(), key=lambda item: -item[1][1]):
        print(f"{label} {name}: {calls} calls, {ns / 1000:.1f} us, {ns / calls / 1000:.2f} us each")


if __name__ == "__main__":
    main()
