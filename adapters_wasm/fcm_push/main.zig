//! Firebase Cloud Messaging, HTTP v1 API (`projects/{id}/messages:send`).
//!
//! The request carries an OAuth 2.0 bearer token that the host mints from the
//! account's service-account key (the manifest declares the need); the key
//! never enters the sandbox. FCM sends no delivery receipts to servers, so
//! `parse_callback` has nothing to report.
//!
//! `message.to` is an FCM registration token, or a Firebase Installation ID
//! when `message.push_kind` is `"fid"` (the v1 API's `fid` target).

const h = @import("hermes");
const abi = h.abi;
const enc = h.enc;
const eql = h.json.eql;

pub const manifest = h.Manifest{
    .name = "fcm_push",
    .version = "1.0.0",
    .channels = &.{"push"},
    .allowed_hosts = &.{"fcm.googleapis.com"},
    .credentials = &.{"service_account"},
    .callback_auth = "none",
    .token = .{ .kind = "google_oauth", .scopes = &.{"https://www.googleapis.com/auth/firebase.messaging"} },
};

const default_base = "https://fcm.googleapis.com";

pub fn buildRequest(in: h.Value, w: *h.Writer) h.Error!void {
    const msg = try abi.section(in, "message");
    const config = in.obj("config") orelse h.Value{ .object = &.{} };
    const token = in.text("token") orelse return abi.badInput("token", "(an OAuth access token minted by the host) is required");
    const project = try abi.need(config, "config", "project_id");
    const device = try abi.need(msg, "message", "to");
    const title = msg.text("title") orelse msg.text("subject");
    const text = msg.text("body");

    var b = h.Writer{};
    b.beginObject();
    b.key("message");
    b.beginObject();
    const kind = msg.text("push_kind") orelse "token";
    if (eql(kind, "fid")) {
        b.fieldString("fid", device);
    } else if (eql(kind, "token")) {
        b.fieldString("token", device);
    } else return abi.badInput("message.push_kind", "must be \"token\" or \"fid\"");
    if (title != null or text != null) {
        b.key("notification");
        b.beginObject();
        if (title) |t| b.fieldString("title", t);
        if (text) |t| b.fieldString("body", t);
        b.endObject();
    }
    if (msg.obj("data")) |data| {
        if (data.object.len > 0) {
            b.key("data");
            b.beginObject();
            for (data.object) |m| {
                // FCM data is a map of strings to strings.
                if (m.value != .string) return abi.badInput(h.concat(&.{ "message.data.", m.key }), "must be a string");
                b.fieldString(m.key, m.value.string);
            }
            b.endObject();
        }
    }
    if (config.text("android_priority")) |p| {
        b.key("android");
        b.beginObject();
        b.fieldString("priority", p);
        b.endObject();
    }
    b.endObject();
    b.endObject();

    const url = h.concat(&.{ abi.baseUrl(config, default_base), "/v1/projects/", enc.uriEscaped(project, false), "/messages:send" });
    abi.writeRequest(w, "POST", url, &.{
        .{ "Authorization", h.concat(&.{ "Bearer ", token }) },
        .{ "Content-Type", "application/json" },
        .{ "X-GOOG-API-FORMAT-VERSION", "2" },
    }, b.bytes());
}

/// The FCM error code: the `FcmError` detail's `errorCode`, else the
/// canonical `status`, else one derived from the HTTP status (the order the
/// Admin SDK uses).
fn errorCode(status: i64, err: ?h.Value) []const u8 {
    if (err) |e| {
        for (e.arr("details") orelse &.{}) |d| {
            if (eql(d.str("@type") orelse "", "type.googleapis.com/google.firebase.fcm.v1.FcmError")) {
                if (d.text("errorCode")) |c| return c;
            }
        }
        if (e.text("status")) |s| return s;
    }
    return switch (status) {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408, 504 => "DEADLINE_EXCEEDED",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        503 => "UNAVAILABLE",
        else => "UNKNOWN",
    };
}

fn contains(hay: []const u8, needle: []const u8) bool {
    if (needle.len > hay.len) return false;
    var i: usize = 0;
    while (i + needle.len <= hay.len) : (i += 1) {
        if (eql(hay[i .. i + needle.len], needle)) return true;
    }
    return false;
}

pub fn parseResponse(in: h.Value, w: *h.Writer) h.Error!void {
    const status = try abi.status(in);
    const body = abi.jsonBody(in) orelse h.Value{ .object = &.{} };
    if (status >= 200 and status < 300) {
        const name = body.text("name") orelse
            return abi.writeRetryable(w, .{ .code = "provider.unavailable", .message = "2xx response without a message name" });
        return abi.writeAccepted(w, .{ .provider_message_id = name });
    }
    const err = body.obj("error");
    const code = errorCode(status, err);
    const message = if (err) |e| e.text("message") else null;
    var f = abi.Failed{ .code = "", .provider_code = code, .message = message orelse in.str("body"), .retry_after_ms = abi.retryAfterMs(in) };
    if (eql(code, "QUOTA_EXCEEDED") or eql(code, "RESOURCE_EXHAUSTED") or status == 429) {
        // FCM asks for exponential backoff starting at one minute.
        f.code = "provider.rate_limited";
        if (f.retry_after_ms == null) f.retry_after_ms = 60_000;
        return abi.writeRetryable(w, f);
    }
    if (eql(code, "UNAVAILABLE") or eql(code, "INTERNAL") or eql(code, "DEADLINE_EXCEEDED") or status >= 500) {
        f.code = "provider.unavailable";
        return abi.writeRetryable(w, f);
    }
    f.retry_after_ms = null;
    if (eql(code, "UNREGISTERED") or eql(code, "SENDER_ID_MISMATCH") or
        (eql(code, "INVALID_ARGUMENT") and message != null and contains(message.?, "registration token")))
    {
        f.code = "provider.invalid_recipient";
    } else if (eql(code, "THIRD_PARTY_AUTH_ERROR") or eql(code, "APNS_AUTH_ERROR") or
        eql(code, "UNAUTHENTICATED") or eql(code, "PERMISSION_DENIED") or status == 401 or status == 403)
    {
        f.code = "provider.auth_failed";
    } else {
        f.code = "provider.rejected";
    }
    abi.writeRejected(w, f);
}

/// FCM does not call back: nothing is ever verified or reported.
pub fn parseCallback(_: h.Value, w: *h.Writer) h.Error!void {
    abi.writeCallback(w, false, &.{});
}

comptime {
    h.exportAdapter(@This());
}
