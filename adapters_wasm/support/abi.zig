//! The Hermes adapter ABI v1 (see ../ABI.md): export wiring and the shapes of
//! the three functions' results.
//!
//! An adapter is a Zig file with `pub const manifest`, `buildRequest`,
//! `parseResponse` and `parseCallback`, and one line:
//! `comptime { hermes.exportAdapter(@This()); }`.

const mem = @import("mem.zig");
const json = @import("json.zig");
const enc = @import("enc.zig");

pub const abi_version: i32 = 1;

pub const Value = json.Value;
pub const Writer = json.Writer;

pub const Error = error{Failed};

pub const Failure = struct { code: []const u8, message: []const u8 };

var failure: Failure = .{ .code = "adapter.bad_output", .message = "" };

/// Record why the call failed; the wrapper turns it into `{"error": ...}`.
/// `code` must be a code from the catalogue (hermes_core_rs/src/errors.rs).
pub fn fail(code: []const u8, message: []const u8) Error {
    failure = .{ .code = code, .message = message };
    return error.Failed;
}

/// `adapter.bad_input`, naming the missing or malformed field.
pub fn badInput(field: []const u8, problem: []const u8) Error {
    return fail("adapter.bad_input", enc.concat(&.{ field, " ", problem }));
}

pub const Token = struct { kind: []const u8, scopes: []const []const u8 };

pub const Manifest = struct {
    name: []const u8,
    version: []const u8,
    channels: []const []const u8,
    allowed_hosts: []const []const u8,
    credentials: []const []const u8,
    callback_auth: []const u8,
    token: ?Token = null,
};

fn writeManifest(w: *Writer, m: Manifest) void {
    w.beginObject();
    w.fieldString("name", m.name);
    w.fieldString("version", m.version);
    w.fieldInt("abi", abi_version);
    w.key("channels");
    writeStrings(w, m.channels);
    w.key("allowed_hosts");
    writeStrings(w, m.allowed_hosts);
    w.key("credentials");
    writeStrings(w, m.credentials);
    w.fieldString("callback_auth", m.callback_auth);
    w.key("token");
    if (m.token) |t| {
        w.beginObject();
        w.fieldString("kind", t.kind);
        w.key("scopes");
        writeStrings(w, t.scopes);
        w.endObject();
    } else w.nul();
    w.endObject();
}

fn writeStrings(w: *Writer, items: []const []const u8) void {
    w.beginArray();
    for (items) |s| w.string(s);
    w.endArray();
}

fn pack(out: []const u8) i64 {
    const p: u64 = @intFromPtr(out.ptr);
    return @bitCast((p << 32) | @as(u64, out.len));
}

fn errorOutput(f: Failure) i64 {
    var w = Writer{};
    w.beginObject();
    w.key("error");
    w.beginObject();
    w.fieldString("code", f.code);
    w.fieldString("message", f.message);
    w.endObject();
    w.endObject();
    return pack(w.bytes());
}

const Handler = fn (in: Value, w: *Writer) Error!void;

fn run(comptime handler: Handler, ptr: i32, len: i32) i64 {
    if (len < 0) return errorOutput(.{ .code = "adapter.bad_input", .message = "negative input length" });
    const base: [*]const u8 = @ptrFromInt(@as(usize, @as(u32, @bitCast(ptr))));
    const src = base[0..@as(usize, @intCast(len))];
    const in = json.parse(src) catch
        return errorOutput(.{ .code = "adapter.bad_input", .message = "input is not valid JSON (or is nested more than 64 levels deep)" });
    if (in != .object) return errorOutput(.{ .code = "adapter.bad_input", .message = "input must be a JSON object" });
    var w = Writer{};
    w.beginObject();
    w.key("ok");
    handler(in, &w) catch return errorOutput(failure);
    w.endObject();
    return pack(w.bytes());
}

pub fn exportAdapter(comptime A: type) void {
    const S = struct {
        fn alloc(len: i32) callconv(.c) i32 {
            if (len < 0) @trap();
            const p = mem.alloc(@intCast(len));
            return @bitCast(@as(u32, @intCast(@intFromPtr(p.ptr))));
        }
        fn version() callconv(.c) i32 {
            return abi_version;
        }
        fn manifest() callconv(.c) i64 {
            var w = Writer{};
            w.beginObject();
            w.key("ok");
            writeManifest(&w, A.manifest);
            w.endObject();
            return pack(w.bytes());
        }
        fn buildRequest(ptr: i32, len: i32) callconv(.c) i64 {
            return run(A.buildRequest, ptr, len);
        }
        fn parseResponse(ptr: i32, len: i32) callconv(.c) i64 {
            return run(A.parseResponse, ptr, len);
        }
        fn parseCallback(ptr: i32, len: i32) callconv(.c) i64 {
            return run(A.parseCallback, ptr, len);
        }
    };
    @export(&S.alloc, .{ .name = "hermes_alloc" });
    @export(&S.version, .{ .name = "hermes_abi_version" });
    @export(&S.manifest, .{ .name = "hermes_manifest" });
    @export(&S.buildRequest, .{ .name = "hermes_build_request" });
    @export(&S.parseResponse, .{ .name = "hermes_parse_response" });
    @export(&S.parseCallback, .{ .name = "hermes_parse_callback" });
}

// ---- building results -------------------------------------------------------

