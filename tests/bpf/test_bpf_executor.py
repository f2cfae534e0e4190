"""The generated-Python executor against the VM (and libpcap's bpf_filter()) on random
hand-built programs: every load size and mode, every ALU operation with K and X (wrap
around, shifts by X >= 32, division by X = 0), scratch memory, ``ret a``, and frames
short enough that loads fall outside them."""

from __future__ import annotations

import random

from bpf_reference import c_program, load_libpcap

from packetcapture.bpf import ALUOp, BpfProgram, Instruction
from packetcapture.bpf import _insn as op

LOADS = [op.LD | s | m for s in (op.W, op.H, op.B) for m in (op.ABS, op.IND)]
LOADS += [op.LD | op.W | op.LEN, op.LDX | op.W | op.LEN, op.LDX | op.B | op.MSH]
LOADS += [op.LD | op.IMM, op.LDX | op.IMM, op.LD | op.MEM, op.LDX | op.MEM]
ALU = [op.ALU | o | s for o in ALUOp for s in (op.K, op.X)] + [op.ALU | 0x80]
MISC = [op.ST, op.STX, op.MISC | op.MISC_TAX, op.MISC | op.MISC_TXA]
_M32 = 0xFFFFFFFF
TESTS = [op.JMP | t | s for t in (op.JEQ, op.JGT, op.JGE, op.JSET) for s in (op.K, op.X)]


def random_program(rng: random.Random) -> BpfProgram:
    n = rng.randint(4, 40)
    # Scratch words 0-3 are written first, so every read is of a written word.
    body = [Instruction(op.LD | op.IMM, 0, 0, rng.randrange(1 << 32))]
    body += [Instruction(op.ST, 0, 0, i) for i in range(4)]
    for i in range(n):
        kind = rng.random()
        left = n - i  # instructions after this one, before the final rets
        if kind < 0.3:
            code = rng.choice(LOADS)
            k = rng.choice([0, 1, 2, 3, 6, 12, 14, 20, 30, 60, 0xFFFFFFF0, rng.randrange(64)])
            if code in (op.LD | op.MEM, op.LDX | op.MEM):
                k = rng.randrange(4)
            body.append(Instruction(code, 0, 0, k))
        elif kind < 0.6:
            code = rng.choice(ALU)
            k = rng.choice([0, 1, 2, 3, 7, 31, 32, 40, 0xFF, 0xFFFF, _M32, rng.randrange(99)])
            if code & 0xF0 in (ALUOp.DIV, ALUOp.MOD) and not code & op.X:
                k = max(k, 1)
            if code & 0xF0 in (ALUOp.LSH, ALUOp.RSH) and not code & op.X:
                k = k % 32
            body.append(Instruction(code, 0, 0, k))
        elif kind < 0.75:
            code = rng.choice(MISC)
            body.append(Instruction(code, 0, 0, rng.randrange(4) if code in (op.ST, op.STX) else 0))
        elif kind < 0.95:
            jt, jf = rng.randint(0, min(left, 6)), rng.randint(0, min(left, 6))
            k = rng.choice([0, 1, 6, 0x800, 0xFF, rng.randrange(1 << 32)])
            body.append(Instruction(rng.choice(TESTS), jt, jf, k))
        else:
            body.append(Instruction(op.RET | op.RA, 0, 0, 0))
    body.append(Instruction(op.RET | op.RA, 0, 0, 0))
    body.append(Instruction(op.RET | op.K, 0, 0, 262144))
    return BpfProgram(body)


def test_executor_matches_vm_on_random_programs():
    rng = random.Random(11)
    lib = load_libpcap()
    checked = 0
    for _ in range(300):
        prog = random_program(rng)
        fast = prog.executor()
        cprog = c_program(prog.instructions) if lib is not None else None
        for _ in range(40):
            frame = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 5, 14, 20, 40, 64])))
            want = prog.run(frame)
            assert fast(frame) == want, (prog.disassemble(), frame.hex())
            if lib is not None:
                assert lib.bpf_filter(cprog, frame, len(frame), len(frame)) == want
            checked += 1
    assert checked == 12000


def test_executor_source_is_straight_line_for_a_typical_spec():
    from packetcapture.bpf import compile_filters
    from packetcapture.model import PacketCaptureRule

    prog = compile_filters([PacketCaptureRule("TCP", [80]), PacketCaptureRule("UDP", [53])])
    src = prog.python_source()
    # No per-instruction dispatch, no scratch list, 16-bit loads as two byte indexings
    # (with the operations Python 3.11 specialises: * and +, not << and |).
    assert "m = [" not in src and "_H(" not in src
    assert "(p[12] * 256 + p[13])" in src
