#!/usr/bin/env python3
"""Write the hand-made seed files of tests/fuzz/corpus/<target>/.

Seeds are named seed-<what>; files the fuzzer found are named found-<sha1>
and crashers fixed since are named regress-<what>.  Re-running this script
rewrites only seed-* files.  JWT seeds are signed with the key the fuzz-jwt
target uses, so mutations start from tokens that pass the MAC.
"""
import base64
import hashlib
import hmac
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = b"flashgate-fuzz-key"
NOW = 1700000000


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def js(o):
    return json.dumps(o, separators=(",", ":"), ensure_ascii=False).encode()


def token(header, payload, key=KEY):
    h = header if isinstance(header, bytes) else js(header)
    p = payload if isinstance(payload, bytes) else js(payload)
    si = b64(h) + b"." + b64(p)
    return si + b"." + b64(hmac.new(key, si, hashlib.sha256).digest())


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith("seed-"):
            os.remove(os.path.join(d, f))
    for name, data in seeds.items():
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)


HS = {"alg": "HS256", "typ": "JWT"}
SUPABASE = {
    "aud": "authenticated", "exp": NOW + 3600, "iat": NOW,
    "iss": "https://abcdefgh.supabase.co/auth/v1",
    "sub": "2f1c9a7e-5b3d-4c8a-9e21-7d6f0b4a1c33", "email": "ana@example.com",
    "phone": "", "app_metadata": {"provider": "email", "providers": ["email"]},
    "user_metadata": {"full_name": "Ana L\u00facia"}, "role": "authenticated",
    "aal": "aal1", "amr": [{"method": "password", "timestamp": NOW}],
    "session_id": "8d3e2c1b-0a9f-4e7d-b6c5-a4938271605f", "is_anonymous": False,
}
good = token(HS, {"sub": "user-1", "job": "j1", "iat": NOW, "exp": NOW + 600})
none_hdr = b64(js({"alg": "none", "typ": "JWT"}))
admin = b64(js({"sub": "admin"}))

jwt = {
    "valid": good,
    "valid-supabase": token(HS, SUPABASE),
    "valid-minimal": token({"alg": "HS256"}, {"sub": "u"}),
    "valid-nbf-fraction": token(HS, {"sub": "u", "nbf": NOW - 5.5, "exp": NOW + 60.25}),
    "expired": token(HS, {"sub": "u", "exp": NOW - 3600}),
    "not-yet-valid": token(HS, {"sub": "u", "nbf": NOW + 3600}),
    "alg-none-empty-sig": none_hdr + b"." + admin + b".",
    "alg-none-no-sig": none_hdr + b"." + admin,
    "alg-none-signed": token({"alg": "none"}, {"sub": "admin"}),
    "alg-hs512": token({"alg": "HS512", "typ": "JWT"}, {"sub": "u"}),
    "alg-rs256": token({"alg": "RS256", "typ": "JWT"}, {"sub": "u"}),
    "alg-missing": token({"typ": "JWT"}, {"sub": "u"}),
    "alg-number": token({"alg": 256}, {"sub": "u"}),
    "crit": token({"alg": "HS256", "crit": ["exp"]}, {"sub": "u"}),
    "forged-payload": good.split(b".")[0] + b"." + b64(js({"sub": "admin", "exp": NOW + 600}))
                      + b"." + good.split(b".")[2],
    "wrong-key": token(HS, {"sub": "u"}, key=b"not-the-key"),
    "two-segments": b".".join(good.split(b".")[:2]),
    "four-segments": good + b".AAAA",
    "bad-b64-chars": good.replace(b"-", b"+").replace(b"_", b"/") + b"==",
    "sub-number": token(HS, {"sub": 42}),
    "sub-too-long": token(HS, {"sub": "x" * 200}),
    "sub-nul": token(HS, b'{"sub":"admin\\u0000evil"}'),
    "exp-string": token(HS, {"sub": "u", "exp": str(NOW + 600)}),
    "exp-huge": token(HS, b'{"sub":"u","exp":1e308,"iat":18446744073709551616}'),
    "deep-payload": token(HS, b'{"sub":"u","x":' + b"[" * 20 + b"]" * 20 + b"}"),
    "payload-not-object": token(HS, b'["sub","u"]'),
    "oversized": token(HS, {"sub": "u", "pad": "A" * 7000}),
    # "header.payload" inputs: fuzz-jwt appends the right signature
    "unsigned-claims": b64(js(HS)) + b"." + b64(js({"sub": "u", "role": "service_role",
                                                    "exp": NOW + 5, "nbf": NOW})),
    "unsigned-typ": b64(js({"alg": "HS256", "typ": "at+jwt"})) + b"." + admin,
    # "<header JSON>\n<payload JSON>" inputs
    "json-mode": js(HS) + b"\n" + js({"sub": "u", "job": "j", "exp": NOW + 1}),
    "json-mode-types": js(HS) + b'\n{"sub":"u","exp":true,"nbf":null,"job":[]}',
    "json-mode-escapes": js(HS) + b'\n{"sub":"\\ud83d\\ude00\\n\\"","role":"a\\/b"}',
    # sub "\n" job inputs for the round trip
    "round-trip": b"user-7\njob-42",
    "round-trip-utf8": "us\u00e9r \"quoted\"\\\ntab\tjob".encode(),
    "round-trip-bad-utf8": b"\xff\xfe\n\xc3(",
    "round-trip-long": b"s" * 127 + b"\n" + b"j" * 127,
}

