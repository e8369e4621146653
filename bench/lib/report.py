#!/usr/bin/env python3
"""Turn the per-run measurements of bench/run.sh into the Markdown report.

usage: report.py META.tsv RUNS.csv

META.tsv: "key<TAB>value" lines, printed in order as the setup section.
RUNS.csv: case,run,tool,phase,status,wall_s,rss_kb,src_bytes,repo_bytes,note
  status is ok, FAIL, skipped or "not built". MB = 10^6 bytes throughout.
"""
import csv
import statistics
import sys

PHASES = {
    "A": [("full", "full backup"), ("unchanged", "unchanged re-backup"),
          ("changed", "1%-changed re-backup"), ("restore", "full restore")],
    "B": [("full", "full backup")],
}
CASE_TITLES = {"A": "Case A: go toolchain", "B": "Case B: many small files"}
# issue 13's targets (the first benchmark's were 1.5, 3, 3 and 1.5)
TARGETS_A = {"full": 2.5, "unchanged": 4.0, "changed": 3.5, "restore": 2.0}
TARGETS_B = {"full": 2.0}
RSS_LIMIT_MB = 300.0
TOOL_ORDER = ["backupd", "restic", "borg"]


def mb(x):
    return x / 1e6


def fmt(x, nd=2):
    return "—" if x is None else f"{x:.{nd}f}"


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def num(s, conv=float):
    try:
        return conv(s)
    except (TypeError, ValueError):
        return None


