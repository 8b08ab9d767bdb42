#!/usr/bin/env python3
"""Checks, in the SASS of an sm_90a cubin, that the warp-specialized prefill
body's consumers overlap each tile's softmax with the previous tile's P·V.

  check_wgmma_overlap.py [--nvdisasm PATH] [--kernels REGEX] CUBIN...
  check_wgmma_overlap.py --sass FILE [--kernels REGEX]   (nvdisasm -c text)

The body (runtime/include/kvrt/device/attention_prefill_ws.cuh) issues S(k)
and P·V(k - 1), waits for S(k) (wgmma.wait_group 1), runs tile k's softmax
and only then waits for P·V(k - 1) (wait_group 0). ptxas is free to move
that second wait up, and did (session 19): the softmax then ran after the
P·V instead of under it. In SASS the waits are `WARPGROUP.DEPBAR.LE gsb0,
0x1` and `0x0`, the softmax's exponentials `MUFU.EX2`. For every kernel
whose name matches REGEX (default: the attention kernels kvcc emits) this
finds the innermost loops that hold wgmma instructions (HGMMA), a `0x1`
wait and exponentials, and requires that every exponential after the `0x1`
wait comes before the loop's next `0x0` wait. Each loop's line also says
where its S = Q·Kᵀ (the HGMMAs without `.tnspB`) takes Q from: "Q in
registers" (A a register, `R<n>`, as kvrt's configuration issues it since
session 21: wgmma::mmaRegisterAKMajorB) or "Q in shared memory" (A a
descriptor, `gdesc`), and how many of the kernel's 16-byte global stores
(`STG.E.128`, the output's) run while an S is in flight: the nearest
HGMMA or wgmma wait before them is an HGMMA (since session 22 the
consumers store an item's output while the next item's first S runs where
they take turns, kStoreUnderNextScores). Kernels without such a loop (no
warp-specialized body for their shapes or target) are reported and pass.
Exits 1 if any loop fails, 2 on bad input.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

SECTION = re.compile(r"^\s*\.text\.(\S+):\s*$")
LABEL = re.compile(r"^\s*(\.L_x_\d+):\s*$")
INSTRUCTION = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;?\s*$")
BRANCH = re.compile(r"\bBRA\b.*`\((\.L_x_\d+)\)")
# An HGMMA whose A operand (after the accumulator) is a register.
REGISTER_A = re.compile(r"^HGMMA\S*\s+R\d+,\s+R\d+,")
# A guard predicate before an instruction (`@P0`, `@!P1`).
PREDICATE = re.compile(r"^@!?U?P[T0-9]+\s+")
WAIT_S = "WARPGROUP.DEPBAR.LE gsb0, 0x1"
WAIT_PV = "WARPGROUP.DEPBAR.LE gsb0, 0x0"


def parse(text):
    """{function: (instructions, {label: index})} from nvdisasm -c output."""
    functions = {}
    name = None
    for line in text.splitlines():
        m = SECTION.match(line)
        if m:
            name = m.group(1)
            functions[name] = ([], {})
            continue
        if name is None:
            continue
        instructions, labels = functions[name]
        m = LABEL.match(line)
        if m:
            labels[m.group(1)] = len(instructions)
            continue
        m = INSTRUCTION.match(line)
        if m:
            instructions.append(m.group(2))
    return functions


def loops(instructions, labels):
    """(first, last) index pairs of the backward branches' ranges."""
    found = []
    for i, text in enumerate(instructions):
        m = BRANCH.search(text)
        if m and m.group(1) in labels and labels[m.group(1)] <= i:
            found.append((labels[m.group(1)], i))
    return found


def tile_loops(instructions, labels):
    """The innermost loops with HGMMA, a wait_group 1 and exponentials."""
    def qualifies(first, last):
        body = instructions[first:last + 1]
        return (any(t.startswith("HGMMA") for t in body) and
                any(WAIT_S in t for t in body) and
                any("MUFU.EX2" in t for t in body))
    candidates = [r for r in loops(instructions, labels) if qualifies(*r)]
    # Of ranges that intersect keep the shortest: an enclosing loop, or a
    # barrier's out-of-line retry code branching back into the loop.
    return [r for r in candidates
            if not any(o[1] - o[0] < r[1] - r[0] and o[0] <= r[1] and
                       r[0] <= o[1] for o in candidates)]


def query_source(body):
    """Where the loop's S HGMMAs (no .tnspB) take A from."""
    scores = [t for t in body if t.startswith("HGMMA") and ".tnspB" not in t]
    kinds = {"registers" if REGISTER_A.match(t) else "shared memory"
             for t in scores}
    return " and ".join(sorted(kinds)) or "no S"


def stores_under_scores(instructions):
    """The 16-byte stores whose nearest HGMMA or wgmma wait before them is
    an HGMMA (a wgmma issued and not yet waited for)."""
    count = 0
    last = None
    for text in instructions:
        text = PREDICATE.sub("", text)
        if text.startswith("HGMMA"):
            last = "issued"
        elif text.startswith("WARPGROUP.DEPBAR"):
            last = "waited"
        elif text.startswith("STG.E.128") and last == "issued":
            count += 1
    return count


def check_loop(instructions, first, last):
    """(ok, message) for one tile loop."""
    body = instructions[first:last + 1]
    wait_s = next(i for i, t in enumerate(body) if WAIT_S in t)
    wait_pv = next((i for i in range(wait_s, len(body)) if WAIT_PV in body[i]),
                   None)
    exps = [i for i in range(wait_s, len(body)) if "MUFU.EX2" in body[i]]
    if wait_pv is None:
        return False, "no wait_group 0 after the wait_group 1"
    under = sum(1 for i in exps if i < wait_pv)
    after = len(exps) - under
    message = (f"loop of {len(body)} instructions: {under} exponentials "
               f"between the waits, {after} after the P·V wait; Q in "
               f"{query_source(body)}")
    return after == 0 and under > 0, message


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cubins", nargs="*", metavar="cubin")
    parser.add_argument("--sass", help="read this nvdisasm -c output instead")
    parser.add_argument("--nvdisasm",
                        default=os.environ.get("NVDISASM") or
                        shutil.which("nvdisasm") or "nvdisasm")
    parser.add_argument("--kernels", default="kvcc_attention")
    args = parser.parse_args()
    if (args.sass is None) == (not args.cubins):
        parser.error("give CUBINs or --sass FILE")
    texts = []
    try:
        if args.sass:
            with open(args.sass) as f:
                texts.append(f.read())
        for cubin in args.cubins:
            texts.append(subprocess.run([args.nvdisasm, "-c", cubin],
                                        check=True, capture_output=True,
                                        text=True).stdout)
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"error: cannot read the SASS: {error}", file=sys.stderr)
        return 2
    functions = {}
    for text in texts:
        functions.update({name: value for name, value in parse(text).items()
                          if re.search(args.kernels, name)})
    if not functions:
        print(f"error: no function matches '{args.kernels}' in "
              f"{args.sass or ' '.join(args.cubins)}", file=sys.stderr)
        return 2
    failed = False
    for name in sorted(functions):
        instructions, labels = functions[name]
        found = tile_loops(instructions, labels)
        if not found:
            print(f"{name}: no warp-specialized tile loop")
            continue
        stores = stores_under_scores(instructions)
        for first, last in found:
            ok, message = check_loop(instructions, first, last)
            failed |= not ok
            print(f"{name}: {'PASS' if ok else 'FAIL'}: {message}; "
                  f"{stores} output stores under an S")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
