#!/usr/bin/env python3
"""Generate pyjson's test vectors with the machine's Python json module.

Run from the repository root:  python3 pyjson/testdata/gen_vectors.py > pyjson/testdata/vectors.jsonl

Every line is one JSON object. Inputs and outputs are base64 so no JSON library on either side
can alter them. Kinds:

  dumps    in: JSON text; out: json.dumps(json.loads(text)) (default separators, ensure_ascii)
  compact  in: JSON text; out: json.dumps(json.loads(text), separators=(",", ":"))
  reject   in: JSON text that json.loads refuses
  float    bits: IEEE-754 bits of a double (hex); out: json.dumps(value)
  text     in: raw bytes; out: json.dumps(bytes.decode("utf-8", "replace")) - the 0.2.0 result
           of a task whose last output line is not JSON (the whole output as a string)
  strip    in: raw bytes (UTF-8); out: the last line of text.strip() as django-ray takes it
  payload  callable_path, args_json, kwargs_json (base64); out: the --payload-b64 argument
  repeat   unit (base64 JSON text of one array element) and count: the JSON array of count
           copies; only the size and SHA-256 of its dumps text are recorded (large results)
  result   in: JSON text of a value; sha256 and bytes of json.dumps(value), the figures
           oversize:// and resultfs:// references carry

Deterministic: the random parts use a fixed seed.
"""
import base64
import hashlib
import json
import math
import random
import struct
import sys

rng = random.Random(20260515)
out = sys.stdout


def b64(b):
    if isinstance(b, str):
        b = b.encode("utf-8", "surrogatepass")
    return base64.b64encode(b).decode("ascii")


def emit(**kw):
    out.write(json.dumps(kw, sort_keys=True) + "\n")


def digest(s):
    data = s.encode("utf-8")
    return hashlib.sha256(data).hexdigest(), len(data)


def dumps_vec(text, note=""):
    value = json.loads(text)
    d = json.dumps(value)
    c = json.dumps(value, separators=(",", ":"))
    sha, n = digest(d)
    emit(kind="dumps", note=note, **{"in": b64(text)}, out=b64(d), sha256=sha, bytes=n)
    emit(kind="compact", note=note, **{"in": b64(text)}, out=b64(c))


def reject_vec(text, note=""):
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        emit(kind="reject", note=note, **{"in": b64(text)})
        return
    raise SystemExit(f"expected json.loads to reject {text!r}")


# --- hand-picked documents -------------------------------------------------------------------
docs = [
    ("null", "null"), ("true", "true"), ("false", "false"),
    ("0", "zero"), ("-0", "negative zero int"), ("42", "int"), ("-17", "negative int"),
    ("123456789012345678901234567890123456789", "big int kept exact"),
    ("-98765432109876543210", "big negative int"),
    ("1.0", "float one"), ("1e16", "1e+16"), ("1E16", "upper E"), ("1.0e+16", "1e+16 again"),
    ("1e15", "fixed below 1e16"), ("1e-05", "1e-05"), ("0.0001", "fixed 1e-4"), ("0.00001", "1e-05 from fixed"),
    ("1e400", "overflow to Infinity"), ("-1e400", "-Infinity"), ("1e-400", "underflow to 0.0"),
    ("-0.0", "negative zero float"), ("0.1", "0.1"), ("100", "100"), ("1e2", "100.0"),
    ("123456789012345678", "int 18 digits"), ("123456789012345678.0", "float 18 digits"),
    ("5e-324", "min subnormal"), ("1.7976931348623157e308", "max double"),
    ("2.2250738585072014e-308", "min normal"), ("9007199254740993", "2^53+1 int exact"),
    ("9007199254740993.0", "2^53+1 as float"), ("0.30000000000000004", "0.1+0.2"),
    ("NaN", "NaN literal"), ("Infinity", "Infinity literal"), ("-Infinity", "-Infinity literal"),
    ("[NaN, Infinity, -Infinity, 1.5]", "specials in array"),
    ('""', "empty string"), ('"plain"', "ascii string"),
    ('"caf\u00e9"', "latin-1 raw"), ('"\\u00e9"', "escaped e-acute"), ('"\u65e5\u672c\u8a9e"', "CJK raw"),
    ('"\U0001F600"', "emoji raw -> surrogate pair"), ('"\\ud83d\\ude00"', "escaped pair"),
    ('"\\ud800"', "lone high surrogate"), ('"\\udc00"', "lone low surrogate"),
    ('"\\udc00\\ud800"', "reversed pair stays two lone"), ('"\\ud800x"', "lone high then ascii"),
    ('"\\ud800\\u0041"', "high then non-surrogate escape"),
    ('"quote \\" backslash \\\\ slash \\/"', "escapes"),
    ('"\\b\\f\\n\\r\\t"', "short escapes"), ('"\\u0000\\u0001\\u001f\\u007f"', "controls and DEL"),
    ('"\u007f\u0080\u009f\u00a0"', "raw DEL and C1"), ('"\u2028\u2029"', "line separators"),
    ('"<script>&amp;</script>"', "no HTML escaping"), ('"\\uFFFF\\uFFFE"', "noncharacters upper hex"),
    ("[]", "empty array"), ("{}", "empty object"), ("[1,2,3]", "compact array"),
    ('{"b": 1, "a": 2}', "key order kept"), ('{"a": 1, "b": 2, "a": 3}', "duplicate key: first place, last value"),
    ('{"z": {"y": [1, {"x": null}]}, "w": []}', "nested"),
    (' \t\n\r[ 1 , 2 ]\n\r\t ', "json whitespace"),
    ('{"\\u00e9": "\u00e9", "k\\"ey": 1}', "escaped keys"),
    ('[1.5, -2.25e-7, 3e21, 1e22, 1e-7, 12345.678]', "mixed floats"),
    ('{"result": [2, 3], "success": true}', "envelope-like"),
    ("[" * 100 + "]" * 100, "deep nesting"),
    ('"' + "x" * 5000 + '"', "long string"),
    ("1" * 4300, "int at the 4300-digit limit"),
]
for text, note in docs:
    dumps_vec(text, note)

