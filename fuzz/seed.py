#!/usr/bin/env python3
"""Build the fuzz seed corpora from capture files (standard library only).

    python3 fuzz/seed.py [TRACES_DIR] [-o fuzz/corpus]

TRACES_DIR defaults to ../shared/zeek/traces next to the repository
(/work/shared/zeek/traces). Writes, under the output directory:

- reader/, pipeline/: the capture files themselves (pcap, pcapng, .gz);
- decode/: single frames, each prefixed with the decode target's two header
  bytes [link-type index, flags=0] (index into LINKS below, which must match
  fuzz_targets/decode.rs); at most FRAMES_PER_FILE per capture, deduplicated;
- flow_table/: each capture's IP packets turned into the flow_table target's
  10-byte packet descriptions (see fuzz_targets/flow_table.rs), hosts mapped
  into its pool of 8, real ports, flags, lengths and time steps.

Existing files are overwritten; names are derived from the content's hash,
so re-running is idempotent.
"""

import argparse
import gzip
import hashlib
import struct
import sys
from pathlib import Path

LINKS = [0, 1, 9, 12, 14, 50, 101, 108, 113, 228, 229, 276, 147]
FRAMES_PER_FILE = 48
FLOW_PACKETS = 400

MS = 1_000_000
SEC = 1_000_000_000


