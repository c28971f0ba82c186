"""Seeds for fuzz_control_request: control socket request lines (vmm/host/control_protocol.hpp),
every request and some refusals."""


def seeds():
    return {"pause": b'{"cmd":"pause"}', "resume": b'{"cmd":"resume"}', "status": b'{"cmd":"status"}',
            "quit": b'{"cmd":"quit"}', "save": b'{"cmd":"save","path":"/var/lib/vm/snap"}',
            "save-resume": b' {"path":"s\\u00e9\\/x", "resume":true,\t"cmd":"save"}\r',
            "duplicate-key": b'{"cmd":"save","path":"a","path":"b"}',
            "unknown-key": b'{"cmd":"status","verbose":[1,{"a":null}]}',
            "wrong-type": b'{"cmd":"save","path":"a","resume":1e308}',
            "nul-path": b'{"cmd":"save","path":"a\\u0000b"}',
            "not-object": b'["cmd","status"]', "bad-utf8": b'{"cmd":"\xc3"}', "empty": b""}
