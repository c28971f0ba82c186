#include "devices/fw_cfg.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <stdexcept>

#include <fmt/core.h>

#include "vmm/base/bytes.hpp"
#include "vmm/base/log.hpp"

namespace minivmm {
namespace {

// The host bytes behind the first part of [gpa, gpa+len) that lies inside one RAM region, or
// nullopt when gpa is not RAM. Lets a transfer continue across adjacent regions.
std::optional<std::span<uint8_t>> ram_chunk(const GuestMemory& memory, uint64_t gpa, uint64_t len) noexcept {
    const auto& regions = memory.regions();
    auto it = std::upper_bound(regions.begin(), regions.end(), gpa,
                               [](uint64_t a, const GuestRegion& r) { return a < r.gpa; });
    if (it == regions.begin()) return std::nullopt;
    const GuestRegion& r = *(it - 1);
    if (gpa - r.gpa >= r.size) return std::nullopt;
    return memory.span(gpa, std::min(len, r.size - (gpa - r.gpa)));
}

// Calls fn(span) for consecutive host spans covering [gpa, gpa+len). Checks the whole range
// first, so either every byte is visited or none is (returns false). The number of chunks is
// bounded by the number of RAM regions, whatever `len` the guest asked for.
template <typename Fn>
bool for_each_ram_chunk(const GuestMemory& memory, uint64_t gpa, uint64_t len, Fn&& fn) noexcept {
    if (len == 0) return true;
    if (gpa + len < gpa) return false;  // wraps around the address space
    for (int pass = 0; pass < 2; ++pass) {
        uint64_t cur = gpa, left = len;
        while (left > 0) {
            auto chunk = ram_chunk(memory, cur, left);
            if (!chunk || chunk->empty()) return false;
            if (pass == 1) fn(*chunk);
            cur += chunk->size();
            left -= chunk->size();
        }
    }
    return true;
}

std::vector<uint8_t> le32(uint32_t v) {
    std::vector<uint8_t> out(4);
    store_le(out, v);
    return out;
}

bool is_legacy_key(uint16_t key) noexcept {
    uint16_t index = key & ~fw_cfg::kArchLocal;
    return index < fw_cfg::kLegacyKeyLimit;
}

}  // namespace

FwCfg::FwCfg(const GuestMemory& memory) : memory_(memory) {
    items_[fw_cfg::kSignature] = {'Q', 'E', 'M', 'U'};
    items_[fw_cfg::kId] = le32(fw_cfg::kIdTraditional | fw_cfg::kIdDma);
    rebuild_directory();
    select(fw_cfg::kSignature);  // QEMU's reset state
}

void FwCfg::add_item(uint16_t key, std::vector<uint8_t> data) {
    if (!is_legacy_key(key))
        throw std::invalid_argument(fmt::format("fw_cfg: key {:#06x} is not a legacy item key", key));
    if (key == fw_cfg::kSignature || key == fw_cfg::kId || key == fw_cfg::kFileDir)
        throw std::invalid_argument(fmt::format("fw_cfg: key {:#06x} is reserved by the device", key));
    if (items_.count(key) != 0) throw std::invalid_argument(fmt::format("fw_cfg: key {:#06x} added twice", key));
    if (data.size() > std::numeric_limits<uint32_t>::max())
        throw std::invalid_argument(fmt::format("fw_cfg: item {:#06x} is larger than 4 GiB", key));
    items_[key] = std::move(data);
}

uint16_t FwCfg::add_file(std::string name, std::vector<uint8_t> data) {
    if (name.empty() || name.size() >= fw_cfg::kFileNameSize || name.find('\0') != std::string::npos)
        throw std::invalid_argument(
            fmt::format("fw_cfg: file name '{}' must be 1..{} bytes without NUL", name, fw_cfg::kFileNameSize - 1));
    if (file_key(name)) throw std::invalid_argument(fmt::format("fw_cfg: file '{}' added twice", name));
    if (data.size() > std::numeric_limits<uint32_t>::max())
        throw std::invalid_argument(fmt::format("fw_cfg: file '{}' is larger than 4 GiB", name));
    size_t key = fw_cfg::kFileFirst + files_.size();
    if (key >= fw_cfg::kFileKeyLimit) throw std::invalid_argument("fw_cfg: too many files");
    items_[static_cast<uint16_t>(key)] = std::move(data);
    files_.push_back(File{std::move(name), static_cast<uint16_t>(key)});
    rebuild_directory();
    return static_cast<uint16_t>(key);
}

uint16_t FwCfg::add_writable_file(std::string name, size_t size) {
    const uint16_t key = add_file(std::move(name), std::vector<uint8_t>(size, 0));
    writable_.push_back(key);
    return key;
}

std::vector<uint8_t> FwCfg::contents(uint16_t key) const noexcept {
    try {
        auto it = items_.find(key);
        return it == items_.end() ? std::vector<uint8_t>{} : it->second;
    } catch (...) {
        return {};
    }
}

const std::vector<uint8_t>* FwCfg::item(uint16_t key) const noexcept {
    auto it = items_.find(key);
    return it == items_.end() ? nullptr : &it->second;
}

std::optional<uint16_t> FwCfg::file_key(std::string_view name) const noexcept {
    for (const auto& f : files_)
        if (f.name == name) return f.key;
    return std::nullopt;
}

// fw_cfg.rst "File Directory": be32 count, then 64-byte entries, sorted by name (QEMU inserts
// files in strcmp order; SeaBIOS does not care, but the layout then matches QEMU's).
void FwCfg::rebuild_directory() {
    std::vector<const File*> sorted;
    for (const auto& f : files_) sorted.push_back(&f);
    std::sort(sorted.begin(), sorted.end(), [](const File* a, const File* b) { return a->name < b->name; });

    std::vector<uint8_t> dir(4 + sorted.size() * fw_cfg::kDirEntrySize, 0);
    store_be(std::span(dir).subspan(0, 4), sorted.size());
    size_t pos = 4;
    for (const File* f : sorted) {
        auto entry = std::span(dir).subspan(pos, fw_cfg::kDirEntrySize);
        store_be(entry.subspan(0, 4), items_.at(f->key).size());
        store_be(entry.subspan(4, 2), f->key);
        // entry[6..8) reserved, zero; name NUL-padded (length checked in add_file).
        std::memcpy(entry.data() + 8, f->name.data(), f->name.size());
        pos += fw_cfg::kDirEntrySize;
    }
    items_[fw_cfg::kFileDir] = std::move(dir);
}

void FwCfg::select(uint16_t key) noexcept {
    key &= static_cast<uint16_t>(~fw_cfg::kWriteChannel);
    selected_ = key;
    offset_ = 0;
    auto it = items_.find(key);
    current_ = it == items_.end() ? nullptr : &it->second;
    current_writable_ = current_ && std::find(writable_.begin(), writable_.end(), key) != writable_.end();
}

// fw_cfg.rst "Data Register": bytes of the selected item in order, 0x00 past its end (or for an
// item that does not exist).
uint8_t FwCfg::read_data_byte() noexcept {
    if (current_ == nullptr || offset_ >= current_->size()) return 0;
    return (*current_)[offset_++];
}

void FwCfg::read(uint64_t offset, std::span<uint8_t> data) noexcept {
    if (data.size() == 1 && offset <= fw_cfg::kDataOffset) {
        // QEMU's x86 "comb" region (0x510-0x511) answers byte reads with item data.
        data[0] = read_data_byte();
        return;
    }
    if (offset >= fw_cfg::kDmaOffset && offset + data.size() <= fw_cfg::kDmaOffset + 8) {
        // DMA address register: reads return the big-endian signature, any width.
        for (size_t i = 0; i < data.size(); ++i) {
            unsigned shift = 8 * (7 - static_cast<unsigned>(offset - fw_cfg::kDmaOffset + i));
            data[i] = static_cast<uint8_t>(fw_cfg::kDmaSignature >> shift);
        }
        return;
    }
    log::debug("fw_cfg: ignored {}-byte read at +{:#x}", data.size(), offset);
    std::fill(data.begin(), data.end(), 0xFF);
}

void FwCfg::write(uint64_t offset, std::span<const uint8_t> data) noexcept {
    if (offset == fw_cfg::kSelectorOffset && data.size() == 2) {
        select(static_cast<uint16_t>(load_le(data)));
    } else if (offset <= fw_cfg::kDataOffset && data.size() == 1) {
        // Writes through the data register are ignored since QEMU 2.4 (fw_cfg.rst).
        log::debug("fw_cfg: ignored data register write");
    } else if (offset == fw_cfg::kDmaOffset && data.size() == 4) {
        dma_address_ = load_be(data) << 32;
    } else if (offset == fw_cfg::kDmaLowOffset && data.size() == 4) {
        uint64_t descriptor = dma_address_ | load_be(data);
        dma_address_ = 0;  // as QEMU: the next request starts from a clean high half
        dma_transfer(descriptor);
    } else if (offset == fw_cfg::kDmaOffset && data.size() == 8) {
        dma_address_ = 0;
        dma_transfer(load_be(data));
    } else {
        log::debug("fw_cfg: ignored {}-byte write at +{:#x}", data.size(), offset);
    }
}

// fw_cfg.rst "DMA interface": the descriptor is copied out of guest memory before it is
// interpreted; on completion the control word is overwritten with 0 or with the ERROR bit.
void FwCfg::dma_transfer(uint64_t descriptor_address) noexcept {
    std::array<uint8_t, 4> status{};
    std::array<uint8_t, fw_cfg::kDmaDescriptorSize> raw{};
    if (!memory_.read(descriptor_address, raw)) {
        log::debug("fw_cfg: DMA descriptor at {:#x} is outside RAM", descriptor_address);
        store_be(status, fw_cfg::kDmaError);
        memory_.write(descriptor_address, status);  // reported only if the control word is RAM
        return;
    }
    auto bytes = std::span<const uint8_t>(raw);
    uint32_t control = static_cast<uint32_t>(load_be(bytes.subspan(0, 4)));
    uint32_t length = static_cast<uint32_t>(load_be(bytes.subspan(4, 4)));
    uint64_t address = load_be(bytes.subspan(8, 8));

    if (control & fw_cfg::kDmaSelect) select(static_cast<uint16_t>(control >> 16));
    store_be(status, dma_data(control, length, address));
    memory_.write(descriptor_address, status);
}

uint32_t FwCfg::dma_data(uint32_t control, uint32_t length, uint64_t address) noexcept {
    // Precedence as in QEMU: READ, then WRITE, then SKIP; none of them means "select only".
    bool read = control & fw_cfg::kDmaRead;
    bool write = !read && (control & fw_cfg::kDmaWrite);
    bool skip = !read && !write && (control & fw_cfg::kDmaSkip);
    if ((!read && !write && !skip) || length == 0) return 0;

    if (write) {
        // Only writable files take writes, and only within their size (QEMU: an error otherwise).
        if (!current_writable_ || offset_ > current_->size() || length > current_->size() - offset_) {
            log::debug("fw_cfg: DMA write of {} bytes rejected (read-only item or past its end)", length);
            return fw_cfg::kDmaError;
        }
        if (!memory_.read(address, std::span<uint8_t>(current_->data() + offset_, length))) {
            log::debug("fw_cfg: DMA write buffer {:#x}+{:#x} is outside RAM", address, length);
            return fw_cfg::kDmaError;
        }
        offset_ += length;
        return 0;
    }

    uint64_t avail = (current_ != nullptr && offset_ < current_->size()) ? current_->size() - offset_ : 0;
    uint64_t from_item = std::min<uint64_t>(length, avail);
    if (skip) {
        offset_ += from_item;
        return 0;
    }

    // READ: item bytes, then zeros for the part past the end of the item.
    const uint8_t* src = from_item > 0 ? current_->data() + offset_ : nullptr;
    uint64_t pos = 0;
    bool ok = for_each_ram_chunk(memory_, address, length, [&](std::span<uint8_t> chunk) {
        size_t copy = pos < from_item ? static_cast<size_t>(std::min<uint64_t>(chunk.size(), from_item - pos)) : 0;
        if (copy > 0) std::memcpy(chunk.data(), src + pos, copy);
        std::memset(chunk.data() + copy, 0, chunk.size() - copy);
        pos += chunk.size();
    });
    if (!ok) {
        log::debug("fw_cfg: DMA buffer {:#x}+{:#x} is outside RAM", address, length);
        return fw_cfg::kDmaError;
    }
    offset_ += from_item;
    return 0;
}

void FwCfg::save_state(StateWriter& out) const {
    out.u8(1);
    out.u16(selected_);
    out.u64(offset_);
    out.u64(dma_address_);
    out.u16(static_cast<uint16_t>(writable_.size()));
    for (const uint16_t key : writable_) {
        out.u16(key);
        out.bytes(items_.at(key));
    }
}

bool FwCfg::load_state(std::span<const uint8_t> blob) noexcept {
    try {
        StateReader in(blob);
        uint8_t version = 0;
        uint16_t selected = 0, count = 0;
        uint64_t offset = 0, dma_address = 0;
        in.u8(version);
        in.u16(selected);
        in.u64(offset);
        in.u64(dma_address);
        in.u16(count);
        if (!in.ok() || version != 1 || count != writable_.size()) return false;
        std::vector<std::vector<uint8_t>> files;
        for (const uint16_t key : writable_) {
            uint16_t saved_key = 0;
            files.emplace_back(items_.at(key).size());
            if (!in.u16(saved_key) || saved_key != key || !in.bytes(files.back())) return false;
        }
        const auto it = items_.find(selected);
        const uint64_t selected_size = it == items_.end() ? 0 : it->second.size();
        // select() strips kWriteChannel; a DMA address keeps only a latched high half.
        if (!in.finished() || (selected & fw_cfg::kWriteChannel) || offset > selected_size ||
            (dma_address & 0xffffffff) != 0)
            return false;
        for (size_t i = 0; i < writable_.size(); ++i) items_.at(writable_[i]) = std::move(files[i]);
        select(selected);
        offset_ = offset;
        dma_address_ = dma_address;
        return true;
    } catch (...) {  // std::bad_alloc: the device is unchanged (files are moved in last)
        return false;
    }
}

}  // namespace minivmm