def main() -> int:
    meta = []
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if "\t" in line:
                meta.append(line.split("\t", 1))
    with open(sys.argv[2], newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    md = dict(meta)

    out = []
    w = out.append
    w(f"# backupd benchmark — {md.get('date', '?')} on {md.get('host', '?')}")
    w("")
    w("## Machine and setup")
    w("")
    for k, v in meta:
        if not k.startswith("case "):
            w(f"- **{k}**: {v}")
    w("")
    w("Wall time is the median over the runs (each run: fresh repository, fresh caches). "
      "MB/s = source bytes / wall time; MB = 10^6 bytes. Peak RSS from "
      "`/usr/bin/time -f %M` (median over runs). Repo MB = `du -sb` of the repository "
      "after that phase (tools' local caches not counted). "
      "restic/tool = restic's median wall time / the tool's: above 1 means faster than restic.")
    w("")

    summary = {}  # (case, tool, phase) -> dict
    failures = []
    for case in [c for c in ("A", "B") if any(r["case"] == c for r in rows)]:
        crow = [r for r in rows if r["case"] == case]
        tools = sorted({r["tool"] for r in crow},
                       key=lambda t: (TOOL_ORDER.index(t) if t in TOOL_ORDER else 99, t))
        for tool in tools:
            for phase, _ in PHASES[case]:
                rs = [r for r in crow if r["tool"] == tool and r["phase"] == phase]
                ok = [r for r in rs if r["status"] == "ok"]
                bad = [r for r in rs if r["status"] != "ok"]
                for r in bad:
                    if r["status"] not in ("not built", "skipped"):
                        failures.append(f"case {case}, run {r['run']}, {tool} {phase}: "
                                        f"{r['status']} — {r['note']}")
                notbuilt = any(r["status"] == "not built" for r in crow if r["tool"] == tool)
                s = {"n": len(rs), "ok": len(ok), "notbuilt": notbuilt,
                     "failed": any(r["status"] == "FAIL" for r in rs)}
                if ok and not s["failed"]:
                    s["wall"] = med([num(r["wall_s"]) for r in ok])
                    s["rss"] = med([num(r["rss_kb"]) for r in ok])
                    s["src"] = med([num(r["src_bytes"]) for r in ok])
                    s["repo"] = med([num(r["repo_bytes"]) for r in ok])
                    s["notes"] = sorted({r["note"] for r in ok if r["note"]})
                summary[(case, tool, phase)] = s

        w(f"## {CASE_TITLES[case]}")
        w("")
        keys = [k for k, v in meta if k.startswith(f"case {case} ")]
        for k in keys:
            w(f"- {k[len(f'case {case} '):]}: {md[k]}")
        if keys:
            w("")
        w("| tool | phase | median wall s | MB/s | peak RSS MB | repo MB | restic/tool time | runs ok |")
        w("|---|---|---:|---:|---:|---:|---:|---:|")
        for tool in tools:
            for phase, label in PHASES[case]:
                s = summary[(case, tool, phase)]
                if s["notbuilt"]:
                    w(f"| {tool} | {label} | {tool}: not built | | | | | |")
                    continue
                if "wall" not in s:
                    what = "FAIL" if s["failed"] else "skipped"
                    w(f"| {tool} | {label} | **{what}** | | | | | {s['ok']}/{s['n']} |")
                    continue
                r = summary.get((case, "restic", phase), {})
                ratio = (r["wall"] / s["wall"]) if r.get("wall") and s["wall"] else None
                mbps = mb(s["src"]) / s["wall"] if s["src"] and s["wall"] else None
                repo = fmt(mb(s["repo"]), 1) if s["repo"] is not None else "—"
                note = f" ({'; '.join(s['notes'])})" if s.get("notes") else ""
                w(f"| {tool} | {label}{note} | {fmt(s['wall'])} | {fmt(mbps, 1)} | "
                  f"{fmt(s['rss'] / 1024 if s['rss'] else None, 1)} | {repo} | "
                  f"{fmt(ratio)} | {s['ok']}/{s['n']} |")
        w("")
        if case == "A":
            w("Repository size (MB) after the full backup and at the end (after the 1%-changed re-backup):")
            w("")
            w("| tool | after full | at end |")
            w("|---|---:|---:|")
            for tool in tools:
                f_ = summary[(case, tool, "full")]
                e_ = summary[(case, tool, "changed")]
                if f_["notbuilt"]:
                    w(f"| {tool} | not built | |")
                    continue
                fv = fmt(mb(f_["repo"]), 1) if f_.get("repo") is not None else "—"
                ev = fmt(mb(e_["repo"]), 1) if e_.get("repo") is not None else "—"
                w(f"| {tool} | {fv} | {ev} |")
            w("")

    # Targets for backupd, as ratios to restic in this same run.
    if any(t == "backupd" and "wall" in s for (c, t, p), s in summary.items()):
        w("## Targets (backupd, this run)")
        w("")
        w("| target | wanted | measured | verdict |")
        w("|---|---|---|---|")

        def verdict(ok):
            return "PASS" if ok else "**MISS**"
        # the targets of the cases this run measured (CASES=B judged
        # case A's as missed, and not case B's)
        run_cases = {c for (c, t, p) in summary}
        for case, targets in (("A", TARGETS_A), ("B", TARGETS_B)):
            if case not in run_cases:
                continue
            for phase, want in targets.items():
                b = summary.get((case, "backupd", phase), {})
                r = summary.get((case, "restic", phase), {})
                label = dict(PHASES[case])[phase]
                if b.get("wall") and r.get("wall"):
                    ratio = r["wall"] / b["wall"]
                    w(f"| {case} {label} vs restic | ≥{want}× faster | {ratio:.2f}× | {verdict(ratio >= want)} |")
                else:
                    w(f"| {case} {label} vs restic | ≥{want}× faster | no figure | **MISS** |")
        for phase, label in (("full", "after full backup"), ("changed", "at end")):
            if "A" not in run_cases:
                break
            b = summary.get(("A", "backupd", phase), {}).get("repo")
            anchors = [summary.get(("A", t, phase), {}).get("repo") for t in ("restic", "borg")]
            anchors = [a for a in anchors if a is not None]
            if b is not None and anchors:
                lim = min(anchors)
                w(f"| A repository {label} | ≤ {mb(lim):.1f} MB (smallest anchor) | "
                  f"{mb(b):.1f} MB | {verdict(b <= lim)} |")
            else:
                w(f"| A repository {label} | ≤ smallest anchor | no figure | **MISS** |")
        rss = [s["rss"] for (c, t, p), s in summary.items() if t == "backupd" and s.get("rss")]
        phases_missing = [f"{c}/{p}" for (c, t, p), s in summary.items()
                          if t == "backupd" and "wall" not in s]
        if rss:
            peak = max(rss) / 1024
            ok = peak < RSS_LIMIT_MB and not phases_missing
            w(f"| peak RSS, every case and phase | < {RSS_LIMIT_MB:.0f} MB | {peak:.1f} MB | {verdict(ok)} |")
        w("")

    if failures:
        w("## Failures")
        w("")
        w("A failed phase (error exit, or a restore that does not match the source) is a failure, not a number.")
        w("")
        for f_ in failures:
            w(f"- {f_}")
        w("")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
