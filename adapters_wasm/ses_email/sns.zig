//! Amazon SNS HTTP(S) deliveries: the string an SNS message signature covers,
//! and the check that its certificate URL is one of SNS's own.

const h = @import("hermes");
const enc = h.enc;
const eql = h.json.eql;

/// The canonical string SNS signs for `msg` (a parsed SNS envelope), or null
/// when a field the type requires is missing.
pub fn stringToSign(msg: h.Value) ?[]const u8 {
    const kind = msg.str("Type") orelse return null;
    const notification = [_][]const u8{ "Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type" };
    const subscription = [_][]const u8{ "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type" };
    const keys: []const []const u8 = if (eql(kind, "Notification"))
        &notification
    else if (eql(kind, "SubscriptionConfirmation") or eql(kind, "UnsubscribeConfirmation"))
        &subscription
    else
        return null;
    var out = h.mem.Bytes{};
    for (keys) |k| {
        const v = msg.str(k) orelse {
            // Subject is the only optional field; it is left out when absent.
            if (eql(k, "Subject")) continue;
            return null;
        };
        out.appendSlice(k);
        out.append('\n');
        out.appendSlice(v);
        out.append('\n');
    }
    return out.items();
}

/// `https://sns.<region>.amazonaws.com[.cn]/<...>.pem`: certificates are only
/// ever fetched from SNS itself.
pub fn isSnsCertUrl(raw: []const u8) bool {
    const u = h.url.parse(raw) orelse return false;
    if (!h.url.isScheme(u, "https") or u.port != null) return false;
    if (!eql(u.authority, u.host)) return false; // no userinfo
    if (u.query.len != 0 or !endsWith(u.path, ".pem")) return false;
    const host = u.host;
    if (!enc.startsWith(host, "sns.")) return false;
    const suffix = if (endsWith(host, ".amazonaws.com")) ".amazonaws.com" else if (endsWith(host, ".amazonaws.com.cn")) ".amazonaws.com.cn" else return false;
    const region = host["sns.".len .. host.len - suffix.len];
    if (region.len == 0) return false;
    for (region) |c| {
        if (!((c >= 'a' and c <= 'z') or (c >= '0' and c <= '9') or c == '-')) return false;
    }
    return true;
}

fn endsWith(s: []const u8, suffix: []const u8) bool {
    return s.len >= suffix.len and eql(s[s.len - suffix.len ..], suffix);
}
