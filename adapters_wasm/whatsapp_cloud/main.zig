//! WhatsApp Business Cloud API (Meta Graph API).
//!
//! Request: `POST https://graph.facebook.com/{version}/{phone_number_id}/messages`
//! with a Bearer access token and a JSON body, a text message or, when the
//! message names a template, a template message.
//! Callbacks: the `messages` webhook; `statuses` (sent, delivered, read,
//! failed) become receipts, and text `messages` the user sent are passed on as
//! `inbound` (a STOP reply feeds the suppression list). The body is signed with `X-Hub-Signature-256`
//! (`sha256=` + hex HMAC-SHA256 of the raw body, keyed with the app secret).

const h = @import("hermes");
const abi = h.abi;
const enc = h.enc;
const eql = h.json.eql;

pub const manifest = h.Manifest{
    .name = "whatsapp_cloud",
    .version = "1.1.0",
    .channels = &.{"whatsapp"},
    .allowed_hosts = &.{"graph.facebook.com"},
    .credentials = &.{ "access_token", "app_secret", "webhook_verify_token" },
    .callback_auth = "hub_signature_256",
};

const default_base = "https://graph.facebook.com";
const default_version = "v23.0";

fn writeTemplate(b: *h.Writer, t: h.Value) h.Error!void {
    b.key("template");
    b.beginObject();
    b.fieldString("name", try abi.need(t, "message.template", "name"));
    b.key("language");
    if (t.obj("language")) |lang| {
        b.value(lang);
    } else {
        b.beginObject();
        b.fieldString("code", t.text("language") orelse "en_US");
        b.endObject();
    }
    if (t.arr("components")) |components| {
        b.key("components");
        b.value(.{ .array = components });
    } else if (t.arr("parameters")) |params| {
        // Plain values fill the body's {{1}}, {{2}}, ... placeholders.
        b.key("components");
        b.beginArray();
        b.beginObject();
        b.fieldString("type", "body");
        b.key("parameters");
        b.beginArray();
        for (params) |p| {
            b.beginObject();
            b.fieldString("type", "text");
            b.key("text");
            switch (p) {
                .string => |s| b.string(s),
                .number => |n| b.string(n),
                else => return abi.badInput("message.template.parameters", "must be strings or numbers"),
            }
            b.endObject();
        }
        b.endArray();
        b.endObject();
        b.endArray();
    }
    b.endObject();
}

pub fn buildRequest(in: h.Value, w: *h.Writer) h.Error!void {
    const msg = try abi.section(in, "message");
    const creds = try abi.section(in, "credentials");
    const config = in.obj("config") orelse h.Value{ .object = &.{} };
    const token = try abi.need(creds, "credentials", "access_token");
    const phone_number_id = try abi.need(config, "config", "phone_number_id");
    const to = try abi.need(msg, "message", "to");

    var b = h.Writer{};
    b.beginObject();
    b.fieldString("messaging_product", "whatsapp");
    b.fieldString("recipient_type", "individual");
    b.fieldString("to", to);
    if (msg.obj("template")) |t| {
        b.fieldString("type", "template");
        try writeTemplate(&b, t);
    } else {
        b.fieldString("type", "text");
        b.key("text");
        b.beginObject();
        b.fieldBool("preview_url", config.boolean("preview_url") orelse false);
        b.fieldString("body", try abi.need(msg, "message", "body"));
        b.endObject();
    }
    b.endObject();

    const url = h.concat(&.{
        abi.baseUrl(config, default_base),        "/",
        config.text("api_version") orelse default_version, "/",
        enc.uriEscaped(phone_number_id, false),   "/messages",
    });
    abi.writeRequest(w, "POST", url, &.{
        .{ "Authorization", h.concat(&.{ "Bearer ", token }) },
        .{ "Content-Type", "application/json" },
    }, b.bytes());
}

fn inList(list: []const i64, x: i64) bool {
    for (list) |y| {
        if (x == y) return true;
    }
    return false;
}

// Graph API / Cloud API error codes (the `code` of the error object).
const auth_codes = [_]i64{ 0, 3, 10, 190 };
const rate_codes = [_]i64{ 4, 80007, 130429, 131048, 131056 };
const unavailable_codes = [_]i64{ 1, 2, 131000, 131016, 133004 };
const recipient_codes = [_]i64{
    131026, // message undeliverable (not a WhatsApp user, old app, ...)
    131030, // recipient not in the allowed list (test numbers)
    131021, // recipient is the sender
};

pub fn parseResponse(in: h.Value, w: *h.Writer) h.Error!void {
    const status = try abi.status(in);
    const body = abi.jsonBody(in) orelse h.Value{ .object = &.{} };
    if (status >= 200 and status < 300) {
        if (body.arr("messages")) |msgs| {
            if (msgs.len > 0) {
                if (msgs[0].text("id")) |id| return abi.writeAccepted(w, .{ .provider_message_id = id });
            }
        }
        return abi.writeRetryable(w, .{ .code = "provider.unavailable", .message = "2xx response without a message id" });
    }
    const err = body.obj("error") orelse h.Value{ .object = &.{} };
    const code = err.int("code");
    var details = err.text("message") orelse in.str("body");
    if (err.obj("error_data")) |d| {
        if (d.text("details")) |s| details = h.concat(&.{ details orelse "", ": ", s });
    }
    var f = abi.Failed{ .code = "", .provider_code = err.scalarText("code"), .message = details, .retry_after_ms = abi.retryAfterMs(in) };
    if (status == 429 or (code != null and inList(&rate_codes, code.?))) {
        f.code = "provider.rate_limited";
        return abi.writeRetryable(w, f);
    }
    if (code != null and inList(&unavailable_codes, code.?)) {
        f.code = "provider.unavailable";
        return abi.writeRetryable(w, f);
    }
    f.retry_after_ms = null;
    if (status == 401 or status == 403 or (code != null and (inList(&auth_codes, code.?) or (code.? >= 200 and code.? <= 299)))) {
        f.code = "provider.auth_failed";
    } else if (code != null and inList(&recipient_codes, code.?)) {
        f.code = "provider.invalid_recipient";
    } else if (status >= 500) {
        f.code = "provider.unavailable";
        f.retry_after_ms = abi.retryAfterMs(in);
        return abi.writeRetryable(w, f);
    } else {
        f.code = "provider.rejected";
    }
    abi.writeRejected(w, f);
}

