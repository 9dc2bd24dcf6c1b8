//! Amazon SES v2 `SendEmail`, signed with AWS Signature Version 4.
//!
//! Request: `POST https://email.{region}.amazonaws.com/v2/email/outbound-emails`
//! with the JSON body botocore sends (same member order, same separators), so
//! the signature is the one the SDK computes for the same time and keys.
//! Callbacks: SES event notifications (Delivery, Bounce, Complaint, ...)
//! delivered by SNS. The adapter cannot check an RSA signature against a
//! certificate it cannot fetch, so it returns a `verify` request for the host.

const h = @import("hermes");
const abi = h.abi;
const enc = h.enc;
const eql = h.json.eql;
const sigv4 = @import("sigv4.zig");
const sns = @import("sns.zig");

pub const manifest = h.Manifest{
    .name = "ses_email",
    .version = "1.0.0",
    .channels = &.{"email"},
    .allowed_hosts = &.{"*.amazonaws.com"},
    .credentials = &.{ "access_key_id", "secret_access_key", "session_token", "sns_topic_arn", "sns_cert_url_prefix" },
    .callback_auth = "sns",
};

const path = "/v2/email/outbound-emails";

fn content(b: *h.Writer, key: []const u8, data: []const u8) void {
    b.key(key);
    b.beginObject();
    b.fieldString("Data", data);
    b.fieldString("Charset", "UTF-8");
    b.endObject();
}

/// `host[:port]` as SigV4 signs it: lowercase, default port left out.
fn canonicalHost(u: h.url.Url) []const u8 {
    var host = u.authority;
    for (u.authority, 0..) |c, n| {
        if (c == '@') host = u.authority[n + 1 ..];
    }
    if (u.port) |p| {
        const default = (h.url.isScheme(u, "https") and eql(p, "443")) or (h.url.isScheme(u, "http") and eql(p, "80"));
        if (default) host = host[0 .. host.len - p.len - 1];
    }
    const out = h.mem.alloc(host.len);
    for (host, 0..) |c, n| out[n] = enc.lower(c);
    return out;
}

pub fn buildRequest(in: h.Value, w: *h.Writer) h.Error!void {
    const msg = try abi.section(in, "message");
    const creds_in = try abi.section(in, "credentials");
    const config = in.obj("config") orelse h.Value{ .object = &.{} };
    const now = in.int("now") orelse return abi.badInput("now", "must be unix milliseconds");
    const creds = sigv4.Credentials{
        .access_key_id = try abi.need(creds_in, "credentials", "access_key_id"),
        .secret_access_key = try abi.need(creds_in, "credentials", "secret_access_key"),
        .session_token = creds_in.text("session_token"),
    };
    const region = try abi.need(config, "config", "region");
    const from = try abi.need(config, "config", "from");
    const to = try abi.need(msg, "message", "to");
    const subject = msg.text("subject") orelse msg.text("title") orelse
        return abi.badInput("message.subject", "is required");
    const text = msg.text("body");
    const html = msg.text("html");
    if (text == null and html == null) return abi.badInput("message.body or message.html", "is required");

    // Member order and separators as botocore's rest-json serialiser.
    var b = h.Writer{ .spaced = true };
    b.beginObject();
    b.fieldString("FromEmailAddress", from);
    b.key("Destination");
    b.beginObject();
    b.key("ToAddresses");
    b.beginArray();
    b.string(to);
    b.endArray();
    b.endObject();
    if (config.text("reply_to")) |r| {
        b.key("ReplyToAddresses");
        b.beginArray();
        b.string(r);
        b.endArray();
    }
    b.key("Content");
    b.beginObject();
    b.key("Simple");
    b.beginObject();
    content(&b, "Subject", subject);
    b.key("Body");
    b.beginObject();
    if (text) |t| content(&b, "Text", t);
    if (html) |x| content(&b, "Html", x);
    b.endObject();
    b.endObject();
    b.endObject();
    if (config.text("configuration_set")) |c| b.fieldString("ConfigurationSetName", c);
    b.endObject();
    const body = b.bytes();

    const base = abi.baseUrl(config, h.concat(&.{ "https://email.", region, ".amazonaws.com" }));
    const url = h.concat(&.{ base, path });
    const u = h.url.parse(url) orelse return abi.badInput("config.base_url", "is not an absolute URL");
    const host = canonicalHost(u);
    const amz_date = h.time.amzDate(now);

    var to_sign = [_]sigv4.Header{
        .{ .name = "content-type", .value = "application/json" },
        .{ .name = "host", .value = host },
        .{ .name = "x-amz-date", .value = amz_date },
        .{ .name = "x-amz-security-token", .value = creds.session_token orelse "" },
    };
    const n_signed: usize = if (creds.session_token != null) 4 else 3;
    const signed = sigv4.sign(creds, region, "ses", "POST", u.path, "", to_sign[0..n_signed], body, amz_date);

    var headers = h.mem.List(abi.Header){};
    headers.append(.{ "Content-Type", "application/json" });
    headers.append(.{ "Host", host });
    headers.append(.{ "X-Amz-Date", amz_date });
    if (creds.session_token) |t| headers.append(.{ "X-Amz-Security-Token", t });
    headers.append(.{ "Authorization", signed.authorization });
    abi.writeRequest(w, "POST", url, headers.items(), body);
}

