// AML statements, expressions and register fields (acpi/aml_code.hpp), checked byte for byte
// against iasl 20200925: the expected bytes are `iasl -p t t.asl` of the ASL in the comment,
// after the 36-byte table header.
#include <doctest/doctest.h>

#include <stdexcept>

#include "acpi/aml.hpp"
#include "acpi/aml_code.hpp"

using namespace minivmm;
using aml::Bytes;

TEST_CASE("OperationRegion, Field, If, LEqual, LGreater, Store, SizeOf, DerefOf, Index, ObjectType, ToUUID") {
    // DefinitionBlock ("", "SSDT", 2, "T", "T", 1) {
    //   OperationRegion (PPIR, SystemMemory, 0xFED45000, 0x1C)
    //   Field (PPIR, DWordAcc, NoLock, Preserve) { PFUN, 32, PREV, 32 }
    //   Method (TST, 4, Serialized) {
    //     If (LEqual (Arg0, ToUUID ("3dddfaa6-361b-4eb4-a424-8d10089d1653"))) { Return (One) }
    //     Store (Arg1, PREV)
    //     If (LGreater (SizeOf (Arg3), One)) { Store (DerefOf (Index (Arg3, One)), PFUN) }
    //     Store (Package (0x02) {Zero, Zero}, Local0)
    //     If (LEqual (ObjectType (Arg3), 4)) { Return (Local0) }
    //     Return (Zero)
    //   }
    // }
    const Bytes expected{
        0x5B, 0x80, 0x50, 0x50, 0x49, 0x52, 0x00, 0x0C, 0x00, 0x50, 0xD4, 0xFE, 0x0A, 0x1C, 0x5B, 0x81, 0x10, 0x50,
        0x50, 0x49, 0x52, 0x03, 0x50, 0x46, 0x55, 0x4E, 0x20, 0x50, 0x52, 0x45, 0x56, 0x20, 0x14, 0x49, 0x04, 0x54,
        0x53, 0x54, 0x5F, 0x0C, 0xA0, 0x19, 0x93, 0x68, 0x11, 0x13, 0x0A, 0x10, 0xA6, 0xFA, 0xDD, 0x3D, 0x1B, 0x36,
        0xB4, 0x4E, 0xA4, 0x24, 0x8D, 0x10, 0x08, 0x9D, 0x16, 0x53, 0xA4, 0x01, 0x70, 0x69, 0x50, 0x52, 0x45, 0x56,
        0xA0, 0x0F, 0x94, 0x87, 0x6B, 0x01, 0x70, 0x83, 0x88, 0x6B, 0x01, 0x00, 0x50, 0x46, 0x55, 0x4E, 0x70, 0x12,
        0x04, 0x02, 0x00, 0x00, 0x60, 0xA0, 0x08, 0x93, 0x8E, 0x6B, 0x0A, 0x04, 0xA4, 0x60, 0xA4, 0x00};
    using namespace aml;
    Bytes got = system_memory_region("PPIR", 0xFED45000, 0x1C);
    append(got, dword_field("PPIR", {{"PFUN", 32}, {"PREV", 32}}));
    append(got, method("TST", 4, true, {
        if_(lequal(arg(0), to_uuid("3dddfaa6-361b-4eb4-a424-8d10089d1653")), {return_value(integer(1))}),
        store(arg(1), name_ref("PREV")),
        if_(lgreater(size_of(arg(3)), integer(1)), {store(deref_of(index(arg(3), integer(1))), name_ref("PFUN"))}),
        store(package({integer(0), integer(0)}), local(0)),
        if_(lequal(object_type(arg(3)), integer(4)), {return_value(local(0))}),
        return_value(integer(0)),
    }));
    CHECK(got == expected);
}

TEST_CASE("ToInteger, an integer limit, and a function index check") {
    // Method (TST, 4, Serialized) {
    //   Store (ToInteger (DerefOf (Index (Arg3, Zero))), Local1)
    //   If (LGreater (Local1, 0xFFFFFFFF)) { Store (0xFFFFFFFF, Local1) }
    //   If (LGreater (Arg2, 8)) { Return (Buffer (One) {0}) }
    //   Return (Local1)
    // }
    const Bytes expected{0x14, 0x2C, 0x54, 0x53, 0x54, 0x5F, 0x0C, 0x70, 0x99, 0x83, 0x88, 0x6B, 0x00, 0x00, 0x00,
                         0x61, 0xA0, 0x0F, 0x94, 0x61, 0x0C, 0xFF, 0xFF, 0xFF, 0xFF, 0x70, 0x0C, 0xFF, 0xFF, 0xFF,
                         0xFF, 0x61, 0xA0, 0x0A, 0x94, 0x6A, 0x0A, 0x08, 0xA4, 0x11, 0x03, 0x01, 0x00, 0xA4, 0x61};
    using namespace aml;
    const Bytes got = method("TST", 4, true, {
        store(to_integer(deref_of(index(arg(3), integer(0)))), local(1)),
        if_(lgreater(local(1), integer(0xFFFFFFFF)), {store(integer(0xFFFFFFFF), local(1))}),
        if_(lgreater(arg(2), integer(8)), {return_value(buffer({0x00}))}),
        return_value(local(1)),
    });
    CHECK(got == expected);
}

TEST_CASE("bad arguments are refused") {
    CHECK_THROWS_AS(aml::to_uuid("--dddfaa6-361b-4eb4-a424-8d10089d1653"), std::invalid_argument);
    CHECK_THROWS_AS(aml::to_uuid("3dddfaa6-361b-4eb4-a424-8d10089d16-3"), std::invalid_argument);
    CHECK_THROWS_AS(aml::arg(7), std::invalid_argument);
    CHECK_THROWS_AS(aml::local(8), std::invalid_argument);
    CHECK_THROWS_AS(aml::to_uuid("3dddfaa6-361b-4eb4-a424-8d10089d165"), std::invalid_argument);
    CHECK_THROWS_AS(aml::to_uuid("3dddfaa6x361b-4eb4-a424-8d10089d1653"), std::invalid_argument);
    CHECK_THROWS_AS(aml::to_uuid("3dddfaa6-361b-4eb4-a424-8d10089d165g"), std::invalid_argument);
    CHECK_THROWS_AS(aml::dword_field("PPIR", {{"PFUN", 0}}), std::invalid_argument);
    CHECK_THROWS_AS(aml::dword_field("PPIR", {{"PFUN", 64}}), std::invalid_argument);
}
