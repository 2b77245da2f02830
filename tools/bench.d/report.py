#!/usr/bin/python3
"""Report for tools/bench: medians, table, kmsfs speed ratios.

usage: report.py results.tsv meta.json out.json out.md

results.tsv lines: rep <TAB> target <TAB> workload <TAB> value <TAB> unit
Prints the markdown report to stdout and writes it plus a JSON summary.
"""
import json
import statistics
import sys

TARGETS = ["kmsfs", "gocryptfs", "securefs", "encfs", "native"]
WORKLOADS = [  # name, description, unit, higher_is_better
    ("seq_write", "seq write", "MB/s", True),
    ("seq_read", "seq read (cold)", "MB/s", True),
    ("randread", "fio randread 4k", "IOPS", True),
    ("randwrite", "fio randwrite 4k", "IOPS", True),
    ("untar", "untar linux-source", "s", False),
    ("ls_lR", "ls -lR (cold)", "s", False),
    ("rm_rf", "rm -rf (cold)", "s", False),
]


def fmt(v, unit):
    if v is None:
        return "–"
    if unit == "IOPS":
        return f"{v:,.0f}"
    if unit == "s":
        return f"{v:.2f}" if v < 100 else f"{v:.0f}"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def main():
    tsv, meta_path, out_json, out_md = sys.argv[1:5]
    try:
        meta = json.load(open(meta_path))
    except (OSError, ValueError):
        meta = {}
    raw = {}
    for line in open(tsv):
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 5:
            continue
        rep, target, wl, val, _unit = parts
        raw.setdefault(wl, {}).setdefault(target, []).append(float(val))

    targets = [t for t in TARGETS if any(t in raw.get(w[0], {}) for w in WORKLOADS)]
    targets += sorted({t for d in raw.values() for t in d} - set(targets))
    reps = meta.get("reps")

    med = {}
    summary = {"meta": meta, "workloads": {}}
    for wl, desc, unit, hib in WORKLOADS:
        med[wl] = {}
        entry = {"description": desc, "unit": unit, "higher_is_better": hib, "targets": {}}
        for t in targets:
            vals = raw.get(wl, {}).get(t, [])
            m = statistics.median(vals) if vals else None
            med[wl][t] = m
            entry["targets"][t] = {"median": m, "n": len(vals), "values": vals,
                                   "min": min(vals) if vals else None,
                                   "max": max(vals) if vals else None}
        summary["workloads"][wl] = entry

    out = []
    m = meta
    if m:
        out.append(f"kmsfs benchmark, {m.get('date', '?')}: {m.get('cpu', '?')}, "
                   f"{m.get('cores', '?')} cores, {m.get('mem_gib', '?')} GiB RAM, "
                   f"kernel {m.get('kernel', '?')}, backing fs {m.get('workdir_fs', '?')}.")
        out.append(f"Medians of {m.get('reps', '?')} interleaved repetition(s); "
                   f"seq file {m.get('seq_size_mib', '?')} MiB; "
                   f"fio 4 KiB psync, 2 jobs, {m.get('fio_runtime_s', '?')} s; "
                   f"tarball {m.get('tarball', '?')} ({m.get('tarball_entries', '?')} entries)"
                   + (" [QUICK smoke run]" if m.get("quick") else "")
                   + ("" if m.get("caches_dropped", True) else " [caches NOT dropped]") + ".")
        v = m.get("versions", {})
        out.append("Versions: " + ", ".join(f"{k} {v[k]}" for k in v if v[k]) + ".")
        out.append("")

    hdr = ["workload", "unit"] + targets
    out.append("| " + " | ".join(hdr) + " |")
    out.append("|" + "|".join(["---", "---"] + ["---:"] * len(targets)) + "|")
    for wl, desc, unit, hib in WORKLOADS:
        cells = []
        for t in targets:
            c = fmt(med[wl][t], unit)
            n = summary["workloads"][wl]["targets"][t]["n"]
            if reps and 0 < n < reps:
                c += f" (n={n})"
            cells.append(c)
        out.append("| " + " | ".join([desc, unit] + cells) + " |")

    ratios = {}
    others = [t for t in targets if t != "kmsfs"]
    out.append("")
    if "kmsfs" in targets and others:
        out.append("kmsfs speed ratio (>1.0 = kmsfs faster; throughput kmsfs/peer, "
                   "times peer/kmsfs):")
        out.append("")
        out.append("| workload | " + " | ".join(f"vs {t}" for t in others) + " |")
        out.append("|---|" + "|".join(["---:"] * len(others)) + "|")
        for wl, desc, unit, hib in WORKLOADS:
            k = med[wl].get("kmsfs")
            row = []
            ratios[wl] = {}
            for t in others:
                p = med[wl].get(t)
                r = None
                if k and p:
                    r = (k / p) if hib else (p / k)
                ratios[wl][t] = r
                row.append("–" if r is None else f"{r:.2f}")
            out.append(f"| {desc} | " + " | ".join(row) + " |")
    elif "kmsfs" in targets:
        out.append("(no peer measured: no ratios)")
    else:
        out.append("(kmsfs not measured: no ratios)")
    summary["kmsfs_speed_ratio"] = ratios

    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    with open(out_md, "w") as f:
        f.write(text)
    with open(out_json, "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    print(f"\nwritten: {out_json}, {out_md}", file=sys.stderr)


if __name__ == "__main__":
    main()