def read_capture(raw):
    """Yield (ts_ns, linktype, frame) from pcap or pcapng bytes; stops at damage."""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError):
            return
    if len(raw) < 4:
        return
    magic = raw[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        yield from read_pcapng(raw)
    else:
        yield from read_pcap(raw)


def read_pcap(raw):
    if len(raw) < 24:
        return
    for end in "<>":
        m = struct.unpack(end + "I", raw[:4])[0]
        if m in (0xA1B2C3D4, 0xA1B23C4D):
            break
    else:
        return
    nanos = m == 0xA1B23C4D
    link = struct.unpack(end + "I", raw[20:24])[0] & 0xFFFF
    at = 24
    while at + 16 <= len(raw):
        sec, frac, cap, _wire = struct.unpack(end + "IIII", raw[at : at + 16])
        if at + 16 + cap > len(raw):
            return
        ts = sec * SEC + (frac if nanos else frac * 1000)
        yield ts, link, raw[at + 16 : at + 16 + cap]
        at += 16 + cap


def read_pcapng(raw):
    at, end, ifaces = 0, "<", []
    while at + 12 <= len(raw):
        if raw[at : at + 4] == b"\x0a\x0d\x0d\x0a":
            end = "<" if raw[at + 8 : at + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            ifaces = []
        btype, total = struct.unpack(end + "II", raw[at : at + 8])
        if total < 12 or total % 4 or at + total > len(raw):
            return
        body = raw[at + 8 : at + total - 4]
        if btype == 1 and len(body) >= 8:
            link = struct.unpack(end + "H", body[:2])[0]
            res = 6
            opts = body[8:]
            while len(opts) >= 4:
                code, olen = struct.unpack(end + "HH", opts[:4])
                if code == 0:
                    break
                if code == 9 and olen >= 1:
                    res = opts[4]
                opts = opts[4 + ((olen + 3) & ~3) :]
            ifaces.append((link, res))
        elif btype == 6 and len(body) >= 20:
            iface, hi, lo, cap, _wire = struct.unpack(end + "IIIII", body[:20])
            if iface < len(ifaces):
                link, res = ifaces[iface]
                units = (hi << 32) | lo
                if res & 0x80:
                    ts = units * SEC >> (res & 0x7F)
                else:
                    ts = units * SEC // 10 ** (res & 0x7F)
                yield ts, link, body[20 : 20 + cap]
        elif btype == 3 and len(body) >= 4 and ifaces:
            yield 0, ifaces[0][0], body[4:]
        at += total


def network(link, frame):
    """(ip bytes) for the link types the flow seeds understand, else None."""
    off = None
    if link == 1:
        off, et = 12, None
        while off + 2 <= len(frame):
            et = struct.unpack(">H", frame[off : off + 2])[0]
            if et in (0x8100, 0x88A8, 0x9100):
                off += 4
                continue
            break
        if et not in (0x0800, 0x86DD):
            return None
        return frame[off + 2 :]
    if link == 113:
        return frame[16:]
    if link == 276:
        return frame[20:]
    if link in (0, 108):
        return frame[4:]
    if link in (12, 14, 101, 228, 229):
        return frame
    return None


def flow_description(ip, pools, prev_ts, ts):
    """One 10-byte description for flow_table, or None if not IP."""
    if len(ip) < 20:
        return None
    ver = ip[0] >> 4
    if ver == 4:
        ihl = (ip[0] & 15) * 4
        proto, src, dst = ip[9], ip[12:16], ip[16:20]
        total = struct.unpack(">H", ip[2:4])[0] or len(ip)
        l4 = ip[ihl:total]
        v6 = 0
    elif ver == 6 and len(ip) >= 40:
        proto, src, dst = ip[6], ip[8:24], ip[24:40]
        l4 = ip[40 : 40 + struct.unpack(">H", ip[4:6])[0]]
        v6 = 1
    else:
        return None
    pool = pools[v6]
    s = pool.setdefault(bytes(src), len(pool) % 8)
    r = pool.setdefault(bytes(dst), len(pool) % 8)
    kind = {6: 0, 17: 1, 1: 2, 58: 2}.get(proto, 3)
    b = bytearray(10)
    b[1] = s | (r << 4)
    if kind == 0 and len(l4) >= 20:
        b[2:6] = l4[0:4]
        b[6] = l4[13]
        payload = max(0, len(l4) - (l4[12] >> 4) * 4)
    elif kind == 1 and len(l4) >= 8:
        b[2:6] = l4[0:4]
        b[6] = l4[8] if len(l4) > 8 else 0
        b[8] = l4[10] if len(l4) > 10 else 0
        payload = len(l4) - 8
    elif kind == 2 and len(l4) >= 8:
        b[2], b[3] = l4[0], l4[1]
        payload = len(l4) - 8
    else:
        kind, payload = 3, len(l4)
    b[7] = min(payload // 8, 255)
    delta = 0 if prev_ts is None else ts - prev_ts
    if delta < 0:
        mode, step = 2, min(-delta // (10 * MS), 255)
    elif delta < 256 * MS:
        mode, step = 0, delta // MS
    elif delta < 256 * SEC:
        mode, step = 1, delta // SEC
    else:
        mode, step = 3, min(delta // (60 * SEC), 0xF7)
    b[0] = kind | (v6 << 2) | (mode << 3)
    b[9] = step
    return bytes(b)


def write(dirpath, data, stem):
    name = f"{stem}-{hashlib.sha1(data).hexdigest()[:16]}"
    (dirpath / name).write_bytes(data)


def main():
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("traces", nargs="?", type=Path, default=here.parent.parent / "shared" / "zeek" / "traces")
    ap.add_argument("-o", "--out", type=Path, default=here / "corpus")
    args = ap.parse_args()
    files = sorted(p for p in args.traces.iterdir() if p.is_file())
    if not files:
        sys.exit(f"no capture files in {args.traces}")
    dirs = {k: args.out / k for k in ("reader", "pipeline", "decode", "flow_table")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(dirs, 0)
    seen = set()
    for path in files:
        raw = path.read_bytes()
        stem = path.name.split(".")[0]
        for k in ("reader", "pipeline"):
            (dirs[k] / path.name).write_bytes(raw)
            counts[k] += 1
        packets = list(read_capture(raw))
        # The first frames (handshakes) plus an even spread of the rest.
        picks = list(range(min(len(packets), FRAMES_PER_FILE // 2)))
        rest = len(packets) - len(picks)
        if rest > 0:
            n = min(rest, FRAMES_PER_FILE - len(picks))
            picks += [len(picks) + i * rest // n for i in range(n)]
        for i in picks:
            _ts, link, frame = packets[i]
            idx = LINKS.index(link) if link in LINKS else len(LINKS) - 1
            seed = bytes([idx, 0]) + frame
            digest = hashlib.sha1(seed).digest()
            if digest not in seen:
                seen.add(digest)
                write(dirs["decode"], seed, stem)
                counts["decode"] += 1
        pools, prev, descs = ({}, {}), None, []
        for ts, link, frame in packets[:FLOW_PACKETS]:
            ip = network(link, frame)
            d = ip is not None and flow_description(ip, pools, prev, ts)
            if d:
                descs.append(d)
                prev = ts
        if descs:
            # max_flows 4, and 8 with millisecond timeouts and explicit advance.
            for cfg in (0x03, 0x57):
                write(dirs["flow_table"], bytes([cfg]) + b"".join(descs), stem)
                counts["flow_table"] += 1
    for k, n in counts.items():
        print(f"{dirs[k]}: {n} seeds")


if __name__ == "__main__":
    main()
