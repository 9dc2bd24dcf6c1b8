//! Splitting absolute URLs (`scheme://authority/path?query#fragment`).

const json = @import("json.zig");

pub const Url = struct {
    scheme: []const u8,
    /// `host[:port]` (userinfo, if any, included).
    authority: []const u8,
    /// The host without the port.
    host: []const u8,
    port: ?[]const u8,
    /// Path, `/` when empty.
    path: []const u8,
    /// Query without `?`, empty when absent.
    query: []const u8,
};

pub fn parse(s: []const u8) ?Url {
    var i: usize = 0;
    while (i + 2 < s.len and s[i] != ':') i += 1;
    if (i + 2 >= s.len or s[i + 1] != '/' or s[i + 2] != '/') return null;
    const scheme = s[0..i];
    const auth_start = i + 3;
    var j = auth_start;
    while (j < s.len and s[j] != '/' and s[j] != '?' and s[j] != '#') j += 1;
    const authority = s[auth_start..j];
    var k = j;
    while (k < s.len and s[k] != '?' and s[k] != '#') k += 1;
    const path = if (k == j) "/" else s[j..k];
    var query: []const u8 = "";
    if (k < s.len and s[k] == '?') {
        var q = k + 1;
        while (q < s.len and s[q] != '#') q += 1;
        query = s[k + 1 .. q];
    }
    var hostport = authority;
    for (authority, 0..) |c, n| {
        if (c == '@') hostport = authority[n + 1 ..];
    }
    var host = hostport;
    var port: ?[]const u8 = null;
    var n = hostport.len;
    while (n > 0) : (n -= 1) {
        const c = hostport[n - 1];
        if (c == ':') {
            host = hostport[0 .. n - 1];
            port = hostport[n..];
            break;
        }
        if (c < '0' or c > '9') break;
    }
    return .{ .scheme = scheme, .authority = authority, .host = host, .port = port, .path = path, .query = query };
}

pub fn isScheme(u: Url, scheme: []const u8) bool {
    return json.eql(u.scheme, scheme);
}
