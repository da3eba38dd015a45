#!/usr/bin/env python3
"""check_cfi.py TEST_CFI OBJECT... - palloc's .eh_frame decoder (alloc/cfi.c) against binutils.

For every object, `readelf --debug-dump=frames-interp` gives the table of each FDE of .eh_frame:
per row, the address from which it holds, the CFA's rule and each register's. From it this
script writes what the walk must take from that row (one line "ADDR KIND CFA_OFF RBP_OFF"):
  0 / 1   the CFA is rsp / rbp plus a multiple of 8 (at least 8), the return address is at
          CFA - 8, and rbp is unchanged ('u', 's', or absent: RBP_OFF 0) or saved at CFA - N
          (RBP_OFF N, a multiple of 8);
  2       the return address is undefined: the outermost frame (_start, clone);
  3       anything else (a CFA by expression, rbp in a register or by expression, a signal
          frame's CIE ('S'), an odd offset): left to libunwind.
An FDE without rows holds its CIE's initial row. `test_cfi rules OBJECT` decodes every row's
first address in the loaded object and compares."""
import re
import subprocess
import sys


def expectations(obj):
    # readelf exits 1 on warnings it prints about other sections; the frame tables are whole.
    out = subprocess.run(["readelf", "--debug-dump=frames-interp", obj], capture_output=True,
                         text=True).stdout
    lines, cies = [], {}
    section = None
    cur = None  # (kind: 'CIE'|'FDE', offset, cie, pc_lo, aug, columns, rows)

    def flush(entry):
        if entry is None:
            return
        kind, off, cie, pc_lo, aug, cols, rows = entry
        if kind == "CIE":
            cies[off] = (aug, cols, rows)
            return
        caug, ccols, crows = cies.get(cie, ("?", [], []))
        if not rows:  # no instructions: the CIE's initial row, from pc_lo
            cols, rows = ccols, [(pc_lo, r[1]) for r in crows[:1]]
        for addr, vals in rows:
            lines.append("%x %s" % (addr, expect(caug, dict(zip(cols, vals)))))

    for line in out.splitlines():
        if line.startswith("Contents of the "):
            flush(cur)
            cur = None
            section = ".eh_frame" if ".eh_frame section" in line else "other"
            continue
        if section != ".eh_frame":
            continue
        m = re.match(r'^([0-9a-f]{8,16}) [0-9a-f]+ ([0-9a-f]+) CIE "([^"]*)"', line)
        if m:
            flush(cur)
            cur = ["CIE", int(m.group(1), 16), None, 0, m.group(3), [], []]
            continue
        m = re.match(r'^([0-9a-f]{8,16}) [0-9a-f]+ [0-9a-f]+ FDE cie=([0-9a-f]+) '
                     r'pc=([0-9a-f]+)\.\.', line)
        if m:
            flush(cur)
            cur = ["FDE", int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16), "",
                   [], []]
            continue
        if cur is None:
            continue
        f = re.findall(r"\S+(?: \([^)]*\))?", line)  # "r10 (r10)" is one column's value
        if f[:2] == ["LOC", "CFA"]:
            cur[5] = f[1:]
            continue
        if f and re.match(r"^[0-9a-f]{16}$", f[0]) and cur[5]:
            cur[6].append((int(f[0], 16), f[1:]))
    flush(cur)
    return lines


def expect(aug, row):
    if "S" in aug:
        return "3 0 0"
    if row.get("ra") == "u":
        return "2 0 0"
    m = re.match(r"^(rsp|rbp)\+(\d+)$", row.get("CFA", ""))
    if not m or row.get("ra") != "c-8":
        return "3 0 0"
    off = int(m.group(2))
    if off < 8 or off % 8:
        return "3 0 0"
    rbp = row.get("rbp", "u")
    if rbp in ("u", "s"):
        rbp_off = 0
    else:
        r = re.match(r"^c-(\d+)$", rbp)
        if not r or int(r.group(1)) < 8 or int(r.group(1)) % 8:
            return "3 0 0"
        rbp_off = int(r.group(1))
    return "%d %d %d" % (0 if m.group(1) == "rsp" else 1, off, rbp_off)


def main():
    test, objs = sys.argv[1], sys.argv[2:]
    failed = 0
    for obj in objs:
        exp = expectations(obj)
        p = subprocess.run([test, "rules", obj], input="\n".join(exp) + "\n", text=True,
                           capture_output=True)
        sys.stdout.write(p.stdout)
        sys.stderr.write(p.stderr)
        if p.returncode == 77:
            print("SKIP: %s" % p.stdout.strip())
            return 77
        if p.returncode != 0:
            failed += 1
    print("%d objects, %d failed" % (len(objs), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
