//! Byte encodings: base64, hex, percent encoding and form bodies.

const std = @import("std");
const mem = @import("mem.zig");
const json = @import("json.zig");
const scan = @import("scan.zig");

pub fn base64(s: []const u8) []const u8 {
    const enc = std.base64.standard.Encoder;
    const out = mem.alloc(enc.calcSize(s.len));
    return enc.encode(out, s);
}

/// Decode standard base64 (padding required); null when malformed.
pub fn base64Decode(s: []const u8) ?[]const u8 {
    const dec = std.base64.standard.Decoder;
    const n = dec.calcSizeForSlice(s) catch return null;
    const out = mem.alloc(n);
    dec.decode(out, s) catch return null;
    return out;
}

const hex_lower = "0123456789abcdef";
const hex_upper = "0123456789ABCDEF";

pub fn hex(s: []const u8) []const u8 {
    const out = mem.alloc(s.len * 2);
    for (s, 0..) |b, i| {
        out[2 * i] = hex_lower[b >> 4];
        out[2 * i + 1] = hex_lower[b & 15];
    }
    return out;
}

fn unreserved(c: u8) bool {
    return (c >= 'A' and c <= 'Z') or (c >= 'a' and c <= 'z') or (c >= '0' and c <= '9') or
        c == '-' or c == '_' or c == '.' or c == '~';
}

fn pct(out: *mem.Bytes, c: u8) void {
    out.append('%');
    out.append(hex_upper[c >> 4]);
    out.append(hex_upper[c & 15]);
}

/// `application/x-www-form-urlencoded` for one key or value, exactly as
/// Python's `urllib.parse.quote_plus` (what `requests` uses for `data=`):
/// RFC 3986 unreserved characters kept, space as `+`, all else `%XX`.
pub fn formEscape(out: *mem.Bytes, s: []const u8) void {
    out.ensureUnused(s.len);
    var i: usize = 0;
    while (i < s.len) {
        const j = scan.unreservedEnd(s, i);
        out.appendSlice(s[i..j]);
        if (j == s.len) break;
        if (s[j] == ' ') out.append('+') else pct(out, s[j]);
        i = j + 1;
    }
}

/// RFC 3986 percent encoding as AWS SigV4 specifies it (`%20` for space);
/// `/` is kept when `keep_slash` (paths).
pub fn uriEscape(out: *mem.Bytes, s: []const u8, keep_slash: bool) void {
    out.ensureUnused(s.len);
    var i: usize = 0;
    while (i < s.len) {
        const j = scan.unreservedEnd(s, i);
        out.appendSlice(s[i..j]);
        if (j == s.len) break;
        if (keep_slash and s[j] == '/') out.append('/') else pct(out, s[j]);
        i = j + 1;
    }
}

pub fn uriEscaped(s: []const u8, keep_slash: bool) []const u8 {
    var out = mem.Bytes{};
    uriEscape(&out, s, keep_slash);
    return out.items();
}

/// A form body built pair by pair, in the order given.
pub const Form = struct {
    out: mem.Bytes = .{},

    pub fn add(f: *Form, k: []const u8, v: []const u8) void {
        if (f.out.len > 0) f.out.append('&');
        formEscape(&f.out, k);
        f.out.append('=');
        formEscape(&f.out, v);
    }

    pub fn bytes(f: *const Form) []const u8 {
        return f.out.items();
    }
};

fn hexVal(c: u8) ?u8 {
    return switch (c) {
        '0'...'9' => c - '0',
        'a'...'f' => c - 'a' + 10,
        'A'...'F' => c - 'A' + 10,
        else => null,
    };
}

/// Percent-decode; `+` becomes a space when `plus_space` (form bodies).
pub fn unescape(s: []const u8, plus_space: bool) []const u8 {
    var out = mem.Bytes{};
    var i: usize = 0;
    while (i < s.len) : (i += 1) {
        const c = s[i];
        if (c == '%' and i + 2 < s.len) {
            if (hexVal(s[i + 1])) |hi| {
                if (hexVal(s[i + 2])) |lo| {
                    out.append(hi * 16 + lo);
                    i += 2;
                    continue;
                }
            }
            out.append(c);
        } else if (c == '+' and plus_space) {
            out.append(' ');
        } else out.append(c);
    }
    return out.items();
}

pub const Pair = struct { key: []const u8, value: []const u8 };

/// Split a form body or query string into decoded pairs, in order.
pub fn parseForm(s: []const u8) []Pair {
    var pairs = mem.List(Pair){};
    var start: usize = 0;
    var i: usize = 0;
    while (i <= s.len) : (i += 1) {
        if (i == s.len or s[i] == '&') {
            const part = s[start..i];
            start = i + 1;
            if (part.len == 0) continue;
            var eq: usize = part.len;
            for (part, 0..) |c, k| {
                if (c == '=') {
                    eq = k;
                    break;
                }
            }
            const k = unescape(part[0..eq], true);
            const v = if (eq < part.len) unescape(part[eq + 1 ..], true) else "";
            pairs.append(.{ .key = k, .value = v });
        }
    }
    return pairs.items();
}

/// The first value for `key`.
pub fn formGet(pairs: []const Pair, key: []const u8) ?[]const u8 {
    for (pairs) |p| {
        if (json.eql(p.key, key)) return p.value;
    }
    return null;
}

/// Byte-wise ordering (equals code point order for UTF-8).
pub fn lessThan(a: []const u8, b: []const u8) bool {
    const n = @min(a.len, b.len);
    for (a[0..n], b[0..n]) |x, y| {
        if (x != y) return x < y;
    }
    return a.len < b.len;
}

/// Insertion sort of pairs by key, then value; inputs are small.
pub fn sortPairs(pairs: []Pair) void {
    var i: usize = 1;
    while (i < pairs.len) : (i += 1) {
        const item = pairs[i];
        var j = i;
        while (j > 0 and pairLess(item, pairs[j - 1])) : (j -= 1) pairs[j] = pairs[j - 1];
        pairs[j] = item;
    }
}

fn pairLess(a: Pair, b: Pair) bool {
    if (json.eql(a.key, b.key)) return lessThan(a.value, b.value);
    return lessThan(a.key, b.key);
}

/// Concatenate slices.
pub fn concat(parts: []const []const u8) []const u8 {
    var out = mem.Bytes{};
    for (parts) |p| out.appendSlice(p);
    return out.items();
}

/// ASCII case-insensitive equality (header names).
pub fn eqlIgnoreCase(a: []const u8, b: []const u8) bool {
    if (a.len != b.len) return false;
    for (a, b) |x, y| {
        if (lower(x) != lower(y)) return false;
    }
    return true;
}

pub fn lower(c: u8) u8 {
    return if (c >= 'A' and c <= 'Z') c + 32 else c;
}

pub fn startsWith(s: []const u8, prefix: []const u8) bool {
    return s.len >= prefix.len and json.eql(s[0..prefix.len], prefix);
}

/// Constant-time comparison for signatures.
pub fn timingSafeEql(a: []const u8, b: []const u8) bool {
    if (a.len != b.len) return false;
    var d: u8 = 0;
    for (a, b) |x, y| d |= x ^ y;
    return d == 0;
}

/// Decimal text of an integer, on the heap.
pub fn intText(n: i64) []const u8 {
    var buf: [24]u8 = undefined;
    return mem.dupe(json.formatInt(&buf, n));
}
