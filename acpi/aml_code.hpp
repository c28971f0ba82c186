// AML for method bodies and register access (ACPI 6.5 §20.2.5-§20.2.6): the statements,
// expressions and objects that the TPM's _DSM needs, in the same by-value style as aml.hpp:
//   aml::if_(aml::lequal(aml::arg(2), aml::integer(1)), {aml::return_value(aml::string("1.3"))})
// Each gives the bytes iasl gives for the equivalent ASL (tests/unit/test_aml_code.cpp).
#pragma once

#include <string_view>
#include <utility>
#include <vector>

#include "acpi/aml.hpp"

namespace minivmm::aml {

// ArgN (0..6) and LocalN (0..7) (§20.2.6.1, §20.2.6.2).
Bytes arg(unsigned n);
Bytes local(unsigned n);
// A reference to a named object, e.g. a field unit: "PPIF" or "\\_SB.TPM.PPIF".
inline Bytes name_ref(std::string_view path) { return name_string(path); }

// Statements (§20.2.5.3).
Bytes if_(const Bytes& predicate, const std::vector<Bytes>& terms);  // If (predicate) { terms }
Bytes store(const Bytes& source, const Bytes& target);               // Store (source, target)

// Expressions (§20.2.5.4).
Bytes lequal(const Bytes& a, const Bytes& b);    // LEqual (a, b)
Bytes lgreater(const Bytes& a, const Bytes& b);  // LGreater (a, b)
Bytes size_of(const Bytes& object);              // SizeOf (object)
Bytes object_type(const Bytes& object);          // ObjectType (object): 1 integer, 4 package, ...
Bytes deref_of(const Bytes& reference);          // DerefOf (reference)
Bytes index(const Bytes& object, const Bytes& i);  // Index (object, i), no target
Bytes to_integer(const Bytes& operand);            // ToInteger (operand), no target

// ToUUID ("aabbccdd-eeff-gghh-iijj-kkllmmnnoopp"): the 16-byte Buffer iasl makes of it (the first
// three fields little-endian, the last two as written). Throws on a malformed UUID.
Bytes to_uuid(std::string_view uuid);

// OperationRegion (name, SystemMemory, base, length) (§20.2.5.2).
Bytes system_memory_region(std::string_view name, uint64_t base, uint64_t length);
// Field (region, DWordAcc, NoLock, Preserve) { name, bits; ... }: consecutive fields from bit 0.
Bytes dword_field(std::string_view region, const std::vector<std::pair<std::string_view, unsigned>>& fields);

}  // namespace minivmm::aml
