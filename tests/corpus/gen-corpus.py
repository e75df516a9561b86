#!/usr/bin/env python3
"""gen-corpus.py -- (re)write tests/corpus/invalid/ (values the config parser must reject) and
tests/corpus/valid/ (fuzzer seeds). Format of each file: the key relative to the prefix, a
newline, then the value bytes. Run from anywhere; the output is committed."""
import os, shutil

here = os.path.dirname(os.path.abspath(__file__))
FE, BE, RT = "services/web/frontend", "services/web/backends/b1", "routes/r1"

invalid = []
def add(name, key, value):
    invalid.append((name, key, value.encode() if isinstance(value, str) else value))

# wrong types
for field, key, base in [("ipv4", BE, ''), ("ipv6", BE, ''), ("tcp", BE, '"ipv4":"10.1.1.1",'),
                         ("udp", BE, '"ipv4":"10.1.1.1",'), ("weight", BE, '"ipv4":"10.1.1.1",'),
                         ("scheduler", FE, '"ipv4":"10.0.0.1","tcp":80,'),
                         ("persistence", FE, '"ipv4":"10.0.0.1","tcp":80,'),
                         ("flags", FE, '"ipv4":"10.0.0.1","tcp":80,'), ("fwmark", FE, ''),
                         ("Prefix4", RT, ''), ("IpvsMethod", RT, '"Prefix4":"10.0.0.0/8",'),
                         ("Gateway4", RT, '"Prefix4":"10.0.0.0/8",')]:
    for tname, tval in [("null", "null"), ("true", "true"), ("array", "[]"), ("object", "{}"),
                        ("float", "1.5"), ("string", '"80"') if field in ("tcp", "udp", "weight", "persistence", "fwmark") else ("int", "80")]:
        if field == "flags" and tname == "array":
            continue
        add(f"type-{field}-{tname}", key, "{" + base + f'"{field}":{tval}' + "}")
# numbers out of range
for field, vals in [("tcp", ["0", "65536", "-1", "4294967297", "99999999999999999999999", "-99999999999999999999", "1e2", "80.0", "0x50"]),
                    ("weight", ["65536", "-5", "18446744073709551615", "1E3"])]:
    for i, v in enumerate(vals):
        add(f"range-{field}-{i}", BE, '{"ipv4":"10.1.1.1","%s":%s}' % (field, v))
add("range-persistence", FE, '{"ipv4":"10.0.0.1","tcp":80,"persistence":2678401}')
add("range-fwmark-0", FE, '{"fwmark":0}')
add("range-fwmark-big", FE, '{"fwmark":4294967296}')
# addresses and prefixes
for i, a in enumerate(["10.1.1", "10.1.1.256", "010.1.1.1", "10.1.1.1 ", "", "::g", "2001:db8::1::2",
                       "10.1.1.1/32", "localhost", "1.2.3.4.5", "2001:db8::1", "\\u00e9"]):
    add(f"addr-ipv4-{i}", BE, '{"ipv4":"%s"}' % a)
for i, a in enumerate(["10.1.1.1", "::ffff:1.2.3.4.5", "fe80::1%eth0", "", "2001:db8:::1"]):
    add(f"addr-ipv6-{i}", BE, '{"ipv6":"%s"}' % a)
for i, p in enumerate(["10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/024", "10.0.0.0/+8",
                       "10.0.0.0/8/8", "/8", "10.0.0/8", "2001:db8::/32", "10.0.0.0/ 8", "10.0.0.0/1000"]):
    add(f"prefix4-{i}", RT, '{"Prefix4":"%s"}' % p)
for i, p in enumerate(["::/129", "10.0.0.0/8", "2001:db8::", "2001:db8::/-1"]):
    add(f"prefix6-{i}", RT, '{"Prefix6":"%s"}' % p)
