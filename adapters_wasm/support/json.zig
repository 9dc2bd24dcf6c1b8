//! A small JSON reader and writer.
//!
//! The reader builds a tree on the bump heap; strings are decoded (including
//! `\uXXXX` escapes with surrogate pairs) and numbers keep their source text.
//! The writer produces ASCII-only JSON byte-for-byte the way Python's
//! `json.dumps(..., separators=(",", ":"))` does with its default
//! `ensure_ascii=True`, which is what the provider SDKs the conformance tests
//! compare against emit (botocore's signature covers the body bytes).

const mem = @import("mem.zig");
const utf8 = @import("utf8.zig");
const scan = @import("scan.zig");

pub const Member = struct { key: []const u8, value: Value };

pub const Value = union(enum) {
    null,
    bool: bool,
    /// The number's source text, validated.
    number: []const u8,
    string: []const u8,
    array: []Value,
    object: []Member,

    pub fn get(self: Value, key: []const u8) ?Value {
        if (self != .object) return null;
        var found: ?Value = null;
        // The last duplicate wins, as in Python and serde_json.
        for (self.object) |m| {
            if (eql(m.key, key)) found = m.value;
        }
        return found;
    }

    /// A string member, or null when absent, null or not a string.
    pub fn str(self: Value, key: []const u8) ?[]const u8 {
        const v = self.get(key) orelse return null;
        return if (v == .string) v.string else null;
    }

    /// A non-empty string member.
    pub fn text(self: Value, key: []const u8) ?[]const u8 {
        const s = self.str(key) orelse return null;
        return if (s.len == 0) null else s;
    }

    pub fn obj(self: Value, key: []const u8) ?Value {
        const v = self.get(key) orelse return null;
        return if (v == .object) v else null;
    }

    pub fn arr(self: Value, key: []const u8) ?[]Value {
        const v = self.get(key) orelse return null;
        return if (v == .array) v.array else null;
    }

    /// A string or number member as text (`"21211"` or `21211` both give "21211").
    pub fn scalarText(self: Value, key: []const u8) ?[]const u8 {
        const v = self.get(key) orelse return null;
        return switch (v) {
            .string => |s| s,
            .number => |n| n,
            else => null,
        };
    }

    pub fn int(self: Value, key: []const u8) ?i64 {
        const v = self.get(key) orelse return null;
        return v.asInt();
    }

    pub fn boolean(self: Value, key: []const u8) ?bool {
        const v = self.get(key) orelse return null;
        return if (v == .bool) v.bool else null;
    }

    /// The integer value of a number without fraction or exponent.
    pub fn asInt(self: Value) ?i64 {
        if (self != .number) return null;
        return parseInt(self.number);
    }
};

pub fn eql(a: []const u8, b: []const u8) bool {
    if (a.len != b.len) return false;
    for (a, b) |x, y| {
        if (x != y) return false;
    }
    return true;
}

/// Parse a decimal integer (optionally negative); null on anything else.
pub fn parseInt(s: []const u8) ?i64 {
    if (s.len == 0) return null;
    var i: usize = 0;
    var neg = false;
    if (s[0] == '-') {
        neg = true;
        i = 1;
        if (s.len == 1) return null;
    }
    var n: i64 = 0;
    while (i < s.len) : (i += 1) {
        const c = s[i];
        if (c < '0' or c > '9') return null;
        n = @mulWithOverflow(n, 10)[0];
        n = @addWithOverflow(n, @as(i64, c - '0'))[0];
        if (n < 0) return null;
    }
    return if (neg) -n else n;
}

pub const ParseError = error{Invalid};

const max_depth = 64;

pub fn parse(src: []const u8) ParseError!Value {
    var p = Parser{ .src = src };
    p.ws();
    const v = try p.value(0);
    p.ws();
    if (p.i != src.len) return error.Invalid;
    return v;
}

