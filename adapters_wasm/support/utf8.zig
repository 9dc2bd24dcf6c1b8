//! UTF-8 encoding and lenient decoding (invalid sequences become U+FFFD).

const mem = @import("mem.zig");

pub fn encode(out: *mem.Bytes, cp: u21) void {
    if (cp < 0x80) {
        out.append(@intCast(cp));
    } else if (cp < 0x800) {
        out.append(@intCast(0xC0 | (cp >> 6)));
        out.append(@intCast(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.append(@intCast(0xE0 | (cp >> 12)));
        out.append(@intCast(0x80 | ((cp >> 6) & 0x3F)));
        out.append(@intCast(0x80 | (cp & 0x3F)));
    } else {
        out.append(@intCast(0xF0 | (cp >> 18)));
        out.append(@intCast(0x80 | ((cp >> 12) & 0x3F)));
        out.append(@intCast(0x80 | ((cp >> 6) & 0x3F)));
        out.append(@intCast(0x80 | (cp & 0x3F)));
    }
}

pub const Decoded = struct { cp: u21, len: usize };

const replacement = Decoded{ .cp = 0xFFFD, .len = 1 };

/// The code point starting at `s[i]`.
pub fn decode(s: []const u8, i: usize) Decoded {
    const c = s[i];
    if (c < 0x80) return .{ .cp = c, .len = 1 };
    var n: usize = 0;
    var cp: u21 = 0;
    var min: u21 = 0;
    if (c & 0xE0 == 0xC0) {
        n = 2;
        cp = c & 0x1F;
        min = 0x80;
    } else if (c & 0xF0 == 0xE0) {
        n = 3;
        cp = c & 0x0F;
        min = 0x800;
    } else if (c & 0xF8 == 0xF0) {
        n = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else return replacement;
    if (i + n > s.len) return replacement;
    var k: usize = 1;
    while (k < n) : (k += 1) {
        const b = s[i + k];
        if (b & 0xC0 != 0x80) return replacement;
        cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF)) return replacement;
    return .{ .cp = cp, .len = n };
}

/// Number of UTF-16 code units in `s` (how Twilio and GSM count length).
pub fn utf16Len(s: []const u8) usize {
    var i: usize = 0;
    var n: usize = 0;
    while (i < s.len) {
        const d = decode(s, i);
        i += d.len;
        n += if (d.cp >= 0x10000) 2 else 1;
    }
    return n;
}
