#include "devices/tpm_ppi.hpp"

#include "vmm/base/log.hpp"

namespace minivmm {

TpmPpi::TpmPpi(std::set<uint32_t> operations) : operations_(std::move(operations)) {}

void TpmPpi::read(uint64_t offset, std::span<uint8_t> data) noexcept {
    uint32_t value = 0;
    if (data.size() != 4 || offset % 4 != 0 || offset >= ppi::kRegisterBlockSize) {
        log::debug("tpm-ppi: {}-byte read at {:#x} ignored (registers are aligned dwords)", data.size(), offset);
        store_le(data, 0);
        return;
    }
    switch (offset) {
    case ppi::kFunc: value = func_; break;
    case ppi::kRev: value = rev_; break;
    case ppi::kOp: value = op_; break;
    case ppi::kParam: value = param_; break;
    case ppi::kRet0: value = ret_[0]; break;
    case ppi::kRet1: value = ret_[1]; break;
    case ppi::kRet2: value = ret_[2]; break;
    }
    store_le(data, value);
}

void TpmPpi::write(uint64_t offset, std::span<const uint8_t> data) noexcept {
    if (data.size() != 4 || offset % 4 != 0 || offset >= ppi::kRegisterBlockSize) {
        log::debug("tpm-ppi: {}-byte write at {:#x} ignored (registers are aligned dwords)", data.size(), offset);
        return;
    }
    const auto value = static_cast<uint32_t>(load_le(data));
    switch (offset) {
    case ppi::kFunc: run(value); break;
    case ppi::kRev: rev_ = value; break;
    case ppi::kOp: op_ = value; break;
    case ppi::kParam: param_ = value; break;
    default: log::debug("tpm-ppi: write to read-only result register {:#x} ignored", offset);
    }
}

void TpmPpi::submit(uint32_t operation, uint32_t parameter) noexcept {
    request_ = {operation, operation == ppi::kOpNone ? 0 : parameter};
    log::debug("tpm-ppi: operation {} requested for the next boot", operation);
}

void TpmPpi::run(uint32_t function) noexcept {
    func_ = function;
    ret_[0] = ret_[1] = ret_[2] = 0;
    switch (function) {
    case ppi::kFnSubmitRequest:  // §2.1.4: revision 1, no parameter
        if (!supported(op_)) {
            ret_[0] = ppi::kNotSupported;
            break;
        }
        submit(op_, 0);
        break;
    case ppi::kFnGetRequest:  // §2.1.5: {0, pending operation[, its parameter (revision 2)]}
        ret_[1] = request_.operation;
        ret_[2] = request_.parameter;
        break;
    case ppi::kFnTransitionAction:  // §2.1.6: the OS must reboot for the request to run
        ret_[0] = ppi::kActionReboot;
        break;
    case ppi::kFnGetResponse:  // §2.1.7: {0, most recent operation, its response}
        ret_[1] = last_op_;
        ret_[2] = response_;
        break;
    case ppi::kFnSubmitLanguage:  // §2.1.8: not implemented (no user dialog)
        ret_[0] = ppi::kNotImplemented;
        break;
    case ppi::kFnSubmitRequest2:  // §2.1.9: 0 success, 1 not implemented (3 blocked: none is)
        if (!supported(op_)) {
            ret_[0] = ppi::kNotSupported;
            break;
        }
        submit(op_, rev_ >= 2 ? param_ : 0);
        break;
    case ppi::kFnUserConfirmation:  // §2.1.10: no user confirmation for what is implemented
        ret_[0] = supported(op_) ? ppi::kConfirmNotRequired : ppi::kConfirmNotImplemented;
        break;
    default:  // functions 0 and 1 are answered by the AML itself
        log::debug("tpm-ppi: _DSM function {} is not one of 2..8", function);
        ret_[0] = ppi::kGeneralFailure;
    }
}

std::optional<TpmPpi::Request> TpmPpi::pending() const noexcept {
    if (request_.operation == ppi::kOpNone) return std::nullopt;
    return request_;
}

void TpmPpi::save_state(StateWriter& out) const {
    out.u8(1);
    for (uint32_t v : {func_, rev_, op_, param_, ret_[0], ret_[1], ret_[2], request_.operation, request_.parameter,
                       last_op_, response_})
        out.u32(v);
}

bool TpmPpi::load_state(std::span<const uint8_t> blob) noexcept {
    StateReader in(blob);
    uint8_t format = 0;
    uint32_t v[11] = {};
    in.u8(format);
    for (uint32_t& x : v) in.u32(x);
    const Request request{v[7], v[8]};
    if (!in.finished() || format != 1 || !supported(request.operation) ||
        (request.operation == ppi::kOpNone && request.parameter != 0) || !supported(v[9]))
        return false;
    func_ = v[0];
    rev_ = v[1];
    op_ = v[2];
    param_ = v[3];
    for (int i = 0; i < 3; ++i) ret_[i] = v[4 + i];
    request_ = request;
    last_op_ = v[9];
    response_ = v[10];
    return true;
}

void TpmPpi::complete(uint32_t response) noexcept {
    last_op_ = request_.operation;
    response_ = response;
    request_ = {};
}

}  // namespace minivmm