fn mapStatus(s: []const u8) ?[]const u8 {
    if (eql(s, "sent")) return "sent";
    if (eql(s, "delivered")) return "delivered";
    if (eql(s, "read")) return "read";
    if (eql(s, "failed")) return "failed";
    return null;
}

fn verified(in: h.Value) bool {
    const creds = in.obj("credentials") orelse return false;
    const secret = creds.text("app_secret") orelse return false;
    const given = abi.header(in, "x-hub-signature-256") orelse return false;
    const sig = abi.trim(given);
    if (!enc.startsWith(sig, "sha256=")) return false;
    const want = enc.hex(h.crypto.hmacSha256(secret, in.str("body") orelse ""));
    // Hex digits compared case-insensitively, in constant time.
    const got = sig["sha256=".len..];
    if (got.len != want.len) return false;
    var d: u8 = 0;
    for (got, want) |x, y| d |= enc.lower(x) ^ y;
    return d == 0;
}

/// Meta's subscription handshake: `GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..`
/// must be answered with the challenge when the token is the app's.
fn handshake(in: h.Value, w: *h.Writer) bool {
    if (!eql(in.str("method") orelse "", "GET")) return false;
    const u = h.url.parse(in.str("url") orelse "") orelse return false;
    const q = enc.parseForm(u.query);
    if (!eql(enc.formGet(q, "hub.mode") orelse "", "subscribe")) return false;
    const creds = in.obj("credentials") orelse h.Value{ .object = &.{} };
    const want = creds.text("webhook_verify_token") orelse return false;
    const ok = enc.timingSafeEql(enc.formGet(q, "hub.verify_token") orelse "", want);
    w.beginObject();
    w.fieldBool("verified", ok);
    w.key("receipts");
    w.beginArray();
    w.endArray();
    if (ok) {
        w.key("reply");
        w.beginObject();
        w.fieldInt("status", 200);
        w.fieldString("content_type", "text/plain");
        w.fieldString("body", enc.formGet(q, "hub.challenge") orelse "");
        w.endObject();
    }
    w.endObject();
    return true;
}

pub fn parseCallback(in: h.Value, w: *h.Writer) h.Error!void {
    if (handshake(in, w)) return;
    if (!verified(in)) return abi.writeCallback(w, false, &.{});
    const body = abi.jsonBody(in) orelse return abi.badInput("body", "must be JSON");
    var receipts = h.mem.List(abi.Receipt){};
    var inbound = h.mem.List(Inbound){};
    for (body.arr("entry") orelse &.{}) |entry| {
        for (entry.arr("changes") orelse &.{}) |change| {
            const value = change.obj("value") orelse continue;
            const metadata = value.obj("metadata") orelse h.Value{ .object = &.{} };
            for (value.arr("messages") orelse &.{}) |m| {
                // Text replies only: a STOP is text; media and reactions carry no keyword.
                if (!h.json.eql(m.str("type") orelse "", "text")) continue;
                const text = m.obj("text") orelse continue;
                inbound.append(.{
                    .id = m.text("id") orelse continue,
                    .from = m.text("from") orelse continue,
                    .to = metadata.str("display_phone_number") orelse "",
                    .body = text.str("body") orelse "",
                });
            }
            for (value.arr("statuses") orelse &.{}) |st| {
                const id = st.text("id") orelse continue;
                const status = mapStatus(st.str("status") orelse "") orelse continue;
                var r = abi.Receipt{ .provider_message_id = id, .status = status };
                if (st.scalarText("timestamp")) |t| {
                    if (h.json.parseInt(t)) |secs| r.timestamp = secs * 1000;
                }
                if (st.arr("errors")) |errs| {
                    if (errs.len > 0) r.provider_error_code = errs[0].scalarText("code");
                }
                receipts.append(r);
            }
        }
    }
    if (inbound.items().len == 0) return abi.writeCallback(w, true, receipts.items());
    w.beginObject();
    w.fieldBool("verified", true);
    w.key("receipts");
    w.beginArray();
    for (receipts.items()) |r| abi.writeReceipt(w, r);
    w.endArray();
    w.key("inbound");
    w.beginArray();
    for (inbound.items()) |m| {
        w.beginObject();
        w.fieldString("provider_message_id", m.id);
        w.fieldString("channel", "whatsapp");
        w.fieldString("from", plus(m.from));
        w.fieldString("to", plus(m.to));
        w.fieldString("body", m.body);
        w.endObject();
    }
    w.endArray();
    w.endObject();
}

/// A text message the user sent to the business number.
const Inbound = struct { id: []const u8, from: []const u8, to: []const u8, body: []const u8 };

/// WhatsApp numbers (`wa_id`, `display_phone_number`) come without the `+` of E.164.
fn plus(number: []const u8) []const u8 {
    if (number.len == 0 or number[0] == '+') return number;
    return h.concat(&.{ "+", number });
}

comptime {
    h.exportAdapter(@This());
}
