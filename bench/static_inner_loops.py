"""Static efficiency of the GEMM micro-kernels: instructions per multiply-accumulate (MAC) and bytes
loaded per MAC in each kernel's hot inner loop, read from the disassembly of a build's objects.

Not a timing: Arm and RISC-V kernels are checked under qemu-user, where speed means nothing. For
each kernel file the loop taken is the backward branch whose body holds the most MAC instructions
(the full-height tile's k loop, all row counts being inlined instances); its instructions are
counted by class. The groupwise (s8g) kernels run the same k loop as their s8 kernel. MACs per
instruction: udot/sdot/usdot 16, usmmla 32, fmla .4s 4, SVE sudot VL/16, vpdpbusd zmm 64,
vfmadd231ps zmm 16 / ymm 8, vpmaddwd ymm 16, RVV vwmacc / vfmacc vl (the e32 LMUL-2 vector length:
VLEN/16). Loads: their access widths (RVV segment / unit-stride loads vl elements per field).

  python bench/static_inner_loops.py --x86 _core.so --aarch64 A64/mixq_kernel_test --riscv64 RV/mixq_kernel_test
(linked binaries with symbols: the x86 module, the cross-built kernel testers of .ci/cross-kernels;
each target's objdump must be installed)
"""
import argparse
import re
import subprocess
from pathlib import Path

# arch, the function holding the full-height tile's loop (name fragment), kernel, kind
KERNELS = [
    ("x86", "gemm_vnni<6, 4>", "u8s8s32_gemm_6x64c4__avx512vnni", "s8"),
    ("x86", "gemm_f32_avx512<14>", "f32_gemm_14x32__avx512", "f32"),
    ("x86", "u8s8s32_gemm_2x32w__avx2", "u8s8s32_gemm_2x32w__avx2", "s8w"),
    ("x86", "gemm_groupwise<6>", "u8s8f32_groupwise_gemm_6x128c4__avx512vnni", "s8g"),
    ("aarch64", "f32_half<4>", "f32_gemm_4x32__neon", "f32"),
    ("aarch64", "dot_half<4, false>", "u8s8s32_gemm_4x32c4__dotprod", "s8"),
    ("aarch64", "mmla_half<6, false>", "u8s8s32_gemm_6x32c4__i8mm", "s8"),
    ("aarch64", "sve_s8_panel<8, false>", "u8s8s32_gemm_8x32c4__sve", "s8"),
    ("riscv64", "f32_panel<8>", "f32_gemm_8x32__rvv", "f32"),
    ("riscv64", "s8_panel<8>", "u8s8s32_gemm_8x32c4__rvv", "s8"),
]
OBJDUMP = {"x86": "objdump", "aarch64": "aarch64-linux-gnu-objdump", "riscv64": "riscv64-linux-gnu-objdump"}
LINE = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")


def decode_rvv(word):
    """binutils 2.40 prints RVV as .4byte in a binary whose ELF attributes say rv64gc: name the two
    classes counted here. OP-V (0x57) with funct6 111100-111111 and OPMVX is vwmacc*.vx, funct6
    101100 with OPFVF vfmacc.vf; LOAD-FP (0x07) with width e8/16/32/64 a vector load of nf+1 fields."""
    opcode, funct3, funct6 = word & 0x7F, (word >> 12) & 7, word >> 26
    if opcode == 0x57 and funct3 == 6 and funct6 >= 0x3C:
        return "vwmacc.vx", ""
    if opcode == 0x57 and funct3 == 5 and funct6 == 0x2C:
        return "vfmacc.vf", ""
    if opcode == 0x07 and funct3 in (0, 5, 6, 7):
        eew = {0: 8, 5: 16, 6: 32, 7: 64}[funct3]
        nf = (word >> 29) + 1
        return (f"vlseg{nf}e{eew}" if nf > 1 else f"vle{eew}"), ""
    return "vector", ""


sve_bytes = 16  # SVE vector length assumed (bytes), --sve-bits


def macs_of(arch, mnem, ops, vl):
    if arch == "aarch64":
        if mnem in ("udot", "sdot", "usdot", "sudot"):
            return sve_bytes if "z" in ops.split(",")[0] else 16
        if mnem in ("usmmla", "smmla", "ummla"):
            return 32
        if mnem == "fmla" and ".4s" in ops:
            return 4
    elif arch == "riscv64":
        if mnem.startswith(("vwmacc", "vfmacc", "vmacc")):
            return vl
    else:
        if mnem == "vpdpbusd":
            return 64 if "zmm" in ops else 32
        if mnem in ("vfmadd231ps", "vfmadd213ps", "vfmadd132ps"):
            return 16 if "zmm" in ops else 8
        if mnem == "vpmaddwd":
            return 32 if "zmm" in ops else 16
    return 0