D = 33
json_seeds = {
    "job-request": js({"content": "Photosynthesis converts light.", "subject": "Biology",
                       "topic": "Plants", "userId": "u1", "nativeLanguage": "Spanish",
                       "targetLanguage": "English"}),
    "flashcards-result": js({"success": True, "flashcards": [
        {"front": "a", "back": "b", "topic": "t", "difficulty": "beginner", "example": "e"}],
        "tokenUsage": 123, "provider": "offline", "model": "m"}),
    "scalars": b'[true,false,null,0,-0,1.5e-300,-1E+2,"s"]',
    "top-null": b"null",
    "top-number": b" 42 ",
    "top-string": b'"\\u00e9\\ud83d\\ude00"',
    "empty": b"",
    "whitespace": b" \t\r\n",
    "depth-32": b"[" * 32 + b"]" * 32,
    "depth-33": b"[" * D + b"]" * D,
    "depth-1000": b'{"a":' * 1000 + b"1" + b"}" * 1000,
    "huge-int": b'{"a":18446744073709551616,"b":-9223372036854775809,"c":9223372036854775807}',
    "huge-float": b'{"a":1e400,"b":-1e309,"c":4.9e-324,"d":123456789012345678901234567890}',
    "nan-inf": b'[NaN, Infinity, -Infinity]',
    "leading-zero": b"[012]",
    "nul-escape": b'{"userId":"a\\u0000b"}',
    "nul-in-key": b'{"user\\u0000Id":"x","userId":"y"}',
    "nul-raw": b'{"a":"b\x00c"}',
    "lone-surrogate": b'["\\ud800", "\\udc00x"]',
    "bad-utf8": b'["\xc3\x28", "\xed\xa0\x80", "\xf4\x90\x80\x80"]',
    "bom": b"\xef\xbb\xbf{}",
    "trailing-garbage": b'{"a":1} x',
    "trailing-comma": b'{"a":[1,2,],}',
    "comment": b'{"a":1 /* c */}',
    "single-quotes": b"{'a':'b'}",
    "duplicate-keys": b'{"userId":"a","userId":"b","userId":null}',
    "control-chars": b'{"a":"\x01\x1f"}',
    "long-string": js({"content": "word " * 2000}),
    "unterminated": b'{"a":"b',
    "many-keys": js({"k%d" % i: i for i in range(200)}),
}

router = {
    "health": b"GET /health",
    "head-health": b"HEAD /health",
    "root": b"GET /",
    "static": b"GET /sse-example.html",
    "job-status": b"GET /api/job-status/0b9f3c2e-job",
    "job-status-head": b"HEAD /api/job-status/abc",
    "job-status-empty": b"GET /api/job-status/",
    "job-status-nul": b"GET /api/job-status/%00",
    "job-status-slash": b"GET /api/job-status/a%2Fb",
    "job-status-traversal": b"GET /api/job-status/..%2f..%2fetc%2fpasswd",
    "job-status-bad-escape": b"GET /api/job-status/%zz%4",
    "job-status-utf8": b"GET /api/job-status/%C3%A9t%C3%A9",
    "job-status-long": b"GET /api/job-status/" + b"a" * 300,
    "traversal": b"GET /../../etc/passwd",
    "traversal-encoded": b"GET /%2e%2e/%2e%2e/etc/passwd",
    "generate": b"POST /api/ai/generate-flashcards",
    "generate-wrong-method": b"GET /api/ai/generate-lesson",
    "options": b"OPTIONS /api/ai/generate-lesson",
    "profile": b"GET /api/profile/user-1",
    "profile-invalidate": b"POST /api/profile/user-1/invalidate",
    "profile-empty": b"POST /api/profile//invalidate",
    "breaker-reset": b"POST /api/circuit-breakers/reset/openai",
    "trailing-slash": b"POST /health/",
    "double-slash": b"GET //health",
    "deep": b"GET " + b"/a" * 40,
    "no-slash": b"GET health",
    "star": b"OPTIONS *",
    "lowercase-method": b"get /health",
    "no-method": b"/health",
    "delete": b"DELETE /api/job-status/j1",
    "metrics": b"PATCH /metrics",
}

if __name__ == "__main__":
    write("fuzz-jwt", jwt)
    write("fuzz-json", json_seeds)
    write("fuzz-router", router)
