#!/usr/bin/env python3
"""Writes the seed inputs of corpus/console_queues in the layout harness.rs documents."""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus", "console_queues")
NEXT, WRITE, INDIRECT = 1, 2, 4
RX, TX, EVENT_IDX, READY, BLOCK_ODD, EMERG, NEGOTIATE = 1, 2, 4, 8, 16, 32, 64


def ring_layout(base):
    """Descriptor table, avail ring and used ring of a 16-entry queue at `base`, in 16-byte units."""
    return (base // 16, (base + 0x200) // 16, (base + 0x400) // 16)


def seed(control, per_call, rx, tx, host_input, round_writes, memory):
    header = struct.pack("<BB", control, per_call)
    for size, base in (rx, tx):
        header += struct.pack("<HHHH", size, *ring_layout(base))
    header += struct.pack("<BB", len(host_input), len(round_writes) // 8)
    return header + host_input + round_writes + bytes(memory)


def put_desc(memory, table, index, addr, length, flags, next_index):
    struct.pack_into("<QIHH", memory, table + 16 * index, addr, length, flags, next_index)


def make_available(memory, avail, heads):
    struct.pack_into("<HH", memory, avail, 0, len(heads))
    for i, head in enumerate(heads):
        struct.pack_into("<H", memory, avail + 4 + 2 * i, head)


def main():
    os.makedirs(CORPUS, exist_ok=True)
    rx_base, tx_base = 0x1000, 0x2000
    seeds = {}

    mem = bytearray(0x6000)
    put_desc(mem, tx_base, 0, 0x4000, 5, NEXT, 1)
    put_desc(mem, tx_base, 1, 0x4100, 3, 0, 0)
    mem[0x4000:0x4005] = b"hello"
    mem[0x4100:0x4103] = b"!\r\n"
    make_available(mem, tx_base + 0x200, [0])
    seeds["tx_chained"] = seed(TX | READY | NEGOTIATE, 0, (0, rx_base), (16, tx_base), b"", b"", mem)

    mem = bytearray(0x6000)
    put_desc(mem, rx_base, 0, 0x5000, 8, WRITE | NEXT, 1)
    put_desc(mem, rx_base, 1, 0x5100, 8, WRITE, 0)
    put_desc(mem, rx_base, 2, 0x5200, 64, WRITE, 0)
    make_available(mem, rx_base + 0x200, [0, 2])
    seeds["rx_posted"] = seed(RX | READY | NEGOTIATE, 0, (16, rx_base), (0, tx_base), b"hello host input", b"", mem)

    mem = bytearray(0x6000)
    put_desc(mem, tx_base, 0, 0x4000, 8, NEXT, 1)
    put_desc(mem, tx_base, 1, 0x4008, 8, NEXT, 0)
    put_desc(mem, tx_base, 2, 0x4000, 4, 0, 0)
    make_available(mem, tx_base + 0x200, [0, 2])
    put_desc(mem, rx_base, 0, 0x5000, 8, 0, 0)
    put_desc(mem, rx_base, 1, 0xFFFF_FFF0, 64, WRITE, 0)
    put_desc(mem, rx_base, 2, 0x5000, 8, WRITE | NEXT, 40)
    put_desc(mem, rx_base, 3, 0x5000, 8, WRITE, 0)
    make_available(mem, rx_base + 0x200, [0, 1, 2, 3])
    seeds["malformed_both"] = seed(RX | TX | READY | NEGOTIATE, 0, (16, rx_base), (16, tx_base), b"abc", b"", mem)

    mem = bytearray(0x6000)
    table = 0x3000
    put_desc(mem, table, 0, 0x4000, 4, NEXT, 1)
    put_desc(mem, table, 1, 0x4004, 4, 0, 0)
    mem[0x4000:0x4008] = b"indirect"
    put_desc(mem, tx_base, 0, table, 32, INDIRECT, 0)
    put_desc(mem, tx_base, 1, table, 17, INDIRECT, 0)
    make_available(mem, tx_base + 0x200, [0, 1])
    seeds["tx_indirect"] = seed(TX | READY | NEGOTIATE | EMERG, 0, (0, rx_base), (16, tx_base), b"", b"", mem)

    mem = bytearray(0x6000)
    for i in range(8):
        put_desc(mem, tx_base, i, 0x4000 + 0x100 * i, 200, 0, 0)
    make_available(mem, tx_base + 0x200, list(range(8)))
    # Round writes move the avail index on, as a guest posting more chains would.
    writes = struct.pack("<HBB", tx_base + 0x202, 12, 0) + struct.pack("<HBB", 0, 0, 0)
    seeds["tx_slow_sink"] = seed(TX | READY | NEGOTIATE | EVENT_IDX | BLOCK_ODD, 1, (0, rx_base), (16, tx_base), b"", writes * 2, mem)

    for name, data in seeds.items():
        with open(os.path.join(CORPUS, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
