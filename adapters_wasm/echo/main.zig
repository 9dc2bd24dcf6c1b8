//! The smallest complete adapter: it echoes what it is given. It exists to
//! prove the build pipeline and the ABI end to end, and as a template.

const h = @import("hermes");

pub const manifest = h.Manifest{
    .name = "echo",
    .version = "1.0.0",
    .channels = &.{ "sms", "email", "push", "whatsapp" },
    .allowed_hosts = &.{"echo.hermes.invalid"},
    .credentials = &.{},
    .callback_auth = "none",
};

/// A POST whose body is the message as JSON; `echo` carries the whole input
/// back unchanged.
pub fn buildRequest(in: h.Value, w: *h.Writer) h.Error!void {
    const message = try h.abi.section(in, "message");
    const config = in.obj("config") orelse h.Value{ .object = &.{} };
    var body = h.Writer{};
    body.value(message);
    const url = h.concat(&.{ h.abi.baseUrl(config, "https://echo.hermes.invalid"), "/echo" });
    w.beginObject();
    w.fieldString("method", "POST");
    w.fieldString("url", url);
    w.key("headers");
    w.beginArray();
    w.beginArray();
    w.string("Content-Type");
    w.string("application/json");
    w.endArray();
    w.endArray();
    w.fieldString("body", body.bytes());
    w.key("echo");
    w.value(in);
    w.endObject();
}

/// 2xx accepted (the body is the provider message id), 429 and 5xx
/// retryable, anything else rejected.
pub fn parseResponse(in: h.Value, w: *h.Writer) h.Error!void {
    const status = try h.abi.status(in);
    const body = in.str("body") orelse "";
    if (status >= 200 and status < 300) {
        const id = h.abi.trim(body);
        if (id.len == 0) return h.abi.writeRetryable(w, .{ .code = "provider.unavailable", .message = "empty 2xx response" });
        h.abi.writeAccepted(w, .{ .provider_message_id = id });
    } else if (status == 429) {
        h.abi.writeRetryable(w, .{ .code = "provider.rate_limited", .retry_after_ms = h.abi.retryAfterMs(in) });
    } else if (status >= 500) {
        h.abi.writeRetryable(w, .{ .code = "provider.unavailable", .retry_after_ms = h.abi.retryAfterMs(in) });
    } else {
        h.abi.writeRejected(w, .{ .code = "provider.rejected", .message = body });
    }
}

/// A JSON body `{"id": ..., "status": ...}` becomes one receipt.
pub fn parseCallback(in: h.Value, w: *h.Writer) h.Error!void {
    const body = h.abi.jsonBody(in) orelse return h.badInput("body", "must be JSON");
    const id = try h.abi.need(body, "body", "id");
    const status = try h.abi.need(body, "body", "status");
    h.abi.writeCallback(w, true, &.{.{ .provider_message_id = id, .status = status }});
}

comptime {
    h.exportAdapter(@This());
}