rejects = [
    ("", "empty"), (" ", "whitespace only"), ("[1,]", "trailing comma"), ("{'a': 1}", "single quotes"),
    ('"\x01"', "raw control char"), ('"\t"', "raw tab in string"), ("01", "leading zero"), ("1.", "dot without digits"),
    (".5", "no int part"), ("-", "lone minus"), ("+1", "plus sign"), ("nan", "lower nan"), ("infinity", "lower infinity"),
    ("-NaN", "negative NaN"), ("[] x", "extra data"), ('"\\x41"', "bad escape"), ('"\\u12"', "short unicode escape"),
    ('"abc', "unterminated string"), ("{1: 2}", "non-string key"), ('{"a" 1}', "missing colon"),
    ("[1 2]", "missing comma"), ("\ufeff[]", "BOM"), ("1" * 4301, "int over the 4300-digit limit"),
    ("tru", "truncated literal"), ("[", "unterminated array"), ("1e", "exponent without digits"),
    ('"\\ud800\\"', "escape at end"), ("\u00a0[]", "non-JSON whitespace"),
]
for text, note in rejects:
    reject_vec(text, note)

# --- floats: every class of double, and random bit patterns ----------------------------------
specials = [0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 1e16, 1e15, 9999999999999998.0, 1e17, 1e-4, 1e-5, 0.00012345,
            1.5e-5, 123.456, 1e100, 1e-100, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
            float("inf"), float("-inf"), float("nan"), 2.0**53, 2.0**53 + 2, 2.0**63, 2.0**64, 1/3, 2/3,
            100.0, 1234567890123456.7, 12345678901234567.0, 0.000123, 123e-20]
for i in range(-30, 31):
    specials.append(10.0**i)
    specials.append(1.5 * 10.0**i)
    specials.append(-7.25 * 10.0**i)
for _ in range(3000):
    bits = rng.getrandbits(64)
    f = struct.unpack("<d", struct.pack("<Q", bits))[0]
    if math.isnan(f):
        continue
    specials.append(f)
for _ in range(1500):
    # short decimals, which stress shortest-repr ties
    digits = rng.randint(1, 17)
    mant = rng.randint(1, 10**digits - 1)
    exp = rng.randint(-30, 30)
    specials.append(float(f"{mant}e{exp}"))
for f in specials:
    bits = struct.unpack("<Q", struct.pack("<d", f))[0]
    emit(kind="float", bits=f"{bits:016x}", out=b64(json.dumps(f)))

