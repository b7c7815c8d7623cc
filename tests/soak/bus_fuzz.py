#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Abuses kmodd over a raw D-Bus socket for a while, checking all along that it answers.

Speaks the D-Bus wire protocol itself (no binding would send what it is asked to send):
random method names, real methods with wrong signatures, 1 MiB strings, invalid UTF-8,
thousands of calls whose replies are never read, and clients that hang up mid-call. Every
so often a well-formed ListDeps must come back with the bytes of the first one.

Usage: bus_fuzz.py ADDRESS SECONDS [SEED]
Prints one line of figures; exits 1 when a well-formed call went unanswered or wrong.
"""
import os
import random
import socket
import struct
import sys
import time

DEST = "org.kmodd1"
PATH = "/org/kmodd1"
IFACE = "org.kmodd1.Manager"
METHODS = {
    "Load": "ss", "Unload": "s", "ListDeps": "s", "ListLoaded": "", "GetModuleInfo": "s",
    "Rebuild": "s", "ListWaitingDevices": "", "Explain": "s", "ListHolders": "s",
    "PlanUnload": "s", "FindModules": "s", "ListDepsForKernel": "ss",
    "GetModuleInfoForKernel": "ss", "ListUsersForKernel": "ss", "FindModulesForKernel": "ss",
}
# Changing calls are sent only with names no tree has: the fuzzer must not load anything.
CHANGING = {"Load", "Unload", "Rebuild"}
ALIGN = {"y": 1, "b": 4, "n": 2, "q": 2, "i": 4, "u": 4, "x": 8, "t": 8, "d": 8, "s": 4,
         "o": 4, "g": 1, "a": 4, "(": 8, "v": 1, "h": 4}


class Writer:
    """Marshals little-endian D-Bus values."""

    def __init__(self):
        self.buf = bytearray()

    def pad(self, n):
        self.buf += b"\0" * (-len(self.buf) % n)

    def put(self, sig, value):
        c = sig[0]
        self.pad(ALIGN[c])
        if c in "ybnqiuxtd":
            fmt = {"y": "<B", "b": "<I", "n": "<h", "q": "<H", "i": "<i", "u": "<I",
                   "x": "<q", "t": "<Q", "d": "<d"}[c]
            self.buf += struct.pack(fmt, value)
        elif c in "so":
            raw = value if isinstance(value, bytes) else value.encode()
            self.buf += struct.pack("<I", len(raw)) + raw + b"\0"
        elif c == "g":
            raw = value.encode()
            self.buf += struct.pack("<B", len(raw)) + raw + b"\0"
        elif c == "a":
            element = one_type(sig[1:])
            at = len(self.buf)
            self.buf += b"\0\0\0\0"
            self.pad(ALIGN[element[0]])
            start = len(self.buf)
            for item in value:
                self.put(element, item)
            struct.pack_into("<I", self.buf, at, len(self.buf) - start)
        elif c == "(":
            for member, item in zip(split_types(sig[1:len(one_type(sig)) - 1]), value):
                self.put(member, item)
        elif c == "v":
            inner, item = value
            self.put("g", inner)
            self.put(inner, item)


def one_type(sig):
    """The first complete type of `sig`."""
    if sig[0] == "a":
        return "a" + one_type(sig[1:])
    if sig[0] == "(":
        depth = 0
        for i, c in enumerate(sig):
            depth += {"(": 1, ")": -1}.get(c, 0)
            if depth == 0:
                return sig[: i + 1]
    return sig[0]


def split_types(sig):
    types = []
    while sig:
        t = one_type(sig)
        types.append(t)
        sig = sig[len(t):]
    return types


def random_type(rng, depth=0):
    c = rng.choice("ybnqiuxtdsogs" + ("a(v" if depth < 2 else ""))
    if c == "a":
        return "a" + random_type(rng, depth + 1)
    if c == "(":
        return "(" + "".join(random_type(rng, depth + 1) for _ in range(rng.randint(1, 3))) + ")"
    return c


def random_value(rng, t):
    c = t[0]
    if c == "y":
        return rng.randrange(256)
    if c == "b":
        return rng.randrange(2)
    if c in "nqixtu":
        bits = {"n": 15, "q": 16, "i": 31, "x": 63, "t": 64, "u": 32}[c]
        return rng.randrange(2 ** bits) * (1 if c in "qtu" or rng.random() < 0.5 else -1)
    if c == "d":
        return rng.uniform(-1e9, 1e9)
    if c == "s":
        return random_string(rng)
    if c == "o":
        return "/" + "/".join(rng.choice(["a", "b_1", "org", "kmodd1"]) for _ in range(rng.randint(0, 3))) if rng.random() < 0.9 else "/"
    if c == "g":
        return "".join(random_type(rng) for _ in range(rng.randint(0, 3)))
    if c == "a":
        return [random_value(rng, t[1:]) for _ in range(rng.randint(0, 4))]
    if c == "(":
        return [random_value(rng, m) for m in split_types(t[1:-1])]
    if c == "v":
        inner = random_type(rng, 2)
        return (inner, random_value(rng, inner))
    raise ValueError(t)


def random_string(rng):
    kind = rng.random()
    if kind < 0.3:
        return "".join(rng.choice("abcXYZ_-.*?[]/:0123456789") for _ in range(rng.randint(0, 40)))
    if kind < 0.5:
        return "kmodd_fuzz_" + "".join(rng.choice("abcdef") for _ in range(8))
    if kind < 0.6:
        return rng.choice(["", ".", "..", "/", "a/b", "*", "[", "pci:v*", "\u00e9\u4e2d", "\t\n"])
    if kind < 0.62:
        return "x" * (1 << 20)  # 1 MiB
    return "".join(chr(rng.randrange(1, 0x2FF)) for _ in range(rng.randint(0, 30)))


class Connection:
    def __init__(self, address):
        path = dict(kv.split("=", 1) for kv in address.split(":", 1)[1].split(","))["path"]
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
        line = self._line()
        if not line.startswith(b"OK"):
            raise RuntimeError("auth refused: %r" % line)
        self.sock.sendall(b"BEGIN\r\n")
        self.serial = 0
        self.pending = bytearray()
        self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", "", [])
        self.wait_reply(self.serial, 10)

    def _line(self):
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = self.sock.recv(1)
            if not chunk:
                raise RuntimeError("bus hung up during auth")
            data += chunk
        return data

    def close(self):
        self.sock.close()

    def call(self, dest, path, iface, member, sig, values, body=None, flags=0):
        self.serial += 1
        if body is None:
            w = Writer()
            for t, v in zip(split_types(sig), values):
                w.put(t, v)
            body = bytes(w.buf)
        fields = [(1, ("o", path)), (3, ("s", member)), (6, ("s", dest))]
        if iface:
            fields.append((2, ("s", iface)))
        if sig:
            fields.append((8, ("g", sig)))
        h = Writer()
        h.buf += struct.pack("<cBBBII", b"l", 1, flags, 1, len(body), self.serial)
        h.put("a(yv)", fields)
        h.pad(8)
        self.sock.sendall(bytes(h.buf) + body)
        return self.serial

    def read_messages(self, timeout):
        """Reads what arrived within `timeout`: a list of (type, reply_serial, error, body)."""
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(1 << 20)
            if chunk == b"":
                raise ConnectionResetError("the bus hung up")
        except (socket.timeout, BlockingIOError):
            chunk = b""
        finally:
            self.sock.settimeout(None)
        self.pending += chunk
        messages = []
        while len(self.pending) >= 16:
            body_len, _, fields_len = struct.unpack_from("<III", self.pending, 4)
            header_len = 16 + fields_len + (-(16 + fields_len) % 8)
            total = header_len + body_len
            if len(self.pending) < total:
                break
            raw = bytes(self.pending[:total])
            del self.pending[:total]
            messages.append(parse(raw, header_len))
        return messages

    def wait_reply(self, serial, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for m in self.read_messages(0.2):
                if m[1] == serial:
                    return m
        return None


def parse(raw, header_len):
    mtype = raw[1]
    reply_serial, error = None, None
    at = 16
    end = 16 + struct.unpack_from("<I", raw, 12)[0]
    while at < end:
        at += -at % 8
        code = raw[at]
        sig_len = raw[at + 1]
        sig = raw[at + 2: at + 2 + sig_len].decode()
        at += 3 + sig_len
        if sig in ("s", "o"):
            at += -at % 4
            n = struct.unpack_from("<I", raw, at)[0]
            value = raw[at + 4: at + 4 + n].decode(errors="replace")
            at += 5 + n
        elif sig == "g":
            n = raw[at]
            value = raw[at + 1: at + 1 + n].decode()
            at += 2 + n
        else:
            at += -at % 4
            value = struct.unpack_from("<I", raw, at)[0]
            at += 4
        if code == 5:
            reply_serial = value
        elif code == 4:
            error = value
    return (mtype, reply_serial, error, raw[header_len:])


def main():
    address, seconds = sys.argv[1], float(sys.argv[2])
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else int(time.time())
    rng = random.Random(seed)
    probe = Connection(address)
    serial = probe.call(DEST, PATH, IFACE, "ListDeps", "s", ["mod2"])
    baseline = probe.wait_reply(serial, 10)
    if baseline is None or baseline[0] != 2:
        print("bus_fuzz: the first ListDeps was not answered: %r" % (baseline,))
        return 1
    counts = {"sent": 0, "errors": 0, "returns": 0, "reconnects": 0, "floods": 0,
              "hangups": 0, "checks": 0}
    conn = Connection(address)
    deadline = time.monotonic() + seconds
    next_check = time.monotonic()
    while time.monotonic() < deadline:
        kind = rng.random()
        try:
            if kind < 0.35:  # a real method, random arguments of a random signature
                member = rng.choice(sorted(METHODS))
                sig = "".join(random_type(rng) for _ in range(rng.randint(0, 3)))
                if member in CHANGING and "s" in sig:
                    sig = "s" + sig.replace("s", "u")
                    values = ["kmodd_fuzz_nothing"] + [random_value(rng, t) for t in split_types(sig)[1:]]
                else:
                    values = [random_value(rng, t) for t in split_types(sig)]
                conn.call(DEST, PATH, IFACE, member, sig, values)
            elif kind < 0.55:  # a real method with its own signature, hostile strings
                member = rng.choice(sorted(m for m in METHODS if m not in CHANGING))
                sig = METHODS[member]
                conn.call(DEST, PATH, IFACE, member, sig, [random_string(rng) for _ in sig])
            elif kind < 0.65:  # names that do not exist: members, interfaces, paths
                member = rng.choice(["Nope", "load", "Load2", "X" * 255, "Introspect", "Get", "GetAll"])
                iface = rng.choice([IFACE, "org.kmodd1.Nope", "org.freedesktop.DBus.Properties",
                                    "org.freedesktop.DBus.Introspectable", ""])
                path = rng.choice([PATH, "/", "/org/kmodd1/x", "/org"])
                sig = "".join(random_type(rng) for _ in range(rng.randint(0, 2)))
                conn.call(DEST, path, iface, member, sig, [random_value(rng, t) for t in split_types(sig)])
            elif kind < 0.70:  # invalid UTF-8: the bus drops the sender
                conn.call(DEST, PATH, IFACE, "ListDeps", "s", [b"mod\xff\xfe\xc0"])
            elif kind < 0.75:  # a 1 MiB parameter list for a module that does not exist
                conn.call(DEST, PATH, IFACE, "Load", "ss", ["kmodd_fuzz_nothing", "p=" + "y" * (1 << 20)])
            elif kind < 0.78:  # thousands of calls, replies never read, then gone
                flood = Connection(address)
                for i in range(3000):
                    flood.call(DEST, PATH, IFACE, rng.choice(["ListLoaded", "ListDeps", "Explain"]),
                               "" if i % 3 == 0 else "s", [] if i % 3 == 0 else ["mod%d" % (i % 4)])
                flood.close()
                counts["floods"] += 1
            elif kind < 0.85:  # hangs up right after calling
                gone = Connection(address)
                gone.call(DEST, PATH, IFACE, rng.choice(["GetModuleInfo", "FindModules", "ListHolders"]),
                          "s", [rng.choice(["mod1", "*", "x"])])
                gone.close()
                counts["hangups"] += 1
            else:  # random bytes as a body under a valid header
                body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
                conn.call(DEST, PATH, IFACE, "ListDeps", "s", None, body=struct.pack("<I", len(body)) + body + b"\0")
            counts["sent"] += 1
            for m in conn.read_messages(0):
                counts["errors" if m[0] == 3 else "returns"] += 1
        except (BrokenPipeError, ConnectionResetError, RuntimeError, OSError):
            conn.close()
            conn = Connection(address)
            counts["reconnects"] += 1
        if time.monotonic() >= next_check:
            serial = probe.call(DEST, PATH, IFACE, "ListDeps", "s", ["mod2"])
            answer = probe.wait_reply(serial, 25)
            if answer is None or answer[0] != 2 or answer[3] != baseline[3]:
                print("bus_fuzz: a well-formed ListDeps went wrong after %d calls (seed %d): %r"
                      % (counts["sent"], seed, answer and answer[:3]))
                return 1
            counts["checks"] += 1
            next_check = time.monotonic() + 0.5
    print("bus_fuzz: seed %d, %.0f s: %d calls sent (%d floods of 3000 unread, %d hang-ups), "
          "%d error replies and %d returns read, %d reconnects after the bus dropped us, "
          "%d well-formed checks answered right"
          % (seed, seconds, counts["sent"], counts["floods"], counts["hangups"], counts["errors"],
             counts["returns"], counts["reconnects"], counts["checks"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