def load_bytes(arch, mnem, ops, vl):
    if arch == "aarch64":
        if not mnem.startswith(("ld", "ldr")) or mnem.startswith("ldxr"):
            return 0
        if re.match(r"\{?z\d+", ops):  # SVE: ld1rq* replicates 16 bytes, ld1b/h/w/d a whole vector
            return 16 if mnem.startswith("ld1rq") else sve_bytes
        regs = re.findall(r"\b([qdswbhx])\d+\b", ops.split("[")[0])
        vregs = re.findall(r"v\d+\.(\d+)([bhsd])", ops.split("[")[0])
        if vregs:
            lanes, t = vregs[0]
            per = int(lanes) * {"b": 1, "h": 2, "s": 4, "d": 8}[t]
            if "}[" in ops:  # single-lane load
                per = {"b": 1, "h": 2, "s": 4, "d": 8}[t]
            return per * len(vregs)
        size = {"q": 16, "d": 8, "s": 4, "w": 4, "x": 8, "h": 2, "b": 1}
        n = sum(size[r] for r in regs)
        if mnem.endswith("b") and mnem.startswith("ldrb"):
            n = 1
        return n
    if arch == "riscv64":
        m = re.match(r"vlseg(\d)e(\d+)", mnem)
        if m:
            return int(m.group(1)) * int(m.group(2)) // 8 * vl
        m = re.match(r"vle(\d+)", mnem)
        if m:
            return int(m.group(1)) // 8 * vl
        return {"lb": 1, "lbu": 1, "lh": 2, "lhu": 2, "lw": 4, "lwu": 4, "ld": 8, "flw": 4}.get(mnem, 0)
    ops = ops.lower()
    if "[" not in ops:
        return 0
    if mnem.startswith(("vmov", "vpbroadcast", "vbroadcast", "vp", "vfmadd", "vpdpbusd", "mov", "vinsert")):
        if "{1to" in ops or mnem.startswith(("vpbroadcastd", "vbroadcastss")):
            return 4
        if "zmmword" in ops:
            return 64
        if "ymmword" in ops:
            return 32
        if "xmmword" in ops:
            return 16
        if "qword" in ops:
            return 8
        if "dword" in ops:
            return 4
    return 0


def disassemble(arch, obj):
    cmd = [OBJDUMP[arch], "-d", "-C", "--no-show-raw-insn"] + (["-M", "intel"] if arch == "x86" else []) + [str(obj)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    funcs, cur = {}, None
    for line in out.splitlines():
        if re.match(r"^[0-9a-f]+ <.*>:$", line):
            cur = line
            funcs[cur] = []
        elif cur and (m := LINE.match(line)):
            mnem, ops = m.group(2), m.group(3)
            if arch == "riscv64" and mnem == ".4byte":
                mnem, ops = decode_rvv(int(ops, 16))
            funcs[cur].append((int(m.group(1), 16), mnem, ops))
    return funcs


def hot_loop(arch, insns, vl):
    """The innermost loop (no backward branch inside it) holding the most MACs."""
    loops = []
    addrs = [a for a, _, _ in insns]
    for idx, (addr, mnem, ops) in enumerate(insns):
        is_branch = mnem.startswith(("b.", "cbnz", "cbz", "tbnz", "tbz", "bne", "blt", "bge", "bltu", "bgeu", "beq",
                                     "bnez", "beqz", "j")) or mnem in ("b",)
        m = re.match(r"([0-9a-f]+)\b", re.sub(r"<.*>", "", ops).split(",")[-1].strip()) if is_branch else None
        if not m:
            continue
        target = int(m.group(1), 16)
        if target >= addr or target not in addrs:
            continue
        loops.append((addrs.index(target), idx))
    best = None
    for start, end in loops:
        if any(start <= s2 and e2 < end for s2, e2 in loops if (s2, e2) != (start, end)):
            continue  # holds an inner loop
        body = insns[start:end + 1]
        macs = sum(macs_of(arch, mn, op, vl) for _, mn, op in body)
        if macs and (best is None or macs > best[0]):
            best = (macs, body)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--x86")
    ap.add_argument("--aarch64")
    ap.add_argument("--riscv64")
    ap.add_argument("--vlen", type=int, default=128, help="RVV VLEN assumed for vl (e32, LMUL 2)")
    ap.add_argument("--sve-bits", type=int, default=128, help="SVE vector length assumed")
    args = ap.parse_args()
    global sve_bytes
    sve_bytes = args.sve_bits // 8
    vl = args.vlen // 16
    print(f"{'kernel':46} {'insns':>5} {'MACs':>5} {'insn/MAC':>8} {'B/MAC':>6}  MAC instrs")
    for arch, holder, name, kind in KERNELS:
        build = getattr(args, arch)
        if not build:
            continue
        funcs = disassemble(arch, build)
        # The kernel's own function and the helpers it inlines into (lambdas named after it).
        insns = [i for f, body in funcs.items() if name in f or holder in f for i in body]
        found = hot_loop(arch, sorted(set(insns)), vl)
        if not found:
            print(f"{name:46} no loop found")
            continue
        macs, body = found
        loads = sum(load_bytes(arch, mn, op, vl) for _, mn, op in body)
        mac_insns = sum(1 for _, mn, op in body if macs_of(arch, mn, op, vl))
        print(f"{name:46} {len(body):5d} {macs:5d} {len(body) / macs:8.3f} {loads / macs:6.3f}  {mac_insns}")


if __name__ == "__main__":
    main()
