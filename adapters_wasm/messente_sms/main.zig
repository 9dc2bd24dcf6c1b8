//! Messente Omnichannel API (`POST /v1/omnimessage`), SMS channel.
//!
//! Request: HTTP Basic auth with the API username and password, a JSON body
//! serialised as the official SDK does (member order, `", "` separators).
//! Callbacks: delivery reports POSTed as JSON to `dlr_url`, signed with
//! `X-Messente-Signature`: HMAC-SHA256 of the raw body keyed with the API
//! password (Messente's "Validating Omnichannel API callbacks"), hex.

const h = @import("hermes");
const abi = h.abi;
const enc = h.enc;
const eql = h.json.eql;

pub const manifest = h.Manifest{
    .name = "messente_sms",
    .version = "1.0.0",
    .channels = &.{"sms"},
    .allowed_hosts = &.{"api.messente.com"},
    .credentials = &.{ "username", "password" },
    .callback_auth = "messente_signature",
};

const default_base = "https://api.messente.com/v1";
pub fn buildRequest(in: h.Value, w: *h.Writer) h.Error!void {
    const msg = try abi.section(in, "message");
    const creds = try abi.section(in, "credentials");
    const config = in.obj("config") orelse h.Value{ .object = &.{} };
    const user = try abi.need(creds, "credentials", "username");
    const pass = try abi.need(creds, "credentials", "password");
    const to = try abi.need(msg, "message", "to");
    const text = try abi.need(msg, "message", "body");

    var b = h.Writer{ .spaced = true };
    b.beginObject();
    b.fieldString("to", to);
    b.key("messages");
    b.beginArray();
    b.beginObject();
    b.fieldString("text", text);
    if (config.text("sender") orelse config.text("from")) |s| b.fieldString("sender", s);
    if (config.int("validity")) |v| b.fieldInt("validity", v);
    b.fieldString("channel", "sms");
    b.endObject();
    b.endArray();
    if (config.text("callback_url")) |cb| b.fieldString("dlr_url", cb);
    b.endObject();

    const url = h.concat(&.{ abi.baseUrl(config, default_base), "/omnimessage" });
    abi.writeRequest(w, "POST", url, &.{
        .{ "Authorization", h.concat(&.{ "Basic ", enc.base64(h.concat(&.{ user, ":", pass })) }) },
        .{ "Content-Type", "application/json" },
        .{ "Accept", "application/json" },
    }, b.bytes());
}

pub fn parseResponse(in: h.Value, w: *h.Writer) h.Error!void {
    const status = try abi.status(in);
    const body = abi.jsonBody(in) orelse h.Value{ .object = &.{} };
    if (status >= 200 and status < 300) {
        if (body.arr("messages")) |msgs| {
            for (msgs) |m| {
                if (m.text("message_id")) |id| return abi.writeAccepted(w, .{ .provider_message_id = id });
            }
        }
        return abi.writeRetryable(w, .{ .code = "provider.unavailable", .message = "2xx response without a message_id" });
    }
    // {"errors": [{"title", "detail", "code": "105", "source": "payload[to]"}]}
    var first = h.Value{ .object = &.{} };
    if (body.arr("errors")) |errs| {
        if (errs.len > 0 and errs[0] == .object) first = errs[0];
    }
    const detail = first.text("detail") orelse first.text("title") orelse in.str("body");
    var f = abi.Failed{ .code = "", .provider_code = first.scalarText("code"), .message = detail, .retry_after_ms = abi.retryAfterMs(in) };
    if (status == 429) {
        f.code = "provider.rate_limited";
        return abi.writeRetryable(w, f);
    }
    if (status >= 500) {
        f.code = "provider.unavailable";
        return abi.writeRetryable(w, f);
    }
    f.retry_after_ms = null;
    const source = first.str("source") orelse "";
    if (status == 401 or status == 403) {
        f.code = "provider.auth_failed";
    } else if (eql(source, "payload[to]") or eql(source, "to")) {
        f.code = "provider.invalid_recipient";
    } else {
        f.code = "provider.rejected";
    }
    abi.writeRejected(w, f);
}

fn mapStatus(s: []const u8) ?[]const u8 {
    if (eql(s, "DELIVRD")) return "delivered";
    if (eql(s, "UNDELIV") or eql(s, "EXPIRED")) return "undelivered";
    if (eql(s, "FAILED") or eql(s, "REJECTD") or eql(s, "DELETED") or eql(s, "NACK")) return "failed";
    if (eql(s, "ACK")) return "sent";
    if (eql(s, "ACCEPTD")) return "accepted";
    if (eql(s, "SEEN")) return "read";
    return null; // UNKNOWN and anything new: no receipt
}

fn verified(in: h.Value) bool {
    const creds = in.obj("credentials") orelse return false;
    const password = creds.text("password") orelse return false;
    const given = abi.trim(abi.header(in, "x-messente-signature") orelse return false);
    const mac = h.crypto.hmacSha256(password, in.str("body") orelse "");
    // Hex (either case); base64 of the same MAC is accepted too.
    const want = enc.hex(mac);
    if (given.len == want.len) {
        var d: u8 = 0;
        for (given, want) |x, y| d |= enc.lower(x) ^ y;
        return d == 0;
    }
    return enc.timingSafeEql(given, enc.base64(mac));
}

pub fn parseCallback(in: h.Value, w: *h.Writer) h.Error!void {
    if (!verified(in)) return abi.writeCallback(w, false, &.{});
    const body = abi.jsonBody(in) orelse return abi.badInput("body", "must be a JSON delivery report");
    var receipts = h.mem.List(abi.Receipt){};
    // One report per call; the API's delivery-report lookup nests them in `statuses`.
    const reports: []const h.Value = body.arr("statuses") orelse &.{body};
    for (reports) |rep| {
        const id = rep.text("message_id") orelse continue;
        const status = mapStatus(rep.str("status") orelse "") orelse continue;
        var r = abi.Receipt{ .provider_message_id = id, .status = status };
        if (rep.scalarText("err")) |e| {
            if (!eql(e, "0")) r.provider_error_code = e;
        }
        if (rep.text("timestamp")) |t| r.timestamp = h.time.parseIso(t);
        receipts.append(r);
    }
    abi.writeCallback(w, true, receipts.items());
}

comptime {
    h.exportAdapter(@This());
}
