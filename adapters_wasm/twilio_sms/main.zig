//! Twilio Programmable Messaging (SMS).
//!
//! Request: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, a form body
//! with the fields in the order the official SDK sends them, HTTP Basic auth
//! with the account SID (or an API key) and the auth token.
//! Callbacks: the StatusCallback form POST, signed with `X-Twilio-Signature`
//! (HMAC-SHA1 of the URL followed by the sorted parameters, keyed with the auth
//! token; HMAC-SHA256 with a shared key when
//! `X-Twilio-Webhooks-Signature-Settings` says so). The incoming-message webhook,
//! signed the same way, is passed on as `inbound` (STOP replies feed the
//! suppression list).

const h = @import("hermes");
const abi = h.abi;
const enc = h.enc;

pub const manifest = h.Manifest{
    .name = "twilio_sms",
    .version = "1.1.0",
    .channels = &.{"sms"},
    .allowed_hosts = &.{"api.twilio.com"},
    .credentials = &.{ "account_sid", "auth_token", "api_key_sid", "api_key_secret", "webhook_shared_key_secret" },
    .callback_auth = "twilio_signature",
};

const default_base = "https://api.twilio.com";

pub fn buildRequest(in: h.Value, w: *h.Writer) h.Error!void {
    const msg = try abi.section(in, "message");
    const creds = try abi.section(in, "credentials");
    const config = in.obj("config") orelse h.Value{ .object = &.{} };
    const sid = try abi.need(creds, "credentials", "account_sid");
    // An API key authenticates in place of the account's own credentials.
    const user = creds.text("api_key_sid") orelse sid;
    const secret = if (creds.text("api_key_sid") != null)
        try abi.need(creds, "credentials", "api_key_secret")
    else
        try abi.need(creds, "credentials", "auth_token");
    const to = try abi.need(msg, "message", "to");
    const body = try abi.need(msg, "message", "body");
    const from = config.text("from");
    const service = config.text("messaging_service_sid");
    if (from == null and service == null)
        return h.badInput("config.from or config.messaging_service_sid", "is required");

    var form = enc.Form{};
    form.add("To", to);
    if (config.text("callback_url")) |cb| form.add("StatusCallback", cb);
    if (config.int("validity_period")) |vp| form.add("ValidityPeriod", enc.intText(vp));
    if (from) |f| form.add("From", f);
    if (service) |s| form.add("MessagingServiceSid", s);
    form.add("Body", body);

    const url = h.concat(&.{ abi.baseUrl(config, default_base), "/2010-04-01/Accounts/", enc.uriEscaped(sid, false), "/Messages.json" });
    abi.writeRequest(w, "POST", url, &.{
        .{ "Authorization", h.concat(&.{ "Basic ", enc.base64(h.concat(&.{ user, ":", secret })) }) },
        .{ "Content-Type", "application/x-www-form-urlencoded" },
        .{ "Accept", "application/json" },
        .{ "Accept-Charset", "utf-8" },
    }, form.bytes());
}

/// Twilio error codes that mean the recipient cannot be reached at all.
const invalid_recipient_codes = [_]i64{
    21211, // invalid 'To' phone number
    21217, // phone number does not appear to be valid
    21401, // invalid phone number
    21407, // this phone number type does not support SMS
    21421, // phone number is invalid
    21612, // cannot route to this number
    21614, // 'To' number is not a valid mobile number
};

const auth_codes = [_]i64{ 20003, 20005, 20006 };
const rate_codes = [_]i64{ 20429, 14107, 30001 };
const unavailable_codes = [_]i64{ 20500, 20503 };

fn contains(list: []const i64, x: i64) bool {
    for (list) |y| {
        if (x == y) return true;
    }
    return false;
}

pub fn parseResponse(in: h.Value, w: *h.Writer) h.Error!void {
    const status = try abi.status(in);
    const body = abi.jsonBody(in) orelse h.Value{ .object = &.{} };
    if (status >= 200 and status < 300) {
        const sid = body.text("sid") orelse
            return abi.writeRetryable(w, .{ .code = "provider.unavailable", .message = "2xx response without a message sid" });
        var segments: ?i64 = null;
        if (body.scalarText("num_segments")) |n| segments = h.json.parseInt(n);
        if (segments != null and segments.? == 0) segments = null; // Messaging Services report 0 until sent
        return abi.writeAccepted(w, .{
            .provider_message_id = sid,
            .segments = segments,
            .cost = body.text("price"),
            .currency = body.text("price_unit"),
        });
    }
    const code = body.int("code");
    const f = abi.Failed{
        .code = "",
        .provider_code = body.scalarText("code"),
        .message = body.text("message") orelse in.str("body"),
        .retry_after_ms = abi.retryAfterMs(in),
    };
    var out = f;
    if (status == 429 or (code != null and contains(&rate_codes, code.?))) {
        out.code = "provider.rate_limited";
        return abi.writeRetryable(w, out);
    }
    if (status >= 500 or (code != null and contains(&unavailable_codes, code.?))) {
        out.code = "provider.unavailable";
        return abi.writeRetryable(w, out);
    }
    out.retry_after_ms = null;
    if (status == 401 or status == 403 or (code != null and contains(&auth_codes, code.?))) {
        out.code = "provider.auth_failed";
    } else if (code != null and contains(&invalid_recipient_codes, code.?)) {
        out.code = "provider.invalid_recipient";
    } else {
        out.code = "provider.rejected";
    }
    abi.writeRejected(w, out);
}