add("prefix-any-bad", RT, '{"Prefix":"nonsense/8"}')
# family mismatches (IPv4 backends behind an IPv6 gateway, ...)
add("gw6-for-prefix4", RT, '{"Prefix4":"10.6.107.0/24","Gateway6":"2001:db8::6","IpvsMethod":"droute"}')
add("gw-any-v6-for-prefix4", RT, '{"Prefix4":"10.6.107.0/24","Gateway":"2001:db8::6"}')
add("gw-any-v4-for-prefix6", RT, '{"Prefix6":"2001:db8::/32","Gateway":"10.0.0.6"}')
add("gw4-holds-v6", RT, '{"Prefix4":"10.6.107.0/24","Gateway4":"2001:db8::6"}')
add("gw6-holds-v4", RT, '{"Prefix6":"2001:db8::/32","Gateway6":"10.0.0.6"}')
add("two-prefixes", RT, '{"Prefix4":"10.0.0.0/8","Prefix6":"::/0"}')
add("two-gateways", RT, '{"Prefix4":"10.0.0.0/8","Gateway4":"10.0.0.1","Gateway":"10.0.0.2"}')
add("no-prefix", RT, '{"Gateway4":"10.0.0.1","IpvsMethod":"droute"}')
add("bad-method", RT, '{"Prefix4":"10.0.0.0/8","IpvsMethod":"nat"}')
add("empty-method", RT, '{"Prefix4":"10.0.0.0/8","IpvsMethod":""}')
# empty / incomplete objects
add("frontend-empty", FE, '{}')
add("frontend-no-port", FE, '{"ipv4":"10.0.0.1"}')
add("frontend-no-addr", FE, '{"tcp":80,"udp":53}')
add("frontend-only-unknown", FE, '{"foo":1}')
add("backend-empty", BE, '{}')
add("backend-no-addr", BE, '{"tcp":80,"weight":3}')
add("sched-upper", FE, '{"ipv4":"10.0.0.1","tcp":80,"scheduler":"WLC"}')
add("sched-long", FE, '{"ipv4":"10.0.0.1","tcp":80,"scheduler":"abcdefghijklmnop"}')
add("sched-dash", FE, '{"ipv4":"10.0.0.1","tcp":80,"scheduler":"w-lc"}')
add("flag-unknown", FE, '{"ipv4":"10.0.0.1","tcp":80,"flags":["sh-port","nope"]}')
add("flag-type", FE, '{"ipv4":"10.0.0.1","tcp":80,"flags":[1]}')
add("flag-nested", FE, '{"ipv4":"10.0.0.1","tcp":80,"flags":[["ops"]]}')
add("dup-case", BE, '{"ipv4":"10.1.1.1","IPv4":"10.1.1.2"}')
add("dup-case-tcp", BE, '{"ipv4":"10.1.1.1","tcp":1,"TCP":2}')
# not an object / broken JSON
for i, v in enumerate(["", "   ", "null", "true", "42", '"str"', "[]", '[{"ipv4":"10.1.1.1"}]',
                       '{"ipv4":"10.1.1.1"', '{"ipv4":"10.1.1.1",', '{"ipv4":', '{"ipv4"', '{',
                       '{"ipv4":"10.1.1.1"}}', '{"ipv4":"10.1.1.1"} {}', '{"ipv4":"10.1.1.1"}x',
                       "{'ipv4':'10.1.1.1'}", '{ipv4:"10.1.1.1"}', '{"ipv4":"10.1.1.1",}',
                       '{"ipv4":"10.1.1.1" "tcp":80}', '{"ipv4":"10.1.1.1\\q"}', '{"ipv4":NaN}',
                       '{"ipv4":"10.1.1.1","tcp":Infinity}', '{"tcp":01}', '/* c */{"ipv4":"10.1.1.1"}',
                       '{"ipv4":"10.1.1.1"}\x00', '\ufeff{"ipv4":"10.1.1.1"}']):
    add(f"json-{i}", BE, v)