const Parser = struct {
    src: []const u8,
    i: usize = 0,

    fn ws(p: *Parser) void {
        while (p.i < p.src.len) : (p.i += 1) {
            switch (p.src[p.i]) {
                ' ', '\t', '\n', '\r' => {},
                else => return,
            }
        }
    }

    fn peek(p: *Parser) ParseError!u8 {
        if (p.i >= p.src.len) return error.Invalid;
        return p.src[p.i];
    }

    fn lit(p: *Parser, word: []const u8) ParseError!void {
        if (p.i + word.len > p.src.len or !eql(p.src[p.i .. p.i + word.len], word)) return error.Invalid;
        p.i += word.len;
    }

    fn value(p: *Parser, depth: usize) ParseError!Value {
        if (depth > max_depth) return error.Invalid;
        switch (try p.peek()) {
            '{' => return p.object(depth),
            '[' => return p.array(depth),
            '"' => return .{ .string = try p.string() },
            't' => {
                try p.lit("true");
                return .{ .bool = true };
            },
            'f' => {
                try p.lit("false");
                return .{ .bool = false };
            },
            'n' => {
                try p.lit("null");
                return .null;
            },
            else => return .{ .number = try p.number() },
        }
    }

    fn object(p: *Parser, depth: usize) ParseError!Value {
        p.i += 1;
        var members = mem.List(Member){};
        p.ws();
        if ((try p.peek()) == '}') {
            p.i += 1;
            return .{ .object = members.items() };
        }
        while (true) {
            p.ws();
            if ((try p.peek()) != '"') return error.Invalid;
            const key = try p.string();
            p.ws();
            if ((try p.peek()) != ':') return error.Invalid;
            p.i += 1;
            p.ws();
            const v = try p.value(depth + 1);
            members.append(.{ .key = key, .value = v });
            p.ws();
            switch (try p.peek()) {
                ',' => p.i += 1,
                '}' => {
                    p.i += 1;
                    return .{ .object = members.items() };
                },
                else => return error.Invalid,
            }
        }
    }

    fn array(p: *Parser, depth: usize) ParseError!Value {
        p.i += 1;
        var items = mem.List(Value){};
        p.ws();
        if ((try p.peek()) == ']') {
            p.i += 1;
            return .{ .array = items.items() };
        }
        while (true) {
            p.ws();
            items.append(try p.value(depth + 1));
            p.ws();
            switch (try p.peek()) {
                ',' => p.i += 1,
                ']' => {
                    p.i += 1;
                    return .{ .array = items.items() };
                },
                else => return error.Invalid,
            }
        }
    }

    fn hex4(p: *Parser) ParseError!u21 {
        if (p.i + 4 > p.src.len) return error.Invalid;
        var n: u21 = 0;
        for (p.src[p.i .. p.i + 4]) |c| {
            const d: u21 = switch (c) {
                '0'...'9' => c - '0',
                'a'...'f' => c - 'a' + 10,
                'A'...'F' => c - 'A' + 10,
                else => return error.Invalid,
            };
            n = n * 16 + d;
        }
        p.i += 4;
        return n;
    }

    fn string(p: *Parser) ParseError![]const u8 {
        p.i += 1; // opening quote
        // Fast path: no escapes means the source bytes are the value.
        const start = p.i;
        p.i = scan.jsonStringEnd(p.src, p.i);
        if (p.i >= p.src.len) return error.Invalid;
        if (p.src[p.i] == '"') {
            p.i += 1;
            return p.src[start .. p.i - 1];
        }
        if (p.src[p.i] != '\\') return error.Invalid;
        var out = mem.Bytes{};
        out.appendSlice(p.src[start..p.i]);
        while (true) {
            if (p.i >= p.src.len) return error.Invalid;
            const c = p.src[p.i];
            p.i += 1;
            switch (c) {
                '"' => return out.items(),
                '\\' => {
                    const e = try p.peek();
                    p.i += 1;
                    switch (e) {
                        '"', '\\', '/' => out.append(e),
                        'b' => out.append(8),
                        'f' => out.append(12),
                        'n' => out.append('\n'),
                        'r' => out.append('\r'),
                        't' => out.append('\t'),
                        'u' => {
                            var cp = try p.hex4();
                            if (cp >= 0xD800 and cp <= 0xDBFF) {
                                // A high surrogate must pair with a low one.
                                if (p.i + 6 <= p.src.len and p.src[p.i] == '\\' and p.src[p.i + 1] == 'u') {
                                    const save = p.i;
                                    p.i += 2;
                                    const lo = try p.hex4();
                                    if (lo >= 0xDC00 and lo <= 0xDFFF) {
                                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                    } else {
                                        p.i = save;
                                        cp = 0xFFFD;
                                    }
                                } else cp = 0xFFFD;
                            } else if (cp >= 0xDC00 and cp <= 0xDFFF) cp = 0xFFFD;
                            utf8.encode(&out, cp);
                        },
                        else => return error.Invalid,
                    }
                },
                else => {
                    if (c < 0x20) return error.Invalid;
                    // Copy the run up to the next quote or escape in one go.
                    const run_start = p.i - 1;
                    p.i = scan.jsonStringEnd(p.src, p.i);
                    out.appendSlice(p.src[run_start..p.i]);
                },
            }
        }
    }

    fn number(p: *Parser) ParseError![]const u8 {
        const start = p.i;
        if (p.i < p.src.len and p.src[p.i] == '-') p.i += 1;
        const int_start = p.i;
        p.digits();
        if (p.i == int_start) return error.Invalid;
        if (p.src[int_start] == '0' and p.i - int_start > 1) return error.Invalid;
        if (p.i < p.src.len and p.src[p.i] == '.') {
            p.i += 1;
            const f = p.i;
            p.digits();
            if (p.i == f) return error.Invalid;
        }
        if (p.i < p.src.len and (p.src[p.i] == 'e' or p.src[p.i] == 'E')) {
            p.i += 1;
            if (p.i < p.src.len and (p.src[p.i] == '+' or p.src[p.i] == '-')) p.i += 1;
            const e = p.i;
            p.digits();
            if (p.i == e) return error.Invalid;
        }
        return p.src[start..p.i];
    }

    fn digits(p: *Parser) void {
        while (p.i < p.src.len and p.src[p.i] >= '0' and p.src[p.i] <= '9') p.i += 1;
    }
};