fn mapStatus(s: []const u8) ?[]const u8 {
    const eql = h.json.eql;
    if (eql(s, "delivered")) return "delivered";
    if (eql(s, "undelivered")) return "undelivered";
    if (eql(s, "failed") or eql(s, "canceled")) return "failed";
    if (eql(s, "sent") or eql(s, "sending")) return "sent";
    if (eql(s, "read")) return "read";
    if (eql(s, "accepted") or eql(s, "queued") or eql(s, "scheduled")) return "accepted";
    return null;
}

fn signature(key: []const u8, sha256: bool, url: []const u8, pairs: []const enc.Pair) []const u8 {
    var s = h.mem.Bytes{};
    s.appendSlice(url);
    for (pairs, 0..) |p, i| {
        // Identical pairs count once (the SDK signs sorted(set(values))).
        if (i > 0 and h.json.eql(p.key, pairs[i - 1].key) and h.json.eql(p.value, pairs[i - 1].value)) continue;
        s.appendSlice(p.key);
        s.appendSlice(p.value);
    }
    const mac = if (sha256) h.crypto.hmacSha256(key, s.items()) else h.crypto.hmacSha1(key, s.items());
    return enc.base64(mac);
}

/// The URL with and without its port: Twilio signs either form.
fn urlVariants(raw: []const u8) [2][]const u8 {
    const u = h.url.parse(raw) orelse return .{ raw, raw };
    const start = @intFromPtr(u.authority.ptr) - @intFromPtr(raw.ptr);
    const before = raw[0 .. start + u.authority.len - (if (u.port) |p| p.len + 1 else 0)];
    const after = raw[start + u.authority.len ..];
    if (u.port != null) return .{ raw, h.concat(&.{ before, after }) };
    const port = if (h.url.isScheme(u, "https")) ":443" else ":80";
    return .{ raw, h.concat(&.{ before, port, after }) };
}

fn algorithm(settings: []const u8) ?[]const u8 {
    // `key=<id>,algorithm=<name>`; no algorithm means HMAC_SHA1.
    var start: usize = 0;
    var i: usize = 0;
    while (i <= settings.len) : (i += 1) {
        if (i == settings.len or settings[i] == ',') {
            const part = abi.trim(settings[start..i]);
            start = i + 1;
            if (enc.startsWith(part, "algorithm=")) {
                const v = abi.trim(part["algorithm=".len..]);
                if (v.len > 0) return v;
            }
        }
    }
    return null;
}

fn verify(in: h.Value, creds: h.Value, pairs: []const enc.Pair) bool {
    const given = abi.header(in, "x-twilio-signature") orelse return false;
    const url = in.text("url") orelse return false;
    var key: []const u8 = undefined;
    var sha256 = false;
    if (abi.header(in, "x-twilio-webhooks-signature-settings")) |settings| {
        key = creds.text("webhook_shared_key_secret") orelse return false;
        const alg = algorithm(settings) orelse "HMAC_SHA1";
        if (enc.eqlIgnoreCase(alg, "HMAC_SHA256")) {
            sha256 = true;
        } else if (!enc.eqlIgnoreCase(alg, "HMAC_SHA1")) return false;
    } else {
        key = creds.text("auth_token") orelse return false;
    }
    for (urlVariants(url)) |u| {
        if (enc.timingSafeEql(signature(key, sha256, u, pairs), abi.trim(given))) return true;
    }
    return false;
}

/// An incoming message (the number's "A message comes in" webhook): no MessageStatus,
/// SmsStatus `received`, and the sender in `From`. Passed on as `inbound`, with the
/// empty TwiML answer Twilio expects from a messaging webhook.
fn writeInbound(w: *h.Writer, sid: []const u8, pairs: []const enc.Pair) void {
    w.beginObject();
    w.fieldBool("verified", true);
    w.key("receipts");
    w.beginArray();
    w.endArray();
    w.key("inbound");
    w.beginArray();
    w.beginObject();
    w.fieldString("provider_message_id", sid);
    w.fieldString("channel", "sms");
    w.fieldString("from", enc.formGet(pairs, "From") orelse "");
    w.fieldString("to", enc.formGet(pairs, "To") orelse "");
    w.fieldString("body", enc.formGet(pairs, "Body") orelse "");
    w.endObject();
    w.endArray();
    w.key("reply");
    w.beginObject();
    w.fieldInt("status", 200);
    w.fieldString("content_type", "text/xml");
    w.fieldString("body", "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>");
    w.endObject();
    w.endObject();
}

pub fn parseCallback(in: h.Value, w: *h.Writer) h.Error!void {
    const creds = in.obj("credentials") orelse h.Value{ .object = &.{} };
    const pairs = enc.parseForm(in.str("body") orelse "");
    enc.sortPairs(pairs);
    if (!verify(in, creds, pairs)) return abi.writeCallback(w, false, &.{});
    const sid = enc.formGet(pairs, "MessageSid") orelse enc.formGet(pairs, "SmsSid") orelse
        return abi.writeCallback(w, true, &.{});
    if (enc.formGet(pairs, "MessageStatus") == null) {
        const sms_status = enc.formGet(pairs, "SmsStatus") orelse "";
        if (h.json.eql(sms_status, "received") and enc.formGet(pairs, "From") != null)
            return writeInbound(w, sid, pairs);
    }
    const raw_status = enc.formGet(pairs, "MessageStatus") orelse enc.formGet(pairs, "SmsStatus") orelse "";
    const status = mapStatus(raw_status) orelse return abi.writeCallback(w, true, &.{});
    var err = enc.formGet(pairs, "ErrorCode");
    if (err != null and err.?.len == 0) err = null;
    abi.writeCallback(w, true, &.{.{ .provider_message_id = sid, .status = status, .provider_error_code = err }});
}

comptime {
    h.exportAdapter(@This());
}
