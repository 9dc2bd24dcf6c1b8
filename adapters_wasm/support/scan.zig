//! Fast scans over byte runs, 16 bytes at a time (wasm SIMD128).
//!
//! Fuel is charged per wasm instruction, so a byte-at-a-time loop costs tens
//! of units per byte; these keep JSON and form bodies of hundreds of KiB well
//! inside the host's default budget.

const V = @Vector(16, u8);

fn splat(c: u8) V {
    return @splat(c);
}

/// Index of the first byte at or after `start` that a JSON string cannot hold
/// as is in ASCII-only output: `"`, `\`, a control character, DEL or any
/// non-ASCII byte; `s.len` when there is none.
pub inline fn jsonPlainEnd(s: []const u8, start: usize) usize {
    var i = start;
    while (i + 16 <= s.len) : (i += 16) {
        const v: V = s[i..][0..16].*;
        const bad = (v < splat(0x20)) | (v >= splat(0x7f)) | (v == splat('"')) | (v == splat('\\'));
        const mask: u16 = @bitCast(bad);
        if (mask != 0) return i + @ctz(mask);
    }
    while (i < s.len) : (i += 1) {
        const c = s[i];
        if (c < 0x20 or c >= 0x7f or c == '"' or c == '\\') return i;
    }
    return i;
}

/// Index of the first `"`, `\` or control character at or after `start` (the
/// end of a JSON string's plain run when reading); `s.len` when none.
pub inline fn jsonStringEnd(s: []const u8, start: usize) usize {
    var i = start;
    while (i + 16 <= s.len) : (i += 16) {
        const v: V = s[i..][0..16].*;
        const stop = (v < splat(0x20)) | (v == splat('"')) | (v == splat('\\'));
        const mask: u16 = @bitCast(stop);
        if (mask != 0) return i + @ctz(mask);
    }
    while (i < s.len) : (i += 1) {
        const c = s[i];
        if (c < 0x20 or c == '"' or c == '\\') return i;
    }
    return i;
}

/// Index of the first byte that is not RFC 3986 unreserved
/// (`A-Z a-z 0-9 - . _ ~`) at or after `start`; `s.len` when none.
pub inline fn unreservedEnd(s: []const u8, start: usize) usize {
    var i = start;
    while (i + 16 <= s.len) : (i += 16) {
        const v: V = s[i..][0..16].*;
        const lower_v = v | splat(0x20); // folds A-Z onto a-z
        const alpha = (lower_v >= splat('a')) & (lower_v <= splat('z'));
        const digit = (v >= splat('0')) & (v <= splat('9'));
        const mark = (v == splat('-')) | (v == splat('.')) | (v == splat('_')) | (v == splat('~'));
        const mask: u16 = @bitCast(alpha | digit | mark);
        if (mask != 0xFFFF) return i + @ctz(~mask);
    }
    while (i < s.len) : (i += 1) {
        const c = s[i];
        const ok = (c >= 'A' and c <= 'Z') or (c >= 'a' and c <= 'z') or (c >= '0' and c <= '9') or
            c == '-' or c == '.' or c == '_' or c == '~';
        if (!ok) return i;
    }
    return i;
}