/// Streaming JSON writer with automatic commas.
/// Writers nest deeper than any parsed input (which is capped at
/// `max_depth`) by the few levels of the envelope around it.
const max_write_depth = 2 * max_depth;

pub const Writer = struct {
    out: mem.Bytes = .{},
    /// Per nesting level: has a value been written at this level yet.
    has_item: [max_write_depth + 1]bool = @splat(false),
    depth: usize = 0,
    after_key: bool = false,
    /// `", "` and `": "` separators, as Python's `json.dumps` default
    /// (botocore's rest-json bodies), instead of the compact form.
    spaced: bool = false,

    fn sep(w: *Writer) void {
        if (w.after_key) {
            w.after_key = false;
            return;
        }
        if (w.depth > 0 and w.has_item[w.depth]) w.out.appendSlice(if (w.spaced) ", " else ",");
        w.has_item[w.depth] = true;
    }

    fn push(w: *Writer) void {
        if (w.depth == max_write_depth) @trap(); // a bug in the adapter, not bad input
        w.depth += 1;
        w.has_item[w.depth] = false;
    }

    pub fn beginObject(w: *Writer) void {
        w.sep();
        w.out.append('{');
        w.push();
    }

    pub fn endObject(w: *Writer) void {
        w.out.append('}');
        w.depth -= 1;
    }

    pub fn beginArray(w: *Writer) void {
        w.sep();
        w.out.append('[');
        w.push();
    }

    pub fn endArray(w: *Writer) void {
        w.out.append(']');
        w.depth -= 1;
    }

    pub fn key(w: *Writer, k: []const u8) void {
        w.sep();
        writeString(&w.out, k);
        w.out.appendSlice(if (w.spaced) ": " else ":");
        w.after_key = true;
    }

    pub fn string(w: *Writer, s: []const u8) void {
        w.sep();
        writeString(&w.out, s);
    }

    pub fn int(w: *Writer, n: i64) void {
        w.sep();
        writeInt(&w.out, n);
    }

    pub fn boolean(w: *Writer, b: bool) void {
        w.sep();
        w.out.appendSlice(if (b) "true" else "false");
    }

    pub fn nul(w: *Writer) void {
        w.sep();
        w.out.appendSlice("null");
    }

    /// Already-serialised JSON.
    pub fn raw(w: *Writer, json: []const u8) void {
        w.sep();
        w.out.appendSlice(json);
    }

    pub fn value(w: *Writer, v: Value) void {
        switch (v) {
            .null => w.nul(),
            .bool => |b| w.boolean(b),
            .number => |n| w.raw(n),
            .string => |s| w.string(s),
            .array => |items| {
                w.beginArray();
                for (items) |item| w.value(item);
                w.endArray();
            },
            .object => |members| {
                w.beginObject();
                for (members) |m| {
                    w.key(m.key);
                    w.value(m.value);
                }
                w.endObject();
            },
        }
    }

    pub fn fieldString(w: *Writer, k: []const u8, s: []const u8) void {
        w.key(k);
        w.string(s);
    }

    pub fn fieldInt(w: *Writer, k: []const u8, n: i64) void {
        w.key(k);
        w.int(n);
    }

    pub fn fieldBool(w: *Writer, k: []const u8, b: bool) void {
        w.key(k);
        w.boolean(b);
    }

    /// A string field, or `null` when absent.
    pub fn fieldOptString(w: *Writer, k: []const u8, s: ?[]const u8) void {
        w.key(k);
        if (s) |x| w.string(x) else w.nul();
    }

    pub fn bytes(w: *const Writer) []const u8 {
        return w.out.items();
    }
};