pub const Header = [2][]const u8;

/// `{"method","url","headers","body"}`, the build_request result.
pub fn writeRequest(w: *Writer, method: []const u8, url: []const u8, headers: []const Header, body: []const u8) void {
    w.beginObject();
    w.fieldString("method", method);
    w.fieldString("url", url);
    w.key("headers");
    w.beginArray();
    for (headers) |h| {
        w.beginArray();
        w.string(h[0]);
        w.string(h[1]);
        w.endArray();
    }
    w.endArray();
    w.fieldString("body", body);
    w.endObject();
}

pub const Accepted = struct {
    provider_message_id: []const u8,
    segments: ?i64 = null,
    /// Provider-reported price as decimal text with its currency, when given.
    cost: ?[]const u8 = null,
    currency: ?[]const u8 = null,
};

pub fn writeAccepted(w: *Writer, a: Accepted) void {
    w.beginObject();
    w.fieldString("outcome", "accepted");
    w.fieldString("provider_message_id", a.provider_message_id);
    if (a.segments) |s| w.fieldInt("segments", s);
    if (a.cost) |c| {
        w.key("cost");
        w.beginObject();
        w.fieldString("amount", c);
        if (a.currency) |cur| w.fieldString("currency", cur);
        w.endObject();
    }
    w.endObject();
}

pub const Failed = struct {
    /// A catalogue code (`provider.*`).
    code: []const u8,
    provider_code: ?[]const u8 = null,
    message: ?[]const u8 = null,
    retry_after_ms: ?i64 = null,
};

/// A permanent failure: retrying the same request cannot succeed.
pub fn writeRejected(w: *Writer, f: Failed) void {
    writeFailed(w, "rejected", f);
}

/// A transient failure: the same request may succeed later.
pub fn writeRetryable(w: *Writer, f: Failed) void {
    writeFailed(w, "retryable", f);
}

fn writeFailed(w: *Writer, outcome: []const u8, f: Failed) void {
    w.beginObject();
    w.fieldString("outcome", outcome);
    w.fieldString("code", f.code);
    if (f.provider_code) |c| w.fieldString("provider_code", c);
    if (f.message) |m| w.fieldString("message", m);
    if (f.retry_after_ms) |r| w.fieldInt("retry_after_ms", r);
    w.endObject();
}

pub const Receipt = struct {
    provider_message_id: []const u8,
    status: []const u8,
    provider_error_code: ?[]const u8 = null,
    timestamp: ?i64 = null,
};

pub fn writeReceipt(w: *Writer, r: Receipt) void {
    w.beginObject();
    w.fieldString("provider_message_id", r.provider_message_id);
    w.fieldString("status", r.status);
    if (r.provider_error_code) |c| w.fieldString("provider_error_code", c);
    if (r.timestamp) |t| w.fieldInt("timestamp", t);
    w.endObject();
}

/// A callback result with its receipts.
pub fn writeCallback(w: *Writer, verified: bool, receipts: []const Receipt) void {
    w.beginObject();
    w.fieldBool("verified", verified);
    w.key("receipts");
    w.beginArray();
    for (receipts) |r| writeReceipt(w, r);
    w.endArray();
    w.endObject();
}

// ---- reading inputs ---------------------------------------------------------

/// An object member of the input that must be present.
pub fn section(in: Value, key: []const u8) Error!Value {
    return in.obj(key) orelse badInput(key, "must be an object");
}

/// A required non-empty string member; the error names `where.key`.
pub fn need(v: Value, where: []const u8, key: []const u8) Error![]const u8 {
    return v.text(key) orelse badInput(enc.concat(&.{ where, ".", key }), "is required");
}

/// A header value from `[[name, value], ...]`, matched case-insensitively.
pub fn header(in: Value, name: []const u8) ?[]const u8 {
    const hs = in.arr("headers") orelse return null;
    for (hs) |h| {
        if (h != .array or h.array.len != 2) continue;
        const k = h.array[0];
        const v = h.array[1];
        if (k == .string and v == .string and enc.eqlIgnoreCase(k.string, name)) return v.string;
    }
    return null;
}

/// `Retry-After` in delta-seconds, as milliseconds.
pub fn retryAfterMs(in: Value) ?i64 {
    const v = header(in, "retry-after") orelse return null;
    const s = json.parseInt(trim(v)) orelse return null;
    return s * 1000;
}

pub fn trim(s: []const u8) []const u8 {
    var a: usize = 0;
    var b: usize = s.len;
    while (a < b and (s[a] == ' ' or s[a] == '\t')) a += 1;
    while (b > a and (s[b - 1] == ' ' or s[b - 1] == '\t')) b -= 1;
    return s[a..b];
}

/// The HTTP status of a parse_response input.
pub fn status(in: Value) Error!i64 {
    return in.int("status") orelse badInput("status", "must be an integer");
}

/// The response or callback body parsed as JSON, when it is JSON.
pub fn jsonBody(in: Value) ?Value {
    const b = in.str("body") orelse return null;
    return json.parse(b) catch null;
}

/// `config.base_url` without a trailing slash, or `default`.
pub fn baseUrl(config: Value, default: []const u8) []const u8 {
    const b = config.text("base_url") orelse return default;
    return if (b[b.len - 1] == '/') b[0 .. b.len - 1] else b;
}