# nesting, NUL, UTF-8
add("deep-32", RT, '{"x":' + "[" * 32 + "]" * 32 + "}")
add("deep-5", RT, '{"a":{"b":{"c":{"d":{"e":1}}}}}')
add("deep-unclosed", RT, '{"x":' + "[" * 1000)
add("nul-in-string", BE, b'{"ipv4":"10.1\x00.1.1"}')
add("nul-in-key", BE, b'{"ip\x00v4":"10.1.1.1"}')
add("nul-escaped", BE, '{"ipv4":"10.1.1.1","x":"a\\u0000b"}')
add("nul-escaped-key", BE, '{"ipv4\\u0000":"10.1.1.1"}')
add("utf8-ff", BE, b'{"ipv4":"10.1.1.1","x":"\xff"}')
add("utf8-overlong", BE, b'{"ipv4":"10.1.1.1","x":"\xc0\xaf"}')
add("utf8-surrogate", BE, b'{"ipv4":"10.1.1.1","x":"\xed\xa0\x80"}')
add("utf8-truncated", BE, b'{"ipv4":"10.1.1.1","x":"\xe2\x82"}')
add("utf8-too-big", BE, b'{"ipv4":"10.1.1.1","x":"\xf4\x90\x80\x80"}')
add("utf8-latin1", RT, b'{"Prefix4":"10.0.0.0/8","name":"caf\xe9"}')
add("utf8-in-key", RT, b'{"Pr\xe9fix4":"10.0.0.0/8"}')
add("nan-unknown-field", BE, '{"ipv4":"10.1.1.1","x":[NaN]}')
add("infinity-unknown-field", BE, '{"ipv4":"10.1.1.1","x":-Infinity}')
add("raw-tab-in-string", BE, '{"ipv4":"10.1.1.1","x":"a\tb"}')
add("raw-newline-in-string", RT, '{"Prefix4":"10.0.0.0/8\n"}')
add("comment-inside", BE, '{"ipv4":"10.1.1.1" /* c */}')
add("long-string-field", BE, '{"ipv4":"' + "1" * 300 + '"}')
add("value-64k", BE, '{"ipv4":"10.1.1.1","x":"' + "y" * 65536 + '"}')

valid = [
    ("fe-seed", "services/test/frontend", '{"ipv4": "10.107.107.107", "tcp": 1337}'),
    ("fe-dual", FE, '{"ipv4":"10.0.0.1","ipv6":"2001:db8::1","tcp":80,"udp":53,"scheduler":"sh","persistence":60,"flags":["sh-port","ops"]}'),
    ("fe-fwmark", "services/fw/frontend", '{"fwmark":7,"ipv6":"::1"}'),
    ("be-seed", "services/test/backends/test3-1", '{"ipv4": "10.3.107.1", "tcp": 1337}'),
    ("be-dual", BE, '{"ipv4":"10.1.1.1","ipv6":"2001:db8::2","tcp":8080,"udp":5353,"weight":0}'),
    ("rt-seed", "routes/test3", '{"Prefix4":"10.3.107.0/24","IpvsMethod":"masq"}'),
    ("rt-gw", "routes/test6", '{"Prefix4":"10.6.107.0/24","Gateway4":"10.107.107.6","IpvsMethod":"droute"}'),
    ("rt-v6", "routes/v6", '{"Prefix":"2001:db8::/32","Gateway":"2001:db8::6","IpvsMethod":"tunnel"}'),
    ("rt-filter", "routes/f", '{"Prefix6":"::/0","IpvsMethod":"filter"}'),
]

def write(d, items):
    path = os.path.join(here, d)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    names = set()
    for i, (name, key, value) in enumerate(items):
        assert name not in names, name
        names.add(name)
        with open(os.path.join(path, "%03d-%s" % (i, name)), "wb") as f:
            f.write(key.encode() + b"\n" + (value.encode() if isinstance(value, str) else value))

write("invalid", invalid)
write("valid", valid)
print(f"{len(invalid)} invalid, {len(valid)} valid")