const hex_lower = "0123456789abcdef";

fn escapeUnit(out: *mem.Bytes, u: u21) void {
    const e = [6]u8{ '\\', 'u', hex_lower[(u >> 12) & 15], hex_lower[(u >> 8) & 15], hex_lower[(u >> 4) & 15], hex_lower[u & 15] };
    out.appendSlice(&e);
}

/// A JSON string literal, ASCII only: control characters, DEL and every
/// non-ASCII code point escaped (astral ones as surrogate pairs).
pub fn writeString(out: *mem.Bytes, s: []const u8) void {
    // Most strings need no escaping; reserve for that case up front.
    out.ensureUnused(s.len + 2);
    out.append('"');
    var i: usize = 0;
    while (i < s.len) {
        const c = s[i];
        if (c >= 0x20 and c < 0x7f) {
            // Copy the run of plain characters in one go.
            const j = scan.jsonPlainEnd(s, i);
            if (j > i) {
                out.appendSlice(s[i..j]);
                i = j;
                continue;
            }
            out.append('\\');
            out.append(c);
            i += 1;
            continue;
        }
        switch (c) {
            '\n' => out.appendSlice("\\n"),
            '\r' => out.appendSlice("\\r"),
            '\t' => out.appendSlice("\\t"),
            8 => out.appendSlice("\\b"),
            12 => out.appendSlice("\\f"),
            else => {
                if (c < 0x80) {
                    escapeUnit(out, c);
                } else {
                    const d = utf8.decode(s, i);
                    i += d.len;
                    if (d.cp >= 0x10000) {
                        const v = d.cp - 0x10000;
                        escapeUnit(out, 0xD800 + (v >> 10));
                        escapeUnit(out, 0xDC00 + (v & 0x3FF));
                    } else escapeUnit(out, d.cp);
                    continue;
                }
            },
        }
        i += 1;
    }
    out.append('"');
}

pub fn writeInt(out: *mem.Bytes, n: i64) void {
    var buf: [24]u8 = undefined;
    out.appendSlice(formatInt(&buf, n));
}

pub fn formatInt(buf: *[24]u8, n: i64) []const u8 {
    var i: usize = buf.len;
    var v: u64 = if (n < 0) @intCast(-(n + 1)) else @intCast(n);
    if (n < 0) v += 1;
    while (true) {
        i -= 1;
        buf[i] = @intCast('0' + v % 10);
        v /= 10;
        if (v == 0) break;
    }
    if (n < 0) {
        i -= 1;
        buf[i] = '-';
    }
    return buf[i..];
}