/// The AWS error code: `x-amzn-ErrorType` (up to `:`) or the body's `__type`
/// / `code`, without any `namespace#` prefix.
fn errorType(in: h.Value, body: h.Value) ?[]const u8 {
    var t = abi.header(in, "x-amzn-errortype") orelse body.text("__type") orelse body.text("code") orelse body.text("Code") orelse return null;
    for (t, 0..) |c, n| {
        if (c == ':') {
            t = t[0..n];
            break;
        }
    }
    var start: usize = 0;
    for (t, 0..) |c, n| {
        if (c == '#') start = n + 1;
    }
    return t[start..];
}

fn isOneOf(s: []const u8, list: []const []const u8) bool {
    for (list) |x| {
        if (eql(s, x)) return true;
    }
    return false;
}

const throttling = [_][]const u8{ "TooManyRequestsException", "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException", "LimitExceededException" };
const auth = [_][]const u8{ "AccessDeniedException", "UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException", "SignatureDoesNotMatch", "IncompleteSignature", "ExpiredTokenException", "MissingAuthenticationToken", "NotAuthorizedException" };
const transient = [_][]const u8{ "InternalFailure", "InternalServerError", "ServiceUnavailable", "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException", "RequestExpired" };

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
        const id = body.text("MessageId") orelse
            return abi.writeRetryable(w, .{ .code = "provider.unavailable", .message = "2xx response without a MessageId" });
        return abi.writeAccepted(w, .{ .provider_message_id = id });
    }
    const kind = errorType(in, body);
    const message = body.text("message") orelse body.text("Message") orelse in.str("body");
    var f = abi.Failed{ .code = "", .provider_code = kind, .message = message, .retry_after_ms = abi.retryAfterMs(in) };
    const k = kind orelse "";
    if (status == 429 or isOneOf(k, &throttling)) {
        f.code = "provider.rate_limited";
        return abi.writeRetryable(w, f);
    }
    if (status >= 500 or isOneOf(k, &transient)) {
        f.code = "provider.unavailable";
        return abi.writeRetryable(w, f);
    }
    f.retry_after_ms = null;
    if (status == 401 or status == 403 or isOneOf(k, &auth)) {
        f.code = "provider.auth_failed";
    } else if (eql(k, "BadRequestException") and message != null and
        (contains(message.?, "address") or contains(message.?, "Address")))
    {
        f.code = "provider.invalid_recipient";
    } else {
        f.code = "provider.rejected";
    }
    abi.writeRejected(w, f);
}

