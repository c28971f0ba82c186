#include "acpi/tpm_ppi_aml.hpp"

#include "acpi/aml_code.hpp"
#include "devices/tpm_ppi.hpp"

namespace minivmm {

std::vector<aml::Bytes> build_tpm_ppi_aml(uint64_t mailbox_base) {
    using namespace aml;
    const Bytes uuid = arg(0), revision = arg(1), function = arg(2), arguments = arg(3);
    const Bytes pfun = name_ref("PFUN"), prev = name_ref("PREV"), ppop = name_ref("PPOP"), ppar = name_ref("PPAR");
    const Bytes prt0 = name_ref("PRT0"), prt1 = name_ref("PRT1"), prt2 = name_ref("PRT2");
    constexpr uint64_t kPackageType = 4;  // ObjectType (§19.6.97)

    // A fresh package of the results, built in Local0 on each call: {RET0, RET1[, RET2]}.
    auto result_package = [&](unsigned count) {
        std::vector<Bytes> zeros(count, integer(0));
        std::vector<Bytes> terms{store(package(zeros), local(0)), store(prt0, index(local(0), integer(0))),
                                 store(prt1, index(local(0), integer(1)))};
        if (count == 3) terms.push_back(store(prt2, index(local(0), integer(2))));
        terms.push_back(return_value(local(0)));
        return terms;
    };
    // Arg3[n] as an integer into a mailbox field, limited to 32 bits.
    auto argument = [&](uint64_t n, const Bytes& field) {
        return std::vector<Bytes>{
            store(to_integer(deref_of(index(arguments, integer(n)))), local(1)),
            if_(lgreater(local(1), integer(0xFFFFFFFF)), {store(integer(0xFFFFFFFF), local(1))}),
            store(local(1), field),
        };
    };
    std::vector<Bytes> get_request = {if_(lequal(revision, integer(2)), result_package(3))};
    for (Bytes& t : result_package(2)) get_request.push_back(std::move(t));

    const Bytes ppi = if_(lequal(uuid, to_uuid(kTpmPpiUuid)), {
        // Function 0 (§2.1.1): a bit per supported function, 0-8.
        if_(lequal(function, integer(0)), {return_value(buffer({0xFF, 0x01}))}),
        // Function 1 (§2.1.2): the interface version.
        if_(lequal(function, integer(1)), {return_value(string("1.3"))}),
        // Beyond function 8: none (the 64-bit index must not reach the 32-bit mailbox as 2..8).
        if_(lgreater(function, integer(ppi::kFnUserConfirmation)), {return_value(buffer({0x00}))}),
        // Functions 2-8: revision and arguments into the mailbox, then the function index, which
        // runs it (devices/tpm_ppi.cpp). An argument above 32 bits becomes 0xFFFFFFFF, which is
        // no operation's number, instead of being cut to its low half.
        store(revision, prev),
        store(integer(0), ppop),
        store(integer(0), ppar),
        if_(lequal(object_type(arguments), integer(kPackageType)), {
            if_(lgreater(size_of(arguments), integer(0)), argument(0, ppop)),
            if_(lgreater(size_of(arguments), integer(1)), argument(1, ppar)),
        }),
        store(function, pfun),
        // Function 3 (§2.1.5): {0, operation} for revision 1, {0, operation, parameter} for 2.
        if_(lequal(function, integer(ppi::kFnGetRequest)), get_request),
        // Function 5 (§2.1.7): {0, most recent operation, its response}.
        if_(lequal(function, integer(ppi::kFnGetResponse)), result_package(3)),
        return_value(prt0),
    });
    return {
        system_memory_region("PPIR", mailbox_base, ppi::kRegisterBlockSize),
        dword_field("PPIR", {{"PFUN", 32}, {"PREV", 32}, {"PPOP", 32}, {"PPAR", 32},
                             {"PRT0", 32}, {"PRT1", 32}, {"PRT2", 32}}),
        // _DSM (ACPI 6.5 §9.1.1): Serialized, so that one caller's mailbox sequence is not
        // interleaved with another's. Any other UUID: Buffer {0}, no functions.
        method("_DSM", 4, true, {ppi, return_value(buffer({0x00}))}),
    };
}

}  // namespace minivmm
