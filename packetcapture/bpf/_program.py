"""``BpfProgram``: a validated classic BPF program plus the link type it expects."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable

from packetcapture._defaults import DEFAULT_SNAPLEN
from packetcapture._frozen import Frozen, set_field
from packetcapture.bpf import _insn as op
from packetcapture.bpf import _vm
from packetcapture.bpf._asm import validate
from packetcapture.bpf._insn import Instruction

# The code generator and the disassembler are imported by the methods that use them: a
# program filtered by the VM (a small replay) or only attached (live) needs neither.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    from packetcapture.bpf import _codegen

__all__ = ["DEFAULT_SNAPLEN", "BpfProgram"]

_SOCK_FILTER = struct.Struct("=HBBI")


class BpfProgram(Frozen):
    """A classic BPF program, validated with the kernel's rules on construction.

    ``linktype`` says which link-layer header the frames start with (1 Ethernet,
    113 Linux SLL, 276 SLL2, 101 raw IP); ``snaplen`` is what an accepting program
    returns. Raises ``FilterCompileError`` if the instructions are not a valid program.
    Immutable, equal and hashed by its three fields.
    """

    # A frozen value class written out (packetcapture._frozen), not an attrs one: making
    # an attrs class costs every command that compiles a filter ~0.4 ms at start-up.
    # Weak references: the replay backend counts the VM's input per program.
    __slots__ = ("__weakref__", "_executor", "_scanner", "instructions", "linktype", "snaplen")
    __match_args__ = ("instructions", "linktype", "snaplen")
    instructions: tuple[Instruction, ...]
    linktype: int
    snaplen: int
    _executor: list[Callable[[bytes], int]]  # the generated executor, made on first use
    _scanner: dict[bool, _codegen.Scanner]  # the pcap scanners, by ``timed``

    def __init__(
        self,
        instructions: Iterable[Instruction],
        linktype: int = 1,
        snaplen: int = DEFAULT_SNAPLEN,
    ) -> None:
        insns = tuple(instructions)
        set_field(self, "instructions", insns)
        set_field(self, "linktype", linktype)
        set_field(self, "snaplen", snaplen)
        set_field(self, "_executor", [])
        set_field(self, "_scanner", {})
        validate(insns)

    @classmethod
    def accept_all(cls, linktype: int = 1, snaplen: int = DEFAULT_SNAPLEN) -> BpfProgram:
        """Return the one-instruction program that keeps every packet (``ret #snaplen``)."""
        return cls((Instruction(op.RET | op.K, 0, 0, snaplen),), linktype, snaplen)

    @classmethod
    def reject_all(cls, linktype: int = 1, snaplen: int = DEFAULT_SNAPLEN) -> BpfProgram:
        """Return the one-instruction program that drops every packet (``ret #0``)."""
        return cls((Instruction(op.RET | op.K),), linktype, snaplen)

    def __len__(self) -> int:
        return len(self.instructions)

    def run(self, frame: bytes, wire_len: int | None = None) -> int:
        """Run the VM on ``frame`` (captured bytes, link-layer header first).

        Returns the program's verdict: 0 drops the packet, anything else is the number
        of bytes to keep. ``wire_len`` (default ``len(frame)``) is what ``ld len`` sees.
        """
        return _vm.run(self.instructions, frame, wire_len)

    def matches(self, frame: bytes) -> bool:
        """Return True if the program keeps ``frame`` (wire length = ``len(frame)``)."""
        return _vm.run(self.instructions, frame) != 0

    def trace(self, frame: bytes, wire_len: int | None = None) -> tuple[int, int]:
        """Return ``(verdict, number of instructions executed)`` for ``frame``."""
        return _vm.trace(self.instructions, frame, wire_len)

    def executor(self) -> Callable[[bytes], int]:
        """Return a generated Python function ``f(frame) -> verdict`` (cached).

        It gives the same verdicts as ``run(frame)`` and is several times faster.
        """
        if not self._executor:
            from packetcapture.bpf import _codegen

            self._executor.append(_codegen.make_executor(self.instructions))
        return self._executor[0]

    def pcap_scanner(self, *, timed: bool = False) -> _codegen.Scanner:
        """Return the program fused into a loop over classic pcap records (cached).

        For :meth:`PcapReader.read_filtered_raw`: the verdicts are those of ``run`` on
        each record's captured bytes, computed in the record loop with no call per record. See
        ``packetcapture.bpf._codegen.make_scanner`` for the calling convention; ``timed``
        adds its time window (a replay on the files' clock).
        """
        scanner = self._scanner.get(timed)
        if scanner is None:
            from packetcapture.bpf import _codegen

            scanner = self._scanner[timed] = _codegen.make_scanner(self.instructions, timed=timed)
        return scanner

    def python_source(self) -> str:
        """Return the source of the generated executor (for debugging)."""
        from packetcapture.bpf import _codegen

        return _codegen.generate_source(self.instructions)

    def pack(self) -> bytes:
        """Return the program as a ``struct sock_filter[]`` array in native byte order."""
        return b"".join(_SOCK_FILTER.pack(*i.as_tuple()) for i in self.instructions)

    @classmethod
    def unpack(cls, data: bytes, linktype: int = 1, snaplen: int = DEFAULT_SNAPLEN) -> BpfProgram:
        """Build a program from ``struct sock_filter[]`` bytes (the inverse of ``pack``)."""
        size = _SOCK_FILTER.size
        if len(data) % size:
            raise ValueError(f"length {len(data)} is not a multiple of {size}")
        return cls((Instruction(*t) for t in _SOCK_FILTER.iter_unpack(data)), linktype, snaplen)

    def disassemble(self, fmt: str = "d") -> str:
        """Return the program as ``tcpdump -d`` (``"d"``), ``-dd`` or ``-ddd`` text."""
        from packetcapture.bpf import _disasm

        return _disasm.disassemble(self.instructions, fmt)

    def __str__(self) -> str:
        return self.disassemble("d")