/// One SES event (the SNS `Message`) as a receipt.
fn receiptFor(event: h.Value) ?abi.Receipt {
    const kind = event.str("eventType") orelse event.str("notificationType") orelse return null;
    const mail = event.obj("mail") orelse return null;
    const id = mail.text("messageId") orelse return null;
    var r = abi.Receipt{ .provider_message_id = id, .status = "" };
    var detail: ?h.Value = null;
    if (eql(kind, "Delivery")) {
        r.status = "delivered";
        detail = event.obj("delivery");
    } else if (eql(kind, "Bounce")) {
        r.status = "bounced";
        detail = event.obj("bounce");
        if (detail) |d| {
            if (d.text("bounceType")) |bt| {
                r.provider_error_code = if (d.text("bounceSubType")) |st| h.concat(&.{ bt, "/", st }) else bt;
            }
        }
    } else if (eql(kind, "Complaint")) {
        r.status = "complained";
        detail = event.obj("complaint");
        if (detail) |d| r.provider_error_code = d.text("complaintFeedbackType");
    } else if (eql(kind, "Send")) {
        r.status = "sent";
    } else if (eql(kind, "Reject")) {
        r.status = "failed";
        detail = event.obj("reject");
        if (detail) |d| r.provider_error_code = d.text("reason");
    } else if (eql(kind, "Rendering Failure")) {
        r.status = "failed";
    } else if (eql(kind, "Open")) {
        r.status = "read";
        detail = event.obj("open");
    } else return null;
    const ts = if (detail) |d| d.text("timestamp") else null;
    if (ts orelse mail.text("timestamp")) |t| r.timestamp = h.time.parseIso(t);
    return r;
}

pub fn parseCallback(in: h.Value, w: *h.Writer) h.Error!void {
    const env = abi.jsonBody(in) orelse return abi.badInput("body", "must be an SNS JSON message");
    const creds = in.obj("credentials") orelse h.Value{ .object = &.{} };
    const kind = env.str("Type") orelse "";
    const string_to_sign = sns.stringToSign(env);
    const signature = env.text("Signature");
    const cert_url = env.text("SigningCertURL") orelse env.text("SigningCertUrl");
    const version = env.text("SignatureVersion") orelse "1";
    var trusted = string_to_sign != null and signature != null and cert_url != null and
        (eql(version, "1") or eql(version, "2"));
    if (cert_url) |cu| {
        // Only SNS's own certificates; the provider sandbox (test mode) names
        // its certificate host in the account's credentials instead.
        const ok = if (creds.text("sns_cert_url_prefix")) |prefix| enc.startsWith(cu, prefix) else sns.isSnsCertUrl(cu);
        if (!ok) trusted = false;
    }
    // Pinning the topic keeps another AWS account's topic from posting here.
    if (creds.text("sns_topic_arn")) |arn| {
        if (!eql(arn, env.str("TopicArn") orelse "")) trusted = false;
    }
    if (!trusted) return abi.writeCallback(w, false, &.{});

    w.beginObject();
    w.fieldBool("verified", false);
    w.key("verify");
    w.beginObject();
    w.fieldString("kind", "sns");
    w.fieldString("signature_version", version);
    w.fieldString("string_to_sign", string_to_sign.?);
    w.fieldString("signature", signature.?);
    w.fieldString("cert_url", cert_url.?);
    if (eql(kind, "SubscriptionConfirmation")) {
        if (env.text("SubscribeURL")) |s| w.fieldString("subscribe_url", s);
    }
    w.endObject();
    w.key("receipts");
    w.beginArray();
    if (eql(kind, "Notification")) {
        if (h.json.parse(env.str("Message") orelse "")) |event| {
            if (receiptFor(event)) |r| abi.writeReceipt(w, r);
        } else |_| {}
    }
    w.endArray();
    w.endObject();
}

comptime {
    h.exportAdapter(@This());
}
