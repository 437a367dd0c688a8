#!/usr/bin/env python3
"""Which b-trees a SQLite WAL's commits wrote, frame by frame (issue 8: the writer's commit cost).

usage: bench/wal_frames.py DB [WAL]

DB is a copy of an Outbound SQLite file, WAL its -wal file (default DB-wal), both copied while
the server ran (or after `kill -9`: a clean stop checkpoints the WAL away). Every frame of the
WAL's current generation (the salts of its header) is a whole page written by a commit; the
page numbers are mapped to their table or index with the sqlite3 command-line shell's `dbstat`
table (Debian's `sqlite3` package), run on a scratch copy of DB and WAL so that the copies
themselves are not changed. Prints the commits and frames seen, then per b-tree its frames,
frames per commit and share. A b-tree whose rows land on a random page per event (an index
grouped by target, say) writes about one frame per event; one that is appended to writes a
few per commit, whatever the commit's size.
"""
import collections
import os
import shutil
import struct
import subprocess
import sys
import tempfile


def page_owners(db, wal):
    scratch = tempfile.mkdtemp(prefix="wal_frames.")
    try:
        copy = os.path.join(scratch, "copy.db")
        shutil.copyfile(db, copy)
        if os.path.exists(wal):
            shutil.copyfile(wal, copy + "-wal")
        out = subprocess.run(["sqlite3", copy, "SELECT name, pageno FROM dbstat"],
                             check=True, capture_output=True, text=True).stdout
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    owners = {}
    for line in out.splitlines():
        name, _, page = line.rpartition("|")
        if page.isdigit():
            owners[int(page)] = name
    return owners


def commits(wal):
    data = open(wal, "rb").read()
    if len(data) < 32:
        return 0, []
    _, _, page_size, _, salt1, salt2, _, _ = struct.unpack(">8I", data[:32])
    offset, current, done = 32, [], []
    while offset + 24 + page_size <= len(data):
        page, size_after, s1, s2 = struct.unpack(">4I", data[offset:offset + 16])
        if (s1, s2) != (salt1, salt2):
            break  # a frame of an earlier generation: the end of this one
        current.append(page)
        if size_after != 0:  # a commit frame ends a transaction
            done.append(current)
            current = []
        offset += 24 + page_size
    return page_size, done


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    db = sys.argv[1]
    wal = sys.argv[2] if len(sys.argv) == 3 else db + "-wal"
    page_size, txns = commits(wal)
    if not txns:
        sys.exit("no committed frame in " + wal)
    owners = page_owners(db, wal)
    per = collections.Counter(owners.get(p, "?") for txn in txns for p in txn)
    frames = sum(per.values())
    print("page size %d; %d commits, %d frames, %.1f frames per commit" %
          (page_size, len(txns), frames, frames / len(txns)))
    for name, count in per.most_common():
        print("  %-40s %7d  %5.1f per commit  %5.1f %%" %
              (name, count, count / len(txns), 100.0 * count / frames))


if __name__ == "__main__":
    main()