# --- raw output bytes -> the whole output as a JSON string -------------------------------------
texts = [
    b"", b"plain ascii\n", b"two\nlines\n", b"caf\xc3\xa9\n", b"\xf0\x9f\x98\x80 emoji\n",
    b"invalid \xff byte", b"truncated \xe2\x82", b"truncated \xe2\x82x", b"overlong \xc0\xaf",
    b"surrogate encoded \xed\xa0\x80", b"\xf4\x90\x80\x80 above max", b"\xf0\x9f\x98", b"\x80\x80",
    b"\xe0\x80\x80", b"\xe0\xa0", b"\xf0\x80\x80\x80", b"\xf5\x80", b"\xc2", b"\xc2\xc2\xa9",
    b"ctl \x00\x01\x1f\x7f tab\t cr\r", b"quote\" back\\ slash/",
    b"prefix line\n{\"success\": true}", b"\r\n\r\n", b"\xef\xbb\xbfBOM",
]
for _ in range(200):
    n = rng.randint(0, 40)
    texts.append(bytes(rng.choice(b"ab\n\"\\\x00\x7f\x80\xbf\xc2\xc3\xe2\xe0\xed\xef\xf0\xf4\xf5\xff") for _ in range(n)))
for _ in range(100):
    s = "".join(chr(rng.choice([rng.randint(0x20, 0x7e), rng.randint(0x80, 0x7ff), rng.randint(0x800, 0xd7ff),
                                 rng.randint(0xe000, 0xffff), rng.randint(0x10000, 0x10ffff)])) for _ in range(rng.randint(0, 30)))
    texts.append(s.encode("utf-8"))
for t in texts:
    s = t.decode("utf-8", "replace")
    d = json.dumps(s)
    sha, n = digest(d)
    emit(kind="text", **{"in": b64(t)}, out=b64(d), sha256=sha, bytes=n)

# --- django-ray's last line: logs.strip().split("\n")[-1] -------------------------------------
lines = [
    "a\nb\n", "a\nb", "single", "  padded  ", "x\n\n\n", "x\r\n{\"a\": 1}\r\n", "\x0b\x0c\x1c\x1d\x1e\x1f x \x85\xa0",
    "one\u2028two", "last\n\u3000\u2003", "\n\n", "", "   ", "a\rb", "start\n  {\"success\": false}  \n",
]
for s in lines:
    last = s.strip().split("\n")[-1]
    emit(kind="strip", **{"in": b64(s)}, out=b64(last))

# --- the --payload-b64 argument (django_ray.runner.ray_job) -----------------------------------
rows = [
    ("myapp.tasks.add", "[2, 3]", "{}"),
    ("myapp.tasks.add", "[2,3]", '{"x":1}'),
    ("tests.tasks.echo", '["caf\u00e9", 1.5, 1e16, null, true, [1, {"k": "v"}]]', '{"b": 2, "a": [1e-05]}'),
    ("tests.tasks.echo", "[]", '{"emoji": "\U0001F600", "quote": "\\"", "html": "<&>"}'),
    ("pkg.m\u00f6dule.f", "[123456789012345678901234567890]", '{"nan": NaN, "inf": Infinity}'),
    ("a.b", "[\"" + "y" * 300 + "\"]", "{}"),
]
for i in range(1, 40):
    rows.append(("a.b" + "c" * i, "[" + ", ".join(str(rng.randint(-1000, 1000)) for _ in range(i)) + "]", "{}"))
for cp, a, k in rows:
    payload = {"callable_path": cp, "serialized_args": json.dumps(list(json.loads(a))),
               "serialized_kwargs": json.dumps(json.loads(k))}
    payload_json = json.dumps(payload, separators=(",", ":"))
    b = base64.urlsafe_b64encode(payload_json.encode("utf-8")).decode("ascii")
    emit(kind="payload", callable_path=b64(cp), args_json=b64(a), kwargs_json=b64(k), out=b64(b))

# --- large results: sizes and digests around MAX_RESULT_SIZE_BYTES ----------------------------
units = ['"x"', '"\u00e9"', '"\U0001F600"', "1.5", "1e16", '{"k": [1, 2]}', "123456789", '"a\\nb"']
for u in units:
    for count in (1, 1000, 87381, 262144, 300000):
        value = [json.loads(u)] * count
        sha, n = digest(json.dumps(value))
        emit(kind="repeat", unit=b64(u), count=count, sha256=sha, bytes=n)

for text, _ in docs:
    sha, n = digest(json.dumps(json.loads(text)))
    emit(kind="result", **{"in": b64(text)}, sha256=sha, bytes=n)
