#!/usr/bin/env python3
"""Print the backup id found in backupd's --json output.

usage: backupd_id.py backup FILE   # output of `backupd repo backup --json`
       backupd_id.py list FILE     # output of `backupd repo list --json`: the newest

The exact field names are the engine's; this looks for the usual spellings
(backup_id, backupId, backupID, id, ID), at the top level or inside a
"backup" object. The file may hold one JSON document or JSON lines (then the
last line that is a JSON object with an id wins).
"""
import json
import sys

KEYS = ("backup_id", "backupId", "backupID", "BackupID", "id", "ID", "Id")
TIME_KEYS = ("time", "created", "created_at", "createdAt", "started", "start", "timestamp")


def find_id(obj):
    if not isinstance(obj, dict):
        return None
    for k in KEYS:
        v = obj.get(k)
        if isinstance(v, (str, int)) and str(v):
            return str(v)
    for k in ("backup", "Backup", "result", "summary"):
        v = find_id(obj.get(k))
        if v:
            return v
    return None


def docs(text):
    text = text.strip()
    try:
        return [json.loads(text)]
    except ValueError:
        pass
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def main() -> int:
    mode, path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8", errors="replace") as f:
        ds = docs(f.read())
    found = None
    if mode == "backup":
        for d in ds:
            found = find_id(d) or found
    else:
        for d in ds:
            items = d
            if isinstance(d, dict):
                for k in ("backups", "Backups", "items"):
                    if isinstance(d.get(k), list):
                        items = d[k]
                        break
            if isinstance(items, dict):
                items = [items]
            if not isinstance(items, list) or not items:
                continue

            def when(x):
                if isinstance(x, dict):
                    for k in TIME_KEYS:
                        if k in x:
                            return str(x[k])
                return ""
            # newest by a time field when there is one, else the last listed
            best = max(enumerate(items), key=lambda t: (when(t[1]), t[0]))[1]
            found = find_id(best) or found
    if not found:
        print(f"backupd_id.py: no backup id in {path}", file=sys.stderr)
        return 1
    print(found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
