"""Seeds of fuzz_pci_virtio_blk (tests/fuzz/make_seeds.py writes them): config-space identity reads,
driver initialisation and block requests (read, write, flush, get-id, indirect, defects), MSI-X, and
the regression of issue 14 (a status byte rewriting a descriptor the next request uses)."""
from seed_bytes import u8, u16, u32, u64


def seeds():
    def cfg_read(reg, size_sel=2):  # op 1: size = pick_access_size(op >> 4)
        return u8(1 | size_sel << 4, 0, reg, 4)

    def driver_init(queue_size_sel=2, indirect=False):
        op = 5 | (0x10 if indirect else 0)
        return u8(op, queue_size_sel, 1, 1)  # queue size, queue vector, config vector

    def request(type_sel, sector_mode=0, sector=0, data_blocks=1, data_slot=0, head=0, defect=0, indirect=False):
        op = 13 | (0x10 if indirect else 0)
        shape = type_sel | sector_mode << 3
        out = u8(op, shape)
        if sector_mode in (0, 1):
            out += u8(sector)
        elif sector_mode == 2:
            out += u64(sector)
        out += u8(data_slot, data_blocks)
        return out + u8(defect, head)

    def msix_enable():
        return u8(10 | 0x10)

    def near(addr_index, offset):  # pick_gpa: kAddrs[addr_index] + offset (-0x80..0x7f)
        return u8(21 + addr_index, (offset + 0x80) & 0xFF)

    def descriptor(index, flags, next_index, gpa, len_sel):  # op 7 with 16-bit flags and next
        return u8(0xC7) + u16(index) + u8(0) + u16(flags) + u16(next_index) + gpa + u8(len_sel)

    def header_at(gpa, type_, sector=0):  # op 6: poke 16 bytes
        return u8(6) + gpa + u8(16) + u32(type_) + u32(0) + u64(sector)

    # Regression (issue 14): one request's status byte rewrites a descriptor's address that the
    # next request writes its data through, and a third status byte rewrites it again, so the
    # address the device used is in neither the descriptors before nor after the notification.
    # Chains: 5->6 (unsupported type, status 2 into byte 1 of descriptor 1's address), 0->1->2
    # (read 512 bytes through descriptor 1: now at 0x0100), 7->8 (flush, status 0 there too).
    status_rewrite = (u8(0x10) + u8(5, 2, 0, 0) + header_at(u8(5), 0) + header_at(near(5, 0x20), 7)
                      + header_at(near(5, 0x40), 4)
                      + descriptor(0, 1, 1, u8(5), 2) + descriptor(1, 3, 2, u8(6), 3)
                      + descriptor(2, 2, 0, near(5, 0x10), 1)
                      + descriptor(5, 1, 6, near(5, 0x20), 2) + descriptor(6, 2, 0, near(1, 0x11), 1)
                      + descriptor(7, 1, 8, near(5, 0x40), 2) + descriptor(8, 2, 0, near(1, 0x11), 1)
                      + u8(8) + u16(5) + u8(8) + u16(0) + u8(8) + u16(7) + u8(9))

    def msix_entry(vector, data):
        return u8(10, vector, 0x20) + u32(data) + u8(0)

    return {
        "identity": u8(0x00) + cfg_read(0) + cfg_read(8) + cfg_read(0x34, 0) + cfg_read(0x40) + u8(2) + cfg_read(0x10),
        "read-sector": u8(0x11) + driver_init() + request(0, 0, 1, 1) + u8(15) + request(0, 1, 0, 2, 3, head=3),
        "write-flush-getid": u8(0x11) + driver_init() + request(1, 0, 2, 2) + request(2) + request(3, data_blocks=1),
        "indirect": u8(0x11) + driver_init(indirect=True) + request(0, 0, 0, 1, indirect=True)
        + request(1, 0, 1, 1, defect=2, indirect=True),
        "msix-and-defects": u8(0x11) + driver_init() + msix_entry(0, 0x41) + msix_entry(1, 0x42) + msix_enable()
        + request(0, 0, 0, 1, defect=1) + request(0, 0, 0, 1, defect=2) + request(7, 0, 0, 1, defect=3)
        + u8(11, 0, 2) + u16(0x14),
        "status-rewrites-descriptor": status_rewrite,
    }
